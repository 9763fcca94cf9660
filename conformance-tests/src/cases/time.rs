//! Hostile time: clocks that step back, the end of the time domain, and late undos.
//!
//! Processes that share a storage never have identical clocks, so a storage sees times
//! out of order. The strategies define what happens (each decision uses the later of
//! `now` and the latest time the key's state has seen); these cases check that a storage
//! follows them, through its native operations and its generic path alike, and that
//! nothing over-admits.

use limiter_core::strategy::{BuiltIn, Op};
use limiter_core::{Key, RateLimit, Timestamp};

use crate::Ctx;

/// Hits `(offset from T0 in ms, cost)` in order on one key, each checked against the
/// strategy applied to a plain byte buffer (with the case's key expiring as its
/// time-to-live says); returns the `(latest time seen, cost)` of the admitted ones.
async fn replay(ctx: &Ctx, limit: &RateLimit, key: &Key, hits: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let allowed = replay_each(ctx, limit, key, hits).await;
    let mut latest = 0;
    let mut admitted = Vec::new();
    for (&(offset, cost), allowed) in hits.iter().zip(allowed) {
        latest = latest.max(offset);
        if allowed {
            admitted.push((latest, cost));
        }
    }
    admitted
}

/// [`replay`], returning whether each hit passed.
async fn replay_each(ctx: &Ctx, limit: &RateLimit, key: &Key, hits: &[(u64, u64)]) -> Vec<bool> {
    let l = ctx.limiter();
    let strategy = ctx.strategy().strategy();
    let mut state: Vec<u8> = Vec::new();
    let mut until = Timestamp::ZERO;
    let mut allowed = Vec::new();
    for (i, &(offset, cost)) in hits.iter().enumerate() {
        ctx.set_offset_ms(offset);
        let now = ctx.now();
        if now >= until {
            state.clear();
        }
        let expected = ctx.ok(
            strategy.apply(limit, &mut state, Op::Hit { cost }, now),
            "the strategy itself",
        );
        if let Some(ttl) = expected.write {
            until = now.add_millis(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        }
        let d = l.hit(limit, key, cost).await;
        let verdict = expected.verdict;
        ensure_eq!(
            ctx,
            (d.is_allowed(), d.remaining(), d.reset_at()),
            (
                verdict.allowed,
                verdict.remaining,
                (verdict.reset_at < Timestamp::MAX).then_some(verdict.reset_at)
            ),
            "hit #{i} of cost {cost} at t0+{offset}ms: (allowed, remaining, reset) vs the \
             strategy on its own"
        );
        ensure_eq!(
            ctx,
            d.retry_after().map(|after| now.add_millis(millis(after))),
            verdict.retry_at.filter(|_| !verdict.allowed),
            "hit #{i} at t0+{offset}ms: retry time"
        );
        allowed.push(d.is_allowed());
    }
    allowed
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The most units admitted in any `window`-long interval of `admitted` times.
fn densest(admitted: &[(u64, u64)], window: u64) -> u64 {
    admitted
        .iter()
        .map(|&(start, _)| {
            admitted
                .iter()
                .filter(|&&(t, _)| t >= start && t < start + window)
                .map(|&(_, cost)| cost)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

/// A hit recorded by a clock ahead, then hits from a clock behind: they count at the
/// key's time, never earlier. The moving-window case from the issue tracker: `3 per 10
/// milliseconds`, a hit of cost 3 at t=1000, one of cost 1 at 1012, then one at 1009.
/// The last one counts at 1012, the key's time, not at 1009: no 10 ms of the key's
/// time holds more than 3 units (the old rule put 4 in [1000, 1010)). Every strategy
/// gives exactly the decisions of its own rules.
pub async fn a_clock_stepping_back_counts_at_the_keys_time(ctx: &Ctx) {
    let limit = ctx.limit("3 per 10 milliseconds");
    let key = Key::from("behind");
    let admitted = replay(ctx, &limit, &key, &[(1_000, 3), (1_012, 1), (1_009, 1)]).await;
    if ctx.strategy() == BuiltIn::MovingWindow {
        let most = densest(&admitted, 10);
        ensure!(
            ctx,
            most <= 3,
            "{most} units within 10 ms of the key's time: {admitted:?}"
        );
    }
}

/// Two processes 30 s apart take turns on one key of `2 per 10 seconds`, real time
/// moving 500 ms a hit: every decision follows the strategy's rules, and no 10 s of the
/// key's time ever holds more than twice the amount (the moving window: the amount).
pub async fn clocks_thirty_seconds_apart_stay_within_the_bound(ctx: &Ctx) {
    let limit = ctx.limit("2 per 10 seconds");
    let key = Key::from("skewed");
    let hits: Vec<(u64, u64)> = (0..40u64)
        .map(|i| (40_000 + i * 500 + (i % 2) * 30_000, 1))
        .collect();
    let admitted = replay(ctx, &limit, &key, &hits).await;
    let bound = match ctx.strategy() {
        BuiltIn::MovingWindow => 2,
        _ => 4,
    };
    let most = densest(&admitted, 10_000);
    ensure!(
        ctx,
        most <= bound,
        "{most} units admitted within 10 s of the key's time (bound {bound}): {admitted:?}"
    );
}

/// One process's clock is right and another's is 150 s ahead, on `2 per 10 seconds`:
/// a stored time fifteen windows ahead of the right clock. Every decision follows the
/// strategy's rules, and in every 10 s of real time (the right clock's) at most twice
/// the strategy's bound in effective time passes (the moving window: twice the
/// amount), as the strategies' documentation states for a constant offset of any size.
pub async fn a_clock_fifteen_windows_ahead_stays_within_twice_the_bound(ctx: &Ctx) {
    let limit = ctx.limit("2 per 10 seconds");
    let key = Key::from("far-ahead");
    let (w, d) = (10_000, 150_000);
    // (real time, whether the clock ahead hits): the right clock hits twice after a
    // pause, then the clock ahead once, then the right one twice more; then the two
    // take turns every 500 ms.
    let mut turns = Vec::new();
    let mut real = 1_000;
    for _ in 0..4 {
        real += d + w + 1;
        turns.extend([(real, false), (real, false), (real + 1, true)]);
        turns.extend([(real + 2, false), (real + 3, false)]);
    }
    for i in 0..40 {
        turns.push((real + 10 + i * 500, i % 2 == 1));
    }
    let hits: Vec<(u64, u64)> = turns
        .iter()
        .map(|&(real, ahead)| (real + if ahead { d } else { 0 }, 1))
        .collect();
    let allowed = replay_each(ctx, &limit, &key, &hits).await;
    let admitted: Vec<(u64, u64)> = turns
        .iter()
        .zip(allowed)
        .filter(|(_, allowed)| *allowed)
        .map(|(&(real, _), _)| (real, 1))
        .collect();
    let bound = match ctx.strategy() {
        BuiltIn::MovingWindow => 4,
        BuiltIn::Gcra => 6,
        _ => 8,
    };
    let most = densest(&admitted, w);
    ensure!(
        ctx,
        most <= bound,
        "{most} units admitted within 10 s of real time (bound {bound}): {admitted:?}"
    );
}

/// At the very end of the time domain (`Timestamp::MAX`, 2^53 − 1 ms) limits still
/// hold: no window ends, nothing overflows, `1 per 1000 year` admits one hit, and
/// `2 per 1000 year` a second before the end admits two.
pub async fn limits_hold_at_the_end_of_time(ctx: &Ctx) {
    let l = ctx.limiter();
    ctx.clock().set(u64::MAX);
    ensure_eq!(ctx, ctx.now(), Timestamp::MAX, "a clock set past the end");
    let (one, key) = (ctx.limit("1 per 1000 years"), Key::from("end"));
    ensure!(
        ctx,
        l.hit(&one, &key, 1).await.is_allowed(),
        "first hit at the end"
    );
    for attempt in 0..3 {
        let d = l.hit(&one, &key, 1).await;
        ensure!(
            ctx,
            !d.is_allowed(),
            "hit #{attempt} after the first at the end: {d:?}"
        );
    }
    ctx.clock().set(Timestamp::MAX.as_millis() - 1_000);
    let two = ctx.limit("2 per 1000 years");
    let admitted = count_admitted(&l, &two, &Key::from("near-end"), 5).await;
    ensure_eq!(
        ctx,
        admitted,
        2,
        "hits of `2 per 1000 years` admitted near the end"
    );
}

/// The largest amount with costs of half of it: exact, no overflow, at a normal time
/// and at the end of time.
pub async fn the_largest_amount_is_exact(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("18446744073709551615 per 1000 years");
    for (name, at) in [("now", None), ("the end", Some(u64::MAX))] {
        if let Some(at) = at {
            ctx.clock().set(at);
        }
        let key = Key::from(format!("largest-{name}"));
        let half = u64::MAX / 2;
        for i in 0..2 {
            let d = l.hit(&limit, &key, half).await;
            ensure!(ctx, d.is_allowed(), "{name}: half #{i}: {d:?}");
        }
        // `u64::MAX − 2 × half` is one unit.
        ensure!(
            ctx,
            l.hit(&limit, &key, 1).await.is_allowed(),
            "{name}: the last unit"
        );
        let d = l.hit(&limit, &key, 1).await;
        ensure!(ctx, !d.is_allowed(), "{name}: one past the amount: {d:?}");
        ensure_eq!(ctx, d.remaining(), 0, "{name}: remaining");
    }
}

async fn count_admitted(l: &crate::Checked<'_>, limit: &RateLimit, key: &Key, tries: u64) -> u64 {
    let mut admitted = 0;
    for _ in 0..tries {
        admitted += u64::from(l.hit(limit, key, 1).await.is_allowed());
    }
    admitted
}

/// One undo scenario: the undone hit, the hits after it and when the undo runs (in ms
/// from T0), on `limit`.
struct Undo {
    name: &'static str,
    limit: &'static str,
    /// The hit that is undone: `(time, cost)`.
    undone: (u64, u64),
    /// Other hits after it: `(time, cost)`.
    others: &'static [(u64, u64)],
    /// When the undo runs; the room is measured then too.
    undo_at: u64,
}

const UNDOS: [Undo; 4] = [
    Undo {
        name: "at once",
        limit: "5 per second",
        undone: (0, 2),
        others: &[(0, 1)],
        undo_at: 0,
    },
    Undo {
        name: "after the undone hit's window has passed",
        limit: "2 per second",
        undone: (0, 1),
        others: &[(500, 1)],
        undo_at: 1_200,
    },
    Undo {
        name: "after other callers' hits",
        limit: "5 per second",
        undone: (0, 2),
        others: &[(300, 1), (300, 1), (300, 1)],
        undo_at: 350,
    },
    Undo {
        name: "long after, in a later window",
        limit: "3 per 2 seconds",
        undone: (100, 3),
        others: &[(2_500, 1)],
        undo_at: 5_000,
    },
];

/// Hits `cost` on `key` at `at` ms from T0, and undoes it at once when `undo` says so.
async fn hit_at(
    ctx: &Ctx,
    l: &crate::Checked<'_>,
    limit: &RateLimit,
    key: &Key,
    (at, cost): (u64, u64),
    undo: bool,
) {
    ctx.set_offset_ms(at);
    let d = l.hit(limit, key, cost).await;
    if undo {
        ensure!(ctx, d.is_allowed(), "the hit to undo at once: {d:?}");
        let refund = Op::Refund {
            cost,
            at: ctx.t0_plus(at),
        };
        let _ = ctx.apply_op(limit, key, refund).await;
    }
}

/// Undoing a hit (what `hit_all` does when a later limit loses a race) never leaves
/// more room than undoing it at once would have, however late the undo comes; and an
/// undo at once leaves exactly the room of a hit that never happened. Three keys replay
/// the same hits: one undoes the first hit late, one at once, one never makes it (it
/// starts with the others); then each is filled up with hits of 1 and compared.
pub async fn a_late_undo_never_leaves_more_room_than_no_hit(ctx: &Ctx) {
    let l = ctx.limiter();
    for undo in &UNDOS {
        let limit = ctx.limit(undo.limit);
        let key = |what: &str| Key::from(format!("{what}-{}", undo.name));
        let (late, at_once, never) = (key("late"), key("at-once"), key("never"));
        ctx.set_offset_ms(undo.undone.0);
        let first = l.hit(&limit, &late, undo.undone.1).await;
        ensure!(
            ctx,
            first.is_allowed(),
            "{}: the hit to undo: {first:?}",
            undo.name
        );
        hit_at(ctx, &l, &limit, &at_once, undo.undone, true).await;
        for &hit in undo.others {
            for key in [&late, &at_once, &never] {
                hit_at(ctx, &l, &limit, key, hit, false).await;
            }
        }
        ctx.set_offset_ms(undo.undo_at);
        let refund = Op::Refund {
            cost: undo.undone.1,
            at: ctx.t0_plus(undo.undone.0),
        };
        let _ = ctx.apply_op(&limit, &late, refund).await;
        let mut room = Vec::new();
        for key in [&late, &at_once, &never] {
            room.push(count_admitted(&l, &limit, key, limit.amount() + 1).await);
        }
        ensure!(
            ctx,
            room[0] <= room[1],
            "{}: {} hits pass after the late undo, {} after an undo at once",
            undo.name,
            room[0],
            room[1]
        );
        if undo.undo_at == undo.undone.0 {
            ensure_eq!(
                ctx,
                room[0],
                room[2],
                "{}: room after an undo at once vs never hit",
                undo.name
            );
        }
    }
}
