//! Wide units of coalesced operations go as a `GET` and one compare-and-set (the
//! strategy applied in the client), narrow ones as `many.lua`; the next unit on a key
//! as the compare-and-set alone, on the state written last, unless another writer
//! or an expiry got there first; long moving-window logs by script; wide units of
//! multi-limit hits as an `MGET` and one `cas_many.lua`; a unit whose
//! compare-and-set loses a race goes by script.
//! Counted with the server's `INFO commandstats`.
//!
//! One test in this file, so that nothing else moves the server's counters meanwhile.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{
    Answer, Batch, BatchItem, KeyOp, NativeStrategies, Storage, StorageKey,
};
use limiter_core::strategy::{BuiltIn, Op, Verdict};
use limiter_core::{Key, RateLimit, RateLimiter, Timestamp};
use limiter_redis::native::CAS_UNIT_MIN;
use limiter_redis::RedisStorage;

const T0: u64 = 1_700_000_000_000;

async fn apply_one(storage: &RedisStorage, strategy: BuiltIn, op: KeyOp<'_>) -> Verdict {
    match NativeStrategies::apply(storage, strategy, op) {
        Answer::Pending(future) => future.await.expect("apply"),
        Answer::Ready(result) => result.expect("apply"),
        Answer::Declined => panic!("{strategy}: apply declined"),
    }
}

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

/// `ops` applied one at a time to `state` by the strategy itself: the verdicts.
fn model(
    strategy: BuiltIn,
    limit: &RateLimit,
    state: &mut Vec<u8>,
    ops: &[(Op, Timestamp)],
) -> Vec<Verdict> {
    ops.iter()
        .map(|&(op, now)| {
            let applied = strategy.strategy().apply(limit, state, op, now);
            applied.expect("apply").verdict
        })
        .collect()
}

/// The bytes stored under `key`.
async fn stored(storage: &RedisStorage, key: &StorageKey) -> Option<Vec<u8>> {
    let read = storage.get(key, Timestamp::from_millis(T0)).await;
    read.expect("get").map(|v| v.value)
}

/// The server's count of each of `commands` (scripts as `evalsha` and `eval`
/// together, `script`), so that a difference of two says what a unit sent.
struct Counts {
    url: String,
}

impl Counts {
    fn now(&self, commands: &[&str]) -> Vec<u64> {
        let stats = common::command_stats(&self.url);
        let count = |name: &str| stats.get(name).copied().unwrap_or(0);
        commands
            .iter()
            .map(|c| match *c {
                "script" => count("evalsha") + count("eval"),
                other => count(other),
            })
            .collect()
    }

    /// What `unit` sent, as counts of `commands`, and its answer.
    async fn during<T>(
        &self,
        commands: &[&str],
        unit: impl std::future::Future<Output = T>,
    ) -> (Vec<u64>, T) {
        let before = self.now(commands);
        let answer = unit.await;
        let after = self.now(commands);
        (
            after.iter().zip(before).map(|(a, b)| a - b).collect(),
            answer,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_units_go_as_a_read_and_a_compare_and_set_and_lost_races_by_script() {
    let url = common::env("LIMITER_REDIS_URL");
    let counts = Counts { url: url.clone() };
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-units:").await;
    let limit: RateLimit = "100 per minute".parse().expect("limit");
    let run = std::process::id();
    let calls = || {
        let now = counts.now(&["getrange", "script"]);
        (now[0], now[1])
    };
    // On a one-value state: the compare-and-set script reads the version with
    // GETRANGE, and many.lua reads the state with GET, inside the script. So a unit
    // that goes as a read and a compare-and-set makes one GET (the read), one
    // GETRANGE and one script call; one on the state held from its last write, one
    // GETRANGE and one script call, no GET; one by script, one GET and no GETRANGE.
    let (read_and_cas, held_cas, by_script) = (vec![1, 1, 1], vec![0, 1, 1], vec![1, 0, 1]);
    let sent = ["get", "getrange", "script"];

    for strategy in [BuiltIn::FixedWindow, BuiltIn::SlidingWindow, BuiltIn::Gcra] {
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(common::strategy(strategy))
            .namespace(format!("units-{run}"))
            .build();
        let key = |name: &str| limiter.storage_key(&limit, &Key::from(name));
        let (wide, narrow) = (key("wide"), key("narrow"));
        // Every script this test sends, loaded on the server first (a script's first
        // call may take two: one answered NOSCRIPT, then the load).
        apply_many(
            &storage,
            strategy,
            &key("warm-narrow"),
            &limit,
            &hits(2, T0),
        )
        .await;
        apply_many(
            &storage,
            strategy,
            &key("warm-wide"),
            &limit,
            &hits(CAS_UNIT_MIN, T0),
        )
        .await;
        let warm_single = key("warm-single");
        let single = KeyOp {
            key: (&warm_single).into(),
            limit: &limit,
            op: Op::Hit { cost: 1 },
            now: Timestamp::from_millis(T0),
        };
        apply_one(&storage, strategy, single).await;

        // A wide unit: the verdicts and bytes of the strategy, applied one at a time.
        let mut state = Vec::new();
        let ops = hits(CAS_UNIT_MIN + 12, T0);
        let (made, verdicts) = counts
            .during(&sent, apply_many(&storage, strategy, &wide, &limit, &ops))
            .await;
        assert_eq!(
            verdicts,
            model(strategy, &limit, &mut state, &ops),
            "{strategy}"
        );
        assert_eq!(
            stored(&storage, &wide).await.as_ref(),
            Some(&state),
            "{strategy}"
        );
        assert_eq!(
            made,
            read_and_cas,
            "{strategy}: a unit of {} operations",
            ops.len()
        );

        // A narrow unit on another key goes by script, in one round trip.
        let ops = hits(CAS_UNIT_MIN - 1, T0);
        let (made, verdicts) = counts
            .during(&sent, apply_many(&storage, strategy, &narrow, &limit, &ops))
            .await;
        assert!(verdicts.iter().all(|v| v.allowed), "{strategy}");
        assert_eq!(
            made,
            by_script,
            "{strategy}: a unit of {} operations",
            ops.len()
        );

        // The next units on the wide key, of any width, and a lone operation, go as
        // the compare-and-set alone, on the state written last: same verdicts, same
        // bytes.
        for n in [3, CAS_UNIT_MIN + 5] {
            let ops = hits(n, T0 + 100);
            let (made, verdicts) = counts
                .during(&sent, apply_many(&storage, strategy, &wide, &limit, &ops))
                .await;
            assert_eq!(
                verdicts,
                model(strategy, &limit, &mut state, &ops),
                "{strategy}"
            );
            assert_eq!(
                stored(&storage, &wide).await.as_ref(),
                Some(&state),
                "{strategy}"
            );
            assert_eq!(made, held_cas, "{strategy}: a held unit of {n} operations");
        }
        let one = KeyOp {
            key: (&wide).into(),
            limit: &limit,
            op: Op::Hit { cost: 2 },
            now: Timestamp::from_millis(T0 + 200),
        };
        let (made, verdict) = counts
            .during(&sent, apply_one(&storage, strategy, one))
            .await;
        let ops = [(one.op, one.now)];
        assert_eq!(
            vec![verdict],
            model(strategy, &limit, &mut state, &ops),
            "{strategy}"
        );
        assert_eq!(
            stored(&storage, &wide).await.as_ref(),
            Some(&state),
            "{strategy}"
        );
        assert_eq!(made, held_cas, "{strategy}: a held lone operation");

        // A unit that would write nothing (tests only) does not trust the held state:
        // nothing confirms it. It goes by script.
        let tests: Vec<(Op, Timestamp)> = (0..3)
            .map(|i| (Op::Test { cost: 1 + i }, Timestamp::from_millis(T0 + 300)))
            .collect();
        let (made, verdicts) = counts
            .during(&sent, apply_many(&storage, strategy, &wide, &limit, &tests))
            .await;
        assert_eq!(
            verdicts,
            model(strategy, &limit, &mut state, &tests),
            "{strategy}"
        );
        assert_eq!(made, by_script, "{strategy}: tests on a held state");
    }

    // What a held state cannot see: another client's write, or the key expiring. The
    // compare-and-set at the held version then writes nothing, and the unit goes by
    // script on the key as it is. (One case at a time, each on its own connection: a
    // lost race sends the next units of that storage by script, and two keys may
    // share the memo's slot.)
    for strategy in [BuiltIn::FixedWindow, BuiltIn::SlidingWindow, BuiltIn::Gcra] {
        for case in ["rewritten", "gone"] {
            let storage = common::connect("LIMITER_REDIS_URL", "limiter-units:").await;
            let other = common::connect("LIMITER_REDIS_URL", "limiter-units:").await;
            let limiter = RateLimiter::builder(Arc::new(storage.clone()))
                .strategy_arc(common::strategy(strategy))
                .namespace(format!("units-stale-{run}"))
                .build();
            let key = limiter.storage_key(&limit, &Key::from(case));
            let mut state = Vec::new();
            let ops = hits(CAS_UNIT_MIN, T0);
            let (made, _) = counts
                .during(&sent, apply_many(&storage, strategy, &key, &limit, &ops))
                .await;
            assert_eq!(made, read_and_cas, "{strategy}, {case}: the first unit");
            model(strategy, &limit, &mut state, &ops);
            // The other client: one more hit on the key, or the key deleted.
            let now = Timestamp::from_millis(T0 + 50);
            if case == "rewritten" {
                let current = other.get(&key, now).await.expect("get").expect("stored");
                let extra = [(Op::Hit { cost: 5 }, now)];
                model(strategy, &limit, &mut state, &extra);
                let ttl = Duration::from_secs(120);
                let set = other.compare_and_set(&key, Some(current.version), &state, ttl, now);
                assert!(set.await.expect("compare_and_set"), "{strategy}");
            } else {
                other.delete(&key).await.expect("delete");
                state.clear();
            }
            let ops = hits(3, T0 + 60);
            let (made, verdicts) = counts
                .during(&sent, apply_many(&storage, strategy, &key, &limit, &ops))
                .await;
            let expected = model(strategy, &limit, &mut state, &ops);
            assert_eq!(verdicts, expected, "{strategy}, {case}");
            let stored_now = stored(&storage, &key).await;
            assert_eq!(stored_now.as_ref(), Some(&state), "{strategy}, {case}");
            // The compare-and-set that wrote nothing, then the script.
            assert_eq!(made, vec![1, 1, 2], "{strategy}, {case}: the held unit");
        }
    }

    // Moving-window logs: a wide unit on a short log goes as a read and a
    // compare-and-set, the next unit on the state held; a log longer than the held
    // states' bound is rewritten once, then units go by script, which appends records
    // in place (no SET).
    let log_storage = common::connect("LIMITER_REDIS_URL", "limiter-units:").await;
    let moving = BuiltIn::MovingWindow;
    let limiter = RateLimiter::builder(Arc::new(log_storage.clone()))
        .strategy_arc(common::strategy(moving))
        .namespace(format!("units-{run}"))
        .build();
    let log_sent = ["get", "set", "script"];
    let warm = limiter.storage_key(&limit, &Key::from("warm-up"));
    apply_many(&log_storage, moving, &warm, &limit, &hits(2, T0)).await;
    apply_many(
        &log_storage,
        moving,
        &warm,
        &limit,
        &hits(CAS_UNIT_MIN, T0 + 2),
    )
    .await;
    let long_limit: RateLimit = "100000 per minute".parse().expect("limit");
    let cases = [
        (
            "a short log",
            &limit,
            vec![
                // By script, which writes a new log whole.
                (2, T0, vec![0, 1, 1]),
                (CAS_UNIT_MIN + 12, T0 + 2, vec![1, 1, 1]),
                (3, T0 + 100, vec![0, 1, 1]),
            ],
        ),
        (
            // 1,100 records of 16 bytes: past the 16 KiB bound on held states.
            "a long log",
            &long_limit,
            vec![
                (1_100, T0, vec![1, 1, 1]),
                (CAS_UNIT_MIN + 2, T0 + 2_000, vec![1, 1, 1]),
                (CAS_UNIT_MIN + 2, T0 + 3_000, vec![0, 0, 1]),
                (3, T0 + 4_000, vec![0, 0, 1]),
            ],
        ),
    ];
    for (name, limit, units) in cases {
        let log = limiter.storage_key(limit, &Key::from(name));
        let mut state = Vec::new();
        for (n, at, expected) in units {
            let ops = hits(n, at);
            let unit = apply_many(&log_storage, moving, &log, limit, &ops);
            let (made, verdicts) = counts.during(&log_sent, unit).await;
            assert_eq!(verdicts, model(moving, limit, &mut state, &ops), "{name}");
            assert_eq!(stored(&log_storage, &log).await.as_ref(), Some(&state));
            assert_eq!(made, expected, "a unit of {n} on {name}");
        }
        assert_eq!(state.len() > 16 * 1024, name == "a long log");
    }

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
