//! Moving window: an exact log of the hits inside the trailing window.

use super::state::{check_tag, word_at};
use super::{hit_or_test, retry_instant, written, BuiltIn, Op, StateError, Transition, Usage};
use crate::clock::Timestamp;
use crate::limit::RateLimit;

const TAG: u8 = 2;
const NAME: &str = BuiltIn::MovingWindow.name();
const RECORD: usize = 16;

/// Moving window (a sliding log): at most `amount` units in any window-long interval.
///
/// Exact, with no burst at window edges, at the price of state that grows with the
/// number of distinct milliseconds in which hits were admitted within one window (at
/// most `amount` records of 16 bytes, plus expired ones awaiting a bulk drop).
/// Deciding is amortized O(1): the log keeps the count of its live units, expired
/// records are skipped from the front and dropped in bulk, and new hits are appended
/// at the end.
///
/// # State
///
/// Tag `2`, a header `[head, live_units]`, then records `[ts, units]` (16 bytes each):
/// `17 + 16 × len` bytes. Records are sorted by strictly increasing `ts` (ms). Records
/// before index `head` have expired; `live_units` is the sum of the units from `head`
/// on. A wrong tag, a length not of that form, `head > len`, a record read with a
/// `ts` past [`Timestamp::MAX`], or `live_units` found below the units of the records
/// it covers (when the skip of rule 3 or the refund of rule 6 reaches a record whose
/// units exceed what is left of it) is a [`StateError`]. Only refunds leave records
/// with zero units.
///
/// # Rules
///
/// With `W` the window in milliseconds and `A` the amount:
///
/// 1. **Effective time** `t = max(now, ts of the last record)` (any last record, even
///    an expired or empty one: it holds the key's time). An empty state has no records.
/// 2. **Boundary.** A unit recorded at `ts` counts during the half-open `[ts, ts + W)`:
///    it has expired when `ts + W ≤ t`. The same rule holds for hit, test and refund,
///    and `ts + W` is also the `reset_at`/`retry_at` reported.
/// 3. **Skip.** From `head`, while the record at `head` has expired, subtract its units
///    from `live_units` and advance `head` (units above what is left: a
///    [`StateError`]); `used` is what is left, `remaining = A − used` (0 if
///    negative). This is only written back by an admitted hit.
/// 4. **Hit / test** of `cost` passes when `cost ≤ remaining`. An admitted hit of cost
///    0 changes nothing. An admitted hit of cost 1 or more is recorded at `t`: added to
///    the last record if its `ts = t` (merge), else appended as `[t, cost]`; then
///    `live_units = used + cost`. **Compaction**: then, if `head > 0` and
///    `2 × head ≥ len`, the records before `head` are dropped and `head = 0`. The
///    header `[head, live_units]` is rewritten. A test or a rejected hit writes
///    nothing (not even the skip).
/// 5. **Retry** for `cost ≤ A`: `need = used + cost − A` (128-bit); going through the
///    live records oldest first and adding up their units, the first record at which
///    the sum reaches `need` gives `retry_at = ts + W` (`None` past
///    [`Timestamp::MAX`]).
/// 6. **Refund** `{cost, at}`: a hit admitted at `at` was recorded at `at` itself, or,
///    when the log was ahead of `at`, at the then-newest record's `ts`, which is
///    later. Only the record with `ts = at` exactly can be taken from without ever
///    taking a unit that counts longer than the undone one: if a record at index
///    `≥ head` has `ts = at` and has not expired (`at + W > t`), `take = min(units,
///    cost)` is subtracted from its units and from the stored `live_units` (`take`
///    above `used`: a [`StateError`]). Nothing
///    else changes: no skip, no compaction, no record removed (a record left with zero
///    units still holds the key's time). When nothing is taken nothing is written. So
///    a refund of a record that has expired changes nothing, and a refund of a hit
///    recorded later than its `at` gives nothing back (undos err towards counting).
/// 7. **Verdict.** `reset_at` is `t` when `used = 0`, else `ts + W` of the last
///    record from `head` with units (clamped to `MAX`). **TTL** of a write: until the
///    last record's `ts + W`.
///
/// A hit is recorded at `t`, never before the newest record, so the log stays sorted
/// even if clocks step back; such a hit then counts a little longer, never shorter.
///
/// # Cost
///
/// A key holds up to `A` live records (one per distinct millisecond with admitted
/// hits) and as many expired ones before a bulk drop: up to `17 + 32 × A` bytes, 3.2
/// MB for `100000 per hour`. Storages that run the strategy natively touch only the
/// header, the records they skip and the end of the log. On the generic
/// compare-and-set path every decision reads and writes the whole log, so with large
/// amounts prefer a storage that runs it natively, or the sliding window counter.
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

fn corrupt(reason: &'static str) -> StateError {
    StateError {
        strategy: NAME,
        reason,
    }
}

/// A header counting fewer live units than the records it covers (rules 3 and 6).
fn undercounted() -> StateError {
    corrupt("live units below the units of the records")
}

/// A validated log: `state` holds a header and `len` records, or nothing.
struct Log<'a> {
    state: &'a mut Vec<u8>,
    len: usize,
}

/// The log read at the effective time. Reading changes nothing.
#[derive(Debug, Clone, Copy)]
struct View {
    /// The stored head and live units.
    stored_head: usize,
    stored_units: u64,
    /// The first live record and the live units from it on.
    head: usize,
    used: u64,
    /// The effective time.
    t: u64,
    window: u64,
}

impl View {
    fn expires(&self, ts: u64) -> u64 {
        ts.saturating_add(self.window)
    }

    fn live(&self, ts: u64) -> bool {
        self.expires(ts) > self.t
    }
}

impl<'a> Log<'a> {
    /// Reads `state` (empty or a log) and returns it with its stored `head` and
    /// `live_units`.
    fn open(state: &'a mut Vec<u8>) -> Result<(Log<'a>, usize, u64), StateError> {
        if state.is_empty() {
            return Ok((Log { state, len: 0 }, 0, 0));
        }
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

    /// Record `i` as `(ts, units)`.
    fn record(&self, i: usize) -> Result<(u64, u64), StateError> {
        let at = HEADER + i * RECORD;
        let bytes = self.state.get(at..at + RECORD).unwrap_or_default();
        let ts = word_at(bytes);
        if ts > Timestamp::MAX.as_millis() {
            return Err(corrupt("record time past Timestamp::MAX"));
        }
        Ok((ts, word_at(bytes.get(8..).unwrap_or_default())))
    }

    fn newest(&self) -> Result<Option<u64>, StateError> {
        match self.len.checked_sub(1) {
            Some(last) => Ok(Some(self.record(last)?.0)),
            None => Ok(None),
        }
    }

    /// Reads the log at `now` (rules 1 and 3).
    fn view(&self, head: usize, units: u64, now: u64, window: u64) -> Result<View, StateError> {
        let t = self.newest()?.map_or(now, |newest| newest.max(now));
        let mut v = View {
            stored_head: head,
            stored_units: units,
            head,
            used: units,
            t,
            window,
        };
        while v.head < self.len {
            let (ts, units) = self.record(v.head)?;
            if v.live(ts) {
                break;
            }
            v.used = v.used.checked_sub(units).ok_or_else(undercounted)?;
            v.head += 1;
        }
        Ok(v)
    }

    /// The usage before an operation, or after one (rule 7). `taken` is a record's
    /// index and units after a refund not yet written.
    fn usage(
        &self,
        v: &View,
        used: u64,
        amount: u64,
        taken: Option<(usize, u64)>,
    ) -> Result<Usage, StateError> {
        let mut reset = v.t;
        if used > 0 {
            for i in (v.head..self.len).rev() {
                let (ts, mut units) = self.record(i)?;
                if let Some((_, left)) = taken.filter(|&(at, _)| at == i) {
                    units = left;
                }
                if units > 0 {
                    reset = v.expires(ts);
                    break;
                }
            }
        }
        Ok(Usage {
            remaining: amount.saturating_sub(used),
            reset_at: Timestamp::from_millis(reset),
        })
    }

    /// Rule 5: when enough units have left for `cost` to fit.
    fn retry(&self, v: &View, amount: u64, cost: u64) -> Result<Option<Timestamp>, StateError> {
        let need = u128::from(v.used) + u128::from(cost) - u128::from(amount);
        let mut freed = 0u128;
        for i in v.head..self.len {
            let (ts, units) = self.record(i)?;
            freed += u128::from(units);
            if freed >= need {
                return Ok(retry_instant(v.expires(ts)));
            }
        }
        Ok(None)
    }

    fn set_units(&mut self, i: usize, units: u64) {
        let at = HEADER + i * RECORD + 8;
        if let Some(slot) = self.state.get_mut(at..at + 8) {
            slot.copy_from_slice(&units.to_le_bytes());
        }
    }

    fn write_header(&mut self, head: usize, units: u64) {
        if self.state.is_empty() {
            self.state.push(TAG);
            self.state.extend_from_slice(&[0; HEADER - 1]);
        }
        let head = u64::try_from(head).unwrap_or(u64::MAX);
        self.state[1..9].copy_from_slice(&head.to_le_bytes());
        self.state[9..HEADER].copy_from_slice(&units.to_le_bytes());
    }

    /// Rule 4: records an admitted hit of `cost ≥ 1` at `v.t`, then compacts. Returns
    /// the new head.
    fn record_hit(&mut self, v: &View, cost: u64) -> Result<usize, StateError> {
        self.write_header(v.head, 0);
        match self.len.checked_sub(1) {
            Some(last) if self.record(last)?.0 == v.t => {
                let units = self.record(last)?.1;
                self.set_units(last, units.saturating_add(cost));
            }
            _ => {
                self.state.extend_from_slice(&v.t.to_le_bytes());
                self.state.extend_from_slice(&cost.to_le_bytes());
                self.len += 1;
            }
        }
        let mut head = v.head;
        // Dropping expired records once they are half the log moves each record O(1)
        // times overall.
        if head > 0 && head * 2 >= self.len {
            self.state.drain(HEADER..HEADER + head * RECORD);
            self.len -= head;
            head = 0;
        }
        self.write_header(head, v.used.saturating_add(cost));
        Ok(head)
    }

    /// Rule 6: the live record at `at` and what a refund of `cost` takes from it:
    /// `(index, units left, units taken)`, with at least one unit taken. Reading only.
    fn refund(
        &self,
        v: &View,
        cost: u64,
        at: u64,
    ) -> Result<Option<(usize, u64, u64)>, StateError> {
        if !v.live(at) {
            return Ok(None);
        }
        for i in (v.head..self.len).rev() {
            let (ts, units) = self.record(i)?;
            if ts < at {
                break;
            }
            if ts == at {
                let take = units.min(cost);
                if take > v.used {
                    return Err(undercounted());
                }
                return Ok((take > 0).then_some((i, units - take, take)));
            }
        }
        Ok(None)
    }

    /// Rule 7: the TTL's end, from the last record.
    fn until(&self, v: &View) -> Result<u64, StateError> {
        Ok(v.expires(self.newest()?.unwrap_or(v.t)))
    }
}

/// [`MovingWindow`] on a state held in a `Vec` (its log grows and shrinks).
pub(super) fn run(
    limit: &RateLimit,
    state: &mut Vec<u8>,
    op: Op,
    now: Timestamp,
) -> Result<Transition, StateError> {
    let amount = limit.amount();
    let (mut log, head, units) = Log::open(state)?;
    let v = log.view(head, units, now.as_millis(), limit.window_ms())?;
    let usage = log.usage(&v, v.used, amount, None)?;
    match op {
        Op::Hit { cost } | Op::Test { cost } => hit_or_test(
            &mut log,
            (amount, cost, matches!(op, Op::Test { .. })),
            usage,
            |log| log.retry(&v, amount, cost),
            |log| {
                if cost == 0 {
                    return Ok(usage.unchanged(true, None));
                }
                let v = View {
                    head: log.record_hit(&v, cost)?,
                    ..v
                };
                let after = log.usage(&v, v.used.saturating_add(cost), amount, None)?;
                Ok(written(
                    now,
                    after.remaining,
                    after.reset_at,
                    log.until(&v)?,
                ))
            },
        ),
        Op::Refund { cost, at } => {
            let Some((i, left, take)) = log.refund(&v, cost, at.as_millis())? else {
                return Ok(usage.unchanged(true, None));
            };
            // Every read before the first write, so that an error changes nothing.
            let after = log.usage(&v, v.used - take, amount, Some((i, left)))?;
            let until = log.until(&v)?;
            log.set_units(i, left);
            log.write_header(v.stored_head, v.stored_units.saturating_sub(take));
            Ok(written(now, after.remaining, after.reset_at, until))
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
                        if *ts + window > now && *ts == when.as_millis() && left > 0 {
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
