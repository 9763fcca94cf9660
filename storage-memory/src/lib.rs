//! In-memory storage for **limiter**: [`MemoryStorage`], the embedded default.
//!
//! A sharded hash map, bounded in memory, that runs every built-in strategy natively:
//! a hit locks one shard, decides in place and returns, with no compare-and-set loop and
//! no allocation when the key already exists. Multi-limit hits
//! ([`RateLimiter::hit_all`](limiter_core::RateLimiter::hit_all)) are atomic.
//!
//! # Examples
//!
//! ```
//! use limiter_core::{strategy::Gcra, Key, ManualClock, RateLimit, RateLimiter};
//! use limiter_memory::MemoryStorage;
//! use std::sync::Arc;
//!
//! # futures::executor::block_on(async {
//! let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
//!     .strategy(Gcra)
//!     .clock(ManualClock::new(0))
//!     .build();
//! let limit: RateLimit = "2 per second".parse()?;
//! let client = Key::from("203.0.113.9");
//!
//! assert!(limiter.hit(&limit, &client, 1).await?.is_allowed());
//! assert!(limiter.hit(&limit, &client, 1).await?.is_allowed());
//! let third = limiter.hit(&limit, &client, 1).await?;
//! assert!(!third.is_allowed());
//! assert_eq!(third.retry_after(), Some(std::time::Duration::from_millis(500)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! A storage bounded to 100,000 keys:
//!
//! ```
//! use limiter_memory::MemoryStorage;
//!
//! use limiter_memory::MemoryOptions;
//!
//! let storage = MemoryStorage::with_options(MemoryOptions::new().max_keys(100_000));
//! assert_eq!(storage.max_keys(), Some(100_000));
//! assert!(storage.is_empty());
//! ```
//!
//! # Design
//!
//! **Sharding.** Keys are spread over N shards (default: the next power of two at or
//! above 4 × [`available_parallelism`](std::thread::available_parallelism), at least
//! 64), each a [`parking_lot::Mutex`] over a table, padded to its own cache lines.
//! Keys come from clients, so their group ([`StorageKey::group`]: namespace, strategy
//! and identifiers) is hashed with a randomly seeded foldhash; the middle bits of that
//! hash pick the shard, so all of one client's limits under one strategy share a
//! shard. The key's full hash (the group's, mixed with the limit part, which the
//! application chooses) is computed once per operation and used as-is by the shard's
//! table, so no key is hashed twice and a lookup allocates nothing. No lock is held
//! across an `await`: every trait method is synchronous inside.
//!
//! **Layout.** A shard keeps its entries in one dense vector (72 bytes each: the
//! state, version, expiry, recency, hash and where the key is), an index over it (8
//! bytes a slot: the entry's position and where its key's bytes start), and the keys'
//! bytes back to back in one buffer. A stored key therefore costs no allocation of its
//! own, and a hit touches an index slot, then its entry and the key's bytes (to
//! confirm the match) at once. Two keys with the same full hash
//! both stay in the index, told apart by their bytes: collisions are handled, not
//! assumed away. A removed key's bytes stay in the buffer until they are half of it;
//! the buffer is then rebuilt from the live keys.
//!
//! **Native operations.** Each built-in strategy runs on the entry's state in place,
//! under the shard lock. States up to 25 bytes (every fixed-window, sliding-window and
//! GCRA state) are stored inside the entry and decided on directly
//! ([`BuiltIn::apply_inline`]); longer ones (moving-window logs) live in a heap buffer
//! that is reused. A hit on an existing key allocates nothing; a new key allocates
//! nothing either once its shard's vectors have room, and a peek or a rejected hit on
//! an absent key creates no entry.
//!
//! **Versions.** Every write gives the entry a new version from its shard's counter.
//! A key always lives in the same shard, so a deleted and re-created key never gets a
//! version it had before (no ABA), and no counter is shared between cores.
//!
//! **Expiry.** Each entry records when its time-to-live ends on the limiter's clock:
//! every call carries the limiter's time ([`KeyOp::now`], and the `now` of `get` and
//! `compare_and_set`), and the storage reads no clock of its own. So under a
//! [`ManualClock`](limiter_core::ManualClock) nothing expires until the clock moves,
//! however much real time passes, and a hit costs one clock read in all. Limiters that
//! share one `MemoryStorage` should share one clock: a caller whose clock runs ahead
//! reclaims the keys of the others as it would its own. An expired entry reads as
//! absent at once. Its memory is reclaimed incrementally, with no background thread: inserting a
//! key examines the next 4 entries of its shard at a sweep cursor (keys only
//! accumulate through insertions, so expired keys stay about as few as live ones), one
//! update in 32 examines the next 2, an eviction first looks for expired entries, a
//! read of an expired key removes it, and [`MemoryStorage::purge_expired`] removes
//! them all. Each of these costs O(1) per operation.
//!
//! **Bound.** With [`max_keys`](MemoryOptions::max_keys), the shards share one
//! atomic count of the keys stored in all of them; any shard may hold any share of
//! the bound. What `max_keys` guarantees:
//!
//! - [`len`](MemoryStorage::len) never exceeds `max_keys`, under any concurrency: a
//!   new key first reserves its place in the shared count, which never goes above the
//!   bound, and every entry that leaves (deleted, expired, evicted, cleared) gives its
//!   place back.
//! - **Nothing is evicted below the bound.** As long as fewer than `max_keys` keys are
//!   stored (expired ones not yet reclaimed count as stored), a new key is simply
//!   added, whatever the number of shards and however the keys spread over them.
//! - **At the bound, one key out for one key in.** A new key then evicts one entry and
//!   takes its place: an expired entry if a short sweep of the inserting shard finds
//!   one, else the least recently used of 8 entries of that shard sampled at random
//!   (approximate LRU, as in Redis: O(1) per insert; a hit only stores an access
//!   tick). If the inserting shard holds no entry, the victim comes from another shard:
//!   one that an atomic batch already holds, else the first one, from a random start,
//!   whose lock is free at that moment (`try_lock`, so that no shard lock ever waits
//!   for another). Recency is compared within a shard only, so with few keys per
//!   shard the choice is close to random.
//!
//! Evicting a live key forgets what it counted: the bound trades exactness under
//! memory pressure for bounded memory. Updating an existing key never evicts. In a
//! full storage, a new key whose shard is empty while every other shard with entries
//! stays locked for a thousand attempts is not stored (its hit is decided but not
//! counted); only pathological contention between batches can cause that.
//!
//! `max_keys` bounds keys, not bytes: see **Memory** for what a key costs.
//!
//! **Memory.** Measured as the growth of the process's resident set while 1,000,000
//! keys are stored, one hit each (glibc's allocator, x86-64; keys such as
//! `LIMITER/fixed-window/10.0.0.1/100/1/minute`, 42 bytes):
//! `cargo bench -p limiter-benches --bench memory`.
//!
//! | strategy | bytes per key |
//! |---|---|
//! | fixed window | 140 |
//! | sliding window | 151 |
//! | GCRA | 132 |
//! | moving window (one record) | 186 |
//!
//! That is the entry (72 bytes), the key's bytes, and the index slot (8 bytes) at the
//! index's load factor, plus the slack of vectors that grow by doubling. Longer keys cost
//! their extra bytes; the strategy names in the key account for the differences above.
//! Fixed-window, sliding-window and GCRA states are stored inside the entry, so their
//! keys cost the same whatever the limit.
//!
//! **Moving-window logs grow with the limit's amount.** A moving-window key keeps a
//! 16-byte record per millisecond with admitted hits in its window, so up to
//! `amount × 16` bytes of live records on the heap, on top of the figure above (up to
//! twice that while expired records wait to be dropped in bulk; the buffer keeps its
//! capacity while the key lives). A key under `1000000 per hour` can hold 16 MB;
//! 100,000 keys under `1000 per minute`, 1.6 GB.
//! [`max_keys`](MemoryOptions::max_keys) counts such a key as one, so with
//! moving windows the memory bound is about `max_keys × (190 + 32 × amount)` bytes for
//! the largest amount in use: choose `max_keys` from that, or prefer the sliding-window
//! or GCRA strategies (constant size) for large amounts.
//!
//! **Atomic batches.** [`Storage::batch`] of up to four keys of one group (a
//! [`RateLimiter::hit_all`](limiter_core::RateLimiter::hit_all)) locks their one
//! shard, runs every hit on a copy of its inline state, and writes the copies back only
//! if all of them pass; otherwise it answers with tests of the unchanged states. Other
//! batches (more keys, keys of several groups, a key not yet stored, moving-window
//! logs) lock the shards of all their keys, in ascending shard order so that
//! concurrent batches cannot deadlock, peek every limit, and consume them all only if
//! all pass, under the same locks.
#![forbid(unsafe_code)]

mod options;
mod shard;

pub use options::{MemoryOptions, MemoryOptionsError, SCHEMES};

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use foldhash::quality::RandomState;
use limiter_core::async_trait;
use limiter_core::strategy::{BuiltIn, Op, StateError, Verdict};
use limiter_core::{
    BatchItem, KeyOp, Native, Storage, StorageError, StorageErrorKind, StorageKey, Timestamp,
    Version, Versioned,
};
use parking_lot::{Mutex, MutexGuard};

use shard::{deadline, Bound, Shard};

/// The most shards a storage has.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

/// The fewest shards the default configuration has.
const MIN_DEFAULT_SHARDS: usize = 64;

/// A shard on its own cache lines, so that neighbouring locks do not share one.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// An in-memory [`Storage`]: sharded, optionally bounded, with every built-in strategy
/// and atomic multi-limit batches run natively. See the [crate docs](crate) for the
/// design.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct MemoryStorage {
    shards: Arc<[Padded]>,
    /// `shards.len()` as a `u64`, for shard selection.
    shard_count: u64,
    hasher: RandomState,
    max_keys: Option<usize>,
    /// The key count shared by the shards, when `max_keys` bounds it.
    bound: Option<Arc<Bound>>,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("shards", &self.shards.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

fn default_shards() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    cores
        .saturating_mul(4)
        .checked_next_power_of_two()
        .unwrap_or(MAX_SHARDS)
        .clamp(MIN_DEFAULT_SHARDS, MAX_SHARDS)
}

impl MemoryStorage {
    /// An unbounded storage with the default number of shards.
    pub fn new() -> MemoryStorage {
        MemoryStorage::with_options(MemoryOptions::new())
    }

    /// The storage for [`with_options`](Self::with_options).
    fn build(max_keys: Option<usize>, shards: Option<usize>) -> MemoryStorage {
        let max_keys = max_keys.map(|max| max.max(1));
        let mut count = shards.unwrap_or_else(default_shards).clamp(1, MAX_SHARDS);
        if let Some(max) = max_keys {
            count = count.min(max);
        }
        let hasher = RandomState::default();
        // One key count for all the shards: any shard may hold any share of the bound.
        let bound = max_keys.map(|max| Arc::new(Bound::new(max)));
        let shards = (0..count)
            .map(|i| {
                let seed = std::hash::BuildHasher::hash_one(&hasher, i);
                Padded(Mutex::new(Shard::new(usize::MAX, bound.clone(), seed)))
            })
            .collect::<Arc<[Padded]>>();
        if let Some(bound) = &bound {
            bound.set_shards(&shards);
        }
        MemoryStorage {
            shard_count: count as u64,
            shards,
            hasher,
            max_keys,
            bound,
        }
    }

    /// The number of keys stored, including expired keys not yet reclaimed (see
    /// [`purge_expired`](Self::purge_expired)). With
    /// [`max_keys`](MemoryOptions::max_keys), one read of the shared key count,
    /// which never exceeds the bound (an insertion under way counts from the moment it
    /// reserves its place). Unbounded, it locks each shard in turn, so under concurrent
    /// writes it is a snapshot of no single instant.
    pub fn len(&self) -> usize {
        match &self.bound {
            Some(bound) => bound.keys(),
            None => self.shards.iter().map(|s| s.0.lock().len()).sum(),
        }
    }

    /// Whether no key is stored (expired keys not yet reclaimed count as stored).
    pub fn is_empty(&self) -> bool {
        match &self.bound {
            Some(bound) => bound.keys() == 0,
            None => self.shards.iter().all(|s| s.0.lock().len() == 0),
        }
    }

    /// Removes every key expired at `now` (the limiters' time, as their
    /// [`Clock`](limiter_core::Clock) reads it) and returns how many were removed. Takes
    /// time proportional to the number of keys, one shard lock at a time.
    pub fn purge_expired(&self, now: Timestamp) -> usize {
        let now = now.as_millis();
        self.shards.iter().map(|s| s.0.lock().purge(now)).sum()
    }

    /// The bound on the number of keys, if any.
    pub fn max_keys(&self) -> Option<usize> {
        self.max_keys
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn hash(&self, part: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, part)
    }

    /// Where `key` lives: its shard, from the hash of its group alone, so that all of
    /// one client's limits under one strategy share a shard (a multi-limit hit then
    /// locks one shard); and its full hash in the shard's table, the group's hash
    /// mixed with the limit part. Only the group holds what clients choose, so only
    /// the group goes through the seeded hash; the limit part (the application's
    /// limits) is mixed in cheaply.
    fn place(&self, key: &StorageKey) -> (usize, u64) {
        let group = self.hash(key.group());
        (
            self.shard_of(group),
            group ^ mix(key.limit_part().as_bytes()),
        )
    }

    /// The shard of a group's hash: its middle 32 bits scaled to the shard count.
    fn shard_of(&self, hash: u64) -> usize {
        let middle = (hash >> 24) & 0xFFFF_FFFF;
        usize::try_from((middle * self.shard_count) >> 32).unwrap_or(0)
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard.min(self.shards.len() - 1)].0.lock()
    }

    /// Every native operation: one shard lock, the built-in applied in place.
    fn native(&self, builtin: BuiltIn, op: &KeyOp<'_>) -> Result<Verdict, StorageError> {
        let (shard, hash) = self.place(op.key);
        let key = op.key.as_str();
        let now = op.now.as_millis();
        self.lock(shard)
            .apply(builtin, key, hash, op.limit, op.op, op.now, now)
            .map_err(|e| corrupt(builtin, key, &e))
    }

    fn batch_now(
        &self,
        builtin: BuiltIn,
        items: &[BatchItem<'_>],
        cost: u64,
        at: Timestamp,
    ) -> Result<Vec<Verdict>, StorageError> {
        let now = at.as_millis();
        // The common case: a few limits of one client, in one shard.
        if items.len() <= shard::BATCH_INLINE {
            let mut places = [(0usize, 0u64); shard::BATCH_INLINE];
            for (place, item) in places.iter_mut().zip(items) {
                *place = self.place(item.key);
            }
            let places = &places[..items.len()];
            let shard = places.first().map_or(0, |p| p.0);
            if places.iter().all(|p| p.0 == shard) {
                let mut guard = self.lock(shard);
                let mut batch = [("", 0u64, None); shard::BATCH_INLINE];
                for ((slot, item), place) in batch.iter_mut().zip(items).zip(places) {
                    *slot = (item.key.as_str(), place.1, Some(item.limit));
                }
                let batch = &batch[..items.len()];
                if let Some(result) = guard.batch_inline(builtin, batch, cost, at, now) {
                    return result.map_err(|(i, e)| {
                        let key = items.get(i).map_or("", |item| item.key.as_str());
                        corrupt(builtin, key, &e)
                    });
                }
            }
        }
        let places: Vec<(usize, u64)> = items.iter().map(|item| self.place(item.key)).collect();
        let mut shard_ids: Vec<usize> = places.iter().map(|p| p.0).collect();
        shard_ids.sort_unstable();
        shard_ids.dedup();
        // Ascending shard order: two batches never wait for each other in a cycle.
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            shard_ids.iter().map(|&s| self.lock(s)).collect();
        let mut run = |i: usize, op: Op| -> Result<Verdict, StorageError> {
            let item = &items[i];
            let (shard, hash) = places[i];
            let slot = shard_ids.binary_search(&shard).unwrap_or_default();
            let key = item.key.as_str();
            apply_holding(&mut guards, slot, |shard, evict_held| {
                shard.apply_with(builtin, key, hash, item.limit, op, at, now, evict_held)
            })
            .map_err(|e| corrupt(builtin, key, &e))
        };

        let mut verdicts = Vec::with_capacity(items.len());
        for i in 0..items.len() {
            verdicts.push(run(i, Op::Test { cost })?);
        }
        if verdicts.iter().any(|v| !v.allowed) {
            return Ok(verdicts);
        }
        for i in 0..items.len() {
            let verdict = run(i, Op::Hit { cost })?;
            if !verdict.allowed {
                // Only possible when a key is repeated in `items`: undo this batch's
                // earlier hits so that nothing is consumed.
                for j in 0..i {
                    run(j, Op::Refund { cost, at })?;
                }
                verdicts[i] = verdict;
                return Ok(verdicts);
            }
            verdicts[i] = verdict;
        }
        Ok(verdicts)
    }
}

/// A quick unseeded hash of a limit part (`amount/multiples/unit`, a few dozen bytes),
/// eight bytes at a time; the last word overlaps the one before.
fn mix(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let len = bytes.len();
    let mut h = (len as u64).wrapping_mul(K);
    if len < 8 {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(K);
        }
    } else {
        let mut at = 0;
        while at + 8 < len {
            h = (h ^ word(at)).wrapping_mul(K).rotate_left(23);
            at += 8;
        }
        h = (h ^ word(len - 8)).wrapping_mul(K);
    }
    h ^ (h >> 29)
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

fn corrupt(builtin: BuiltIn, key: &str, error: &StateError) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, builtin.name(), error.to_string()).with_key(key)
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        let (shard, hash) = self.place(key);
        let found = self.lock(shard).get(key.as_str(), hash, now.as_millis());
        Ok(found.map(|(value, version)| Versioned {
            value,
            version: Version(version),
        }))
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let (shard, hash) = self.place(key);
        let now = now.as_millis();
        let expected = expected.map(|v| v.0);
        let expires = deadline(now, ttl);
        Ok(self
            .lock(shard)
            .compare_and_set(key.as_str(), hash, expected, value, expires, now))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let (shard, hash) = self.place(key);
        self.lock(shard).delete(key.as_str(), hash);
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }

    async fn clear_all(&self) -> Result<(), StorageError> {
        for shard in &*self.shards {
            shard.0.lock().clear();
        }
        Ok(())
    }

    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Native<'a, Verdict> {
        Native::Ready(self.native(strategy, &op))
    }

    fn batch<'a>(
        &'a self,
        strategy: BuiltIn,
        items: &'a [BatchItem<'a>],
        cost: u64,
        now: Timestamp,
    ) -> Native<'a, Vec<Verdict>> {
        Native::Ready(self.batch_now(strategy, items, cost, now))
    }
}
