use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use tower_service::Service;

use super::future::{BoxFuture, ResponseFuture};
use crate::{Admission, HttpLimiter, Rejected, RequestInfo, RouteRule};

/// The rate-limiting service made by [`LimiterLayer`](super::LimiterLayer).
///
/// `Clone` when the inner service is; `poll_ready` is the inner service's.
///
/// # Examples
///
/// ```
/// use limiter_http::{HttpLimiter, tower::LimiterService};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use http::{Request, Response, StatusCode};
/// use std::{convert::Infallible, net::SocketAddr, sync::Arc};
/// use tower::{service_fn, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("1 per minute")
///     .charge_unmatched(true) // no router reports a matched route here
///     .build()?;
/// let hello = service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new("hello".to_owned()))
/// });
/// let service = LimiterService::new(hello, limiter);
/// let request = || {
///     let mut req = Request::new(String::new());
///     req.extensions_mut().insert("192.0.2.1:5000".parse::<SocketAddr>().unwrap());
///     req
/// };
/// assert_eq!(service.clone().oneshot(request()).await?.status(), StatusCode::OK);
/// assert_eq!(service.oneshot(request()).await?.status(), StatusCode::TOO_MANY_REQUESTS);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LimiterService<S> {
    inner: S,
    limiter: HttpLimiter,
    route: Option<RouteRule>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for LimiterService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("own_route_rule", &self.route.is_some())
            .finish()
    }
}

impl<S> LimiterService<S> {
    /// `inner`, limited by `limiter`.
    pub fn new(inner: S, limiter: HttpLimiter) -> Self {
        LimiterService {
            inner,
            limiter,
            route: None,
        }
    }

    /// Decides the next requests with `limiter` (the reloading service's swap).
    #[cfg(feature = "reload")]
    pub(super) fn set_limiter(&mut self, limiter: HttpLimiter) {
        self.limiter = limiter;
    }

    pub(super) fn with_route(inner: S, limiter: HttpLimiter, route: Option<RouteRule>) -> Self {
        LimiterService {
            inner,
            limiter,
            route,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The request as the engine sees it: method, path, headers, extensions, and the
/// peer address and route pattern from the extensions.
pub(super) fn request_info<B>(req: &Request<B>) -> RequestInfo<'_> {
    let extensions = req.extensions();
    let mut info = RequestInfo::new(req.method().as_str(), req.uri().path(), req.headers())
        .with_extensions(extensions);
    if let Some(peer) = peer_addr(extensions) {
        info = info.with_peer(peer);
    }
    #[cfg(feature = "axum")]
    if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
        info = info.with_route(path.as_str());
    }
    info
}

fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    extensions.get::<SocketAddr>().copied()
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LimiterService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let info = request_info(&req);
        let plan = match &self.route {
            Some(rule) => self.limiter.plan_for(&info, rule),
            None => self.limiter.plan(&info),
        };
        if plan.is_empty() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        // Decide now if the storage answers without waiting (in-process storages
        // do): the ready inner service is then called at once, with no clone of it
        // and no request held. The real waker replaces the no-op one at the next poll
        // of a decision that has to wait.
        let mut decision: BoxFuture<Result<Admission, Rejected>> =
            Box::pin(self.limiter.decide(plan));
        let mut cx = Context::from_waker(Waker::noop());
        match decision.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(admission)) => {
                let mut req = req;
                req.extensions_mut().insert(admission.info());
                ResponseFuture::calling(self.inner.call(req), admission)
            }
            Poll::Ready(Err(rejected)) => {
                let response = self
                    .limiter
                    .rejection_response(&rejected, &request_info(&req));
                ResponseFuture::answered(response.map(ResBody::from))
            }
            Poll::Pending => {
                // The ready service goes into the future; a fresh clone stays here for
                // the next poll_ready.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::deciding(self.limiter.clone(), decision, inner, req)
            }
        }
    }
}
