//! A hot key on a real Redis: the local rejection cache spares the server the
//! rejected hits, counted with the server's `INFO commandstats`.
//!
//! One test in this file, so that nothing else moves the server's counters meanwhile.

mod common;

use std::sync::Arc;

use limiter_core::strategy::BuiltIn;
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter};

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
        let before = common::script_calls(&url);
        for i in 0..20_000 {
            let decision = cached.hit(&limit, &key, 1).await.expect("hit");
            assert_eq!(decision, expected[i.min(199)], "{strategy} hit {i}");
        }
        let calls = common::script_calls(&url) - before;
        assert!(
            calls <= 11,
            "{strategy}: {calls} script calls for 20,000 hits"
        );
        let _ = cached.clear(&limit, &key).await;
        let _ = plain.clear(&limit, &key).await;
    }
}
