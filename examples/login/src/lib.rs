//! Login brute-force protection: `POST /login` allows 3 failed attempts per minute per
//! client address. Only failed logins (401) count; a blocked client gets 429 even with
//! the right password until the minute is over.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::routing::post;
use axum::Router;
use limiter::http::{BuildError, HeaderStyle, HttpLimiter, Limits, Route};
use limiter::{MemoryStorage, RateLimiter};

/// The demo's only password.
pub const PASSWORD: &str = "hunter2";

/// The limiter: 3 failed logins per minute per address.
///
/// # Errors
///
/// A [`BuildError`] if a limit string were malformed (it is not).
pub fn limiter() -> Result<HttpLimiter, BuildError> {
    let failed_logins = Limits::new("3 per minute")
        .methods([Method::POST])
        .deduct_when(|response| response.status() == StatusCode::UNAUTHORIZED);
    HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
        .route("/login", Route::limits(failed_logins))
        .headers(HeaderStyle::XRateLimit)
        .build()
}

/// `POST /login` with the password as the body, behind `limiter`.
pub fn app(limiter: &HttpLimiter) -> Router {
    Router::new()
        .route("/login", post(login))
        .layer(limiter.layer())
}

async fn login(body: String) -> (StatusCode, &'static str) {
    if body.trim() == PASSWORD {
        (StatusCode::OK, "welcome\n")
    } else {
        (StatusCode::UNAUTHORIZED, "wrong password\n")
    }
}
