//! Failures a storage must survive: scripts flushed from the server, a server that
//! goes away and comes back, and a server that hangs. Every call ends within the
//! command timeout with a typed error, and the storage works again afterwards.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use limiter_core::storage::{BreakerConfig, OPEN_OPERATION};
use limiter_core::strategy::BuiltIn;
use limiter_core::{Error, Key, RateLimit, RateLimiter, StorageErrorKind};
use limiter_redis::fred::prelude::LuaInterface;
use limiter_redis::{RedisOptions, RedisStorage};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
/// What a call may take beyond the command timeout (scheduling on a busy machine).
const SLACK: Duration = Duration::from_millis(250);

fn limiter(storage: &RedisStorage, strategy: BuiltIn, namespace: &str) -> RateLimiter {
    RateLimiter::builder(Arc::new(storage.clone()))
        .strategy_arc(common::strategy(strategy))
        .namespace(namespace)
        .build()
}

async fn dedicated(server: &TestServer) -> RedisStorage {
    let options = server
        .uri()
        .parse::<RedisOptions>()
        .expect("uri")
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(COMMAND_TIMEOUT)
        .key_prefix("limiter-resilience:");
    RedisStorage::connect(options)
        .await
        .expect("connect to the test's own server")
}

/// Waits up to 10 s for hits to succeed again, ten in a row (so through every
/// connection of the pool).
async fn recovers(limiter: &RateLimiter, limit: &RateLimit) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    loop {
        match limiter.hit(limit, &Key::from("after"), 1).await {
            Ok(_) if in_a_row == 9 => return,
            Ok(_) => in_a_row += 1,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the storage did not recover within 10 s: {e}"),
        }
    }
}

/// A failed hit: its kind is Unavailable or Timeout, it names the operation and key,
/// and it came back within the command timeout.
async fn fails_in_time(limiter: &RateLimiter, limit: &RateLimit) {
    let started = Instant::now();
    let result = limiter.hit(limit, &Key::from("during"), 1).await;
    let took = started.elapsed();
    match result {
        Err(Error::Storage(e)) => {
            assert!(
                matches!(
                    e.kind(),
                    StorageErrorKind::Unavailable | StorageErrorKind::Timeout
                ),
                "{e}"
            );
            assert!(e.key().is_some_and(|k| k.contains("during")), "{e}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert!(took <= COMMAND_TIMEOUT + SLACK, "took {took:?}");
}

/// SCRIPT FLUSH on every primary, as after a restart or a failover.
async fn flush_scripts(var: &str) {
    let raw = common::raw(var).await;
    let flushed: Result<(), _> = raw.pool().next().script_flush_cluster(false).await;
    flushed.expect("SCRIPT FLUSH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_scripts_are_reloaded_transparently() {
    for var in ["LIMITER_REDIS_URL", "LIMITER_REDIS_CLUSTER_URL"] {
        let storage = common::connect(var, "limiter-noscript:").await;
        let namespace = format!("noscript-{}", std::process::id());
        let limit: RateLimit = "3 per minute".parse().expect("limit");
        for strategy in BuiltIn::ALL {
            let limiter = limiter(&storage, strategy, &namespace);
            let key = Key::from(var);
            let _ = limiter.clear(&limit, &key).await;
            assert!(limiter
                .hit(&limit, &key, 1)
                .await
                .expect("hit")
                .is_allowed());
            flush_scripts(var).await;
            let decision = limiter.hit(&limit, &key, 1).await.expect("hit after flush");
            assert!(decision.is_allowed(), "{var} {strategy}");
            assert_eq!(decision.remaining(), 1, "{var} {strategy}");
            let limits = [limit, "10 per hour".parse().expect("limit")];
            flush_scripts(var).await;
            let all = limiter
                .hit_all(&limits, &key, 1)
                .await
                .expect("hit_all after flush");
            assert!(all.is_allowed());
            assert_eq!(all.remaining(), 0, "{var} {strategy}");
            limiter.clear(&limit, &key).await.expect("clear");
            limiter.clear(&limits[1], &key).await.expect("clear");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_typed_errors_in_time_and_is_used_again_once_back() {
    let mut server = TestServer::start(16395);
    let storage = dedicated(&server).await;
    let limit: RateLimit = "100 per minute".parse().expect("limit");
    for strategy in [BuiltIn::FixedWindow, BuiltIn::Gcra] {
        let limiter = limiter(&storage, strategy, "outage");
        assert!(limiter
            .hit(&limit, &Key::from("before"), 1)
            .await
            .expect("hit")
            .is_allowed());
        server.kill();
        for _ in 0..3 {
            fails_in_time(&limiter, &limit).await;
        }
        let started = Instant::now();
        let check = limiter_core::Storage::check(&storage).await;
        assert!(check.is_err() && started.elapsed() <= COMMAND_TIMEOUT + SLACK);
        server.restart();
        recovers(&limiter, &limit).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_times_out_in_time_and_is_used_again_once_resumed() {
    let server = TestServer::start(16396);
    let storage = dedicated(&server).await;
    let limit: RateLimit = "1000 per minute".parse().expect("limit");
    let limiter = limiter(&storage, BuiltIn::MovingWindow, "hung");
    assert!(limiter
        .hit(&limit, &Key::from("before"), 1)
        .await
        .expect("hit")
        .is_allowed());
    server.signal("-STOP");
    // Many calls at once while it hangs: every one ends in time.
    let calls = (0..50).map(|_| fails_in_time(&limiter, &limit));
    futures::future::join_all(calls).await;
    fails_in_time(&limiter, &limit).await;
    server.signal("-CONT");
    recovers(&limiter, &limit).await;
}

/// The latency at the `percent`th percentile of `samples`.
fn percentile(samples: &mut [Duration], percent: usize) -> Duration {
    samples.sort_unstable();
    let index = (samples.len() - 1) * percent / 100;
    samples[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_answers_in_a_millisecond_and_closes_soon_after_the_server_resumes() {
    let server = TestServer::start(16397);
    let storage = dedicated(&server).await;
    let probe_interval = Duration::from_millis(400);
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .namespace("breaker")
        .circuit_breaker(Some(
            BreakerConfig::default()
                .failures(3)
                .probe_interval(probe_interval),
        ))
        .build();
    let limit: RateLimit = "1000000 per minute".parse().expect("limit");
    assert!(limiter
        .hit(&limit, &Key::from("before"), 1)
        .await
        .expect("hit")
        .is_allowed());
    server.signal("-STOP");
    // Three timeouts open it.
    for _ in 0..3 {
        fails_in_time(&limiter, &limit).await;
    }
    // For a second, 8 callers each call every millisecond: the calls fail at once,
    // the ones that start or poll a probe too (no caller waits for one).
    let started = Instant::now();
    let callers = (0..8).map(|i| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < Duration::from_secs(1) {
                let call = Instant::now();
                match limiter
                    .hit(&limit, &Key::from(format!("during-{i}")), 1)
                    .await
                {
                    Err(Error::Storage(e)) => {
                        assert_eq!(e.kind(), StorageErrorKind::Unavailable, "{e}");
                        assert!(e.key().is_some_and(|k| k.contains("during")), "{e}");
                    }
                    other => panic!("expected a storage error, got {other:?}"),
                }
                latencies.push(call.elapsed());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for caller in futures::future::join_all(callers).await {
        latencies.extend(caller.expect("caller"));
    }
    assert!(latencies.len() > 1_000, "{} calls", latencies.len());
    let p99 = percentile(&mut latencies, 99);
    assert!(
        p99 <= Duration::from_millis(1),
        "p99 {p99:?} over {} calls",
        latencies.len()
    );
    // Not even the calls that start a probe wait for its command timeout.
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < COMMAND_TIMEOUT / 2,
        "slowest {slowest:?} over {} calls",
        latencies.len()
    );
    let open = limiter.hit(&limit, &Key::from("during"), 1).await;
    assert!(
        matches!(&open, Err(Error::Storage(e)) if e.operation() == OPEN_OPERATION),
        "{open:?}"
    );

    // Resumed: a call every 5 ms; one passes within two probe intervals.
    server.signal("-CONT");
    let resumed = Instant::now();
    loop {
        if limiter.hit(&limit, &Key::from("after"), 1).await.is_ok() {
            break;
        }
        assert!(
            resumed.elapsed() <= 2 * probe_interval,
            "no decision {:?} after the server resumed",
            resumed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let back = resumed.elapsed();
    assert!(back <= 2 * probe_interval, "{back:?}");
    // The figures, for `-- --nocapture`.
    println!(
        "breaker open: {} calls, p99 {p99:?}, slowest {slowest:?}; \
         decisions again {back:?} after the server resumed (probe interval {probe_interval:?})",
        latencies.len()
    );
    for _ in 0..20 {
        let decision = limiter
            .hit(&limit, &Key::from("after"), 1)
            .await
            .expect("hit after recovery");
        assert!(decision.is_allowed());
    }
}
