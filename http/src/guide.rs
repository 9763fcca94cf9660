//! The user guide: how requests are matched, keyed, decided and answered, and where
//! this crate differs from Flask-Limiter. This module holds documentation only.
//!
//! # A request's life
//!
//! 1. [`HttpLimiter::plan`] reads the request, synchronously: which limits apply,
//!    their keys and costs. The [`Plan`] owns its data.
//! 2. [`HttpLimiter::decide`] runs the plan against the storage, under the
//!    [failure policy](crate::FailurePolicy) and the per-request
//!    [deadline](crate::HttpLimiterBuilder::deadline): `Ok(`[`Admission`]`)` or
//!    `Err(`[`Rejected`]`)`.
//! 3. A [`Rejected`] request is answered with [`HttpLimiter::rejection_response`]
//!    (429, or 503 when failing closed) and never reaches its handler.
//! 4. After the handler, [`Admission::settle`] deducts
//!    [conditional](crate::Limits::deduct_when) limits and gives back the cost of a
//!    `405`, and [`Admission::write_headers`] gives the response its rate-limit
//!    headers; [`Admission::finish`] does both.
//!
//! [`HttpLimiter::check`] does steps 1 to 3 in one call; the tower layer does all
//! four. In another framework:
//!
//! ```
//! use http::{HeaderMap, Response, StatusCode};
//! use limiter_core::RateLimiter;
//! use limiter_http::{HeaderStyle, HttpLimiter, RequestInfo, ResponseInfo};
//! use limiter_memory::MemoryStorage;
//! use std::sync::Arc;
//!
//! async fn serve(limiter: &HttpLimiter, request: RequestInfo<'_>) -> Response<String> {
//!     let admission = match limiter.check(&request).await {
//!         Ok(admission) => admission,
//!         Err(rejection) => return rejection,
//!     };
//!     let mut response = Response::new("hello".to_owned()); // the handler
//!     // `settle` reads the response before it returns: no borrow is held across `await`.
//!     let settle = admission.settle(&ResponseInfo::new(response.status(), response.headers()));
//!     settle.await.write_headers(response.headers_mut());
//!     response
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
//!         .default_limits("1 per minute")
//!         .headers(HeaderStyle::XRateLimit)
//!         .build()?;
//!     let headers = HeaderMap::new();
//!     let request = RequestInfo::new("GET", "/hello", &headers)
//!         .with_route("/hello")
//!         .with_peer("192.0.2.1:4711".parse()?);
//!     let first = serve(&limiter, request).await;
//!     assert_eq!(first.status(), StatusCode::OK);
//!     assert_eq!(first.headers()["x-ratelimit-remaining"], "0");
//!     assert_eq!(serve(&limiter, request).await.status(), StatusCode::TOO_MANY_REQUESTS);
//!     Ok(())
//! }
//! ```
//!
//! # Routes in axum
//!
//! A request is decided once, by one limiter layer, with every limit that applies
//! to it. Two ways give a route its own rule:
//!
//! - **In the route table**, keyed by the pattern axum matched (`MatchedPath`, so
//!   `/users/{id}` is one route whatever the id):
//!   [`HttpLimiterBuilder::route`](crate::HttpLimiterBuilder::route), with one
//!   router-wide `HttpLimiter::layer` added by `Router::layer` (every request, 404s
//!   included) or `Router::route_layer` (matched routes only).
//! - **Where the route is declared**, with `HttpLimiter::layer_for` on the route's
//!   method router. axum's `Router::layer` wraps only the routes added before it, so
//!   routes with a layer of their own are added after the router-wide one, and routes
//!   added after it with no layer are exempt.
//!
//! Either way, a route with limits of its own does not also get the defaults unless
//! [`Route::with_defaults`](crate::Route::with_defaults) says so, and
//! [`Route::exempt`](crate::Route::exempt) gets nothing. The router-wide layer cannot
//! see the layers inside a route before the route runs, which is why route rules live
//! in the table or in the route's only layer, and why a route must not sit under two
//! limiter layers (it would be counted twice).
//!
//! # Routes in actix-web
//!
//! The same two ways: the route table, keyed by actix's matched pattern (scope
//! prefixes included, so `web::scope("/api")` with `/users/{id}` is the route
//! `/api/users/{id}`), with one `HttpLimiter::actix_middleware` on the `App`; or
//! `HttpLimiter::actix_middleware_for` on the `Resource` or `Scope` itself, with no
//! app-wide middleware around it. Requests that match no resource are unmatched. The
//! module docs of `limiter_http::actix` (feature `actix-web`) list what the adapter
//! reads from actix.
//!
//! # Shadow mode
//!
//! To try limits on real traffic before enforcing them, put one set in shadow mode
//! ([`Limits::shadow`](crate::Limits::shadow)) or the whole limiter
//! ([`HttpLimiterBuilder::shadow`](crate::HttpLimiterBuilder::shadow)). Requests are
//! decided and counted as when enforcing, and those that would have been rejected go
//! through, reported by [`Metrics::shadow_rejected`](crate::Metrics::shadow_rejected)
//! and a `tracing` warning. The handler can tell from
//! [`RateLimitInfo::shadow_rejected`](crate::RateLimitInfo::shadow_rejected).
//!
//! # Keys
//!
//! A limit counts against a [`Key`](limiter_core::Key) of these identifiers: the key
//! prefix if any, the client (from a [`KeySource`](crate::KeySource)), the scope (the
//! route pattern for default and route limits, `~app` for application limits,
//! `~shared:NAME` for shared ones, `~meta` for meta limits, `~unmatched` for requests
//! that match no route when they are charged), and the method for
//! [`per_method`](crate::Limits::per_method) limits (`~other` for every non-standard
//! method). Limits of one request with the same key, cost and condition are decided
//! together, atomically; see [`HttpLimiter::decide`] for the rest.
//!
//! # Where Flask-Limiter differs
//!
//! - **All or nothing.** Flask-Limiter hits a request's limits one by one and leaves
//!   the earlier ones consumed when a later one rejects. Here the limits of one
//!   request that share a key are decided by one
//!   [`RateLimiter::hit_all`](limiter_core::RateLimiter::hit_all); see
//!   [`HttpLimiter::decide`] for requests whose limits have different keys.
//! - **Keys.** The default key is the socket peer's address. `X-Forwarded-For` and
//!   `Forwarded` count only when configured, for a number of trusted hops or trusted
//!   networks ([`TrustedProxies`](crate::TrustedProxies)). IPv6 clients are grouped
//!   by /64 by default. A forwarding value that does not parse strictly (RFC 7239
//!   for `Forwarded`) counts as absent.
//! - **Which limit speaks.** A 429 names the limit with the longest wait; the
//!   rate-limit headers describe the limit with the fewest units left.
//! - **Hostile paths.** A request that matches no route is not charged, and its path
//!   never becomes part of a stored key: one budget per client when
//!   [charged](crate::HttpLimiterBuilder::charge_unmatched). An `OPTIONS` request is
//!   not charged, and a `405` answer is given back, unless configured.
//! - **Malformed limits** fail [`HttpLimiterBuilder::build`](crate::HttpLimiterBuilder::build),
//!   never a request.
//! - **`Retry-After`** is sent on 429 responses only, rounded up.
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
//! [`HttpLimiter::plan`]: crate::HttpLimiter::plan
//! [`HttpLimiter::decide`]: crate::HttpLimiter::decide
//! [`HttpLimiter::check`]: crate::HttpLimiter::check
//! [`HttpLimiter::rejection_response`]: crate::HttpLimiter::rejection_response
//! [`Plan`]: crate::Plan
//! [`Admission`]: crate::Admission
//! [`Admission::finish`]: crate::Admission::finish
//! [`Admission::settle`]: crate::Admission::settle
//! [`Admission::write_headers`]: crate::Admission::write_headers
//! [`Rejected`]: crate::Rejected
