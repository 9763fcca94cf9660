//! Decisions per second against a local Redis, next to `redis-benchmark` running the
//! same scripts, every workload interleaved in rounds.
//!
//! Run with the test servers up (`source scripts/services/redis.sh`):
//!
//! ```text
//! cargo bench -p limiter-redis --bench throughput
//! ```
//!
//! Arguments after `--` keep only the workloads whose name contains one of them
//! (`-- "fixed window: hit"`), with their baselines; `hot` or `many` keeps one
//! block, and either skips the tables after the blocks.
//!
//! `LIMITER_BENCH_SECS` is the time each figure gets in all (default 1.5 s), split
//! over `LIMITER_BENCH_ROUNDS` rounds (default 3); `LIMITER_BENCH_CALLERS=64` (or
//! `16,64`) measures only those columns. A figure is the median of its
//! rounds. Within a round every workload of a block runs once, in an order that
//! starts one further each round, so a burst of load from elsewhere on the machine
//! lands on one round of every workload. `LIMITER_BENCH_RESULTS=FILE` also appends
//! the figures to FILE for `scripts/bench-report.py`.
//!
//! Blocks: one hot key shared by every caller, or many keys (100,000, each caller
//! cycling over its share; `redis-benchmark -r 100000`), at 1, 16 and 64 concurrent
//! callers (tasks on a two-worker Tokio runtime; `redis-benchmark -c`). Workloads, for
//! each strategy, on `1000000000 per second` (every hit admitted, so every hit writes):
//!
//! - `redis-benchmark` sending `EVALSHA` of the strategy's script with the arguments
//!   the storage sends (the time fixed for the whole run), without pipelining and with
//!   `-P 16`: the server's ceiling for that script;
//! - `hit` through a `RateLimiter` (the script), without coalescing (one round trip
//!   per decision) and with it
//!   ([`RateLimiterBuilder::coalesce`](limiter_core::RateLimiterBuilder::coalesce):
//!   the calls queued on a key in one script call, `many.lua`, or, eight or more, in
//!   one `GET` and one compare-and-set, and the next unit on the key in the
//!   compare-and-set alone, on the state it wrote);
//! - `hit` on the generic path (the strategy wrapped so that the storage does not
//!   recognise it: `get`, then the compare-and-set script), without and with
//!   coalescing;
//! - `hit_all` of two limits (`… per second; … per minute`, the batch script), without
//!   and with coalescing (the calls queued on one client's keys in one script call,
//!   `batch_many.lua`), next to `redis-benchmark` sending the batch script.
//!
//! Then the server's CPU time per decision (the server process's, from `INFO cpu`,
//! over the decisions made) on one hot key, 64 callers, coalescing off and on: what bounds a
//! fleet of clients sharing one Redis (`-- server` runs this table alone). Then one hot
//! key shared by 64 callers, on a limit that admits everything and on
//! `10 per minute` (nearly every hit rejected), with the local rejection cache off and
//! on, counting the commands clients sent (`INFO stats`: round trips, whatever they
//! were; not the commands scripts run inside); and the moving window at `10 per day` and at `100000 per day` with a full log
//! (rejection cache off, so that every hit runs the script).

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use limiter_core::strategy::{BuiltIn, MovingWindow, Op, StateError, Strategy, Transition};
use limiter_core::{
    Key, ManualClock, RateLimit, RateLimiter, Storage, Timestamp, DEFAULT_MAX_BATCH,
};
use limiter_redis::fred::prelude::{KeysInterface, LuaInterface};
use limiter_redis::fred::types::Expiration;
use limiter_redis::RedisStorage;

type Fallible<T> = Result<T, Box<dyn Error>>;

const CALLERS: [usize; 3] = [1, 16, 64];
const MANY_KEYS: usize = 100_000;

/// A built-in strategy that the storage does not recognise: its decisions take the
/// generic compare-and-set path.
#[derive(Debug)]
struct Generic(BuiltIn);

impl Strategy for Generic {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Transition, StateError> {
        self.0.strategy().apply(limit, state, op, now)
    }
}

fn builtin(b: BuiltIn) -> Arc<dyn Strategy> {
    use limiter_core::strategy::{FixedWindow, Gcra, SlidingWindow};
    match b {
        BuiltIn::FixedWindow => Arc::new(FixedWindow),
        BuiltIn::MovingWindow => Arc::new(MovingWindow),
        BuiltIn::SlidingWindow => Arc::new(SlidingWindow),
        _ => Arc::new(Gcra),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    /// redis-benchmark: the single (`batch: false`) or batch script, `-P pipeline`.
    Ceiling {
        strategy: BuiltIn,
        batch: bool,
        pipeline: u32,
    },
    /// `hit` (`all: false`) or a two-limit `hit_all` through the scripts; a `hit`
    /// coalesced or not (several queued calls in one script call, `apply_many`).
    Native {
        strategy: BuiltIn,
        all: bool,
        coalesce: bool,
    },
    /// `hit` on the generic path, coalesced or not.
    Generic { strategy: BuiltIn, coalesce: bool },
}

impl Workload {
    fn all() -> Vec<Workload> {
        let mut all = Vec::new();
        for strategy in BuiltIn::ALL {
            for pipeline in [1, 16] {
                all.push(Workload::Ceiling {
                    strategy,
                    batch: false,
                    pipeline,
                });
            }
            for coalesce in [false, true] {
                all.push(Workload::Native {
                    strategy,
                    all: false,
                    coalesce,
                });
            }
            for coalesce in [false, true] {
                all.push(Workload::Generic { strategy, coalesce });
            }
            for pipeline in [1, 16] {
                all.push(Workload::Ceiling {
                    strategy,
                    batch: true,
                    pipeline,
                });
            }
            for coalesce in [false, true] {
                all.push(Workload::Native {
                    strategy,
                    all: true,
                    coalesce,
                });
            }
        }
        all
    }

    fn name(self) -> String {
        match self {
            Workload::Ceiling {
                strategy,
                batch,
                pipeline,
            } => {
                let script = if batch { "batch script" } else { "script" };
                let p = if pipeline > 1 {
                    format!(" -P {pipeline}")
                } else {
                    String::new()
                };
                format!("{strategy}: redis-benchmark{p}, {script}")
            }
            Workload::Native {
                strategy,
                all: false,
                coalesce: false,
            } => format!("{strategy}: hit"),
            Workload::Native {
                strategy,
                all: false,
                coalesce: true,
            } => format!("{strategy}: hit, coalesced"),
            Workload::Native {
                strategy,
                all: true,
                coalesce: false,
            } => format!("{strategy}: hit_all, two limits"),
            Workload::Native {
                strategy,
                all: true,
                coalesce: true,
            } => format!("{strategy}: hit_all, two limits, coalesced"),
            Workload::Generic {
                strategy,
                coalesce: false,
            } => format!("{strategy}: hit, generic path"),
            Workload::Generic {
                strategy,
                coalesce: true,
            } => format!("{strategy}: hit, generic path, coalesced"),
        }
    }

    /// The row this workload's figures are divided by: redis-benchmark without
    /// pipelining on the same script.
    fn baseline(self) -> String {
        let (strategy, batch) = match self {
            Workload::Ceiling {
                strategy, batch, ..
            } => (strategy, batch),
            Workload::Native { strategy, all, .. } => (strategy, all),
            Workload::Generic { strategy, .. } => (strategy, false),
        };
        Workload::Ceiling {
            strategy,
            batch,
            pipeline: 1,
        }
        .name()
    }
}

/// Decisions per second of `callers` tasks, each calling `decide(caller, i)` in a
/// loop for `time` after a warm-up of a tenth of it (at least 20 ms); and the number
/// of decisions that failed. Each task watches the clock itself and yields to the
/// scheduler now and then: a decision answered locally (the rejection cache) never
/// pends, and a loop of them would otherwise hold its worker thread forever.
async fn rate<F, Fut>(callers: usize, time: Duration, decide: F) -> (f64, u64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let decide = Arc::new(decide);
    let begin = Instant::now() + (time / 10).max(Duration::from_millis(20));
    let end = begin + time;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let decide = Arc::clone(&decide);
            tokio::spawn(async move {
                let (mut i, mut ok, mut failed) = (0u64, 0u64, 0u64);
                loop {
                    let passed = decide(caller, i).await;
                    i += 1;
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if now >= begin {
                        if passed {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        if let Ok((o, f)) = task.await {
            ok += o;
            failed += f;
        }
    }
    (ok as f64 / time.as_secs_f64(), failed)
}

/// Script calls (`EVALSHA`, `EVAL`) the server has answered, from `INFO commandstats`.
/// Commands the server has answered from clients (`total_commands_processed` of
/// `INFO stats`): every request a client sent (scripts, reads, compare-and-sets),
/// not the commands a script runs inside, and this `INFO` itself.
fn commands_processed(port: &str) -> Fallible<u64> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", port, "INFO", "stats"])
        .output()
        .map_err(|e| format!("run redis-cli (Debian package redis-tools): {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "no total_commands_processed in INFO stats".into())
}

/// The CPU time the server process has used, user and system, in microseconds, from
/// `INFO cpu`: everything it does for the clients (reading and parsing commands,
/// running them, replying), not only script time.
fn server_cpu_usec(port: &str) -> Fallible<f64> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", port, "INFO", "cpu"])
        .output()
        .map_err(|e| format!("run redis-cli (Debian package redis-tools): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let seconds = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((seconds("used_cpu_user:") + seconds("used_cpu_sys:")) * 1e6)
}

/// The arguments the storage sends with a script, for redis-benchmark.
struct Ceiling {
    port: String,
    /// SHA-1 of the single and batch scripts of each strategy.
    shas: HashMap<(BuiltIn, bool), String>,
    now_ms: u64,
    /// The latest rate of each workload, to size the next run to its time.
    rates: HashMap<String, f64>,
}

impl Ceiling {
    /// redis-benchmark's rate for `workload` (a `Ceiling`) with `clients` connections.
    fn run(
        &mut self,
        workload: Workload,
        clients: usize,
        hot: bool,
        limits: &[RateLimit],
        time: Duration,
    ) -> Fallible<f64> {
        let Workload::Ceiling {
            strategy,
            batch,
            pipeline,
        } = workload
        else {
            return Err("not a redis-benchmark workload".into());
        };
        let sha = self
            .shas
            .get(&(strategy, batch))
            .ok_or("script not loaded")?
            .clone();
        let guess = 20_000.0 * f64::from(pipeline.min(8));
        let expected = self.rates.get(&workload.name()).copied().unwrap_or(guess);
        // A positive count far below 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let requests = ((expected * time.as_secs_f64()) as u64).max(1_000);
        let key = |part: &str| {
            let tail = if hot { "hot" } else { "__rand_int__" };
            format!("limiter-bench:{{rb}}/{strategy}/{part}/{tail}")
        };
        let mut args: Vec<String> = [
            "-h",
            "127.0.0.1",
            "-p",
            &self.port,
            "-q",
            "-c",
            &clients.to_string(),
            "-n",
            &requests.to_string(),
            "-P",
            &pipeline.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if !hot {
            args.extend(["-r".to_owned(), MANY_KEYS.to_string()]);
        }
        let now = self.now_ms.to_string();
        let version = "vvvvvvvv".to_owned();
        if batch {
            args.extend(["EVALSHA".to_owned(), sha, limits.len().to_string()]);
            args.extend((0..limits.len()).map(|i| key(&i.to_string())));
            args.extend(["1".to_owned(), now, version]);
            for limit in limits {
                args.extend([
                    limit.amount().to_string(),
                    limit.window_ms().to_string(),
                    limit.burst().to_string(),
                ]);
            }
        } else {
            let limit = limits.first().ok_or("no limit")?;
            args.extend(["EVALSHA".to_owned(), sha, "1".to_owned(), key("0")]);
            args.extend([
                "hit".to_owned(),
                limit.amount().to_string(),
                limit.window_ms().to_string(),
                now,
                "1".to_owned(),
                "0".to_owned(),
                version,
                limit.burst().to_string(),
            ]);
        }
        let out = Command::new("redis-benchmark")
            .args(&args)
            .output()
            .map_err(|e| format!("run redis-benchmark (Debian package redis-tools): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        let rate = words
            .windows(2)
            .rev()
            .find(|w| w[1].starts_with("requests"))
            .and_then(|w| w[0].parse::<f64>().ok())
            .ok_or_else(|| format!("no rate in redis-benchmark output: {text}"))?;
        self.rates.insert(workload.name(), rate);
        Ok(rate)
    }
}

/// The caller counts to measure: `LIMITER_BENCH_CALLERS` (`64`, or `16,64`), or all
/// of [`CALLERS`]; the others' cells stay empty.
fn callers_to_run() -> Vec<usize> {
    let chosen: Vec<usize> = std::env::var("LIMITER_BENCH_CALLERS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|n| CALLERS.contains(n))
        .collect();
    if chosen.is_empty() {
        CALLERS.to_vec()
    } else {
        chosen
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
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

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n: &f64| *n > 0.0)
        .unwrap_or(default)
}

struct Bench {
    storage: RedisStorage,
    shared: Arc<dyn Storage>,
    limits: Vec<RateLimit>,
    keys: Arc<Vec<Key>>,
    run: u64,
}

impl Bench {
    /// One run of a limiter workload; decisions per second and failures.
    async fn limiter(
        &mut self,
        workload: Workload,
        callers: usize,
        hot: bool,
        time: Duration,
    ) -> (f64, u64) {
        self.run += 1;
        let builder = RateLimiter::builder(Arc::clone(&self.shared)).namespace(format!(
            "bench-{}-{}",
            std::process::id(),
            self.run
        ));
        let (limiter, all) = match workload {
            Workload::Native {
                strategy,
                all,
                coalesce,
            } => (
                builder
                    .strategy_arc(builtin(strategy))
                    .coalesce(coalesce.then_some(DEFAULT_MAX_BATCH)),
                all,
            ),
            Workload::Generic { strategy, coalesce } => (
                builder
                    .strategy(Generic(strategy))
                    .coalesce(coalesce.then_some(DEFAULT_MAX_BATCH)),
                false,
            ),
            Workload::Ceiling { .. } => return (0.0, 0),
        };
        let limiter = limiter.build();
        let limits = self.limits.clone();
        let keys = Arc::clone(&self.keys);
        let share = keys.len() / callers;
        rate(callers, time, move |caller, i| {
            let (limiter, limits, keys) = (limiter.clone(), limits.clone(), Arc::clone(&keys));
            async move {
                let at = if hot {
                    0
                } else {
                    caller * share + usize::try_from(i).unwrap_or(0) % share.max(1)
                };
                let key = &keys[at % keys.len()];
                if all {
                    limiter.hit_all(&limits, key, 1).await.is_ok()
                } else {
                    limiter.hit(&limits[0], key, 1).await.is_ok()
                }
            }
        })
        .await
    }
}

/// The server's CPU time per decision on one hot key, 64 callers, coalescing off and
/// on: what bounds a fleet of clients sharing one Redis, whose single thread serves
/// every command, while the clients' own work spreads over their machines. Measured
/// as the server process's CPU time (`INFO cpu`), so that a unit's `GET` counts as
/// well as its scripts.
async fn server_time(
    bench: &mut Bench,
    results: &mut Results,
    port: &str,
    time: Duration,
) -> Fallible<()> {
    let table = "redis-server-time";
    results.line(&[
        "table",
        table,
        "Redis, one hot key, 64 callers: the server's time per decision",
        "µs",
        "col=coalescing off",
        "lower",
        "the server process's CPU time, user and system (INFO cpu), over the decisions made",
    ]);
    println!("one hot key, 64 callers: the server's time per decision\n");
    println!("| decision | coalescing off (µs) | coalescing on (µs) | ratio |");
    println!("|---|---:|---:|---:|");
    for strategy in BuiltIn::ALL {
        for all in [false, true] {
            let row = if all {
                format!("{strategy}, hit_all of two limits")
            } else {
                format!("{strategy}, hit")
            };
            let mut cells = Vec::new();
            for coalesce in [false, true] {
                let workload = Workload::Native {
                    strategy,
                    all,
                    coalesce,
                };
                let before = server_cpu_usec(port)?;
                let (rate, _) = bench.limiter(workload, 64, true, time).await;
                let decisions = rate * time.as_secs_f64();
                let after = server_cpu_usec(port)?;
                let per = (after - before).max(0.0) / decisions.max(1.0);
                let column = if coalesce {
                    "coalescing on"
                } else {
                    "coalescing off"
                };
                results.line(&["value", table, &row, column, &format!("{per:.2}")]);
                cells.push(per);
            }
            let (off, on) = (cells[0], cells[1]);
            println!(
                "| {row} | {off:.2} | {on:.2} | {:.1}× |",
                off / on.max(f64::MIN_POSITIVE)
            );
        }
    }
    println!();
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Fallible<()> {
    let uri = std::env::var("LIMITER_REDIS_URL")
        .map_err(|_| "LIMITER_REDIS_URL is not set: `source scripts/services/redis.sh` first")?;
    let port = uri
        .rsplit(':')
        .next()
        .unwrap_or("6379")
        .trim_end_matches('/')
        .to_owned();
    let secs = env_number("LIMITER_BENCH_SECS", 1.5);
    let rounds = std::env::var("LIMITER_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let time = Duration::from_secs_f64(secs / rounds as f64);
    let mut results = Results::open();

    let storage =
        RedisStorage::from_uri(&format!("{uri}?key_prefix=limiter-bench:&pool_size=2")).await?;
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let limits = limiter_core::parse_many("1000000000 per second; 1000000000 per minute")?;
    let mut shas = HashMap::new();
    for (b, single, batch) in limiter_redis::scripts::STRATEGIES {
        let single: String = storage.pool().script_load(single).await?;
        let batch: String = storage.pool().script_load(batch).await?;
        shas.insert((b, false), single);
        shas.insert((b, true), batch);
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut ceiling = Ceiling {
        port: port.clone(),
        shas,
        now_ms,
        rates: HashMap::new(),
    };
    let mut bench = Bench {
        storage: storage.clone(),
        shared: Arc::clone(&shared),
        limits,
        keys: Arc::new((0..MANY_KEYS).map(|i| Key::from(format!("k{i}"))).collect()),
        run: 0,
    };

    // Filters: `hot`/`many` pick a block, anything else a substring of workload names.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let blocks: Vec<bool> = match (
        filters.iter().any(|f| f == "hot"),
        filters.iter().any(|f| f == "many"),
    ) {
        (true, false) => vec![true],
        (false, true) => vec![false],
        _ => vec![true, false],
    };
    // `server`: only the table of the server's time per decision.
    let server_only = filters.iter().all(|f| f == "server") && !filters.is_empty();
    let blocks = if server_only { Vec::new() } else { blocks };
    let names: Vec<&String> = filters
        .iter()
        .filter(|f| *f != "hot" && *f != "many" && *f != "server")
        .collect();
    let mut workloads = Workload::all();
    if !names.is_empty() {
        let kept: Vec<String> = workloads
            .iter()
            .filter(|w| names.iter().any(|f| w.name().contains(f.as_str())))
            .flat_map(|w| [w.name(), w.baseline()])
            .collect();
        workloads.retain(|w| kept.contains(&w.name()));
    }
    println!(
        "decisions per second, median of {rounds} rounds of {:.2} s\n",
        time.as_secs_f64()
    );
    for hot in blocks {
        let (table, keys) = if hot {
            ("redis-hot", "one hot key")
        } else {
            ("redis-many", "100,000 keys")
        };
        results.line(&[
            "table",
            table,
            &format!("Redis, {keys}: decisions per second (higher is better)"),
            "/s",
            "-",
            "higher",
            &format!(
                "each row over redis-benchmark sending the same script without pipelining; \
                 medians of {rounds} interleaved rounds of {:.2} s",
                time.as_secs_f64()
            ),
            "64 callers",
        ]);
        println!("{keys}\n");
        println!("| workload | 1 caller | 16 callers | 64 callers |");
        println!("|---|---:|---:|---:|");
        let mut cells: Vec<Vec<String>> = vec![Vec::new(); workloads.len()];
        for callers in callers_to_run() {
            let column = if callers == 1 {
                "1 caller".to_owned()
            } else {
                format!("{callers} callers")
            };
            let mut samples = vec![Vec::new(); workloads.len()];
            let mut failed = vec![0u64; workloads.len()];
            for round in 0..rounds {
                for i in 0..workloads.len() {
                    let w = (round + i) % workloads.len();
                    let workload = workloads[w];
                    let r = match workload {
                        Workload::Ceiling { .. } => {
                            ceiling.run(workload, callers, hot, &bench.limits, time)?
                        }
                        _ => {
                            let (r, f) = bench.limiter(workload, callers, hot, time).await;
                            failed[w] += f;
                            r
                        }
                    };
                    samples[w].push(r);
                }
            }
            let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
            for (w, workload) in workloads.iter().enumerate() {
                let base = workloads
                    .iter()
                    .position(|b| b.name() == workload.baseline())
                    .map_or(f64::NAN, |b| medians[b]);
                let failures = if failed[w] > 0 {
                    format!(" ({} failed)", failed[w])
                } else {
                    String::new()
                };
                cells[w].push(format!(
                    "{:.0} ({:.0}%){failures}",
                    medians[w],
                    100.0 * medians[w] / base
                ));
                results.line(&[
                    "value",
                    table,
                    &workload.name(),
                    &column,
                    &format!("{:.1}", medians[w]),
                    &workload.baseline(),
                ]);
            }
        }
        for (workload, cells) in workloads.iter().zip(&cells) {
            println!("| {} | {} |", workload.name(), cells.join(" | "));
        }
        println!();
    }

    if filters.is_empty() || server_only {
        server_time(&mut bench, &mut results, &port, time).await?;
    }
    if !filters.is_empty() {
        return Ok(());
    }

    // One hot key, 64 callers: the rejection cache off and on, in one run.
    let table = "redis-rejection-cache";
    results.line(&[
        "table",
        table,
        "Redis, one hot key, 64 callers, fixed window: the local rejection cache",
        "/s",
        "-",
        "higher",
        "commands per second that the server answered from clients (scripts, reads, \
         compare-and-sets: round trips), and per decision",
    ]);
    println!("one hot key, 64 callers, fixed window\n");
    println!(
        "| limit | rejection cache | decisions per second | commands per second | per decision |"
    );
    println!("|---|---|---:|---:|---:|");
    for text in ["1000000000 per minute", "10 per minute"] {
        for cache in [false, true] {
            let limit: RateLimit = text.parse()?;
            bench.run += 1;
            let limiter = RateLimiter::builder(Arc::clone(&shared))
                .namespace(format!("bench-hot-{}-{}", std::process::id(), bench.run))
                .rejection_cache(cache.then_some(limiter_core::DEFAULT_REJECTION_CACHE_SIZE))
                .build();
            let before = commands_processed(&port)?;
            let started = Instant::now();
            let (r, _) = rate(64, Duration::from_secs_f64(secs / 2.0), move |_, _| {
                let limiter = limiter.clone();
                async move { limiter.hit(&limit, &Key::from("hot"), 1).await.is_ok() }
            })
            .await;
            // Less the second INFO itself.
            let sent = commands_processed(&port)?.saturating_sub(before + 1) as f64;
            let calls = sent / started.elapsed().as_secs_f64();
            let per_decision = calls / r.max(f64::MIN_POSITIVE);
            let on = if cache { "on" } else { "off" };
            println!("| {text} | {on} | {r:.0} | {calls:.0} | {per_decision:.6} |");
            let row = format!("{text}, cache {on}");
            results.line(&["value", table, &row, "decisions", &format!("{r:.1}")]);
            results.line(&["value", table, &row, "commands", &format!("{calls:.1}")]);
        }
    }

    // The moving window with a full log: 10 per day against 100000 per day.
    let table = "redis-moving-window-log";
    results.line(&[
        "table",
        table,
        "Redis, moving window with a full log, 1 caller, every hit rejected",
        "hits/s",
        "row=10 per day",
        "higher",
        "the log holds as many records as the limit's amount",
    ]);
    println!("\nmoving window, full log, 1 caller (every hit rejected)\n");
    println!("| limit | records | hits per second |");
    println!("|---|---|---:|");
    let mut full = Vec::new();
    for (text, amount) in [("10 per day", 10u64), ("100000 per day", 100_000)] {
        let limit: RateLimit = text.parse()?;
        let t0 = 1_700_000_000_000u64;
        // The full log, built by the strategy itself: one record per millisecond.
        let mut state = Vec::new();
        for i in 0..amount {
            MovingWindow.apply(
                &limit,
                &mut state,
                Op::Hit { cost: 1 },
                Timestamp::from_millis(t0 + i),
            )?;
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
        let _: () = bench
            .storage
            .pool()
            .set(
                bench.storage.redis_key(&stored).as_str(),
                value.as_slice(),
                Some(Expiration::PX(600_000)),
                None,
                false,
            )
            .await?;
        let (r, _) = rate(1, Duration::from_secs_f64(secs / 2.0), move |_, _| {
            let limiter = limiter.clone();
            let key = key.clone();
            async move { matches!(limiter.hit(&limit, &key, 1).await, Ok(d) if !d.is_allowed()) }
        })
        .await;
        println!("| {text} | {amount} | {r:.0} |");
        results.line(&["value", table, text, "hits/s", &format!("{r:.1}")]);
        full.push(r);
    }
    if let [small, large] = full[..] {
        println!(
            "\n10 per day / 100000 per day: {:.2}x (target: below 2x)",
            small / large
        );
    }
    Ok(())
}
