//! Two operating-system processes sharing one Redis server admit exactly the limit:
//! 500 concurrent hits (250 from each process, all at once) on one key, for every
//! strategy, with single hits and with two-limit `hit_all`.
//!
//! The test starts this same test binary twice per case, running only the ignored
//! `child_process_hits` with its orders in an environment variable.

mod common;

use common::unix_ms;

use std::process::{Command, Stdio};
use std::time::Duration;

use limiter_core::strategy::BuiltIn;
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter};

const ORDERS: &str = "LIMITER_REDIS_CHILD_ORDERS";
const HITS_PER_PROCESS: usize = 250;
const LIMIT: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by two_processes_admit_exactly_the_limit"]
async fn child_process_hits() {
    let orders = common::env(ORDERS);
    let [strategy, mode, namespace, start] = orders.split(' ').collect::<Vec<_>>()[..] else {
        panic!("bad orders {orders:?}");
    };
    let strategy = BuiltIn::from_name(strategy).expect("a built-in");
    let start: u64 = start.parse().expect("a start time");
    // Exact counts are the point here, not latency: 16 processes share two cores.
    let options = common::options("LIMITER_REDIS_URL", "limiter-processes:")
        .command_timeout(Duration::from_secs(5));
    let storage = limiter_redis::RedisStorage::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}; {}", common::HOW_TO_START));
    let limiter = RateLimiter::builder(std::sync::Arc::new(storage))
        .strategy_arc(common::strategy(strategy))
        .namespace(namespace)
        // One fixed instant in both processes: the count cannot depend on timing.
        .clock(ManualClock::new(1_700_000_000_000))
        .build();
    let limits: Vec<RateLimit> = vec![
        format!("{LIMIT} per hour").parse().expect("limit"),
        "150 per day".parse().expect("limit"),
    ];
    let key = Key::from("shared");
    let wait = start.saturating_sub(unix_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let hits = (0..HITS_PER_PROCESS).map(|_| async {
        match mode {
            "one" => limiter.hit(&limits[0], &key, 1).await,
            _ => limiter.hit_all(&limits, &key, 1).await,
        }
    });
    let results = futures::future::join_all(hits).await;
    let mut admitted = 0;
    for result in results {
        match result {
            Ok(decision) => admitted += usize::from(decision.is_allowed()),
            Err(e) => panic!("hit failed: {e}"),
        }
    }
    println!("ADMITTED {admitted}");
}

#[test]
fn two_processes_admit_exactly_the_limit() {
    // Fail here, with the hint, rather than in the children.
    let _ = common::env("LIMITER_REDIS_URL");
    let exe = std::env::current_exe().expect("this test binary");
    let start = unix_ms() + 2_000;
    let run = format!("{}-{}", std::process::id(), unix_ms());
    let mut children = Vec::new();
    for strategy in BuiltIn::ALL {
        for mode in ["one", "all"] {
            let orders = format!("{} {mode} processes-{run}-{mode} {start}", strategy.name());
            for _ in 0..2 {
                let child = Command::new(&exe)
                    .args(["--exact", "child_process_hits", "--ignored", "--nocapture"])
                    .env(ORDERS, &orders)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start a child process");
                children.push((strategy, mode, child));
            }
        }
    }
    let mut totals = std::collections::BTreeMap::new();
    for (strategy, mode, child) in children {
        let out = child.wait_with_output().expect("child output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{strategy} {mode}: child failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admitted: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ADMITTED "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{strategy} {mode}: no count in\n{stdout}"));
        *totals.entry((strategy.name(), mode)).or_insert(0) += admitted;
    }
    assert_eq!(totals.len(), 8);
    for ((strategy, mode), admitted) in totals {
        assert_eq!(
            admitted, LIMIT,
            "{strategy} {mode}: 500 hits from two processes"
        );
    }
}
