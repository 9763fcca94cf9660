//! Single-limit behaviour shared by every strategy: counting, costs, `test`, `stats`,
//! rejections, `clear`.

use std::time::Duration;

use limiter_core::{Error, Key, Retry};

use super::{ms, PerStrategy};
use crate::Ctx;

/// `5 per minute`, five hits at one instant: each passes and `remaining` counts down
/// 4, 3, 2, 1, 0; the sixth is rejected with `remaining` 0 and the strategy's exact
/// `retry_after` and `reset_after`:
///
/// | strategy | retry_after | reset_after |
/// |---|---|---|
/// | fixed window | 60 s (end of the window) | 60 s |
/// | moving window | 60 s (the first hit leaves) | 60 s |
/// | sliding window | 60.001 s (`floor(5 × 59 999 / 60 000) = 4`) | 108.001 s (`floor(5 × 11 999 / 60 000) = 0`) |
/// | GCRA | 12 s (one interval) | 60 s |
pub async fn up_to_limit_then_one_over(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("5 per minute");
    let key = Key::new(["client", "up-to-limit"]);
    for used in 1..=5u64 {
        let d = l.hit(&limit, &key, 1).await;
        ensure!(ctx, d.is_allowed(), "hit {used} of 5 was rejected: {d:?}");
        ensure_eq!(
            ctx,
            d.remaining(),
            5 - used,
            "remaining after hit {used} of 5"
        );
        ensure_eq!(ctx, *d.limit(), limit, "decision.limit() of hit {used}");
        ensure_eq!(ctx, d.cost(), 1, "decision.cost() of hit {used}");
        ensure_eq!(ctx, d.decided_at(), ctx.now(), "decision.decided_at()");
        ensure_eq!(
            ctx,
            d.retry_after(),
            None,
            "retry_after of allowed hit {used}"
        );
        ensure!(
            ctx,
            d.reset_after() > Some(Duration::ZERO),
            "reset_after of allowed hit {used} is zero: {d:?}"
        );
    }
    let over = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !over.is_allowed(), "hit 6 of 5 was allowed: {over:?}");
    ensure_eq!(
        ctx,
        over.remaining(),
        0,
        "remaining of the rejected 6th hit"
    );
    ensure!(
        ctx,
        matches!(over.retry(), Some(Retry::After(_))),
        "cost 1 of 5 must be able to pass later: {over:?}"
    );
    let (retry, reset) = PerStrategy {
        fixed: (60_000, 60_000),
        moving: (60_000, 60_000),
        sliding: (60_001, 108_001),
        gcra: (12_000, 60_000),
    }
    .get(ctx);
    ensure_eq!(
        ctx,
        over.retry_after(),
        Some(ms(retry)),
        "retry_after of the rejected 6th hit"
    );
    ensure_eq!(
        ctx,
        over.reset_after(),
        Some(ms(reset)),
        "reset_after of the 6th hit"
    );
    let stats = l.stats(&limit, &key).await;
    ensure_eq!(ctx, stats.remaining, 0, "stats.remaining after 5 of 5");
    ensure_eq!(
        ctx,
        stats.reset_at,
        over.reset_at(),
        "stats.reset_at vs the rejected hit's reset"
    );
}

/// `retry_after` is exact: at `now + retry_after − 1 ms` the same `test` is still
/// rejected and at `now + retry_after` it passes. `reset_at` is exact: one millisecond
/// before it fewer than `amount` units are available, at it all of them (and
/// `reset_after` is zero). Probed for every cost from 1 to the amount, at several
/// times, after hits of 2, 1 and 1 units at t0, t0+100 ms and t0+300 ms on
/// `4 per second`.
pub async fn retry_and_reset_are_exact(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("4 per second");
    let key = Key::from("retry-and-reset");
    for (offset, cost) in [(0, 2), (100, 1), (300, 1)] {
        ctx.set_offset_ms(offset);
        let d = l.hit(&limit, &key, cost).await;
        ensure!(ctx, d.is_allowed(), "setup hit of {cost} rejected: {d:?}");
    }
    let mut latest_retry = 300;
    for probe in [300u64, 650, 999, 1_150] {
        for cost in 1..=4u64 {
            ctx.set_offset_ms(probe);
            let d = l.test(&limit, &key, cost).await;
            if d.is_allowed() {
                ensure_eq!(ctx, d.retry_after(), None, "retry_after of an allowed test");
                continue;
            }
            let Some(retry) = d.retry_after() else {
                ctx.fail(format_args!(
                    "test of cost {cost} rejected with no retry_after: {d:?}"
                ))
            };
            let retry = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
            ensure!(
                ctx,
                retry > 0,
                "test of cost {cost} rejected with retry_after 0"
            );
            ctx.set_offset_ms(probe + retry - 1);
            let before = l.test(&limit, &key, cost).await;
            ensure!(
                ctx,
                !before.is_allowed(),
                "cost {cost} passed 1 ms before the retry_after ({retry} ms) given at \
                 t0+{probe}ms: {before:?}"
            );
            ctx.set_offset_ms(probe + retry);
            let at = l.test(&limit, &key, cost).await;
            ensure!(
                ctx,
                at.is_allowed(),
                "cost {cost} still rejected at the retry_after ({retry} ms) given at \
                 t0+{probe}ms: {at:?}"
            );
            latest_retry = latest_retry.max(probe + retry);
        }
        ctx.set_offset_ms(probe);
        let stats = l.stats(&limit, &key).await;
        if stats.remaining == 4 {
            ensure_eq!(
                ctx,
                stats.reset_at,
                Some(ctx.now()),
                "reset_at of a full limit"
            );
            continue;
        }
        let Some(reset_at) = stats.reset_at.filter(|at| *at > ctx.now()) else {
            ctx.fail(format_args!(
                "reset_at not in the future with {} of 4 left: {stats:?}",
                stats.remaining
            ));
        };
        let reset = reset_at.as_millis() - crate::T0_MS;
        ctx.set_offset_ms(reset - 1);
        let before = l.stats(&limit, &key).await;
        ensure!(
            ctx,
            before.remaining < 4,
            "all 4 units back 1 ms before the reset_at (t0+{reset}ms) given at \
             t0+{probe}ms: {before:?}"
        );
        ctx.set_offset_ms(reset);
        let at = l.stats(&limit, &key).await;
        ensure_eq!(
            ctx,
            at.remaining,
            4,
            "remaining at the reset_at (t0+{reset}ms) given at t0+{probe}ms"
        );
        ensure_eq!(
            ctx,
            at.reset_after(),
            Some(Duration::ZERO),
            "reset_after at the reset"
        );
    }
    ctx.set_offset_ms(latest_retry);
    let d = l.hit(&limit, &key, 4).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "hit of 4 after every retry time: {d:?}"
    );
}

/// A hit of cost 3 then 4 on `10 per minute` leaves 7 then 3; a `test` of 3 passes and
/// of 4 is rejected (a test reports the units left now: 3); a hit of 3 leaves 0.
pub async fn cost_above_one_consumes_that_many(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("cost");
    let d = l.hit(&limit, &key, 3).await;
    ensure!(ctx, d.is_allowed(), "cost 3 of 10 rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 7, "remaining after cost 3");
    ensure_eq!(ctx, d.cost(), 3, "decision.cost()");
    let d = l.hit(&limit, &key, 4).await;
    ensure!(ctx, d.is_allowed(), "cost 4 with 7 left rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 3, "remaining after cost 3 + 4");
    let t = l.test(&limit, &key, 3).await;
    ensure!(ctx, t.is_allowed(), "test of 3 with 3 left rejected: {t:?}");
    ensure_eq!(
        ctx,
        t.remaining(),
        3,
        "remaining reported by a passing test"
    );
    let t = l.test(&limit, &key, 4).await;
    ensure!(ctx, !t.is_allowed(), "test of 4 with 3 left allowed: {t:?}");
    ensure_eq!(
        ctx,
        t.remaining(),
        3,
        "remaining reported by a rejected test"
    );
    ensure!(
        ctx,
        matches!(t.retry(), Some(Retry::After(_))),
        "cost 4 of 10 must be able to pass later: {t:?}"
    );
    let d = l.hit(&limit, &key, 3).await;
    ensure!(ctx, d.is_allowed(), "cost 3 with 3 left rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 0, "remaining after 10 of 10");
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await.remaining,
        0,
        "stats after 10 of 10"
    );
}

/// A cost above the amount (11 on `10 per minute`, and `u64::MAX`) is rejected by
/// `hit` and `test`, with `can_ever_pass()` false and no `retry_after`, and consumes
/// nothing: on an empty key nothing is stored, and on a key with 4 used, 6 remain.
pub async fn cost_above_limit_is_rejected(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("too-expensive");
    for (used, cost) in [(0, 11), (0, u64::MAX), (4, 11), (4, u64::MAX)] {
        if used == 4 && l.stored(&limit, &key).await.is_none() {
            let d = l.hit(&limit, &key, 4).await;
            ensure!(ctx, d.is_allowed(), "setup hit of 4 rejected: {d:?}");
        }
        let before = l.stored(&limit, &key).await;
        for (call, d) in [
            ("hit", l.hit(&limit, &key, cost).await),
            ("test", l.test(&limit, &key, cost).await),
            ("hit_all", l.hit_all(&[limit], &key, cost).await),
        ] {
            ensure!(
                ctx,
                !d.is_allowed(),
                "{call} of cost {cost} > 10 allowed: {d:?}"
            );
            ensure_eq!(
                ctx,
                d.retry(),
                Some(Retry::Never),
                "{call} of cost {cost} > 10: retry"
            );
            ensure_eq!(
                ctx,
                d.retry_after(),
                None,
                "{call} of cost {cost} > 10: retry_after"
            );
            ensure_eq!(
                ctx,
                d.remaining(),
                10 - used,
                "{call} of cost {cost} > 10 with {used} used: remaining"
            );
        }
        let after = l.stored(&limit, &key).await;
        ensure_eq!(
            ctx,
            after.map(|v| v.value),
            before.map(|v| v.value),
            "stored state after rejected costs of {cost} with {used} used"
        );
        ensure_eq!(
            ctx,
            l.stats(&limit, &key).await.remaining,
            10 - used,
            "stats after rejected costs of {cost}"
        );
    }
}

/// A cost of 0 is `Error::ZeroCost` for `hit`, `test`, `hit_all` and `test_all`, and
/// stores nothing.
pub async fn zero_cost_is_an_error(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("zero");
    let raw = l.inner();
    let results = [
        ("hit", raw.hit(&limit, &key, 0).await),
        ("test", raw.test(&limit, &key, 0).await),
        ("hit_all", raw.hit_all(&[limit], &key, 0).await),
        ("test_all", raw.test_all(&[limit], &key, 0).await),
    ];
    for (call, result) in results {
        ensure!(
            ctx,
            matches!(result, Err(Error::ZeroCost)),
            "{call} with cost 0: expected Err(ZeroCost), got {result:?}"
        );
    }
    ensure_eq!(
        ctx,
        l.stored(&limit, &key).await,
        None,
        "state after cost-0 calls"
    );
}

/// `test`, `test_all` and `stats` change nothing: after 2 hits on `5 per minute` and
/// 60 tests of every cost (passing and rejected), the stats, the stored bytes and the
/// stored version are unchanged and a hit still leaves 2. On an absent key they store
/// nothing.
pub async fn test_never_mutates(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("5 per minute");
    let other = ctx.limit("3 per hour");
    let key = Key::from("tested");
    let absent = Key::from("never-hit");
    let _ = l.hit(&limit, &key, 2).await;
    ctx.advance_ms(1_500);
    let stats_before = l.stats(&limit, &key).await;
    let stored_before = l.stored(&limit, &key).await;
    for i in 0..60u64 {
        let cost = 1 + i % 6;
        let d = l.test(&limit, &key, cost).await;
        ensure_eq!(
            ctx,
            d.is_allowed(),
            cost <= 3,
            "test of cost {cost} with 3 left"
        );
        let _ = l.test_all(&[limit, other], &key, cost).await;
        let _ = l.test(&limit, &absent, cost).await;
        let _ = l.stats(&limit, &absent).await;
        let _ = l.stats(&limit, &key).await;
    }
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await,
        stats_before,
        "stats after tests"
    );
    ensure_eq!(
        ctx,
        l.stored(&limit, &key).await,
        stored_before,
        "stored value and version after tests (a test must not write)"
    );
    ensure_eq!(
        ctx,
        l.stored(&other, &key).await,
        None,
        "state created by test_all"
    );
    ensure_eq!(
        ctx,
        l.stored(&limit, &absent).await,
        None,
        "state created by test"
    );
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit after tests rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 2, "remaining of a hit after the tests");
}

/// `stats` on a key never hit: `remaining` is the amount, `reset_at` is now
/// (`reset_after` zero), and nothing is stored. On a full window: `remaining` 0 and
/// `reset_at` in the future, equal to the last hit's.
pub async fn stats_on_empty_and_full_windows(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("3 per minute");
    let key = Key::from("stats");
    ctx.advance_ms(5_000);
    let empty = l.stats(&limit, &key).await;
    ensure_eq!(
        ctx,
        empty.remaining,
        3,
        "stats.remaining of an empty window"
    );
    ensure_eq!(
        ctx,
        empty.reset_at,
        Some(ctx.now()),
        "stats.reset_at of an empty window"
    );
    ensure_eq!(ctx, empty.now, ctx.now(), "stats.now");
    ensure_eq!(
        ctx,
        empty.reset_after(),
        Some(Duration::ZERO),
        "reset_after when empty"
    );
    ensure_eq!(
        ctx,
        l.stored(&limit, &key).await,
        None,
        "state created by stats"
    );
    let mut last = None;
    for _ in 0..3 {
        last = Some(l.hit(&limit, &key, 1).await);
    }
    let full = l.stats(&limit, &key).await;
    ensure_eq!(ctx, full.remaining, 0, "stats.remaining of a full window");
    ensure!(
        ctx,
        full.reset_at > Some(ctx.now()),
        "stats.reset_at of a full window is not in the future: {full:?}"
    );
    ensure_eq!(
        ctx,
        Some(full.reset_at),
        last.map(|d| d.reset_at()),
        "stats.reset_at vs the last hit's reset"
    );
}

/// With 5 of 10 used, a rejected hit of 6 changes nothing (stats, stored bytes,
/// `reset_at`) and a hit of 5 then passes. A rejected hit on a full window does not
/// move its reset either.
pub async fn rejected_hits_consume_nothing(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("rejected");
    let _ = l.hit(&limit, &key, 5).await;
    ctx.advance_ms(2_000);
    let stats = l.stats(&limit, &key).await;
    let stored = l.stored(&limit, &key).await.map(|v| v.value);
    let d = l.hit(&limit, &key, 6).await;
    ensure!(ctx, !d.is_allowed(), "cost 6 with 5 left allowed: {d:?}");
    ensure_eq!(ctx, d.remaining(), 5, "remaining of the rejected hit");
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await,
        stats,
        "stats after a rejection"
    );
    ensure_eq!(
        ctx,
        l.stored(&limit, &key).await.map(|v| v.value),
        stored,
        "stored bytes after a rejection"
    );
    let d = l.hit(&limit, &key, 5).await;
    ensure!(ctx, d.is_allowed(), "cost 5 with 5 left rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 0, "remaining after 10 of 10");
    ctx.advance_ms(1_000);
    let full = l.stats(&limit, &key).await;
    for _ in 0..3 {
        let d = l.hit(&limit, &key, 1).await;
        ensure!(ctx, !d.is_allowed(), "hit on a full window allowed: {d:?}");
    }
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await,
        full,
        "stats of a full window after rejected hits"
    );
}

/// `clear` forgets one limit for one key: after `clear(2 per minute, a)`, that pair is
/// back to 2 with nothing stored, while `(2 per minute, b)` and `(3 per minute, a)` keep
/// their counts. Clearing an absent key is fine.
pub async fn clear_forgets_only_that_key_and_limit(ctx: &Ctx) {
    let l = ctx.limiter();
    let two = ctx.limit("2 per minute");
    let three = ctx.limit("3 per minute");
    let (a, b) = (Key::from("a"), Key::from("b"));
    let _ = l.hit(&two, &a, 2).await;
    let _ = l.hit(&two, &b, 1).await;
    let _ = l.hit(&three, &a, 1).await;
    l.clear(&two, &a).await;
    ensure_eq!(
        ctx,
        l.stored(&two, &a).await,
        None,
        "state of the cleared pair"
    );
    ensure_eq!(ctx, l.stats(&two, &a).await.remaining, 2, "cleared pair");
    ensure_eq!(
        ctx,
        l.stats(&two, &b).await.remaining,
        1,
        "same limit, other key"
    );
    ensure_eq!(
        ctx,
        l.stats(&three, &a).await.remaining,
        2,
        "same key, other limit"
    );
    let d = l.hit(&two, &a, 2).await;
    ensure!(ctx, d.is_allowed(), "hit of 2 after clear rejected: {d:?}");
    l.clear(&two, &Key::from("never-hit")).await;
    l.clear(&two, &a).await;
    l.clear(&two, &a).await;
    ensure_eq!(
        ctx,
        l.stats(&two, &b).await.remaining,
        1,
        "other key after clears"
    );
}
