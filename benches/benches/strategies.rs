//! `RateLimiter::hit` on `MemoryStorage`, per strategy, next to governor's keyed
//! limiter with the same quota, in the same run.
//!
//! Run with `cargo bench -p limiter-benches --bench strategies`.
//!
//! Groups (ns per hit; divide a row by the `governor` row for the ratio):
//! - `hit/1_key`, `hit/100k_keys`: `governor` and the four strategies. One key, or
//!   100,000 keys taken round-robin. Keys and limits are built before the timed loop.
//!   governor is keyed on the same `String`s (`"10.a.b.c"`) that our [`Key`]s are
//!   built from, through its default store (`DashMap`, SipHash) and clock (quanta,
//!   which reads the TSC). Ours builds and hashes the whole stored key
//!   (`LIMITER/<strategy>/10.a.b.c/1000000000/1/second`) on every hit. The quota is
//!   1,000,000,000 per second for both, so that practically every hit is allowed even
//!   on one key at tens of millions of hits per second (with 1,000,000 per second, one
//!   key would run out within a tenth of a second and the rest would measure the
//!   rejection path). Our limiter uses its default `SystemClock`; our futures are
//!   driven with `FutureExt::now_or_never` (`MemoryStorage` never pends).
//! - `driver/1_key`: GCRA hits driven by `now_or_never`, by a current-thread tokio
//!   runtime's `block_on` and by `futures::executor::block_on`.
//! - `breakdown/1_key`: where a GCRA hit's time goes: the storage's immediate native
//!   call alone (key string built beforehand, fixed timestamp), building the stored
//!   key, and reading the clock.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use futures::FutureExt;
use governor::{Quota, RateLimiter as Governor};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, Op, SlidingWindow};
use limiter_core::{
    BuiltIn, Clock, Key, KeyOp, Native, RateLimit, RateLimiter, Storage, Strategy, SystemClock,
};
use limiter_memory::MemoryStorage;

const PER_SECOND: u32 = 1_000_000_000;
const MANY_KEYS: u32 = 100_000;

fn identifiers(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

fn per_second() -> NonZeroU32 {
    NonZeroU32::new(PER_SECOND).unwrap_or(NonZeroU32::MAX)
}

fn limit() -> RateLimit {
    RateLimit::per_second(per_second().into())
}

fn quota() -> Quota {
    Quota::per_second(per_second())
}

fn limiter(strategy: impl Strategy) -> RateLimiter {
    RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .strategy(strategy)
        .build()
}

fn strategies() -> [(&'static str, RateLimiter); 4] {
    [
        ("fixed_window", limiter(FixedWindow)),
        ("moving_window", limiter(MovingWindow)),
        ("sliding_window", limiter(SlidingWindow)),
        ("gcra", limiter(Gcra)),
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

fn hit_group(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, n: u32) {
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

    for (name, limiter) in strategies() {
        for key in &keys {
            let _ = limiter.hit(&limit, key, 1).now_or_never();
        }
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let key = &keys[next(&mut i, keys.len())];
                let decision = limiter.hit(&limit, key, 1).now_or_never();
                let allowed = matches!(decision, Some(Ok(ref d)) if d.is_allowed());
                assert!(decision.is_some(), "MemoryStorage never pends");
                black_box(allowed)
            });
        });
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

fn drivers(c: &mut Criterion) {
    let mut group = c.benchmark_group("driver/1_key");
    let limiter = limiter(Gcra);
    let limit = limit();
    let key = Key::from("10.0.0.1");
    group.bench_function("now_or_never", |b| {
        b.iter(|| black_box(limiter.hit(&limit, &key, 1).now_or_never().is_some()));
    });
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => {
            group.bench_function("tokio_current_thread", |b| {
                b.iter(|| black_box(runtime.block_on(limiter.hit(&limit, &key, 1)).is_ok()));
            });
        }
        Err(e) => eprintln!("no tokio runtime: {e}"),
    }
    group.bench_function("futures_block_on", |b| {
        b.iter(|| black_box(futures::executor::block_on(limiter.hit(&limit, &key, 1)).is_ok()));
    });
    group.finish();
}

fn breakdown(c: &mut Criterion) {
    let mut group = c.benchmark_group("breakdown/1_key");
    let limiter = limiter(Gcra);
    let storage = MemoryStorage::new();
    let limit = limit();
    let key = Key::from("10.0.0.1");
    let stored = limiter.storage_key(&limit, &key);
    let now = SystemClock.now();
    group.bench_function("limiter_hit", |b| {
        b.iter(|| black_box(limiter.hit(&limit, &key, 1).now_or_never().is_some()));
    });
    group.bench_function("storage_gcra", |b| {
        b.iter(|| {
            let op = KeyOp {
                key: &stored,
                limit: &limit,
                op: Op::Hit { cost: 1 },
                now,
            };
            black_box(matches!(
                storage.apply(BuiltIn::Gcra, op),
                Native::Ready(Ok(_))
            ))
        });
    });
    group.bench_function("storage_key", |b| {
        b.iter(|| black_box(limiter.storage_key(&limit, &key).as_str().len()));
    });
    group.bench_function("system_clock", |b| {
        b.iter(|| black_box(SystemClock.now()));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = hits, drivers, breakdown
}
criterion_main!(benches);
