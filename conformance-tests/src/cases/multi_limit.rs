//! Multi-limit calls: `hit_all` is all or nothing, `test_all` changes nothing, and the
//! decision names the limit that decided.

use limiter_core::{Error, Key, Retry};

use super::{ms, PerStrategy};
use crate::Ctx;

/// `hit_all(["1 per second", "2 per minute"])`: the first call passes (naming the
/// second limit, which has fewest left); the second is rejected by the per-second limit,
/// and the minute limit shows only 1 consumed, its stored bytes untouched. After the
/// decision's `retry_after` (1 s; 1.001 s for the sliding window) a call passes; the
/// next is rejected and names the minute limit, which waits longest. `test_all` agrees
/// with every `hit_all` before it.
pub async fn hit_all_is_all_or_nothing(ctx: &Ctx) {
    let l = ctx.limiter();
    let (second, minute) = (ctx.limit("1 per second"), ctx.limit("2 per minute"));
    let limits = [second, minute];
    let key = Key::new(["user-42"]);

    let t = l.test_all(&limits, &key, 1).await;
    ensure!(ctx, t.is_allowed(), "first test_all rejected: {t:?}");
    let d = l.hit_all(&limits, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "first hit_all rejected: {d:?}");
    ensure_eq!(ctx, *d.limit(), second, "limit named by the first hit_all");
    ensure_eq!(ctx, d.remaining(), 0, "remaining of the first hit_all");

    let minute_bytes = l.stored(&minute, &key).await.map(|v| v.value);
    let t = l.test_all(&limits, &key, 1).await;
    ensure!(ctx, !t.is_allowed(), "second test_all allowed: {t:?}");
    ensure_eq!(
        ctx,
        *t.limit(),
        second,
        "limit named by the second test_all"
    );
    let d = l.hit_all(&limits, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "second hit_all allowed: {d:?}");
    ensure_eq!(ctx, *d.limit(), second, "limit named by the second hit_all");
    ensure_eq!(ctx, d.remaining(), 0, "remaining of the second hit_all");
    let retry = PerStrategy {
        fixed: 1_000,
        moving: 1_000,
        sliding: 1_001,
        gcra: 1_000,
    }
    .get(ctx);
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(retry)),
        "retry of the 2nd hit_all"
    );
    ensure_eq!(
        ctx,
        l.stats(&minute, &key).await.remaining,
        1,
        "minute limit after a rejected hit_all (only the first call consumed)"
    );
    ensure_eq!(
        ctx,
        l.stored(&minute, &key).await.map(|v| v.value),
        minute_bytes,
        "minute limit's stored bytes after a rejected hit_all"
    );

    ctx.advance_ms(retry);
    let t = l.test_all(&limits, &key, 1).await;
    ensure!(
        ctx,
        t.is_allowed(),
        "test_all after retry_after rejected: {t:?}"
    );
    let d = l.hit_all(&limits, &key, 1).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "hit_all after retry_after rejected: {d:?}"
    );
    ensure_eq!(ctx, d.remaining(), 0, "remaining after the third call");

    let d = l.hit_all(&limits, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "fourth hit_all allowed: {d:?}");
    ensure_eq!(ctx, *d.limit(), minute, "limit named when both reject");
    let wait = PerStrategy {
        fixed: 59_000,
        moving: 59_000,
        sliding: 59_000,
        gcra: 29_000,
    }
    .get(ctx);
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(wait)),
        "retry of the 4th hit_all"
    );
    ensure_eq!(
        ctx,
        l.stats(&minute, &key).await.remaining,
        0,
        "minute limit at the end"
    );
}

/// When every limit passes the decision names the one with the fewest units left, and
/// when one rejects it names that one: `[10/min, 3/min, 5/hour]` with costs 1 and 2
/// names `3 per minute`; with `[10/min, 5/hour]` and cost 2 it names `5 per hour`.
pub async fn hit_all_names_the_tightest_limit(ctx: &Ctx) {
    let l = ctx.limiter();
    let (ten, three, hour) = (
        ctx.limit("10 per minute"),
        ctx.limit("3 per minute"),
        ctx.limit("5 per hour"),
    );
    let key = Key::from("tightest");
    let all = [ten, three, hour];
    for (cost, left) in [(1, 2), (2, 0)] {
        let d = l.hit_all(&all, &key, cost).await;
        ensure!(ctx, d.is_allowed(), "hit_all of {cost} rejected: {d:?}");
        ensure_eq!(ctx, *d.limit(), three, "limit named by hit_all of {cost}");
        ensure_eq!(
            ctx,
            d.remaining(),
            left,
            "remaining after hit_all of {cost}"
        );
        ensure_eq!(ctx, d.cost(), cost, "decision.cost()");
    }
    let d = l.hit_all(&all, &key, 1).await;
    ensure!(
        ctx,
        !d.is_allowed(),
        "hit_all with 3/min exhausted allowed: {d:?}"
    );
    ensure_eq!(ctx, *d.limit(), three, "limit named by the rejection");
    ensure_eq!(
        ctx,
        l.stats(&ten, &key).await.remaining,
        7,
        "10/min after rejection"
    );
    ensure_eq!(
        ctx,
        l.stats(&hour, &key).await.remaining,
        2,
        "5/hour after rejection"
    );
    let d = l.hit_all(&[ten, hour], &key, 2).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "hit_all [10/min, 5/hour] of 2 rejected: {d:?}"
    );
    ensure_eq!(ctx, *d.limit(), hour, "limit named with 5 and 0 left");
    ensure_eq!(ctx, d.remaining(), 0, "remaining of 5/hour");
    let d = l.hit_all(&[ten, hour], &key, 1).await;
    ensure!(
        ctx,
        !d.is_allowed(),
        "hit_all with 5/hour exhausted allowed: {d:?}"
    );
    ensure_eq!(ctx, *d.limit(), hour, "limit named by the 5/hour rejection");
}

/// Repeated limits count once: `hit_all([5/min, 5/min, 2/s, 5 per 1 minute])` consumes
/// one unit of `5 per minute`, not three. `5 per 60 seconds` is a different limit (and
/// key) from `5 per minute` and counts separately.
pub async fn hit_all_counts_duplicate_limits_once(ctx: &Ctx) {
    let l = ctx.limiter();
    let (five, two, five_again, sixty) = (
        ctx.limit("5 per minute"),
        ctx.limit("2 per second"),
        ctx.limit("5 per 1 minute"),
        ctx.limit("5 per 60 seconds"),
    );
    let key = Key::from("duplicates");
    let d = l.hit_all(&[five, five, two, five_again], &key, 1).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "hit_all with duplicates rejected: {d:?}"
    );
    ensure_eq!(ctx, *d.limit(), two, "limit named");
    ensure_eq!(ctx, d.remaining(), 1, "remaining of 2 per second");
    ensure_eq!(
        ctx,
        l.stats(&five, &key).await.remaining,
        4,
        "5/min after one call"
    );
    let t = l.test_all(&[five, five, five], &key, 4).await;
    ensure!(
        ctx,
        t.is_allowed(),
        "test_all of 4 with duplicates rejected: {t:?}"
    );
    let d = l.hit_all(&[five, sixty, five], &key, 1).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "hit_all [5/min, 5/60s] rejected: {d:?}"
    );
    ensure_eq!(
        ctx,
        l.stats(&five, &key).await.remaining,
        3,
        "5/min after two calls"
    );
    ensure_eq!(
        ctx,
        l.stats(&sixty, &key).await.remaining,
        4,
        "5 per 60 seconds"
    );
}

/// A cost above one limit's amount: `hit_all([2/s, 10/min], 3)` is rejected, names
/// `2 per second`, can never pass, has no `retry_after`, and stores nothing. A cost of
/// 2 then passes both.
pub async fn hit_all_cost_above_an_amount_never_passes(ctx: &Ctx) {
    let l = ctx.limiter();
    let (two, ten) = (ctx.limit("2 per second"), ctx.limit("10 per minute"));
    let key = Key::from("expensive");
    for (call, d) in [
        ("test_all", l.test_all(&[two, ten], &key, 3).await),
        ("hit_all", l.hit_all(&[two, ten], &key, 3).await),
    ] {
        ensure!(ctx, !d.is_allowed(), "{call} of 3 on 2/s allowed: {d:?}");
        ensure_eq!(ctx, *d.limit(), two, "limit named by {call}");
        ensure_eq!(ctx, d.retry(), Some(Retry::Never), "{call}: retry");
        ensure_eq!(ctx, d.retry_after(), None, "{call}: retry_after");
    }
    ensure_eq!(ctx, l.stored(&two, &key).await, None, "2/s state");
    ensure_eq!(ctx, l.stored(&ten, &key).await, None, "10/min state");
    let d = l.hit_all(&[two, ten], &key, 2).await;
    ensure!(ctx, d.is_allowed(), "hit_all of 2 rejected: {d:?}");
    ensure_eq!(
        ctx,
        l.stats(&ten, &key).await.remaining,
        8,
        "10/min after cost 2"
    );
}

/// `hit_all` and `test_all` with no limits are `Error::NoLimits`; with a cost of 0,
/// `Error::ZeroCost`.
pub async fn empty_limits_are_an_error(ctx: &Ctx) {
    let l = ctx.limiter();
    let raw = l.inner();
    let key = Key::from("none");
    let limits = [ctx.limit("1 per second")];
    let results = [
        ("hit_all([])", raw.hit_all(&[], &key, 1).await, "NoLimits"),
        ("test_all([])", raw.test_all(&[], &key, 1).await, "NoLimits"),
        (
            "hit_all(cost 0)",
            raw.hit_all(&limits, &key, 0).await,
            "ZeroCost",
        ),
        (
            "test_all(cost 0)",
            raw.test_all(&limits, &key, 0).await,
            "ZeroCost",
        ),
    ];
    for (call, result, expected) in results {
        let ok = match expected {
            "NoLimits" => matches!(result, Err(Error::NoLimits)),
            _ => matches!(result, Err(Error::ZeroCost)),
        };
        ensure!(ctx, ok, "{call}: expected Err({expected}), got {result:?}");
    }
}
