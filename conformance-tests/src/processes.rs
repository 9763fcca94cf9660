//! Exactness across operating-system processes: two processes of 64 callers each hit
//! one key of `1000 per minute` at once, with coalescing and the rejection cache on,
//! for every built-in strategy.
//!
//! - On a frozen clock, exactly 1,000 hits are admitted between them, and no call
//!   fails.
//! - On the system clock, no call fails, the limit is reached, and never more is
//!   admitted than the strategy allows in the time the run took: 1,000 within a
//!   window, for the GCRA 1,000 plus one per emission interval since the first.
//!
//! The check starts the test binary it runs in twice per case, running only the
//! child test with its orders in an environment variable; [`processes!`] writes both
//! tests. A storage that keeps its state in one process passes trivially (each child
//! has its own), so this is for storages that share a server.
//!
//! [`processes!`]: crate::processes!

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use limiter_core::strategy::{BuiltIn, FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{
    Key, ManualClock, RateLimit, RateLimiter, Storage, Strategy, DEFAULT_MAX_BATCH,
    DEFAULT_REJECTION_CACHE_SIZE,
};

/// The environment variable that carries a child's orders.
pub const ORDERS: &str = "LIMITER_CONFORMANCE_PROCESS_ORDERS";

/// Concurrent callers in each process.
pub const CALLERS: usize = 64;

/// Hits each process makes: together more than the limit.
pub const HITS_PER_PROCESS: usize = 800;

/// The limit's amount, per minute.
pub const AMOUNT: u64 = 1_000;

const WINDOW_MS: u64 = 60_000;

/// The frozen clock's instant.
const FROZEN_AT_MS: u64 = 1_700_000_000_000;

/// The strategy object of a built-in, shared.
fn shared(strategy: BuiltIn) -> Arc<dyn Strategy> {
    match strategy {
        BuiltIn::FixedWindow => Arc::new(FixedWindow),
        BuiltIn::MovingWindow => Arc::new(MovingWindow),
        BuiltIn::SlidingWindow => Arc::new(SlidingWindow),
        _ => Arc::new(Gcra),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes the two tests of the check for a storage: a child test, ignored (the
/// check runs it in child processes), and `two_processes_of_64_callers_stay_exact`,
/// which starts the children and checks their counts.
///
/// ```ignore
/// use my_storage::MyStorage;
///
/// limiter_conformance::processes!(MyStorage::connect(&url()).await.expect("connect"));
/// ```
///
/// Call it at the top level of a test file of its own (the children run the test
/// binary again, filtered to the child test). The expression is evaluated in each
/// child, inside an `async` block, like [`suite!`](crate::suite)'s.
#[macro_export]
macro_rules! processes {
    ($storage:expr $(,)?) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "run as a child process by two_processes_of_64_callers_stay_exact"]
        async fn limiter_conformance_process_child() {
            let storage: ::std::sync::Arc<dyn $crate::__private::Storage> =
                ::std::sync::Arc::new($storage);
            $crate::processes::child(storage).await;
        }

        #[test]
        fn two_processes_of_64_callers_stay_exact() {
            $crate::processes::parent("limiter_conformance_process_child");
        }
    };
}

/// In a child process: runs the orders of [`ORDERS`] on `storage` and prints what
/// was admitted, for [`parent`].
///
/// # Panics
///
/// When the orders are missing or malformed.
pub async fn child(storage: Arc<dyn Storage>) {
    let orders = std::env::var(ORDERS).unwrap_or_default();
    let [strategy, clock, namespace, start] = orders.split(' ').collect::<Vec<_>>()[..] else {
        panic!("bad orders {orders:?} in {ORDERS}");
    };
    let strategy = BuiltIn::from_name(strategy).expect("a built-in strategy");
    let start: u64 = start.parse().expect("a start time");
    let builder = RateLimiter::builder(storage)
        .strategy_arc(shared(strategy))
        .namespace(namespace)
        .coalesce(Some(DEFAULT_MAX_BATCH))
        .rejection_cache(Some(DEFAULT_REJECTION_CACHE_SIZE));
    let limiter = match clock {
        "frozen" => builder.clock(ManualClock::new(FROZEN_AT_MS)),
        _ => builder,
    }
    .build();
    let limit: RateLimit = format!("{AMOUNT} per minute").parse().expect("a limit");
    tokio::time::sleep(Duration::from_millis(start.saturating_sub(unix_ms()))).await;
    let issued = Arc::new(AtomicUsize::new(0));
    let callers = (0..CALLERS).map(|_| {
        let (limiter, limit, issued) = (limiter.clone(), limit, Arc::clone(&issued));
        tokio::spawn(async move {
            let (mut admitted, mut errors) = (Vec::new(), Vec::new());
            while issued.fetch_add(1, Ordering::Relaxed) < HITS_PER_PROCESS {
                match limiter.hit(&limit, &Key::from("shared"), 1).await {
                    Ok(d) if d.is_allowed() => admitted.push(d.decided_at().as_millis()),
                    Ok(_) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (admitted, errors)
        })
    });
    let (mut admitted, mut errors) = (Vec::new(), Vec::new());
    for caller in futures::future::join_all(callers).await {
        let (a, e) = caller.expect("a caller");
        admitted.extend(a);
        errors.extend(e);
    }
    let times: Vec<String> = admitted.iter().map(u64::to_string).collect();
    println!("\nADMITTED {}", times.join(","));
    println!("ERRORS {}", errors.len());
    for error in errors.iter().take(5) {
        println!("ERROR {error}");
    }
}

/// In the test process: starts two children per strategy and clock (this test binary
/// again, filtered to `child_test`), and checks what they admitted together.
///
/// # Panics
///
/// When a child fails, a call failed, or more (or, on the frozen clock, fewer) hits
/// were admitted than the limit allows.
pub fn parent(child_test: &str) {
    let exe = std::env::current_exe().expect("this test binary");
    // Time for every child to start and connect before the hits begin.
    let start = unix_ms() + 3_000;
    let run = format!("processes-{}-{}", std::process::id(), unix_ms());
    let mut children = Vec::new();
    for strategy in BuiltIn::ALL {
        for clock in ["frozen", "moving"] {
            let orders = format!("{} {clock} {run}-{clock} {start}", strategy.name());
            for _ in 0..2 {
                let child = Command::new(&exe)
                    .args([
                        child_test,
                        "--ignored",
                        "--nocapture",
                        "--test-threads",
                        "1",
                    ])
                    .env(ORDERS, &orders)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start a child process");
                children.push((strategy, clock, child));
            }
        }
    }
    let mut admitted = std::collections::BTreeMap::<_, Vec<u64>>::new();
    for (strategy, clock, child) in children {
        let out = child.wait_with_output().expect("a child's output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let case = format!("{strategy}, {clock} clock");
        assert!(
            out.status.success(),
            "{case}: a child failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = |prefix: &str| {
            // The test harness may have printed the test's name on the same line.
            stdout
                .lines()
                .find_map(|l| l.find(prefix).map(|at| l[at + prefix.len()..].to_owned()))
                .unwrap_or_else(|| panic!("{case}: no {prefix:?} line in\n{stdout}"))
        };
        assert_eq!(line("ERRORS "), "0", "{case}: calls failed\n{stdout}");
        let times = line("ADMITTED ");
        let times = times.split(',').filter(|t| !t.is_empty());
        let entry = admitted.entry((strategy.name(), clock)).or_default();
        entry.extend(times.map(|t| t.parse::<u64>().expect("a time")));
    }
    assert_eq!(admitted.len(), 2 * BuiltIn::ALL.len(), "every case ran");
    for ((strategy, clock), mut times) in admitted {
        let total = u64::try_from(times.len()).unwrap_or(u64::MAX);
        let case = format!(
            "{strategy}, {clock} clock: {total} of {} hits admitted",
            2 * HITS_PER_PROCESS
        );
        if clock == "frozen" {
            assert_eq!(total, AMOUNT, "{case}");
            continue;
        }
        times.sort_unstable();
        let first = times.first().copied().unwrap_or(0);
        let span = times.last().copied().unwrap_or(0) - first;
        assert!(
            span < WINDOW_MS,
            "{case}: the run took longer than a window"
        );
        assert!(total >= AMOUNT, "{case}: the limit was not reached");
        for (i, &t) in times.iter().enumerate() {
            // Admitted up to `t`, against what the strategy allows since the first.
            let so_far = u64::try_from(i + 1).unwrap_or(u64::MAX);
            let allowed = match strategy {
                "gcra" => AMOUNT + (t - first) * AMOUNT / WINDOW_MS + 1,
                _ => AMOUNT,
            };
            assert!(
                so_far <= allowed,
                "{case}: {so_far} admitted by {} ms",
                t - first
            );
        }
    }
}
