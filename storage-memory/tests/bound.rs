//! The key bound of `MemoryStorage`: no live key is evicted below 90 % of
//! `max_keys`, whatever the bound and the shard count; `len` never exceeds it; and
//! eviction does happen once the bound is reached, concurrently too.

use std::sync::Arc;

use limiter_core::storage::{Batch, BatchItem, ClearAll, NativeStrategies, Storage, StorageKey};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Strategy, Timestamp};
use limiter_memory::{MemoryOptions, MemoryStorage};

/// A raw key for the tests of the storage's own methods.
fn key(name: &str) -> StorageKey {
    StorageKey::new("tests", name)
}

/// The time of every raw call: the limiters' clock's start.
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

/// The bounds and shard counts (`None`: the default) the tests go through.
fn configurations() -> Vec<(usize, Option<usize>)> {
    let mut all = Vec::new();
    for max in [1, 2, 3, 10, 100, 1_000, 100_000] {
        for shards in [None, Some(1), Some(7), Some(64), Some(1_024)] {
            all.push((max, shards));
        }
    }
    all
}

fn storage(max: usize, shards: Option<usize>) -> Arc<MemoryStorage> {
    let options = MemoryOptions::new().max_keys(max);
    let options = match shards {
        Some(n) => options.shards(n),
        None => options,
    };
    Arc::new(MemoryStorage::with_options(options))
}

/// The number of keys that fill 90 % of `max` (at least one).
fn ninety_percent(max: usize) -> usize {
    (max * 9 / 10).max(1)
}

#[tokio::test]
async fn small_bound_keeps_every_key_of_the_issue_repro() {
    // 25 keys × 3 hits of `1 per hour` with room for 100 keys: exactly one hit per
    // key is admitted, with the default sharding as with an explicit one.
    for shards in [None, Some(64)] {
        let storage = storage(100, shards);
        let limiter = limiter(&storage, Arc::new(FixedWindow));
        let l = limit("1 per hour");
        let mut admitted = 0;
        for _ in 0..3 {
            for i in 0..25 {
                let key = Key::from(format!("client-{i}"));
                admitted += usize::from(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
            }
        }
        assert_eq!(admitted, 25, "{shards:?} shards");
        assert_eq!(storage.len(), 25);
    }
}

#[tokio::test]
async fn no_live_key_is_evicted_below_ninety_percent_of_the_bound() {
    let strategies: Vec<Arc<dyn Strategy>> = vec![
        Arc::new(FixedWindow),
        Arc::new(MovingWindow),
        Arc::new(SlidingWindow),
        Arc::new(Gcra),
    ];
    let l = limit("1 per hour");
    for (max, shards) in configurations() {
        // The largest bound only with one strategy, to keep the test quick.
        let count = if max > 1_000 { 1 } else { strategies.len() };
        for strategy in strategies.iter().take(count) {
            let name = strategy.name();
            let storage = storage(max, shards);
            let limiter = limiter(&storage, strategy.clone());
            let keys: Vec<Key> = (0..ninety_percent(max))
                .map(|i| Key::from(format!("k{i}")))
                .collect();
            for (i, key) in keys.iter().enumerate() {
                assert!(
                    limiter.hit(&l, key, 1).await.unwrap().is_allowed(),
                    "{name} max {max} shards {shards:?}: key {i} was refused"
                );
                assert!(storage.len() <= max);
                assert_eq!(storage.len(), i + 1, "{name} max {max} shards {shards:?}");
            }
            // Every count survived: a second hit is refused for each key.
            for (i, key) in keys.iter().enumerate() {
                assert!(
                    !limiter.hit(&l, key, 1).await.unwrap().is_allowed(),
                    "{name} max {max} shards {shards:?}: key {i} was evicted"
                );
            }
            assert_eq!(storage.len(), keys.len());
        }
    }
}

#[tokio::test]
async fn eviction_starts_at_the_bound_and_keeps_len_within_it() {
    let l = limit("1 per hour");
    for (max, shards) in configurations() {
        if max > 1_000 {
            continue;
        }
        let storage = storage(max, shards);
        let limiter = limiter(&storage, Arc::new(FixedWindow));
        for i in 0..max {
            assert!(limiter
                .hit(&l, &Key::from(format!("k{i}")), 1)
                .await
                .unwrap()
                .is_allowed());
        }
        assert_eq!(storage.len(), max, "max {max} shards {shards:?}");
        // Full: every new key evicts one, and the new key is counted.
        for i in max..3 * max + 10 {
            let key = Key::from(format!("k{i}"));
            assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
            assert_eq!(storage.len(), max, "max {max} shards {shards:?}");
            assert!(
                !limiter.hit(&l, &key, 1).await.unwrap().is_allowed(),
                "max {max} shards {shards:?}: the newest key was evicted"
            );
        }
        // Some of the first keys are gone.
        let mut survivors = 0;
        for i in 0..max {
            let key = limiter.storage_key(&l, &Key::from(format!("k{i}")));
            survivors += usize::from(storage.get(&key, NOW).await.unwrap().is_some());
        }
        assert!(
            survivors < max,
            "max {max} shards {shards:?}: nothing evicted"
        );
    }
}

#[tokio::test]
async fn deleted_and_expired_keys_free_room_below_the_bound() {
    let storage = storage(10, Some(4));
    let ttl = std::time::Duration::from_secs(60);
    for i in 0..10 {
        assert!(storage
            .compare_and_set(&key(&format!("k{i}")), None, b"x", ttl, NOW)
            .await
            .unwrap());
    }
    for i in 0..5 {
        storage.delete(&key(&format!("k{i}"))).await.unwrap();
    }
    assert_eq!(storage.len(), 5);
    // Five new keys fit without evicting any of the five left.
    for i in 10..15 {
        assert!(storage
            .compare_and_set(&key(&format!("k{i}")), None, b"x", ttl, NOW)
            .await
            .unwrap());
    }
    for i in 5..15 {
        assert!(
            storage
                .get(&key(&format!("k{i}")), NOW)
                .await
                .unwrap()
                .is_some(),
            "k{i}"
        );
    }
    assert_eq!(storage.len(), 10);
    storage.clear_all().await.unwrap();
    assert_eq!(storage.len(), 0);
    assert!(storage.is_empty());
    for i in 0..9 {
        assert!(storage
            .compare_and_set(&key(&format!("n{i}")), None, b"x", ttl, NOW)
            .await
            .unwrap());
    }
    for i in 0..9 {
        assert!(
            storage
                .get(&key(&format!("n{i}")), NOW)
                .await
                .unwrap()
                .is_some(),
            "n{i}"
        );
    }
}

#[test]
fn concurrent_inserts_never_exceed_the_bound() {
    for (max, shards) in [(10, 4), (100, 64), (1_000, 7), (2, 2)] {
        let storage = storage(max, Some(shards));
        let limiter = limiter(&storage, Arc::new(FixedWindow));
        let l = limit("1 per hour");
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (storage, limiter, l) = (&storage, &limiter, &l);
                scope.spawn(move || {
                    futures::executor::block_on(async {
                        for i in 0..3 * max + 50 {
                            let key = Key::from(format!("{t}-{i}"));
                            let _ = limiter.hit(l, &key, 1).await.unwrap();
                            assert!(storage.len() <= max, "max {max} shards {shards}");
                        }
                    });
                });
            }
        });
        assert_eq!(storage.len(), max, "max {max} shards {shards}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_below_the_bound_evict_nothing() {
    let storage = storage(1_000, Some(64));
    let limiter = limiter(&storage, Arc::new(SlidingWindow));
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let (limiter, storage) = (limiter.clone(), storage.clone());
            tokio::spawn(async move {
                let l = limit("1 per hour");
                for i in 0..150 {
                    let key = Key::from(format!("{t}-{i}"));
                    assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
                    assert!(storage.len() <= 1_000);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(storage.len(), 900);
    let l = limit("1 per hour");
    for t in 0..6 {
        for i in 0..150 {
            let key = Key::from(format!("{t}-{i}"));
            assert!(
                !limiter.hit(&l, &key, 1).await.unwrap().is_allowed(),
                "{t}-{i}"
            );
        }
    }
}

#[tokio::test]
async fn batches_store_their_new_keys_in_a_full_storage() {
    // A batch locks the shards of its keys, so the shard of a new key cannot lock
    // them to make room: it evicts from them directly. With two shards and two keys,
    // the random placements cover a new key landing in an empty shard while the
    // batch holds the full one, in a few trials out of eight.
    let l = limit("1 per hour");
    let at = limiter_core::Timestamp::from_millis(1_000_000);
    for trial in 0..200 {
        let storage = storage(2, Some(2));
        let ttl = std::time::Duration::from_secs(3_600);
        for name in ["p0", "p1"] {
            let name = key(name);
            let written = storage.compare_and_set(&name, None, b"x", ttl, NOW);
            assert!(written.await.unwrap());
        }
        let (q, r) = (key("q"), key("r"));
        let items = [
            BatchItem {
                key: (&q).into(),
                limit: &l,
            },
            BatchItem {
                key: (&r).into(),
                limit: &l,
            },
        ];
        let batch = Batch::new(&items, 1, at).unwrap();
        let verdicts = storage
            .batch(limiter_core::strategy::BuiltIn::FixedWindow, batch)
            .resolve()
            .await
            .expect("the memory storage runs batches natively")
            .unwrap();
        assert!(verdicts.iter().all(|v| v.allowed), "trial {trial}");
        assert!(storage.len() <= 2);
        // The last key inserted is stored: its count is kept.
        assert!(
            storage.get(&r, NOW).await.unwrap().is_some(),
            "trial {trial}"
        );
    }
}
