//! Concurrency: hits from many tasks at once are linearisable. Exactly the limit is
//! admitted, never more, whatever the interleaving.
//!
//! The tasks are spawned on the test's two-worker runtime and share one
//! [`RateLimiter`] (cheap clones). The clock does not move,
//! so every strategy must admit exactly its amount. The limiters here allow many
//! compare-and-set attempts: these cases test exactness, not the retry budget.

use std::future::Future;

use limiter_core::{Decision, Error, Key, RateLimiter};

use crate::Ctx;

/// Compare-and-set attempts per decision in these cases.
const ATTEMPTS: u32 = 100_000;

/// Runs `tasks` futures made by `make` concurrently, each on its own spawned task,
/// and returns their results in order.
async fn spawn_all<F, Fut>(ctx: &Ctx, tasks: usize, make: F) -> Vec<Decision>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Decision, Error>> + Send + 'static,
{
    let handles: Vec<_> = (0..tasks).map(|i| tokio::spawn(make(i))).collect();
    let mut decisions = Vec::with_capacity(tasks);
    for (i, joined) in futures::future::join_all(handles)
        .await
        .into_iter()
        .enumerate()
    {
        let result = ctx.ok(joined, format_args!("joining task {i}"));
        decisions.push(ctx.ok(result, format_args!("the call of task {i}")));
    }
    decisions
}

fn limiter(ctx: &Ctx) -> RateLimiter {
    ctx.builder().max_attempts(ATTEMPTS).build()
}

/// 500 concurrent hits on `50 per minute` admit exactly 50; the admitted decisions'
/// `remaining` values are exactly 49, 48, …, 0 (each hit saw a distinct count), every
/// rejection reports 0 left, and `stats` then shows 0.
pub async fn concurrent_hits_admit_exactly_the_limit(ctx: &Ctx) {
    let raw = limiter(ctx);
    let limit = ctx.limit("50 per minute");
    let key = Key::from("crowd");
    let decisions = spawn_all(ctx, 500, |_| {
        let (raw, key) = (raw.clone(), key.clone());
        async move { raw.hit(&limit, &key, 1).await }
    })
    .await;
    let mut remaining: Vec<u64> = decisions
        .iter()
        .filter(|d| d.is_allowed())
        .map(Decision::remaining)
        .collect();
    ensure_eq!(
        ctx,
        remaining.len(),
        50,
        "hits admitted out of 500 on 50 per minute"
    );
    remaining.sort_unstable();
    let expected: Vec<u64> = (0..50).collect();
    ensure_eq!(ctx, remaining, expected, "remaining of the admitted hits");
    for d in decisions.iter().filter(|d| !d.is_allowed()) {
        ensure_eq!(ctx, d.remaining(), 0, "remaining of a rejected hit: {d:?}");
    }
    let stats = ctx.checked(raw, "limiter").stats(&limit, &key).await;
    ensure_eq!(ctx, stats.remaining, 0, "stats after the crowd");
}

/// 8 keys × 40 concurrent hits on `5 per minute`: exactly 5 admitted per key.
pub async fn concurrent_hits_on_many_keys_stay_apart(ctx: &Ctx) {
    let raw = limiter(ctx);
    let limit = ctx.limit("5 per minute");
    let keys: Vec<Key> = (0..8).map(|i| Key::new(["key", &i.to_string()])).collect();
    let decisions = spawn_all(ctx, 320, |i| {
        let (raw, key) = (raw.clone(), keys[i % 8].clone());
        async move { raw.hit(&limit, &key, 1).await }
    })
    .await;
    for (k, key) in keys.iter().enumerate() {
        let admitted = decisions
            .iter()
            .enumerate()
            .filter(|(i, d)| i % 8 == k && d.is_allowed())
            .count();
        ensure_eq!(ctx, admitted, 5, "hits admitted for {key:?}");
    }
}

/// 200 concurrent hits of costs 1, 2 and 3 on `50 per minute`: the admitted costs sum
/// to at most 50, and `stats` shows exactly 50 minus that sum.
pub async fn concurrent_mixed_costs_never_overshoot(ctx: &Ctx) {
    let raw = limiter(ctx);
    let limit = ctx.limit("50 per minute");
    let key = Key::from("mixed");
    let cost = |i: usize| u64::try_from(i % 3).unwrap_or(0) + 1;
    let decisions = spawn_all(ctx, 200, |i| {
        let (raw, key) = (raw.clone(), key.clone());
        async move { raw.hit(&limit, &key, cost(i)).await }
    })
    .await;
    let used: u64 = decisions
        .iter()
        .filter(|d| d.is_allowed())
        .map(Decision::cost)
        .sum();
    ensure!(ctx, used <= 50, "admitted {used} units on 50 per minute");
    ensure!(
        ctx,
        used >= 48,
        "admitted only {used} units of 50 (costs up to 3)"
    );
    let stats = ctx.checked(raw, "limiter").stats(&limit, &key).await;
    ensure_eq!(ctx, stats.remaining, 50 - used, "stats after mixed costs");
}

async fn concurrent_hit_all(ctx: &Ctx, tight_first: bool) {
    let raw = limiter(ctx);
    let (minute, hour) = (ctx.limit("50 per minute"), ctx.limit("1000 per hour"));
    let limits = if tight_first {
        [minute, hour]
    } else {
        [hour, minute]
    };
    let key = Key::from("crowd-all");
    let decisions = spawn_all(ctx, 500, |_| {
        let (raw, key) = (raw.clone(), key.clone());
        async move { raw.hit_all(&limits, &key, 1).await }
    })
    .await;
    let admitted = decisions.iter().filter(|d| d.is_allowed()).count();
    ensure_eq!(
        ctx,
        admitted,
        50,
        "hit_all admitted out of 500 on {limits:?}"
    );
    for d in decisions.iter().filter(|d| !d.is_allowed()) {
        ensure_eq!(ctx, *d.limit(), minute, "limit named by a rejection: {d:?}");
    }
    let l = ctx.checked(raw, "limiter");
    ensure_eq!(
        ctx,
        l.stats(&minute, &key).await.remaining,
        0,
        "minute limit"
    );
    ensure_eq!(
        ctx,
        l.stats(&hour, &key).await.remaining,
        950,
        "hour limit: exactly the 50 admitted hits consumed"
    );
}

/// 500 concurrent `hit_all([50 per minute, 1000 per hour])` admit exactly 50, and the
/// hour limit shows exactly 50 consumed: no rejected call left anything behind.
pub async fn concurrent_hit_all_admits_exactly_the_tightest_limit(ctx: &Ctx) {
    concurrent_hit_all(ctx, true).await;
}

/// The same with the tight limit last, `[1000 per hour, 50 per minute]`: on the
/// generic path a call may consume the hour limit and then lose the race for the minute
/// limit, and must give the hour unit back. Exactly 50 admitted, exactly 50 consumed.
pub async fn concurrent_hit_all_refunds_exactly(ctx: &Ctx) {
    concurrent_hit_all(ctx, false).await;
}

/// 300 concurrent calls on one key of `50 per minute` through a limiter that
/// coalesces them (hits and tests of costs 1 to 3, the clock still): the outcome is
/// that of some serial order. Sorted by `remaining`, the admitted hits count down by
/// their own costs from 50; every other call saw one of the states in between
/// (a rejected hit or test had less left than its cost, an admitted test at least its
/// cost); and `stats` ends at 50 minus the admitted costs.
pub async fn coalesced_calls_equal_a_serial_order(ctx: &Ctx) {
    let raw = ctx
        .builder()
        .max_attempts(ATTEMPTS)
        .coalesce(Some(16))
        .build();
    let limit = ctx.limit("50 per minute");
    let key = Key::from("coalesced");
    let cost = |i: usize| u64::try_from(i % 3).unwrap_or(0) + 1;
    let is_test = |i: usize| i % 5 == 4;
    let decisions = spawn_all(ctx, 300, |i| {
        let (raw, key) = (raw.clone(), key.clone());
        async move {
            if is_test(i) {
                raw.test(&limit, &key, cost(i)).await
            } else {
                raw.hit(&limit, &key, cost(i)).await
            }
        }
    })
    .await;
    let mut admitted: Vec<&Decision> = decisions
        .iter()
        .enumerate()
        .filter(|(i, d)| !is_test(*i) && d.is_allowed())
        .map(|(_, d)| d)
        .collect();
    admitted.sort_by_key(|d| std::cmp::Reverse(d.remaining()));
    // The states of the serial order: 50, then after each admitted hit.
    let mut states = vec![50u64];
    for d in &admitted {
        let before = states[states.len() - 1];
        ensure!(
            ctx,
            before >= d.cost() && d.remaining() == before - d.cost(),
            "admitted hit {d:?} does not follow {before} left in a serial order"
        );
        states.push(d.remaining());
    }
    for (i, d) in decisions.iter().enumerate() {
        let hit_admitted = !is_test(i) && d.is_allowed();
        if hit_admitted {
            continue;
        }
        ensure!(
            ctx,
            states.contains(&d.remaining()),
            "call {i} ({d:?}) saw {} left, no state of the serial order {states:?}",
            d.remaining()
        );
        ensure_eq!(
            ctx,
            d.is_allowed(),
            d.remaining() >= d.cost(),
            "call {i} ({d:?}) against the units it saw"
        );
    }
    let last = states[states.len() - 1];
    let stats = ctx.checked(raw, "limiter").stats(&limit, &key).await;
    ensure_eq!(
        ctx,
        stats.remaining,
        last,
        "stats after the coalesced calls"
    );
}
