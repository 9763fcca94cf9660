//! A hot key on a real Memcached: the local rejection cache spares the server the
//! rejected hits, and concurrent hits on one key go in units of one read and one write
//! each, admitting exactly the limit. Counted with the server's own `stats`.
//!
//! One test in this file, so that nothing else moves the server's counters meanwhile.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Strategy};
use limiter_memcached::MemcachedStorage;

/// `(cmd_get, cmd_set)` from the server's `stats`.
fn stats(url: &str) -> (u64, u64) {
    let address = url
        .trim_start_matches("memcached://")
        .split(['?', ','])
        .next()
        .expect("an address");
    let mut stream = TcpStream::connect(address).expect("connect to memcached");
    stream.write_all(b"stats\r\n").expect("send stats");
    let (mut gets, mut sets) = (None, None);
    for line in BufReader::new(stream).lines() {
        let line = line.expect("read stats");
        if line.starts_with("END") {
            break;
        }
        let mut words = line.split_whitespace().skip(1);
        let (name, value) = (words.next(), words.next().and_then(|v| v.parse().ok()));
        match name {
            Some("cmd_get") => gets = value,
            Some("cmd_set") => sets = value,
            _ => {}
        }
    }
    (gets.expect("cmd_get"), sets.expect("cmd_set"))
}

fn namespace(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("hotkeys-{name}-{nanos}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_costs_few_round_trips_and_stays_exact() {
    let url = common::single_url();
    let storage = MemcachedStorage::from_uri(&common::with_options(&url, "pool_size=16"))
        .await
        .expect("a valid uri");
    let strategies: [Arc<dyn Strategy>; 4] = [
        Arc::new(FixedWindow),
        Arc::new(MovingWindow),
        Arc::new(SlidingWindow),
        Arc::new(Gcra),
    ];
    let limit: RateLimit = "10 per minute".parse().expect("a limit");
    let key = Key::from("hot");
    for strategy in &strategies {
        let name = strategy.name();
        let clock = ManualClock::new(1_700_000_000_000);
        let build = |cache: bool| {
            RateLimiter::builder(Arc::new(storage.clone()))
                .strategy_arc(strategy.clone())
                .clock(clock.clone())
                .namespace(namespace(name))
                .rejection_cache(cache.then_some(1024))
                .build()
        };
        let (cached, plain) = (build(true), build(false));
        let mut expected = Vec::new();
        for _ in 0..200 {
            expected.push(plain.hit(&limit, &key, 1).await.expect("hit"));
        }
        // 20,000 hits: 10 admitted (a read and a write each), one rejection read.
        let before = stats(&url);
        for i in 0..20_000 {
            let decision = cached.hit(&limit, &key, 1).await.expect("hit");
            assert_eq!(decision, expected[i.min(199)], "{name} hit {i}");
        }
        let after = stats(&url);
        let (gets, sets) = (after.0 - before.0, after.1 - before.1);
        assert!(gets <= 11, "{name}: {gets} reads for 20,000 hits");
        assert_eq!(sets, 10, "{name}");
    }

    // 200 concurrent hits on one key of `100 per minute`: exactly 100 admitted, no
    // contention error, and far fewer reads than hits (calls queued behind the one in
    // flight go together).
    for strategy in &strategies {
        let name = strategy.name();
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(strategy.clone())
            .clock(ManualClock::new(1_700_000_000_000))
            .namespace(namespace(name))
            .rejection_cache(None)
            .build();
        let limit: RateLimit = "100 per minute".parse().expect("a limit");
        let before = stats(&url);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (limiter, key) = (limiter.clone(), key.clone());
                tokio::spawn(async move { limiter.hit(&limit, &key, 1).await })
            })
            .collect();
        let mut remaining = Vec::new();
        for task in tasks {
            let decision = task.await.expect("task").expect("no storage error");
            if decision.is_allowed() {
                remaining.push(decision.remaining());
            }
        }
        remaining.sort_unstable();
        assert_eq!(remaining, (0..100).collect::<Vec<_>>(), "{name}");
        let gets = stats(&url).0 - before.0;
        assert!(gets < 100, "{name}: {gets} reads for 200 concurrent hits");
    }

    // 200 concurrent two-limit hit_all of one client (`1000 per minute; 60 per hour`):
    // exactly 60 admitted, all or nothing, no contention error, and far fewer reads
    // than the four operations per call the all-or-nothing routine runs alone (each
    // limit's operations queue per key, as hits do).
    let limits = limiter_core::parse_many("1000 per minute; 60 per hour").expect("limits");
    for strategy in &strategies {
        let name = strategy.name();
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(strategy.clone())
            .clock(ManualClock::new(1_700_000_000_000))
            .namespace(namespace(name))
            .rejection_cache(None)
            .build();
        let before = stats(&url);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (limiter, limits, key) = (limiter.clone(), limits.clone(), key.clone());
                tokio::spawn(async move { limiter.hit_all(&limits, &key, 1).await })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            let decision = task.await.expect("task").expect("no storage error");
            admitted += usize::from(decision.is_allowed());
        }
        assert_eq!(admitted, 60, "{name}");
        let stats_now = limiter.stats(&limits[0], &key).await.expect("stats");
        assert_eq!(stats_now.remaining, 1000 - 60, "{name}: all or nothing");
        let gets = stats(&url).0 - before.0;
        assert!(
            gets < 400,
            "{name}: {gets} reads for 200 concurrent hit_all"
        );
    }
}
