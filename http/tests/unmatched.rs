//! What costs a client nothing: requests that match no route, CORS preflights, and
//! methods a route does not have, on a real server on a loopback port.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow, Strategy};
use limiter_core::{ManualClock, RateLimiter};
use limiter_http::{HeaderStyle, HttpLimiter, HttpLimiterBuilder, Limits, Route};
use limiter_memory::MemoryStorage;
use support::*;

/// A builder over a fresh memory storage, which the test keeps to count its keys.
fn builder(strategy: impl Strategy) -> (HttpLimiterBuilder, Arc<MemoryStorage>) {
    let storage = Arc::new(MemoryStorage::new());
    let limiter = RateLimiter::builder(storage.clone())
        .strategy(strategy)
        .clock(ManualClock::new(1_700_000_000_000))
        .build();
    (HttpLimiter::builder(limiter), storage)
}

fn layered(limiter: &HttpLimiter, route_layer: bool) -> Router {
    if route_layer {
        routes().route_layer(limiter.layer())
    } else {
        routes().layer(limiter.layer())
    }
}

#[tokio::test]
async fn requests_that_match_no_route_are_not_charged_and_store_nothing() {
    for route_layer in [false, true] {
        let (builder, storage) = builder(FixedWindow);
        let limiter = builder
            .default_limits("1 per minute")
            .application_limits("5 per minute")
            .build()
            .unwrap();
        let addr = serve(layered(&limiter, route_layer)).await;
        let c = client();
        for i in 0..50 {
            let path = format!("/missing/{i}/{}", "x".repeat(1_000));
            assert_eq!(status(&c, addr, "GET", &path).await, 404, "{path}");
        }
        assert_eq!(
            storage.len(),
            0,
            "a 404 stored a key (route_layer {route_layer})"
        );
        // Neither the defaults nor the application limits were spent.
        assert_eq!(statuses(&c, addr, "/a", 2).await, [200, 429]);
    }
}

#[tokio::test]
async fn unmatched_requests_can_be_charged_to_one_budget_per_client() {
    let (builder, storage) = builder(FixedWindow);
    let limiter = builder
        .default_limits("2 per minute")
        .charge_unmatched(true)
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    let long = "y".repeat(10_000);
    assert_eq!(status(&c, addr, "GET", "/scan/1").await, 404);
    assert_eq!(status(&c, addr, "GET", &format!("/scan/{long}")).await, 404);
    // Any other path: the same budget, now spent.
    assert_eq!(status(&c, addr, "GET", "/scan/3").await, 429);
    assert_eq!(storage.len(), 1, "one key for all unmatched paths");
    // Routes keep their own budgets.
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn a_preflight_does_not_spend_the_budget_of_the_request_it_announces() {
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ];
    for route_layer in [false, true] {
        let (builder, _storage) = builder(FixedWindow);
        let limiter = builder
            .route("/b", Route::limits(Limits::new("1 per day")))
            .build()
            .unwrap();
        let addr = serve(layered(&limiter, route_layer)).await;
        let c = client();
        let answer = send(&c, addr, "OPTIONS", "/b", &preflight).await;
        assert_ne!(answer.status(), 429);
        assert_eq!(
            statuses(&c, addr, "/b", 2).await,
            [200, 429],
            "route_layer {route_layer}"
        );
    }

    // Charged when configured (the route has no OPTIONS handler: its 405 is charged
    // too).
    let (builder, _storage) = builder(FixedWindow);
    let limiter = builder
        .route("/b", Route::limits(Limits::new("1 per day")))
        .charge_options(true)
        .charge_method_not_allowed(true)
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    let answer = send(&c, addr, "OPTIONS", "/b", &preflight).await;
    assert_eq!(answer.status(), 405);
    assert_eq!(status(&c, addr, "GET", "/b").await, 429);
}

#[tokio::test]
async fn a_method_the_route_does_not_have_is_given_back_on_every_strategy() {
    let strategies: [Arc<dyn Strategy>; 4] = [
        Arc::new(FixedWindow),
        Arc::new(MovingWindow),
        Arc::new(SlidingWindow),
        Arc::new(Gcra),
    ];
    for strategy in strategies {
        let name = strategy.name();
        let storage = Arc::new(MemoryStorage::new());
        let limiter = RateLimiter::builder(storage)
            .strategy_arc(strategy)
            .clock(ManualClock::new(1_700_000_000_000))
            .build();
        let limiter = HttpLimiter::builder(limiter)
            .default_limits("2 per minute")
            .headers(HeaderStyle::XRateLimit)
            .build()
            .unwrap();
        let addr = serve(routes().layer(limiter.layer())).await;
        let c = client();
        // /b has GET only: axum answers 405, inside the limiter's layer.
        for _ in 0..3 {
            let answer = send(&c, addr, "DELETE", "/b", &[]).await;
            assert_eq!(answer.status(), 405, "{name}");
            assert!(
                answer.headers().get("x-ratelimit-remaining").is_none(),
                "{name}: a request that was not charged has no budget to report"
            );
        }
        assert_eq!(statuses(&c, addr, "/b", 3).await, [200, 200, 429], "{name}");
    }
}

#[tokio::test]
async fn a_method_the_route_does_not_have_is_charged_when_configured() {
    let (builder, _storage) = builder(FixedWindow);
    let limiter = builder
        .default_limits("1 per minute")
        .charge_method_not_allowed(true)
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "DELETE", "/b").await, 405);
    assert_eq!(status(&c, addr, "GET", "/b").await, 429);
}

#[tokio::test]
async fn a_route_of_the_table_is_matched_by_its_path_without_a_router() {
    // A plain service with no router: the route table's patterns match exact paths.
    let (builder, storage) = builder(FixedWindow);
    let limiter = builder
        .route("/b", Route::limits(Limits::new("1 per minute")))
        .build()
        .unwrap();
    let service = Router::new()
        .fallback(get(|| async { "any" }))
        .layer(limiter.layer());
    let addr = serve(service).await;
    let c = client();
    assert_eq!(statuses(&c, addr, "/b", 2).await, [200, 429]);
    // Other paths match nothing and are not charged.
    assert_eq!(statuses(&c, addr, "/elsewhere", 3).await, [200, 200, 200]);
    assert_eq!(storage.len(), 1);
}

#[tokio::test]
async fn invented_methods_share_one_per_method_budget() {
    let (builder, storage) = builder(FixedWindow);
    let limiter = builder
        .route(
            "/a",
            Route::limits(Limits::new("1 per minute").per_method()),
        )
        .charge_method_not_allowed(true)
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "FOO", "/a").await, 405);
    assert_eq!(status(&c, addr, "BAR", "/a").await, 429);
    assert_eq!(status(&c, addr, "BAZ", "/a").await, 429);
    assert_eq!(storage.len(), 1, "one key for every invented method");
    // The standard methods keep their own budgets.
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    assert_eq!(status(&c, addr, "POST", "/a").await, 200);
}
