//! Moving window: an exact log of the hits inside the trailing window.

use super::state::{check_tag, word_at};
use super::{never, ttl_until, BuiltIn, Op, StateError, Strategy, Transition, Verdict};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 2;
const NAME: &str = "moving-window";
const RECORD: usize = 16;

/// Moving window (a sliding log): at most `amount` units in any window-long interval.
///
/// Exact, with no burst at window edges, at the price of state that grows with the
/// number of distinct milliseconds in which hits were admitted within one window (at
/// most `amount` records of 16 bytes). Deciding is amortized O(1): the log keeps the
/// count of its live units, expired records are skipped from the front and dropped in
/// bulk, and new hits are appended at the end.
///
/// **Boundary rule** (the same for hit, test and stats): a hit admitted at `t` counts
/// during the half-open interval `[t, t + window)`. At exactly `t + window` it no longer
/// counts, which is also the `reset_at`/`retry_at` the verdicts report.
///
/// A hit is recorded at the later of now and the newest record, so the log stays
/// sorted even if clocks step back; such a hit then counts a little longer, never
/// shorter.
///
/// State: tag `2`, a header `[head, live_units]`, then records `[timestamp_ms, units]`,
/// oldest first. Records before index `head` have expired; `live_units` is the sum of
/// the units from `head` on.
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

/// Bytes before the first record: the tag, `head` and `live_units`.
const HEADER: usize = 17;

/// A validated log: `state` holds a header and `len` records.
struct Log<'a> {
    state: &'a mut Vec<u8>,
    len: usize,
}

impl<'a> Log<'a> {
    /// Reads a non-empty `state` and returns it with its stored `head` and
    /// `live_units`. Opening changes nothing.
    fn open(state: &'a mut Vec<u8>) -> Result<(Log<'a>, usize, u64), StateError> {
        let corrupt = |reason| StateError {
            strategy: NAME,
            reason,
        };
        let body = check_tag(state, TAG, NAME)?;
        if body.len() < HEADER - 1 || (body.len() + 1 - HEADER) % RECORD != 0 {
            return Err(corrupt("wrong length"));
        }
        let len = (body.len() + 1 - HEADER) / RECORD;
        let head = usize::try_from(word_at(body)).unwrap_or(usize::MAX);
        let units = word_at(body.get(8..).unwrap_or_default());
        if head > len {
            return Err(corrupt("head past the end"));
        }
        Ok((Log { state, len }, head, units))
    }

    fn record(&self, i: usize) -> (u64, u64) {
        let at = HEADER + i * RECORD;
        let bytes = self.state.get(at..at + RECORD).unwrap_or_default();
        (word_at(bytes), word_at(bytes.get(8..).unwrap_or_default()))
    }

    fn set_units(&mut self, i: usize, units: u64) {
        let at = HEADER + i * RECORD + 8;
        if let Some(slot) = self.state.get_mut(at..at + 8) {
            slot.copy_from_slice(&units.to_le_bytes());
        }
    }

    fn push(&mut self, ts: u64, units: u64) {
        self.state.extend_from_slice(&ts.to_le_bytes());
        self.state.extend_from_slice(&units.to_le_bytes());
        self.len += 1;
    }

    /// Drops the records before `head` once they are at least half the log, so each
    /// record is moved O(1) times overall. Returns the new head.
    fn compact(&mut self, head: usize) -> usize {
        if head == 0 || head * 2 < self.len {
            return head;
        }
        self.state.drain(HEADER..HEADER + head * RECORD);
        self.len -= head;
        0
    }

    /// Removes the records from `head` on whose units have dropped to zero.
    fn remove_empty_from(&mut self, head: usize) {
        let mut kept = HEADER + head * RECORD;
        for i in head..self.len {
            let (ts, units) = self.record(i);
            if units > 0 {
                self.state[kept..kept + 8].copy_from_slice(&ts.to_le_bytes());
                self.state[kept + 8..kept + RECORD].copy_from_slice(&units.to_le_bytes());
                kept += RECORD;
            }
        }
        self.state.truncate(kept);
        self.len = (kept - HEADER) / RECORD;
    }

    fn write_header(&mut self, head: usize, units: u64) {
        let head = u64::try_from(head).unwrap_or(u64::MAX);
        self.state[1..9].copy_from_slice(&head.to_le_bytes());
        self.state[9..HEADER].copy_from_slice(&units.to_le_bytes());
    }
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
    ) -> Result<Transition, StateError> {
        let amount = limit.amount();
        let window = limit.window_ms();
        let now_ms = now.as_millis();
        let live = |ts: u64| ts.saturating_add(window) > now_ms;
        let expires = |ts: u64| Timestamp::from_millis(ts.saturating_add(window));

        if state.is_empty() {
            let empty = Verdict {
                allowed: true,
                remaining: amount,
                reset_at: now,
                retry_at: None,
            };
            match op {
                Op::Hit { cost } if cost <= amount => {
                    state.push(TAG);
                    state.extend_from_slice(&[0; HEADER - 1]);
                }
                Op::Refund { .. } => {
                    return Ok(Transition {
                        verdict: empty,
                        write: None,
                    })
                }
                Op::Hit { cost } | Op::Test { cost } if cost > amount => {
                    return Ok(never(amount, now))
                }
                _ => {
                    return Ok(Transition {
                        verdict: empty,
                        write: None,
                    })
                }
            }
        }
        // Opening and reading change nothing: peeks and rejections leave `state` as is.
        let (mut log, mut head, mut used) = Log::open(state)?;
        while head < log.len {
            let (ts, units) = log.record(head);
            if live(ts) {
                break;
            }
            used = used.saturating_sub(units);
            head += 1;
        }
        let newest = (head < log.len).then(|| log.record(log.len - 1).0);
        let reset_at = newest.map_or(now, expires);
        let remaining = amount.saturating_sub(used);

        match op {
            Op::Hit { cost } | Op::Test { cost } => {
                if cost > amount {
                    return Ok(never(remaining, reset_at));
                }
                if cost > remaining {
                    // Units that must leave the window before `cost` fits.
                    let need = used.saturating_add(cost) - amount;
                    let mut freed = 0u64;
                    let retry_at =
                        (head..log.len)
                            .map(|i| log.record(i))
                            .find_map(|(ts, units)| {
                                freed = freed.saturating_add(units);
                                (freed >= need).then(|| expires(ts))
                            });
                    return Ok(Transition {
                        verdict: Verdict {
                            allowed: false,
                            remaining,
                            reset_at,
                            retry_at,
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
                let ts = newest.map_or(now_ms, |newest| newest.max(now_ms));
                if newest == Some(ts) {
                    let (_, units) = log.record(log.len - 1);
                    log.set_units(log.len - 1, units.saturating_add(cost));
                } else {
                    log.push(ts, cost);
                }
                let used = used.saturating_add(cost);
                let head = log.compact(head);
                log.write_header(head, used);
                let reset = expires(ts);
                Ok(Transition {
                    verdict: Verdict {
                        allowed: true,
                        remaining: amount.saturating_sub(used),
                        reset_at: reset,
                        retry_at: None,
                    },
                    write: Some(ttl_until(now, reset)),
                })
            }
            Op::Refund { cost, at } => {
                // The hit was recorded at `at`, or later if the log was ahead of it:
                // take from the oldest live records at or after `at`, which is exact in
                // the first case and errs towards counting longer in the second.
                let mut left = cost;
                for i in head..log.len {
                    let (ts, units) = log.record(i);
                    if ts < at.as_millis() || left == 0 {
                        continue;
                    }
                    let take = units.min(left);
                    log.set_units(i, units - take);
                    left -= take;
                }
                let used = used.saturating_sub(cost - left);
                let head = log.compact(head);
                // Zero-unit records sit after `head`; dropping them keeps it valid.
                log.remove_empty_from(head);
                log.write_header(head, used);
                let newest = (head < log.len).then(|| log.record(log.len - 1).0);
                let reset = newest.map_or(now, expires);
                Ok(Transition {
                    verdict: Verdict {
                        allowed: true,
                        remaining: amount.saturating_sub(used),
                        reset_at: reset,
                        retry_at: None,
                    },
                    write: Some(ttl_until(now, reset)),
                })
            }
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
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(109_999))
            .unwrap();
        assert!(!peek.verdict.allowed);
        assert_eq!(peek.verdict.retry_at, Some(at(110_000)));
        let peek = MovingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(110_000))
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
        assert_eq!(s.len(), HEADER + RECORD);
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(60_001))
            .unwrap();
        assert_eq!(s.len(), HEADER + RECORD, "the expired record is dropped");
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
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(6))
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
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(0))
            .is_err());
        let mut s = vec![9];
        assert!(MovingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(0))
            .is_err());
    }

    #[test]
    fn a_long_run_keeps_the_log_to_the_live_records() {
        let l = RateLimit::new(1_000, 100, crate::limit::Unit::Millisecond).unwrap();
        let mut s = Vec::new();
        let mut longest = 0;
        for t in 0..10_000 {
            let v = MovingWindow
                .apply(&l, &mut s, Op::Hit { cost: 1 }, at(t))
                .unwrap();
            assert!(v.verdict.allowed);
            assert_eq!(v.verdict.remaining, 1_000 - (t + 1).min(100), "t={t}");
            longest = longest.max(s.len());
        }
        // 100 live records at most, and as many dead ones before a bulk drop.
        assert!(longest <= HEADER + 2 * 100 * RECORD + RECORD, "{longest}");
    }

    #[test]
    fn peeks_and_rejections_leave_the_bytes_alone() {
        let l = per_minute(2);
        let mut s = Vec::new();
        let peek = MovingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(0))
            .unwrap();
        assert_eq!(peek.write, None);
        assert!(s.is_empty());
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 2 }, at(0))
            .unwrap();
        let before = s.clone();
        for t in [1, 30_000, 59_999] {
            let hit = MovingWindow
                .apply(&l, &mut s, Op::Hit { cost: 1 }, at(t))
                .unwrap();
            assert!(!hit.verdict.allowed);
            MovingWindow
                .apply(&l, &mut s, Op::Test { cost: 1 }, at(t))
                .unwrap();
            assert_eq!(s, before);
        }
        // Even when the peek sees every record expired.
        MovingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(90_000))
            .unwrap();
        assert_eq!(s, before);
    }

    #[test]
    fn a_clock_stepping_back_never_admits_more() {
        let l = per_minute(2);
        let mut s = Vec::new();
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(10_000))
            .unwrap();
        // Another process's clock is 5 s behind: its hit is recorded at 10 s too.
        MovingWindow
            .apply(&l, &mut s, Op::Hit { cost: 1 }, at(5_000))
            .unwrap();
        let v = MovingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(69_999))
            .unwrap();
        assert!(!v.verdict.allowed);
        assert_eq!(v.verdict.retry_at, Some(at(70_000)));
        assert_eq!(s.len(), HEADER + RECORD, "merged into one record");
    }

    #[test]
    fn a_head_past_the_end_is_corrupt() {
        let l = per_minute(2);
        let mut s = vec![TAG];
        s.extend_from_slice(&5u64.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        assert!(MovingWindow
            .apply(&l, &mut s, Op::Test { cost: 1 }, at(0))
            .is_err());
    }

    /// The log against a naive list of hits, over a long pseudo-random run.
    #[test]
    fn matches_a_naive_log() {
        let window = 50;
        let l = RateLimit::new(7, window, crate::limit::Unit::Millisecond).unwrap();
        let mut s = Vec::new();
        let mut naive: Vec<(u64, u64)> = Vec::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut now = 1_000;
        let mut last_hit = None;
        for step in 0..5_000 {
            now += next(4) * next(8);
            let used_at = |log: &[(u64, u64)], t: u64| -> u64 {
                log.iter()
                    .filter(|(ts, _)| ts + window > t)
                    .map(|(_, u)| u)
                    .sum()
            };
            let used = used_at(&naive, now);
            let cost = 1 + next(8);
            let op = match next(10) {
                0..=5 => Op::Hit { cost },
                6..=8 => Op::Test { cost },
                _ => match last_hit {
                    Some((at, cost)) => Op::Refund {
                        cost,
                        at: Timestamp::from_millis(at),
                    },
                    None => Op::Test { cost },
                },
            };
            let got = MovingWindow.apply(&l, &mut s, op, at(now)).unwrap().verdict;
            let ctx = format!("step {step} now {now} op {op:?}");
            match op {
                Op::Hit { cost } | Op::Test { cost } => {
                    let fits = used + cost <= 7;
                    assert_eq!(got.allowed, fits, "{ctx}");
                    if fits && matches!(op, Op::Hit { .. }) {
                        naive.push((now, cost));
                        last_hit = Some((now, cost));
                        assert_eq!(got.remaining, 7 - used - cost, "{ctx}");
                    } else {
                        assert_eq!(got.remaining, 7u64.saturating_sub(used), "{ctx}");
                    }
                    if !fits && cost <= 7 {
                        let retry = (now..now + window + 1)
                            .find(|&t| used_at(&naive, t) + cost <= 7)
                            .unwrap();
                        assert_eq!(got.retry_at, Some(at(retry)), "{ctx}");
                    }
                    let reset = (now..now + window + 1)
                        .find(|&t| used_at(&naive, t) == 0)
                        .unwrap();
                    assert_eq!(got.reset_at, at(reset), "{ctx}");
                }
                Op::Refund { cost, at: when } => {
                    let mut left = cost;
                    for (ts, units) in naive.iter_mut() {
                        if *ts + window > now && *ts >= when.as_millis() && left > 0 {
                            let take = (*units).min(left);
                            *units -= take;
                            left -= take;
                        }
                    }
                    last_hit = None;
                    assert_eq!(got.remaining, 7 - used_at(&naive, now), "{ctx}");
                }
            }
        }
    }
}
