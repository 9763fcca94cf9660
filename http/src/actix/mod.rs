//! The actix-web 4 adapter: [`Limiter`], a middleware (`Transform`) for `App::wrap`,
//! `Scope::wrap` and `Resource::wrap`, and its service, [`LimiterMiddleware`].
//!
//! It is a thin shell over the same engine as the tower layer
//! ([`HttpLimiter::plan`](crate::HttpLimiter::plan), [`HttpLimiter::decide`](crate::HttpLimiter::decide), [`Admission`](crate::Admission),
//! [`HttpLimiter::rejection_response`](crate::HttpLimiter::rejection_response)), so both adapters answer a request alike:
//!
//! - The route is actix's matched pattern (`ServiceRequest::match_pattern`, such as
//!   `/users/{id}`, with scope prefixes); a request that matches no resource is
//!   unmatched, and not charged unless
//!   [`charge_unmatched`](crate::HttpLimiterBuilder::charge_unmatched) says so.
//! - The peer is the connection's (`ServiceRequest::peer_addr`).
//! - A rejected request never reaches the inner service: it is answered with `429`
//!   (or `503` when the storage fails closed), as an `Ok` response.
//! - An admitted request carries a [`RateLimitInfo`] in its
//!   extensions, which is also an extractor.
//!
//! actix-web 4 uses `http` 0.2 types, the engine `http` 1: the request's headers are
//! copied into an `http` 1 [`HeaderMap`](http::HeaderMap) once per request (key functions, dynamic
//! limits and filters may read any header through
//! [`RequestInfo::headers`](crate::RequestInfo::headers)), and the response's only when
//! a [`deduct_when`](crate::Limits::deduct_when) predicate or a `405` refund needs to
//! see them. actix's request extensions are of another type than `http`'s, so
//! [`RequestInfo::extensions`](crate::RequestInfo::extensions) is `None` here.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use limiter_core::RateLimiter;
//! use limiter_http::{HttpLimiter, Limits, RateLimitInfo, Route};
//! use limiter_memory::MemoryStorage;
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
//!     .default_limits("2 per minute; 1 per second")
//!     .route("/slow", Route::limits(Limits::new("1 per day")))
//!     .route("/ping", Route::exempt())
//!     .build()?;
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(limiter.actix_middleware())
//!         .route("/slow", web::get().to(|| async { "24" }))
//!         .route("/ping", web::get().to(|| async { "PONG" }))
//!         .route(
//!             "/fast",
//!             web::get().to(|info: RateLimitInfo| async move {
//!                 format!("{:?} left", info.decision().map(|d| d.remaining()))
//!             }),
//!         )
//! })
//! .bind("127.0.0.1:5000")?
//! .run()
//! .await?;
//! # Ok(())
//! # }
//! ```

mod convert;
mod middleware;
mod reads;

pub use self::middleware::{Limiter, LimiterMiddleware};
pub(crate) use self::reads::HeadersRead;

use std::convert::Infallible;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::RateLimitInfo;

/// Extracts what the limiter decided for the request; the default (no decision)
/// when no limit applied to it. Never fails.
impl FromRequest for RateLimitInfo {
    type Error = Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RateLimitInfo>()
            .copied()
            .unwrap_or_default()))
    }
}
