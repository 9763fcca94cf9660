//! Flask-Limiter's quickstart, as an axum service: the application that
//! `cargo run -p example-quickstart` serves on `127.0.0.1:5000`.
//!
//! - every route without limits of its own gets `2 per minute` and `1 per second`;
//! - `/slow` is limited to `1 per day` instead, and answers `24`;
//! - `/fast` is under the defaults, and answers `42`;
//! - `/ping` is exempt, and answers `PONG`.
//!
//! Clients are told apart by their socket address; `X-Forwarded-For` changes nothing.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use limiter::http::{BuildError, HttpLimiter, Limits, Route};
use limiter::{MemoryStorage, RateLimiter};

/// The rate limiter of the quickstart, on the in-memory storage.
///
/// # Errors
///
/// A [`BuildError`] if a limit string were malformed (they are not).
pub fn limiter() -> Result<HttpLimiter, BuildError> {
    HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
        .default_limits("2 per minute; 1 per second")
        .route("/slow", Route::limits(Limits::new("1 per day")))
        .route("/ping", Route::exempt())
        .build()
}

/// The quickstart's routes behind `limiter`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so that clients are keyed by
/// their address.
pub fn app(limiter: &HttpLimiter) -> Router {
    Router::new()
        .route("/slow", get(|| async { "24" }))
        .route("/fast", get(|| async { "42" }))
        .route("/ping", get(|| async { "PONG" }))
        .layer(limiter.layer())
}
