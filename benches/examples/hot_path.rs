//! A fixed number of hits on the in-memory hot path, for instruction counts.
//!
//! ```text
//! cargo build --release -p limiter-benches --example hot_path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/hot_path gcra 1 1000000
//! ```
//!
//! Arguments: the strategy (`fixed_window`, `moving_window`, `sliding_window`, `gcra`,
//! `gcra_keyed` (the typed `KeyedLimiter`) or `governor`; a suffix `+prepared` hits through `RateLimiter::prepare`, `+two` a
//! two-limit `hit_all`, `+allowed` and `+rejected` the manual-clock runs of the
//! `allowed/` and `rejected/` bench groups), the number of keys (taken round-robin) and the number of timed
//! hits. Every key is hit once before the timed hits, which run inside `timed` alone:
//! `--collect-atstart=no --toggle-collect=hot_path::timed` counts them and nothing
//! else (`scripts/instructions.sh` does that).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;

use futures::FutureExt;
use governor::{Quota, RateLimiter as Governor};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{
    Decision, Error, Key, ManualClock, PreparedKey, RateLimit, RateLimiter, Strategy,
};
use limiter_memory::{KeyedLimiter, MemoryStorage};

const PER_SECOND: u32 = 1_000_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let strategy = args.get(1).map_or("gcra", String::as_str);
    let keys: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
    let hits: usize = args
        .get(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let ids: Vec<String> = (0..keys.max(1))
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let per_second = NonZeroU32::new(PER_SECOND).unwrap_or(NonZeroU32::MAX);

    if strategy == "governor" {
        let governor = Governor::keyed(Quota::per_second(per_second));
        for id in &ids {
            let _ = governor.check_key(id);
        }
        timed(hits, &|i| governor.check_key(&ids[i % ids.len()]).is_ok());
        return;
    }
    if strategy == "gcra_keyed" {
        let Ok(keyed) = KeyedLimiter::<str>::new(RateLimit::per_second(per_second.into())) else {
            panic!("one word holds the limit");
        };
        for id in &ids {
            let _ = keyed.hit(id, 1);
        }
        timed(
            hits,
            &|i| matches!(keyed.hit(&ids[i % ids.len()], 1), Ok(d) if d.is_allowed()),
        );
        return;
    }

    let (strategy, mode) = strategy.split_once('+').unwrap_or((strategy, ""));
    let strategy: Arc<dyn Strategy> = match strategy {
        "fixed_window" => Arc::new(FixedWindow),
        "moving_window" => Arc::new(MovingWindow),
        "sliding_window" => Arc::new(SlidingWindow),
        _ => Arc::new(Gcra),
    };
    let manual = ManualClock::new(1_000_000);
    let builder = RateLimiter::builder(Arc::new(MemoryStorage::new())).strategy_arc(strategy);
    let limiter = match mode {
        "allowed" | "rejected" => builder.clock(manual.clone()).build(),
        _ => builder.build(),
    };
    let limit = match mode {
        "rejected" => RateLimit::per_second(std::num::NonZeroU64::MIN),
        _ => RateLimit::per_second(per_second.into()),
    };
    let keys: Vec<Key> = ids.iter().map(|id| Key::from(id.as_str())).collect();
    for key in &keys {
        let _ = limiter.hit(&limit, key, 1).now_or_never();
    }
    let allowed = |decision: Option<Result<Decision, Error>>| matches!(decision, Some(Ok(d)) if d.is_allowed());
    match mode {
        "prepared" => {
            let prepared: Vec<PreparedKey> =
                keys.iter().map(|k| limiter.prepare(&limit, k)).collect();
            timed(hits, &|i| {
                allowed(
                    limiter
                        .hit_prepared(&prepared[i % keys.len()], 1)
                        .now_or_never(),
                )
            });
        }
        "two" => {
            let two = [limit, RateLimit::per_minute(per_second.into())];
            timed(hits, &|i| {
                allowed(
                    limiter
                        .hit_all(&two, &keys[i % keys.len()], 1)
                        .now_or_never(),
                )
            });
        }
        "allowed" | "rejected" => timed(hits, &|i| {
            if i % 10 == 0 {
                manual.advance(std::time::Duration::from_secs(2));
            }
            allowed(limiter.hit(&limit, &keys[i % keys.len()], 1).now_or_never())
        }),
        _ => timed(hits, &|i| {
            allowed(limiter.hit(&limit, &keys[i % keys.len()], 1).now_or_never())
        }),
    }
}

/// The timed hits: `hit(i)` for `i` in `0..hits`.
#[inline(never)]
fn timed(hits: usize, hit: &dyn Fn(usize) -> bool) {
    let mut allowed = 0usize;
    for i in 0..hits {
        allowed += usize::from(hit(i));
    }
    black_box(allowed);
}
