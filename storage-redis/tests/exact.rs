//! Limits whose numbers leave the range doubles hold exactly: the storage gives the
//! same verdicts and leaves the same bytes as the Rust strategy, whether it runs the
//! script (fixed and moving windows) or declines to the generic path (sliding window
//! and GCRA, where the script's products would not be exact).

mod common;

use std::sync::Arc;

use limiter_core::strategy::{BuiltIn, Op};
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Storage, Timestamp};
use limiter_redis::runs_natively;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_limits_match_the_strategy_byte_for_byte() {
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-exact:").await;
    let limit: RateLimit = "1000000000000000 per 1000 year".parse().expect("limit");
    let t0 = 1_700_000_000_000u64;
    for builtin in BuiltIn::ALL {
        let expect_native = matches!(builtin, BuiltIn::FixedWindow | BuiltIn::MovingWindow);
        assert_eq!(
            runs_natively(builtin, &limit, 1),
            expect_native,
            "{builtin}"
        );
        let clock = ManualClock::new(t0);
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(common::strategy(builtin))
            .namespace(format!("exact-{}", std::process::id()))
            .clock(clock.clone())
            .build();
        let key = Key::from("huge");
        let _ = limiter.clear(&limit, &key).await;
        let stored_key = limiter.storage_key(&limit, &key);
        let mut state = Vec::new();
        for (step, cost) in [1u64, 999_999_999_999_998, 1, 1, 7].into_iter().enumerate() {
            let now = Timestamp::from_millis(t0 + 1_000 * step as u64);
            clock.set(now.as_millis());
            let decision = limiter.hit(&limit, &key, cost).await.expect("hit");
            let want = builtin
                .strategy()
                .apply(&limit, &mut state, Op::Hit { cost }, now)
                .expect("apply");
            assert_eq!(
                decision.is_allowed(),
                want.verdict.allowed,
                "{builtin} step {step}"
            );
            assert_eq!(
                decision.remaining(),
                want.verdict.remaining,
                "{builtin} step {step}"
            );
            let stored = storage.get(&stored_key, now).await.expect("get");
            let bytes = stored.map(|v| v.value).unwrap_or_default();
            assert_eq!(bytes, state, "{builtin} step {step}: stored bytes");
        }
        limiter.clear(&limit, &key).await.expect("clear");
    }
}

/// A multi-limit hit the batch script hands to the generic path (one limit's new
/// state would leave the exact range, a few seconds before the end of time) must have
/// written nothing: each limit then counts the hit once, as the strategy alone does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_handed_to_the_generic_path_counts_each_limit_once() {
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-exact:").await;
    let limits = limiter_core::parse_many("1000 per second; 5 per day").expect("limits");
    let now = Timestamp::MAX.as_millis() - 5_000;
    for builtin in [BuiltIn::Gcra, BuiltIn::FixedWindow, BuiltIn::SlidingWindow] {
        let limiter = RateLimiter::builder(Arc::new(storage.clone()))
            .strategy_arc(common::strategy(builtin))
            .namespace(format!("exact-batch-{}", std::process::id()))
            .clock(ManualClock::new(now))
            .coalesce(None)
            .rejection_cache(None)
            .build();
        let key = Key::from("end-of-time");
        for limit in &limits {
            let _ = limiter.clear(limit, &key).await;
        }
        let decision = limiter.hit_all(&limits, &key, 1).await.expect("hit_all");
        assert!(decision.is_allowed(), "{builtin}");
        for limit in &limits {
            let stored = storage
                .get(
                    &limiter.storage_key(limit, &key),
                    Timestamp::from_millis(now),
                )
                .await
                .expect("get")
                .map(|v| v.value)
                .unwrap_or_default();
            let mut want = Vec::new();
            builtin
                .strategy()
                .apply(
                    limit,
                    &mut want,
                    Op::Hit { cost: 1 },
                    Timestamp::from_millis(now),
                )
                .expect("apply");
            assert_eq!(stored, want, "{builtin}, {limit}: counted once");
        }
    }
}
