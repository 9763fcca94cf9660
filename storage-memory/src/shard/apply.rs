//! Built-in strategies run on a shard's states: one key in place
//! ([`Shard::apply`]), growing a moving-window log only when the hit will pass and
//! refusing a hit whose state cannot be stored; and the copies a batch runs on
//! ([`Shard::inline_copies`], [`Shard::write_back`]).

use std::time::Duration;

use limiter_core::strategy::state::InlineState;
use limiter_core::strategy::{BuiltIn, Op, StateError, Transition, Verdict};
use limiter_core::{RateLimit, Timestamp};

use super::room::HEAP_GROWTH;
use super::value::{grows, run, Value};
use super::{deadline, Shard};
use crate::place::StoredKey;

/// A copy of a stored inline state, for a batch to run on: the batch's operations
/// change the copy, and the copy replaces the state only if the whole batch passes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InlineCopy {
    /// Where the entry is.
    pos: usize,
    /// The state as the batch leaves it.
    pub(crate) state: InlineState,
    /// The time-to-live of the batch's last write to the copy, if any.
    pub(crate) write: Option<Duration>,
}

/// How long a hit refused for want of memory is told to wait.
pub(super) const NO_ROOM_RETRY_MS: u64 = 1_000;
/// `verdict` (of a hit or a test that passed) turned into a refusal, for a hit whose
/// state cannot be stored: a hit that is not counted is never admitted. It may pass
/// again once the storage has room: `retry_at` is [`NO_ROOM_RETRY_MS`] later.
pub(super) fn refused(verdict: Verdict, at: Timestamp) -> Verdict {
    if !verdict.allowed {
        return verdict;
    }
    let retry = at.as_millis().saturating_add(NO_ROOM_RETRY_MS);
    Verdict {
        allowed: false,
        remaining: 0,
        reset_at: verdict.reset_at,
        retry_at: Some(Timestamp::from_millis(
            retry.min(Timestamp::MAX.as_millis()),
        )),
    }
}

impl Shard {
    /// Runs `builtin` on `key`'s state in place. Writes back (inserting the key if
    /// needed) only when the strategy asks for it.
    pub(crate) fn apply(
        &mut self,
        builtin: BuiltIn,
        key: &StoredKey<'_>,
        hash: u64,
        limit: &RateLimit,
        op: Op,
        at: Timestamp,
    ) -> Result<Verdict, StateError> {
        self.apply_with(builtin, key, hash, limit, op, at, &mut |_| false)
    }

    /// [`apply`](Self::apply) for a caller that also holds the locks of other shards
    /// (an atomic batch): `evict_held(now)` evicts one entry of one of those shards and
    /// says whether it did, since this shard cannot lock them to make room.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_with(
        &mut self,
        builtin: BuiltIn,
        key: &StoredKey<'_>,
        hash: u64,
        limit: &RateLimit,
        op: Op,
        at: Timestamp,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Verdict, StateError> {
        let now = at.as_millis();
        let tick = self.next_tick();
        if let Some(mut pos) = self.find(key, hash) {
            let heap = grows(builtin);
            if heap {
                if let Some(entry) = self.entries.get_mut(pos) {
                    if !entry.live(now) {
                        // Expired counts as empty, before its growth is sized.
                        entry.value.clear();
                    }
                }
                if let Op::Hit { cost } = op {
                    // Room for the hit's record, unless the state has it or the hit is
                    // refused anyway (a refused hit records nothing).
                    if self.needs_room(builtin, pos)
                        && self.passes(builtin, pos, limit, cost, at)?
                    {
                        match self.heap_room(builtin, key, hash, pos, now, evict_held) {
                            Some(moved) => pos = moved,
                            None => return self.refuse(builtin, key, hash, limit, cost, at),
                        }
                    }
                }
            }
            let Some(entry) = self.entries.get_mut(pos) else {
                return Err(StateError {
                    strategy: builtin.name(),
                    reason: "entry moved",
                });
            };
            if !entry.live(now) {
                // Expired counts as empty; a heap buffer is kept for reuse.
                entry.value.clear();
            }
            entry.used = tick;
            let before = if heap { entry.value.heap_bytes() } else { 0 };
            let outcome = run(builtin, &mut entry.value, limit, op, at);
            if let Ok(Transition {
                write: Some(ttl), ..
            }) = outcome
            {
                entry.expires = deadline(now, ttl);
                self.version = self.version.wrapping_add(1);
                entry.version = self.version;
            }
            if heap {
                let after = entry.value.heap_bytes();
                if after != before {
                    self.account(before, after, before);
                }
            }
            let outcome = outcome?;
            if outcome.write.is_some() {
                self.after_update(now);
            }
            return Ok(outcome.verdict);
        }
        let mut value = Value::Inline(InlineState::default());
        let outcome = run(builtin, &mut value, limit, op, at)?;
        if let Some(ttl) = outcome.write {
            let stored = self.insert(key, hash, value, deadline(now, ttl), now, evict_held);
            if !stored && matches!(op, Op::Hit { .. }) {
                // Never admit a hit that is not counted.
                return Ok(refused(outcome.verdict, at));
            }
        }
        Ok(outcome.verdict)
    }

    /// Whether the state at `pos` may have to grow to record a hit of `builtin`: a heap
    /// state (or one that `builtin` moves to the heap) with less than
    /// [`HEAP_GROWTH`] bytes to spare.
    fn needs_room(&self, builtin: BuiltIn, pos: usize) -> bool {
        grows(builtin)
            && self
                .entries
                .get(pos)
                .is_some_and(|entry| match &entry.value {
                    Value::Heap(vec) => vec.capacity() - vec.len() < HEAP_GROWTH,
                    Value::Inline(_) => true,
                })
    }

    /// Whether a hit of `cost` on the state at `pos` would pass: a test, in place
    /// (an expired state counts as empty, where a hit passes unless it costs more than
    /// the limit's amount).
    fn passes(
        &mut self,
        builtin: BuiltIn,
        pos: usize,
        limit: &RateLimit,
        cost: u64,
        at: Timestamp,
    ) -> Result<bool, StateError> {
        let Some(entry) = self.entries.get_mut(pos) else {
            return Ok(false);
        };
        if !entry.live(at.as_millis()) {
            return Ok(cost <= limit.amount());
        }
        let outcome = run(builtin, &mut entry.value, limit, Op::Test { cost }, at)?;
        Ok(outcome.verdict.allowed)
    }

    /// The verdict for a hit of `cost` on `key` (stored, live or emptied) whose state
    /// cannot grow to record it: the verdict of a test, in place, refused (see
    /// [`refused`]).
    fn refuse(
        &mut self,
        builtin: BuiltIn,
        key: &StoredKey<'_>,
        hash: u64,
        limit: &RateLimit,
        cost: u64,
        at: Timestamp,
    ) -> Result<Verdict, StateError> {
        let mut empty = Value::Inline(InlineState::default());
        let value = match self.find(key, hash) {
            Some(pos) => self
                .entries
                .get_mut(pos)
                .map_or(&mut empty, |e| &mut e.value),
            None => &mut empty,
        };
        let outcome = run(builtin, value, limit, Op::Test { cost }, at)?;
        Ok(refused(outcome.verdict, at))
    }

    /// Fills `copies` with the inline states of `keys` (all stored in this shard) as
    /// of `at` (empty when expired), for a batch of `builtin` to run on (see
    /// [`crate::batch`]); whether it could. It cannot when `builtin` keeps its state
    /// on the heap, or a key is absent, repeated or holds a heap state: the batch then
    /// runs in place.
    #[inline]
    pub(crate) fn inline_copies(
        &self,
        builtin: BuiltIn,
        keys: &[(StoredKey<'_>, u64)],
        at: Timestamp,
        copies: &mut [InlineCopy],
    ) -> bool {
        if grows(builtin) || keys.len() > copies.len() {
            return false;
        }
        for (i, (key, hash)) in keys.iter().enumerate() {
            let hash = *hash;
            let Some(pos) = self.find(key, hash) else {
                return false;
            };
            let (done, rest) = copies.split_at_mut(i);
            let (Some(copy), Some(state)) = (rest.first_mut(), self.inline_state(pos, at)) else {
                return false;
            };
            if done.iter().any(|copy| copy.pos == pos) {
                return false;
            }
            *copy = InlineCopy {
                pos,
                state,
                write: None,
            };
        }
        true
    }

    /// Gives back what a batch did to `copy`: restores the stored state it was taken
    /// from.
    pub(crate) fn restore(&self, copy: &mut InlineCopy, at: Timestamp) {
        copy.state = self.inline_state(copy.pos, at).unwrap_or_default();
        copy.write = None;
    }

    /// The inline state at `pos` as of `at` (empty when expired); `None` for a heap
    /// state.
    fn inline_state(&self, pos: usize, at: Timestamp) -> Option<InlineState> {
        let entry = self.entries.get(pos)?;
        match &entry.value {
            Value::Inline(state) if entry.live(at.as_millis()) => Some(*state),
            Value::Inline(_) => Some(InlineState::default()),
            Value::Heap(_) => None,
        }
    }

    /// Ends a batch run on `copies` (from [`inline_copies`](Self::inline_copies)):
    /// marks their entries used and, if `commit`, stores every copy the batch wrote,
    /// with its new expiry and version.
    #[inline]
    pub(crate) fn write_back(&mut self, copies: &[InlineCopy], commit: bool, at: Timestamp) {
        let now = at.as_millis();
        let tick = self.next_tick();
        for copy in copies {
            let Some(entry) = self.entries.get_mut(copy.pos) else {
                continue;
            };
            entry.used = tick;
            if let (true, Some(ttl)) = (commit, copy.write) {
                entry.value = Value::Inline(copy.state);
                entry.expires = deadline(now, ttl);
                self.version = self.version.wrapping_add(1);
                entry.version = self.version;
            }
        }
        if commit {
            self.after_update(now);
        }
    }
}
