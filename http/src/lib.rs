//! **limiter-http**: Flask-Limiter's features for Rust HTTP services, as a
//! framework-neutral policy engine ([`HttpLimiter`]) and a thin tower adapter
//! ([`tower::LimiterLayer`], feature `tower`) for axum, hyper and any tower stack.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # mod example {
//! use axum::{routing::get, Router};
//! use limiter_http::{HttpLimiter, Limits, Route};
//! use limiter_core::RateLimiter;
//! use limiter_memory::MemoryStorage;
//! use std::{net::SocketAddr, sync::Arc};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
//!     .default_limits("2 per minute; 1 per second")              // every route without its own
//!     .route("/slow", Route::limits(Limits::new("1 per day")))    // replaces the defaults
//!     .route("/ping", Route::exempt())                            // no limit at all
//!     .build()?;                                                  // bad limit strings fail here
//!
//! let app = Router::new()
//!     .route("/slow", get(|| async { "24" }))
//!     .route("/fast", get(|| async { "42" }))
//!     .route("/ping", get(|| async { "PONG" }))
//!     .layer(limiter.layer());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! // The client's address is the key: serve with connect info.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! # }
//! # fn main() {}
//! ```
//!
//! # Policies
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
//! | `on_breach`, error handler | [`HttpLimiterBuilder::on_breach`], [`Rejection`] |
//! | `swallow_errors`, `in_memory_fallback` | [`FailurePolicy`], with a per-request [deadline](HttpLimiterBuilder::deadline) |
//! | `meta_limits` | [`HttpLimiterBuilder::meta_limits`] |
//! | 404s, `OPTIONS` and 405s are not limited | the same by default; [`HttpLimiterBuilder::charge_unmatched`], [`HttpLimiterBuilder::charge_options`], [`HttpLimiterBuilder::charge_method_not_allowed`] |
//!
//! ## Where Flask-Limiter differs
//!
//! - **All or nothing.** Flask-Limiter hits a request's limits one by one and leaves the
//!   earlier ones consumed when a later one rejects. Here the limits of one request that
//!   share a key are decided by one [`RateLimiter::hit_all`](limiter_core::RateLimiter::hit_all);
//!   see [`HttpLimiter::decide`] for requests whose limits have different keys.
//! - **Keys.** The default key is the socket peer's address. `X-Forwarded-For` and
//!   `Forwarded` count only when configured, for a number of trusted hops or trusted
//!   networks ([`TrustedProxies`]). IPv6 clients are grouped by /64 by default.
//!   A forwarding value that does not parse strictly (RFC 7239 for `Forwarded`)
//!   counts as absent.
//! - **Which limit speaks.** A 429 names the limit with the longest wait; the
//!   rate-limit headers describe the limit with the fewest units left.
//! - **Hostile paths.** A request that matches no route is not charged, and its path
//!   never becomes part of a stored key: one budget per client when
//!   [charged](HttpLimiterBuilder::charge_unmatched). An `OPTIONS` request is not
//!   charged, and a `405` answer is given back, unless configured.
//! - **Malformed limits** fail [`HttpLimiterBuilder::build`], never a request.
//! - **`Retry-After`** is sent on 429 responses only, rounded up.
//!
//! ## Conditional deduction
//!
//! Limits with [`Limits::deduct_when`] are tested before the handler runs and
//! deducted after it answers, when the predicate holds for the response. Requests for
//! the same key that are in flight together in one process are counted together: the
//! `n`-th concurrent request is let in only if `n` times its cost is still available,
//! so one process never lets more requests through than the budget allows, even if all
//! of them end up deducted. Several processes sharing a storage can each admit up to
//! the remaining budget before any of them deducts: at most (processes − 1) × budget
//! over. A deduction that finds the budget already spent counts nothing (it is one
//! all-or-nothing `hit_all`).
//!
//! # Routes in axum
//!
//! A request is decided once, by one limiter layer, with every limit that applies
//! to it. Two ways give a route its own rule:
//!
//! - **In the route table**, keyed by the pattern axum matched (`MatchedPath`, so
//!   `/users/{id}` is one route whatever the id):
//!   [`HttpLimiterBuilder::route`], with one router-wide [`HttpLimiter::layer`]
//!   added by `Router::layer` (every request, 404s included) or `Router::route_layer`
//!   (matched routes only).
//! - **Where the route is declared**, with [`HttpLimiter::layer_for`] on the route's
//!   method router. axum's `Router::layer` wraps only the routes added before it, so
//!   routes with a layer of their own are added after the router-wide one, and routes
//!   added after it with no layer are exempt.
//!
//! Either way, a route with limits of its own does not also get the defaults unless
//! [`Route::with_defaults`] says so, and [`Route::exempt`] gets nothing. The router-wide
//! layer cannot see the layers inside a route before the route runs, which is why
//! route rules live in the table or in the route's only layer, and why a route must
//! not sit under two limiter layers (it would be counted twice).
//!
//! # Keys
//!
//! A limit counts against a [`Key`](limiter_core::Key) of these identifiers: the key
//! prefix if any, the client ([`KeySource`]), the scope (the route pattern for
//! default and route limits, `~app` for application limits, `~shared:NAME` for shared
//! ones, `~meta` for meta limits), and the method for
//! [`per_method`](Limits::per_method) limits. Limits of one request with the same key
//! and cost are decided together, atomically; see [`HttpLimiter::decide`] for the rest.
//!
//! # Speed
//!
//! `bash scripts/bench-http.sh` (installs `wrk` with apt-get where missing) serves a
//! hello-world axum app three ways on loopback, each on one tokio worker, and drives
//! them with `wrk -t1 -c32` in turn, alternating the order, for 7 rounds of 5 s
//! (`bash scripts/bench-http.sh 7 5`). Medians on the shared 2-core development
//! machine, with other builds running:
//!
//! | service | requests/s | vs bare | server CPU per request |
//! |---|---|---|---|
//! | axum, bare | 71,146 | 100.0 % | 6.36 µs |
//! | axum + this layer (memory storage, one limit) | 66,937 | 94.1 % | 6.94 µs |
//! | axum + `tower_governor` | 70,816 | 99.5 % | 6.43 µs |
//!
//! Throughput swung by more than ±50 % between rounds with other work on the machine;
//! the CPU time per request says more: the layer adds about 0.6 µs to bare axum's
//! 6.4 µs (about 9 %), `tower_governor` about 0.1 µs. Counted in instructions
//! (callgrind, user space, per request): bare 13.6 k, this layer 19.9 k,
//! `tower_governor` 15.2 k. About a quarter of the layer's share is the limiter's
//! decision itself (the stored key string, the storage's shard lock, the strategy);
//! the rest is building the client key, the boxed decision future (the limiter's
//! `hit` is an `async fn`, whose future a tower service cannot name), and the
//! policy's bookkeeping. `tower_governor` is lighter: a synchronous GCRA on one
//! integer per key, no storage abstraction, no all-or-nothing across limits.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `tower` | no | [`tower::LimiterLayer`], [`tower::LimiterService`] |
//! | `axum` | no | `tower`, plus route patterns from `MatchedPath` and peers from `ConnectInfo` |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod engine;
mod failure;
mod headers;
mod key;
mod metrics;
mod policy;
mod request;
mod response;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use builder::{BuildError, HttpLimiterBuilder};
pub use engine::{Admission, Checked, Decided, HttpLimiter, Limited, Plan, RouteRule, Settlement};
pub use failure::FailurePolicy;
pub use headers::{http_date, HeaderStyle, RetryAfter};
pub use key::{
    client_ip_key, ipv6_network, KeySource, IpNetwork, IpNetworkError, ProxyHeader, TrustedProxies,
};
pub use metrics::{CountingMetrics, Metrics};
pub use policy::{Limits, Route};
pub use request::{RequestInfo, ResponseInfo};
pub use response::Rejection;
