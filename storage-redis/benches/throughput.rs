//! Decisions per second against a local Redis, next to the round-trip ceiling.
//!
//! Run with the test servers up (`source scripts/services/redis.sh`):
//!
//! ```text
//! cargo bench -p limiter-redis --bench throughput
//! ```
//!
//! For each strategy, and for a two-limit `hit_all`, it runs 1, 16 and 64 concurrent
//! callers for a fixed time, each on its own key, and reports decisions per second. In
//! the same run, `redis-benchmark` sends EVALSHA of the fixed-window script with the
//! same number of connections: the server's round-trip ceiling for one script call.
//! Then one hot key shared by 64 callers, on a limit that admits everything and on
//! `10 per minute` (nearly every hit rejected), with the local rejection cache off and
//! on; and one hot key per strategy with coalescing off and on (`apply_many`: the
//! calls queued on the key in one script call). Last, the moving window at `10 per day` and at `100000 per day` with a full log
//! (rejection cache off, so that every hit runs the script).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter_core::strategy::{BuiltIn, MovingWindow, Op, Strategy};
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Storage, Timestamp};
use limiter_redis::fred::prelude::{KeysInterface, LuaInterface};
use limiter_redis::fred::types::Expiration;
use limiter_redis::RedisStorage;

const RUN: Duration = Duration::from_millis(1_500);
const CALLERS: [usize; 3] = [1, 16, 64];

fn strategy(b: BuiltIn) -> Arc<dyn Strategy> {
    use limiter_core::strategy::{FixedWindow, Gcra, SlidingWindow};
    match b {
        BuiltIn::FixedWindow => Arc::new(FixedWindow),
        BuiltIn::MovingWindow => Arc::new(MovingWindow),
        BuiltIn::SlidingWindow => Arc::new(SlidingWindow),
        _ => Arc::new(Gcra),
    }
}

/// Decisions per second of `callers` tasks, each calling `decide(i)` in a loop.
async fn rate<F, Fut>(callers: usize, decide: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let decide = Arc::new(decide);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let decide = Arc::clone(&decide);
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < RUN {
                    assert!(decide(i).await, "a decision failed");
                    n += 1;
                    // A decision the rejection cache answers never waits: without a
                    // turn given back now and then, 64 such loops starve the runtime
                    // of the replies the other callers wait for (as no server's
                    // request loop would).
                    if n % 32 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("bench task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Script calls (`EVALSHA`, `EVAL`) the server has answered, from `INFO commandstats`.
fn script_calls(port: &str) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", port, "INFO", "commandstats"])
        .output()
        .expect("run redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// redis-benchmark's EVALSHA rate for the fixed-window script with `clients`
/// connections.
fn ceiling(port: &str, sha: &str, clients: usize) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", port, "-q", "-r", "100000"])
        .args([
            "-c",
            &clients.to_string(),
            "-n",
            &(20_000 * clients.min(4)).to_string(),
        ])
        .args(["EVALSHA", sha, "1", "limiter-bench:{ceiling}/__rand_int__"])
        .args([
            "hit",
            "1000000000",
            "60000",
            "1700000000000",
            "1",
            "0",
            "vvvvvvvv",
        ])
        .output()
        .expect("run redis-benchmark (Debian package redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .zip(text.split_whitespace().skip(1))
        .find(|(_, next)| next.starts_with("requests"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in redis-benchmark output: {text}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(uri) = std::env::var("LIMITER_REDIS_URL") else {
        panic!("LIMITER_REDIS_URL is not set: `source scripts/services/redis.sh` first");
    };
    let port = uri
        .rsplit(':')
        .next()
        .unwrap_or("6379")
        .trim_end_matches('/')
        .to_owned();
    let storage = RedisStorage::from_uri(&format!("{uri}?key_prefix=limiter-bench:&pool_size=2"))
        .await
        .expect("connect");
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let limit: RateLimit = "1000000000 per minute".parse().expect("limit");
    let limits =
        limiter_core::parse_many("1000000000 per minute; 100000000 per hour").expect("limits");

    // The ceiling: the fixed-window script, loaded, called by redis-benchmark.
    let sha: String = storage
        .pool()
        .script_load(limiter_redis::scripts::STRATEGIES[0].1)
        .await
        .expect("SCRIPT LOAD");

    println!("decisions per second, {} s per cell\n", RUN.as_secs_f64());
    println!("| workload | 1 caller | 16 callers | 64 callers |");
    println!("|---|---|---|---|");
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let ceilings: Vec<f64> = CALLERS.iter().map(|&c| ceiling(&port, &sha, c)).collect();
    rows.push((
        "redis-benchmark EVALSHA fixed-window (ceiling)".into(),
        ceilings,
    ));
    for b in BuiltIn::ALL {
        for two in [false, true] {
            let mut cells = Vec::new();
            for &callers in &CALLERS {
                let limiter = RateLimiter::builder(Arc::clone(&shared))
                    .strategy_arc(strategy(b))
                    .namespace(format!("bench-{}-{callers}-{two}", std::process::id()))
                    .build();
                let (limit, limits) = (limit, limits.clone());
                cells.push(
                    rate(callers, move |i| {
                        let limiter = limiter.clone();
                        let limits = limits.clone();
                        async move {
                            let key = Key::from(format!("caller-{i}"));
                            let decision = if two {
                                limiter.hit_all(&limits, &key, 1).await
                            } else {
                                limiter.hit(&limit, &key, 1).await
                            };
                            decision.is_ok()
                        }
                    })
                    .await,
                );
            }
            let name = if two {
                format!("{b}, hit_all of two limits")
            } else {
                format!("{b}, hit")
            };
            rows.push((name, cells));
        }
    }
    for (name, cells) in &rows {
        let cells: Vec<String> = cells.iter().map(|r| format!("{r:.0}")).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let ceiling64 = rows[0].1[2];
    let single64 = rows[1].1[2];
    let two64 = rows[2].1[2];
    println!(
        "\nfixed window at 64 callers: {:.0}% of the ceiling; two-limit hit_all: {:.0}% of a single hit",
        100.0 * single64 / ceiling64,
        100.0 * two64 / single64
    );

    // One hot key, 64 callers: the rejection cache off and on, in one run.
    println!("\none hot key, 64 callers, fixed window\n");
    println!("| limit | rejection cache | decisions per second | script calls per second |");
    println!("|---|---|---|---|");
    for text in ["1000000000 per minute", "10 per minute"] {
        for cache in [false, true] {
            let limit: RateLimit = text.parse().expect("limit");
            let limiter = RateLimiter::builder(Arc::clone(&shared))
                .namespace(format!("bench-hot-{cache}-{}", std::process::id()))
                .rejection_cache(cache.then_some(limiter_core::DEFAULT_REJECTION_CACHE_SIZE))
                .build();
            let before = script_calls(&port);
            let started = Instant::now();
            let r = rate(64, move |_| {
                let limiter = limiter.clone();
                async move { limiter.hit(&limit, &Key::from("hot"), 1).await.is_ok() }
            })
            .await;
            let calls = (script_calls(&port) - before) as f64 / started.elapsed().as_secs_f64();
            let on = if cache { "on" } else { "off" };
            println!("| {text} | {on} | {r:.0} | {calls:.0} |");
        }
    }

    // One hot key, 64 callers, every strategy: coalescing off and on, in one run (the
    // rejection cache off, a limit that admits everything).
    println!("\none hot key, 64 callers, coalescing off and on\n");
    println!("| strategy | coalescing | decisions per second | script calls per second | ratio |");
    println!("|---|---|---|---|---|");
    for b in BuiltIn::ALL {
        let mut off = 0.0;
        for coalesce in [None, Some(limiter_core::DEFAULT_MAX_BATCH)] {
            let limiter = RateLimiter::builder(Arc::clone(&shared))
                .strategy_arc(strategy(b))
                .namespace(format!(
                    "bench-coalesce-{}-{}",
                    coalesce.is_some(),
                    std::process::id()
                ))
                .rejection_cache(None)
                .coalesce(coalesce)
                .build();
            let before = script_calls(&port);
            let started = Instant::now();
            let r = rate(64, move |_| {
                let limiter = limiter.clone();
                async move { limiter.hit(&limit, &Key::from("hot"), 1).await.is_ok() }
            })
            .await;
            let calls = (script_calls(&port) - before) as f64 / started.elapsed().as_secs_f64();
            let (on, ratio) = match coalesce {
                None => {
                    off = r;
                    ("off", 1.0)
                }
                Some(_) => ("on", r / off.max(1.0)),
            };
            println!("| {b} | {on} | {r:.0} | {calls:.0} | {ratio:.2}x |");
        }
    }

    // The moving window with a full log: 10 per day against 100000 per day.
    println!("\nmoving window, full log, 1 caller (every hit rejected)\n");
    println!("| limit | records | hits per second |");
    println!("|---|---|---|");
    let mut full = Vec::new();
    for (text, amount) in [("10 per day", 10u64), ("100000 per day", 100_000)] {
        let limit: RateLimit = text.parse().expect("limit");
        let t0 = 1_700_000_000_000u64;
        // The full log, built by the strategy itself: one record per millisecond.
        let mut state = Vec::new();
        for i in 0..amount {
            MovingWindow
                .apply(
                    &limit,
                    &mut state,
                    Op::Hit { cost: 1 },
                    Timestamp::from_millis(t0 + i),
                )
                .expect("apply");
        }
        let clock = ManualClock::new(t0 + amount);
        let limiter = RateLimiter::builder(Arc::clone(&shared))
            .strategy(MovingWindow)
            .namespace(format!("bench-full-{amount}-{}", std::process::id()))
            .clock(clock)
            .rejection_cache(None)
            .build();
        let key = Key::from("full");
        let stored = limiter.storage_key(&limit, &key);
        let mut value = 1u64.to_le_bytes().to_vec();
        value.extend_from_slice(&state);
        let _: () = storage
            .pool()
            .set(
                storage.redis_key(&stored).as_str(),
                value.as_slice(),
                Some(Expiration::PX(600_000)),
                None,
                false,
            )
            .await
            .expect("SET");
        let r = rate(1, move |_| {
            let limiter = limiter.clone();
            let key = key.clone();
            async move { matches!(limiter.hit(&limit, &key, 1).await, Ok(d) if !d.is_allowed()) }
        })
        .await;
        println!("| {text} | {amount} | {r:.0} |");
        full.push(r);
    }
    println!(
        "\n10 per day / 100000 per day: {:.2}x (target: below 2x)",
        full[0] / full[1]
    );
}
