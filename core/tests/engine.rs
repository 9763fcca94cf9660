//! The engine's own paths: the compare-and-set loop's bounds, corrupt state, and the
//! rollback of a multi-limit hit that loses a race on the generic path. (What every
//! storage must do is in the `limiter-conformance` suite.)

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::doc_support::TinyStorage;
use limiter_core::storage::{async_trait, Version, Versioned};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{
    BuiltIn, Clock, Error, Key, ManualClock, RateLimit, RateLimiter, Retry, Storage, StorageError,
    StorageErrorKind, StorageKey, Strategy, Timestamp,
};

/// Wraps [`TinyStorage`]; optionally loses every compare-and-set, and can run a hook
/// on a chosen `get`.
#[derive(Debug, Default)]
struct Rigged {
    inner: TinyStorage,
    always_lose: bool,
    cas_calls: AtomicU32,
    /// Key whose second read first fills it up, as a concurrent client would.
    race_key: std::sync::Mutex<Option<(StorageKey, Vec<u8>)>>,
    /// Key whose writes fail with `Unavailable`.
    failing_key: std::sync::Mutex<Option<StorageKey>>,
    race_reads: AtomicU32,
    raced: AtomicBool,
}

#[async_trait]
impl Storage for Rigged {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        let race = self.race_key.lock().unwrap().clone();
        if let Some((race_key, full_state)) = race {
            if race_key == *key && self.race_reads.fetch_add(1, Ordering::SeqCst) == 1 {
                let current = self.inner.get(key, now).await?.map(|v| v.version);
                let ttl = Duration::from_secs(60);
                assert!(
                    self.inner
                        .compare_and_set(key, current, &full_state, ttl, now)
                        .await?
                );
                self.raced.store(true, Ordering::SeqCst);
            }
        }
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
        self.cas_calls.fetch_add(1, Ordering::SeqCst);
        if self.always_lose {
            return Ok(false);
        }
        if self.failing_key.lock().unwrap().as_ref() == Some(key) {
            return Err(StorageError::new(
                StorageErrorKind::Unavailable,
                "compare_and_set",
                "down",
            ));
        }
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.inner.check().await
    }
}

fn limit(s: &str) -> RateLimit {
    s.parse().unwrap()
}

#[tokio::test]
async fn endless_contention_is_a_bounded_error() {
    let storage = Arc::new(Rigged {
        always_lose: true,
        ..Rigged::default()
    });
    let limiter = RateLimiter::builder(storage.clone())
        .max_attempts(5)
        .build();
    let err = limiter
        .hit(&limit("1/second"), &Key::from("a"), 1)
        .await
        .unwrap_err();
    match err {
        Error::Storage(e) => {
            assert_eq!(e.kind(), StorageErrorKind::Contention);
            assert!(e.to_string().contains("5 attempts"), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(storage.cas_calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn corrupt_state_is_reported_with_its_key() {
    let storage = Arc::new(TinyStorage::default());
    let limiter = RateLimiter::builder(storage.clone()).strategy(Gcra).build();
    let (l, k) = (limit("1/second"), Key::from("a"));
    let stored = limiter.storage_key(&l, &k);
    assert!(storage
        .compare_and_set(
            &stored,
            None,
            b"garbage",
            Duration::from_secs(1),
            Timestamp::from_millis(0)
        )
        .await
        .unwrap());
    match limiter.hit(&l, &k, 1).await.unwrap_err() {
        Error::Storage(e) => {
            assert_eq!(e.kind(), StorageErrorKind::Corrupt);
            assert_eq!(e.key(), Some(stored.as_str()));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn zero_cost_and_empty_limits_are_errors() {
    let limiter = RateLimiter::new(Arc::new(TinyStorage::default()));
    let (l, k) = (limit("1/second"), Key::from("a"));
    assert!(matches!(limiter.hit(&l, &k, 0).await, Err(Error::ZeroCost)));
    assert!(matches!(
        limiter.test(&l, &k, 0).await,
        Err(Error::ZeroCost)
    ));
    assert!(matches!(
        limiter.hit_all(&[], &k, 1).await,
        Err(Error::NoLimits)
    ));
    assert!(matches!(
        limiter.test_all(&[], &k, 1).await,
        Err(Error::NoLimits)
    ));
}

/// Peek passes for both limits, the first is consumed, then a concurrent client fills
/// the second before this call's hit on it: the first must be given back.
#[tokio::test]
async fn generic_hit_all_gives_back_what_it_took_when_it_loses_a_race() {
    for strategy in every_strategy() {
        let storage = Arc::new(Rigged::default());
        let clock = ManualClock::new(1_700_000_000_000);
        let limiter = RateLimiter::builder(storage.clone())
            .strategy_arc(strategy.clone())
            .clock(clock.clone())
            .build();
        let (minute, second) = (limit("5 per minute"), limit("1 per second"));
        let key = Key::from("client");

        // The state "1 per second" has after one hit now, built with the strategy itself.
        let mut full = Vec::new();
        strategy
            .apply(
                &second,
                &mut full,
                limiter_core::strategy::Op::Hit { cost: 1 },
                clock.now(),
            )
            .unwrap();
        *storage.race_key.lock().unwrap() = Some((limiter.storage_key(&second, &key), full));

        let decision = limiter.hit_all(&[minute, second], &key, 1).await.unwrap();
        let name = strategy.name();
        assert!(storage.raced.load(Ordering::SeqCst), "{name}: the race ran");
        assert!(!decision.is_allowed(), "{name}");
        assert_eq!(decision.limit(), &second, "{name}");
        assert_eq!(
            limiter.stats(&minute, &key).await.unwrap().remaining,
            5,
            "{name}: the minute limit was given back"
        );
        assert_eq!(strategy.builtin().map(BuiltIn::name), Some(name));
    }
}

fn every_strategy() -> [Arc<dyn Strategy>; 4] {
    [
        Arc::new(FixedWindow),
        Arc::new(MovingWindow),
        Arc::new(SlidingWindow),
        Arc::new(Gcra),
    ]
}

/// A later limit's write fails: the earlier limits, already consumed, are given back
/// and the error is reported.
#[tokio::test]
async fn generic_hit_all_gives_back_what_it_took_when_a_write_fails() {
    for strategy in every_strategy() {
        let storage = Arc::new(Rigged::default());
        let limiter = RateLimiter::builder(storage.clone())
            .strategy_arc(strategy.clone())
            .clock(ManualClock::new(1_700_000_000_000))
            .build();
        let (minute, second) = (limit("5 per minute"), limit("1 per second"));
        let key = Key::from("client");
        *storage.failing_key.lock().unwrap() = Some(limiter.storage_key(&second, &key));

        let name = strategy.name();
        let err = limiter.hit_all(&[minute, second], &key, 1).await;
        assert!(
            matches!(&err, Err(Error::Storage(e)) if e.kind() == StorageErrorKind::Unavailable),
            "{name}: {err:?}"
        );
        assert_eq!(
            limiter.stats(&minute, &key).await.unwrap().remaining,
            5,
            "{name}: the minute limit was given back"
        );
    }
}

/// A store that yields to the runtime once per call, as every network client does,
/// and counts its compare-and-set calls.
#[derive(Debug, Default)]
struct Yielding {
    inner: TinyStorage,
    cas_calls: AtomicU32,
}

#[async_trait]
impl Storage for Yielding {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        tokio::task::yield_now().await;
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
        self.cas_calls.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// 2,000 concurrent hits on one hot key of `1000 per minute` over the generic path of a
/// store that yields once per call: every call ends in a decision (none gives up with
/// `Contention`), exactly 1,000 pass, and the attempts per decision stay low.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_one_hot_key_ends_in_decisions_not_contention_errors() {
    for strategy in every_strategy() {
        let storage = Arc::new(Yielding::default());
        let limiter = RateLimiter::builder(storage.clone())
            .strategy_arc(strategy.clone())
            .clock(ManualClock::new(1_700_000_000_000))
            .build();
        let l = limit("1000 per minute");
        let tasks: Vec<_> = (0..2_000)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.hit(&l, &Key::from("hot"), 1).await })
            })
            .collect();
        let (mut admitted, mut errors) = (0, Vec::new());
        for task in tasks {
            match task.await.unwrap() {
                Ok(decision) => admitted += u32::from(decision.is_allowed()),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let name = strategy.name();
        let writes = storage.cas_calls.load(Ordering::Relaxed);
        println!(
            "{name}: {admitted} admitted, {} errors, {:.2} compare-and-set calls per admitted hit",
            errors.len(),
            f64::from(writes) / f64::from(admitted.max(1))
        );
        assert!(
            errors.is_empty(),
            "{name}: {} errors: {:?}",
            errors.len(),
            &errors[..errors.len().min(3)]
        );
        assert_eq!(admitted, 1_000, "{name}");
    }
}

/// A prepared key counts on the same stored key as a plain hit; a limiter with another
/// namespace or strategy rebuilds it under its own prefix.
#[tokio::test]
async fn prepared_keys_count_with_plain_hits_and_follow_the_limiter() {
    let storage = Arc::new(TinyStorage::default());
    let clock = ManualClock::new(1_000);
    let fixed = RateLimiter::builder(storage.clone())
        .clock(clock.clone())
        .build();
    let gcra = RateLimiter::builder(storage.clone())
        .strategy(Gcra)
        .namespace("other/space")
        .clock(clock)
        .build();
    let limit: RateLimit = "3 per minute".parse().unwrap();
    let key = Key::new(["a/b", "{c}"]);
    let prepared = fixed.prepare(&limit, &key);
    assert_eq!(prepared.storage_key(), &fixed.storage_key(&limit, &key));
    assert_eq!(prepared.limit(), &limit);

    assert!(fixed.hit_prepared(&prepared, 2).await.unwrap().is_allowed());
    assert_eq!(fixed.stats(&limit, &key).await.unwrap().remaining, 1);
    assert!(!fixed.hit_prepared(&prepared, 2).await.unwrap().is_allowed());
    assert!(fixed
        .test_prepared(&prepared, 1)
        .await
        .unwrap()
        .is_allowed());
    assert!(matches!(
        fixed.hit_prepared(&prepared, 0).await,
        Err(Error::ZeroCost)
    ));

    // Another limiter: its own stored key, untouched by the hits above.
    assert!(gcra.hit_prepared(&prepared, 3).await.unwrap().is_allowed());
    assert_eq!(gcra.stats(&limit, &key).await.unwrap().remaining, 0);
    assert_eq!(fixed.stats(&limit, &key).await.unwrap().remaining, 1);
}

/// Within one window of `Timestamp::MAX`, a rejected hit's retry instant lies past the
/// end of time, where time stands still: it can never pass, and the decision says so
/// both ways (`retry_after` is `None` and `can_ever_pass` is false). Earlier, the same
/// rejection can pass later and says that both ways too.
#[tokio::test]
async fn a_rejection_that_could_only_pass_after_the_end_of_time_never_passes() {
    let l = limit("1/second");
    for strategy in every_strategy() {
        let name = strategy.name();
        for (now, passes_later) in [
            (1_700_000_000_000, true),
            (Timestamp::MAX.as_millis() - 500, false),
            (Timestamp::MAX.as_millis(), false),
        ] {
            let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
                .strategy_arc(strategy.clone())
                .clock(ManualClock::new(now))
                .build();
            let k = Key::from("end");
            assert!(limiter.hit(&l, &k, 1).await.unwrap().is_allowed());
            for d in [
                limiter.hit(&l, &k, 1).await.unwrap(),
                limiter.test(&l, &k, 1).await.unwrap(),
                limiter
                    .hit_all(&[l, limit("5/second")], &k, 1)
                    .await
                    .unwrap(),
            ] {
                assert!(!d.is_allowed(), "{name} at {now}: {d:?}");
                assert_eq!(d.retry_after().is_some(), passes_later, "{name} at {now}");
                assert_eq!(
                    d.retry() == Some(Retry::Never),
                    !passes_later,
                    "{name} at {now}: {d:?}"
                );
            }
            let over = limiter.hit(&l, &k, 2).await.unwrap();
            assert_eq!(over.retry(), Some(Retry::Never), "{name}");
            assert_eq!(over.retry_after(), None, "{name}");
        }
    }
}
