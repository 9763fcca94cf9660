//! Strategy-level tests of time: per-key monotonic time under clocks that step back,
//! what clocks ahead admit in real time, the time domain up to `Timestamp::MAX`, exact
//! retry instants, undos that never leave more room than the undone hit had never
//! happened, and arbitrary stored bytes.
//!
//! Everything here drives `Strategy::apply` on a byte buffer.

use limiter_core::limit::MAX_WINDOW_MS;
use limiter_core::strategy::{BuiltIn, Op, Transition};
use limiter_core::{RateLimit, Timestamp, Unit};
use proptest::prelude::*;

const MAX: u64 = Timestamp::MAX.as_millis();

fn limit(amount: u64, window_ms: u64) -> RateLimit {
    RateLimit::new(amount, window_ms, Unit::Millisecond).expect("a valid limit")
}

fn run(b: BuiltIn, l: &RateLimit, s: &mut Vec<u8>, op: Op, now: u64) -> Transition {
    b.strategy()
        .apply(l, s, op, Timestamp::from_millis(now))
        .expect("a state the strategy wrote")
}

fn hit(b: BuiltIn, l: &RateLimit, s: &mut Vec<u8>, cost: u64, now: u64) -> bool {
    run(b, l, s, Op::Hit { cost }, now).verdict.allowed
}

fn passes(b: BuiltIn, l: &RateLimit, s: &[u8], op: Op, now: u64) -> bool {
    run(b, l, &mut s.to_vec(), op, now).verdict.allowed
}

fn word(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The effective time of a decision at `now` on `state`, by the documented rules.
fn effective(b: BuiltIn, l: &RateLimit, s: &[u8], now: u64) -> u64 {
    if s.is_empty() {
        return now;
    }
    let seen = match b {
        BuiltIn::FixedWindow | BuiltIn::SlidingWindow => word(s, 1),
        BuiltIn::MovingWindow if s.len() > 17 => word(s, s.len() - 16),
        BuiltIn::MovingWindow => 0,
        _ => {
            let a = u128::from(l.amount());
            let tat = u128::from(word(s, 1)) * a + u128::from(word(s, 9));
            let c = a * u128::from(l.window_ms());
            u64::try_from(tat.saturating_sub(c).div_ceil(a)).unwrap_or(u64::MAX)
        }
    };
    now.max(seen)
}

/// The documented bound on units admitted in a window-long interval of effective time.
fn bound(b: BuiltIn, l: &RateLimit) -> u128 {
    let (a, w) = (u128::from(l.amount()), u128::from(l.window_ms()));
    match b {
        BuiltIn::FixedWindow | BuiltIn::SlidingWindow => 2 * a,
        BuiltIn::MovingWindow => a,
        _ => a + (w - 1) * a / w,
    }
}

/// The largest number of units admitted (at `(effective time, cost)`) in any
/// half-open window-long interval.
fn densest(admitted: &[(u64, u64)], window: u64) -> u128 {
    admitted
        .iter()
        .map(|&(start, _)| {
            admitted
                .iter()
                .filter(|(t, _)| (start..start.saturating_add(window)).contains(t))
                .map(|&(_, c)| u128::from(c))
                .sum::<u128>()
        })
        .max()
        .unwrap_or(0)
}

/// Applies `(now, cost)` hits and returns the admitted units at their effective time.
fn admitted_units(b: BuiltIn, l: &RateLimit, times: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut s = Vec::new();
    let mut admitted = Vec::new();
    for &(now, cost) in times {
        let t = effective(b, l, &s, now);
        if hit(b, l, &mut s, cost, now) {
            admitted.push((t, cost));
        }
    }
    admitted
}

// ---------------------------------------------------------------- clocks stepping back

#[test]
fn moving_window_clock_stepping_back_counts_at_the_keys_time() {
    let l = limit(3, 10);
    let b = BuiltIn::MovingWindow;
    let admitted = admitted_units(b, &l, &[(1_000, 3), (1_012, 1), (1_009, 1)]);
    assert_eq!(admitted.len(), 3);
    assert_eq!(
        admitted[2].0, 1_012,
        "the late hit counts at the key's time"
    );
    assert!(densest(&admitted, 10) <= 3);
}

#[test]
fn a_clock_alternating_thirty_seconds_admits_within_the_bound() {
    let l = limit(2, 10_000);
    // One process 30 s ahead of the other, taking turns, real time moving 500 ms a hit.
    let times: Vec<(u64, u64)> = (0..40u64)
        .map(|i| (1_000_000 + i * 500 + (i % 2) * 30_000, 1))
        .collect();
    for b in BuiltIn::ALL {
        let admitted = admitted_units(b, &l, &times);
        let most = densest(&admitted, 10_000);
        assert!(most <= bound(b, &l), "{b}: {most} in one window");
    }
    // Moving window: two, and only two, per window of effective time.
    let admitted = admitted_units(BuiltIn::MovingWindow, &l, &times);
    assert_eq!(densest(&admitted, 10_000), 2);
}

#[test]
fn a_window_does_not_restart_for_a_clock_behind_its_start() {
    let l = limit(2, 10_000);
    for b in [BuiltIn::FixedWindow, BuiltIn::SlidingWindow] {
        let mut s = Vec::new();
        assert!(hit(b, &l, &mut s, 2, 30_000));
        // A clock 30 s behind is in the key's window [30 s, 40 s), which is full.
        let v = run(b, &l, &mut s, Op::Hit { cost: 1 }, 0).verdict;
        assert!(!v.allowed, "{b}");
        assert!(v.retry_at >= Some(Timestamp::from_millis(40_000)), "{b}");
    }
}

// ---------------------------------------------------------------- clocks ahead, in real time

/// A hit in a run on several clocks: real time moves `gap` ms, then the clock at
/// `offset` ms ahead of real time hits `cost`.
#[derive(Debug, Clone, Copy)]
struct Turn {
    gap: u64,
    offset: u64,
    cost: u64,
}

/// Runs `turns` on one key from real time `start` and returns the admitted units at
/// the **real** time of their decision.
fn admitted_in_real_time(b: BuiltIn, l: &RateLimit, start: u64, turns: &[Turn]) -> Vec<(u64, u64)> {
    let mut s = Vec::new();
    let mut real = start;
    let mut admitted = Vec::new();
    for t in turns {
        real += t.gap;
        if hit(b, l, &mut s, t.cost, real + t.offset) {
            admitted.push((real, t.cost));
        }
    }
    admitted
}

/// The documented bound in any window-long interval of real time when every clock
/// reads within `d` of real time, ahead of it, however the clocks move within that:
/// the strategy's effective-time bound for each of `1 + ⌈d / W⌉` window-long
/// intervals.
fn skewed_bound(b: BuiltIn, l: &RateLimit, d: u64) -> u128 {
    u128::from(1 + d.div_ceil(l.window_ms())) * bound(b, l)
}

/// The offsets of the scenario: half a window, a window, 3 and 15 windows.
fn offsets(window: u64) -> [u64; 4] {
    [window / 2, window, 3 * window, 15 * window]
}

/// One clock right and one ahead by a constant `d`, of any size, taking turns on one
/// key in several patterns: in every window-long interval of real time the strategy
/// admits at most twice its effective-time bound (the moving window: twice the amount).
/// Real time is the right clock's; were the clock ahead the right one, every real time
/// would move by `d` and the counts would be the same.
#[test]
fn two_clocks_a_constant_offset_apart_admit_at_most_twice_the_bound_in_real_time() {
    let l = limit(2, 10_000);
    let w = l.window_ms();
    for d in offsets(w) {
        let right = |gap| Turn {
            gap,
            offset: 0,
            cost: 1,
        };
        let ahead = |gap| Turn {
            gap,
            offset: d,
            cost: 1,
        };
        let patterns: Vec<Vec<Turn>> = vec![
            // Taking turns every 500 ms.
            (0..80)
                .map(|i| if i % 2 == 0 { right(500) } else { ahead(0) })
                .collect(),
            // The clock ahead now and then, the right one often.
            (0..120)
                .map(|i| if i % 23 == 0 { ahead(300) } else { right(300) })
                .collect(),
            // The right one fills the window, then the clock ahead comes in, again and
            // again after a pause longer than the offset.
            (0..6)
                .flat_map(|_| [right(d + w + 1), right(0), ahead(1), right(1), right(1)])
                .collect(),
        ];
        for b in BuiltIn::ALL {
            for turns in &patterns {
                let admitted = admitted_in_real_time(b, &l, 1_000_000, turns);
                let most = densest(&admitted, w);
                assert!(
                    most <= 2 * bound(b, &l),
                    "{b}, {d} ms ahead: {most} in {w} ms"
                );
            }
        }
    }
}

/// The bound cannot be the amount: after the right clock's hits, the clock ahead
/// presents the very state and time that the right clock presents after a pause, when
/// its hits must pass. So with the moving window, `A` units from the right clock and
/// `A` more from the clock ahead pass within `window − d` of real time (within
/// milliseconds when `d ≥ window`); no rule on the stored state and the caller's clock
/// can tell the two apart.
#[test]
fn a_clock_ahead_cannot_be_told_from_time_passing() {
    let l = limit(2, 10_000);
    let (b, w, start) = (BuiltIn::MovingWindow, l.window_ms(), 1_000_000);
    for d in offsets(w) {
        // The real time at which the clock ahead reads the end of the window.
        let gap = w.saturating_sub(d).max(5);
        let turns = [
            Turn {
                gap: 0,
                offset: 0,
                cost: 2,
            },
            Turn {
                gap,
                offset: d,
                cost: 2,
            },
        ];
        let admitted = admitted_in_real_time(b, &l, start, &turns);
        assert_eq!(densest(&admitted, w), 4, "{d} ms ahead");
        // The same bytes and time as the right clock alone after a pause.
        let mut alone = Vec::new();
        assert!(hit(b, &l, &mut alone, 2, start));
        assert!(hit(b, &l, &mut alone, 2, start + gap + d));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Two clocks, one right and one ahead by a constant offset of any size, hits
    /// interleaved at random: in every window-long interval of real time at most twice
    /// the strategy's effective-time bound.
    #[test]
    fn a_clock_ahead_by_a_constant_offset_admits_at_most_twice_the_bound(
        b in any_builtin(),
        amount in 1u64..6,
        window in 2u64..60,
        offset in prop_oneof![
            (0usize..4).prop_map(Some),
            Just(None),
        ],
        any_offset in 0u64..2_000,
        turns in prop::collection::vec((0u64..80, any::<bool>(), 0u64..8), 1..80),
    ) {
        let l = limit(amount, window);
        let d = offset.map_or(any_offset, |i| offsets(window)[i]);
        let turns: Vec<Turn> = turns
            .iter()
            .map(|&(gap, ahead, cost)| Turn {
                gap: gap % (2 * window),
                offset: if ahead { d } else { 0 },
                cost: cost.min(amount + 1),
            })
            .collect();
        let admitted = admitted_in_real_time(b, &l, 1_000_000, &turns);
        prop_assert!(densest(&admitted, window) <= 2 * bound(b, &l));
    }

    /// Clocks that each read anywhere within `d` ahead of real time, reading by reading
    /// (a clock that jumps about, or several clocks): in every window-long interval of
    /// real time at most `1 + ⌈d / W⌉` times the effective-time bound.
    #[test]
    fn clocks_anywhere_within_d_admit_at_most_the_skewed_bound(
        b in any_builtin(),
        amount in 1u64..6,
        window in 2u64..60,
        d in 0u64..400,
        turns in prop::collection::vec((0u64..80, 0u64..1_000, 0u64..8), 1..80),
    ) {
        let l = limit(amount, window);
        let turns: Vec<Turn> = turns
            .iter()
            .map(|&(gap, offset, cost)| Turn {
                gap: gap % (2 * window),
                offset: offset % (d + 1),
                cost: cost.min(amount + 1),
            })
            .collect();
        let admitted = admitted_in_real_time(b, &l, 1_000_000, &turns);
        prop_assert!(densest(&admitted, window) <= skewed_bound(b, &l, d));
    }
}

// ---------------------------------------------------------------- time domain

#[test]
fn windows_hold_at_the_end_of_time() {
    let l = RateLimit::new(1, 1_000, Unit::Year).expect("valid");
    for b in BuiltIn::ALL {
        let mut s = Vec::new();
        assert!(hit(b, &l, &mut s, 1, u64::MAX), "{b}");
        let v = run(b, &l, &mut s, Op::Hit { cost: 1 }, u64::MAX).verdict;
        assert!(!v.allowed, "{b}: time stands still at MAX");
        assert_eq!(v.retry_at, None, "{b}: no window ends after MAX");
        assert_eq!(v.reset_at, Timestamp::MAX, "{b}");
    }
}

#[test]
fn gcra_holds_near_the_end_of_time() {
    let l = RateLimit::new(2, 1_000, Unit::Year).expect("valid");
    let b = BuiltIn::Gcra;
    let mut s = Vec::new();
    let now = MAX - 1_000;
    assert!(hit(b, &l, &mut s, 1, now));
    assert!(hit(b, &l, &mut s, 1, now));
    for later in [now, now + 500, MAX, u64::MAX] {
        assert!(!hit(b, &l, &mut s, 1, later), "at {later}");
    }
}

#[test]
fn gcra_with_the_largest_amount_never_overflows() {
    let l = RateLimit::new(u64::MAX, 1_000, Unit::Year).expect("valid");
    let b = BuiltIn::Gcra;
    for now in [0, 1_000, MAX - 1, MAX] {
        let mut s = Vec::new();
        assert!(hit(b, &l, &mut s, u64::MAX / 2, now));
        assert!(hit(b, &l, &mut s, u64::MAX / 2, now));
        assert!(hit(b, &l, &mut s, 1, now));
        let v = run(b, &l, &mut s, Op::Hit { cost: 1 }, now).verdict;
        assert!(!v.allowed && v.remaining == 0, "at {now}");
    }
}

#[test]
fn stored_times_past_max_are_corrupt() {
    let l = limit(5, 1_000);
    let past = (MAX + 1).to_le_bytes();
    let zero = 0u64.to_le_bytes();
    let one = 1u64.to_le_bytes();
    let cases: [(BuiltIn, Vec<u8>); 4] = [
        (BuiltIn::FixedWindow, [&[1u8][..], &past, &one].concat()),
        (
            BuiltIn::SlidingWindow,
            [&[3u8][..], &past, &one, &zero].concat(),
        ),
        (
            BuiltIn::MovingWindow,
            [&[2u8][..], &zero, &one, &past, &one].concat(),
        ),
        (
            BuiltIn::Gcra,
            [&[4u8][..], &(MAX + 1_001).to_le_bytes(), &zero].concat(),
        ),
    ];
    for (b, state) in cases {
        for op in [Op::Hit { cost: 1 }, Op::Test { cost: 1 }] {
            let got = b
                .strategy()
                .apply(&l, &mut state.clone(), op, Timestamp::from_millis(5));
            assert!(got.is_err(), "{b}: {got:?}");
        }
    }
}

#[test]
fn gcra_far_future_state_is_an_error_not_a_panic() {
    let l = RateLimit::new(u64::MAX, 1_000, Unit::Year).expect("valid");
    let mut s = vec![4];
    s.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
    s.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
    let got = BuiltIn::Gcra.strategy().apply(
        &l,
        &mut s,
        Op::Test { cost: 1 << 40 },
        Timestamp::from_millis(1_700_000_000_000),
    );
    assert!(got.is_err(), "{got:?}");
}

/// A moving-window log whose header counts fewer live units than one of its records
/// (bytes the strategy never writes, from a shared store) is a `StateError` for a
/// refund of that record, not an overflow.
#[test]
fn moving_window_refund_beyond_the_header_count_is_an_error() {
    let l: RateLimit = "5 per second".parse().expect("valid");
    let mut state = vec![2u8];
    for w in [0u64, 0, 1_000, 1] {
        state.extend_from_slice(&w.to_le_bytes());
    }
    let before = state.clone();
    let got = BuiltIn::MovingWindow.strategy().apply(
        &l,
        &mut state,
        Op::Refund {
            cost: 1,
            at: Timestamp::from_millis(1_000),
        },
        Timestamp::from_millis(1_000),
    );
    assert!(got.is_err(), "{got:?}");
    assert_eq!(state, before);
    // The same log with its record expired, skipped by a hit: the header cannot pay
    // for the record either.
    let got = BuiltIn::MovingWindow.strategy().apply(
        &l,
        &mut state,
        Op::Hit { cost: 1 },
        Timestamp::from_millis(2_000),
    );
    assert!(got.is_err(), "{got:?}");
    assert_eq!(state, before);
}

/// A moving-window refund that must read a corrupt record after taking from another
/// (to find the new `reset_at`) is a `StateError` and leaves the bytes as they were,
/// as every error does.
#[test]
fn a_moving_window_refund_that_meets_a_corrupt_record_changes_nothing() {
    let l = limit(1, 1);
    let mut state = vec![2u8];
    // head 0, 999 live units; records [1, 0], [u64::MAX, 0], [0, 1].
    for w in [0u64, 999, 1, 0, u64::MAX, 0, 0, 1] {
        state.extend_from_slice(&w.to_le_bytes());
    }
    let before = state.clone();
    let refund = Op::Refund {
        cost: 1,
        at: Timestamp::ZERO,
    };
    let got = BuiltIn::MovingWindow
        .strategy()
        .apply(&l, &mut state, refund, Timestamp::ZERO);
    assert!(got.is_err(), "{got:?}");
    assert_eq!(state, before);
}

// ---------------------------------------------------------------- retry instants

#[test]
fn sliding_window_retry_for_the_largest_amount_is_later_than_now() {
    let l = limit(u64::MAX, 1_000);
    let b = BuiltIn::SlidingWindow;
    let mut s = Vec::new();
    assert!(hit(b, &l, &mut s, u64::MAX, 0));
    let v = run(b, &l, &mut s, Op::Hit { cost: 1 }, 0).verdict;
    assert!(!v.allowed);
    let r = v.retry_at.expect("passes later").as_millis();
    assert!(r > 0);
    assert!(passes(b, &l, &s, Op::Hit { cost: 1 }, r));
    assert!(!passes(b, &l, &s, Op::Hit { cost: 1 }, r - 1));
}

#[test]
fn moving_window_retry_for_the_largest_amount_waits_for_every_unit() {
    let l = limit(u64::MAX, 7);
    let b = BuiltIn::MovingWindow;
    let mut s = Vec::new();
    assert!(hit(b, &l, &mut s, 1, 0));
    assert!(hit(b, &l, &mut s, 1, 3));
    let v = run(b, &l, &mut s, Op::Test { cost: u64::MAX }, 3).verdict;
    assert_eq!(v.retry_at, Some(Timestamp::from_millis(10)));
    assert!(passes(b, &l, &s, Op::Test { cost: u64::MAX }, 10));
    assert!(!passes(b, &l, &s, Op::Test { cost: u64::MAX }, 9));
}

// ---------------------------------------------------------------- undos

#[test]
fn a_late_moving_window_undo_changes_nothing() {
    let l = limit(2, 1_000);
    let b = BuiltIn::MovingWindow;
    let mut s = Vec::new();
    assert!(hit(b, &l, &mut s, 1, 0));
    assert!(hit(b, &l, &mut s, 1, 500));
    let before = s.clone();
    let r = run(
        b,
        &l,
        &mut s,
        Op::Refund {
            cost: 1,
            at: Timestamp::ZERO,
        },
        1_200,
    );
    assert_eq!(r.write, None);
    assert_eq!(s, before);
    assert!(hit(b, &l, &mut s, 1, 1_200));
    assert!(
        !hit(b, &l, &mut s, 1, 1_200),
        "the hit from 500 still counts"
    );
}

#[test]
fn a_late_gcra_undo_gives_back_only_what_time_has_not() {
    let l = limit(5, 1_000);
    let b = BuiltIn::Gcra;
    let mut s = Vec::new();
    assert!(hit(b, &l, &mut s, 2, 0));
    for _ in 0..3 {
        assert!(hit(b, &l, &mut s, 1, 300));
    }
    run(
        b,
        &l,
        &mut s,
        Op::Refund {
            cost: 2,
            at: Timestamp::ZERO,
        },
        350,
    );
    // Had the first hit never happened, two more would pass at 350.
    assert!(hit(b, &l, &mut s, 1, 350));
    assert!(hit(b, &l, &mut s, 1, 350));
    assert!(!hit(b, &l, &mut s, 1, 350));
}

// ---------------------------------------------------------------- properties

fn any_builtin() -> impl proptest::strategy::Strategy<Value = BuiltIn> {
    prop::sample::select(BuiltIn::ALL.to_vec())
}

/// Steps of `(time step in -60..60 ms, cost in 0..=amount + 1)`.
fn steps() -> impl proptest::strategy::Strategy<Value = Vec<(i64, u64)>> {
    prop::collection::vec((-60i64..60, 0u64..8), 1..60)
}

fn walk(start: u64, dt: i64) -> u64 {
    start.saturating_add_signed(dt)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Clocks that step back never admit more than the documented bound in any
    /// window-long interval of effective time.
    #[test]
    fn admitted_units_stay_within_the_bound(
        b in any_builtin(),
        amount in 1u64..6,
        window in 1u64..50,
        steps in steps(),
    ) {
        let l = limit(amount, window);
        let mut now = 10_000u64;
        let times: Vec<(u64, u64)> = steps
            .iter()
            .map(|&(dt, cost)| {
                now = walk(now, dt);
                (now, cost.min(amount + 1))
            })
            .collect();
        let admitted = admitted_units(b, &l, &times);
        prop_assert!(densest(&admitted, window) <= bound(b, &l));
    }

    /// A rejected hit's retry instant is the earliest at which the same hit passes.
    #[test]
    fn retry_is_the_earliest_passing_instant(
        b in any_builtin(),
        amount in prop::sample::select(vec![1u64, 2, 3, 7, u64::MAX - 1, u64::MAX]),
        window in prop::sample::select(vec![1u64, 7, 50, 1_000]),
        steps in steps(),
        probe in 0u64..8,
    ) {
        let l = limit(amount, window);
        let big = amount > 1_000;
        let scale = |c: u64| if big { c.saturating_mul(amount / 4) } else { c };
        let mut s = Vec::new();
        let mut now = 10_000u64;
        for (dt, cost) in steps {
            now = walk(now, dt);
            let cost = scale(cost).min(amount);
            for op in [Op::Hit { cost }, Op::Test { cost: scale(probe).min(amount) }] {
                let v = run(b, &l, &mut s.clone(), op, now).verdict;
                if let Some(r) = v.retry_at {
                    let r = r.as_millis();
                    prop_assert!(!v.allowed);
                    prop_assert!(passes(b, &l, &s, op, r), "{op:?} at {now}: retry {r}");
                    if r > now {
                        prop_assert!(!passes(b, &l, &s, op, r - 1), "{op:?} at {now}: {r}");
                    }
                } else if !v.allowed {
                    prop_assert!(op.cost() > amount || !passes(b, &l, &s, op, MAX));
                }
            }
            run(b, &l, &mut s, Op::Hit { cost }, now);
        }
    }

    /// An undo never leaves more room than if the undone hit had never happened.
    ///
    /// Fixed and sliding windows are anchored at a key's first hit, so without the
    /// hit their windows would lie elsewhere and neither history bounds the other; for
    /// them the history without the hit has a hit of cost 0 in its place, which anchors
    /// the same windows. GCRA's refund is exact when the refunding clock is not behind
    /// the clocks that used the key since the hit, as documented: the refund comes at
    /// or after every earlier time. Room is compared at later instants of the key's
    /// (effective) time.
    #[test]
    fn an_undo_never_leaves_more_room_than_no_hit(
        b in any_builtin(),
        amount in 1u64..6,
        window in 1u64..60,
        before in steps(),
        undone in (-60i64..200, 1u64..6),
        after in steps(),
        refund_dt in -60i64..60,
    ) {
        let l = limit(amount, window);
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let mut now = 10_000u64;
        let mut latest = now;
        for (dt, cost) in before {
            now = walk(now, dt);
            latest = latest.max(now);
            hit(b, &l, &mut with, cost, now);
            hit(b, &l, &mut without, cost, now);
        }
        now = walk(now, undone.0);
        latest = latest.max(now);
        let (at, cost) = (now, undone.1.min(amount));
        if !hit(b, &l, &mut with, cost, at) {
            return Ok(()); // Nothing to undo.
        }
        if matches!(b, BuiltIn::FixedWindow | BuiltIn::SlidingWindow) {
            hit(b, &l, &mut without, 0, at);
        }
        for (dt, cost) in after {
            now = walk(now, dt);
            latest = latest.max(now);
            if hit(b, &l, &mut with, cost, now) {
                hit(b, &l, &mut without, cost, now);
            }
        }
        let refund_at = if b == BuiltIn::Gcra { latest + refund_dt.unsigned_abs() } else { walk(now, refund_dt) };
        run(b, &l, &mut with, Op::Refund { cost, at: Timestamp::from_millis(at) }, refund_at);
        // Later in the key's time: a clock behind it decides at the key's time anyway.
        let from = effective(b, &l, &with, refund_at);
        for t in (from..from + 3 * window).step_by(3) {
            for probe in 1..=amount {
                let op = Op::Test { cost: probe };
                if passes(b, &l, &with, op, t) {
                    prop_assert!(
                        passes(b, &l, &without, op, t),
                        "{b}: {probe} passes at {t} after the undo only"
                    );
                }
            }
        }
    }

    /// Any bytes decode to a decision or a `StateError`, never a panic; a test and an
    /// answer without a write leave the bytes alone.
    #[test]
    fn any_bytes_decode_to_a_decision_or_an_error(
        b in any_builtin(),
        tag in prop::sample::select(vec![0u8, 1, 2, 3, 4, 255]),
        words in prop::collection::vec(prop::sample::select(vec![
            0u64, 1, 2, 1_000, MAX - 1, MAX, MAX + 1, u64::MAX / 2, u64::MAX - 1, u64::MAX,
        ]), 0..6),
        tail in prop::collection::vec(any::<u8>(), 0..3),
        amount in prop::sample::select(vec![1u64, 2, 1_000, u64::MAX / 2, u64::MAX]),
        window in prop::sample::select(vec![1u64, 7, 1_000, MAX_WINDOW_MS]),
        kind in 0u8..3,
        cost in prop::sample::select(vec![0u64, 1, 2, 1 << 40, u64::MAX / 2, u64::MAX]),
        now in prop::sample::select(vec![0u64, 1, 1_700_000_000_000, MAX - 1, MAX, u64::MAX]),
        at in prop::sample::select(vec![0u64, 1, MAX, u64::MAX]),
    ) {
        let l = limit(amount, window);
        let mut state = vec![tag];
        for w in &words {
            state.extend_from_slice(&w.to_le_bytes());
        }
        state.extend_from_slice(&tail);
        let op = match kind {
            0 => Op::Hit { cost },
            1 => Op::Test { cost },
            _ => Op::Refund { cost, at: Timestamp::from_millis(at) },
        };
        let before = state.clone();
        let got = b.strategy().apply(&l, &mut state, op, Timestamp::from_millis(now));
        if let Ok(t) = got {
            if t.write.is_none() {
                prop_assert_eq!(&state, &before);
            }
            if !t.verdict.allowed {
                prop_assert_eq!(t.write, None);
            }
        } else {
            prop_assert_eq!(&state, &before);
        }
    }
}

proptest! {
    // Cheap cases, and the interesting ones are a small share of them.
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// Words in each strategy's own layout (its tag, its number of words), with values
    /// near one another and near the clock, so that headers, records and refund times
    /// meet: every operation answers or returns a `StateError`, never panics (with
    /// overflow checks on) and never writes on an error or a rejection.
    #[test]
    fn words_in_each_layout_decode_to_a_decision_or_an_error(
        b in any_builtin(),
        records in 0usize..4,
        mut words in prop::collection::vec(prop::sample::select(vec![
            0u64, 1, 2, 3, 999, 1_000, 1_001, 2_000, MAX, u64::MAX,
        ]), 9),
        raw_head in any::<bool>(),
        amount in prop::sample::select(vec![1u64, 2, 5, u64::MAX]),
        window in prop::sample::select(vec![1u64, 1_000, 5_000]),
        kind in 0u8..3,
        cost in prop::sample::select(vec![0u64, 1, 2, 5, u64::MAX]),
        now in prop::sample::select(vec![0u64, 999, 1_000, 1_001, 2_000, 7_000, MAX, u64::MAX]),
        at in prop::sample::select(vec![0u64, 1, 999, 1_000, 1_001, 2_000, MAX]),
        from_state in (any::<bool>(), 0usize..9),
    ) {
        let l = limit(amount, window);
        let (tag, len) = match b {
            BuiltIn::FixedWindow => (1u8, 2),
            BuiltIn::MovingWindow => (2, 2 + 2 * records),
            BuiltIn::SlidingWindow => (3, 3),
            _ => (4, 2),
        };
        // The moving window's times: its records' (words 2, 4, ...); the others' all.
        let times: Vec<usize> = match b {
            BuiltIn::MovingWindow => (0..records).map(|r| 2 + 2 * r).collect(),
            _ => (0..len).collect(),
        };
        if b == BuiltIn::MovingWindow && !raw_head {
            words[0] %= records as u64 + 1; // a head within the log
        }
        let mut state = vec![tag];
        for w in words.iter().take(len) {
            state.extend_from_slice(&w.to_le_bytes());
        }
        // Often a refund of a time the state holds, and a clock no later than it.
        let (now, at) = match from_state {
            (true, i) if !times.is_empty() => {
                let t = words[times[i % times.len()]];
                (now.min(t), t)
            }
            _ => (now, at),
        };
        let op = match kind {
            0 => Op::Hit { cost },
            1 => Op::Test { cost },
            _ => Op::Refund { cost, at: Timestamp::from_millis(at) },
        };
        let before = state.clone();
        let got = b.strategy().apply(&l, &mut state, op, Timestamp::from_millis(now));
        match got {
            Ok(t) if t.write.is_some() => prop_assert!(t.verdict.allowed),
            _ => prop_assert_eq!(&state, &before),
        }
    }
    /// A log the moving window wrote, with one record then made corrupt (a time past
    /// `MAX`, or more units than the header counts), and an operation that may reach
    /// it: an error leaves the bytes as they were.
    #[test]
    fn a_moving_window_error_changes_no_byte(
        hits in prop::collection::vec((0u64..40, 1u64..3), 1..8),
        corrupt in (0usize..8, any::<bool>()),
        kind in 0u8..3,
        pick in 0usize..8,
        later in 0u64..60,
    ) {
        let l = limit(5, 50);
        let b = BuiltIn::MovingWindow;
        let mut s = Vec::new();
        let mut now = 1_000;
        for &(gap, cost) in &hits {
            now += gap;
            hit(b, &l, &mut s, cost, now);
        }
        let records = (s.len() - 17) / 16;
        let at = |i: usize| 17 + 16 * (i % records);
        let (victim, time) = corrupt;
        let spot = if time { at(victim) } else { at(victim) + 8 };
        let value = if time { MAX + 1 } else { 1_000 };
        s[spot..spot + 8].copy_from_slice(&value.to_le_bytes());
        let op = match kind {
            0 => Op::Hit { cost: 1 },
            1 => Op::Test { cost: 5 },
            _ => Op::Refund { cost: 1, at: Timestamp::from_millis(word(&s, at(pick))) },
        };
        let before = s.clone();
        let got = b.strategy().apply(&l, &mut s, op, Timestamp::from_millis(now + later));
        match got {
            Ok(t) if t.write.is_some() => prop_assert!(t.verdict.allowed),
            _ => prop_assert_eq!(&s, &before),
        }
    }
}
