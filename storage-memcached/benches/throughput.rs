//! Decisions per second on Memcached, next to raw increments (`ma`) on the same pool.
//!
//! Run with the test servers up (see `scripts/services/memcached.sh`):
//!
//! ```text
//! source scripts/lib.sh && source scripts/services/memcached.sh
//! cargo bench -p limiter-memcached --bench throughput
//! ```
//!
//! For 1 and 64 concurrent callers (tasks on a two-worker Tokio runtime), each
//! workload runs for `LIMITER_BENCH_SECS` seconds in all (default 2), in three rounds
//! that interleave the workloads (each after a 100 ms warm-up); a figure is the median
//! of its rounds:
//!
//! - `raw ma`: one `ma <key> N60 v` per call, the cheapest write Memcached has;
//! - each built-in strategy through a `RateLimiter` (the generic compare-and-set path:
//!   `mg` then `ms`), on `1000000 per hour`, so every hit is admitted and writes.
//!
//! "distinct" keys: each caller cycles over 1,024 keys of its own. "hot": every caller
//! hits one key; decisions that fail with `Contention` (the limiter's default of 128
//! compare-and-set attempts used up) are counted apart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter_core::strategy::{BuiltIn, FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, RateLimit, RateLimiter, StorageErrorKind};
use limiter_memcached::MemcachedStorage;

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Raw,
    Strategy(BuiltIn),
}

impl Workload {
    fn name(self) -> String {
        match self {
            Workload::Raw => "raw ma".to_owned(),
            Workload::Strategy(s) => s.name().to_owned(),
        }
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    contention: AtomicU64,
    other_errors: AtomicU64,
}

struct Outcome {
    per_second: f64,
    contention: u64,
    other_errors: u64,
    total: u64,
}

fn strategy(builtin: BuiltIn) -> Arc<dyn limiter_core::Strategy> {
    match builtin {
        BuiltIn::MovingWindow => Arc::new(MovingWindow),
        BuiltIn::SlidingWindow => Arc::new(SlidingWindow),
        BuiltIn::Gcra => Arc::new(Gcra),
        _ => Arc::new(FixedWindow),
    }
}

async fn run(
    storage: &MemcachedStorage,
    workload: Workload,
    callers: usize,
    hot: bool,
    secs: f64,
    run_id: u64,
) -> Outcome {
    let limit: RateLimit = "1000000 per hour".parse().expect("a limit");
    let limiter = match workload {
        Workload::Strategy(s) => Some(
            RateLimiter::builder(Arc::new(storage.clone()))
                .strategy_arc(strategy(s))
                .namespace(format!("bench-{run_id}"))
                .build(),
        ),
        Workload::Raw => None,
    };
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (storage, limiter) = (storage.clone(), limiter.clone());
        let (counts, stop, measuring) = (counts.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = if hot {
                    "hot".to_owned()
                } else {
                    format!("c{caller}-k{}", i % 1024)
                };
                i += 1;
                let key = Key::new([id.as_str()]);
                let result = match &limiter {
                    Some(limiter) => {
                        limiter
                            .hit(&limit, &key, 1)
                            .await
                            .map(|_| ())
                            .map_err(|e| match e {
                                limiter_core::Error::Storage(e) => e.kind(),
                                _ => StorageErrorKind::Other,
                            })
                    }
                    None => {
                        let stored = limiter_core::StorageKey::new(&format!("bench-{run_id}"), &id);
                        storage.raw_increment(&stored).await.map_err(|e| e.kind())
                    }
                };
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let counter = match result {
                    Ok(()) => &counts.ok,
                    Err(StorageErrorKind::Contention) => &counts.contention,
                    Err(_) => &counts.other_errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let ok = counts.ok.load(Ordering::Relaxed);
    let contention = counts.contention.load(Ordering::Relaxed);
    let other_errors = counts.other_errors.load(Ordering::Relaxed);
    Outcome {
        per_second: ok as f64 / elapsed,
        contention,
        other_errors,
        total: ok + contention + other_errors,
    }
}

/// Interleaved rounds per configuration.
const ROUNDS: usize = 3;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let Ok(url) = std::env::var("LIMITER_MEMCACHED_URL") else {
        panic!(
            "LIMITER_MEMCACHED_URL is not set: start the servers with \
             `source scripts/lib.sh && source scripts/services/memcached.sh` in this shell"
        );
    };
    let secs: f64 = std::env::var("LIMITER_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let storage = MemcachedStorage::from_uri(&format!("{url}?pool_size=64"))
            .await
            .expect("a valid uri");
        let workloads = [
            Workload::Raw,
            Workload::Strategy(BuiltIn::FixedWindow),
            Workload::Strategy(BuiltIn::MovingWindow),
            Workload::Strategy(BuiltIn::SlidingWindow),
            Workload::Strategy(BuiltIn::Gcra),
        ];
        println!(
            "| keys | callers | workload | calls/s | % of raw ma | Contention errors | other errors |"
        );
        println!("|---|---:|---|---:|---:|---:|---:|");
        let mut run_id = u64::from(std::process::id()) * 1_000;
        for hot in [false, true] {
            for callers in [1, 64] {
                // Rounds interleave the workloads, so that a burst of load from elsewhere
                // on the machine hits them alike; each figure is the median of its rounds.
                let mut rates = vec![Vec::new(); workloads.len()];
                let mut contention = vec![(0u64, 0u64, 0u64); workloads.len()];
                for _ in 0..ROUNDS {
                    for (w, workload) in workloads.iter().enumerate() {
                        run_id += 1;
                        let o = run(&storage, *workload, callers, hot, secs / ROUNDS as f64, run_id)
                            .await;
                        rates[w].push(o.per_second);
                        contention[w].0 += o.contention;
                        contention[w].1 += o.other_errors;
                        contention[w].2 += o.total;
                    }
                }
                let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
                for (w, workload) in workloads.iter().enumerate() {
                    let (contended, other, total) = contention[w];
                    let share = 100.0 * medians[w] / medians[0].max(1.0);
                    let contended = if total > 0 {
                        format!("{contended} of {total} ({:.1}%)", 100.0 * contended as f64 / total as f64)
                    } else {
                        "0".to_owned()
                    };
                    println!(
                        "| {} | {callers} | {} | {:.0} | {share:.0}% | {contended} | {other} |",
                        if hot { "one hot key" } else { "distinct" },
                        workload.name(),
                        medians[w],
                    );
                }
            }
        }
    });
}
