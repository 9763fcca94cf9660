//! Multi-limit hits
//! ([`NativeStrategies::batch`](limiter_core::storage::NativeStrategies::batch)), all
//! or nothing, under the locks of the shards that hold their keys.
//!
//! Every batch runs through one routine, [`all_or_nothing`]: test every item, hit
//! every item, and give back what was taken if a hit is refused after all (a state
//! with no room to grow), answering then with tests of the unchanged states. What
//! differs between batches is only how an item's state is reached:
//!
//! - **On copies** (the common case: up to [`BATCH_INLINE`] stored keys of one group,
//!   under their own text, with inline states): one shard lock, every operation on a
//!   copy of the state, the copies written back only if every hit passed. A hit on a
//!   copy is undone by restoring the copy, so the hits run first and the tests only
//!   when one is refused; and no key is looked up twice.
//! - **In place, under one lock**: the same keys when a state is on the heap
//!   (moving-window logs), or a key is absent.
//! - **In place, under several locks**: keys of several shards, or a key stored
//!   digested. The shards are locked in ascending order, so that concurrent batches
//!   cannot deadlock, and a new key in a full storage may evict from any of them
//!   ([`apply_holding`]), since no other shard lock may be waited for.
//!
//! In place, the tests run first, so that the common refusal writes nothing (and
//! creates no entry for a new key).

use limiter_core::storage::BatchItem;
use limiter_core::strategy::{BuiltIn, Op, StateError, Verdict};
use limiter_core::{StorageError, Timestamp};
use parking_lot::MutexGuard;

use crate::place::{KeyBuf, Place, StoredKey};
use crate::shard::{InlineCopy, Shard};
use crate::storage::corrupt;
use crate::MemoryStorage;

/// The most items of a batch run on copies.
pub(crate) const BATCH_INLINE: usize = 4;

/// How a batch reaches its items' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// On the stored states: a hit writes, and is given back with a refund.
    InPlace,
    /// On copies, written back by the caller only if every hit passed: a hit is given
    /// back by restoring the copy, so a refused batch costs no more than its tests.
    Copies,
}

/// A multi-limit hit of `cost` at `at`, all or nothing: tests every item
/// (`run(i, Op::Test)`; in place only, see [`Reach`]) and stops if one is refused;
/// else hits every item, and if a hit is refused after all, gives back the hits before
/// it (`run(j, Op::Refund)`) and answers with the refused hit's verdict and tests of
/// the other items. The caller holds every lock that `run` needs, so nothing else
/// changes the states in between.
#[inline]
pub(crate) fn all_or_nothing<E>(
    len: usize,
    cost: u64,
    at: Timestamp,
    reach: Reach,
    mut run: impl FnMut(usize, Op) -> Result<Verdict, E>,
) -> Result<Vec<Verdict>, E> {
    let mut verdicts = Vec::with_capacity(len);
    if reach == Reach::InPlace {
        for i in 0..len {
            verdicts.push(run(i, Op::Test { cost })?);
        }
        if verdicts.iter().any(|v| !v.allowed) {
            return Ok(verdicts);
        }
        verdicts.clear();
    }
    for i in 0..len {
        let verdict = run(i, Op::Hit { cost })?;
        if !verdict.allowed {
            for j in 0..i {
                run(j, Op::Refund { cost, at })?;
            }
            verdicts.clear();
            for j in 0..len {
                verdicts.push(if j == i {
                    verdict
                } else {
                    run(j, Op::Test { cost })?
                });
            }
            return Ok(verdicts);
        }
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

impl MemoryStorage {
    /// A batch of `builtin` hits of `cost` at `at`, all or nothing.
    pub(crate) fn batch_now(
        &self,
        builtin: BuiltIn,
        items: &[BatchItem<'_>],
        cost: u64,
        at: Timestamp,
    ) -> Result<Vec<Verdict>, StorageError> {
        match self.batch_one_shard(builtin, items, cost, at) {
            Some(verdicts) => verdicts,
            None => self.batch_locked(builtin, items, cost, at),
        }
    }

    /// The common case: up to [`BATCH_INLINE`] keys stored under their own text in one
    /// shard (a few limits of one client), on copies of their inline states when they
    /// have them, else in place. `None` for any other batch.
    fn batch_one_shard(
        &self,
        builtin: BuiltIn,
        items: &[BatchItem<'_>],
        cost: u64,
        at: Timestamp,
    ) -> Option<Result<Vec<Verdict>, StorageError>> {
        let n = items.len();
        if n > BATCH_INLINE {
            return None;
        }
        let mut bufs = [const { None }; BATCH_INLINE];
        let mut keys = [(StoredKey::from(&b""[..]), 0u64); BATCH_INLINE];
        let mut shard = None;
        let mut seen = None;
        for ((slot, buf), item) in keys.iter_mut().zip(&mut bufs).zip(items) {
            let place = self.place_plain_key(item.key, buf.insert(KeyBuf::new()), &mut seen)?;
            if *shard.get_or_insert(place.shard) != place.shard {
                return None;
            }
            *slot = (place.key, place.hash);
        }
        let keys = &keys[..n];
        let mut guard = self.lock(shard.unwrap_or(0));
        let key_of = |i: usize| items[i].key;
        let mut copies = [InlineCopy::default(); BATCH_INLINE];
        if !guard.inline_copies(builtin, keys, at, &mut copies) {
            return Some(all_or_nothing(n, cost, at, Reach::InPlace, |i, op| {
                let (key, hash) = keys[i];
                guard
                    .apply(builtin, &key, hash, items[i].limit, op, at)
                    .map_err(|e| corrupt(builtin, key_of(i), &e))
            }));
        }
        let copies = &mut copies[..n];
        let shard = &*guard;
        let verdicts = all_or_nothing(n, cost, at, Reach::Copies, |i, op| {
            let copy = &mut copies[i];
            let op = match op {
                Op::Refund { .. } => {
                    shard.restore(copy, at);
                    Op::Test { cost }
                }
                op => op,
            };
            let outcome = match builtin.apply_inline(items[i].limit, &mut copy.state, op, at) {
                Some(Ok(outcome)) => outcome,
                Some(Err(e)) => return Err(corrupt(builtin, key_of(i), &e)),
                None => {
                    let e = StateError {
                        strategy: builtin.name(),
                        reason: "not an inline state",
                    };
                    return Err(corrupt(builtin, key_of(i), &e));
                }
            };
            if outcome.write.is_some() {
                copy.write = outcome.write;
            }
            Ok(outcome.verdict)
        });
        let passed = verdicts
            .as_ref()
            .is_ok_and(|verdicts| verdicts.iter().all(|v| v.allowed));
        guard.write_back(copies, passed, at);
        Some(verdicts)
    }

    /// Any batch: the shards of all its keys locked in ascending order, every state
    /// reached in place.
    fn batch_locked(
        &self,
        builtin: BuiltIn,
        items: &[BatchItem<'_>],
        cost: u64,
        at: Timestamp,
    ) -> Result<Vec<Verdict>, StorageError> {
        let mut bufs: Vec<KeyBuf> = items.iter().map(|_| KeyBuf::new()).collect();
        let places: Vec<Place<'_>> = items
            .iter()
            .zip(&mut bufs)
            .map(|(item, buf)| self.place(item.key, buf))
            .collect();
        let mut shard_ids: Vec<usize> = places.iter().map(|p| p.shard).collect();
        shard_ids.sort_unstable();
        shard_ids.dedup();
        // Ascending shard order: two batches never wait for each other in a cycle.
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            shard_ids.iter().map(|&s| self.lock(s)).collect();
        all_or_nothing(items.len(), cost, at, Reach::InPlace, |i, op| {
            let (item, place) = (&items[i], &places[i]);
            let slot = shard_ids.binary_search(&place.shard).unwrap_or_default();
            let (key, hash) = (&place.key, place.hash);
            apply_holding(&mut guards, slot, |shard, evict_held| {
                shard.apply_with(builtin, key, hash, item.limit, op, at, evict_held)
            })
            .map_err(|e| corrupt(builtin, item.key, &e))
        })
    }
}

/// Runs `apply` on the shard of `guards[slot]`, with an eviction from the other
/// locked shards (the one with the most entries) at hand for a new key in a full
/// storage: those shards cannot be locked again to make room.
fn apply_holding<T>(
    guards: &mut [MutexGuard<'_, Shard>],
    slot: usize,
    apply: impl FnOnce(&mut Shard, &mut dyn FnMut(u64) -> bool) -> T,
) -> T {
    let (before, rest) = guards.split_at_mut(slot.min(guards.len()));
    match rest.split_first_mut() {
        Some((shard, after)) => {
            let mut evict_held = |now: u64| {
                before
                    .iter_mut()
                    .chain(after.iter_mut())
                    .max_by_key(|other| other.len())
                    .is_some_and(|other| other.evict_one(now))
            };
            apply(shard, &mut evict_held)
        }
        // Unreachable: `slot` is the position of a locked shard.
        None => apply(&mut Shard::new(1, None, 0), &mut |_| false),
    }
}
