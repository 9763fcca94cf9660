//! GCRA, the generic cell rate algorithm: a token bucket kept as one timestamp.

use super::state::Words;
use super::{div, retry_instant, written, BuiltIn, Op, StateError, Transition, Usage};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 4;
const NAME: &str = BuiltIn::Gcra.name();

/// GCRA: `amount` units per window, refilled smoothly, with a burst of `amount`, or
/// of the limit's own [burst](RateLimit::with_burst) (`"10 per second burst 50"`).
///
/// Equivalent to a token bucket of capacity `burst` that gains one token every
/// `window / amount`, but its state is a single "theoretical arrival time" (TAT): the
/// instant at which the bucket would be full again.
///
/// # State and rules
///
/// Time is counted in **ticks** of `1 / A` milliseconds (`A` the amount), so that one
/// unit is exactly `W` ticks (`W` the window in milliseconds), the bucket `C = B × W`
/// ticks (`B` the burst, `A` unless the limit sets its own), and no rounding ever admits
/// a unit too many. Arithmetic needs 128 bits. `C` is also written `[q, r]`:
/// `C = q × A + r` with `r < A` (`[W, 0]` when `B = A`); the rules below use it where
/// they compare the TAT with `C`, so that a script engine with double-precision numbers
/// can follow them without ever forming `ms × A`.
///
/// State: tag `4`, then the TAT as `[ms, ticks]` (17 bytes): `TAT = ms × A + ticks`
/// ticks, with `ticks < A`. A wrong length or tag, `ticks ≥ A`, or a TAT past
/// `Timestamp::MAX × A + C` (`ms > MAX + q`, or `ms = MAX + q` and `ticks > r`: more
/// than any write produces) is a [`StateError`]. An empty state is `TAT = 0`.
/// For realistic times every word is far below 2⁵³, so a script engine with
/// double-precision numbers can keep the layout; only within one window of
/// `Timestamp::MAX` can the milliseconds word exceed it.
///
/// 1. **Effective time** `t = max(now, ⌈(TAT − C) / A⌉)` in ms (the second term only
///    when `TAT > C`, that is `ms > q`, or `ms = q` and `ticks > r`; it equals
///    `ms − q + (1 if ticks > r else 0)`), and `n = t × A` ticks. This never changes the
///    verdict of a cost of 1 or more; it keeps refunds from a clock that stepped back
///    honest.
/// 2. **Usage** `used = max(TAT − n, 0)` ticks; `remaining = ⌊(C − used) / W⌋`.
/// 3. **Hit / test** of `cost`: a cost above `B` never passes (`retry_at` `None`).
///    Otherwise, with `new = max(TAT, n) + cost × W`, it passes when `new − n ≤ C` (the
///    same as `cost ≤ remaining`). An admitted hit stores `new`. A rejected hit's
///    `retry_at` is `⌈(new − C) / A⌉` ms (`new_ms − q + (1 if new_ticks > r else 0)`;
///    `None` past [`Timestamp::MAX`]); a test or a rejected hit writes nothing.
/// 4. **Refund** `{cost, at}` gives back only what time has not yet paid back:
///    `give = max(0, cost × W − max(0, t − at) × A)` ticks, and stores
///    `max(TAT − give, n)`. When `TAT ≤ n` (nothing counted) nothing changes and
///    nothing is written. Exact when the refunding clock is not behind the clocks
///    that used the key since the undone hit; a refund from a clock further behind
///    may give back up to that difference.
/// 5. **Verdict.** `reset_at = t + ⌈used / A⌉` ms (after the operation for a write,
///    clamped to `MAX`). **TTL** of a write: until that `reset_at`.
///
/// In any window-long interval of effective time the GCRA admits at most
/// `B + ⌊(W − 1) × A / W⌋` units: a burst of `B`, then one unit every `W / A` ms.
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

fn to_u64(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A bucket read at its effective time.
///
/// The TAT is kept as stored, `[ms, ticks]` with `ticks < A`, and the effective time
/// `n = t × A` is `[t, 0]` in the same form, so that the rules' roundings to whole
/// milliseconds (`⌈x / A⌉` of a difference of such times) need no division: a hit
/// divides once, for `remaining`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The stored TAT's milliseconds (0 when empty).
    ms: u64,
    /// The stored TAT's ticks beyond `ms` (below `per_ms`).
    ticks: u64,
    /// The effective time in ms.
    t: u64,
    /// `max(TAT − n, 0)`, in ticks.
    used: u128,
    /// Ticks per unit (the window in ms).
    unit: u64,
    /// Ticks per ms (the amount).
    per_ms: u64,
    /// The bucket's size in ticks, `C = B × W`.
    capacity: u128,
    /// `C` as `[q, r]`: `C = q × A + r`, `r < A`.
    q: u128,
    r: u64,
}

/// `[ms, ticks]` after `t` (ms) as ticks beyond `[t, 0]`: `(ms − t) × A + ticks`, or 0
/// when not after it.
fn ticks_after(ms: u64, ticks: u64, t: u64, per_ms: u64) -> u128 {
    if ms > t || (ms == t && ticks > 0) {
        u128::from(ms - t) * u128::from(per_ms) + u128::from(ticks)
    } else {
        0
    }
}

/// Whether `[ms, ticks]` lies after `[q, r]` (both with ticks below the amount).
fn above([ms, ticks]: [u64; 2], q: u128, r: u64) -> bool {
    let ms = u128::from(ms);
    ms > q || (ms == q && ticks > r)
}

/// `⌈([ms, ticks] − [q, r]) / A⌉` in ms when `[ms, ticks]` lies after `[q, r]`, else
/// 0: `ms − q`, plus 1 when `ticks > r`.
fn instant_past([ms, ticks]: [u64; 2], q: u128, r: u64) -> u64 {
    if above([ms, ticks], q, r) {
        to_u64(u128::from(ms) - q + u128::from(ticks > r))
    } else {
        0
    }
}

/// The instant at which `[ms, ticks]` lies, rounded up to the millisecond.
fn ceil_ms(ms: u64, ticks: u64) -> u64 {
    ms.saturating_add(u64::from(ticks > 0))
}

impl Bucket {
    fn read(
        words: Option<[u64; 2]>,
        limit: &RateLimit,
        now: Timestamp,
    ) -> Result<Bucket, StateError> {
        let per_ms = limit.amount();
        let unit = limit.window_ms();
        let capacity = u128::from(limit.burst()) * u128::from(unit);
        let (q, r) = if limit.burst() == per_ms {
            (u128::from(unit), 0)
        } else {
            let q = capacity / u128::from(per_ms);
            (q, to_u64(capacity - q * u128::from(per_ms)))
        };
        let corrupt = |reason| StateError {
            strategy: NAME,
            reason,
        };
        let (ms, ticks) = match words {
            None => (0, 0),
            Some([_, ticks]) if ticks >= per_ms => {
                return Err(corrupt("ticks not below the amount"))
            }
            Some([ms, ticks]) => (ms, ticks),
        };
        // TAT > MAX × A + C, with C = q × A + r and ticks, r < A.
        if above([ms, ticks], u128::from(Timestamp::MAX.as_millis()) + q, r) {
            return Err(corrupt("TAT past Timestamp::MAX plus a window"));
        }
        let seen = instant_past([ms, ticks], q, r);
        let t = now.as_millis().max(seen);
        Ok(Bucket {
            ms,
            ticks,
            t,
            used: ticks_after(ms, ticks, t, per_ms),
            unit,
            per_ms,
            capacity,
            q,
            r,
        })
    }

    /// `⌊(C − used) / W⌋`, 0 when negative.
    fn remaining(&self, used: u128) -> u64 {
        to_u64(div(
            self.capacity.saturating_sub(used),
            u128::from(self.unit),
        ))
    }

    /// The instant at which a TAT `[ms, ticks]` with `used` ticks counted runs out:
    /// `t + ⌈used / A⌉`.
    fn reset_ms(&self, ms: u64, ticks: u64, used: u128) -> u64 {
        if used > 0 {
            ceil_ms(ms, ticks)
        } else {
            self.t
        }
    }

    /// What is counted now, `remaining` being [`remaining`](Self::remaining) of it.
    fn usage(&self, remaining: u64) -> Usage {
        Usage {
            remaining,
            reset_at: Timestamp::from_millis(self.reset_ms(self.ms, self.ticks, self.used)),
        }
    }

    /// The TAT after a hit of `cost` (at most the burst), `max(TAT, n) + cost × W`, as
    /// `[ms, ticks]`.
    fn after_hit(&self, cost: u64) -> (u64, u64) {
        let (ms, ticks) = if self.used > 0 {
            (self.ms, self.ticks)
        } else {
            (self.t, 0)
        };
        let per_ms = u128::from(self.per_ms);
        let add = u128::from(cost) * u128::from(self.unit);
        let (whole, rest) = if add < per_ms {
            (0, add)
        } else if per_ms == 1 {
            (add, 0)
        } else {
            let whole = div(add, per_ms);
            (whole, add - whole * per_ms)
        };
        let mut ms = ms.saturating_add(to_u64(whole));
        let mut ticks = u128::from(ticks) + rest;
        if ticks >= per_ms {
            ticks -= per_ms;
            ms = ms.saturating_add(1);
        }
        (ms, to_u64(ticks))
    }

    /// For a rejected hit of `cost` (at most the burst): `⌈(new − C) / A⌉`, and at
    /// least `t`.
    fn retry(&self, cost: u64) -> Option<Timestamp> {
        let (ms, ticks) = self.after_hit(cost);
        retry_instant(instant_past([ms, ticks], self.q, self.r).max(self.t))
    }

    /// Stores `[ms, ticks]` and answers with the bucket that holds it.
    fn store(
        &self,
        state: &mut impl Words,
        now: Timestamp,
        (ms, ticks): (u64, u64),
        remaining: u64,
    ) -> Transition {
        state.write(TAG, &[ms, ticks]);
        let used = ticks_after(ms, ticks, self.t, self.per_ms);
        let reset = self.reset_ms(ms, ticks, used);
        written(now, remaining, Timestamp::from_millis(reset), reset)
    }

    /// The TAT after a refund of `cost` for a hit at `at`:
    /// `max(TAT − max(0, cost × W − max(0, t − at) × A), n)`, as `[ms, ticks]`.
    fn after_refund(&self, cost: u64, at: Timestamp) -> (u64, u64) {
        let per_ms = u128::from(self.per_ms);
        let tat = u128::from(self.ms) * per_ms + u128::from(self.ticks);
        let n = u128::from(self.t) * per_ms;
        let elapsed = u128::from(self.t.saturating_sub(at.as_millis())) * per_ms;
        let give = (u128::from(cost) * u128::from(self.unit)).saturating_sub(elapsed);
        let tat = tat.saturating_sub(give).max(n);
        let ms = div(tat, per_ms);
        (to_u64(ms), to_u64(tat - ms * per_ms))
    }
}

/// [`Gcra`] on any word store.
pub(super) fn run(
    limit: &RateLimit,
    state: &mut impl Words,
    op: Op,
    now: Timestamp,
) -> Result<Transition, StateError> {
    let b = Bucket::read(state.read::<2>(TAG, NAME)?, limit, now)?;
    let burst = limit.burst();
    match op {
        Op::Hit { cost } | Op::Test { cost } => {
            let remaining = b.remaining(b.used);
            if cost > burst {
                Ok(b.usage(remaining).unchanged(false, None))
            } else if cost > remaining {
                Ok(b.usage(remaining).unchanged(false, b.retry(cost)))
            } else if matches!(op, Op::Test { .. }) {
                Ok(b.usage(remaining).unchanged(true, None))
            } else {
                // `⌊(C − used − cost × W) / W⌋ = ⌊(C − used) / W⌋ − cost`.
                Ok(b.store(state, now, b.after_hit(cost), remaining - cost))
            }
        }
        Op::Refund { .. } if b.used == 0 => Ok(b.usage(b.remaining(0)).unchanged(true, None)),
        Op::Refund { cost, at } => {
            let (ms, ticks) = b.after_refund(cost, at);
            let remaining = b.remaining(ticks_after(ms, ticks, b.t, b.per_ms));
            Ok(b.store(state, now, (ms, ticks), remaining))
        }
    }
}

/// The 128-bit implementation these rules were first written as, kept to check the
/// millisecond-and-tick arithmetic above against it.
#[cfg(test)]
mod reference {
    #![allow(clippy::unwrap_used)]
    use super::super::state::{read_words, write_words};
    use super::super::{hit_or_test, retry_instant, written, Op, StateError, Transition, Usage};
    use super::{NAME, TAG};
    use crate::clock::Timestamp;
    use crate::limit::RateLimit;

    /// `n / d` (`d > 0`), in 64 bits when both fit: a 128-bit division is a slow library
    /// call, and on the hot path the operands are differences that nearly always fit.
    fn div(n: u128, d: u128) -> u128 {
        match (u64::try_from(n), u64::try_from(d)) {
            (Ok(n), Ok(d)) => u128::from(n / d),
            _ => n / d,
        }
    }

    /// `⌈n / d⌉` (`d > 0`).
    fn div_ceil(n: u128, d: u128) -> u128 {
        let q = div(n, d);
        if q * d < n {
            q + 1
        } else {
            q
        }
    }

    fn to_u64(n: u128) -> u64 {
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// A bucket read at its effective time, all in ticks.
    #[derive(Debug, Clone, Copy)]
    struct Bucket {
        /// The stored TAT (0 when empty).
        tat: u128,
        /// The effective time in ms.
        t: u64,
        /// The effective time in ticks.
        n: u128,
        /// Ticks per unit (the window in ms).
        unit: u128,
        /// Ticks per ms (the amount).
        per_ms: u128,
        /// The bucket's size in ticks.
        capacity: u128,
    }

    impl Bucket {
        fn read(state: &[u8], limit: &RateLimit, now: Timestamp) -> Result<Bucket, StateError> {
            let per_ms = u128::from(limit.amount());
            let unit = u128::from(limit.window_ms());
            let capacity = u128::from(limit.burst()) * unit;
            let corrupt = |reason| StateError {
                strategy: NAME,
                reason,
            };
            let tat = match read_words::<2>(state, TAG, NAME)? {
                None => 0,
                Some([_, ticks]) if u128::from(ticks) >= per_ms => {
                    return Err(corrupt("ticks not below the amount"))
                }
                Some([ms, ticks]) => u128::from(ms) * per_ms + u128::from(ticks),
            };
            if tat > u128::from(Timestamp::MAX.as_millis()) * per_ms + capacity {
                return Err(corrupt("TAT past Timestamp::MAX plus a window"));
            }
            let seen = to_u64(div_ceil(tat.saturating_sub(capacity), per_ms));
            let t = now.as_millis().max(seen);
            Ok(Bucket {
                tat,
                t,
                n: u128::from(t) * per_ms,
                unit,
                per_ms,
                capacity,
            })
        }

        /// The instant `ticks` ticks after the effective time, in ms, rounded up.
        fn after(&self, ticks: u128) -> u64 {
            self.t.saturating_add(to_u64(div_ceil(ticks, self.per_ms)))
        }

        fn usage_at(&self, tat: u128) -> Usage {
            let used = tat.saturating_sub(self.n);
            Usage {
                remaining: to_u64(div(self.capacity.saturating_sub(used), self.unit)),
                reset_at: Timestamp::from_millis(self.after(used)),
            }
        }

        /// The TAT after a hit of `cost`.
        fn after_hit(&self, cost: u64) -> u128 {
            self.tat.max(self.n) + u128::from(cost) * self.unit
        }

        fn retry(&self, cost: u64) -> Option<Timestamp> {
            let late = self.after_hit(cost) - self.n - self.capacity;
            retry_instant(self.after(late))
        }

        /// The TAT after a refund of `cost` for a hit at `at`.
        fn after_refund(&self, cost: u64, at: Timestamp) -> u128 {
            let elapsed = u128::from(self.t.saturating_sub(at.as_millis())) * self.per_ms;
            let give = (u128::from(cost) * self.unit).saturating_sub(elapsed);
            self.tat.saturating_sub(give).max(self.n)
        }

        fn store(&self, state: &mut Vec<u8>, now: Timestamp, tat: u128) -> Transition {
            let ms = div(tat, self.per_ms);
            write_words(state, TAG, &[to_u64(ms), to_u64(tat - ms * self.per_ms)]);
            let usage = self.usage_at(tat);
            let until = self.after(tat - self.n);
            written(now, usage.remaining, usage.reset_at, until)
        }
    }

    pub(super) fn apply(
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Transition, StateError> {
        let mut b = Bucket::read(state, limit, now)?;
        let usage = b.usage_at(b.tat);
        match op {
            Op::Hit { cost } | Op::Test { cost } => hit_or_test(
                &mut b,
                (limit.burst(), cost, matches!(op, Op::Test { .. })),
                usage,
                |b| Ok(b.retry(cost)),
                |b| Ok(b.store(state, now, b.after_hit(cost))),
            ),
            Op::Refund { .. } if b.tat <= b.n => Ok(usage.unchanged(true, None)),
            Op::Refund { cost, at } => Ok(b.store(state, now, b.after_refund(cost, at))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Unit;
    use crate::strategy::Strategy;

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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Random runs, over the whole time domain and every size of limit, decide and
        /// write exactly as the 128-bit reference.
        #[test]
        fn matches_the_128_bit_reference(
            amount in proptest::prop_oneof![1u64..20, 1u64..2_000_000_000, proptest::prelude::Just(u64::MAX)],
            window in proptest::prop_oneof![1u64..5_000, 1u64..=crate::limit::MAX_WINDOW_MS],
            start in proptest::prop_oneof![0u64..10_000, proptest::prelude::Just(Timestamp::MAX.as_millis() - 100_000)],
            burst in proptest::prop_oneof![proptest::prelude::Just(0u64), 1u64..50, 1u64..=u64::MAX],
            steps in proptest::collection::vec((0u64..4, 0u64..3_000, 0u64..40, 0u64..6), 1..40),
        ) {
            let limit = RateLimit::new(amount, window, Unit::Millisecond).unwrap();
            let limit = match std::num::NonZeroU64::new(burst) {
                Some(burst) => limit.with_burst(burst).unwrap_or(limit),
                None => limit,
            };
            let amount = limit.burst();
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            let mut now = start;
            for (kind, gap, cost, back) in steps {
                now = now.saturating_add(gap);
                let cost = match cost { 0..=29 => 1 + cost % 4, 30..=35 => amount, _ => amount.saturating_add(1) };
                let op = match kind {
                    0 | 1 => Op::Hit { cost },
                    2 => Op::Test { cost },
                    _ => Op::Refund { cost, at: at(now.saturating_sub(back * 100)) },
                };
                // Now and then a clock that is behind.
                let t = at(now.saturating_sub(back * 37 * u64::from(back > 3)));
                let a = Gcra.apply(&limit, &mut ours, op, t);
                let b = reference::apply(&limit, &mut theirs, op, t);
                proptest::prop_assert_eq!(a, b);
                proptest::prop_assert_eq!(&ours, &theirs);
            }
        }
    }
}
