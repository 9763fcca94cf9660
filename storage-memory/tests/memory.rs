//! Behaviour specific to `MemoryStorage`: expiry, the key bound, native operations
//! against the generic path, atomic batches and concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{
    apply_with_cas, Answer, Batch, BatchItem, ClearAll, KeyOp, NativeStrategies, Storage,
    StorageKey, Version,
};
use limiter_core::strategy::{
    BuiltIn, FixedWindow, Gcra, MovingWindow, Op, SlidingWindow, Verdict,
};
use limiter_core::{
    Clock, Key, ManualClock, RateLimit, RateLimiter, StorageError, StorageErrorKind, Strategy,
    Timestamp,
};
use limiter_memory::{MemoryOptions, MemoryStorage};

fn limit(text: &str) -> RateLimit {
    text.parse().expect("a valid limit")
}

fn limiter(storage: &Arc<MemoryStorage>, strategy: Arc<dyn Strategy>) -> RateLimiter {
    RateLimiter::builder(storage.clone())
        .strategy_arc(strategy)
        .clock(ManualClock::new(1_000_000))
        .build()
}

fn strategies() -> Vec<Arc<dyn Strategy>> {
    vec![
        Arc::new(FixedWindow),
        Arc::new(MovingWindow),
        Arc::new(SlidingWindow),
        Arc::new(Gcra),
    ]
}

/// A raw key for the tests of the storage's own methods.
fn key(name: &str) -> StorageKey {
    StorageKey::new("tests", name)
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// The storage's native answer, which must never be a decline.
async fn native(
    storage: &MemoryStorage,
    builtin: BuiltIn,
    op: KeyOp<'_>,
) -> Result<Verdict, StorageError> {
    let answer = NativeStrategies::apply(storage, builtin, op);
    assert!(matches!(answer, Answer::Ready(_)), "{builtin}: {answer:?}");
    answer.resolve().await.expect("answered")
}

/// The storage's native batch, which must never be a decline.
async fn batch(
    storage: &MemoryStorage,
    builtin: BuiltIn,
    items: &[BatchItem<'_>],
    cost: u64,
    now: Timestamp,
) -> Result<Vec<Verdict>, StorageError> {
    let batch = Batch::new(items, cost, now).expect("a valid batch");
    storage
        .batch(builtin, batch)
        .resolve()
        .await
        .expect("answered")
}

#[tokio::test]
async fn expired_entries_read_as_absent_and_are_reclaimed() {
    let storage = MemoryStorage::new();
    let ttl = Duration::from_millis(60);
    for i in 0..100 {
        assert!(storage
            .compare_and_set(&key(&format!("short/{i}")), None, b"x", ttl, at(0))
            .await
            .unwrap());
    }
    storage
        .compare_and_set(&key("long"), None, b"y", Duration::from_secs(60), at(0))
        .await
        .unwrap();
    assert_eq!(storage.len(), 101);
    assert!(storage
        .get(&key("short/0"), at(60))
        .await
        .unwrap()
        .is_some());

    // Expiry follows the callers' time, not the storage's.
    assert!(storage
        .get(&key("short/0"), at(120))
        .await
        .unwrap()
        .is_none());
    // Expecting "absent" succeeds on an expired key; the old version does not.
    assert!(storage
        .compare_and_set(&key("short/1"), None, b"z", ttl, at(120))
        .await
        .unwrap());
    // The write above reclaimed `short/1` and swept up to 2 more of its shard.
    let purged = storage.purge_expired(at(120));
    assert!((96..=98).contains(&purged), "{purged}");
    assert_eq!(storage.len(), 2);
    let long = storage.get(&key("long"), at(120)).await.unwrap();
    assert_eq!(long.unwrap().value, b"y");
}

/// Under a frozen clock nothing expires, however much real time passes: a rejected
/// client stays rejected.
#[tokio::test]
async fn a_frozen_manual_clock_governs_expiry() {
    let storage = Arc::new(MemoryStorage::new());
    for strategy in strategies() {
        let limiter = limiter(&storage, strategy.clone());
        let (l, client) = (limit("1 per 100 milliseconds"), Key::from("frozen"));
        assert!(limiter.hit(&l, &client, 1).await.unwrap().is_allowed());
        assert!(!limiter.hit(&l, &client, 1).await.unwrap().is_allowed());
    }
    // Longer than every state's time-to-live (100 ms + 1 s of grace, 1.1 s more for
    // the sliding window's previous window).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for strategy in strategies() {
        let limiter = limiter(&storage, strategy.clone());
        let (l, client) = (limit("1 per 100 milliseconds"), Key::from("frozen"));
        let third = limiter.hit(&l, &client, 1).await.unwrap();
        assert!(!third.is_allowed(), "{}", strategy.name());
    }
}

#[tokio::test]
async fn writes_sweep_expired_entries_of_their_shard() {
    let storage = Arc::new(MemoryStorage::with_options(MemoryOptions::new().shards(1)));
    let short = Duration::from_millis(50);
    // The limiter below reads 1,000,000 ms: write at 999,900, so that 50 ms later the
    // keys have expired for it.
    let fill = |prefix: &'static str| {
        let storage = storage.clone();
        async move {
            for i in 0..100 {
                let name = key(&format!("{prefix}/{i}"));
                assert!(storage
                    .compare_and_set(&name, None, b"x", short, at(999_900))
                    .await
                    .unwrap());
            }
        }
    };
    fill("short").await;
    assert_eq!(storage.len(), 100, "nothing reclaimed without writes");

    // New keys: each insertion examines 4 entries, so 60 cover the whole shard.
    let limiter = limiter(&storage, Arc::new(FixedWindow));
    let l = limit("1000 per hour");
    for i in 0..60 {
        let key = Key::from(format!("new-{i}"));
        assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
    }
    assert_eq!(storage.len(), 60);

    // Updates of one key sweep too, more slowly (2 entries every 32 writes).
    fill("again").await;
    let (key, l) = (Key::from("new-0"), limit("10000 per hour"));
    for _ in 0..4_000 {
        assert!(limiter.hit(&l, &key, 1).await.unwrap().is_allowed());
    }
    assert_eq!(storage.len(), 61);
    assert_eq!(limiter.stats(&l, &key).await.unwrap().remaining, 6_000);
}

#[tokio::test]
async fn max_keys_bounds_len_and_spares_recently_used_keys() {
    let storage = Arc::new(MemoryStorage::with_options(
        MemoryOptions::new().max_keys(1_000).shards(4),
    ));
    let limiter = limiter(&storage, Arc::new(FixedWindow));
    let l = limit("1000000 per hour");
    let hot = Key::from("hot");
    for i in 0..10_000 {
        assert!(limiter.hit(&l, &hot, 1).await.unwrap().is_allowed());
        let cold = Key::from(format!("cold-{i}"));
        assert!(limiter.hit(&l, &cold, 1).await.unwrap().is_allowed());
        if i % 1_000 == 0 {
            assert!(storage.len() <= 1_000);
        }
    }
    assert!(storage.len() <= 1_000);
    // The storage is full (10,000 keys went in).
    assert_eq!(storage.len(), 1_000);
    // The hot key was never evicted: all its 10,000 hits are still counted.
    let stats = limiter.stats(&l, &hot).await.unwrap();
    assert_eq!(stats.remaining, 1_000_000 - 10_000);
    // The oldest cold keys were evicted: a fresh hit on one counts from zero again.
    let first = limiter.hit(&l, &Key::from("cold-0"), 1).await.unwrap();
    assert_eq!(first.remaining(), 999_999);
}

#[tokio::test]
async fn max_keys_below_shard_count_still_stores_keys() {
    let storage = Arc::new(MemoryStorage::with_options(
        MemoryOptions::new().max_keys(3),
    ));
    assert_eq!(storage.shard_count(), 3);
    let limiter = limiter(&storage, Arc::new(Gcra));
    let l = limit("10 per minute");
    for i in 0..100 {
        let _ = limiter
            .hit(&l, &Key::from(format!("k{i}")), 1)
            .await
            .unwrap();
        assert!(storage.len() <= 3);
    }
    assert!(!storage.is_empty());
}

#[tokio::test]
async fn native_operations_match_the_generic_path() {
    let l = limit("5 per second");
    let ops: Vec<(Op, u64)> = vec![
        (Op::Hit { cost: 2 }, 0),
        (Op::Test { cost: 3 }, 10),
        (Op::Hit { cost: 3 }, 20),
        (Op::Hit { cost: 1 }, 30),
        (
            Op::Refund {
                cost: 1,
                at: Timestamp::from_millis(20),
            },
            40,
        ),
        (Op::Hit { cost: 1 }, 500),
        (Op::Hit { cost: 6 }, 600),
        (Op::Test { cost: 1 }, 999),
        (Op::Hit { cost: 4 }, 1_000),
        (Op::Hit { cost: 2 }, 1_500),
        (Op::Hit { cost: 5 }, 2_600),
        (Op::Hit { cost: 5 }, 10_000),
    ];
    for builtin in BuiltIn::ALL {
        let native_storage = MemoryStorage::new();
        let generic_storage = MemoryStorage::new();
        let k = key("k");
        for (i, &(op, offset)) in ops.iter().enumerate() {
            let op = KeyOp {
                key: (&k).into(),
                limit: &l,
                op,
                now: Timestamp::from_millis(1_000_000 + offset),
            };
            let fast = native(&native_storage, builtin, op).await.unwrap();
            let slow = apply_with_cas(&generic_storage, builtin.strategy(), 4, op)
                .await
                .unwrap();
            assert_eq!(fast, slow, "{builtin} op {i}");
            let now = op.now;
            let a = native_storage.get(&k, now).await.unwrap().map(|v| v.value);
            let b = generic_storage.get(&k, now).await.unwrap().map(|v| v.value);
            assert_eq!(a, b, "{builtin} state after op {i}");
        }
    }
}

#[tokio::test]
async fn peeks_and_rejections_create_no_entry() {
    let storage = Arc::new(MemoryStorage::new());
    for strategy in strategies() {
        let limiter = limiter(&storage, strategy);
        let l = limit("3 per minute");
        let key = Key::from("nobody");
        assert!(limiter.test(&l, &key, 1).await.unwrap().is_allowed());
        let _ = limiter.stats(&l, &key).await.unwrap();
        assert!(!limiter.hit(&l, &key, 4).await.unwrap().is_allowed());
        assert_eq!(storage.len(), 0);
        assert!(limiter.hit(&l, &key, 3).await.unwrap().is_allowed());
        assert_eq!(storage.len(), 1);
        storage.clear_all().await.unwrap();
        assert!(storage.is_empty());
    }
}

#[tokio::test]
async fn versions_never_repeat_for_a_key() {
    let storage = MemoryStorage::new();
    let ttl = Duration::from_secs(60);
    assert!(storage
        .compare_and_set(&key("k"), None, b"1", ttl, at(1_000))
        .await
        .unwrap());
    assert!(!storage
        .compare_and_set(&key("k"), None, b"2", ttl, at(1_000))
        .await
        .unwrap());
    let v1 = storage
        .get(&key("k"), at(1_000))
        .await
        .unwrap()
        .unwrap()
        .version;
    assert!(storage
        .compare_and_set(&key("k"), Some(v1), b"3", ttl, at(1_000))
        .await
        .unwrap());
    assert!(!storage
        .compare_and_set(&key("k"), Some(v1), b"4", ttl, at(1_000))
        .await
        .unwrap());
    let v2 = storage.get(&key("k"), at(1_000)).await.unwrap().unwrap();
    assert_eq!(v2.value, b"3");
    storage.delete(&key("k")).await.unwrap();
    storage.delete(&key("k")).await.unwrap();
    assert!(!storage
        .compare_and_set(&key("k"), Some(v2.version), b"5", ttl, at(1_000))
        .await
        .unwrap());
    assert!(storage
        .compare_and_set(&key("k"), None, b"6", ttl, at(1_000))
        .await
        .unwrap());
    let v3 = storage
        .get(&key("k"), at(1_000))
        .await
        .unwrap()
        .unwrap()
        .version;
    assert!(v3 != v1 && v3 != v2.version);
    storage.clear_all().await.unwrap();
    assert!(storage
        .compare_and_set(&key("k"), None, b"7", ttl, at(1_000))
        .await
        .unwrap());
    let v4: Version = storage
        .get(&key("k"), at(1_000))
        .await
        .unwrap()
        .unwrap()
        .version;
    assert!(![v1, v2.version, v3].contains(&v4));
    storage.check().await.unwrap();
}

#[tokio::test]
async fn corrupt_state_is_reported_with_its_key() {
    let storage = MemoryStorage::new();
    let k = key("k");
    let ttl = Duration::from_secs(60);
    storage
        .compare_and_set(&k, None, b"garbage", ttl, at(0))
        .await
        .unwrap();
    let l = limit("1 per second");
    for builtin in BuiltIn::ALL {
        let op = KeyOp {
            key: (&k).into(),
            limit: &l,
            op: Op::Hit { cost: 1 },
            now: Timestamp::from_millis(0),
        };
        let err = native(&storage, builtin, op).await.unwrap_err();
        assert_eq!(err.kind(), StorageErrorKind::Corrupt);
        assert_eq!(err.key(), Some(k.as_str()));
        let items = [BatchItem {
            key: (&k).into(),
            limit: &l,
        }];
        let err = batch(&storage, builtin, &items, 1, at(0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StorageErrorKind::Corrupt);
    }
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    // One shard, so that every item shares it; and the default sharding.
    for storage in [
        MemoryStorage::with_options(MemoryOptions::new().shards(1)),
        MemoryStorage::new(),
    ] {
        let (wide, narrow) = (limit("5 per minute"), limit("2 per minute"));
        let keys: Vec<StorageKey> = (0..20).map(|i| key(&format!("k{i}"))).collect();
        let (fresh_key, k7) = (key("fresh"), key("k7"));
        let at = Timestamp::from_millis(1_000);
        for builtin in BuiltIn::ALL {
            storage.clear_all().await.unwrap();
            let items: Vec<BatchItem<'_>> = keys
                .iter()
                .enumerate()
                .map(|(i, key)| BatchItem {
                    key: key.into(),
                    limit: if i == 7 { &narrow } else { &wide },
                })
                .collect();
            for round in 0..2 {
                let verdicts = batch(&storage, builtin, &items, 1, at).await.unwrap();
                assert!(verdicts.iter().all(|v| v.allowed), "{builtin} {round}");
                assert_eq!(verdicts[7].remaining, 1 - round);
                assert_eq!(verdicts[0].remaining, 4 - round);
            }
            let verdicts = batch(&storage, builtin, &items, 1, at).await.unwrap();
            assert_eq!(verdicts.len(), 20);
            assert!(!verdicts[7].allowed, "{builtin}");
            assert!(verdicts[7].retry_at.is_some());
            // Nothing was consumed: the other keys still have 3 left.
            for (i, key) in keys.iter().enumerate().filter(|&(i, _)| i != 7) {
                let op = KeyOp {
                    key: key.into(),
                    limit: &wide,
                    op: Op::Test { cost: 1 },
                    now: at,
                };
                let peek = native(&storage, builtin, op).await.unwrap();
                assert_eq!(peek.remaining, 3, "{builtin} key {i}");
                assert_eq!(verdicts[i].remaining, 3);
            }
            // A rejected batch creates no entry for keys seen for the first time.
            let fresh = [
                BatchItem {
                    key: (&fresh_key).into(),
                    limit: &wide,
                },
                BatchItem {
                    key: (&k7).into(),
                    limit: &narrow,
                },
            ];
            let verdicts = batch(&storage, builtin, &fresh, 1, at).await.unwrap();
            assert!(verdicts[0].allowed && !verdicts[1].allowed);
            assert_eq!(storage.get(&fresh_key, at).await.unwrap(), None);
        }
    }
}

#[test]
fn a_batch_never_repeats_a_key() {
    // The storage's all-or-nothing rests on it, and the type guarantees it.
    let l = limit("1 per minute");
    let k = key("k");
    let items = [
        BatchItem {
            key: (&k).into(),
            limit: &l,
        },
        BatchItem {
            key: (&k).into(),
            limit: &l,
        },
    ];
    let err = Batch::new(&items, 1, Timestamp::from_millis(0)).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hits_admit_exactly_the_limit() {
    let storage = Arc::new(MemoryStorage::new());
    for strategy in strategies() {
        let name = strategy.name();
        let limiter = limiter(&storage, strategy);
        let l = limit("50 per hour");
        let key = Key::from("contended");
        let admitted = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let (limiter, key, admitted) = (limiter.clone(), key.clone(), admitted.clone());
                tokio::spawn(async move {
                    if limiter.hit(&l, &key, 1).await.unwrap().is_allowed() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 50, "{name}");

        // `hit_all`: the narrow limit admits 50 and the wide one counts exactly those.
        let limits = [limit("50 per hour"), limit("1000 per hour")];
        let key = Key::from("contended-all");
        let admitted = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let (limiter, key, admitted) = (limiter.clone(), key.clone(), admitted.clone());
                tokio::spawn(async move {
                    if limiter
                        .hit_all(&limits, &key, 1)
                        .await
                        .unwrap()
                        .is_allowed()
                    {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 50, "{name} hit_all");
        let wide = limiter.stats(&limits[1], &key).await.unwrap();
        assert_eq!(
            wide.remaining, 950,
            "{name} hit_all consumed only admitted hits"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hits_on_many_keys_with_a_bound() {
    let storage = Arc::new(MemoryStorage::with_options(
        MemoryOptions::new().max_keys(500).shards(8),
    ));
    let limiter = limiter(&storage, Arc::new(SlidingWindow));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let l = limit("100 per minute");
                for i in 0..2_000 {
                    let key = Key::from(format!("{t}-{}", i % 700));
                    let _ = limiter.hit(&l, &key, 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(storage.len() <= 500);
}

/// Multi-limit hits on stored keys (the one-shard batch: inline states on copies, logs
/// tested then hit in place) decide, and leave bytes, exactly as the generic path over
/// the same storage's core: through rejections, expiry and fresh keys.
#[tokio::test]
async fn one_shard_batches_match_the_generic_path() {
    let limits = [
        limit("3 per second"),
        limit("5 per 2 seconds"),
        limit("7 per 10 seconds"),
    ];
    for strategy in strategies() {
        let clock = ManualClock::new(1_000_000);
        let memory = Arc::new(MemoryStorage::new());
        let core_only = Arc::new(MemoryStorage::new());
        let plain = Arc::new(limiter_conformance::CasOnly::new(core_only.clone()));
        let ours = RateLimiter::builder(memory.clone())
            .strategy_arc(strategy.clone())
            .clock(clock.clone())
            .build();
        let reference = RateLimiter::builder(plain.clone())
            .strategy_arc(strategy.clone())
            .clock(clock.clone())
            .build();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut outcomes = [0; 2];
        for step in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            clock.advance(Duration::from_millis(seed % 7 * (seed % 5) * 60));
            let key = Key::from(format!("client-{}", seed % 3));
            let n = 2 + usize::try_from(seed % 2).unwrap_or(0);
            let cost = 1 + seed % 3;
            let got = ours.hit_all(&limits[..n], &key, cost).await.unwrap();
            let want = reference.hit_all(&limits[..n], &key, cost).await.unwrap();
            assert_eq!(got, want, "{} step {step}", strategy.name());
            outcomes[usize::from(got.is_allowed())] += 1;
            for l in &limits {
                let stored = ours.storage_key(l, &key);
                let now = clock.now();
                let a = memory.get(&stored, now).await.unwrap().map(|v| v.value);
                let b = core_only.get(&stored, now).await.unwrap().map(|v| v.value);
                assert_eq!(a, b, "{} step {step} {stored}", strategy.name());
            }
        }
        assert!(outcomes.iter().all(|&n| n > 50), "{outcomes:?}");
    }
}
