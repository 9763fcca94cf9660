//! Sliding window counter: the current window's count plus a weighted share of the
//! previous window's.

use super::state::{read_words, write_words};
use super::{never, ttl_until, BuiltIn, Op, StateError, Strategy, Transition, Verdict};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 3;
const NAME: &str = "sliding-window-counter";

/// Sliding window counter: an O(1) approximation of the moving window.
///
/// Windows are anchored at the first hit and follow each other back to back. At
/// `elapsed` milliseconds into the current window the counted usage is
///
/// ```text
/// current + floor(previous × (window − elapsed) / window)
/// ```
///
/// (the previous window's hits are assumed spread evenly), and a hit of `cost` passes
/// when that plus `cost` is at most the amount. After a whole window without hits the
/// anchor moves to the next hit. A rejected hit consumes nothing.
///
/// State: tag `3`, then `[current_window_start_ms, current_count, previous_count]`.
///
/// # Examples
///
/// ```
/// use limiter_core::strategy::{Op, SlidingWindow, Strategy};
/// use limiter_core::{RateLimit, Timestamp};
///
/// let limit: RateLimit = "10 per minute".parse()?;
/// let mut state = Vec::new();
/// let t = Timestamp::from_millis;
/// SlidingWindow.apply(&limit, &mut state, Op::Hit { cost: 10 }, t(0))?;
/// // 15 s into the next window, 45/60 of the previous 10 hits still count: 7.
/// let v = SlidingWindow.apply(&limit, &mut state, Op::Test { cost: 1 }, t(75_000))?.verdict;
/// assert_eq!(v.remaining, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SlidingWindow;

/// The state rolled forward to `now`.
#[derive(Debug, Clone, Copy)]
struct Windows {
    start: u64,
    current: u64,
    previous: u64,
}

impl Windows {
    fn at(stored: Option<[u64; 3]>, now: u64, window: u64) -> Windows {
        let fresh = Windows {
            start: now,
            current: 0,
            previous: 0,
        };
        let Some([start, current, previous]) = stored else {
            return fresh;
        };
        // A clock that went backwards stays in the current window.
        let elapsed = now.saturating_sub(start);
        match elapsed / window {
            0 => Windows {
                start,
                current,
                previous,
            },
            1 => Windows {
                start: start + window,
                current: 0,
                previous: current,
            },
            _ => fresh,
        }
    }

    /// `floor(previous × (window − elapsed) / window)`.
    fn weighted_previous(previous: u64, window: u64, elapsed: u64) -> u64 {
        let left = u128::from(window.saturating_sub(elapsed));
        let share = u128::from(previous) * left / u128::from(window);
        u64::try_from(share).unwrap_or(u64::MAX)
    }

    fn used(&self, now: u64, window: u64) -> u64 {
        let elapsed = now.saturating_sub(self.start);
        self.current
            .saturating_add(Self::weighted_previous(self.previous, window, elapsed))
    }

    /// The first elapsed time `e` (from the window start) at which
    /// `floor(previous × (window − e) / window) <= budget`.
    fn first_elapsed_within(previous: u64, window: u64, budget: u64) -> u64 {
        if previous == 0 {
            return 0;
        }
        // previous × (window − e) < (budget + 1) × window
        // ⇔ window − e <= ((budget + 1) × window − 1) / previous
        let bound = (u128::from(budget) + 1) * u128::from(window) - 1;
        let max_left = bound / u128::from(previous);
        let max_left = u64::try_from(max_left).unwrap_or(u64::MAX);
        window.saturating_sub(max_left)
    }

    /// The earliest time at which `used + cost <= amount`, for `cost <= amount`.
    fn retry_at(&self, now: u64, window: u64, amount: u64, cost: u64) -> u64 {
        if let Some(budget) = amount.checked_sub(cost.saturating_add(self.current)) {
            let e = Self::first_elapsed_within(self.previous, window, budget);
            if e < window {
                return self.start.saturating_add(e).max(now);
            }
        }
        // Next window: the current count becomes the weighted previous.
        let e = Self::first_elapsed_within(self.current, window, amount - cost);
        self.start
            .saturating_add(window)
            .saturating_add(e.min(window))
            .max(now)
    }

    /// When the counted usage is back to zero.
    fn reset_at(&self, now: u64, window: u64, amount: u64) -> u64 {
        if self.used(now, window) == 0 {
            return now;
        }
        // Zero usage is "a hit of the whole amount fits".
        self.retry_at(now, window, amount, amount)
    }
}

impl Strategy for SlidingWindow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn builtin(&self) -> Option<BuiltIn> {
        Some(BuiltIn::SlidingWindow)
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
        let mut w = Windows::at(read_words::<3>(state, TAG, NAME)?, now_ms, window);
        let used = w.used(now_ms, window);
        let remaining = amount.saturating_sub(used);
        let ts = Timestamp::from_millis;

        match op {
            Op::Hit { cost } | Op::Test { cost } => {
                let reset_at = ts(w.reset_at(now_ms, window, amount));
                if cost > amount {
                    return Ok(never(remaining, reset_at));
                }
                if cost > remaining {
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: false,
                            remaining,
                            reset_at,
                            retry_at: Some(ts(w.retry_at(now_ms, window, amount, cost))),
                        },
                        write: None,
                    });
                }
                if matches!(op, Op::Test { .. }) {
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: true,
                            remaining,
                            reset_at,
                            retry_at: None,
                        },
                        write: None,
                    });
                }
                w.current += cost;
                Ok(self.store(state, w, now, window, amount, remaining - cost))
            }
            Op::Refund { cost, at } => {
                let at = at.as_millis();
                if at >= w.start {
                    w.current = w.current.saturating_sub(cost);
                } else if at >= w.start.saturating_sub(window) {
                    w.previous = w.previous.saturating_sub(cost);
                } else {
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: true,
                            remaining,
                            reset_at: ts(w.reset_at(now_ms, window, amount)),
                            retry_at: None,
                        },
                        write: None,
                    });
                }
                let remaining = amount.saturating_sub(w.used(now_ms, window));
                Ok(self.store(state, w, now, window, amount, remaining))
            }
        }
    }
}

impl SlidingWindow {
    fn store(
        &self,
        state: &mut Vec<u8>,
        w: Windows,
        now: Timestamp,
        window: u64,
        amount: u64,
        remaining: u64,
    ) -> Transition {
        write_words(state, TAG, &[w.start, w.current, w.previous]);
        let now_ms = now.as_millis();
        // The state matters until the current window has also become the previous.
        let until = Timestamp::from_millis(w.start.saturating_add(window.saturating_mul(2)));
        Transition {
            verdict: Verdict {
                allowed: true,
                remaining,
                reset_at: Timestamp::from_millis(w.reset_at(now_ms, window, amount)),
                retry_at: None,
            },
            write: Some(ttl_until(now, until)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn limit(n: u64, window_ms: u64) -> RateLimit {
        RateLimit::new(n, window_ms, crate::limit::Unit::Millisecond).unwrap()
    }

    #[test]
    fn weighting_matches_the_formula() {
        let l = RateLimit::per_minute(NonZeroU64::new(10).unwrap());
        let mut s = Vec::new();
        SlidingWindow
            .apply(&l, &mut s, Op::Hit { cost: 10 }, at(0))
            .unwrap();
        // 1 s into the next window: floor(10 × 59/60) = 9 counted.
        let v = SlidingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(61_000))
            .unwrap()
            .verdict;
        assert_eq!(v.remaining, 1);
        let v = SlidingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(90_000))
            .unwrap()
            .verdict;
        assert_eq!(v.remaining, 5);
        let v = SlidingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(120_000))
            .unwrap()
            .verdict;
        assert_eq!(v.remaining, 10);
    }

    /// retry_at and reset_at are exact: checked against a scan of every millisecond.
    #[test]
    fn retry_and_reset_match_a_brute_force_scan() {
        let window = 97;
        for amount in [1u64, 3, 7, 20] {
            for (first, second, gap) in [
                (amount, 0, 0),
                (amount / 2, amount - amount / 2, 40),
                (1, amount - 1, 96),
                (amount, 0, 150),
            ] {
                let l = limit(amount, window);
                let mut s = Vec::new();
                if first > 0 {
                    SlidingWindow
                        .apply(&l, &mut s, Op::Hit { cost: first }, at(1_000))
                        .unwrap();
                }
                if second > 0 {
                    SlidingWindow
                        .apply(&l, &mut s, Op::Hit { cost: second }, at(1_000 + gap))
                        .unwrap();
                }
                let now = 1_000 + gap + 5;
                for cost in 1..=amount {
                    let v = SlidingWindow
                        .apply(&l, &mut s.clone(), Op::Test { cost }, at(now))
                        .unwrap()
                        .verdict;
                    let passes = |t: u64| {
                        SlidingWindow
                            .apply(&l, &mut s.clone(), Op::Test { cost }, at(t))
                            .unwrap()
                            .verdict
                            .allowed
                    };
                    let expected = (now..now + 3 * window).find(|&t| passes(t)).unwrap();
                    if v.allowed {
                        assert_eq!(expected, now);
                    } else {
                        assert_eq!(
                            v.retry_at,
                            Some(at(expected)),
                            "amount {amount} cost {cost} gap {gap}"
                        );
                    }
                    let empty = |t: u64| {
                        SlidingWindow
                            .apply(&l, &mut s.clone(), Op::Test { cost: 1 }, at(t))
                            .unwrap()
                            .verdict
                            .remaining
                            == amount
                    };
                    let reset = (now..now + 3 * window).find(|&t| empty(t)).unwrap();
                    assert_eq!(v.reset_at, at(reset), "reset: amount {amount} gap {gap}");
                }
            }
        }
    }

    #[test]
    fn idle_for_two_windows_starts_fresh() {
        let l = limit(5, 100);
        let mut s = Vec::new();
        SlidingWindow
            .apply(&l, &mut s, Op::Hit { cost: 5 }, at(0))
            .unwrap();
        let v = SlidingWindow
            .apply(&l, &mut s, Op::Hit { cost: 5 }, at(250))
            .unwrap()
            .verdict;
        assert!(v.allowed);
        assert_eq!(v.remaining, 0);
    }
}
