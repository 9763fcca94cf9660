//! In-memory decisions next to governor, every variant interleaved in rounds, for the
//! benchmark report (`scripts/bench-report.sh`).
//!
//! ```text
//! cargo bench -p limiter-benches --bench compare -- [--rounds N] [--millis MS]
//! ```
//!
//! Each round times every variant of a case once, for `--millis` milliseconds (default
//! 200), in an order that starts one further each round; a figure is the median of
//! its rounds (`--rounds`, default 9). So a burst of load from elsewhere on the
//! machine lands on one round of every variant rather than on all rounds of one, and
//! the median drops it. The criterion bench `strategies` measures each variant once,
//! one after another, which is more precise on a quiet machine and less comparable
//! on a busy one.
//!
//! Cases (ns per hit; 1,000,000,000 per second, so every hit is allowed):
//!
//! - one key or 100,000 keys taken round-robin, on one thread or on two threads at
//!   once (both on the one key, or each on its own half of the keys; the time is the
//!   wall time divided by the hits of one thread);
//! - a two-limit `hit_all` (`1000000000 per second; 1000000000 per minute`) next to a
//!   single-limit `hit` on one key, per strategy (governor has no multi-limit call).
//!
//! `gcra_keyed` is the in-memory storage's typed GCRA limiter (`KeyedLimiter<str>`),
//! keyed on the same `String`s as governor.
//!
//! governor is keyed on the same `String`s (`"10.a.b.c"`) our [`Key`]s are built from,
//! through its default store and clock; our limiter uses its default `SystemClock`,
//! its futures driven with `now_or_never` (`MemoryStorage` never pends). Every key
//! is hit once before timing.
//!
//! Prints Markdown tables; with `LIMITER_BENCH_RESULTS=FILE`, also appends the figures
//! to FILE as tab-separated records for `scripts/bench-report.py`.

use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use futures::FutureExt;
use governor::{Quota, RateLimiter as Governor};
use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, RateLimit, RateLimiter, Strategy};
use limiter_memory::{KeyedLimiter, MemoryStorage};

const PER_SECOND: u32 = 1_000_000_000;
const MANY_KEYS: usize = 100_000;

/// A variant's work: one decision on the key at this index; whether it was allowed.
type Work<'a> = Box<dyn Fn(usize) -> bool + Sync + 'a>;

fn identifiers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

fn strategies() -> [(&'static str, Arc<dyn Strategy>); 4] {
    [
        ("fixed_window", Arc::new(FixedWindow)),
        ("moving_window", Arc::new(MovingWindow)),
        ("sliding_window", Arc::new(SlidingWindow)),
        ("gcra", Arc::new(Gcra)),
    ]
}

fn limiter(strategy: Arc<dyn Strategy>) -> RateLimiter {
    RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .strategy_arc(strategy)
        .build()
}

fn allowed<E>(decision: Option<Result<limiter_core::Decision, E>>) -> bool {
    matches!(decision, Some(Ok(ref d)) if d.is_allowed())
}

/// Runs `work` on `threads` threads for `time`, thread `t` cycling over its share of
/// `keys` key indices (all threads on index 0 when there is one key); the wall time
/// divided by the decisions of one thread, in ns.
fn measure(work: &Work<'_>, keys: usize, threads: usize, time: Duration) -> f64 {
    let stop = AtomicBool::new(false);
    let hits = AtomicU64::new(0);
    let start = Barrier::new(threads + 1);
    let share = (keys / threads).max(1);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, hits, start) = (&stop, &hits, &start);
                s.spawn(move || {
                    let lo = if keys == 1 { 0 } else { t * share };
                    let hi = lo + share;
                    let (mut at, mut n, mut passed) = (lo, 0u64, 0u64);
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            passed += u64::from(work(at));
                            at += 1;
                            if at == hi {
                                at = lo;
                            }
                        }
                        n += 256;
                    }
                    black_box(passed);
                    hits.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            let _ = handle.join();
        }
        began.elapsed()
    });
    let per_thread = hits.load(Ordering::Relaxed) as f64 / threads as f64;
    elapsed.as_nanos() as f64 / per_thread.max(1.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Times every variant in `rounds` interleaved rounds; the median ns per hit of each.
fn interleave(
    variants: &[(String, Work<'_>)],
    keys: usize,
    threads: usize,
    rounds: usize,
    time: Duration,
) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        for i in 0..variants.len() {
            let v = (round + i) % variants.len();
            samples[v].push(measure(&variants[v].1, keys, threads, time));
        }
    }
    samples.iter_mut().map(|s| median(s)).collect()
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

struct Args {
    rounds: usize,
    time: Duration,
}

fn args() -> Args {
    let mut parsed = Args {
        rounds: 9,
        time: Duration::from_millis(200),
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--rounds" => parsed.rounds = pair[1].parse().unwrap_or(parsed.rounds).max(1),
            "--millis" => {
                if let Ok(ms) = pair[1].parse() {
                    parsed.time = Duration::from_millis(ms);
                }
            }
            _ => {}
        }
    }
    parsed
}

fn main() {
    let Args { rounds, time } = args();
    let mut results = Results::open();
    let per_second = NonZeroU32::new(PER_SECOND).unwrap_or(NonZeroU32::MAX);
    let limit = RateLimit::per_second(per_second.into());

    let cases = [
        ("1 key, 1 thread", 1, 1),
        ("100,000 keys, 1 thread", MANY_KEYS, 1),
        ("1 key, 2 threads", 1, 2),
        ("100,000 keys, 2 threads", MANY_KEYS, 2),
    ];
    let table = "memory-hit";
    results.line(&[
        "table",
        table,
        "In-memory hit: ns per decision (lower is better)",
        "ns",
        "row=governor",
        "lower",
        "1,000,000,000 per second, every hit allowed; two threads: wall time over one thread's hits",
    ]);
    println!(
        "ns per hit, median of {rounds} rounds of {} ms\n",
        time.as_millis()
    );
    println!("| case | variant | ns/hit | vs governor |");
    println!("|---|---|---:|---:|");
    for (case, n, threads) in cases {
        let ids = identifiers(n);
        let keys: Vec<Key> = ids.iter().map(|id| Key::from(id.as_str())).collect();
        let governor = Governor::keyed(Quota::per_second(per_second));
        for id in &ids {
            let _ = governor.check_key(id);
        }
        let keyed = KeyedLimiter::<str>::new(limit)
            .unwrap_or_else(|e| panic!("one word holds the limit: {e}"));
        for id in &ids {
            let _ = keyed.hit(id, 1);
        }
        let mut variants: Vec<(String, Work<'_>)> = vec![
            (
                "governor".to_owned(),
                Box::new(|i: usize| governor.check_key(&ids[i]).is_ok()),
            ),
            (
                "gcra_keyed".to_owned(),
                Box::new(|i: usize| matches!(keyed.hit(&ids[i], 1), Ok(d) if d.is_allowed())),
            ),
        ];
        for (name, strategy) in strategies() {
            let limiter = limiter(strategy);
            for key in &keys {
                let _ = limiter.hit(&limit, key, 1).now_or_never();
            }
            let keys = &keys;
            variants.push((
                name.to_owned(),
                Box::new(move |i: usize| allowed(limiter.hit(&limit, &keys[i], 1).now_or_never())),
            ));
        }
        let medians = interleave(&variants, n, threads, rounds, time);
        for ((name, _), ns) in variants.iter().zip(&medians) {
            let ratio = ns / medians[0];
            println!("| {case} | {name} | {ns:.1} | {ratio:.2}x |");
            results.line(&["value", table, name, case, &format!("{ns:.2}")]);
        }
    }

    let table = "memory-hit-all";
    results.line(&[
        "table",
        table,
        "In-memory hit_all: two limits against one, ns per decision (lower is better)",
        "ns",
        "col=hit, one limit",
        "lower",
        "one key; 1000000000 per second, and 1000000000 per minute for the second limit",
    ]);
    println!("\n| strategy | hit, one limit | hit_all, two limits | ratio |");
    println!("|---|---:|---:|---:|");
    let two = [limit, RateLimit::per_minute(per_second.into())];
    let key = Key::from("10.0.0.1");
    let mut variants: Vec<(String, Work<'_>)> = Vec::new();
    for (name, strategy) in strategies() {
        let one = self::limiter(Arc::clone(&strategy));
        let both = self::limiter(strategy);
        let key = &key;
        let two = &two;
        variants.push((
            format!("{name}\thit, one limit"),
            Box::new(move |_| allowed(one.hit(&limit, key, 1).now_or_never())),
        ));
        variants.push((
            format!("{name}\thit_all, two limits"),
            Box::new(move |_| allowed(both.hit_all(two, key, 1).now_or_never())),
        ));
    }
    let medians = interleave(&variants, 1, 1, rounds, time);
    for (pair, ns) in variants.chunks(2).zip(medians.chunks(2)) {
        let name = pair[0].0.split('\t').next().unwrap_or_default();
        println!(
            "| {name} | {:.1} | {:.1} | {:.2}x |",
            ns[0],
            ns[1],
            ns[1] / ns[0]
        );
        for ((label, _), ns) in pair.iter().zip(ns) {
            let (row, col) = label.split_once('\t').unwrap_or((label, ""));
            results.line(&["value", table, row, col, &format!("{ns:.2}")]);
        }
    }
}
