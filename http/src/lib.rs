//! **limiter-http**: Flask-Limiter's features for Rust HTTP services: a
//! framework-neutral policy engine, [`HttpLimiter`], a tower layer,
//! [`tower::LimiterLayer`] (feature `tower`), for axum, hyper and any tower stack,
//! and an actix-web middleware, `actix::Limiter` (feature `actix-web`). Both adapters
//! are thin shells over the same engine, and one table of policy cases checks that
//! they answer alike.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use limiter_core::RateLimiter;
//! use limiter_http::{HttpLimiter, Limits, Route};
//! use limiter_memory::MemoryStorage;
//! use std::{net::SocketAddr, sync::Arc};
//!
//! # #[cfg(feature = "tower")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
//!         .default_limits("2 per minute; 1 per second") // every route without its own
//!         .route("/slow", Route::limits(Limits::new("1 per day"))) // replaces the defaults
//!         .route("/ping", Route::exempt()) // no limit at all
//!         .build()?; // a malformed limit fails here, not on a request
//!
//!     let app = Router::new()
//!         .route("/slow", get(|| async { "24" }))
//!         .route("/fast", get(|| async { "42" }))
//!         .route("/ping", get(|| async { "PONG" }))
//!         .layer(limiter.layer());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//!     // The client's address is the key: serve with connect info.
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//!     Ok(())
//! }
//! # #[cfg(not(feature = "tower"))]
//! # fn main() {}
//! ```
//!
//! Handlers read what was decided for their request through [`RateLimitInfo`], an
//! extractor in axum and actix-web.
//!
//! Other frameworks call [`HttpLimiter::check`] before the handler and
//! [`Admission::finish`] after it. The [`guide`] explains routes, keys, conditional
//! deduction and what happens on storage failures.
//!
//! # From Flask-Limiter
//!
//! | Flask-Limiter | here |
//! |---|---|
//! | `default_limits` | [`HttpLimiterBuilder::default_limits`]: one budget per route |
//! | `application_limits` | [`HttpLimiterBuilder::application_limits`]: one budget for all routes |
//! | `@limit` (`override_defaults`) | [`HttpLimiterBuilder::route`] with [`Route::limits`] (and [`Route::with_defaults`]) |
//! | `@shared_limit` | [`Limits::shared`] |
//! | `@exempt`, default exemption | [`Route::exempt`], [`Route::exempt_from_defaults`] |
//! | `per_method`, `methods` | [`Limits::per_method`], [`Limits::methods`] |
//! | callable limits | [`Limits::dynamic`] (values parsed at start-up, not text per request) |
//! | `exempt_when`, `request_filter` | [`Limits::exempt_when`], [`HttpLimiterBuilder::request_filter`] |
//! | `cost` | [`Limits::cost`], [`Limits::cost_fn`] |
//! | `deduct_when` | [`Limits::deduct_when`] |
//! | `key_func`, `key_prefix` | [`KeySource`], [`HttpLimiterBuilder::key_prefix`] |
//! | `enabled` | [`HttpLimiterBuilder::enabled`], [`HttpLimiter::set_enabled`] |
//! | `headers_enabled`, `retry_after` | [`HeaderStyle`], [`RetryAfter`]; also the IETF fields |
//! | `on_breach`, error handler | [`HttpLimiterBuilder::on_breach`], [`RejectionBody`] |
//! | `swallow_errors`, `in_memory_fallback` | [`FailurePolicy`], with a per-request [deadline](HttpLimiterBuilder::deadline) |
//! | `meta_limits` | [`HttpLimiterBuilder::meta_limits`] |
//! | (envoy's shadow mode) | [`HttpLimiterBuilder::shadow`], [`Limits::shadow`] |
//! | 404s, `OPTIONS` and 405s are not limited | the same by default; [`HttpLimiterBuilder::charge_unmatched`], [`HttpLimiterBuilder::charge_options`], [`HttpLimiterBuilder::charge_method_not_allowed`] |
//!
//! Where it differs on purpose is in the [guide](guide#where-flask-limiter-differs).
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `tower` | no | [`tower::LimiterLayer`], [`tower::LimiterService`] |
//! | `axum` | no | `tower`, plus route patterns from `MatchedPath`, peers from `ConnectInfo`, and [`RateLimitInfo`] as an extractor |
//! | `reload` | no | [`ReloadableLimiter`]: swap the policy of a running service (and its tower layer) |
//! | `config` | no | `reload`, plus [`config::Config`]: the whole policy as serde data |
//! | `actix-web` | no | `actix::Limiter`, `actix::LimiterMiddleware` for actix-web 4 (whose MSRV, 1.89 for 4.18, is above this crate's), and [`RateLimitInfo`] as an extractor |
//! | `metrics` | no | `RecorderMetrics`: counters, a histogram and gauges on the `metrics` crate, for any exporter (Prometheus, OpenTelemetry…) |
//!
//! # Observability
//!
//! Every request's outcome goes to the [`Metrics`] hook, with its route pattern,
//! limit and storage as [`Labels`]; with the feature `metrics`, `RecorderMetrics`
//! reports them to the `metrics` crate. `tracing` events mark rejections (`INFO`),
//! storage failures and the failure policy's choices (`WARN`, `ERROR` when failing
//! closed), and the in-memory fallback switching on (`WARN`) and off (`INFO`), with
//! OpenTelemetry's field names where there is one (`http.route`,
//! `http.request.method`, `error.type`); no event above `DEBUG` carries a client's
//! key in plain text (see `limiter_core::observe`).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod builder;
mod deadline;
mod decide;
mod failure;
mod grpc;
mod headers;
mod info;
mod key;
mod limiter;
mod metrics;
mod plan;
mod policy;
#[cfg(feature = "metrics")]
mod recorder;
mod rejection;
#[cfg(feature = "reload")]
mod reload;
mod request;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;

pub mod guide;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub mod actix;

pub use crate::metrics::{CountingMetrics, Event, Labels, Metrics};
pub use admission::Admission;
pub use builder::{BuildError, HttpLimiterBuilder};
pub use failure::FailurePolicy;
pub use headers::{http_date, HeaderStyle, RetryAfter};
pub use info::RateLimitInfo;
pub use ipnet::IpNet;
pub use key::{client_ip_key, ipv6_network, KeySource, ProxyHeader, TrustedProxies};
pub use limiter::HttpLimiter;
pub use plan::{Plan, RouteRule};
pub use policy::{Limits, Route};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use recorder::RecorderMetrics;
pub use rejection::{Rejected, RejectionBody};
#[cfg(feature = "reload")]
#[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
pub use reload::ReloadableLimiter;
pub use request::{RequestInfo, ResponseInfo};
