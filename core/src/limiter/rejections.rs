//! The local rejection cache: after a storage rejected a hit or test of cost 1 on a
//! key with a retry time `T`, later hits and tests of cost 1 on that key are rejected
//! here, without a round trip, until the limiter's clock reaches `T`.
//!
//! Why that never admits what the storage would reject: it never admits anything. And
//! why it rejects nothing the storage would admit, but for refunds and clears made
//! elsewhere: `T` is the earliest instant at which the same operation on the same
//! state passes, and hits by others only push it later. Why the decision is the
//! storage's: the state is the one the storage rejected on (any hit this limiter gets
//! admitted on the key, and any refund or clear through it, forgets the entry), so
//! `T` and `reset_at` are unchanged, and `remaining` stays 0 until `T` (the first
//! instant one unit is free). Larger costs are not cached: before their retry time a
//! sliding or moving window, or the GCRA, frees units one by one, so the storage's
//! `remaining` would move under a cached answer.
//!
//! Memory is bounded: a fixed number of slots in a few locked shards, each key mapped
//! to one slot by its hash; a new entry evicts whatever held its slot.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use crate::clock::Timestamp;
use crate::key::StorageKey;
use crate::strategy::{Op, Verdict};

const SHARDS: usize = 16;

/// The only cost cached: see the module docs.
const CACHED_COST: u64 = 1;

struct Entry {
    key: Box<str>,
    /// The cost of the rejected operation: larger costs are rejected too.
    cost: u64,
    /// The storage's verdict, whose `retry_at` is `Some`.
    verdict: Verdict,
}

/// One shard's slots.
type Shard = Mutex<Box<[Option<Entry>]>>;

/// A bounded map from stored key to its latest rejection.
pub(crate) struct Rejections {
    shards: Box<[Shard]>,
    slots: usize,
    hasher: RandomState,
}

impl Rejections {
    /// A cache of about `capacity` entries (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Rejections {
        let slots = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| Mutex::new((0..slots).map(|_| None).collect()))
            .collect();
        Rejections {
            shards,
            slots,
            hasher: RandomState::new(),
        }
    }

    /// The number of entries it can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.slots * SHARDS
    }

    fn with_slot<R>(&self, key: &str, f: impl FnOnce(&mut Option<Entry>) -> R) -> R {
        let hash = self.hasher.hash_one(key);
        let shard_index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        let slot = usize::try_from((hash / SHARDS as u64) % self.slots as u64).unwrap_or(0);
        let mut shard = self.shards[shard_index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut shard[slot])
    }

    /// The cached rejection of `op` on `key` at `now`, if one applies: a hit or test of
    /// cost 1, before the retry time.
    pub(crate) fn lookup(
        &self,
        key: &StorageKey,
        op: Op,
        amount: u64,
        now: Timestamp,
    ) -> Option<Verdict> {
        let cost = match op {
            Op::Hit { cost } | Op::Test { cost } if cost == CACHED_COST && amount >= 1 => cost,
            _ => return None,
        };
        self.with_slot(key.as_str(), |slot| {
            let entry = slot.as_ref()?;
            if &*entry.key != key.as_str() {
                return None;
            }
            match entry.verdict.retry_at {
                Some(retry_at) if now < retry_at => (cost == entry.cost).then_some(entry.verdict),
                _ => {
                    *slot = None;
                    None
                }
            }
        })
    }

    /// Remembers the storage's `verdict` on `op`, if it is a rejection that can pass
    /// later; forgets the key's entry when it is an admitted hit, which changed the
    /// state.
    pub(crate) fn record(
        &self,
        key: &StorageKey,
        op: Op,
        amount: u64,
        verdict: &Verdict,
        now: Timestamp,
    ) {
        if verdict.allowed && matches!(op, Op::Hit { .. }) {
            self.forget(key);
            return;
        }
        let cost = match op {
            Op::Hit { cost } | Op::Test { cost } if cost == CACHED_COST && amount >= 1 => cost,
            _ => return,
        };
        if verdict.allowed || verdict.retry_at.is_none_or(|at| now >= at) {
            return;
        }
        self.with_slot(key.as_str(), |slot| {
            if let Some(entry) = slot.as_mut().filter(|e| &*e.key == key.as_str()) {
                entry.cost = cost;
                entry.verdict = *verdict;
            } else {
                *slot = Some(Entry {
                    key: key.as_str().into(),
                    cost,
                    verdict: *verdict,
                });
            }
        });
    }

    /// Forgets `key`'s entry (after a clear or a refund).
    pub(crate) fn forget(&self, key: &StorageKey) {
        self.with_slot(key.as_str(), |slot| {
            if slot.as_ref().is_some_and(|e| &*e.key == key.as_str()) {
                *slot = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(remaining: u64, retry_ms: u64) -> Verdict {
        Verdict {
            allowed: false,
            remaining,
            reset_at: Timestamp::from_millis(60_000),
            retry_at: Some(Timestamp::from_millis(retry_ms)),
        }
    }

    #[test]
    fn rejects_hits_of_cost_one_until_the_retry_time_only() {
        let cache = Rejections::new(64);
        let key = StorageKey::new("g", "l");
        let at = Timestamp::from_millis;
        let hit = |cost| Op::Hit { cost };
        cache.record(&key, hit(2), 10, &rejected(1, 500), at(0));
        assert_eq!(cache.lookup(&key, hit(2), 10, at(1)), None, "costs above 1");
        cache.record(&key, hit(1), 10, &rejected(0, 500), at(0));
        assert_eq!(
            cache.lookup(&key, hit(1), 10, at(499)),
            Some(rejected(0, 500))
        );
        let test = Op::Test { cost: 1 };
        assert_eq!(cache.lookup(&key, test, 10, at(1)), Some(rejected(0, 500)));
        assert_eq!(cache.lookup(&key, hit(2), 10, at(1)), None, "a larger cost");
        let other = StorageKey::new("g", "m");
        assert_eq!(cache.lookup(&other, hit(1), 10, at(1)), None);
        assert_eq!(cache.lookup(&key, hit(1), 10, at(500)), None, "retry time");
        assert_eq!(
            cache.lookup(&key, hit(1), 10, at(1)),
            None,
            "expired entries go"
        );
        cache.record(&key, hit(1), 10, &rejected(0, 900), at(0));
        cache.forget(&key);
        assert_eq!(cache.lookup(&key, hit(1), 10, at(1)), None, "forgotten");
        cache.record(&key, hit(1), 10, &rejected(0, 900), at(0));
        let admitted = Verdict {
            allowed: true,
            retry_at: None,
            ..rejected(0, 0)
        };
        cache.record(&key, hit(1), 10, &admitted, at(0));
        assert_eq!(
            cache.lookup(&key, hit(1), 10, at(1)),
            None,
            "an admitted hit forgets"
        );
        let refund = Op::Refund { cost: 1, at: at(0) };
        cache.record(&key, refund, 10, &rejected(0, 900), at(0));
        assert_eq!(
            cache.lookup(&key, hit(1), 10, at(1)),
            None,
            "refunds are not cached"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let cache = Rejections::new(100);
        assert!(cache.capacity() >= 100 && cache.capacity() < 100 + SHARDS);
        for i in 0..10_000 {
            let key = StorageKey::new(&i.to_string(), "l");
            cache.record(
                &key,
                Op::Hit { cost: 1 },
                5,
                &rejected(0, 10),
                Timestamp::ZERO,
            );
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().map(|s| s.iter().flatten().count()).unwrap_or(0))
            .sum();
        assert!(held <= cache.capacity(), "{held}");
    }
}
