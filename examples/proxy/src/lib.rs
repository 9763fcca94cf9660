//! A custom key behind a trusted reverse proxy.
//!
//! The service sits behind a proxy on this machine (loopback addresses are the only
//! trusted proxies), which appends the client's address to `X-Forwarded-For`. The
//! key is the tenant named by `x-tenant` together with the client's address as the
//! proxy reports it: each tenant's users are limited separately. Clients that send
//! their own `X-Forwarded-For` only add entries to the left, which are never read.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use limiter::http::{BuildError, HttpLimiter, IpNet, KeySource, ProxyHeader, TrustedProxies};
use limiter::{MemoryStorage, RateLimiter};

/// The limiter: `3 per minute` per tenant and client address.
///
/// # Errors
///
/// A [`BuildError`] if a limit string were malformed (it is not).
pub fn limiter() -> Result<HttpLimiter, BuildError> {
    let proxies = ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|net| net.parse::<IpNet>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BuildError::Invalid {
            context: "trusted proxies".into(),
            message: e.to_string(),
        })?;
    let client = KeySource::forwarded(
        ProxyHeader::XForwardedFor,
        TrustedProxies::Networks(proxies),
    );
    let tenant_and_client = KeySource::custom(move |request| {
        let tenant = request.header("x-tenant").unwrap_or("public");
        let address = client.client_id(request)?;
        Some(format!("{tenant}@{address}"))
    });
    HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
        .default_limits("3 per minute")
        .key(tenant_and_client)
        .build()
}

/// `GET /report`, behind `limiter`.
pub fn app(limiter: &HttpLimiter) -> Router {
    Router::new()
        .route("/report", get(|| async { "report\n" }))
        .layer(limiter.layer())
}
