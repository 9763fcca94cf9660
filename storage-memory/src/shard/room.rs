//! Room at the bounds: reserving a new key's place and bytes, or a growing log's, in
//! the counts the shards share, and freeing room when a reservation does not fit.
//!
//! The shards of a bounded storage share one [`Bound`]: an atomic count of the keys
//! stored in all of them and one of their bytes ([`Shard::bytes`]). A shard reserves a
//! place and the new entry's bytes before it inserts a key, and the new capacity
//! before a heap state grows; it gives them back whenever an entry leaves it
//! (deletion, expiry, eviction, clearing) and when it compacts its key buffer. So the
//! counts are never below what is stored and never above the bounds. Eviction starts
//! only when a reservation does not fit: the shard then frees room (see
//! [`Shard::free_some`]) and tries again.
//!
//! Freeing room never waits for another shard's lock: it compacts this shard's key
//! buffer, evicts an expired entry or approximately the least recently used one
//! ([`EVICTION_SAMPLE`] entries sampled at random, as Redis does), and only when this
//! shard has nothing to give, evicts from a shard the caller already holds or from
//! one whose lock is free at that moment.

use limiter_core::strategy::BuiltIn;

use super::value::{grows, Value};
use super::Shard;
use crate::bound::Bound;
use crate::place::StoredKey;

/// How many random entries an eviction compares.
pub(super) const EVICTION_SAMPLE: usize = 8;
/// How many times an insertion into a full storage looks for an entry to evict before
/// it gives up (see [`Shard::make_room`]).
pub(super) const ROOM_ATTEMPTS: usize = 1_000;
/// The most bytes a built-in's hit adds to a heap state (a moving-window log's
/// 17-byte header when it is empty, and one 16-byte record), reserved before the hit
/// runs.
pub(super) const HEAP_GROWTH: usize = 33;
/// What an attempt to free room found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Freed {
    /// Something was freed.
    Some,
    /// Nothing now, but a shard was locked by someone else: worth another try.
    Busy,
    /// Nothing, and nothing else to free: give up.
    Nothing,
}

impl Shard {
    /// Makes room for one more entry of `cost` bytes and, in a bounded storage,
    /// reserves its place and its bytes in the shared counts; whether it could.
    ///
    /// Below the bounds this only takes a place and the bytes: nothing is evicted,
    /// however the keys are spread over the shards. At a bound it frees room (see
    /// [`free_some`](Self::free_some)) and tries again, as long as something was freed
    /// or another shard was busy; after [`ROOM_ATTEMPTS`] attempts it gives up, and
    /// the key is not stored.
    pub(super) fn make_room(
        &mut self,
        cost: usize,
        now: u64,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> bool {
        while self.len() >= self.cap {
            if !self.evict(now, None) {
                return false;
            }
        }
        let Some(bound) = self.bound.clone() else {
            return true;
        };
        for attempt in 0..ROOM_ATTEMPTS {
            if bound.reserve(cost) {
                return true;
            }
            match self.free_some(&bound, now, None, evict_held) {
                Freed::Some => {}
                Freed::Busy if attempt > 0 => std::thread::yield_now(),
                Freed::Busy => {}
                Freed::Nothing => return false,
            }
        }
        false
    }

    /// Reserves `extra` more bytes for the state of the entry at `pos` (`key`, `hash`),
    /// freeing room as [`make_room`](Self::make_room) does but never by evicting that
    /// entry; its position afterwards (eviction moves entries), or `None` if there is
    /// no room.
    pub(super) fn grow_room(
        &mut self,
        key: &StoredKey<'_>,
        hash: u64,
        pos: usize,
        extra: usize,
        now: u64,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> Option<usize> {
        let Some(bound) = self.bound.clone() else {
            return Some(pos);
        };
        let mut pos = pos;
        for attempt in 0..ROOM_ATTEMPTS {
            if bound.reserve_bytes(extra) {
                return Some(pos);
            }
            let freed = self.free_some(&bound, now, Some(pos), evict_held);
            pos = self.find(key, hash)?;
            match freed {
                Freed::Some => {}
                Freed::Busy if attempt > 0 => std::thread::yield_now(),
                Freed::Busy => {}
                Freed::Nothing => return None,
            }
        }
        None
    }

    /// Makes sure the state of the entry at `pos` (`key`, `hash`) can take a hit of
    /// `builtin` without growing its buffer: a moving-window log gets room for
    /// [`HEAP_GROWTH`] more bytes, its capacity doubling when it can (else growing by
    /// just that), the bytes reserved first (see [`grow_room`](Self::grow_room)). The
    /// entry's position afterwards, or `None` when there is no room: the hit must then
    /// be refused.
    pub(super) fn heap_room(
        &mut self,
        builtin: BuiltIn,
        key: &StoredKey<'_>,
        hash: u64,
        pos: usize,
        now: u64,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> Option<usize> {
        if !grows(builtin) {
            return Some(pos);
        }
        let (len, cap) = match &self.entries.get(pos)?.value {
            Value::Heap(vec) => (vec.len(), vec.capacity()),
            Value::Inline(state) => (state.as_slice().len(), 0),
        };
        let least = len + HEAP_GROWTH;
        if cap >= least {
            return Some(pos);
        }
        let doubled = least.max(cap.saturating_mul(2));
        let (pos, target) = match &self.bound {
            Some(bound) if bound.reserve_bytes(doubled - cap) => (pos, doubled),
            Some(_) => (
                self.grow_room(key, hash, pos, least - cap, now, evict_held)?,
                least,
            ),
            None => (pos, doubled),
        };
        let entry = self.entries.get_mut(pos)?;
        match &mut entry.value {
            Value::Heap(vec) => vec.reserve_exact(target - vec.len()),
            Value::Inline(state) => {
                let mut vec = Vec::with_capacity(target);
                vec.extend_from_slice(state.as_slice());
                entry.value = Value::Heap(vec);
            }
        }
        let actual = entry.value.heap_bytes();
        self.account(cap, actual, target);
        Some(pos)
    }

    /// Records that a state counted as `counted` heap bytes now holds `actual`, with
    /// `reserved` bytes (at least `counted`) already taken in the shared count: gives
    /// back what was reserved and not used. A state that grew past its reservation is
    /// counted as it is, whatever the bound (no built-in does that: see
    /// [`heap_room`](Self::heap_room)).
    pub(super) fn account(&mut self, counted: usize, actual: usize, reserved: usize) {
        self.bytes = (self.bytes + actual).saturating_sub(counted);
        if let Some(bound) = &self.bound {
            if actual > reserved {
                bound.force_bytes(actual - reserved);
            } else {
                bound.release(0, reserved - actual);
            }
        }
    }

    /// Frees room in a full storage, without waiting for any lock: compacts this
    /// shard's key buffer if a quarter of it is garbage (or if it has nothing else to
    /// give); else evicts one entry (an
    /// expired one if a short sweep finds one, else approximately the least recently
    /// used), never the one at `keep`: from this shard if it has others, else from a
    /// shard the caller holds (`evict_held`), else from another shard, which it only
    /// `try_lock`s, so that no two shard locks ever wait for each other. A holder of a
    /// shard with entries evicts from its own shard or another one it holds, without
    /// waiting, so the shards it tries are soon free.
    pub(super) fn free_some(
        &mut self,
        bound: &Bound,
        now: u64,
        keep: Option<usize>,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> Freed {
        if self.garbage > 0 && self.garbage * 4 >= self.keys.len() {
            self.compact_keys();
            return Freed::Some;
        }
        if self.evict(now, keep) {
            return Freed::Some;
        }
        if self.garbage > 0 {
            // Nothing left to evict here but removed keys' bytes.
            self.compact_keys();
            return Freed::Some;
        }
        if evict_held(now) {
            return Freed::Some;
        }
        self.evict_elsewhere(bound, now)
    }

    /// Evicts one entry of another shard that is not locked at the moment, trying the
    /// shards from a random one on.
    pub(super) fn evict_elsewhere(&mut self, bound: &Bound, now: u64) -> Freed {
        let Some(shards) = bound.shards() else {
            return Freed::Nothing;
        };
        let count = shards.len();
        if count < 2 {
            return Freed::Nothing;
        }
        let start = self.rng.usize(..count);
        let mut busy = 0;
        for i in 0..count {
            let Some(other) = shards.get((start + i) % count) else {
                continue;
            };
            match other.try_lock() {
                Some(mut other) => {
                    if other.len() > 0 && other.evict(now, None) {
                        return Freed::Some;
                    }
                }
                None => busy += 1,
            }
        }
        // This shard's own lock is held: it is always one of the busy ones.
        if busy > 1 {
            Freed::Busy
        } else {
            Freed::Nothing
        }
    }

    /// Evicts one entry if the shard has any, for a batch that holds its lock; whether
    /// it did.
    pub(crate) fn evict_one(&mut self, now: u64) -> bool {
        self.len() > 0 && self.evict(now, None)
    }

    /// Gives back `keys` places and `bytes` bytes of the shared counts, for entries
    /// that left and key bytes compacted away.
    pub(super) fn released(&self, keys: usize, bytes: usize) {
        if let Some(bound) = &self.bound {
            bound.release(keys, bytes);
        }
    }

    /// Evicts one entry other than the one at `keep`: an expired one if a short sweep
    /// finds one, else the least recently used of [`EVICTION_SAMPLE`] random entries
    /// (of all entries when there are no more). Whether it removed anything.
    pub(super) fn evict(&mut self, now: u64, keep: Option<usize>) -> bool {
        if self.sweep(now, EVICTION_SAMPLE, keep) > 0 {
            return true;
        }
        let len = self.entries.len();
        let mut victim = None;
        let mut oldest = 0u64;
        let mut consider = |shard: &Shard, at: usize| {
            if keep == Some(at) {
                return;
            }
            let Some(entry) = shard.entries.get(at) else {
                return;
            };
            let score = if entry.live(now) {
                u64::from(shard.tick.wrapping_sub(entry.used))
            } else {
                u64::MAX
            };
            if victim.is_none() || score > oldest {
                oldest = score;
                victim = Some(at);
            }
        };
        if len <= EVICTION_SAMPLE {
            for at in 0..len {
                consider(self, at);
            }
        } else {
            for _ in 0..EVICTION_SAMPLE {
                let at = self.rng.usize(..len);
                consider(self, at);
            }
        }
        victim.is_some_and(|at| self.remove_at(at).is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use limiter_core::strategy::{BuiltIn, Op};
    use limiter_core::{RateLimit, Timestamp};

    use super::super::tests::{has, put};
    use super::*;

    #[test]
    fn the_shared_key_count_follows_every_insertion_and_removal() {
        let bound = Arc::new(Bound::new(30, 1 << 20));
        let mut shard = Shard::new(usize::MAX, Some(bound.clone()), 5);
        let check = |shard: &Shard| {
            shard.check_invariants();
            assert_eq!(bound.keys(), shard.len());
            assert_eq!(bound.bytes(), shard.bytes());
        };
        // Colliding hashes, two lifetimes.
        for i in 0..30u64 {
            let expires = if i % 3 == 0 { 10 } else { u64::MAX };
            put(&mut shard, &format!("k{i}"), i % 7, expires);
            check(&shard);
        }
        // At the bound: one out for one in.
        for i in 30..60u64 {
            put(&mut shard, &format!("k{i}"), i % 7, u64::MAX);
            check(&shard);
            assert_eq!(shard.len(), 30);
        }
        for i in (0..60u64).step_by(4) {
            shard.delete(&StoredKey::from(format!("k{i}").as_bytes()), i % 7);
            check(&shard);
        }
        let _ = shard.get(&StoredKey::from(&b"k1"[..]), 1, 20);
        shard.sweep(u64::MAX - 1, 5, None);
        check(&shard);
        shard.purge(u64::MAX);
        check(&shard);
        assert_eq!(shard.len(), 0);
        put(&mut shard, "again", 1, u64::MAX);
        check(&shard);
        shard.clear();
        check(&shard);
        assert_eq!(bound.keys(), 0);
    }

    #[test]
    fn the_shared_byte_count_follows_logs_keys_and_compactions() {
        let bound = Arc::new(Bound::new(usize::MAX, 20_000));
        let mut shard = Shard::new(usize::MAX, Some(bound.clone()), 11);
        let check = |shard: &Shard| {
            shard.check_invariants();
            assert_eq!(bound.bytes(), shard.bytes());
            assert!(shard.bytes() <= 20_000, "{}", shard.bytes());
        };
        let limit: RateLimit = "1000 per hour".parse().expect("a limit");
        let (mut admitted, mut refused) = (0u32, 0u32);
        for t in 0..3_000u64 {
            // Logs that grow (one record per millisecond), keys that come and go.
            let key = format!("log-{}-{}", t % 7, "x".repeat((t % 50) as usize));
            let at = Timestamp::from_millis(1_000_000 + t);
            let verdict = shard
                .apply(
                    BuiltIn::MovingWindow,
                    &StoredKey::from(key.as_bytes()),
                    t % 7 + (t % 50) * 7,
                    &limit,
                    Op::Hit { cost: 1 },
                    at,
                )
                .expect("a verdict");
            if verdict.allowed {
                admitted += 1;
            } else {
                refused += 1;
                assert!(verdict.retry_at.is_some());
            }
            check(&shard);
            if t % 5 == 0 {
                put(&mut shard, &format!("cas-{t}"), u64::MAX - t, u64::MAX);
                check(&shard);
            }
            if t % 11 == 0 {
                shard.delete(
                    &StoredKey::from(format!("cas-{}", t - t % 5).as_bytes()),
                    u64::MAX - (t - t % 5),
                );
                check(&shard);
            }
        }
        assert!(admitted > 0 && shard.len() > 0, "{admitted} {refused}");
        shard.clear();
        check(&shard);
        assert_eq!(bound.bytes(), 0);
    }

    #[test]
    fn eviction_keeps_the_cap_and_spares_recent_keys() {
        let mut shard = Shard::new(16, None, 3);
        for i in 0..1_000u64 {
            put(&mut shard, "hot", u64::MAX, u64::MAX);
            put(&mut shard, &format!("k{i}"), i, u64::MAX);
            shard.check_invariants();
        }
        assert_eq!(shard.len(), 16);
        assert!(has(&mut shard, "hot", u64::MAX, 0));
    }
}
