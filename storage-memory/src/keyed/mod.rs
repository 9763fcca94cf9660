//! [`KeyedLimiter`]: one GCRA limit over keys of any hashable type, decided in
//! process, synchronously, on one atomic word per key.

mod word;

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use limiter_core::{
    Clock, Decision, Error, RateLimit, StorageError, StorageErrorKind, SystemClock, Timestamp,
};
use parking_lot::RwLock;

use crate::{default_shards, MemoryOptions};
use word::Word;

/// The bytes a key counts against [`MemoryOptions::max_bytes`]: its slot (the key's
/// hash and its word, 16 bytes) and index byte, in a table up to half empty after it
/// grows.
pub(crate) const KEYED_BYTES_PER_KEY: usize = 40;

/// The fewest keys a shard's share of the bound may be: below that, fewer shards.
const MIN_KEYS_PER_SHARD: usize = 1024;

/// One key: its hash and its theoretical arrival time (see [`word`]).
struct Slot {
    hash: u64,
    word: AtomicU64,
}

type Shard = CachePadded<RwLock<HashTable<Slot>>>;

/// One [GCRA](limiter_core::strategy::Gcra) limit over keys of type `K`, decided in
/// this process and at once: no storage, no `async`, one atomic word per key.
///
/// What to reach for when one process enforces one limit per key (a client address,
/// a user id) and nothing else shares the counts: the shape of governor's keyed
/// limiter, with the decisions of [`RateLimiter`](limiter_core::RateLimiter) on
/// [`Gcra`](limiter_core::strategy::Gcra) (the same verdicts, remaining units,
/// reset and retry times, for the same hits at the same times), memory bounded by
/// default, and limits written as text. For several limits, other strategies,
/// storages shared between processes or the HTTP layers, use a
/// [`RateLimiter`](limiter_core::RateLimiter) over a [`MemoryStorage`](crate::MemoryStorage).
///
/// ```
/// use limiter_core::{ManualClock, RateLimit};
/// use limiter_memory::KeyedLimiter;
/// use std::time::Duration;
///
/// let limit: RateLimit = "2 per second".parse()?;
/// let limiter = KeyedLimiter::<str>::new(limit)?.with_clock(ManualClock::new(0));
///
/// assert!(limiter.hit("203.0.113.9", 1)?.is_allowed());
/// assert!(limiter.hit("203.0.113.9", 1)?.is_allowed());
/// let third = limiter.hit("203.0.113.9", 1)?;
/// assert!(!third.is_allowed());
/// assert_eq!(third.retry_after(), Some(Duration::from_millis(500)));
/// // Another key has its own bucket.
/// assert!(limiter.hit("198.51.100.7", 1)?.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Keys
///
/// A key is kept as its 64-bit hash, with a seed drawn for each limiter, not as its
/// value: a key of any length costs the same 40 bytes (its hash and word, and the
/// table's slack). Two keys
/// with the same hash (about one chance in 2⁶⁴ ÷ n² among n keys, and a client cannot
/// aim for it without the seed) share one bucket: each is then admitted less, never
/// more, than the limit.
///
/// # Bound
///
/// At most [`MemoryOptions::max_keys`] keys, and at most
/// [`max_bytes`](MemoryOptions::max_bytes) ÷ 40 (64 MiB by
/// default: about 1.7 million keys); [`unbounded`](MemoryOptions::unbounded) lifts
/// both. Keys are spread over shards by hash and each shard holds its share, so a
/// shard may start making room a little before the whole bound is reached. A new key
/// in a full shard first drops the keys whose bucket is full again (their word counts
/// nothing: dropping them changes no decision); when that frees less than an eighth
/// of the shard, it also drops keys still counting, which forgets what they counted,
/// as [`MemoryStorage`](crate::MemoryStorage) does at its bound.
///
/// # Time
///
/// Time comes from the limiter's [`Clock`] ([`SystemClock`] by default). The state
/// of a key is one word counted from the clock's time when the limiter was made, so
/// a time before that counts as that time, and time stands still some decades after
/// it (at least 2⁴⁰ ms, about 34 years; later for most limits).
pub struct KeyedLimiter<K: ?Sized, C = SystemClock> {
    word: Word,
    limit: RateLimit,
    clock: C,
    hasher: RandomState,
    shards: Box<[Shard]>,
    /// The most keys a shard holds.
    shard_keys: usize,
    /// `fn(&K)`: the limiter holds no `K` and is `Send` and `Sync` whatever `K` is.
    key: PhantomData<fn(&K)>,
}

impl<K: ?Sized, C: fmt::Debug> fmt::Debug for KeyedLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("limit", &self.limit)
            .field("clock", &self.clock)
            .field("shards", &self.shards.len())
            .field("shard_keys", &self.shard_keys)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + ?Sized> KeyedLimiter<K> {
    /// A limiter of `limit` on the [`SystemClock`], bounded as [`MemoryOptions::new`]
    /// bounds a storage (64 MiB).
    ///
    /// # Errors
    ///
    /// As [`with_options`](Self::with_options).
    pub fn new(limit: RateLimit) -> Result<KeyedLimiter<K>, Error> {
        KeyedLimiter::with_options(limit, &MemoryOptions::new())
    }

    /// A limiter of `limit` on the [`SystemClock`], bounded by `options`
    /// ([`max_keys`](MemoryOptions::max_keys), [`max_bytes`](MemoryOptions::max_bytes),
    /// [`shards`](MemoryOptions::shards)).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] of kind [`StorageErrorKind::Unsupported`] for a limit one
    /// word cannot count exactly for decades: an amount of millions per window that
    /// shares few factors with the window's milliseconds (`amount ÷ gcd(amount,
    /// window in ms)` of about 2²⁴ or more), or a burst of the same order times the
    /// window. A [`RateLimiter`](limiter_core::RateLimiter) counts any limit.
    pub fn with_options(
        limit: RateLimit,
        options: &MemoryOptions,
    ) -> Result<KeyedLimiter<K>, Error> {
        KeyedLimiter::build(limit, options, SystemClock)
    }
}

impl<K: Hash + ?Sized, C: Clock> KeyedLimiter<K, C> {
    fn build(limit: RateLimit, options: &MemoryOptions, clock: C) -> Result<Self, Error> {
        let word = Word::new(&limit, clock.now()).ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Unsupported,
                "keyed",
                format!("`{limit}` needs more than one 64-bit word per key"),
            )
        })?;
        let by_bytes = options
            .get_max_bytes()
            .map(|bytes| (bytes / KEYED_BYTES_PER_KEY).max(1));
        let max_keys = match (options.get_max_keys(), by_bytes) {
            (Some(keys), Some(by_bytes)) => keys.min(by_bytes),
            (keys, by_bytes) => keys.or(by_bytes).unwrap_or(usize::MAX),
        };
        let mut count = options.get_shards().unwrap_or_else(default_shards);
        if options.get_shards().is_none() {
            count = count.min((max_keys / MIN_KEYS_PER_SHARD).max(1));
        }
        let count = count.clamp(1, max_keys);
        Ok(KeyedLimiter {
            word,
            limit,
            clock,
            hasher: RandomState::default(),
            shards: (0..count)
                .map(|_| CachePadded::new(RwLock::new(HashTable::new())))
                .collect(),
            shard_keys: max_keys / count,
            key: PhantomData,
        })
    }

    /// The same limiter on `clock`, with no key counted (its epoch is `clock`'s time
    /// now).
    pub fn with_clock<C2: Clock>(self, clock: C2) -> KeyedLimiter<K, C2> {
        let epoch = clock.now();
        KeyedLimiter {
            // The horizon depends on the limit alone, so the word is rebuilt as it was.
            word: Word::new(&self.limit, epoch).unwrap_or(self.word),
            limit: self.limit,
            clock,
            hasher: self.hasher,
            shards: self
                .shards
                .iter()
                .map(|_| CachePadded::new(RwLock::new(HashTable::new())))
                .collect(),
            shard_keys: self.shard_keys,
            key: PhantomData,
        }
    }

    /// The limit it counts.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// The clock it reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Consumes `cost` units for `key` if they are available, as
    /// [`RateLimiter::hit`](limiter_core::RateLimiter::hit) does with
    /// [`Gcra`](limiter_core::strategy::Gcra): a rejected hit consumes nothing, and a
    /// cost above the limit's burst never passes.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCost`] for a cost of 0.
    #[inline]
    pub fn hit(&self, key: &K, cost: u64) -> Result<Decision, Error> {
        self.decide(key, cost, true)
    }

    /// Whether a hit of `cost` would pass now. Never changes anything.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCost`] for a cost of 0.
    pub fn test(&self, key: &K, cost: u64) -> Result<Decision, Error> {
        self.decide(key, cost, false)
    }

    /// Forgets what `key` counted.
    pub fn clear(&self, key: &K) {
        let hash = self.hasher.hash_one(key);
        if let Ok(found) = self
            .shard(hash)
            .write()
            .find_entry(hash, |slot| slot.hash == hash)
        {
            found.remove();
        }
    }

    /// The number of keys held, including keys whose bucket is full again that no
    /// new key has yet needed the room of. Locks each shard in turn.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.read().is_empty())
    }

    /// The most keys it holds: its shards' shares of the bound of its options (at
    /// most that bound), or `usize::MAX` when unbounded.
    pub fn max_keys(&self) -> usize {
        if self.shard_keys == usize::MAX / self.shards.len() {
            return usize::MAX;
        }
        self.shard_keys.saturating_mul(self.shards.len())
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        // The middle bits pick the shard: the table uses the low bits and the top
        // seven, which must vary within a shard. The product is below `len`.
        let len = self.shards.len();
        let pick = (((hash >> 24) & 0xFFFF_FFFF) * len as u64) >> 32;
        &self.shards[usize::try_from(pick).unwrap_or(0).min(len - 1)]
    }

    #[inline]
    fn decide(&self, key: &K, cost: u64, write: bool) -> Result<Decision, Error> {
        if cost == 0 {
            return Err(Error::ZeroCost);
        }
        let now = self.clock.now();
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let verdict = {
            let table = shard.read();
            table
                .find(hash, |slot| slot.hash == hash)
                .map(|slot| self.apply(&slot.word, cost, write, now))
        };
        let verdict = match verdict {
            Some(verdict) => verdict,
            None => self.insert(shard, hash, cost, write, now),
        };
        Ok(Decision::new(self.limit, cost, verdict, now))
    }

    /// The operation on a key's word: read, decide, and compare-and-swap when it
    /// writes, again from the newer word when another thread wrote first.
    #[inline]
    fn apply(
        &self,
        word: &AtomicU64,
        cost: u64,
        write: bool,
        now: Timestamp,
    ) -> limiter_core::strategy::Verdict {
        let mut current = word.load(Ordering::Relaxed);
        loop {
            let step = self.word.step(current, cost, write, now);
            let Some(new) = step.write else {
                return step.verdict;
            };
            match word.compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return step.verdict,
                Err(newer) => current = newer,
            }
        }
    }

    /// A key not found: decided on the empty word, and stored only when the
    /// operation writes.
    #[cold]
    fn insert(
        &self,
        shard: &Shard,
        hash: u64,
        cost: u64,
        write: bool,
        now: Timestamp,
    ) -> limiter_core::strategy::Verdict {
        let step = self.word.step(0, cost, write, now);
        if step.write.is_none() {
            return step.verdict;
        }
        let mut table = shard.write();
        // Another thread may have stored the key meanwhile.
        if let Some(slot) = table.find(hash, |slot| slot.hash == hash) {
            return self.apply(&slot.word, cost, write, now);
        }
        if table.len() >= self.shard_keys {
            self.make_room(&mut table, now);
        }
        let slot = table.insert_unique(
            hash,
            Slot {
                hash,
                word: AtomicU64::new(0),
            },
            |slot| slot.hash,
        );
        self.apply(&slot.get().word, cost, write, now)
    }

    /// Makes room in a full shard: drops every key that counts nothing at `now`,
    /// then, when that leaves the shard over seven eighths full, keys still counting
    /// until it is not. Each call frees an eighth of the shard or more, so the scans
    /// cost O(1) per key stored.
    fn make_room(&self, table: &mut HashTable<Slot>, now: Timestamp) {
        table.retain(|slot| !self.word.is_spent(slot.word.load(Ordering::Relaxed), now));
        let keep = self.shard_keys - self.shard_keys / 8 - 1;
        let mut excess = table.len().saturating_sub(keep);
        if excess > 0 {
            table.retain(|_| {
                let keep = excess == 0;
                excess = excess.saturating_sub(1);
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests;
