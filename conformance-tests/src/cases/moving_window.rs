//! The exact semantics of [`MovingWindow`](limiter_core::strategy::MovingWindow): a log
//! of hits, each counting during the half-open interval `[t, t + window)`.

use limiter_core::Key;

use super::ms;
use crate::Ctx;

/// `3 per minute` filled at t: at t + 59 999 ms `hit`, `test` and `stats` all reject
/// (remaining 0, retry and reset in 1 ms); at t + 60 000 ms all three see the hits gone
/// (remaining 3, reset now) and a hit passes.
pub async fn moving_window_boundary_is_half_open(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("3 per minute");
    let key = Key::from("boundary");
    ctx.set_offset_ms(10_000);
    let _ = l.hit(&limit, &key, 3).await;
    ctx.set_offset_ms(69_999);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "hit at t+window-1ms allowed: {d:?}");
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(1)),
        "hit.retry_after at t+window-1ms"
    );
    let t = l.test(&limit, &key, 1).await;
    ensure!(ctx, !t.is_allowed(), "test at t+window-1ms allowed: {t:?}");
    ensure_eq!(
        ctx,
        t.retry_after(),
        Some(ms(1)),
        "test.retry_after at t+window-1ms"
    );
    let s = l.stats(&limit, &key).await;
    ensure_eq!(ctx, s.remaining, 0, "stats.remaining at t+window-1ms");
    ensure_eq!(
        ctx,
        s.reset_after(),
        Some(ms(1)),
        "stats.reset_after at t+window-1ms"
    );
    ctx.set_offset_ms(70_000);
    let s = l.stats(&limit, &key).await;
    ensure_eq!(ctx, s.remaining, 3, "stats.remaining at t+window");
    ensure_eq!(
        ctx,
        s.reset_at,
        Some(ctx.now()),
        "stats.reset_at at t+window"
    );
    let t = l.test(&limit, &key, 3).await;
    ensure!(ctx, t.is_allowed(), "test of 3 at t+window rejected: {t:?}");
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit at t+window rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 2, "remaining of the hit at t+window");
    ensure_eq!(
        ctx,
        d.reset_after(),
        Some(ms(60_000)),
        "reset_after of the hit at t+window"
    );
}

/// `5 per minute` with 2 units at t, 1 at t+10 s, 2 at t+20 s: at t+30 s the retry of
/// a cost is when enough of the oldest records have left (costs 1 and 2 at t+60 s, 3 at
/// t+70 s, 4 and 5 at t+80 s), and the units come back record by record.
pub async fn moving_window_frees_units_record_by_record(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("5 per minute");
    let key = Key::from("records");
    for (offset, cost) in [(0, 2), (10_000, 1), (20_000, 2)] {
        ctx.set_offset_ms(offset);
        let d = l.hit(&limit, &key, cost).await;
        ensure!(ctx, d.is_allowed(), "setup hit of {cost} rejected: {d:?}");
    }
    ctx.set_offset_ms(30_000);
    for (cost, retry_at) in [
        (1, 60_000),
        (2, 60_000),
        (3, 70_000),
        (4, 80_000),
        (5, 80_000),
    ] {
        let t = l.test(&limit, &key, cost).await;
        ensure!(
            ctx,
            !t.is_allowed(),
            "test of {cost} on a full log allowed: {t:?}"
        );
        ensure_eq!(
            ctx,
            t.retry_after(),
            Some(ms(retry_at - 30_000)),
            "retry_after of cost {cost}"
        );
    }
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await.reset_after(),
        Some(ms(50_000)),
        "reset_after: when the newest record leaves"
    );
    for (offset, remaining) in [
        (59_999, 0),
        (60_000, 2),
        (69_999, 2),
        (70_000, 3),
        (80_000, 5),
    ] {
        ctx.set_offset_ms(offset);
        ensure_eq!(
            ctx,
            l.stats(&limit, &key).await.remaining,
            remaining,
            "remaining at t+{offset}ms"
        );
    }
}
