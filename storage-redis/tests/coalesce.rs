//! Coalesced `hit_all` on a real Redis: one client's concurrent multi-limit hits go to
//! the server together, exactly, counted with the server's `INFO commandstats`.
//!
//! One test in this file, so that nothing else moves the server's counters meanwhile.

mod common;

use std::sync::Arc;

use limiter_core::strategy::BuiltIn;
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, DEFAULT_MAX_BATCH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hit_all_of_one_client_admit_exactly_the_tightest_limit_in_fewer_calls() {
    let url = common::env("LIMITER_REDIS_URL");
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-coalesce:").await;
    let limits: Vec<RateLimit> =
        limiter_core::parse_many("1000 per minute; 150 per hour").expect("limits");
    let key = Key::from("client");
    for strategy in BuiltIn::ALL {
        let mut calls_per_mode = Vec::new();
        for coalesce in [false, true] {
            let limiter = RateLimiter::builder(Arc::new(storage.clone()))
                .strategy_arc(common::strategy(strategy))
                .clock(ManualClock::new(1_700_000_000_000))
                .namespace(format!(
                    "coalesce-{}-{}-{coalesce}",
                    std::process::id(),
                    strategy.name()
                ))
                .rejection_cache(None)
                .coalesce(coalesce.then_some(DEFAULT_MAX_BATCH))
                .build();
            let before = common::script_calls(&url);
            let tasks: Vec<_> = (0..400)
                .map(|_| {
                    let (limiter, limits, key) = (limiter.clone(), limits.clone(), key.clone());
                    tokio::spawn(async move { limiter.hit_all(&limits, &key, 1).await })
                })
                .collect();
            let mut admitted = 0;
            for task in tasks {
                let decision = task.await.expect("task").expect("hit_all");
                admitted += usize::from(decision.is_allowed());
            }
            calls_per_mode.push(common::script_calls(&url) - before);
            assert_eq!(admitted, 150, "{strategy}, coalescing {coalesce}");
            // All or nothing: the looser limit counted exactly the admitted hits.
            let stats = limiter.stats(&limits[0], &key).await.expect("stats");
            assert_eq!(
                stats.remaining,
                1000 - 150,
                "{strategy}, coalescing {coalesce}"
            );
            for limit in &limits {
                let _ = limiter.clear(limit, &key).await;
            }
        }
        let (off, on) = (calls_per_mode[0], calls_per_mode[1]);
        assert!(
            off >= 400,
            "{strategy}: {off} script calls without coalescing"
        );
        assert!(
            on < off / 2,
            "{strategy}: {on} script calls coalesced against {off} without"
        );
    }
}
