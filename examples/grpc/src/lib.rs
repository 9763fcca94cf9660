//! A gRPC service behind the limiter: tonic's standard health service
//! (`grpc.health.v1.Health`, a unary `Check` and a streaming `Watch`), served by axum
//! over HTTP/2, with every call counted against the caller's `x-api-key` metadata.
//!
//! A call over the limit ends with the gRPC status `RESOURCE_EXHAUSTED`, the limit in
//! its message and a `google.rpc.RetryInfo` detail saying when to retry
//! ([`RejectionBody::Grpc`]); gRPC clients read it as any other status. Calls without
//! an `x-api-key` are not limited here (a key source that yields nothing skips its
//! limits); put a peer-address limit beside it to limit those too.

use std::sync::Arc;

use axum::Router;
use limiter::http::{BuildError, HttpLimiter, KeySource, RejectionBody};
use limiter::{MemoryStorage, RateLimiter};

/// The example's limiter: `2 per minute` per API key across the service's methods.
///
/// # Errors
///
/// A [`BuildError`] if a limit string were malformed (it is not).
pub fn limiter() -> Result<HttpLimiter, BuildError> {
    HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
        .key(KeySource::header("x-api-key"))
        .default_limits("2 per minute")
        .rejection_body(RejectionBody::Grpc)
        .build()
}

/// The health service as an axum router, each call limited by `limiter`. tonic routes
/// a service's methods under one pattern (`/grpc.health.v1.Health/{*rest}`), which
/// names the route in keys: its methods share the budget.
pub fn app(limiter: &HttpLimiter) -> Router {
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::service::Routes::new(health)
        .into_axum_router()
        .route_layer(limiter.layer())
}
