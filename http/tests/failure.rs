//! Storage failures: fail closed, fail open, the in-memory fallback and its recovery,
//! and the per-request deadline, with a storage that really fails and recovers.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter_core::RateLimiter;
use limiter_http::{CountingMetrics, FailurePolicy, HttpLimiter};
use support::*;

fn limiter(switch: &Switch, policy: FailurePolicy, metrics: Arc<CountingMetrics>) -> HttpLimiter {
    HttpLimiter::builder(RateLimiter::new(Arc::new(switch.clone())))
        .default_limits("2 per minute")
        .on_storage_failure(policy)
        .deadline(Some(Duration::from_millis(200)))
        .metrics(metrics)
        .build()
        .unwrap()
}

#[tokio::test]
async fn fail_closed_answers_503_and_recovers() {
    let switch = Switch::default();
    let metrics = Arc::new(CountingMetrics::default());
    let limiter = limiter(&switch, FailurePolicy::FailClosed, metrics.clone());
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    switch.down();
    let response = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("rate limiter"));
    assert_eq!(metrics.storage_error_count(), 1);
    switch.up();
    assert_eq!(statuses(&c, addr, "/a", 2).await, [200, 429]);
    assert_eq!(metrics.allowed_count(), 2);
    assert_eq!(metrics.limited_count(), 1);
}

#[tokio::test]
async fn fail_open_lets_requests_through() {
    let switch = Switch::default();
    let metrics = Arc::new(CountingMetrics::default());
    let limiter = limiter(&switch, FailurePolicy::FailOpen, metrics.clone());
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    switch.down();
    assert_eq!(statuses(&c, addr, "/a", 4).await, [200; 4]);
    assert_eq!(metrics.storage_error_count(), 4);
    switch.up();
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn a_hanging_storage_meets_the_deadline() {
    let switch = Switch::default();
    let metrics = Arc::new(CountingMetrics::default());
    let limiter = limiter(&switch, FailurePolicy::FailClosed, metrics.clone());
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    switch.hang();
    let started = Instant::now();
    assert_eq!(status(&c, addr, "GET", "/a").await, 503);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(metrics.storage_error_count(), 1);
}

#[tokio::test]
async fn fallback_keeps_limiting_in_memory_and_returns_to_the_primary() {
    let switch = Switch::default();
    let metrics = Arc::new(CountingMetrics::default());
    let policy = FailurePolicy::Fallback {
        first_probe: Duration::from_millis(300),
        max_probe: Duration::from_secs(2),
    };
    let limiter = limiter(&switch, policy, metrics.clone());
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();

    assert_eq!(status(&c, addr, "GET", "/b").await, 200);
    switch.down();
    // The same limits, decided in memory (which starts empty).
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
    assert!(metrics.fallback_active());
    assert_eq!(
        metrics.storage_error_count(),
        1,
        "one failure switches to the fallback"
    );

    // Still down at the first probe: stays on the fallback, probes again later.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status(&c, addr, "GET", "/a").await, 429);
    assert!(metrics.fallback_active());

    switch.up();
    // The next probe is due 600 ms after the failed one.
    tokio::time::sleep(Duration::from_millis(650)).await;
    // Back on the primary, where /b has one hit and /a none.
    assert_eq!(statuses(&c, addr, "/b", 2).await, [200, 429]);
    assert!(!metrics.fallback_active());
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn fallback_after_a_deadline_miss() {
    let switch = Switch::default();
    let metrics = Arc::new(CountingMetrics::default());
    let limiter = limiter(&switch, FailurePolicy::fallback(), metrics.clone());
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    switch.hang();
    // The first request waits for the deadline, later ones go straight to memory.
    let started = Instant::now();
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
    assert!(started.elapsed() < Duration::from_millis(1_000));
    assert!(metrics.fallback_active());
}
