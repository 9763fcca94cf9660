//! GCRA, the generic cell rate algorithm: a token bucket kept as one timestamp.

use super::state::{read_words, write_words};
use super::{never, ttl_until, BuiltIn, Op, StateError, Strategy, Transition, Verdict};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 4;
const NAME: &str = "gcra";

/// GCRA: `amount` units per window, refilled smoothly, with a burst of `amount`.
///
/// Equivalent to a token bucket of capacity `amount` that gains one token every
/// `window / amount`, but its state is a single "theoretical arrival time" (TAT). A
/// hit of `cost` at `now` passes when `max(TAT, now) + cost × interval − now` is at most
/// `amount × interval`, and then moves the TAT to that sum.
///
/// Time is counted in ticks of `1 / amount` milliseconds, so that the interval is
/// exactly `window_ms` ticks and no rounding ever admits a unit too many.
///
/// State: tag `4`, then the TAT as `[milliseconds, ticks]`: whole milliseconds since
/// the Unix epoch plus `ticks < amount` ticks. Every word stays far below 2⁵³ for
/// realistic limits, so a server-side script with floating-point numbers can keep the
/// same layout.
///
/// # Examples
///
/// ```
/// use limiter_core::strategy::{Gcra, Op, Strategy};
/// use limiter_core::{RateLimit, Timestamp};
///
/// let limit: RateLimit = "2 per second".parse()?;
/// let mut state = Vec::new();
/// let t = Timestamp::from_millis;
/// let hit = Op::Hit { cost: 1 };
/// assert!(Gcra.apply(&limit, &mut state, hit, t(0))?.verdict.allowed);
/// assert!(Gcra.apply(&limit, &mut state, hit, t(0))?.verdict.allowed);
/// let v = Gcra.apply(&limit, &mut state, hit, t(0))?.verdict;
/// assert_eq!(v.retry_at, Some(t(500)), "one unit comes back every 500 ms");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Gcra;

/// `n / d` (`d > 0`), in 64 bits when both fit: a 128-bit division is a slow library
/// call, and on the hot path the operands are differences that nearly always fit.
fn div(n: u128, d: u128) -> u128 {
    match (u64::try_from(n), u64::try_from(d)) {
        (Ok(n), Ok(d)) => u128::from(n / d),
        _ => n / d,
    }
}

/// The instant `ticks` ticks after `now` (`ticks / amount` ms, rounded up).
fn after(now: Timestamp, ticks: u128, amount: u64) -> Timestamp {
    let amount = u128::from(amount);
    let ms = div(ticks + amount - 1, amount);
    now.add_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `tat` ticks as `[milliseconds, ticks below amount]`.
fn split(tat: u128, amount: u64) -> [u64; 2] {
    let amount = u128::from(amount);
    let ms = div(tat, amount);
    let ticks = tat - ms * amount;
    [
        u64::try_from(ms).unwrap_or(u64::MAX),
        u64::try_from(ticks).unwrap_or(u64::MAX),
    ]
}

impl Strategy for Gcra {
    fn name(&self) -> &'static str {
        NAME
    }

    fn builtin(&self) -> Option<BuiltIn> {
        Some(BuiltIn::Gcra)
    }

    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Transition, StateError> {
        let amount = limit.amount();
        let interval = u128::from(limit.window_ms());
        let capacity = u128::from(amount) * interval;
        let now_ticks = u128::from(now.as_millis()) * u128::from(amount);
        let stored = read_words::<2>(state, TAG, NAME)?.map_or(0, |[ms, ticks]| {
            u128::from(ms) * u128::from(amount) + u128::from(ticks)
        });
        let tat = stored.max(now_ticks);
        let used_ticks = tat - now_ticks;
        let remaining_at = |used: u128| {
            u64::try_from(div(capacity.saturating_sub(used), interval)).unwrap_or(u64::MAX)
        };
        // `now_ticks` is a whole number of milliseconds, so counting from it is exact.
        let reset_at = |tat: u128| after(now, tat.saturating_sub(now_ticks), amount);

        // Writes `new_tat` (never below now) and answers an allowed operation.
        let store = |state: &mut Vec<u8>, new_tat: u128| {
            write_words(state, TAG, &split(new_tat, amount));
            let reset = reset_at(new_tat);
            Transition {
                verdict: Verdict {
                    allowed: true,
                    remaining: remaining_at(new_tat - now_ticks),
                    reset_at: reset,
                    retry_at: None,
                },
                write: Some(ttl_until(now, reset)),
            }
        };

        match op {
            Op::Hit { cost } | Op::Test { cost } => {
                if cost > amount {
                    return Ok(never(remaining_at(used_ticks), reset_at(tat)));
                }
                let new_tat = tat + u128::from(cost) * interval;
                if new_tat - now_ticks > capacity {
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: false,
                            remaining: remaining_at(used_ticks),
                            reset_at: reset_at(tat),
                            retry_at: Some(after(now, new_tat - capacity - now_ticks, amount)),
                        },
                        write: None,
                    });
                }
                if matches!(op, Op::Test { .. }) {
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: true,
                            remaining: remaining_at(used_ticks),
                            reset_at: reset_at(tat),
                            retry_at: None,
                        },
                        write: None,
                    });
                }
                Ok(store(state, new_tat))
            }
            Op::Refund { cost, .. } => {
                let new_tat = stored
                    .saturating_sub(u128::from(cost) * interval)
                    .max(now_ticks);
                Ok(store(state, new_tat))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Unit;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn admits_exactly_amount_at_one_instant_for_awkward_ratios() {
        for (amount, window) in [
            (3u64, 1_000u64),
            (7, 10),
            (50, 60_000),
            (1_000, 1),
            (u64::MAX, 1),
        ] {
            let l = RateLimit::new(amount, window, Unit::Millisecond).unwrap();
            let mut s = Vec::new();
            let big = amount.min(1_000_000);
            let first = Gcra
                .apply(&l, &mut s, Op::Hit { cost: big }, at(1_000_000))
                .unwrap();
            assert!(first.verdict.allowed);
            if big == amount {
                assert_eq!(first.verdict.remaining, 0);
                assert!(
                    !Gcra
                        .apply(&l, &mut s, Op::Hit { cost: 1 }, at(1_000_000))
                        .unwrap()
                        .verdict
                        .allowed
                );
            }
        }
    }

    #[test]
    fn state_is_milliseconds_and_ticks() {
        let l = RateLimit::new(3, 1_000, Unit::Millisecond).unwrap();
        let mut s = Vec::new();
        Gcra.apply(&l, &mut s, Op::Hit { cost: 1 }, at(5_000))
            .unwrap();
        // TAT = 5,000 ms + 1,000/3 ms = 5,333 ms + 1 tick of 1/3 ms.
        let mut expected = vec![TAG];
        expected.extend_from_slice(&5_333u64.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(s, expected);
    }

    #[test]
    fn refills_one_unit_per_interval() {
        let l: RateLimit = RateLimit::new(4, 1_000, Unit::Millisecond).unwrap();
        let mut s = Vec::new();
        Gcra.apply(&l, &mut s, Op::Hit { cost: 4 }, at(10_000))
            .unwrap();
        let v = Gcra
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(10_249))
            .unwrap()
            .verdict;
        assert!(!v.allowed);
        assert_eq!(v.retry_at, Some(at(10_250)));
        assert_eq!(v.reset_at, at(11_000));
        let v = Gcra
            .apply(&l, &mut s, Op::Test { cost: 2 }, at(10_500))
            .unwrap()
            .verdict;
        assert!(v.allowed);
        assert_eq!(v.remaining, 2);
    }

    #[test]
    fn refund_gives_units_back() {
        let l = RateLimit::new(2, 1_000, Unit::Millisecond).unwrap();
        let mut s = Vec::new();
        Gcra.apply(&l, &mut s, Op::Hit { cost: 2 }, at(0)).unwrap();
        Gcra.apply(&l, &mut s, Op::Refund { cost: 1, at: at(0) }, at(0))
            .unwrap();
        assert!(
            Gcra.apply(&l, &mut s, Op::Hit { cost: 1 }, at(0))
                .unwrap()
                .verdict
                .allowed
        );
        assert!(
            !Gcra
                .apply(&l, &mut s, Op::Hit { cost: 1 }, at(0))
                .unwrap()
                .verdict
                .allowed
        );
    }
}
