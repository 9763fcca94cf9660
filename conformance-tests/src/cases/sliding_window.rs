//! The exact semantics of [`SlidingWindow`](limiter_core::strategy::SlidingWindow):
//! usage is `current + floor(previous × (window − elapsed) / window)`, with windows
//! anchored at the first hit and following each other back to back.

use limiter_core::Key;

use super::ms;
use crate::Ctx;

/// `10 per minute`, 10 hits at t0 (window `[t0, t0+60 s)`). In the next window the
/// previous 10 are weighted by the share of it still ahead: at +61 s
/// `floor(10 × 59/60) = 9` count (remaining 1), at +75 s 7 (3), at +90 s 5 (5), and at
/// +120 s, two windows on, none (10). Until then `reset_at` is t0+114 001 ms, the first
/// millisecond with `floor(10 × (60 000 − e) / 60 000) = 0`.
pub async fn sliding_window_weights_the_previous_window(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("weights");
    for _ in 0..10 {
        let _ = l.hit(&limit, &key, 1).await;
    }
    // (offset, remaining, reset offset): once nothing counts, the reset is now.
    for (offset, remaining, reset) in [
        (0, 0, 114_001),
        (59_999, 0, 114_001),
        (60_000, 0, 114_001),
        (61_000, 1, 114_001),
        (75_000, 3, 114_001),
        (90_000, 5, 114_001),
        (114_000, 9, 114_001),
        (114_001, 10, 114_001),
        (120_000, 10, 120_000),
    ] {
        ctx.set_offset_ms(offset);
        let s = l.stats(&limit, &key).await;
        ensure_eq!(
            ctx,
            s.remaining,
            remaining,
            "stats.remaining at t0+{offset}ms"
        );
        ensure_eq!(
            ctx,
            s.reset_at,
            Some(ctx.t0_plus(reset)),
            "stats.reset_at at t0+{offset}ms"
        );
    }
}

/// `10 per minute`, 10 hits at t0, then at t0+61 s one more passes (9 weighted + 1 =
/// 10) and the next is rejected until `1 + floor(10 × (60 000 − e) / 60 000) + 1 <= 10`,
/// at e = 6 001 ms: a `retry_after` of 5 001 ms.
pub async fn sliding_window_counts_both_windows(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("10 per minute");
    let key = Key::from("both");
    let _ = l.hit(&limit, &key, 10).await;
    ctx.set_offset_ms(61_000);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit with 1 left rejected: {d:?}");
    ensure_eq!(ctx, d.remaining(), 0, "remaining after the hit");
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, !d.is_allowed(), "hit with 0 left allowed: {d:?}");
    ensure_eq!(ctx, d.retry_after(), Some(ms(5_001)), "retry_after");
    ctx.set_offset_ms(66_000);
    ensure!(
        ctx,
        !l.test(&limit, &key, 1).await.is_allowed(),
        "test at t0+66 000 ms"
    );
    ctx.set_offset_ms(66_001);
    let d = l.hit(&limit, &key, 1).await;
    ensure!(ctx, d.is_allowed(), "hit at t0+66 001 ms rejected: {d:?}");
}

/// `5 per second`, 5 hits at t0: at t0+1.5 s `floor(5 × 500/1000) = 2` still count;
/// at t0+2 s, two windows on, the state starts afresh and 5 pass at once.
pub async fn sliding_window_is_fresh_after_two_idle_windows(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("5 per second");
    let key = Key::from("idle");
    let _ = l.hit(&limit, &key, 5).await;
    ctx.set_offset_ms(1_500);
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await.remaining,
        3,
        "remaining at t0+1.5s"
    );
    ctx.set_offset_ms(2_000);
    let d = l.hit(&limit, &key, 5).await;
    ensure!(
        ctx,
        d.is_allowed(),
        "5 after two idle windows rejected: {d:?}"
    );
    ensure_eq!(ctx, d.remaining(), 0, "remaining");
}
