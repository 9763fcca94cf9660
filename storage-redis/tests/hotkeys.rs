//! A hot key on a real Redis: the local rejection cache spares the server the
//! rejected hits, counted with the server's `INFO commandstats`.
//!
//! One test in this file, so that nothing else moves the server's counters meanwhile.

mod common;

use std::sync::Arc;

use limiter_core::strategy::BuiltIn;
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter};

/// Script calls (`EVALSHA` and `EVAL`) the server has answered, from `redis-cli`.
fn script_calls(url: &str) -> u64 {
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("a port in LIMITER_REDIS_URL");
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            let calls = l.split("calls=").nth(1)?;
            calls.split(',').next()?.parse::<u64>().ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_hits_on_a_hot_key_make_eleven_script_calls() {
    let url = common::env("LIMITER_REDIS_URL");
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-hotkeys:").await;
    let limit: RateLimit = "10 per minute".parse().expect("limit");
    let key = Key::from("hot");
    for strategy in BuiltIn::ALL {
        let clock = ManualClock::new(1_700_000_000_000);
        let namespace = format!("hotkeys-{}-{}", std::process::id(), strategy.name());
        let build = |cache: bool, suffix: &str| {
            RateLimiter::builder(Arc::new(storage.clone()))
                .strategy_arc(common::strategy(strategy))
                .clock(clock.clone())
                .namespace(format!("{namespace}-{suffix}"))
                .rejection_cache(cache.then_some(1024))
                .build()
        };
        let (cached, plain) = (build(true, "cached"), build(false, "plain"));
        let mut expected = Vec::new();
        for _ in 0..200 {
            expected.push(plain.hit(&limit, &key, 1).await.expect("hit"));
        }
        let before = script_calls(&url);
        for i in 0..20_000 {
            let decision = cached.hit(&limit, &key, 1).await.expect("hit");
            assert_eq!(decision, expected[i.min(199)], "{strategy} hit {i}");
        }
        let calls = script_calls(&url) - before;
        assert!(
            calls <= 11,
            "{strategy}: {calls} script calls for 20,000 hits"
        );
        let _ = cached.clear(&limit, &key).await;
        let _ = plain.clear(&limit, &key).await;
    }
}
