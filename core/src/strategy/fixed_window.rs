//! Fixed window: a counter that starts with the first hit and resets a window later.

use super::state::{read_words, write_words};
use super::{never, ttl_until, BuiltIn, Op, StateError, Strategy, Transition, Verdict};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 1;
const NAME: &str = "fixed-window";

/// Fixed window: at most `amount` units between the first hit and one window later.
///
/// The window starts at the first hit, not at a clock boundary, as in Python's `limits`.
/// Cheap and simple; a client may pass up to twice the amount across the end of one
/// window and the start of the next. Unlike `limits`, a rejected hit does not count.
///
/// State: tag `1`, then `[window_start_ms, count]`.
///
/// # Examples
///
/// ```
/// use limiter_core::strategy::{FixedWindow, Op, Strategy};
/// use limiter_core::{RateLimit, Timestamp};
///
/// let limit: RateLimit = "2 per second".parse()?;
/// let mut state = Vec::new();
/// let at = Timestamp::from_millis(10_000);
/// let hit = Op::Hit { cost: 1 };
/// assert!(FixedWindow.apply(&limit, &mut state, hit, at)?.verdict.allowed);
/// assert!(FixedWindow.apply(&limit, &mut state, hit, at)?.verdict.allowed);
/// let third = FixedWindow.apply(&limit, &mut state, hit, at)?.verdict;
/// assert!(!third.allowed);
/// assert_eq!(third.retry_at, Some(Timestamp::from_millis(11_000)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedWindow;

impl Strategy for FixedWindow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn builtin(&self) -> Option<BuiltIn> {
        Some(BuiltIn::FixedWindow)
    }

    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Transition, StateError> {
        let amount = limit.amount();
        let window = limit.window_ms();
        let now_ms = now.as_millis();
        // A window that has ended counts as absent. (A clock that went backwards stays
        // in the current window.)
        let (start, count) = match read_words::<2>(state, TAG, NAME)? {
            Some([start, count]) if now_ms < start.saturating_add(window) => (start, count),
            _ => (now_ms, 0),
        };
        let end = Timestamp::from_millis(start.saturating_add(window));
        let reset_at = |count: u64| if count == 0 { now } else { end };

        match op {
            Op::Refund { cost, at } => {
                let same_window = (start..start.saturating_add(window)).contains(&at.as_millis());
                let count = if same_window {
                    count.saturating_sub(cost)
                } else {
                    count
                };
                let verdict = Verdict {
                    allowed: true,
                    remaining: amount.saturating_sub(count),
                    reset_at: reset_at(count),
                    retry_at: None,
                };
                if !same_window {
                    return Ok(Transition {
                        verdict,
                        write: None,
                    });
                }
                write_words(state, TAG, &[start, count]);
                Ok(Transition {
                    verdict,
                    write: Some(ttl_until(now, end)),
                })
            }
            Op::Hit { cost } | Op::Test { cost } => {
                let remaining = amount.saturating_sub(count);
                if cost > amount {
                    return Ok(never(remaining, reset_at(count)));
                }
                if cost > remaining {
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: false,
                            remaining,
                            reset_at: reset_at(count),
                            retry_at: Some(end),
                        },
                        write: None,
                    });
                }
                let after = count + cost;
                let verdict = Verdict {
                    allowed: true,
                    remaining: amount - after,
                    reset_at: end,
                    retry_at: None,
                };
                if matches!(op, Op::Test { .. }) {
                    return Ok(Transition {
                        verdict: Verdict {
                            remaining,
                            reset_at: reset_at(count),
                            ..verdict
                        },
                        write: None,
                    });
                }
                write_words(state, TAG, &[start, after]);
                Ok(Transition {
                    verdict,
                    write: Some(ttl_until(now, end)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn limit(amount: u64) -> RateLimit {
        RateLimit::per_second(NonZeroU64::new(amount).unwrap())
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn window_starts_at_first_hit_and_rolls_over() {
        let l = limit(2);
        let mut s = Vec::new();
        for _ in 0..2 {
            assert!(
                FixedWindow
                    .apply(&l, &mut s, Op::Hit { cost: 1 }, at(500))
                    .unwrap()
                    .verdict
                    .allowed
            );
        }
        let denied = FixedWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(1_499))
            .unwrap();
        assert!(!denied.verdict.allowed);
        assert_eq!(denied.write, None);
        assert_eq!(denied.verdict.retry_at, Some(at(1_500)));
        let next = FixedWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(1_500))
            .unwrap();
        assert!(next.verdict.allowed);
        assert_eq!(next.verdict.reset_at, at(2_500));
    }

    #[test]
    fn rejected_hit_consumes_nothing() {
        let l = limit(10);
        let mut s = Vec::new();
        FixedWindow
            .apply(&l, &mut s, Op::Hit { cost: 5 }, at(0))
            .unwrap();
        let before = s.clone();
        assert!(
            !FixedWindow
                .apply(&l, &mut s, Op::Hit { cost: 6 }, at(0))
                .unwrap()
                .verdict
                .allowed
        );
        assert_eq!(s, before);
        assert!(
            FixedWindow
                .apply(&l, &mut s, Op::Hit { cost: 5 }, at(0))
                .unwrap()
                .verdict
                .allowed
        );
    }

    #[test]
    fn refund_only_in_the_same_window() {
        let l = limit(3);
        let mut s = Vec::new();
        FixedWindow
            .apply(&l, &mut s, Op::Hit { cost: 3 }, at(0))
            .unwrap();
        let r = FixedWindow
            .apply(&l, &mut s, Op::Refund { cost: 2, at: at(0) }, at(10))
            .unwrap();
        assert_eq!(r.verdict.remaining, 2);
        let stale = FixedWindow
            .apply(&l, &mut s, Op::Refund { cost: 1, at: at(0) }, at(5_000))
            .unwrap();
        assert_eq!(stale.write, None);
    }
}
