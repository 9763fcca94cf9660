//! What the limiter does for network storages: the circuit breaker, and the local
//! rejection cache, with test storages that count calls and can be switched off.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter_core::doc_support::TinyStorage;
use limiter_core::storage::{
    async_trait, Abilities, BreakerConfig, Expiry, Version, Versioned, OPEN_OPERATION,
};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{
    Error, Key, ManualClock, RateLimit, RateLimiter, Storage, StorageError, StorageErrorKind,
    StorageKey, Strategy, Timestamp,
};

const UP: u8 = 0;
const DOWN: u8 = 1;
const HANG: u8 = 2;

/// A network-like storage (keys expire in real time) over [`TinyStorage`] that
/// counts its calls and can be switched down (fails at once with `Unavailable`) or to
/// hanging (times out after 50 ms).
#[derive(Debug, Default)]
struct Switchable {
    inner: TinyStorage,
    mode: AtomicU8,
    gets: AtomicU32,
    sets: AtomicU32,
    checks: AtomicU32,
}

impl Switchable {
    async fn gate(&self, operation: &'static str) -> Result<(), StorageError> {
        match self.mode.load(Ordering::SeqCst) {
            UP => Ok(()),
            DOWN => Err(StorageError::new(
                StorageErrorKind::Unavailable,
                operation,
                "connection refused",
            )),
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(StorageError::new(
                    StorageErrorKind::Timeout,
                    operation,
                    "timed out",
                ))
            }
        }
    }

    fn calls(&self) -> u32 {
        self.gets.load(Ordering::SeqCst) + self.sets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Storage for Switchable {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.gate("get")
            .await
            .map_err(|e| e.with_key(key.as_str()))?;
        self.inner.get(key, now).await
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        self.sets.fetch_add(1, Ordering::SeqCst);
        self.gate("compare_and_set").await?;
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.gate("delete").await?;
        self.inner.delete(key).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.gate("check").await?;
        self.inner.check().await
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities::new().expiry(Expiry::RealTime {
            late: Duration::from_secs(1),
        })
    }
}

fn limit(s: &str) -> RateLimit {
    s.parse().unwrap()
}

fn breaker_limiter(storage: &Arc<Switchable>, interval: Duration) -> RateLimiter {
    RateLimiter::builder(storage.clone())
        .circuit_breaker(Some(
            BreakerConfig::default()
                .failures(3)
                .probe_interval(interval),
        ))
        .rejection_cache(None)
        .build()
}

fn storage_kind(result: Result<limiter_core::Decision, Error>) -> (StorageErrorKind, &'static str) {
    match result {
        Err(Error::Storage(e)) => (e.kind(), e.operation()),
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_fails_fast_probes_alone_and_closes() {
    let storage = Arc::new(Switchable::default());
    let interval = Duration::from_millis(200);
    let limiter = breaker_limiter(&storage, interval);
    let (l, key) = (limit("1000 per minute"), Key::from("k"));
    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());

    storage.mode.store(HANG, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            storage_kind(limiter.hit(&l, &key, 1).await).0,
            StorageErrorKind::Timeout
        );
    }
    // Open: every call fails at once, typed, naming its key, and none reaches the storage.
    let before = storage.calls();
    let started = Instant::now();
    for _ in 0..1_000 {
        match limiter.hit(&l, &key, 1).await {
            Err(Error::Storage(e)) => {
                assert_eq!(e.kind(), StorageErrorKind::Unavailable);
                assert_eq!(e.operation(), OPEN_OPERATION);
                assert!(e.key().is_some_and(|k| k.contains('k')));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(storage.calls(), before);

    // Many callers at the probe time: exactly one probe, the others refused at once.
    tokio::time::sleep(interval + Duration::from_millis(20)).await;
    let checks = storage.checks.load(Ordering::SeqCst);
    let calls = (0..50).map(|_| limiter.hit(&l, &key, 1));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(storage.checks.load(Ordering::SeqCst), checks + 1);
    assert_eq!(storage.calls(), before);

    // Back up: the first call after the next probe time closes it and goes through.
    storage.mode.store(UP, Ordering::SeqCst);
    tokio::time::sleep(interval + Duration::from_millis(20)).await;
    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
    assert!(limiter.storage().abilities().get_native().is_none());
    for _ in 0..10 {
        assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_waits_for_a_probe_and_the_first_to_find_it_passed_goes_through() {
    let storage = Arc::new(Switchable::default());
    let interval = Duration::from_millis(100);
    let limiter = breaker_limiter(&storage, interval);
    let (l, key) = (limit("1000 per minute"), Key::from("k"));
    storage.mode.store(HANG, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            storage_kind(limiter.hit(&l, &key, 1).await).0,
            StorageErrorKind::Timeout
        );
    }
    // The probe is due; its check hangs for 50 ms. The call that starts it, and every
    // call while it runs, fail at once.
    tokio::time::sleep(interval + Duration::from_millis(10)).await;
    let checks = storage.checks.load(Ordering::SeqCst);
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let call = Instant::now();
        assert_eq!(
            storage_kind(limiter.hit(&l, &key, 1).await),
            (StorageErrorKind::Unavailable, OPEN_OPERATION)
        );
        slowest = slowest.max(call.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(slowest < Duration::from_millis(40), "{slowest:?}");
    assert_eq!(storage.checks.load(Ordering::SeqCst), checks + 1);

    // Back up while that probe still hangs: a call every 5 ms, none waiting, and one
    // goes through within two probe intervals.
    storage.mode.store(UP, Ordering::SeqCst);
    let resumed = Instant::now();
    loop {
        let call = Instant::now();
        let result = limiter.hit(&l, &key, 1).await;
        slowest = slowest.max(call.elapsed());
        if result.is_ok() {
            break;
        }
        assert!(resumed.elapsed() <= 2 * interval, "{:?}", resumed.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(slowest < Duration::from_millis(40), "{slowest:?}");
    // The hung probe failed; one more passed: two checks in all, and closed.
    assert_eq!(storage.checks.load(Ordering::SeqCst), checks + 2);
    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
}

#[tokio::test]
async fn the_breaker_counts_only_consecutive_transport_failures() {
    let storage = Arc::new(Switchable::default());
    let limiter = breaker_limiter(&storage, Duration::from_secs(60));
    let (l, key) = (limit("1000 per minute"), Key::from("k"));
    for _ in 0..10 {
        storage.mode.store(DOWN, Ordering::SeqCst);
        for _ in 0..2 {
            let (kind, operation) = storage_kind(limiter.hit(&l, &key, 1).await);
            assert_eq!((kind, operation), (StorageErrorKind::Unavailable, "get"));
        }
        storage.mode.store(UP, Ordering::SeqCst);
        assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
    }
    // A third failure in a row opens it.
    storage.mode.store(DOWN, Ordering::SeqCst);
    for _ in 0..3 {
        let _ = limiter.hit(&l, &key, 1).await;
    }
    storage.mode.store(UP, Ordering::SeqCst);
    assert_eq!(
        storage_kind(limiter.hit(&l, &key, 1).await).1,
        OPEN_OPERATION
    );
    // A health check through the limiter's storage closes it when it passes.
    limiter.storage().check().await.unwrap();
    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
}

#[tokio::test]
async fn network_storages_get_breaker_cache_and_coalescing_by_default() {
    let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
        .circuit_breaker(None)
        .rejection_cache(None)
        .coalesce(None)
        .build();
    let text = format!("{limiter:?}");
    assert!(
        text.contains("rejection_cache: None, coalesce: None"),
        "{text}"
    );
    assert!(!text.contains("CircuitBreaker"), "{text}");
    let storage = Arc::new(Switchable::default());
    let network = RateLimiter::new(storage);
    let text = format!("{network:?}");
    assert!(text.contains("CircuitBreaker"), "{text}");
    assert!(text.contains("coalesce: Some(64)"), "{text}");
}

fn strategies() -> [Arc<dyn Strategy>; 4] {
    [
        Arc::new(FixedWindow),
        Arc::new(MovingWindow),
        Arc::new(SlidingWindow),
        Arc::new(Gcra),
    ]
}

fn cached_and_plain(
    strategy: &Arc<dyn Strategy>,
    clock: &ManualClock,
) -> (Arc<Switchable>, RateLimiter, Arc<Switchable>, RateLimiter) {
    let counted = Arc::new(Switchable::default());
    let cached = RateLimiter::builder(counted.clone())
        .strategy_arc(strategy.clone())
        .clock(clock.clone())
        .build();
    let plain_storage = Arc::new(Switchable::default());
    let plain = RateLimiter::builder(plain_storage.clone())
        .strategy_arc(strategy.clone())
        .clock(clock.clone())
        .rejection_cache(None)
        .build();
    (counted, cached, plain_storage, plain)
}

#[tokio::test]
async fn twenty_thousand_hits_on_a_hot_key_make_eleven_storage_decisions() {
    for strategy in strategies() {
        let clock = ManualClock::new(1_000_000);
        let (counted, cached, plain_storage, plain) = cached_and_plain(&strategy, &clock);
        let (l, key) = (limit("10 per minute"), Key::from("hot"));
        for _ in 0..20_000 {
            let a = cached.hit(&l, &key, 1).await.unwrap();
            let b = plain.hit(&l, &key, 1).await.unwrap();
            assert_eq!(a, b, "{}", strategy.name());
        }
        // 10 admitted hits (a read and a write each) and one rejection (a read).
        let reads = counted.gets.load(Ordering::SeqCst);
        assert!(reads <= 11, "{}: {reads} reads", strategy.name());
        assert_eq!(counted.sets.load(Ordering::SeqCst), 10);
        assert_eq!(plain_storage.gets.load(Ordering::SeqCst), 20_000);
    }
}

#[tokio::test]
async fn cached_rejections_match_the_storage_over_time_and_are_forgotten_on_refund_and_clear() {
    for strategy in strategies() {
        let name = strategy.name();
        let clock = ManualClock::new(5_000_000);
        let (_, cached, _, plain) = cached_and_plain(&strategy, &clock);
        let (l, key) = (limit("3 per 10 seconds"), Key::from("k"));
        let mut allowed_at = None;
        // Every 250 ms for a minute: hits of cost 1 and 2, tests of cost 1 to 3.
        for step in 0..240u64 {
            clock.set(5_000_000 + step * 250);
            for (cost, test) in [(1, false), (2, false), (1, true), (3, true), (2, true)] {
                let (a, b) = if test {
                    (
                        cached.test(&l, &key, cost).await,
                        plain.test(&l, &key, cost).await,
                    )
                } else {
                    (
                        cached.hit(&l, &key, cost).await,
                        plain.hit(&l, &key, cost).await,
                    )
                };
                let (a, b) = (a.unwrap(), b.unwrap());
                assert_eq!(a, b, "{name} step {step} cost {cost}");
                if !test && a.is_allowed() {
                    allowed_at = Some(a.decided_at());
                }
            }
        }
        // A refund through the limiter forgets the cached rejection.
        assert!(!cached.hit(&l, &key, 1).await.unwrap().is_allowed());
        let at = allowed_at.unwrap();
        cached.refund(&[l], &key, 1, at).await.unwrap();
        plain.refund(&[l], &key, 1, at).await.unwrap();
        let (a, b) = (
            cached.hit(&l, &key, 1).await.unwrap(),
            plain.hit(&l, &key, 1).await.unwrap(),
        );
        assert_eq!(a, b, "{name}");
        // So does a clear.
        for _ in 0..4 {
            let _ = cached.hit(&l, &key, 1).await.unwrap();
        }
        assert!(!cached.hit(&l, &key, 1).await.unwrap().is_allowed());
        cached.clear(&l, &key).await.unwrap();
        assert!(
            cached.hit(&l, &key, 1).await.unwrap().is_allowed(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn hit_all_asks_the_storage_and_fills_the_cache() {
    let clock = ManualClock::new(0);
    let storage = Arc::new(Switchable::default());
    let limiter = RateLimiter::builder(storage.clone()).clock(clock).build();
    let limits = [limit("1 per second"), limit("10 per minute")];
    let key = Key::from("k");
    assert!(limiter
        .hit_all(&limits, &key, 1)
        .await
        .unwrap()
        .is_allowed());
    let first = limiter.hit_all(&limits, &key, 1).await.unwrap();
    assert!(!first.is_allowed());
    let calls = storage.calls();
    assert_eq!(limiter.hit_all(&limits, &key, 1).await.unwrap(), first);
    assert!(storage.calls() > calls, "hit_all asks the storage");
    let calls = storage.calls();
    let single = limiter.hit(&limits[0], &key, 1).await.unwrap();
    assert!(!single.is_allowed());
    assert_eq!(single.retry_after(), first.retry_after());
    assert_eq!(storage.calls(), calls, "the rejecting limit is cached");
    assert_eq!(limiter.stats(&limits[1], &key).await.unwrap().remaining, 9);
}

/// What the rejection cache costs in correctness, in numbers: after another process
/// clears a key, this process keeps rejecting it from its cache until the retry time
/// the storage gave it, never longer; what it answers then is the storage's answer.
/// (`cargo test -p limiter-core --test hotkeys -- --nocapture` prints the figures.)
#[tokio::test]
async fn a_clear_elsewhere_costs_at_most_the_cached_retry_time() {
    let bounds = [
        ("fixed-window", 60_000),
        ("moving-window", 60_000),
        ("sliding-window-counter", 60_001),
        ("gcra", 6_000),
    ];
    for strategy in strategies() {
        let name = strategy.name();
        let t0 = 7_000_000 + 15_000;
        let clock = ManualClock::new(t0);
        let storage = Arc::new(Switchable::default());
        let here = RateLimiter::builder(storage.clone())
            .strategy_arc(strategy.clone())
            .clock(clock.clone())
            .build();
        // Another process on the same store: no cache of its own.
        let elsewhere = RateLimiter::builder(storage.clone())
            .strategy_arc(strategy.clone())
            .clock(clock.clone())
            .rejection_cache(None)
            .build();
        let (l, key) = (limit("10 per minute"), Key::from("client"));
        for _ in 0..10 {
            assert!(here.hit(&l, &key, 1).await.unwrap().is_allowed(), "{name}");
        }
        let rejected = here.hit(&l, &key, 1).await.unwrap();
        let wait = rejected.retry_after().expect("a retry time");
        let retry_at = t0 + u64::try_from(wait.as_millis()).expect("a short wait");
        elsewhere.clear(&l, &key).await.unwrap();
        // Every 100 ms from the clear: how long this process still rejects what the
        // store would admit.
        let mut early_until = None;
        for step in 1..=700u64 {
            let now = t0 + step * 100;
            clock.set(now);
            let (cached, store) = (
                here.test(&l, &key, 1).await.unwrap(),
                elsewhere.test(&l, &key, 1).await.unwrap(),
            );
            assert!(
                store.is_allowed(),
                "{name}: the store admits after the clear"
            );
            if cached.is_allowed() {
                assert_eq!(
                    cached, store,
                    "{name}: past the retry time, the store's answer"
                );
                assert!(now >= retry_at, "{name}: admitted before its retry time");
            } else {
                assert!(now < retry_at, "{name}: rejected past its retry time");
                early_until = Some(now);
            }
        }
        let early = early_until.map_or(0, |t| t - t0);
        let bound = bounds.iter().find(|(n, _)| *n == name).map(|b| b.1);
        println!(
            "{name}: rejected from the cache for {early} ms after a clear elsewhere \
             (retry time {} ms after the rejection)",
            retry_at - t0
        );
        assert!(
            early < retry_at - t0 && Some(retry_at - t0) <= bound,
            "{name}"
        );
        // Hits past the retry time reach the store again.
        clock.set(retry_at);
        assert!(here.hit(&l, &key, 1).await.unwrap().is_allowed(), "{name}");
    }
}
