//! Sliding window counter: the current window's count plus a weighted share of the
//! previous window's.

use super::state::Words;
use super::{div, retry_instant, written, BuiltIn, Op, StateError, Transition, Usage};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 3;
const NAME: &str = BuiltIn::SlidingWindow.name();

/// Sliding window counter: an O(1) approximation of the moving window.
///
/// Windows are anchored at the first hit and follow each other back to back; the
/// previous window's hits are assumed spread evenly over it.
///
/// # State and rules
///
/// State: tag `3`, then `[start, current, previous]` (25 bytes): the current window's
/// start in milliseconds, the units admitted in it, and the units admitted in the
/// window before it. Any other length or tag, or a `start` past
/// [`Timestamp::MAX`], is a [`StateError`].
///
/// With `W` the window in milliseconds and `A` the amount:
///
/// 1. **Effective time** `t = max(now, start)`; `elapsed = t − start`.
/// 2. **Roll.** If `elapsed < W` the state is as stored. If `W ≤ elapsed < 2W` it
///    becomes `[start + W, 0, current]`. If `elapsed ≥ 2W`, or the state is empty, it
///    is fresh: `[t, 0, 0]`. (Then `elapsed = t − start` again, below `W`.)
/// 3. **Usage** `used = current + ⌊previous × (W − elapsed) / W⌋` (128-bit product,
///    rounded down), `remaining = A − used` (0 if negative).
/// 4. **Hit / test** of `cost` passes when `cost ≤ remaining`; an admitted hit stores
///    the rolled state with `current + cost`. A test or a rejected hit writes nothing.
/// 5. **Retry** for `cost ≤ A`: the earliest `r ≥ t` at which `used(r) + cost ≤ A`,
///    computed exactly: if `cost + current ≤ A`, with `budget = A − cost − current`,
///    the least `e` with `⌊previous × (W − e) / W⌋ ≤ budget` is
///    `e = W − ⌊((budget + 1) × W − 1) / previous⌋` (0 when `previous = 0`, and at
///    least 0); if `e < W`, `r = start + e`. Otherwise, in the next window,
///    `e = min(W, that formula with previous := current and budget := A − cost)`,
///    `r = start + W + e`. Then `r = max(r, t)`; `None` past [`Timestamp::MAX`].
/// 6. **Reset** `reset_at` is `t` when `used = 0`, else the retry instant of a cost
///    of `A` (clamped to `MAX`).
/// 7. **Refund** `{cost, at}` (on the rolled state): when `start ≤ at < start + W`,
///    `current −= cost`; when `start − W ≤ at < start`, `previous −= cost` (both 0 if
///    negative); otherwise nothing changes and nothing is written. A hit counted in
///    the current window by a clock behind its start is refunded from the previous
///    count, which counts less: undos err towards counting.
/// 8. **TTL** of a write: until `start + 2W`, when the current window has also become
///    the previous one.
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

/// The state rolled forward to the effective time `t`.
#[derive(Debug, Clone, Copy)]
struct Windows {
    start: u64,
    current: u64,
    previous: u64,
    t: u64,
}

impl Windows {
    fn read(words: Option<[u64; 3]>, now: Timestamp, window: u64) -> Result<Windows, StateError> {
        let now = now.as_millis();
        let Some([start, current, previous]) = words else {
            return Ok(Windows::fresh(now));
        };
        if start > Timestamp::MAX.as_millis() {
            return Err(StateError {
                strategy: NAME,
                reason: "window start past Timestamp::MAX",
            });
        }
        let t = now.max(start);
        Ok(match (t - start) / window {
            0 => Windows {
                start,
                current,
                previous,
                t,
            },
            1 => Windows {
                start: start + window,
                current: 0,
                previous: current,
                t,
            },
            _ => Windows::fresh(t),
        })
    }

    fn fresh(t: u64) -> Windows {
        Windows {
            start: t,
            current: 0,
            previous: 0,
            t,
        }
    }

    /// `floor(previous × (window − elapsed) / window)`.
    fn weighted_previous(previous: u64, window: u64, elapsed: u64) -> u64 {
        if previous == 0 {
            return 0;
        }
        let left = u128::from(window.saturating_sub(elapsed));
        let share = div(u128::from(previous) * left, u128::from(window));
        u64::try_from(share).unwrap_or(u64::MAX)
    }

    fn used(&self, window: u64) -> u64 {
        let elapsed = self.t - self.start;
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
        let max_left = div(bound, u128::from(previous));
        let max_left = u64::try_from(max_left).unwrap_or(u64::MAX);
        window.saturating_sub(max_left)
    }

    /// The earliest time (ms) at which `used + cost <= amount`, for `cost <= amount`.
    fn retry_ms(&self, window: u64, amount: u64, cost: u64) -> u64 {
        if let Some(budget) = (amount - cost).checked_sub(self.current) {
            let e = Self::first_elapsed_within(self.previous, window, budget);
            if e < window {
                return self.start.saturating_add(e).max(self.t);
            }
        }
        // Next window: the current count becomes the weighted previous.
        let e = Self::first_elapsed_within(self.current, window, amount - cost);
        self.start
            .saturating_add(window)
            .saturating_add(e.min(window))
            .max(self.t)
    }

    /// What is counted at the effective time, `used` being [`used`](Self::used).
    fn usage_of(&self, used: u64, window: u64, amount: u64) -> Usage {
        Usage {
            remaining: amount.saturating_sub(used),
            // Zero usage is "a hit of the whole amount fits".
            reset_at: Timestamp::from_millis(if used == 0 {
                self.t
            } else {
                self.retry_ms(window, amount, amount)
            }),
        }
    }

    /// Applies a refund of `cost` for a hit at `at`; `false` when it concerns neither
    /// window.
    fn refund(&mut self, window: u64, cost: u64, at: u64) -> bool {
        if (self.start..self.start.saturating_add(window)).contains(&at) {
            self.current = self.current.saturating_sub(cost);
        } else if (self.start.saturating_sub(window)..self.start).contains(&at) {
            self.previous = self.previous.saturating_sub(cost);
        } else {
            return false;
        }
        true
    }

    fn store(self, state: &mut impl Words, now: Timestamp, window: u64, amount: u64) -> Transition {
        self.store_used(state, now, window, amount, self.used(window))
    }

    /// [`store`](Self::store) when the units counted after the operation are known.
    fn store_used(
        self,
        state: &mut impl Words,
        now: Timestamp,
        window: u64,
        amount: u64,
        used: u64,
    ) -> Transition {
        state.write(TAG, &[self.start, self.current, self.previous]);
        let usage = self.usage_of(used, window, amount);
        // The state matters until the current window has also become the previous.
        let until = self.start.saturating_add(window.saturating_mul(2));
        written(now, usage.remaining, usage.reset_at, until)
    }
}

/// [`SlidingWindow`] on any word store.
pub(super) fn run(
    limit: &RateLimit,
    state: &mut impl Words,
    op: Op,
    now: Timestamp,
) -> Result<Transition, StateError> {
    let (amount, window) = (limit.amount(), limit.window_ms());
    let mut w = Windows::read(state.read::<3>(TAG, NAME)?, now, window)?;
    let used = w.used(window);
    let remaining = amount.saturating_sub(used);
    match op {
        Op::Hit { cost } | Op::Test { cost } => {
            if cost > amount {
                Ok(w.usage_of(used, window, amount).unchanged(false, None))
            } else if cost > remaining {
                let retry = retry_instant(w.retry_ms(window, amount, cost));
                Ok(w.usage_of(used, window, amount).unchanged(false, retry))
            } else if matches!(op, Op::Test { .. }) {
                Ok(w.usage_of(used, window, amount).unchanged(true, None))
            } else {
                // The weights stay those of `t`: the hit adds `cost` to what is counted.
                w.current = w.current.saturating_add(cost);
                Ok(w.store_used(state, now, window, amount, used.saturating_add(cost)))
            }
        }
        Op::Refund { cost, at } => {
            if !w.refund(window, cost, at.as_millis()) {
                return Ok(w.usage_of(used, window, amount).unchanged(true, None));
            }
            Ok(w.store(state, now, window, amount))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Strategy;
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
