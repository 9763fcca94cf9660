use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::HttpMessage;
use http::HeaderMap;

use super::convert::{
    headers_from_actix, headers_into_actix, request_headers_from_actix, response_into_actix,
    status_from_actix,
};
use super::reads::{limiter_reads, route_reads};
use super::HeadersRead;
use crate::{BuildError, HttpLimiter, RequestInfo, ResponseInfo, Route, RouteRule};

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The actix-web middleware: wraps an `App`, a `Scope` or a `Resource`; made by
/// [`HttpLimiter::actix_middleware`] or [`Limiter::new`].
///
/// # Examples
///
/// ```
/// use actix_web::{web, App};
/// use limiter_core::RateLimiter;
/// use limiter_http::{HttpLimiter, Limits, Route};
/// use limiter_memory::MemoryStorage;
/// use std::sync::Arc;
///
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("2 per minute; 1 per second")
///     .build()?;
/// let app = App::new()
///     .service(
///         web::resource("/fast")
///             .wrap(limiter.actix_middleware()) // the defaults
///             .route(web::get().to(|| async { "42" })),
///     )
///     .service(
///         web::resource("/slow")
///             // A rule of its own, declared where the resource is.
///             .wrap(limiter.actix_middleware_for(Route::limits(Limits::new("1 per day")))?)
///             .route(web::get().to(|| async { "24" })),
///     )
///     .route("/ping", web::get().to(|| async { "PONG" })); // no middleware: exempt
/// # let _ = app;
/// # Ok::<(), limiter_http::BuildError>(())
/// ```
///
/// Wrap each request in exactly one limiter middleware: a resource wrapped in its
/// own and also inside an `App::wrap`-ped app would be decided twice. With
/// `App::wrap`, give routes their rules in the builder's route table instead.
#[derive(Clone)]
pub struct Limiter {
    limiter: HttpLimiter,
    route: Option<RouteRule>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("limiter", &self.limiter)
            .field("own_route_rule", &self.route.is_some())
            .finish()
    }
}

impl Limiter {
    /// A middleware deciding with `limiter`.
    pub fn new(limiter: HttpLimiter) -> Self {
        Limiter {
            limiter,
            route: None,
        }
    }
}

impl HttpLimiter {
    /// An actix-web middleware that limits every request of what it wraps.
    #[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
    pub fn actix_middleware(&self) -> Limiter {
        Limiter::new(self.clone())
    }

    /// An actix-web middleware for the resources or scopes it wraps, with `route` as
    /// their rule in place of the route table (see
    /// [`layer_for`](HttpLimiter::layer_for) for the tower equivalent). The
    /// limiter's application limits apply as usual, and the defaults as `route` says.
    ///
    /// # Errors
    ///
    /// As [`HttpLimiterBuilder::build`](crate::HttpLimiterBuilder::build) for the
    /// route's limits.
    #[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
    pub fn actix_middleware_for(&self, route: Route) -> Result<Limiter, BuildError> {
        Ok(Limiter {
            limiter: self.clone(),
            route: Some(self.route_rule(route)?),
        })
    }
}

impl<S, B> Transform<S, ServiceRequest> for Limiter
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = LimiterMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let mut reads = limiter_reads(&self.limiter);
        if let Some(rule) = &self.route {
            reads.add(route_reads(&rule.0));
        }
        ready(Ok(LimiterMiddleware {
            service: Rc::new(service),
            limiter: self.limiter.clone(),
            route: self.route.clone(),
            reads,
        }))
    }
}

/// The service made by [`Limiter`]: decides before calling the wrapped service,
/// answers rejected requests itself, and adds the rate-limit headers to the
/// wrapped service's responses.
pub struct LimiterMiddleware<S> {
    service: Rc<S>,
    limiter: HttpLimiter,
    route: Option<RouteRule>,
    /// What deciding can read of a request's headers: all the middleware copies.
    reads: HeadersRead,
}

impl<S> fmt::Debug for LimiterMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterMiddleware")
            .field("limiter", &self.limiter)
            .field("own_route_rule", &self.route.is_some())
            .finish_non_exhaustive()
    }
}

/// The request as the engine sees it: method, path, headers (converted), the
/// matched route pattern and the peer address.
fn request_info<'a>(
    req: &'a ServiceRequest,
    headers: &'a HeaderMap,
    pattern: Option<&'a str>,
) -> RequestInfo<'a> {
    let mut info = RequestInfo::new(req.method().as_str(), req.path(), headers);
    if let Some(pattern) = pattern {
        info = info.with_route(pattern);
    }
    if let Some(peer) = req.peer_addr() {
        info = info.with_peer(peer);
    }
    info
}

impl<S, B> Service<ServiceRequest> for LimiterMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // Only what deciding can read: most configurations read no header at all.
        let headers = request_headers_from_actix(req.headers(), &self.reads);
        let pattern = req.match_pattern();
        let plan = {
            let info = request_info(&req, &headers, pattern.as_deref());
            match &self.route {
                Some(rule) => self.limiter.plan_for(&info, rule),
                None => self.limiter.plan(&info),
            }
        };
        if plan.is_empty() {
            let future = self.service.call(req);
            return Box::pin(async move { future.await.map(ServiceResponse::map_into_left_body) });
        }
        let limiter = self.limiter.clone();
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            match limiter.decide(plan).await {
                Ok(admission) => {
                    req.extensions_mut().insert(admission.info());
                    let mut response = service.call(req).await?;
                    let status = status_from_actix(response.status());
                    let admission = if admission.needs_settling(status) {
                        let seen = headers_from_actix(response.headers());
                        admission.settle(&ResponseInfo::new(status, &seen)).await
                    } else {
                        admission
                    };
                    let mut rate_limit = HeaderMap::new();
                    admission.write_headers(&mut rate_limit);
                    headers_into_actix(&rate_limit, response.headers_mut());
                    Ok(response.map_into_left_body())
                }
                Err(rejected) => {
                    let info = request_info(&req, &headers, pattern.as_deref());
                    let answer = response_into_actix(limiter.rejection_response(&rejected, &info));
                    Ok(req.into_response(answer).map_into_right_body())
                }
            }
        })
    }
}
