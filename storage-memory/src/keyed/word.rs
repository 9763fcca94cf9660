//! GCRA on one 64-bit word: the rules of [`Gcra`](limiter_core::strategy::Gcra), in
//! the units a [`KeyedLimiter`](super::KeyedLimiter) keeps.
//!
//! The strategy counts time in ticks of `1 / A` ms (`A` the amount) and keeps the
//! theoretical arrival time (TAT) as `[ms, ticks]`. Here the TAT is one word, the
//! ticks since the limiter's epoch (its clock's time when it was made), and a tick is
//! `g / A` ms with `g = gcd(A, W)` (`W` the window in ms): every TAT the rules produce
//! is a whole number of those (`t × A + k × W`, all multiples of `g`), so dividing
//! every quantity by `g` changes no comparison and no rounding. A word of `0` is the
//! empty state.
//!
//! Past the epoch plus a horizon (at least 2⁴⁰ ms, about 34 years; see
//! [`Word::new`]) the limiter's time stands still, as the strategy's does at
//! [`Timestamp::MAX`]; a time before the epoch counts as the epoch.

use limiter_core::strategy::Verdict;
use limiter_core::{RateLimit, Timestamp};

/// The shortest horizon a limit may have: 2⁴⁰ ms, about 34.8 years.
const MIN_HORIZON_MS: u64 = 1 << 40;

/// One limit's numbers, reduced by `gcd(A, W)`, and the epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Word {
    /// Ticks per ms, `A / g`.
    per_ms: u64,
    /// Ticks per unit, `W / g`.
    unit: u64,
    /// The bucket in ticks, `C = B × W / g`.
    capacity: u64,
    /// The burst `B`: the largest cost that ever passes.
    burst: u64,
    /// The epoch, in ms.
    epoch: u64,
    /// The ms past the epoch where time stands still: every word stays below
    /// `u64::MAX` up to there.
    horizon: u64,
}

/// What one operation does to a word: the verdict, and the word to store if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) verdict: Verdict,
    pub(crate) write: Option<u64>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Word {
    /// The numbers of `limit` from `epoch` on; `None` when one word cannot hold its
    /// states for [`MIN_HORIZON_MS`]: when `A / gcd(A, W)` is about 2²⁴ or more (an
    /// amount of millions per window that shares few factors with the window's ms).
    pub(crate) fn new(limit: &RateLimit, epoch: Timestamp) -> Option<Word> {
        let (amount, window) = (limit.amount().max(1), limit.window_ms().max(1));
        let g = gcd(amount, window);
        let (per_ms, unit) = (amount / g, window / g);
        let burst = limit.burst();
        let capacity = burst.checked_mul(unit)?;
        // Every word is at most `n + 2 × C` (`n` the time in ticks): see `step`.
        let room = u64::MAX.checked_sub(capacity.checked_mul(2)?)?;
        let horizon = room / per_ms;
        (horizon >= MIN_HORIZON_MS).then_some(Word {
            per_ms,
            unit,
            capacity,
            burst,
            epoch: epoch.as_millis(),
            horizon,
        })
    }

    /// A timestamp `ms` past the epoch, clamped as the strategy clamps.
    fn at(&self, ms: u64) -> Timestamp {
        Timestamp::from_millis(self.epoch.saturating_add(ms))
    }

    /// The time in ms past the epoch, within the horizon, and as ticks.
    #[inline]
    fn now(&self, now: Timestamp) -> (u64, u64) {
        let t = now.as_millis().saturating_sub(self.epoch).min(self.horizon);
        (t, t * self.per_ms)
    }

    /// Whether a word counts nothing at `now`: such a word decides exactly as the
    /// empty word, at `now` and after.
    #[inline]
    pub(crate) fn is_spent(&self, word: u64, now: Timestamp) -> bool {
        word <= self.now(now).1
    }

    /// A hit (`write` true) or a test of `cost` (1 or more) on `word` at `now`: the
    /// strategy's rules 1 to 3 and 5.
    #[inline]
    pub(crate) fn step(&self, word: u64, cost: u64, write: bool, now: Timestamp) -> Step {
        let (mut t, mut n) = self.now(now);
        // Rule 1: a TAT more than a bucket ahead of `now` (the clock stepped back)
        // moves the effective time to `⌈(TAT − C) / A⌉`. `n + C` cannot overflow.
        if word > n + self.capacity {
            t = (word - self.capacity).div_ceil(self.per_ms);
            n = t * self.per_ms;
        }
        // Rule 2, with `used ≤ C` from here on.
        let used = word.saturating_sub(n);
        let remaining = (self.capacity - used) / self.unit;
        let reset = if used > 0 {
            word.div_ceil(self.per_ms)
        } else {
            t
        };
        let unchanged = |allowed, retry_at| Step {
            verdict: Verdict {
                allowed,
                remaining,
                reset_at: self.at(reset),
                retry_at,
            },
            write: None,
        };
        if cost > self.burst {
            return unchanged(false, None);
        }
        // Rule 3. `max(TAT, n) ≤ n + C` and `cost × W ≤ C`: no overflow below the
        // horizon.
        let new = word.max(n) + cost * self.unit;
        if cost > remaining {
            // Rejected: `new − n > C`, so `⌈(new − C) / A⌉` lies after `t`.
            let retry = (new - self.capacity).div_ceil(self.per_ms);
            let retry_at = self
                .epoch
                .checked_add(retry)
                .and_then(Timestamp::checked_from_millis);
            return unchanged(false, retry_at);
        }
        if !write {
            return unchanged(true, None);
        }
        Step {
            verdict: Verdict {
                allowed: true,
                remaining: remaining - cost,
                reset_at: self.at(new.div_ceil(self.per_ms)),
                retry_at: None,
            },
            write: Some(new),
        }
    }
}
