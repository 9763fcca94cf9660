//! The byte bound of `MemoryStorage`: `bytes` never exceeds `max_bytes`, under
//! concurrency too; nothing is evicted below it; long keys are digested, so that a key
//! costs the same whatever its length past [`DIGEST_ABOVE`]; and a moving-window log
//! that cannot grow refuses hits rather than admit them uncounted.

use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{ClearAll, Storage, StorageKey};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Strategy, Timestamp};
use limiter_memory::{
    MemoryOptions, MemoryStorage, DEFAULT_MAX_BYTES, DIGEST_ABOVE, MIN_MAX_BYTES,
};

const NOW: Timestamp = Timestamp::from_millis(1_000_000);

fn limit(text: &str) -> RateLimit {
    text.parse().expect("a valid limit")
}

/// A limiter on a manual clock that never moves, so that nothing expires.
fn limiter(storage: &Arc<MemoryStorage>, strategy: Arc<dyn Strategy>) -> RateLimiter {
    RateLimiter::builder(storage.clone())
        .strategy_arc(strategy)
        .clock(ManualClock::new(1_000_000))
        .build()
}

fn bounded(max_bytes: usize, shards: usize) -> Arc<MemoryStorage> {
    Arc::new(MemoryStorage::with_options(
        MemoryOptions::new().max_bytes(max_bytes).shards(shards),
    ))
}

/// An identifier of `len` bytes, distinct for each `i`.
fn long_id(i: usize, len: usize) -> String {
    let mut id = format!("{i}-");
    while id.len() < len {
        id.push('x');
    }
    id
}

#[test]
fn defaults_bound_bytes_and_unbounded_lifts_both_bounds() {
    let storage = MemoryStorage::new();
    assert_eq!(storage.max_bytes(), Some(DEFAULT_MAX_BYTES));
    assert_eq!(storage.max_keys(), None);
    assert_eq!(
        MemoryStorage::default().max_bytes(),
        Some(DEFAULT_MAX_BYTES)
    );
    assert_eq!(storage.bytes(), 0);

    let open = MemoryStorage::with_options(MemoryOptions::new().unbounded());
    assert_eq!((open.max_keys(), open.max_bytes()), (None, None));
    let lifted = MemoryStorage::with_options(MemoryOptions::new().max_bytes(usize::MAX));
    assert_eq!(lifted.max_bytes(), None);
    let both = MemoryStorage::with_options(MemoryOptions::new().max_keys(10).max_bytes(1));
    assert_eq!(
        (both.max_keys(), both.max_bytes()),
        (Some(10), Some(MIN_MAX_BYTES))
    );
}

#[test]
fn unbounded_storages_count_bytes_too() {
    let storage = Arc::new(MemoryStorage::with_options(
        MemoryOptions::new().unbounded(),
    ));
    let limiter = limiter(&storage, Arc::new(FixedWindow));
    let l = limit("1 per hour");
    futures::executor::block_on(async {
        for i in 0..100 {
            let key = Key::from(format!("client-{i}"));
            assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
        }
        assert_eq!(storage.len(), 100);
        let held = storage.bytes();
        assert!(held >= 100 * 80, "{held}");
        storage.clear_all().await.unwrap();
        assert_eq!(storage.bytes(), 0);
    });
}

#[test]
fn concurrent_long_keys_never_exceed_the_byte_bound() {
    for (max_bytes, shards) in [
        (MIN_MAX_BYTES, 1),
        (64 << 10, 4),
        (256 << 10, 64),
        (1 << 20, 7),
    ] {
        let storage = bounded(max_bytes, shards);
        let l = limit("1 per hour");
        let strategies: [Arc<dyn Strategy>; 4] = [
            Arc::new(FixedWindow),
            Arc::new(MovingWindow),
            Arc::new(SlidingWindow),
            Arc::new(Gcra),
        ];
        std::thread::scope(|scope| {
            for (t, strategy) in strategies.iter().enumerate() {
                let limiter = limiter(&storage, strategy.clone());
                let (storage, l) = (&storage, &l);
                scope.spawn(move || {
                    futures::executor::block_on(async {
                        for i in 0..2_000 {
                            // From 10 bytes to 4 KiB: short keys, long ones, digested.
                            let key = Key::from(long_id(t * 10_000 + i, 10 + (i * 37) % 4_096));
                            let decision = limiter.hit(l, &key, 1).await.unwrap();
                            assert!(decision.is_allowed(), "{max_bytes} {shards}: {i}");
                            let held = storage.bytes();
                            assert!(held <= max_bytes, "{held} > {max_bytes} ({shards} shards)");
                        }
                    });
                });
            }
        });
        let held = storage.bytes();
        assert!(held <= max_bytes, "{held} > {max_bytes}");
        // Full, give or take what the last evictions and compactions freed.
        assert!(
            held > max_bytes / 2,
            "{held} of {max_bytes} ({shards} shards)"
        );
    }
}

#[test]
fn nothing_is_evicted_below_the_byte_bound() {
    for shards in [1, 7, 64] {
        for strategy in [
            Arc::new(FixedWindow) as Arc<dyn Strategy>,
            Arc::new(MovingWindow),
        ] {
            let max_bytes = 200_000;
            let storage = bounded(max_bytes, shards);
            let limiter = limiter(&storage, strategy.clone());
            let l = limit("1 per hour");
            futures::executor::block_on(async {
                let mut keys = Vec::new();
                // Fill to 90 % of the bound with keys of 40 to 600 bytes.
                while storage.bytes() < max_bytes * 9 / 10 {
                    let key = Key::from(long_id(keys.len(), 40 + keys.len() * 13 % 560));
                    let before = storage.len();
                    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
                    assert_eq!(storage.len(), before + 1, "{shards} shards: evicted");
                    keys.push(key);
                }
                // Every count survived: a second hit is refused for each key.
                for (i, key) in keys.iter().enumerate() {
                    let decision = limiter.hit(&l, key, 1).await.unwrap();
                    assert!(
                        !decision.is_allowed(),
                        "{shards} shards: key {i} was evicted"
                    );
                }
                assert_eq!(storage.len(), keys.len());
                // Past the bound, keys are evicted to make room, and the bound holds.
                for i in 0..keys.len() {
                    let key = Key::from(long_id(1_000_000 + i, 300));
                    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
                    assert!(storage.bytes() <= max_bytes);
                }
                assert!(
                    storage.len() < 2 * keys.len(),
                    "{shards} shards: nothing evicted"
                );
            });
        }
    }
}

#[test]
fn concurrent_long_keys_below_the_byte_bound_evict_nothing() {
    // 4 threads × 150 keys of 300 to 2,000 bytes (digested to about 110) fill about
    // 110 KB of a 256 KiB bound, spread over 64 shards: every key stays.
    let storage = bounded(256 << 10, 64);
    let l = limit("1 per hour");
    std::thread::scope(|scope| {
        for t in 0..4 {
            let limiter = limiter(&storage, Arc::new(SlidingWindow));
            let l = &l;
            scope.spawn(move || {
                futures::executor::block_on(async {
                    for i in 0..150 {
                        let key = Key::from(long_id(t * 1_000 + i, 300 + i * 11));
                        assert!(limiter.hit(l, &key, 1).await.unwrap().is_allowed());
                    }
                });
            });
        }
    });
    assert_eq!(storage.len(), 600);
    assert!(storage.bytes() <= 256 << 10);
    let limiter = limiter(&storage, Arc::new(SlidingWindow));
    futures::executor::block_on(async {
        for t in 0..4 {
            for i in 0..150 {
                let key = Key::from(long_id(t * 1_000 + i, 300 + i * 11));
                let decision = limiter.hit(&l, &key, 1).await.unwrap();
                assert!(!decision.is_allowed(), "key {t}-{i} was evicted");
            }
        }
    });
}

#[tokio::test]
async fn long_keys_are_digested_and_cost_the_same_whatever_their_length() {
    let storage = Arc::new(MemoryStorage::new());
    let limiter = limiter(&storage, Arc::new(FixedWindow));
    let l = limit("2 per hour");
    let cost_of = |id: String| {
        let (storage, limiter, l) = (storage.clone(), limiter.clone(), l);
        async move {
            let before = storage.bytes();
            let key = Key::from(id);
            assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
            storage.bytes() - before
        }
    };
    let short = cost_of("203.0.113.9".to_owned()).await;
    let just_plain = cost_of(long_id(1, DIGEST_ABOVE - 40)).await;
    let three_hundred = cost_of(long_id(2, 300)).await;
    let huge = cost_of(long_id(3, 64 << 10)).await;
    // A key's cost: its entry and slot, and its stored bytes.
    assert!(short < 200, "{short}");
    assert!(just_plain > DIGEST_ABOVE - 40, "{just_plain}");
    assert_eq!(
        huge, three_hundred,
        "a 64 KiB key costs what a 300-byte key does"
    );
    assert!(huge < 80 + 2 * DIGEST_ABOVE + 1, "{huge}");

    // Transparent: the same long key is one counter, and keys that differ only past
    // the kept prefix are two.
    let a = Key::from(long_id(7, 64 << 10));
    let mut other = long_id(7, 64 << 10);
    other.pop();
    other.push('y');
    let b = Key::from(other);
    assert!(limiter.hit(&l, &a, 1).await.unwrap().is_allowed());
    assert!(limiter.hit(&l, &a, 1).await.unwrap().is_allowed());
    assert!(!limiter.hit(&l, &a, 1).await.unwrap().is_allowed());
    assert!(limiter.hit(&l, &b, 2).await.unwrap().is_allowed());
    assert!(!limiter.hit(&l, &b, 1).await.unwrap().is_allowed());

    // Multi-limit hits on a long key stay atomic and counted.
    let limits = [limit("3 per hour"), limit("5 per day")];
    let c = Key::from(long_id(8, 10_000));
    for _ in 0..3 {
        assert!(limiter.hit_all(&limits, &c, 1).await.unwrap().is_allowed());
    }
    assert!(!limiter.hit_all(&limits, &c, 1).await.unwrap().is_allowed());

    // Raw operations on keys with a long group, a long limit part, or both.
    let long = "g".repeat(DIGEST_ABOVE + 1);
    let ttl = Duration::from_secs(60);
    for (group, name) in [(&*long, "n"), ("g", &*long), (&*long, &*long)] {
        let key = StorageKey::new(group, name);
        assert!(storage.get(&key, NOW).await.unwrap().is_none());
        assert!(storage
            .compare_and_set(&key, None, b"v", ttl, NOW)
            .await
            .unwrap());
        let found = storage.get(&key, NOW).await.unwrap().expect("stored");
        assert_eq!(found.value, b"v");
        let bigger = vec![7u8; 1_000];
        let written = storage.compare_and_set(&key, Some(found.version), &bigger, ttl, NOW);
        assert!(written.await.unwrap());
        assert_eq!(
            storage.get(&key, NOW).await.unwrap().expect("stored").value,
            bigger
        );
        storage.delete(&key).await.unwrap();
        assert!(storage.get(&key, NOW).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_log_that_cannot_grow_refuses_hits_instead_of_admitting_them_uncounted() {
    // One moving-window key alone in a storage too small for its log: it grows until
    // the bound, then every further hit is refused, never admitted uncounted.
    let storage = bounded(MIN_MAX_BYTES, 1);
    let l = limit("100000 per hour");
    let key = Key::from("client");
    let mut admitted = 0u64;
    let mut refused = 0u64;
    for t in 0..1_000u64 {
        // One hit per millisecond: one more record each.
        let limiter = limiter_for(&storage, Arc::new(MovingWindow), 1_000_000 + t);
        let decision = limiter.hit(&l, &key, 1).await.unwrap();
        if decision.is_allowed() {
            admitted += 1;
            assert_eq!(refused, 0, "admitted after a refusal at {t}");
        } else {
            refused += 1;
            assert!(decision.retry_after().is_some());
        }
        assert!(storage.bytes() <= MIN_MAX_BYTES, "{}", storage.bytes());
    }
    assert!(
        refused > 0 && admitted > 100,
        "{admitted} admitted, {refused} refused"
    );
    // What was admitted is counted: the log holds every admitted hit.
    let stats = limiter_for(&storage, Arc::new(MovingWindow), 1_001_000);
    let stats = stats.stats(&l, &key).await.unwrap();
    assert_eq!(stats.remaining, 100_000 - admitted);

    // With other keys around, the log's growth evicts them instead.
    let storage = bounded(MIN_MAX_BYTES, 1);
    let fixed = limiter_for(&storage, Arc::new(FixedWindow), 1_000_000);
    let mut others = 0;
    while storage.bytes() < MIN_MAX_BYTES - 500 {
        let other = Key::from(format!("other-{others}"));
        assert!(fixed.hit(&l, &other, 1).await.unwrap().is_allowed());
        others += 1;
    }
    let full = storage.len();
    for t in 0..100u64 {
        let log = limiter_for(&storage, Arc::new(MovingWindow), 1_000_000 + t);
        assert!(log.hit(&l, &key, 1).await.unwrap().is_allowed(), "{t}");
        assert!(storage.bytes() <= MIN_MAX_BYTES);
    }
    assert!(storage.len() < full + 1, "other keys made room");
}

fn limiter_for(storage: &Arc<MemoryStorage>, strategy: Arc<dyn Strategy>, ms: u64) -> RateLimiter {
    RateLimiter::builder(storage.clone())
        .strategy_arc(strategy)
        .clock(ManualClock::new(ms))
        .build()
}
