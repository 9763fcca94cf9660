//! An axum service behind the rate limiter, with the limiter's metrics served to
//! Prometheus at `/metrics` beside it: the application that
//! `cargo run -p example-prometheus` serves on `127.0.0.1:5001`.
//!
//! - `/hello` is limited to `3 per minute` per client, and answers `hello`;
//! - `/metrics` is not limited, and answers the Prometheus text format, rendered by
//!   `metrics-exporter-prometheus` (no HTTP server of its own: its default features
//!   are off) after refreshing the gauges of state.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use limiter::http::{BuildError, HttpLimiter, Limits, RecorderMetrics, Route};
use limiter::{MemoryStorage, RateLimiter};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The buckets of the decision-time histogram, in seconds: from 50 µs (in memory)
/// to 1 s (the default per-request deadline).
pub const DECISION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Installs the Prometheus recorder as the process's `metrics` recorder, with
/// [`DECISION_BUCKETS`] for the decision-time histogram (so that it renders as a
/// Prometheus histogram, not a summary); the handle renders the scrape.
///
/// # Errors
///
/// When a recorder is installed already.
pub fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(RecorderMetrics::DECISION_DURATION.to_owned()),
            DECISION_BUCKETS,
        )?
        .install_recorder()
}

/// The application: `/hello` behind the limiter (on the in-memory storage, named
/// `memory` in the labels), and `/metrics`, rendered by `handle`.
///
/// # Errors
///
/// A [`BuildError`] if a limit string were malformed (it is not).
pub fn app(handle: PrometheusHandle) -> Result<Router, BuildError> {
    let storage = Arc::new(MemoryStorage::new());
    let metrics = RecorderMetrics::new();
    let limiter = HttpLimiter::builder(RateLimiter::new(storage.clone()))
        .route("/hello", Route::limits(Limits::new("3 per minute")))
        .storage_name("memory")
        .metrics(metrics.clone())
        .build()?;
    let limited = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(limiter.layer());
    let scrape = get(move || {
        // State without events of its own is read at scrape time.
        metrics.observe(&limiter);
        metrics.observe_memory(&storage, "memory");
        handle.run_upkeep();
        std::future::ready(handle.render())
    });
    Ok(limited.route("/metrics", scrape))
}
