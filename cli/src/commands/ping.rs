//! `limiter ping`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::storage;
use crate::output::{duration, millis, percentile, print_json};
use crate::Failure;

/// Arguments of `limiter ping`.
#[derive(Debug, clap::Args)]
pub(crate) struct PingArgs {
    /// The storage, as a URI.
    #[arg(long, value_name = "URI")]
    storage: String,
    /// How many round trips to measure.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
}

pub(crate) async fn run(args: PingArgs, json: bool) -> Result<(), Failure> {
    let uri = limiter::config::redact(&args.storage);
    let connect_start = Instant::now();
    let storage = storage(&args.storage).await?;
    let connect = connect_start.elapsed();
    let mut samples: Vec<Duration> = Vec::with_capacity(args.count as usize);
    for _ in 0..args.count {
        let start = Instant::now();
        storage
            .check()
            .await
            .map_err(|e| Failure(format!("storage {uri} is not healthy: {e}")))?;
        samples.push(start.elapsed());
    }
    samples.sort();
    let (p50, p90, p99) = (
        percentile(&samples, 500),
        percentile(&samples, 900),
        percentile(&samples, 990),
    );
    let (min, max) = (
        samples.first().copied().unwrap_or_default(),
        samples.last().copied().unwrap_or_default(),
    );
    if json {
        print_json(&json!({
            "storage": uri,
            "healthy": true,
            "connect_ms": millis(connect),
            "count": args.count,
            "min_ms": millis(min),
            "p50_ms": millis(p50),
            "p90_ms": millis(p90),
            "p99_ms": millis(p99),
            "max_ms": millis(max),
        }));
    } else {
        println!("{uri}: healthy (connected in {})", duration(connect));
        println!(
            "{} round trips: min {}  p50 {}  p90 {}  p99 {}  max {}",
            args.count,
            duration(min),
            duration(p50),
            duration(p90),
            duration(p99),
            duration(max)
        );
    }
    Ok(())
}
