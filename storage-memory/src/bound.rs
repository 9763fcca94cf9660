//! The bounds of a storage: one count of the keys and one of the bytes, shared by all
//! its shards, so that any shard may hold any share of them.
//!
//! A shard reserves before it stores (a new key's place and bytes, a log's growth) and
//! gives back whenever something leaves it, so the counts never go above the bounds,
//! under any concurrency, and nothing is evicted below them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// The bounds of a storage, shared by its shards: the number of keys and the bytes
/// they hold.
#[derive(Debug)]
pub(crate) struct Bound {
    /// The most keys the storage holds (at least 1; `usize::MAX`: no bound).
    max_keys: usize,
    /// The most bytes the storage holds (`usize::MAX`: no bound).
    max_bytes: usize,
    /// The keys stored in all shards, plus places reserved by insertions under way
    /// (each reservation is used or given back before its shard lock is released).
    keys: AtomicUsize,
    /// The bytes held by all shards (see [`Shard::bytes`](crate::shard::Shard::bytes)), plus bytes reserved by
    /// insertions and growths under way.
    bytes: AtomicUsize,
    /// The storage's shards, to evict from another shard than the inserting one. Weak,
    /// since the shards hold this bound.
    shards: OnceLock<Weak<[crate::Padded]>>,
}

impl Bound {
    /// A bound of `max_keys` keys (at least 1) and `max_bytes` bytes, its shards not
    /// yet known.
    pub(crate) fn new(max_keys: usize, max_bytes: usize) -> Bound {
        Bound {
            max_keys: max_keys.max(1),
            max_bytes,
            keys: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            shards: OnceLock::new(),
        }
    }

    /// Makes eviction from any of `shards` possible (called once, after building).
    pub(crate) fn set_shards(&self, shards: &Arc<[crate::Padded]>) {
        let _ = self.shards.set(Arc::downgrade(shards));
    }

    /// The storage's shards, if it still exists.
    pub(crate) fn shards(&self) -> Option<Arc<[crate::Padded]>> {
        self.shards.get().and_then(Weak::upgrade)
    }

    /// The number of keys stored, with the places reserved by insertions under way.
    pub(crate) fn keys(&self) -> usize {
        self.keys.load(Ordering::Acquire)
    }

    /// The bytes held, with the bytes reserved by insertions and growths under way.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Adds `n` to `count` if the sum stays within `max`; whether it did.
    pub(crate) fn take(count: &AtomicUsize, n: usize, max: usize) -> bool {
        n == 0
            || count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                    c.checked_add(n).filter(|&sum| sum <= max)
                })
                .is_ok()
    }

    /// Takes one key's place and `bytes` bytes if both fit; whether it did (if not,
    /// it took nothing).
    pub(crate) fn reserve(&self, bytes: usize) -> bool {
        if !Bound::take(&self.keys, 1, self.max_keys) {
            return false;
        }
        if Bound::take(&self.bytes, bytes, self.max_bytes) {
            return true;
        }
        Bound::give(&self.keys, 1);
        false
    }

    /// Takes `n` bytes if they fit; whether it did.
    pub(crate) fn reserve_bytes(&self, n: usize) -> bool {
        Bound::take(&self.bytes, n, self.max_bytes)
    }

    /// Counts `n` bytes that are already held, whether or not they fit (only for a
    /// state that grew by more than the growth reserved before a hit, which no
    /// built-in does).
    pub(crate) fn force_bytes(&self, n: usize) {
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_add(n))
            });
    }

    fn give(count: &AtomicUsize, n: usize) {
        if n > 0 {
            let _ = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_sub(n))
            });
        }
    }

    /// Gives back `keys` places and `bytes` bytes.
    pub(crate) fn release(&self, keys: usize, bytes: usize) {
        Bound::give(&self.keys, keys);
        Bound::give(&self.bytes, bytes);
    }
}
