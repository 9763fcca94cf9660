//! A fleet-wide throttle: two operating-system processes, four workers each, wait for
//! permits of one limit on one Redis key with `RateLimiter::until_ready`; together they
//! keep to the limit's rate, and both make progress.
//!
//! The test starts this same test binary twice, running only the ignored
//! `child_process_waits` with its orders in an environment variable.

mod common;

use common::unix_ms;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::strategy::Gcra;
use limiter_core::{Key, RateLimit, RateLimiter};

const ORDERS: &str = "LIMITER_REDIS_THROTTLE_ORDERS";
/// How long the workers wait for permits, from the common start.
const RUN_MS: u64 = 2_000;
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by two_processes_share_one_rate"]
async fn child_process_waits() {
    let orders = common::env(ORDERS);
    let [namespace, start] = orders.split(' ').collect::<Vec<_>>()[..] else {
        panic!("bad orders {orders:?}");
    };
    let start: u64 = start.parse().expect("a start time");
    let options = common::options("LIMITER_REDIS_URL", "limiter-throttle:")
        .command_timeout(Duration::from_secs(5));
    let storage = limiter_redis::RedisStorage::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}; {}", common::HOW_TO_START));
    // The Redis storage brings Tokio's timer: no timer to set.
    let limiter = RateLimiter::builder(Arc::new(storage))
        .strategy(Gcra)
        .namespace(namespace)
        .build();
    let limit: RateLimit = "10 per second".parse().expect("limit");
    tokio::time::sleep(Duration::from_millis(start.saturating_sub(unix_ms()))).await;
    let admitted = Arc::new(AtomicU64::new(0));
    let workers = (0..WORKERS).map(|_| {
        let (limiter, admitted) = (limiter.clone(), admitted.clone());
        tokio::spawn(async move {
            let key = Key::from("fleet");
            while unix_ms() < start + RUN_MS {
                let permit = limiter
                    .until_ready(&limit, &key, 1, Duration::from_millis(300))
                    .await
                    .unwrap_or_else(|e| panic!("until_ready: {e}"));
                if permit.is_allowed() && unix_ms() < start + RUN_MS {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.expect("a worker");
    }
    println!("ADMITTED {}", admitted.load(Ordering::SeqCst));
}

#[test]
fn two_processes_share_one_rate() {
    // Fail here, with the hint, rather than in the children.
    let _ = common::env("LIMITER_REDIS_URL");
    let exe = std::env::current_exe().expect("this test binary");
    let start = unix_ms() + 1_500;
    let orders = format!("throttle-{}-{} {start}", std::process::id(), unix_ms());
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_process_waits", "--ignored", "--nocapture"])
                .env(ORDERS, &orders)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    let mut counts = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("child output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admitted: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ADMITTED "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in\n{stdout}"));
        counts.push(admitted);
    }
    let total: u64 = counts.iter().sum();
    println!("admitted per process: {counts:?}, together {total} in 2 s on 10 per second");
    // GCRA: a burst of 10, then 10 a second: at most 10 + 2 × 10 (+1 for rounding).
    assert!(
        total <= 31,
        "{total} admitted in 2 s on 10 per second: {counts:?}"
    );
    assert!(total >= 20, "only {total} admitted: {counts:?}");
    assert!(
        counts.iter().all(|&c| c >= 3),
        "a process starved: {counts:?}"
    );
}
