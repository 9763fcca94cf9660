//! The exact semantics of [`FixedWindow`](limiter_core::strategy::FixedWindow): a
//! window that starts at the first hit, not at a clock boundary, and lasts exactly one
//! window length.

use limiter_core::Key;

use super::ms;
use crate::Ctx;

/// A first hit at t0+2.5 s on `3 per 10 seconds` opens the window
/// `[t0+2.5 s, t0+12.5 s)`: every hit in it reports that `reset_at`, not a reset
/// aligned to a clock boundary.
pub async fn fixed_window_starts_at_the_first_hit(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("3 per 10 seconds");
    let key = Key::from("anchor");
    ctx.set_offset_ms(2_500);
    let end = ctx.t0_plus(12_500);
    let d = l.hit(&limit, &key, 1).await;
    ensure_eq!(ctx, d.reset_at(), Some(end), "reset of the first hit");
    ctx.set_offset_ms(9_000);
    let d = l.hit(&limit, &key, 1).await;
    ensure_eq!(
        ctx,
        d.reset_at(),
        Some(end),
        "reset of a hit in the same window"
    );
    ensure_eq!(ctx, d.remaining(), 1, "remaining after 2 of 3");
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await.reset_at,
        Some(end),
        "stats.reset_at"
    );
}

/// `3 per 10 seconds`, filled at t: at t+9 999 ms `hit`, `test` and `stats` all still
/// see the full window (retry and reset in 1 ms); at t+10 000 ms a hit passes and opens
/// a new window ending at t+20 000 ms.
pub async fn fixed_window_rolls_over_at_the_exact_reset(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("3 per 10 seconds");
    let key = Key::from("rollover");
    ctx.set_offset_ms(2_500);
    for left in [2, 1, 0] {
        let d = l.hit(&limit, &key, 1).await;
        ensure!(
            ctx,
            d.is_allowed(),
            "hit with {} left rejected: {d:?}",
            left + 1
        );
        ensure_eq!(ctx, d.remaining(), left, "remaining");
    }
    ctx.set_offset_ms(12_499);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(
        ctx,
        !d.is_allowed(),
        "hit 1 ms before the reset allowed: {d:?}"
    );
    ensure_eq!(
        ctx,
        d.retry_after(),
        Some(ms(1)),
        "retry_after 1 ms before reset"
    );
    let t = l.test(&limit, &key, 1).await;
    ensure!(
        ctx,
        !t.is_allowed(),
        "test 1 ms before the reset allowed: {t:?}"
    );
    let s = l.stats(&limit, &key).await;
    ensure_eq!(ctx, s.remaining, 0, "stats.remaining 1 ms before the reset");
    ensure_eq!(
        ctx,
        s.reset_after(),
        Some(ms(1)),
        "stats.reset_after 1 ms before the reset"
    );
    ctx.set_offset_ms(12_500);
    let s = l.stats(&limit, &key).await;
    ensure_eq!(ctx, s.remaining, 3, "stats.remaining at the reset");
    ensure!(
        ctx,
        l.test(&limit, &key, 3).await.is_allowed(),
        "test of 3 at reset"
    );
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit at the reset rejected: {d:?}");
    ensure_eq!(
        ctx,
        d.remaining(),
        2,
        "remaining of the new window's first hit"
    );
    ensure_eq!(
        ctx,
        d.reset_at(),
        Some(ctx.t0_plus(22_500)),
        "the new window starts at its first hit"
    );
}

/// The documented weakness: one hit at t, the rest of the amount at t + window − 1 ms,
/// then the whole amount again at t + window: twice the amount within one window plus
/// a millisecond.
pub async fn fixed_window_allows_twice_the_amount_across_an_edge(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("4 per second");
    let key = Key::from("edge");
    ensure!(ctx, l.hit(&limit, &key, 1).await.is_allowed(), "first hit");
    ctx.advance_ms(999);
    ensure!(
        ctx,
        l.hit(&limit, &key, 3).await.is_allowed(),
        "3 at the window's end"
    );
    ctx.advance_ms(1);
    let d = l.hit(&limit, &key, 4).await;
    ensure!(ctx, d.is_allowed(), "4 in the next window rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 0, "remaining");
}
