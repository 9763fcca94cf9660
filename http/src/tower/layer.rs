use tower_layer::Layer;

use super::RateLimitService;
use crate::HttpLimiter;

/// Wraps services in a [`RateLimitService`]; made by [`HttpLimiter::layer`].
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use limiter_http::{HttpLimiter, Limits, Route};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use std::sync::Arc;
///
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("2 per minute; 1 per second")
///     .route("/slow", Route::limits(Limits::new("1 per day")))
///     .route("/ping", Route::exempt())
///     .build()?;
/// let app: Router = Router::new()
///     .route("/slow", get(|| async { "24" }))
///     .route("/fast", get(|| async { "42" }))
///     .route("/ping", get(|| async { "PONG" }))
///     .layer(limiter.layer());
/// # Ok::<(), limiter_http::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: HttpLimiter,
}

impl RateLimitLayer {
    /// A layer deciding with `limiter`.
    pub fn new(limiter: HttpLimiter) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, self.limiter.clone())
    }
}

impl HttpLimiter {
    /// A tower layer that limits every request of the services it wraps.
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn layer(&self) -> RateLimitLayer {
        RateLimitLayer::new(self.clone())
    }
}
