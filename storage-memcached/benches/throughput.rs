//! Decisions per second on Memcached, next to raw increments (`ma`) on the same pool.
//!
//! Run with the test servers up (see `scripts/services/memcached.sh`):
//!
//! ```text
//! source scripts/lib.sh && source scripts/services/memcached.sh
//! cargo bench -p limiter-memcached --bench throughput
//! ```
//!
//! For 1, 16 and 64 concurrent callers (tasks on a two-worker Tokio runtime), each
//! workload runs for `LIMITER_BENCH_SECS` seconds in all (default 2), in
//! `LIMITER_BENCH_ROUNDS` rounds (default 3) that interleave the workloads, each
//! starting one further (each run after a warm-up of a tenth of it, at least 20 ms);
//! a figure is the median of its rounds. `LIMITER_BENCH_RESULTS=FILE` also appends
//! the figures to FILE for `scripts/bench-report.py`.
//!
//! - `raw ma`: one `ma <key> N60 v` per call, the cheapest write Memcached has;
//! - each built-in strategy through a `RateLimiter` (the generic compare-and-set path:
//!   `mg` then `ms`), on `1000000 per hour`, so every hit is admitted and writes:
//!   `hit` without and with coalescing
//!   ([`RateLimiterBuilder::coalesce`](limiter_core::RateLimiterBuilder::coalesce)),
//!   and a two-limit `hit_all` (`1000000 per hour; 10000000 per day`), without and
//!   with coalescing (each limit's operations queued per key).
//!
//! "distinct" keys: each caller cycles over 1,024 keys of its own. "hot": every caller
//! hits one key; decisions that fail with `Contention` (the limiter's default of 128
//! compare-and-set attempts used up) are counted apart.

use std::error::Error;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter_core::strategy::{BuiltIn, FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, RateLimiter, StorageErrorKind, DEFAULT_MAX_BATCH};
use limiter_memcached::MemcachedStorage;

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Raw,
    /// `hit`, coalesced or not.
    Hit(BuiltIn, bool),
    /// A two-limit `hit_all`, each limit's operations coalesced or not.
    HitAll(BuiltIn, bool),
}

impl Workload {
    fn all() -> Vec<Workload> {
        let mut all = vec![Workload::Raw];
        for s in BuiltIn::ALL {
            all.extend([
                Workload::Hit(s, false),
                Workload::Hit(s, true),
                Workload::HitAll(s, false),
                Workload::HitAll(s, true),
            ]);
        }
        all
    }

    fn name(self) -> String {
        match self {
            Workload::Raw => "raw ma".to_owned(),
            Workload::Hit(s, false) => format!("{s}: hit"),
            Workload::Hit(s, true) => format!("{s}: hit, coalesced"),
            Workload::HitAll(s, false) => format!("{s}: hit_all, two limits"),
            Workload::HitAll(s, true) => format!("{s}: hit_all, two limits, coalesced"),
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
    time: Duration,
    run_id: u64,
) -> Result<Outcome, Box<dyn Error>> {
    let limits = Arc::new(limiter_core::parse_many(
        "1000000 per hour; 10000000 per day",
    )?);
    let builder = |s: BuiltIn| {
        RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(strategy(s))
            .namespace(format!("bench-{run_id}"))
    };
    let (limiter, all) = match workload {
        Workload::Hit(s, coalesce) => (
            Some(
                builder(s)
                    .coalesce(coalesce.then_some(DEFAULT_MAX_BATCH))
                    .build(),
            ),
            false,
        ),
        Workload::HitAll(s, coalesce) => (
            Some(
                builder(s)
                    .coalesce(coalesce.then_some(DEFAULT_MAX_BATCH))
                    .build(),
            ),
            true,
        ),
        Workload::Raw => (None, false),
    };
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (storage, limiter, limits) = (storage.clone(), limiter.clone(), limits.clone());
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
                let kind = |e: limiter_core::Error| match e {
                    limiter_core::Error::Storage(e) => e.kind(),
                    _ => StorageErrorKind::Other,
                };
                let result = match &limiter {
                    Some(limiter) if all => limiter
                        .hit_all(&limits, &key, 1)
                        .await
                        .map(|_| ())
                        .map_err(kind),
                    Some(limiter) => limiter
                        .hit(&limits[0], &key, 1)
                        .await
                        .map(|_| ())
                        .map_err(kind),
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
    tokio::time::sleep((time / 10).max(Duration::from_millis(20))).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(time).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let ok = counts.ok.load(Ordering::Relaxed);
    let contention = counts.contention.load(Ordering::Relaxed);
    let other_errors = counts.other_errors.load(Ordering::Relaxed);
    Ok(Outcome {
        per_second: ok as f64 / elapsed,
        contention,
        other_errors,
        total: ok + contention + other_errors,
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n: &f64| *n > 0.0)
        .unwrap_or(default)
}

/// Tab-separated records for the report, appended to `LIMITER_BENCH_RESULTS`.
struct Results(Option<std::fs::File>);

impl Results {
    fn open() -> Results {
        let file = std::env::var_os("LIMITER_BENCH_RESULTS").and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        });
        Results(file)
    }

    fn line(&mut self, fields: &[&str]) {
        if let Some(file) = &mut self.0 {
            let _ = writeln!(file, "{}", fields.join("\t"));
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("LIMITER_MEMCACHED_URL").map_err(|_| {
        "LIMITER_MEMCACHED_URL is not set: start the servers with \
         `source scripts/lib.sh && source scripts/services/memcached.sh` in this shell"
    })?;
    let secs = env_number("LIMITER_BENCH_SECS", 2.0);
    let rounds = std::env::var("LIMITER_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let time = Duration::from_secs_f64(secs / rounds as f64);
    let mut results = Results::open();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let storage = MemcachedStorage::from_uri(&format!("{url}?pool_size=64")).await?;
        let workloads = Workload::all();
        println!(
            "| keys | callers | workload | calls/s | % of raw ma | Contention errors | other errors |"
        );
        println!("|---|---:|---|---:|---:|---:|---:|");
        let mut run_id = u64::from(std::process::id()) * 1_000;
        for hot in [true, false] {
            let (table, keys) = if hot {
                ("memcached-hot", "one hot key")
            } else {
                ("memcached-many", "distinct keys")
            };
            results.line(&[
                "table",
                table,
                &format!("Memcached, {keys}: decisions per second (higher is better)"),
                "/s",
                "row=raw ma",
                "higher",
                &format!(
                    "raw ma: one meta increment per call, the cheapest write; \
                     medians of {rounds} interleaved rounds of {:.2} s",
                    time.as_secs_f64()
                ),
            ]);
            for callers in [1, 16, 64] {
                let column = if callers == 1 {
                    "1 caller".to_owned()
                } else {
                    format!("{callers} callers")
                };
                // Rounds interleave the workloads, so that a burst of load from elsewhere
                // on the machine hits them alike; each figure is the median of its rounds.
                let mut rates = vec![Vec::new(); workloads.len()];
                let mut contention = vec![(0u64, 0u64, 0u64); workloads.len()];
                for round in 0..rounds {
                    for i in 0..workloads.len() {
                        let w = (round + i) % workloads.len();
                        run_id += 1;
                        let o = run(&storage, workloads[w], callers, hot, time, run_id).await?;
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
                        format!(
                            "{contended} of {total} ({:.1}%)",
                            100.0 * contended as f64 / total as f64
                        )
                    } else {
                        "0".to_owned()
                    };
                    println!(
                        "| {keys} | {callers} | {} | {:.0} | {share:.0}% | {contended} | {other} |",
                        workload.name(),
                        medians[w],
                    );
                    results.line(&[
                        "value",
                        table,
                        &workload.name(),
                        &column,
                        &format!("{:.1}", medians[w]),
                    ]);
                }
            }
        }
        Ok(())
    })
}
