//! `RateLimiter` on `MemoryStorage`, per strategy, next to governor's keyed limiter
//! with the same quota, in the same run.
//!
//! Run with `cargo bench -p limiter-benches --bench strategies`; add `-- hit/` (or any
//! group name) to run some groups only. `LIMITER_BENCH_FAST=1` shortens every
//! measurement (for a quick look; use the full run for figures).
//!
//! Groups (ns per hit; divide a row by the `governor` row of the same group for the
//! ratio):
//! - `hit/1_key`, `hit/100k_keys`: one thread; `governor` and the four strategies.
//!   One key, or 100,000 keys taken round-robin. Keys and limits are built before the
//!   timed loop. governor is keyed on the same `String`s (`"10.a.b.c"`) that our
//!   [`Key`]s are built from, through its default store (`DashMap`, SipHash) and clock
//!   (quanta, which reads the TSC). The quota is 1,000,000,000 per second for both, so
//!   that practically every hit is allowed. Our limiter uses its default
//!   `SystemClock`; our futures are driven with `FutureExt::now_or_never`
//!   (`MemoryStorage` never pends). `gcra_prepared` is GCRA through keys made
//!   beforehand with `RateLimiter::prepare`; `gcra_keyed` is the in-memory storage's
//!   typed GCRA limiter (`KeyedLimiter<str>`, one atomic word per key), keyed on the
//!   same `String`s as governor.
//! - `hit_2t/same_key`, `hit_2t/disjoint_100k`: the same, on two threads at once: both
//!   hitting one key, or each its own half of 100,000 keys. The time is the wall time
//!   of both threads' runs divided by the hits of one thread (`gcra_keyed` too).
//! - `allowed/1_key`, `rejected/1_key`: one key on a manual clock (governor's
//!   `FakeRelativeClock`, our `ManualClock`) that moves two seconds every ten calls.
//!   Under `1 per second`, one call in ten is allowed and nine are rejected; under
//!   1,000,000,000 per second, all are allowed. Same clock, same loop: the rejection
//!   path against the admission path.
//! - `hit_all/1_key`: for each strategy, a single-limit `hit` and a two-limit
//!   `hit_all` (`1000000000 per second; 1000000000 per minute`) on one key (governor
//!   has no multi-limit equivalent).
//!
//! Bytes per key are measured by the `memory` bench binary.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use futures::FutureExt;
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter as Governor};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{
    Clock, Key, ManualClock, PreparedKey, RateLimit, RateLimiter, Strategy, SystemClock,
};
use limiter_memory::{KeyedLimiter, MemoryStorage};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

const PER_SECOND: u32 = 1_000_000_000;
const MANY_KEYS: u32 = 100_000;

fn identifiers(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

fn per_second(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MAX)
}

fn limit() -> RateLimit {
    RateLimit::per_second(per_second(PER_SECOND).into())
}

fn quota() -> Quota {
    Quota::per_second(per_second(PER_SECOND))
}

fn limiter_with(strategy: Arc<dyn Strategy>, clock: impl Clock) -> RateLimiter {
    RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .strategy_arc(strategy)
        .clock(clock)
        .build()
}

fn strategies() -> [(&'static str, Arc<dyn Strategy>); 4] {
    [
        ("fixed_window", Arc::new(FixedWindow)),
        ("moving_window", Arc::new(MovingWindow)),
        ("sliding_window", Arc::new(SlidingWindow)),
        ("gcra", Arc::new(Gcra)),
    ]
}

/// Round-robin position over `n` items.
fn next(i: &mut usize, n: usize) -> usize {
    let at = *i;
    *i += 1;
    if *i == n {
        *i = 0;
    }
    at
}

/// One hit, driven to completion; whether it was allowed.
fn hit(limiter: &RateLimiter, limit: &RateLimit, key: &Key) -> bool {
    let decision = limiter.hit(limit, key, 1).now_or_never();
    assert!(decision.is_some(), "MemoryStorage never pends");
    matches!(decision, Some(Ok(ref d)) if d.is_allowed())
}

/// The in-memory storage's typed GCRA limiter, keyed on the same `String`s as
/// governor, on its default clock and bound.
fn keyed() -> KeyedLimiter<str> {
    KeyedLimiter::new(limit()).unwrap_or_else(|e| panic!("one word holds the limit: {e}"))
}

/// One hit of the typed limiter; whether it was allowed.
fn keyed_hit(keyed: &KeyedLimiter<str>, id: &str) -> bool {
    matches!(keyed.hit(id, 1), Ok(ref d) if d.is_allowed())
}

fn hit_group(group: &mut Group<'_>, n: u32) {
    let ids = identifiers(n);
    let keys: Vec<Key> = ids.iter().map(|id| Key::from(id.as_str())).collect();
    let limit = limit();

    let governor = Governor::keyed(quota());
    // Same key set in the store before timing, as for ours after warm-up.
    for id in &ids {
        let _ = governor.check_key(id);
    }
    let mut i = 0;
    group.bench_function("governor", |b| {
        b.iter(|| black_box(governor.check_key(&ids[next(&mut i, ids.len())]).is_ok()));
    });

    let keyed = keyed();
    for id in &ids {
        let _ = keyed.hit(id, 1);
    }
    let mut i = 0;
    group.bench_function("gcra_keyed", |b| {
        b.iter(|| black_box(keyed_hit(&keyed, &ids[next(&mut i, ids.len())])));
    });

    for (name, strategy) in strategies() {
        let limiter = limiter_with(strategy, SystemClock);
        for key in &keys {
            hit(&limiter, &limit, key);
        }
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| black_box(hit(&limiter, &limit, &keys[next(&mut i, keys.len())])));
        });
        if name == "gcra" {
            // The same hits through keys prepared beforehand.
            let prepared: Vec<PreparedKey> =
                keys.iter().map(|k| limiter.prepare(&limit, k)).collect();
            let mut i = 0;
            group.bench_function("gcra_prepared", |b| {
                b.iter(|| {
                    let key = &prepared[next(&mut i, prepared.len())];
                    let decision = limiter.hit_prepared(key, 1).now_or_never();
                    black_box(matches!(decision, Some(Ok(ref d)) if d.is_allowed()))
                });
            });
        }
    }
}

fn hits(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit/1_key");
    hit_group(&mut group, 1);
    group.finish();
    let mut group = c.benchmark_group("hit/100k_keys");
    hit_group(&mut group, MANY_KEYS);
    group.finish();
}

/// `iters` calls of `work(thread, i)` on each of two threads at once; the wall time.
fn on_two_threads(iters: u64, work: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for t in 0..2 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters {
                    work(t, i);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

/// Two threads: on one key (`n = 1`) or on disjoint halves of `n` keys.
fn two_thread_group(group: &mut Group<'_>, n: u32) {
    let ids = identifiers(n);
    let keys: Vec<Key> = ids.iter().map(|id| Key::from(id.as_str())).collect();
    let limit = limit();
    // Thread `t` takes the keys of its half round-robin (both the only key if n = 1).
    let half = (ids.len() / 2).max(1);
    let pick = move |t: usize, i: u64| {
        let offset = if n == 1 { 0 } else { t * half };
        offset + usize::try_from(i % half as u64).unwrap_or(0)
    };

    let governor = Governor::keyed(quota());
    for id in &ids {
        let _ = governor.check_key(id);
    }
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, &|t, i| {
                black_box(governor.check_key(&ids[pick(t, i)]).is_ok());
            })
        });
    });
    let keyed = keyed();
    for id in &ids {
        let _ = keyed.hit(id, 1);
    }
    group.bench_function("gcra_keyed", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, &|t, i| {
                black_box(keyed_hit(&keyed, &ids[pick(t, i)]));
            })
        });
    });
    for (name, strategy) in strategies() {
        let limiter = limiter_with(strategy, SystemClock);
        for key in &keys {
            hit(&limiter, &limit, key);
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, &|t, i| {
                    black_box(hit(&limiter, &limit, &keys[pick(t, i)]));
                })
            });
        });
    }
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_2t/same_key");
    two_thread_group(&mut group, 1);
    group.finish();
    let mut group = c.benchmark_group("hit_2t/disjoint_100k");
    two_thread_group(&mut group, MANY_KEYS);
    group.finish();
}

/// One key on a manual clock moving 2 s every 10 calls, under `amount` per second.
fn manual_clock_group(group: &mut Group<'_>, amount: u32) {
    let step = Duration::from_secs(2);
    let governor_clock = FakeRelativeClock::default();
    let governor = Governor::dashmap_with_clock(
        Quota::per_second(per_second(amount)),
        governor_clock.clone(),
    );
    let id = "10.0.0.1".to_owned();
    let mut i = 0u32;
    group.bench_function("governor", |b| {
        b.iter(|| {
            i += 1;
            if i % 10 == 0 {
                governor_clock.advance(step);
            }
            black_box(governor.check_key(&id).is_ok())
        });
    });
    let limit = RateLimit::per_second(per_second(amount).into());
    let key = Key::from(id.as_str());
    for (name, strategy) in strategies() {
        let clock = ManualClock::new(1_000_000);
        let limiter = limiter_with(strategy, clock.clone());
        let mut i = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                if i % 10 == 0 {
                    clock.advance(step);
                }
                black_box(hit(&limiter, &limit, &key))
            });
        });
    }
}

fn rejections(c: &mut Criterion) {
    let mut group = c.benchmark_group("allowed/1_key");
    manual_clock_group(&mut group, PER_SECOND);
    group.finish();
    let mut group = c.benchmark_group("rejected/1_key");
    manual_clock_group(&mut group, 1);
    group.finish();
}

fn hit_all(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_all/1_key");
    let limit = limit();
    let two = [limit, RateLimit::per_minute(per_second(PER_SECOND).into())];
    let key = Key::from("10.0.0.1");
    for (name, strategy) in strategies() {
        let limiter = limiter_with(strategy, SystemClock);
        group.bench_function(format!("{name}/one_limit"), |b| {
            b.iter(|| black_box(hit(&limiter, &limit, &key)));
        });
        group.bench_function(format!("{name}/two_limits"), |b| {
            b.iter(|| {
                let decision = limiter.hit_all(&two, &key, 1).now_or_never();
                black_box(matches!(decision, Some(Ok(ref d)) if d.is_allowed()))
            });
        });
    }
    group.finish();
}

fn config() -> Criterion {
    let fast = std::env::var_os("LIMITER_BENCH_FAST").is_some_and(|v| v != "0");
    let (warm_up, measure, samples) = if fast {
        (Duration::from_millis(300), Duration::from_secs(1), 10)
    } else {
        (Duration::from_secs(1), Duration::from_secs(3), 30)
    };
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(measure)
        .sample_size(samples)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hits, two_threads, rejections, hit_all
}
criterion_main!(benches);
