//! The tower layer over a [`ReloadableLimiter`].

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{LimiterService, ResponseFuture};
use crate::ReloadableLimiter;

/// A [`Layer`] that limits requests with whatever limiter a [`ReloadableLimiter`]
/// holds when each request arrives; from [`ReloadableLimiter::layer`].
#[derive(Debug, Clone)]
pub struct ReloadLayer {
    handle: ReloadableLimiter,
}

impl<S> Layer<S> for ReloadLayer {
    type Service = ReloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReloadService {
            service: LimiterService::new(inner, self.handle.current()),
            handle: self.handle.clone(),
        }
    }
}

/// The service of [`ReloadLayer`]: a [`LimiterService`] whose limiter is read from
/// the handle for every request.
#[derive(Debug, Clone)]
pub struct ReloadService<S> {
    service: LimiterService<S>,
    handle: ReloadableLimiter,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ReloadService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        self.service.set_limiter(self.handle.current());
        self.service.call(req)
    }
}

impl ReloadableLimiter {
    /// A tower layer that reads this handle for every request.
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn layer(&self) -> ReloadLayer {
        ReloadLayer {
            handle: self.clone(),
        }
    }
}
