//! Fixed window: a counter that starts with the first hit and resets a window later.

use super::state::Words;
use super::{hit_or_test, retry_instant, written, BuiltIn, Op, StateError, Transition, Usage};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 1;
const NAME: &str = BuiltIn::FixedWindow.name();

/// Fixed window: at most `amount` units between the first hit and one window later.
///
/// The window starts at the first hit, not at a clock boundary, as in Python's `limits`.
/// Cheap and simple; a client may pass up to twice the amount across the end of one
/// window and the start of the next. Unlike `limits`, a rejected hit does not count.
///
/// # State and rules
///
/// State: tag `1`, then `[start, count]` (17 bytes): the window's start in
/// milliseconds and the units admitted in it. Any other length or tag, or a `start`
/// past [`Timestamp::MAX`], is a [`StateError`].
///
/// With `W` the window in milliseconds and `A` the amount:
///
/// 1. **Effective time** `t = max(now, start)` (a clock that steps back stays in the
///    key's current window).
/// 2. **Window.** If the state is empty or `t ≥ start + W` (the window has ended),
///    the window is fresh: `start = t`, `count = 0`. Windows are half-open,
///    `[start, start + W)`; past [`Timestamp::MAX`] a window never ends.
/// 3. **Hit / test** of `cost`: `remaining = A − count` (0 if negative). It passes when
///    `cost ≤ remaining`; an admitted hit stores `[start, count + cost]`.
///    A rejected hit's `retry_at` is `start + W` (`None` when past `MAX`, or when
///    `cost > A`). A test or a rejected hit writes nothing, even over a fresh window.
/// 4. **Refund** `{cost, at}`: when `start ≤ at < start + W` (the undone hit was
///    counted in this window) it stores `[start, count − cost]` (0 if negative);
///    otherwise it changes and writes nothing. A hit from a clock that was behind the
///    window's start is counted in the window but its refund gives nothing back: undos
///    err towards counting.
/// 5. **Verdict.** `reset_at` is `start + W` (clamped to `MAX`) when `count > 0`, else
///    `t`. **TTL** of a write: until `start + W`.
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

/// The current window at the effective time.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    count: u64,
    /// The effective time.
    t: u64,
}

impl Window {
    fn read(words: Option<[u64; 2]>, now: Timestamp, window: u64) -> Result<Window, StateError> {
        let now = now.as_millis();
        match words {
            Some([start, _]) if start > Timestamp::MAX.as_millis() => Err(StateError {
                strategy: NAME,
                reason: "window start past Timestamp::MAX",
            }),
            Some([start, count]) if now.max(start) < start.saturating_add(window) => Ok(Window {
                start,
                count,
                t: now.max(start),
            }),
            Some([start, _]) => Ok(Window::fresh(now.max(start))),
            None => Ok(Window::fresh(now)),
        }
    }

    fn fresh(t: u64) -> Window {
        Window {
            start: t,
            count: 0,
            t,
        }
    }

    fn end(&self, window: u64) -> u64 {
        self.start.saturating_add(window)
    }

    fn usage(&self, amount: u64, window: u64) -> Usage {
        Usage {
            remaining: amount.saturating_sub(self.count),
            reset_at: Timestamp::from_millis(if self.count == 0 {
                self.t
            } else {
                self.end(window)
            }),
        }
    }

    fn store(self, state: &mut impl Words, now: Timestamp, amount: u64, window: u64) -> Transition {
        state.write(TAG, &[self.start, self.count]);
        let usage = self.usage(amount, window);
        written(now, usage.remaining, usage.reset_at, self.end(window))
    }
}

/// [`FixedWindow`] on any word store.
pub(super) fn run(
    limit: &RateLimit,
    state: &mut impl Words,
    op: Op,
    now: Timestamp,
) -> Result<Transition, StateError> {
    let (amount, window) = (limit.amount(), limit.window_ms());
    let mut w = Window::read(state.read::<2>(TAG, NAME)?, now, window)?;
    let usage = w.usage(amount, window);
    match op {
        Op::Hit { cost } | Op::Test { cost } => hit_or_test(
            &mut w,
            (amount, cost, matches!(op, Op::Test { .. })),
            usage,
            |w| Ok(retry_instant(w.end(window))),
            |w| {
                w.count = w.count.saturating_add(cost);
                Ok(w.store(state, now, amount, window))
            },
        ),
        Op::Refund { cost, at } => {
            if !(w.start..w.end(window)).contains(&at.as_millis()) {
                return Ok(usage.unchanged(true, None));
            }
            w.count = w.count.saturating_sub(cost);
            Ok(w.store(state, now, amount, window))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Strategy;
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
