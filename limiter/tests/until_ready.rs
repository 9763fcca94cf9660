//! Waiting for a permit on the in-memory storage, in real time: the rate holds, for
//! one waiter and for several limiters sharing a storage, waits end at `max_wait`, a
//! hit that never passes returns at once, and a cancelled wait consumes nothing.
#![cfg(all(feature = "memory", feature = "tokio"))]
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter::strategy::Gcra;
use limiter::{Error, Key, MemoryStorage, RateLimit, RateLimiter, Retry, TokioTimer};

fn limiter(storage: Arc<MemoryStorage>) -> RateLimiter {
    RateLimiter::builder(storage)
        .strategy(Gcra)
        .timer(TokioTimer)
        .build()
}

fn limit(text: &str) -> RateLimit {
    text.parse().unwrap()
}

#[tokio::test]
async fn one_waiter_keeps_to_the_rate() {
    let limiter = limiter(Arc::new(MemoryStorage::new()));
    let limit = limit("10 per second");
    let key = Key::from("crawler");
    let start = Instant::now();
    for i in 0..20 {
        let d = limiter
            .until_ready(&limit, &key, 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(d.is_allowed(), "call {i}: {d:?}");
    }
    // A burst of 10, then one every 100 ms: the 20th at about 1 s.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_limiters_on_one_storage_share_the_rate() {
    // Two "processes" (limiters) of four workers each, on one storage.
    let storage = Arc::new(MemoryStorage::new());
    let limit = limit("20 per second");
    let admitted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let run_for = Duration::from_millis(1_500);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let limiter = limiter(storage.clone());
        for _ in 0..4 {
            let (limiter, admitted) = (limiter.clone(), admitted.clone());
            tasks.push(tokio::spawn(async move {
                while start.elapsed() < run_for {
                    let d = limiter
                        .until_ready(&limit, &Key::from("fleet"), 1, Duration::from_millis(200))
                        .await
                        .unwrap();
                    if d.is_allowed() && start.elapsed() < run_for {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let admitted = admitted.load(Ordering::SeqCst);
    // GCRA: a burst of 20, then 20 a second: at most 20 + 1.5 × 20 (+1 for rounding).
    assert!(
        admitted <= 51,
        "{admitted} admitted in 1.5 s on 20 per second"
    );
    assert!(
        admitted >= 35,
        "only {admitted} admitted: the waiters starve"
    );
}

#[tokio::test]
async fn a_wait_longer_than_max_wait_returns_the_rejection_at_once() {
    let limiter = limiter(Arc::new(MemoryStorage::new()));
    let limit = limit("1 per minute");
    let key = Key::from("impatient");
    assert!(limiter.hit(&limit, &key, 1).await.unwrap().is_allowed());
    let start = Instant::now();
    let d = limiter
        .until_ready(&limit, &key, 1, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(!d.is_allowed());
    assert!(matches!(d.retry(), Some(Retry::After(_))), "{d:?}");
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    // A cost that can never pass returns at once too.
    let never = limiter
        .until_ready(&limit, &key, 2, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(never.retry(), Some(Retry::Never));
}

#[tokio::test]
async fn a_cancelled_wait_consumes_nothing() {
    let limiter = limiter(Arc::new(MemoryStorage::new()));
    let limit = limit("1 per second");
    let key = Key::from("cancelled");
    assert!(limiter.hit(&limit, &key, 1).await.unwrap().is_allowed());
    let waiting = limiter.until_ready(&limit, &key, 1, Duration::from_secs(5));
    assert!(tokio::time::timeout(Duration::from_millis(100), waiting)
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The unit came back, and the cancelled waiter took none of it.
    assert_eq!(limiter.stats(&limit, &key).await.unwrap().remaining, 1);
}

#[tokio::test]
async fn without_a_timer_a_wait_is_an_error() {
    let limiter = RateLimiter::new(Arc::new(MemoryStorage::new()));
    let limit = limit("1 per minute");
    let key = Key::from("no-timer");
    // No wait needed: no timer needed.
    let d = limiter
        .until_ready(&limit, &key, 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(d.is_allowed());
    let err = limiter
        .until_ready(&limit, &key, 1, Duration::from_secs(120))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoTimer), "{err}");
}
