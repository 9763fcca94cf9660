//! The exact semantics of [`Gcra`](limiter_core::strategy::Gcra): a burst of `amount`,
//! then one unit every `window / amount`, with times rounded up to the millisecond.

use limiter_core::Key;

use super::ms;
use crate::Ctx;

/// `10 per minute` (one unit per 6 s): 10 pass at t0, the 11th is rejected with a
/// `retry_after` of 6 s; at t0+5 999 ms still rejected, at t0+6 s one passes and the
/// next waits 6 s again; at t0+36 s 5 units are back; at t0+66 s all 10.
pub async fn gcra_bursts_then_refills_one_unit_per_interval(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("burst");
    for left in (0..10).rev() {
        let d = l.hit(&limit, &key, 1).await;
        ensure!(ctx, d.is_allowed(), "burst hit rejected: {d:?}");
        ensure_eq!(ctx, d.remaining(), left, "remaining during the burst");
    }
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "11th hit allowed: {d:?}");
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(6_000)),
        "retry_after after the burst"
    );
    ensure_eq!(
        ctx,
        d.reset_after(),
        Some(ms(60_000)),
        "reset_after after the burst"
    );
    ctx.set_offset_ms(5_999);
    let t = l.test(&limit, &key, 1).await;
    ensure!(ctx, !t.is_allowed(), "test at t0+5 999 ms allowed: {t:?}");
    ensure_eq!(
        ctx,
        t.retry_after(),
        Some(ms(1)),
        "retry_after at t0+5 999 ms"
    );
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await.remaining,
        0,
        "stats at t0+5 999 ms"
    );
    ctx.set_offset_ms(6_000);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit at t0+6 s rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 0, "remaining at t0+6 s");
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "second hit at t0+6 s allowed: {d:?}");
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(6_000)),
        "retry_after at t0+6 s"
    );
    ctx.set_offset_ms(36_000);
    let s = l.stats(&limit, &key).await;
    ensure_eq!(ctx, s.remaining, 5, "stats.remaining at t0+36 s");
    ensure_eq!(
        ctx,
        s.reset_at,
        Some(ctx.t0_plus(66_000)),
        "stats.reset_at at t0+36 s"
    );
    ctx.set_offset_ms(66_000);
    let s = l.stats(&limit, &key).await;
    ensure_eq!(ctx, s.remaining, 10, "stats.remaining at t0+66 s");
    ensure_eq!(
        ctx,
        s.reset_at,
        Some(ctx.now()),
        "stats.reset_at at t0+66 s"
    );
}

/// `3 per second` (one unit per 333⅓ ms): after a burst of 3 at t0 the next unit is
/// due at t0+333⅓ ms, reported as t0+334 ms (rounded up, never early): rejected at
/// t0+333, passes at t0+334; the one after is due at t0+666⅔, reported as t0+667.
pub async fn gcra_rounds_awkward_intervals_up(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("3 per second");
    let key = Key::from("thirds");
    let _ = l.hit(&limit, &key, 3).await;
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "4th hit allowed: {d:?}");
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(334)),
        "retry_after after the burst"
    );
    ctx.set_offset_ms(333);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "hit at t0+333 ms allowed: {d:?}");
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(1)),
        "retry_after at t0+333 ms"
    );
    ctx.set_offset_ms(334);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit at t0+334 ms rejected: {d:?}");
    let d = l.hit(&limit, &key, 1).await;
    ensure!(
        ctx,
        !d.is_allowed(),
        "second hit at t0+334 ms allowed: {d:?}"
    );
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(333)),
        "retry_after at t0+334 ms"
    );
    ensure_eq!(
        ctx,
        d.reset_after(),
        Some(ms(1_000)),
        "reset_after at t0+334 ms"
    );
}

/// `2 per second burst 5`: 5 pass at t0 (a cost of 3 among them), the 6th is rejected
/// with a `retry_after` of 500 ms; at t0+500 ms one passes. On a full bucket a cost of
/// 4 (above the amount, within the burst) passes, and a cost of 6 never does. The
/// same limit without its burst is another key: its 2 units are untouched.
pub async fn gcra_burst_apart_from_the_rate(ctx: &Ctx) {
    let l = ctx.limiter();
    let bursty = ctx.limit("2 per second burst 5");
    let plain = ctx.limit("2 per second");
    let key = Key::from("bursty");
    for (cost, left) in [(1, 4), (3, 1), (1, 0)] {
        let d = l.hit(&bursty, &key, cost).await;
        ensure!(
            ctx,
            d.is_allowed(),
            "cost {cost} in the burst rejected: {d:?}"
        );
        ensure_eq!(ctx, d.remaining(), left, "remaining after cost {cost}");
    }
    let d = l.hit(&bursty, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "6th unit allowed: {d:?}");
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(500)),
        "retry_after after the burst"
    );
    let d = l.hit(&plain, &key, 2).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "the plain limit shares the bursty one's key: {d:?}"
    );
    ctx.set_offset_ms(500);
    let d = l.hit(&bursty, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit at t0+500 ms rejected: {d:?}");
    ctx.set_offset_ms(10_000);
    let d = l.hit(&bursty, &key, 4).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "cost 4 on a full bucket of 5 rejected: {d:?}"
    );
    let d = l.test(&bursty, &key, 6).await;
    ensure_eq!(
        ctx,
        d.retry(),
        Some(limiter_core::Retry::Never),
        "cost 6 above the burst"
    );
}
