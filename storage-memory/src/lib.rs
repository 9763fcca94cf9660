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
//! use limiter_memory::{MemoryOptions, MemoryStorage};
//!
//! let storage =
//!     MemoryStorage::with_options(MemoryOptions::new().max_bytes(256 << 20).max_keys(100_000));
//! assert_eq!(storage.max_keys(), Some(100_000));
//! assert_eq!(storage.max_bytes(), Some(256 << 20));
//! assert!(storage.is_empty());
//! assert_eq!(storage.bytes(), 0);
//! ```
//!
//! # Bound
//!
//! [`len`](MemoryStorage::len) never exceeds
//! [`max_keys`](MemoryOptions::max_keys) and [`bytes`](MemoryStorage::bytes)
//! never exceeds [`max_bytes`](MemoryOptions::max_bytes), under any concurrency,
//! and nothing is evicted below them. At a bound, a new key makes room by evicting an
//! expired key, else approximately the least recently used one (one key out for one
//! in at the key bound); evicting a live key forgets what it counted. A hit that
//! cannot be stored (a moving-window log with nothing left to evict) is refused, never
//! admitted uncounted. [`unbounded`](MemoryOptions::unbounded) lifts both
//! bounds: only for keys that clients cannot choose freely.
//!
//! # Memory
//!
//! A fixed-window, sliding-window or GCRA key costs about 120 to 145 bytes, whatever
//! its limit, so the default 64 MiB hold about 500,000. A moving-window key also keeps
//! 16 bytes per millisecond with admitted hits in its window (up to `amount × 16`):
//! prefer the other strategies for large amounts. A key part longer than
//! [`DIGEST_ABOVE`] bytes is stored digested (its first 64 bytes and a SHA-256), so a
//! stored key takes at most 513 bytes whatever the key function returns. The process
//! grows by about a third more than the bytes counted (the slack of vectors and
//! allocator). Measured figures, with the commands: the repository's
//! `benches/README.md`.
//!
//! # Expiry
//!
//! Keys expire on the limiter's clock (the storage reads none of its own), so
//! limiters that share one `MemoryStorage` should share one clock. Expired keys read
//! as absent at once and are reclaimed a few at a time as keys are written, with no
//! background thread; [`purge_expired`](MemoryStorage::purge_expired) removes them all.
//!
//! # One limit, synchronously
//!
//! [`KeyedLimiter`] is this crate's other door: one GCRA limit over keys of any
//! hashable type, decided at once on one atomic word per key, with no storage trait
//! and no `async` in between (governor's shape, with this library's verdicts and
//! bounds). It holds its own keys, apart from any `MemoryStorage`.
//!
//! How it works inside: `ARCHITECTURE.md`, next to this crate's `Cargo.toml`.
#![forbid(unsafe_code)]

mod batch;
mod bound;
mod keyed;
mod options;
mod place;
mod shard;
mod storage;

pub use keyed::KeyedLimiter;
pub use options::{MemoryOptions, MemoryOptionsError, SCHEMES};

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use foldhash::quality::RandomState;
use limiter_core::Timestamp;
use parking_lot::Mutex;

use bound::Bound;
use shard::Shard;

/// The most shards a storage has (see [`MemoryOptions::shards`]).
pub const MAX_SHARDS: usize = 1 << 16;

/// The byte bound of [`MemoryStorage::new`] and of options that set none: 64 MiB
/// (see [`MemoryOptions::max_bytes`]).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// The smallest byte bound: 4 KiB, room for the longest stored key with its entry
/// and a moving-window log (see [`MemoryOptions::max_bytes`]).
pub const MIN_MAX_BYTES: usize = 4 << 10;

/// The longest part of a key (its group or its limit part, see
/// [`StorageKey`](limiter_core::storage::StorageKey)) stored as it is: a longer part is
/// digested (see the crate docs, **Memory**).
pub const DIGEST_ABOVE: usize = 256;

/// The fewest shards the default configuration has.
const MIN_DEFAULT_SHARDS: usize = 64;

/// A shard on its own cache lines, so that neighbouring locks do not share one.
type Padded = CachePadded<Mutex<Shard>>;

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

/// The storage for [`MemoryStorage::with_options`].
fn build(options: &MemoryOptions) -> MemoryStorage {
    let (max_keys, max_bytes) = (options.get_max_keys(), options.get_max_bytes());
    let mut count = options.get_shards().unwrap_or_else(default_shards);
    if let Some(max) = max_keys {
        count = count.min(max);
    }
    let hasher = RandomState::default();
    // One key count and one byte count for all the shards: any shard may hold any
    // share of the bounds.
    let bound = (max_keys.is_some() || max_bytes.is_some()).then(|| {
        Arc::new(Bound::new(
            max_keys.unwrap_or(usize::MAX),
            max_bytes.unwrap_or(usize::MAX),
        ))
    });
    let shards = (0..count)
        .map(|i| {
            let seed = std::hash::BuildHasher::hash_one(&hasher, i);
            CachePadded::new(Mutex::new(Shard::new(usize::MAX, bound.clone(), seed)))
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
        max_bytes,
        bound,
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
    /// shards. For another bound, or none, see [`with_options`](Self::with_options).
    pub fn new() -> MemoryStorage {
        MemoryStorage::with_options(MemoryOptions::new())
    }

    /// The number of keys stored, including expired keys not yet reclaimed (see
    /// [`purge_expired`](Self::purge_expired)). In a bounded storage (the default), one
    /// read of the shared key count, which never exceeds
    /// [`max_keys`](MemoryOptions::max_keys) (an insertion under way counts from
    /// the moment it reserves its place). Unbounded, it locks each shard in turn, so
    /// under concurrent writes it is a snapshot of no single instant.
    pub fn len(&self) -> usize {
        match &self.bound {
            Some(bound) => bound.keys(),
            None => self.shards.iter().map(|s| s.lock().len()).sum(),
        }
    }

    /// The bytes the storage counts against [`max_bytes`](MemoryOptions::max_bytes):
    /// per key its entry and index slot, its stored key and its heap state, plus the
    /// bytes of removed keys not yet compacted away (see
    /// [`MemoryOptions::max_bytes`]). In a bounded storage, one read of the
    /// shared count, which never exceeds `max_bytes` (reservations under way count);
    /// unbounded, a sum over the shards, locked in turn.
    pub fn bytes(&self) -> usize {
        match &self.bound {
            Some(bound) => bound.bytes(),
            None => self.shards.iter().map(|s| s.lock().bytes()).sum(),
        }
    }

    /// Whether no key is stored (expired keys not yet reclaimed count as stored).
    pub fn is_empty(&self) -> bool {
        match &self.bound {
            Some(bound) => bound.keys() == 0,
            None => self.shards.iter().all(|s| s.lock().len() == 0),
        }
    }

    /// Removes every key expired at `now` (the limiters' time, as their
    /// [`Clock`](limiter_core::Clock) reads it) and returns how many were removed. Takes
    /// time proportional to the number of keys, one shard lock at a time.
    pub fn purge_expired(&self, now: Timestamp) -> usize {
        let now = now.as_millis();
        self.shards.iter().map(|s| s.lock().purge(now)).sum()
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
