//! Bytes per tracked key: the growth of the resident set while 1,000,000 keys are
//! stored (one hit each, on a clock that never moves, so nothing expires), per
//! strategy, for the storage's typed GCRA limiter (`gcra_keyed`, which keeps a key's
//! hash, not its bytes) and for governor's keyed limiter with the same keys.
//!
//! Run with `cargo bench -p limiter-benches --bench memory`; `LIMITER_BENCH_FAST=1`
//! stores 100,000 keys instead. Each case runs in a child process of its own, so that
//! memory freed by one case is not reused by the next.
//!
//! Keys are `Key::from("10.a.b.c")` (governor: the same `String`s), the limit
//! `100 per minute`, so stored keys look like
//! `LIMITER/fixed-window/10.0.0.1/100/1/minute` (42 bytes).

use std::num::NonZeroU32;
use std::process::Command;
use std::sync::Arc;

use futures::FutureExt;
use governor::{Quota, RateLimiter as Governor};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Strategy};
use limiter_memory::{KeyedLimiter, MemoryOptions, MemoryStorage};

const CASES: [&str; 6] = [
    "gcra_keyed",
    "fixed_window",
    "moving_window",
    "sliding_window",
    "gcra",
    "governor",
];

/// The limit of every case: 100 per minute.
fn limit() -> RateLimit {
    RateLimit::per_minute(std::num::NonZeroU64::new(100).unwrap_or(std::num::NonZeroU64::MIN))
}

/// The resident set size in bytes, from `/proc/self/statm` (pages of 4 KiB).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn identifiers(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

/// Stores `n` keys under `case` and prints the bytes per key.
fn measure(case: &str, n: u32) {
    let ids = identifiers(n);
    let keys: Vec<Key> = ids.iter().map(|id| Key::from(id.as_str())).collect();
    let Some(before) = rss_bytes() else {
        println!("{case}: no /proc/self/statm, skipped");
        return;
    };
    let stored = if case == "governor" {
        let governor = Governor::keyed(Quota::per_minute(
            NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
        ));
        for id in &ids {
            let _ = governor.check_key(id);
        }
        let len = governor.len();
        let after = rss_bytes().unwrap_or(before);
        report(case, n, len, before, after);
        return;
    } else if case == "gcra_keyed" {
        // Unbounded, as the storage below.
        let options = MemoryOptions::new().unbounded();
        let Ok(keyed) = KeyedLimiter::<str>::with_options(limit(), &options) else {
            println!("{case}: one word cannot hold the limit, skipped");
            return;
        };
        for id in &ids {
            let _ = keyed.hit(id, 1);
        }
        let after = rss_bytes().unwrap_or(before);
        report(case, n, keyed.len(), before, after);
        return;
    } else {
        let strategy: Arc<dyn Strategy> = match case {
            "fixed_window" => Arc::new(FixedWindow),
            "moving_window" => Arc::new(MovingWindow),
            "sliding_window" => Arc::new(SlidingWindow),
            _ => Arc::new(Gcra),
        };
        // Unbounded: the default 64 MiB byte bound would evict keys before the
        // millionth, and the figure is what a stored key costs.
        let storage = Arc::new(MemoryStorage::with_options(
            MemoryOptions::new().unbounded(),
        ));
        let limiter = RateLimiter::builder(storage.clone())
            .strategy_arc(strategy)
            .clock(ManualClock::new(1_000_000))
            .build();
        let limit = limit();
        for key in &keys {
            let _ = limiter.hit(&limit, key, 1).now_or_never();
        }
        let after = rss_bytes().unwrap_or(before);
        report(case, n, storage.len(), before, after);
        storage
    };
    drop(stored);
}

fn report(case: &str, n: u32, len: usize, before: u64, after: u64) {
    let per_key = after.saturating_sub(before) as f64 / f64::from(n);
    println!("memory/{case:<16} {per_key:>7.1} bytes per key ({len} keys stored)");
}

fn main() {
    let fast = std::env::var_os("LIMITER_BENCH_FAST").is_some_and(|v| v != "0");
    let n = if fast { 100_000 } else { 1_000_000 };
    if let Ok(case) = std::env::var("LIMITER_MEMORY_CASE") {
        measure(&case, n);
        return;
    }
    // `cargo bench` passes a filter and flags; a filter picks cases by substring.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("cannot find this binary to run the cases");
        return;
    };
    for case in CASES {
        if !format!("memory/{case}").contains(&filter) {
            continue;
        }
        match Command::new(&exe).env("LIMITER_MEMORY_CASE", case).status() {
            Ok(status) if status.success() => {}
            other => eprintln!("{case}: {other:?}"),
        }
    }
}
