//! Per-user limits keyed by API key, whose amount depends on the caller's plan, with
//! the IETF `RateLimit` and `RateLimit-Policy` headers.
//!
//! - `free` keys get `5 per minute`; `pro` keys get `100 per minute; 10 per second`;
//! - requests without a key are limited per address to `2 per minute`;
//! - unknown keys are refused by the handler (401) and cost nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use limiter::http::{BuildError, HeaderStyle, HttpLimiter, KeySource, Limits};
use limiter::{MemoryStorage, RateLimit, RateLimiter};

/// The API keys this demo knows, and their plans.
pub const KEYS: [(&str, &str); 2] = [("k-free-1", "free"), ("k-pro-1", "pro")];

/// The plans' limits, parsed once at start-up.
///
/// # Errors
///
/// A [`BuildError`] if a plan's limit string were malformed.
pub fn limiter() -> Result<HttpLimiter, BuildError> {
    let plan_limits = |text: &str| -> Result<Arc<[RateLimit]>, BuildError> {
        limiter::parse_many(text)
            .map(Into::into)
            .map_err(|source| BuildError::Limit {
                context: "plans".into(),
                source,
            })
    };
    let plans: HashMap<&str, Arc<[RateLimit]>> = HashMap::from([
        ("free", plan_limits("5 per minute")?),
        ("pro", plan_limits("100 per minute; 10 per second")?),
    ]);
    let keys: HashMap<&str, &str> = KEYS.into_iter().collect();
    let per_plan = Limits::dynamic(move |request| {
        let plan = keys.get(request.header("x-api-key")?)?;
        plans.get(plan).cloned()
    })
    .key(KeySource::header("x-api-key"));
    let anonymous = Limits::new("2 per minute").exempt_when(|r| r.header("x-api-key").is_some());

    HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
        .default_limits(per_plan)
        .default_limits(anonymous)
        .headers(HeaderStyle::Ietf)
        .build()
}

/// `GET /data`, behind `limiter`.
pub fn app(limiter: &HttpLimiter) -> Router {
    Router::new()
        .route("/data", get(data))
        .layer(limiter.layer())
}

async fn data(headers: HeaderMap) -> (StatusCode, &'static str) {
    match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        None => (StatusCode::OK, "public data\n"),
        Some(key) if KEYS.iter().any(|(k, _)| *k == key) => (StatusCode::OK, "your data\n"),
        Some(_) => (StatusCode::UNAUTHORIZED, "unknown API key\n"),
    }
}
