//! `limiter bench`: decisions per second and their latency on a storage.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter::strategy::BuiltIn;
use limiter::{Key, RateLimit, RateLimiter};
use serde_json::json;

use super::{limiter, parse_strategy, storage};
use crate::output::{duration, millis, percentile, print_json};
use crate::Failure;

/// Arguments of `limiter bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The storage, as a URI.
    #[arg(long, value_name = "URI")]
    storage: String,
    /// The strategy to decide with.
    #[arg(long, value_parser = parse_strategy, default_value = "fixed-window")]
    strategy: BuiltIn,
    /// How many decisions are in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// How long to run, such as 10s or 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// How many distinct keys the decisions spread over.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    keys: u64,
    /// The share of decisions made on keys that are over their limit (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    reject_ratio: f64,
}

/// A duration such as `500ms`, `10s` or `1m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    limiter_options::duration(text)
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a ratio from 0 to 1")),
    }
}

/// A small, fast generator: no need for statistical quality here.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct Counts {
    decisions: AtomicU64,
    allowed: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
}

struct Plan {
    limiter: RateLimiter,
    open: RateLimit,
    spent: RateLimit,
    keys: u64,
    spent_keys: u64,
    reject_ratio: f64,
    until: Instant,
}

async fn worker(
    plan: Arc<Plan>,
    counts: Arc<Counts>,
    seed: u64,
) -> (Vec<Duration>, Option<String>) {
    let mut rng = XorShift(seed | 1);
    let mut samples = Vec::new();
    let mut first_error = None;
    while Instant::now() < plan.until {
        let over = rng.unit() < plan.reject_ratio;
        let (limit, key) = if over {
            let index = rng.next() % plan.spent_keys;
            (&plan.spent, Key::new(["spent", &index.to_string()]))
        } else {
            let index = rng.next() % plan.keys;
            (&plan.open, Key::new(["open", &index.to_string()]))
        };
        let start = Instant::now();
        let result = plan.limiter.hit(limit, &key, 1).await;
        samples.push(start.elapsed());
        counts.decisions.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(d) if d.is_allowed() => counts.allowed.fetch_add(1, Ordering::Relaxed),
            Ok(_) => counts.rejected.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                counts.errors.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
    (samples, first_error)
}

pub(crate) async fn run(args: BenchArgs, json: bool) -> Result<(), Failure> {
    let storage = storage(&args.storage).await?;
    storage.check().await?;
    // A namespace of its own, so that the run never touches a service's counters.
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| {
            u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(32)
        });
    let namespace = format!("limiter-bench-{}-{seed:x}", std::process::id());
    let limiter = limiter(storage, args.strategy, Some(&namespace));
    let open = super::parse_limit("1000000000 per hour")?;
    let spent = super::parse_limit("1 per hour")?;
    // Decisions over the limit go to keys spent beforehand (at most 1,000 of them).
    let spent_keys = if args.reject_ratio > 0.0 {
        args.keys.min(1000)
    } else {
        1
    };
    if args.reject_ratio > 0.0 {
        for index in 0..spent_keys {
            let _spent = limiter
                .hit(&spent, &Key::new(["spent", &index.to_string()]), 1)
                .await?;
        }
    }
    let keys = args.keys;
    let started = Instant::now();
    let plan = Arc::new(Plan {
        limiter,
        open,
        spent,
        keys,
        spent_keys,
        reject_ratio: args.reject_ratio,
        until: started + args.duration,
    });
    let counts = Arc::new(Counts::default());
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let seed = seed.wrapping_add(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            tokio::spawn(worker(plan.clone(), counts.clone(), seed))
        })
        .collect();
    let progress = std::io::stderr().is_terminal().then(|| {
        let counts = counts.clone();
        let total = args.duration;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let elapsed = started.elapsed();
                let n = counts.decisions.load(Ordering::Relaxed);
                let rate = n as f64 / elapsed.as_secs_f64().max(1e-9);
                eprint!(
                    "\r  {:>5.1}s of {}  {n} decisions  {rate:.0}/s   ",
                    elapsed.as_secs_f64(),
                    duration(total)
                );
                let _ = std::io::stderr().flush();
            }
        })
    });
    let mut samples = Vec::new();
    let mut first_error = None;
    for worker in workers {
        let (mut s, e) = worker.await?;
        samples.append(&mut s);
        if first_error.is_none() {
            first_error = e;
        }
    }
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    samples.sort();
    let decisions = counts.decisions.load(Ordering::Relaxed);
    let (allowed, rejected, errors) = (
        counts.allowed.load(Ordering::Relaxed),
        counts.rejected.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
    );
    if decisions > 0 && errors == decisions {
        return Err(Failure(format!(
            "every decision failed: {}",
            first_error.unwrap_or_default()
        )));
    }
    let rate = decisions as f64 / elapsed.as_secs_f64().max(1e-9);
    let share = |n: u64| {
        if decisions == 0 {
            0.0
        } else {
            n as f64 / decisions as f64
        }
    };
    let (p50, p90, p99) = (
        percentile(&samples, 500),
        percentile(&samples, 900),
        percentile(&samples, 990),
    );
    let max = samples.last().copied().unwrap_or_default();
    if json {
        print_json(&json!({
            "storage": limiter::config::redact(&args.storage),
            "strategy": args.strategy.name(),
            "concurrency": args.concurrency,
            "duration_s": elapsed.as_secs_f64(),
            "keys": keys,
            "decisions": decisions,
            "decisions_per_s": rate,
            "allowed": allowed,
            "rejected": rejected,
            "errors": errors,
            "reject_ratio": share(rejected),
            "p50_ms": millis(p50),
            "p90_ms": millis(p90),
            "p99_ms": millis(p99),
            "max_ms": millis(max),
        }));
    } else {
        println!(
            "{} on {}, {} in flight, {} keys, {}",
            args.strategy.name(),
            limiter::config::redact(&args.storage),
            args.concurrency,
            keys,
            duration(elapsed)
        );
        println!(
            "{decisions} decisions, {rate:.0}/s: {allowed} allowed, {rejected} rejected ({:.1}%), {errors} errors",
            share(rejected) * 100.0
        );
        println!(
            "latency: p50 {}  p90 {}  p99 {}  max {}",
            duration(p50),
            duration(p90),
            duration(p99),
            duration(max)
        );
        if let Some(e) = first_error {
            println!("first error: {e}");
        }
    }
    Ok(())
}
