//! 200 concurrent requests on a `50 per minute` route let exactly 50 through.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use std::net::SocketAddr;

use limiter_http::{HttpLimiter, Limits, Route};
use support::*;

async fn burst(addr: SocketAddr, path: &'static str, n: usize) -> (usize, usize) {
    let c = client();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { status(&c, addr, "GET", path).await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_fifty_pass() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .route("/a", Route::limits(Limits::new("50 per minute")))
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    assert_eq!(burst(addr, "/a", 200).await, (50, 150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_two_key_groups_never_over_admit() {
    // Application and route limits have different keys: two groups per request.
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .application_limits("50 per minute")
        .route("/a", Route::limits(Limits::new("80 per minute")))
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let (ok, _) = burst(addr, "/a", 200).await;
    assert_eq!(ok, 50);
}
