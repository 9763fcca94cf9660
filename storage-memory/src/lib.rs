//! In-memory storage for **limiter**: [`MemoryStorage`], the embedded default.
//!
//! A sharded hash map, bounded in bytes (64 MiB by default), that runs every built-in
//! strategy natively: a hit locks one shard, decides in place and returns, with no
//! compare-and-set loop and no allocation when the key already exists. Multi-limit hits
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
//! [`MemoryStorage::new`] holds at most 64 MiB ([`DEFAULT_MAX_BYTES`]). A storage
//! bounded to 256 MiB and 100,000 keys:
//!
//! ```
//! use limiter_memory::MemoryStorage;
//!
//! let storage = MemoryStorage::builder()
//!     .max_bytes(256 << 20)
//!     .max_keys(100_000)
//!     .build();
//! assert_eq!(storage.max_keys(), Some(100_000));
//! assert_eq!(storage.max_bytes(), Some(256 << 20));
//! assert!(storage.is_empty());
//! assert_eq!(storage.bytes(), 0);
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
//! assumed away. A removed key's bytes stay in the buffer until they are half of it
//! (a quarter, when the storage is full); the live keys' bytes are then moved to its
//! front, in place.
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
//! **Bound.** A storage is bounded in bytes by default
//! ([`max_bytes`](MemoryStorageBuilder::max_bytes), [`DEFAULT_MAX_BYTES`] = 64 MiB), and
//! optionally in keys ([`max_keys`](MemoryStorageBuilder::max_keys)); the shards share
//! one atomic count of the keys and one of the bytes stored in all of them, and any
//! shard may hold any share of the bounds. The bytes counted
//! ([`bytes`](MemoryStorage::bytes)) are, per key, its entry and index slot (80 bytes),
//! its stored key's bytes (at most 513, see **Memory**) and the capacity of its heap
//! state (a moving-window log), plus the bytes of removed keys until their shard's key
//! buffer is compacted. What the bounds guarantee:
//!
//! - [`len`](MemoryStorage::len) never exceeds `max_keys` and
//!   [`bytes`](MemoryStorage::bytes) never exceeds `max_bytes`, under any concurrency: a
//!   new key first reserves its place and its bytes in the shared counts, which never
//!   go above the bounds, a growing moving-window log reserves its new capacity before
//!   it grows, and every entry that leaves (deleted, expired, evicted, cleared) gives
//!   its place and its bytes back (its key's bytes when they are compacted away).
//! - **Nothing is evicted below the bounds.** As long as a new key (or a log's growth)
//!   fits, it is simply added, whatever the number of shards and however the keys
//!   spread over them (expired keys not yet reclaimed count as stored).
//! - **At a bound, evict to make room.** A new key then frees room and tries again,
//!   until it fits: it compacts its shard's key buffer if a quarter of it is bytes of
//!   removed keys, else evicts an expired entry if a short sweep of the inserting shard
//!   finds one, else the least recently used of 8 entries of that shard sampled at
//!   random (approximate LRU, as in Redis: O(1) per insert; a hit only stores an access
//!   tick). At the key bound that is one key out for one key in; at the byte bound,
//!   as many as the new key's bytes need. If the inserting shard holds no entry, the
//!   victim comes from another shard: one that an atomic batch already holds, else the
//!   first one, from a random start, whose lock is free at that moment (`try_lock`, so
//!   that no shard lock ever waits for another). Recency is compared within a shard
//!   only, so with few keys per shard the choice is close to random.
//!
//! Evicting a live key forgets what it counted: the bounds trade exactness under
//! memory pressure for bounded memory. Updating a fixed-window, sliding-window or GCRA
//! key never evicts (its state is inside its entry). A moving-window hit that passes
//! may need its log to grow: the log's capacity doubles when the byte count has room,
//! else grows by just what one hit adds (33 bytes), evicting other keys (never the
//! log's own) to make room. A hit the limit refuses anyway needs no room.
//!
//! **A hit that cannot be stored is refused, never admitted uncounted.** That happens
//! when a moving-window log cannot grow because nothing else is left to evict (a
//! single log larger than `max_bytes`), or, in a full storage, when a new key's shard
//! is empty while every other shard with entries stays locked for a thousand attempts
//! (only pathological contention between batches causes that). The hit is then
//! refused with `retry_at` one second later, and nothing is recorded, so no more hits
//! pass than the limit allows; in a batch, the hits already taken are refunded. A
//! compare-and-set whose state cannot be stored returns `false`.
//!
//! **Opting out.** [`unbounded`](MemoryStorageBuilder::unbounded) lifts both bounds,
//! and `max_bytes(usize::MAX)` the byte bound alone. Do so only when clients cannot
//! choose keys freely: unbounded, every distinct key a client sends stays until it
//! expires.
//!
//! **Memory.** Measured as the growth of the process's resident set while 1,000,000
//! keys are stored in an unbounded storage, one hit each (glibc's allocator, x86-64;
//! keys such as `LIMITER/fixed-window/10.0.0.1/100/1/minute`, 42 bytes):
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
//! keys cost the same whatever the limit. So the default 64 MiB hold about 500,000
//! such keys.
//!
//! **Long keys are digested.** A key's group (namespace, strategy and identifiers,
//! [`StorageKey::group`]) or limit part ([`StorageKey::limit_part`]) longer than
//! [`DIGEST_ABOVE`] (256) bytes is stored as its first 64 bytes, a `0xFF` byte (never
//! part of a key's text, which is UTF-8) and the SHA-256 of the whole part: 97 bytes.
//! So a stored key takes at most 513 bytes, and an entry at most about 600 counted
//! bytes, whatever the key function returns (a 64 KiB header as the key costs what a
//! 300-byte one does). Lookups digest the same way, so this is invisible to callers:
//! two keys share a stored key only if their long parts share a SHA-256 digest. A
//! group is stored the same way under every limit, so all of one client's limits still
//! share a shard. Keys whose parts are at most 256 bytes are stored as they are,
//! borrowed from the caller, with no allocation.
//!
//! **The resident set exceeds the count** by the vectors' and the index's slack and
//! the allocator's: a default storage flooded with 1,000,000 distinct 1 KiB keys (the
//! `million_long_keys` test) counts at most 64 MiB and its process grows by about
//! 80 MiB; allow about a third more than `max_bytes`.
//!
//! **Moving-window logs grow with the limit's amount.** A moving-window key keeps a
//! 16-byte record per millisecond with admitted hits in its window, so up to
//! `amount × 16` bytes of live records on the heap, on top of the figure above (up to
//! twice that while expired records wait to be dropped in bulk; the buffer keeps its
//! capacity while the key lives). A key under `1000000 per hour` can hold 16 MB;
//! 100,000 keys under `1000 per minute`, 1.6 GB. The byte bound counts these buffers,
//! so they evict other keys rather than grow memory past it; prefer the sliding-window
//! or GCRA strategies (constant size) for large amounts.
//!
//! **Atomic batches.** [`Storage::batch`] of up to four keys of one group (a
//! [`RateLimiter::hit_all`](limiter_core::RateLimiter::hit_all)) locks their one
//! shard, runs every hit on a copy of its inline state, and writes the copies back only
//! if all of them pass; otherwise it answers with tests of the unchanged states. Other
//! batches (more keys, keys of several groups, a key not yet stored or digested,
//! moving-window logs that need room) lock the shards of all their keys, in ascending shard order so that
//! concurrent batches cannot deadlock, peek every limit, and consume them all only if
//! all pass, under the same locks.
#![forbid(unsafe_code)]

mod batch;
mod bound;
mod place;
mod shard;
mod storage;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use foldhash::quality::RandomState;
use limiter_core::Timestamp;
use parking_lot::Mutex;

use bound::Bound;
use shard::Shard;

/// The most shards a storage has (see [`MemoryStorageBuilder::shards`]).
pub const MAX_SHARDS: usize = 1 << 16;

/// The byte bound of [`MemoryStorage::new`] and of a builder that sets none: 64 MiB
/// (see [`MemoryStorageBuilder::max_bytes`]).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// The smallest byte bound: 4 KiB, room for the longest stored key with its entry
/// and a moving-window log (see [`MemoryStorageBuilder::max_bytes`]).
pub const MIN_MAX_BYTES: usize = 4 << 10;

/// The longest part of a key (its group or its limit part, see
/// [`StorageKey`](limiter_core::storage::StorageKey)) stored as it is: a longer part is
/// digested (see the crate docs, **Memory**).
pub const DIGEST_ABOVE: usize = 256;

/// The fewest shards the default configuration has.
const MIN_DEFAULT_SHARDS: usize = 64;

/// A shard on its own cache lines, so that neighbouring locks do not share one.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// An in-memory [`Storage`](limiter_core::Storage): sharded, bounded in bytes (by
/// default) and optionally in keys, with every built-in strategy and atomic
/// multi-limit batches run natively. See the [crate docs](crate).
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct MemoryStorage {
    shards: Arc<[Padded]>,
    /// `shards.len()` as a `u64`, for shard selection.
    shard_count: u64,
    hasher: RandomState,
    max_keys: Option<usize>,
    max_bytes: Option<usize>,
    /// The key and byte counts shared by the shards, when `max_keys` or `max_bytes`
    /// bounds them.
    bound: Option<Arc<Bound>>,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("shards", &self.shards.len())
            .field("max_keys", &self.max_keys)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

/// Builds a [`MemoryStorage`]; see [`MemoryStorage::builder`].
///
/// By default the storage holds at most [`DEFAULT_MAX_BYTES`] (64 MiB) and any number
/// of keys within that: see [`max_bytes`](Self::max_bytes),
/// [`max_keys`](Self::max_keys) and [`unbounded`](Self::unbounded).
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryStorageBuilder {
    max_keys: Option<usize>,
    max_bytes: Option<usize>,
    shards: Option<usize>,
}

impl Default for MemoryStorageBuilder {
    fn default() -> Self {
        MemoryStorageBuilder {
            max_keys: None,
            max_bytes: Some(DEFAULT_MAX_BYTES),
            shards: None,
        }
    }
}

impl MemoryStorageBuilder {
    /// Keeps at most `max_keys` keys (at least 1), evicting approximately the least
    /// recently used. Default: no bound on the number of keys, only the byte bound
    /// ([`max_bytes`](Self::max_bytes)); expired keys are reclaimed either way.
    ///
    /// [`len`](MemoryStorage::len) never exceeds `max_keys`, and no key is evicted
    /// while fewer than `max_keys` are stored (and the byte bound is not reached),
    /// whatever the number of shards: eviction only starts at the bound, one key out
    /// for each new key in (see the crate docs, **Bound**).
    ///
    /// This bounds keys, not bytes: the byte bound, on by default, is what bounds
    /// memory. A fixed-window, sliding-window or GCRA key costs about 130 to 150 bytes
    /// (see the crate docs, **Memory**), but a moving-window key keeps a 16-byte record
    /// per millisecond with admitted hits in its window: up to `amount × 16` bytes of
    /// live records (16 MB for `1000000 per hour`), and up to twice that before
    /// expired records are dropped.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys.max(1));
        self
    }

    /// Holds at most `max_bytes` bytes of keys and states (at least [`MIN_MAX_BYTES`],
    /// 4 KiB), evicting approximately the least recently used keys to make room.
    /// Default: [`DEFAULT_MAX_BYTES`], 64 MiB. `usize::MAX` lifts the byte bound.
    ///
    /// The bytes counted ([`MemoryStorage::bytes`]) are, for each key, its entry and
    /// index slot (80 bytes), its stored key's bytes (at most 513: longer keys are
    /// digested, see the crate docs, **Memory**) and the capacity of its heap state
    /// (moving-window logs; other states are inside the entry); plus the bytes of
    /// removed keys until their shard's key buffer is compacted. The guarantees are
    /// those of [`max_keys`](Self::max_keys): the count never exceeds `max_bytes`, under
    /// any concurrency (bytes are reserved before a key is inserted or a state grows),
    /// and nothing is evicted below it (see the crate docs, **Bound**). The process's
    /// memory is larger than the count by the slack of the vectors and the index
    /// (about a third more in the measurements of the crate docs, **Memory**).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = (max_bytes != usize::MAX).then(|| max_bytes.max(MIN_MAX_BYTES));
        self
    }

    /// Lifts both bounds: no [`max_keys`](Self::max_keys), no
    /// [`max_bytes`](Self::max_bytes). Expired keys are still reclaimed, but live keys
    /// are never evicted, so memory grows with the number of distinct keys clients
    /// send: only for keys that clients cannot choose freely.
    pub fn unbounded(mut self) -> Self {
        self.max_keys = None;
        self.max_bytes = None;
        self
    }

    /// The number of shards, from 1 to 65,536 (any value, not only powers of two).
    /// Default: the next power of two at or above 4 × the available parallelism, and at
    /// least 64. With [`max_keys`](Self::max_keys), never more shards than keys.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards.clamp(1, MAX_SHARDS));
        self
    }

    /// Builds the storage.
    pub fn build(self) -> MemoryStorage {
        let mut count = self.shards.unwrap_or_else(default_shards);
        if let Some(max) = self.max_keys {
            count = count.min(max);
        }
        let hasher = RandomState::default();
        // One key count and one byte count for all the shards: any shard may hold any
        // share of the bounds.
        let bound = (self.max_keys.is_some() || self.max_bytes.is_some()).then(|| {
            Arc::new(Bound::new(
                self.max_keys.unwrap_or(usize::MAX),
                self.max_bytes.unwrap_or(usize::MAX),
            ))
        });
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
            max_keys: self.max_keys,
            max_bytes: self.max_bytes,
            bound,
        }
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
    /// A storage bounded to [`DEFAULT_MAX_BYTES`] (64 MiB), with the default number of
    /// shards. For another bound, or none, see [`builder`](Self::builder).
    pub fn new() -> MemoryStorage {
        MemoryStorage::builder().build()
    }

    /// A builder, to choose the bounds on bytes and keys, or the number of shards.
    pub fn builder() -> MemoryStorageBuilder {
        MemoryStorageBuilder::default()
    }

    /// The number of keys stored, including expired keys not yet reclaimed (see
    /// [`purge_expired`](Self::purge_expired)). In a bounded storage (the default), one
    /// read of the shared key count, which never exceeds
    /// [`max_keys`](MemoryStorageBuilder::max_keys) (an insertion under way counts from
    /// the moment it reserves its place). Unbounded, it locks each shard in turn, so
    /// under concurrent writes it is a snapshot of no single instant.
    pub fn len(&self) -> usize {
        match &self.bound {
            Some(bound) => bound.keys(),
            None => self.shards.iter().map(|s| s.0.lock().len()).sum(),
        }
    }

    /// The bytes the storage counts against [`max_bytes`](MemoryStorageBuilder::max_bytes):
    /// per key its entry and index slot, its stored key and its heap state, plus the
    /// bytes of removed keys not yet compacted away (see
    /// [`MemoryStorageBuilder::max_bytes`]). In a bounded storage, one read of the
    /// shared count, which never exceeds `max_bytes` (reservations under way count);
    /// unbounded, a sum over the shards, locked in turn.
    pub fn bytes(&self) -> usize {
        match &self.bound {
            Some(bound) => bound.bytes(),
            None => self.shards.iter().map(|s| s.0.lock().bytes()).sum(),
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

    /// The bound on the number of keys, if any (none by default).
    pub fn max_keys(&self) -> Option<usize> {
        self.max_keys
    }

    /// The bound on the bytes held, if any ([`DEFAULT_MAX_BYTES`] by default).
    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}
