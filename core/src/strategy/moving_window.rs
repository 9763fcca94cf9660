//! Moving window: an exact log of the hits inside the trailing window.

use super::state::{check_tag, word_at};
use super::{never, ttl_until, BuiltIn, Op, Outcome, StateError, Strategy, Verdict};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 2;
const NAME: &str = "moving-window";
const RECORD: usize = 16;

/// Moving window (a sliding log): at most `amount` units in any window-long interval.
///
/// Exact, with no burst at window edges, at the price of state that grows with the
/// number of distinct milliseconds in which hits were admitted (at most `amount`
/// records of 16 bytes).
///
/// **Boundary rule** (the same for hit, test and stats): a hit admitted at `t` counts
/// during the half-open interval `[t, t + window)`. At exactly `t + window` it no longer
/// counts, which is also the `reset_at`/`retry_at` the verdicts report.
///
/// State: tag `2`, then records `[timestamp_ms, units]`, oldest first.
///
/// # Examples
///
/// ```
/// use limiter_core::strategy::{MovingWindow, Op, Strategy};
/// use limiter_core::{RateLimit, Timestamp};
///
/// let limit: RateLimit = "1 per second".parse()?;
/// let mut state = Vec::new();
/// let hit = Op::Hit { cost: 1 };
/// let t = Timestamp::from_millis;
/// assert!(MovingWindow.apply(&limit, &mut state, hit, t(5_000))?.verdict.allowed);
/// assert!(!MovingWindow.apply(&limit, &mut state, hit, t(5_999))?.verdict.allowed);
/// assert!(MovingWindow.apply(&limit, &mut state, hit, t(6_000))?.verdict.allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MovingWindow;

/// The records of a validated state body, in stored order.
fn records(body: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    body.chunks_exact(RECORD)
        .map(|r| (word_at(r), word_at(r.get(8..).unwrap_or_default())))
}

impl Strategy for MovingWindow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn builtin(&self) -> Option<BuiltIn> {
        Some(BuiltIn::MovingWindow)
    }

    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Outcome, StateError> {
        let amount = limit.amount();
        let window = limit.window_ms();
        let now_ms = now.as_millis();
        let live = |ts: u64| ts.saturating_add(window) > now_ms;

        let body: &[u8] = if state.is_empty() {
            &[]
        } else {
            check_tag(state, TAG, NAME)?
        };
        if body.len() % RECORD != 0 {
            return Err(StateError {
                strategy: NAME,
                reason: "wrong length",
            });
        }
        let (mut used, mut newest) = (0u64, None::<u64>);
        for (ts, units) in records(body).filter(|&(ts, _)| live(ts)) {
            used = used.saturating_add(units);
            newest = Some(newest.map_or(ts, |n: u64| n.max(ts)));
        }
        let reset_at = |newest: Option<u64>| {
            newest.map_or(now, |ts| Timestamp::from_millis(ts.saturating_add(window)))
        };
        let remaining = amount.saturating_sub(used);

        match op {
            Op::Hit { cost } | Op::Peek { cost } => {
                if cost > amount {
                    return Ok(never(remaining, reset_at(newest)));
                }
                if cost > remaining {
                    // Units that must leave the window before `cost` fits.
                    let need = used.saturating_add(cost) - amount;
                    let mut freed = 0u64;
                    let retry_at = records(body)
                        .filter(|&(ts, _)| live(ts))
                        .find(|&(_, units)| {
                            freed = freed.saturating_add(units);
                            freed >= need
                        })
                        .map(|(ts, _)| Timestamp::from_millis(ts.saturating_add(window)));
                    return Ok(Outcome {
                        verdict: Verdict {
                            allowed: false,
                            remaining,
                            reset_at: reset_at(newest),
                            retry_at,
                        },
                        write: None,
                    });
                }
                if matches!(op, Op::Peek { .. }) {
                    return Ok(Outcome {
                        verdict: Verdict {
                            allowed: true,
                            remaining,
                            reset_at: reset_at(newest),
                            retry_at: None,
                        },
                        write: None,
                    });
                }
                compact(state, live);
                append(state, now_ms, cost);
                let reset = reset_at(Some(now_ms.max(newest.unwrap_or(0))));
                Ok(Outcome {
                    verdict: Verdict {
                        allowed: true,
                        remaining: remaining - cost,
                        reset_at: reset,
                        retry_at: None,
                    },
                    write: Some(ttl_until(now, reset)),
                })
            }
            Op::Refund { cost, at } => {
                compact(state, live);
                let returned = take_units(state, at.as_millis(), cost);
                let newest = records(state.get(1..).unwrap_or_default())
                    .map(|(ts, _)| ts)
                    .max();
                let reset = reset_at(newest);
                Ok(Outcome {
                    verdict: Verdict {
                        allowed: true,
                        remaining: remaining.saturating_add(returned).min(amount),
                        reset_at: reset,
                        retry_at: None,
                    },
                    write: Some(ttl_until(now, reset)),
                })
            }
        }
    }
}

/// Keeps only the records whose timestamp satisfies `keep`, in place.
fn compact(state: &mut Vec<u8>, keep: impl Fn(u64) -> bool) {
    if state.is_empty() {
        state.push(TAG);
        return;
    }
    let mut write = 1;
    let mut read = 1;
    while read + RECORD <= state.len() {
        if keep(word_at(&state[read..read + 8])) {
            state.copy_within(read..read + RECORD, write);
            write += RECORD;
        }
        read += RECORD;
    }
    state.truncate(write);
}

/// Adds `units` at `ts`, merging with the last record when it has the same timestamp.
fn append(state: &mut Vec<u8>, ts: u64, units: u64) {
    let len = state.len();
    if len > RECORD && word_at(&state[len - RECORD..len - 8]) == ts {
        let merged = word_at(&state[len - 8..]).saturating_add(units);
        state[len - 8..].copy_from_slice(&merged.to_le_bytes());
        return;
    }
    state.extend_from_slice(&ts.to_le_bytes());
    state.extend_from_slice(&units.to_le_bytes());
}

/// Removes up to `units` recorded at `ts`, newest record first; returns how many.
fn take_units(state: &mut Vec<u8>, ts: u64, mut units: u64) -> u64 {
    let mut taken = 0;
    let mut offset = state.len();
    while units > 0 && offset > RECORD {
        offset -= RECORD;
        if word_at(&state[offset..offset + 8]) != ts {
            continue;
        }
        let have = word_at(&state[offset + 8..offset + RECORD]);
        let take = have.min(units);
        units -= take;
        taken += take;
        if take == have {
            state.drain(offset..offset + RECORD);
        } else {
            state[offset + 8..offset + RECORD].copy_from_slice(&(have - take).to_le_bytes());
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn per_minute(n: u64) -> RateLimit {
        RateLimit::per_minute(NonZeroU64::new(n).unwrap())
    }

    #[test]
    fn boundary_is_half_open_for_hit_and_peek() {
        let l = per_minute(10);
        let mut s = Vec::new();
        for _ in 0..10 {
            MovingWindow
                .apply(&l, &mut s, Op::Hit { cost: 1 }, at(50_000))
                .unwrap();
        }
        let peek = MovingWindow
            .apply(&l, &mut s, Op::Peek { cost: 1 }, at(109_999))
            .unwrap();
        assert!(!peek.verdict.allowed);
        assert_eq!(peek.verdict.retry_at, Some(at(110_000)));
        let peek = MovingWindow
            .apply(&l, &mut s, Op::Peek { cost: 1 }, at(110_000))
            .unwrap();
        assert!(peek.verdict.allowed);
        assert_eq!(peek.verdict.remaining, 10);
        assert!(
            MovingWindow
                .apply(&l, &mut s, Op::Hit { cost: 10 }, at(110_000))
                .unwrap()
                .verdict
                .allowed
        );
    }

    #[test]
    fn retry_waits_for_enough_units_to_leave() {
        let l = per_minute(5);
        let mut s = Vec::new();
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 2 }, at(0))
            .unwrap();
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 2 }, at(10_000))
            .unwrap();
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(20_000))
            .unwrap();
        let v = MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 3 }, at(30_000))
            .unwrap()
            .verdict;
        assert!(!v.allowed);
        // 3 units must leave: the 2 from t=0 (at 60 s) and 1 more from t=10 s (at 70 s).
        assert_eq!(v.retry_at, Some(at(70_000)));
        assert_eq!(v.reset_at, at(80_000));
    }

    #[test]
    fn records_merge_and_expire() {
        let l = per_minute(100);
        let mut s = Vec::new();
        for _ in 0..5 {
            MovingWindow
                .apply(&l, &mut s, Op::Hit { cost: 1 }, at(1))
                .unwrap();
        }
        assert_eq!(s.len(), 1 + RECORD);
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(60_001))
            .unwrap();
        assert_eq!(s.len(), 1 + RECORD, "the expired record is dropped");
    }

    #[test]
    fn refund_removes_the_units_of_that_hit() {
        let l = per_minute(3);
        let mut s = Vec::new();
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(0))
            .unwrap();
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 2 }, at(5))
            .unwrap();
        MovingWindow
            .apply(&l, &mut s, Op::Refund { cost: 2, at: at(5) }, at(6))
            .unwrap();
        let v = MovingWindow
            .apply(&l, &mut s, Op::Peek { cost: 1 }, at(6))
            .unwrap()
            .verdict;
        assert_eq!(v.remaining, 2);
        assert_eq!(v.reset_at, at(60_000));
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let l = per_minute(3);
        let mut s = vec![TAG, 1, 2, 3];
        assert!(MovingWindow
            .apply(&l, &mut s, Op::Peek { cost: 1 }, at(0))
            .is_err());
        let mut s = vec![9];
        assert!(MovingWindow
            .apply(&l, &mut s, Op::Peek { cost: 1 }, at(0))
            .is_err());
    }
}
