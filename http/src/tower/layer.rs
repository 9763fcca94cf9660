use tower_layer::Layer;

use super::LimiterService;
use crate::{BuildError, HttpLimiter, Route, RouteRule};

/// Wraps services in a [`LimiterService`]; made by [`HttpLimiter::layer`].
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
#[derive(Clone)]
pub struct LimiterLayer {
    limiter: HttpLimiter,
    route: Option<RouteRule>,
}

impl std::fmt::Debug for LimiterLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterLayer")
            .field("limiter", &self.limiter)
            .field("own_route_rule", &self.route.is_some())
            .finish()
    }
}

impl LimiterLayer {
    /// A layer deciding with `limiter`.
    pub fn new(limiter: HttpLimiter) -> Self {
        LimiterLayer {
            limiter,
            route: None,
        }
    }
}

impl<S> Layer<S> for LimiterLayer {
    type Service = LimiterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimiterService::with_route(inner, self.limiter.clone(), self.route.clone())
    }
}

impl HttpLimiter {
    /// A tower layer that limits every request of the services it wraps.
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn layer(&self) -> LimiterLayer {
        LimiterLayer::new(self.clone())
    }

    /// A tower layer for the routes it wraps, with `route` as their rule, in place of
    /// the route table: per-route configuration where the route is declared. The
    /// limiter's application limits apply as usual, and the defaults as `route` says.
    ///
    /// In axum, a route must be wrapped by exactly one limiter layer: add the routes
    /// that carry their own layer after the router-wide `Router::layer` call (which
    /// wraps only the routes added before it), or the request would be decided twice.
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
    ///     .build()?;
    /// let app: Router = Router::new()
    ///     .route("/fast", get(|| async { "42" }))
    ///     .layer(limiter.layer()) // the defaults, for the routes above
    ///     .route(
    ///         "/slow",
    ///         get(|| async { "24" }).layer(limiter.layer_for(Route::limits(Limits::new("1 per day")))?),
    ///     )
    ///     .route("/ping", get(|| async { "PONG" })); // no limiter layer: exempt
    /// # Ok::<(), limiter_http::BuildError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`HttpLimiterBuilder::build`](crate::HttpLimiterBuilder::build) for the
    /// route's limits.
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn layer_for(&self, route: Route) -> Result<LimiterLayer, BuildError> {
        Ok(LimiterLayer {
            limiter: self.clone(),
            route: Some(self.route_rule(route)?),
        })
    }
}
