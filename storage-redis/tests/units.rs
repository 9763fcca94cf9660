//! Wide units of coalesced operations on a one-value state go as a `GET` and one
//! compare-and-set (the strategy applied in the client), narrow ones and moving-window
//! logs as `many.lua`; wide units of multi-limit hits as an `MGET` and one
//! `cas_many.lua`; a unit whose compare-and-set loses a race goes by script.
//! Counted with the server's `INFO commandstats`.
//!
//! One test in this file, so that nothing else moves the server's counters meanwhile.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{Answer, Batch, BatchItem, NativeStrategies, Storage, StorageKey};
use limiter_core::strategy::{BuiltIn, Op, Verdict};
use limiter_core::{Key, RateLimit, RateLimiter, Timestamp};
use limiter_redis::native::CAS_UNIT_MIN;
use limiter_redis::RedisStorage;

const T0: u64 = 1_700_000_000_000;

async fn apply_many(
    storage: &RedisStorage,
    strategy: BuiltIn,
    key: &StorageKey,
    limit: &RateLimit,
    ops: &[(Op, Timestamp)],
) -> Vec<Verdict> {
    match storage.apply_many(strategy, key.into(), limit, ops) {
        Answer::Pending(future) => future.await.expect("apply_many"),
        Answer::Ready(result) => result.expect("apply_many"),
        Answer::Declined => panic!("{strategy}: apply_many declined"),
    }
}

/// The items of a multi-limit hit: `keys[i]` under `limits[i]`.
fn items_of<'a>(keys: &'a [StorageKey], limits: &'a [RateLimit]) -> Vec<BatchItem<'a>> {
    keys.iter()
        .zip(limits)
        .map(|(key, limit)| BatchItem {
            key: key.into(),
            limit,
        })
        .collect()
}

/// `n` hits of cost 1, a millisecond apart from `at`.
fn hits(n: usize, at: u64) -> Vec<(Op, Timestamp)> {
    (0..n as u64)
        .map(|i| (Op::Hit { cost: 1 }, Timestamp::from_millis(at + i)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_units_go_as_a_read_and_a_compare_and_set_and_lost_races_by_script() {
    let url = common::env("LIMITER_REDIS_URL");
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-units:").await;
    let limit: RateLimit = "100 per minute".parse().expect("limit");
    let run = std::process::id();
    // The compare-and-set script reads the version with GETRANGE, and many.lua reads a
    // one-value state with GET, inside the script: so on a one-value state a unit that
    // went as a read and a compare-and-set makes one GETRANGE, one by script none.
    let calls = || {
        let stats = common::command_stats(&url);
        let count = |name: &str| stats.get(name).copied().unwrap_or(0);
        (count("getrange"), count("evalsha") + count("eval"))
    };

    for strategy in [BuiltIn::FixedWindow, BuiltIn::SlidingWindow, BuiltIn::Gcra] {
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(common::strategy(strategy))
            .namespace(format!("units-{run}"))
            .build();
        let (wide, narrow) = (
            limiter.storage_key(&limit, &Key::from("wide")),
            limiter.storage_key(&limit, &Key::from("narrow")),
        );
        // Every script this test sends, loaded on the server first (a script's first
        // call may take two: one answered NOSCRIPT, then the load).
        let warm = limiter.storage_key(&limit, &Key::from("warm-up"));
        apply_many(&storage, strategy, &warm, &limit, &hits(CAS_UNIT_MIN, T0)).await;
        apply_many(&storage, strategy, &warm, &limit, &hits(2, T0)).await;

        // A wide unit: the verdicts and bytes of the strategy, applied one at a time.
        let ops = hits(CAS_UNIT_MIN + 12, T0);
        let (gets, scripts) = calls();
        let verdicts = apply_many(&storage, strategy, &wide, &limit, &ops).await;
        let (gets, scripts) = {
            let (g, s) = calls();
            (g - gets, s - scripts)
        };
        let mut state = Vec::new();
        for (&(op, now), verdict) in ops.iter().zip(&verdicts) {
            let expected = strategy
                .strategy()
                .apply(&limit, &mut state, op, now)
                .expect("apply")
                .verdict;
            assert_eq!(*verdict, expected, "{strategy}: {op:?} at {now}");
        }
        let stored = storage
            .get(&wide, Timestamp::from_millis(T0))
            .await
            .expect("get")
            .map(|v| v.value);
        assert_eq!(stored, Some(state), "{strategy}: the bytes stored");
        assert_eq!(
            (gets, scripts),
            (1, 1),
            "{strategy}: GETRANGE and script calls of a unit of {} operations",
            ops.len()
        );

        // A narrow unit goes by script, in one round trip.
        let ops = hits(CAS_UNIT_MIN - 1, T0);
        let (gets, scripts) = calls();
        let verdicts = apply_many(&storage, strategy, &narrow, &limit, &ops).await;
        assert!(verdicts.iter().all(|v| v.allowed), "{strategy}");
        let (g, s) = calls();
        assert_eq!(
            (g - gets, s - scripts),
            (0, 1),
            "{strategy}: a unit of {} operations",
            ops.len()
        );
    }

    // Moving-window logs go by script whatever the unit's width: the records are
    // appended in place, not the whole log rewritten.
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .strategy_arc(common::strategy(BuiltIn::MovingWindow))
        .namespace(format!("units-{run}"))
        .build();
    let log = limiter.storage_key(&limit, &Key::from("log"));
    let (first, ops) = (hits(2, T0), hits(CAS_UNIT_MIN + 12, T0 + 2));
    apply_many(&storage, BuiltIn::MovingWindow, &log, &limit, &first).await;
    let sets = common::command_calls(&url, &["set"]);
    let verdicts = apply_many(&storage, BuiltIn::MovingWindow, &log, &limit, &ops).await;
    assert!(verdicts.iter().all(|v| v.allowed));
    let mut state = Vec::new();
    for &(op, now) in first.iter().chain(&ops) {
        let _ = BuiltIn::MovingWindow
            .strategy()
            .apply(&limit, &mut state, op, now);
    }
    let stored = storage.get(&log, Timestamp::from_millis(T0)).await;
    assert_eq!(stored.expect("get").map(|v| v.value), Some(state));
    assert_eq!(
        common::command_calls(&url, &["set"]) - sets,
        0,
        "the moving window's log was written whole (SET), not appended to"
    );

    // Multi-limit hits: a wide unit as one MGET and one cas_many.lua (one GETRANGE per
    // key), a narrow one by script; the same bytes as the calls one at a time.
    let limits = limiter_core::parse_many("100 per minute; 300 per hour").expect("limits");
    for strategy in [BuiltIn::FixedWindow, BuiltIn::SlidingWindow, BuiltIn::Gcra] {
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(common::strategy(strategy))
            .namespace(format!("units-batch-{run}"))
            .build();
        let keys = |name: &str| -> Vec<StorageKey> {
            let key = Key::from(name);
            limits
                .iter()
                .map(|l| limiter.storage_key(l, &key))
                .collect()
        };
        let (wide, narrow, alone) = (keys("wide"), keys("narrow"), keys("alone"));
        // The scripts loaded on the server first, as above.
        let warm = keys("warm-up");
        for n in [CAS_UNIT_MIN, 2] {
            let warm_items = items_of(&warm, &limits);
            let queued: Vec<(u64, Timestamp)> =
                (0..n).map(|_| (1, Timestamp::from_millis(T0))).collect();
            let answer = storage.batch_many(strategy, &warm_items, &queued);
            if let Answer::Pending(future) = answer {
                future.await.expect("batch_many");
            }
        }
        let warm_items = items_of(&warm, &limits);
        let batch = Batch::new(&warm_items, 1, Timestamp::from_millis(T0)).expect("batch");
        let answer = storage.batch(strategy, batch);
        if let Answer::Pending(future) = answer {
            future.await.expect("batch");
        }
        for (keys, n, expected) in [(&wide, CAS_UNIT_MIN + 4, (2, 1)), (&narrow, 2, (0, 1))] {
            let queued: Vec<(u64, Timestamp)> = (0..n as u64)
                .map(|i| (1 + i % 3, Timestamp::from_millis(T0 + i)))
                .collect();
            let items = items_of(keys, &limits);
            let (gets, scripts) = calls();
            let together = match storage.batch_many(strategy, &items, &queued) {
                Answer::Pending(future) => future.await.expect("batch_many"),
                _ => panic!("{strategy}: batch_many did not pend"),
            };
            let (g, s) = calls();
            assert_eq!((g - gets, s - scripts), expected, "{strategy}: {n} calls");
            // The same calls one at a time, by script, on their own keys.
            let alone_items = items_of(&alone, &limits);
            for (&(cost, now), verdicts) in queued.iter().zip(&together) {
                let batch = Batch::new(&alone_items, cost, now).expect("batch");
                let one = match storage.batch(strategy, batch) {
                    Answer::Pending(future) => future.await.expect("batch"),
                    _ => panic!("{strategy}: batch did not pend"),
                };
                assert_eq!(&one, verdicts, "{strategy}: cost {cost} at {now}");
            }
            for (key, other) in keys.iter().zip(&alone) {
                let at = Timestamp::from_millis(T0);
                let (a, b) = (storage.get(key, at).await, storage.get(other, at).await);
                assert_eq!(
                    a.expect("get").map(|v| v.value),
                    b.expect("get").map(|v| v.value),
                    "{strategy}: the bytes of {key}"
                );
            }
            for key in keys.iter().chain(&alone) {
                storage.delete(key).await.expect("delete");
            }
        }
    }

    // Lost races: another client keeps rewriting the key (the same bytes under a new
    // version, by compare-and-set, so it never undoes a write), and the units still
    // count every hit exactly once, some of them by script.
    let limit: RateLimit = "100000 per minute".parse().expect("limit");
    for strategy in [BuiltIn::FixedWindow, BuiltIn::SlidingWindow, BuiltIn::Gcra] {
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(common::strategy(strategy))
            .namespace(format!("units-race-{run}"))
            .build();
        let key = limiter.storage_key(&limit, &Key::from("raced"));
        // The same operations one at a time on bytes: what the key must hold after.
        let mut model = Vec::new();
        let mut in_model = |ops: &[(Op, Timestamp)]| {
            for &(op, now) in ops {
                let applied = strategy.strategy().apply(&limit, &mut model, op, now);
                applied.expect("apply");
            }
        };
        // The key exists before the other client starts.
        let first = hits(2, T0);
        apply_many(&storage, strategy, &key, &limit, &first).await;
        in_model(&first);
        let stop = Arc::new(AtomicBool::new(false));
        let rewrites = Arc::new(AtomicU64::new(0));
        let other = common::connect("LIMITER_REDIS_URL", "limiter-units:").await;
        let rewriter = tokio::spawn({
            let (stop, rewrites, key) = (stop.clone(), rewrites.clone(), key.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let now = Timestamp::from_millis(T0);
                    if let Ok(Some(current)) = other.get(&key, now).await {
                        let ttl = Duration::from_secs(120);
                        let set = other
                            .compare_and_set(&key, Some(current.version), &current.value, ttl, now)
                            .await;
                        if matches!(set, Ok(true)) {
                            rewrites.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        let (units, per_unit) = (30, CAS_UNIT_MIN + 2);
        let (gets, scripts) = calls();
        let mut admitted = 0;
        for unit in 0..units {
            let ops = hits(per_unit, T0 + 10 + (unit * per_unit) as u64);
            let verdicts = apply_many(&storage, strategy, &key, &limit, &ops).await;
            admitted += verdicts.iter().filter(|v| v.allowed).count();
            in_model(&ops);
        }
        stop.store(true, Ordering::Relaxed);
        rewriter.await.expect("the rewriting client");
        let (gets, scripts) = {
            let (g, s) = calls();
            (g - gets, s - scripts)
        };
        let rewrites = rewrites.load(Ordering::Relaxed);
        assert_eq!(admitted, units * per_unit, "{strategy}");
        let stored = storage.get(&key, Timestamp::from_millis(T0)).await;
        assert_eq!(
            stored.expect("get").map(|v| v.value),
            Some(model),
            "{strategy}: every hit counted once, in order"
        );
        // Every compare-and-set script (the other client's, and a unit's that tried
        // one) makes one GETRANGE; a unit that went by script, at once or after a lost
        // race, makes one script call and no GETRANGE.
        assert!(
            rewrites > 0,
            "{strategy}: the other client never rewrote the key"
        );
        assert!(
            scripts > gets,
            "{strategy}: no unit went by script after a lost race ({gets} GETRANGE, {scripts} script calls)"
        );
    }
}
