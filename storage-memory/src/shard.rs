//! One shard: a hash table of entries and the per-shard bookkeeping for versions,
//! expiry sweeps and approximate LRU eviction.
//!
//! # Layout
//!
//! The table maps a key's full 64-bit foldhash to its [`Entry`], stored inline in the
//! table's bucket: a hit touches one bucket (and the key's bytes, to confirm the
//! match), like any hash map. The hash is computed once per operation by the storage,
//! which also picks the shard from it, and the table uses it as-is (a pass-through
//! hasher), so a key is never hashed twice.
//!
//! Two different keys with the same full hash (practically never, but keys come from
//! clients and nothing may break if it happens) cannot share a table slot: the later
//! one goes to a small `overflow` list, and is promoted into the table when the entry
//! holding its hash is removed. So an overflow entry always has a table entry with the
//! same hash, and a hash absent from the table is absent from the shard.
//!
//! `order` lists the hashes of the table's entries densely (each entry knows its
//! position; removal is `swap_remove`). It gives O(1) uniform random samples for LRU
//! eviction and a cursor for the incremental expiry sweep.
//!
//! # The key bound
//!
//! The shards of a bounded storage share one [`Bound`]: an atomic count of the keys
//! stored in all of them. A shard reserves a place in that count before it inserts a
//! key, and gives it back whenever an entry leaves it (deletion, expiry, eviction,
//! clearing), so the count is never below the number of stored keys and never above
//! the bound. Eviction starts only when a reservation finds the count at the bound:
//! the inserting shard then evicts one of its own entries, or, when it has none, one
//! of another shard (see [`Shard::make_room`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use limiter_core::strategy::{Op, StateError, Strategy, Verdict};
use limiter_core::{RateLimit, Timestamp};

/// The most entries a shard holds, so that positions fit a `u32`.
const MAX_ENTRIES: usize = u32::MAX as usize;

/// How many entries the insertion of a key examines for expiry, at the sweep cursor.
/// Stored keys only grow by insertions, so sweeping faster than keys arrive bounds the
/// expired keys to about as many as the live ones.
const SWEEP_ON_INSERT: usize = 4;

/// How many entries every [`SWEEP_EVERY`]th update examines, so that expired keys are
/// also reclaimed in a shard that only updates existing keys.
const SWEEP_ON_UPDATE: usize = 2;

/// See [`SWEEP_ON_UPDATE`]. A sweep step is a likely cache miss in a large shard, so
/// updates only sweep occasionally.
const SWEEP_EVERY: u64 = 32;

/// How many random entries an eviction compares.
const EVICTION_SAMPLE: usize = 8;

/// How many times an insertion into a full storage looks for an entry to evict before
/// it gives up (see [`Shard::make_room`]).
const ROOM_ATTEMPTS: usize = 1_000;

/// The longest state kept inside the entry rather than on the heap: every fixed-window
/// (17 bytes), sliding-window (25 bytes) and GCRA (17 bytes) state fits.
const INLINE: usize = 30;

/// The bound on the keys of a storage, shared by its shards.
#[derive(Debug)]
pub(crate) struct Bound {
    /// The most keys the storage holds (at least 1).
    max: usize,
    /// The keys stored in all shards, plus places reserved by insertions under way
    /// (each reservation is used or given back before its shard lock is released).
    keys: AtomicUsize,
    /// The storage's shards, to evict from another shard than the inserting one. Weak,
    /// since the shards hold this bound.
    shards: OnceLock<Weak<[crate::Padded]>>,
}

impl Bound {
    /// A bound of `max` keys (at least 1), its shards not yet known.
    pub(crate) fn new(max: usize) -> Bound {
        Bound {
            max: max.max(1),
            keys: AtomicUsize::new(0),
            shards: OnceLock::new(),
        }
    }

    /// Makes eviction from any of `shards` possible (called once, after building).
    pub(crate) fn set_shards(&self, shards: &Arc<[crate::Padded]>) {
        let _ = self.shards.set(Arc::downgrade(shards));
    }

    /// The number of keys stored, with the places reserved by insertions under way.
    pub(crate) fn keys(&self) -> usize {
        self.keys.load(Ordering::Acquire)
    }

    /// Takes one place if the storage is below its bound; whether it did.
    fn reserve(&self) -> bool {
        self.keys
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back `n` places.
    fn release(&self, n: usize) {
        if n > 0 {
            let _ = self
                .keys
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| {
                    Some(k.saturating_sub(n))
                });
        }
    }
}

/// A [`Hasher`] that passes a `u64` through: table keys are already foldhash values.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the table; this keeps the hasher total anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Table = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

/// A stored state: inline when short, else on the heap.
#[derive(Debug)]
enum Value {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl Value {
    fn new(bytes: &[u8]) -> Value {
        let mut value = Value::Inline {
            len: 0,
            bytes: [0; INLINE],
        };
        value.set(bytes);
        value
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Value::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Value::Heap(vec) => vec,
        }
    }

    /// Replaces the bytes, reusing a heap buffer if there is one.
    fn set(&mut self, new: &[u8]) {
        match self {
            Value::Heap(vec) => {
                vec.clear();
                vec.extend_from_slice(new);
            }
            Value::Inline { len, bytes } => {
                match (u8::try_from(new.len()), bytes.get_mut(..new.len())) {
                    (Ok(n), Some(prefix)) => {
                        prefix.copy_from_slice(new);
                        *len = n;
                    }
                    _ => *self = Value::Heap(new.to_vec()),
                }
            }
        }
    }

    fn clear(&mut self) {
        match self {
            Value::Inline { len, .. } => *len = 0,
            Value::Heap(vec) => vec.clear(),
        }
    }
}

/// One stored key.
#[derive(Debug)]
struct Entry {
    key: Box<str>,
    value: Value,
    version: u64,
    /// Milliseconds since the storage's epoch at which the entry expires.
    expires: u64,
    /// The shard's access tick at the last access (wrapping).
    used: u32,
    /// Where the entry's hash is in [`Shard::order`] (table entries only).
    pos: u32,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// One shard of a `MemoryStorage`.
#[derive(Debug)]
pub(crate) struct Shard {
    table: Table,
    /// Entries whose hash is taken in `table` by another key, with their hash.
    overflow: Vec<(u64, Entry)>,
    /// The hashes of `table`'s entries, densely.
    order: Vec<u64>,
    /// The most entries this shard keeps (at least 1), whatever the storage's bound.
    cap: usize,
    /// The storage's key bound, if it has one.
    bound: Option<Arc<Bound>>,
    /// Access counter for LRU ages.
    tick: u32,
    /// The last version handed out. Keys never move between shards, so a per-shard
    /// counter is enough to make versions unique per key for the storage's lifetime.
    version: u64,
    /// Where the incremental expiry sweep resumes in `order`.
    cursor: usize,
    /// xorshift state for eviction sampling (never zero).
    rng: u64,
    /// The buffer strategies run on for inline states, reused.
    scratch: Vec<u8>,
}

/// The expiry for a write at `now` (ms since the epoch) kept at least `ttl`.
pub(crate) fn deadline(now: u64, ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    // `now` is truncated to the millisecond, so one more keeps the TTL a lower bound.
    let extra = u64::from(ttl.subsec_nanos() % 1_000_000 != 0) + 1;
    now.saturating_add(ttl_ms).saturating_add(extra)
}

/// The entry of `key`, expired or not. A free function so that the caller can still
/// use the shard's other fields while holding the entry.
fn find_mut<'a>(
    table: &'a mut Table,
    overflow: &'a mut [(u64, Entry)],
    key: &str,
    hash: u64,
) -> Option<&'a mut Entry> {
    let entry = table.get_mut(&hash)?;
    if &*entry.key == key {
        return Some(entry);
    }
    overflow
        .iter_mut()
        .find(|(h, e)| *h == hash && &*e.key == key)
        .map(|(_, e)| e)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Shard {
    /// An empty shard keeping at most `cap` keys itself, and sharing the storage's
    /// `bound` if there is one, with eviction sampling seeded by `seed`.
    pub(crate) fn new(cap: usize, bound: Option<Arc<Bound>>, seed: u64) -> Shard {
        Shard {
            table: HashMap::default(),
            overflow: Vec::new(),
            order: Vec::new(),
            cap: cap.clamp(1, MAX_ENTRIES - 1),
            bound,
            tick: 0,
            version: 0,
            cursor: 0,
            rng: seed | 1,
            scratch: Vec::with_capacity(INLINE),
        }
    }

    /// The number of entries, expired ones not yet reclaimed included.
    pub(crate) fn len(&self) -> usize {
        self.table.len() + self.overflow.len()
    }

    fn next_tick(&mut self) -> u32 {
        self.tick = self.tick.wrapping_add(1);
        self.tick
    }

    /// `key`'s bytes and version, if it is live at `now`.
    pub(crate) fn get(&mut self, key: &str, hash: u64, now: u64) -> Option<(Vec<u8>, u64)> {
        let tick = self.next_tick();
        let entry = find_mut(&mut self.table, &mut self.overflow, key, hash)?;
        if entry.live(now) {
            entry.used = tick;
            return Some((entry.value.as_slice().to_vec(), entry.version));
        }
        self.remove(key, hash);
        None
    }

    /// Writes `value` if `key`'s live version is `expected` (`None`: absent or
    /// expired); whether it wrote.
    pub(crate) fn compare_and_set(
        &mut self,
        key: &str,
        hash: u64,
        expected: Option<u64>,
        value: &[u8],
        expires: u64,
        now: u64,
    ) -> bool {
        let tick = self.next_tick();
        let version = self.version.wrapping_add(1);
        match find_mut(&mut self.table, &mut self.overflow, key, hash) {
            Some(entry) => {
                let current = entry.live(now).then_some(entry.version);
                if current != expected {
                    return false;
                }
                entry.value.set(value);
                entry.version = version;
                entry.expires = expires;
                entry.used = tick;
                self.version = version;
                self.after_update(now);
            }
            None => {
                if expected.is_some() {
                    return false;
                }
                return self.insert(key, hash, Value::new(value), expires, now, &mut |_| false);
            }
        }
        true
    }

    /// Removes `key`; whether it was present.
    pub(crate) fn delete(&mut self, key: &str, hash: u64) -> bool {
        self.remove(key, hash).is_some()
    }

    /// Removes every entry. Versions keep counting up.
    pub(crate) fn clear(&mut self) {
        self.released(self.len());
        self.table = HashMap::default();
        self.overflow = Vec::new();
        self.order = Vec::new();
        self.cursor = 0;
        self.scratch = Vec::with_capacity(INLINE);
    }

    /// Runs `strategy` on `key`'s state in place. Writes back (inserting the key if
    /// needed) only when the strategy asks for it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &mut self,
        strategy: &dyn Strategy,
        key: &str,
        hash: u64,
        limit: &RateLimit,
        op: Op,
        at: Timestamp,
        now: u64,
    ) -> Result<Verdict, StateError> {
        self.apply_with(strategy, key, hash, limit, op, at, now, &mut |_| false)
    }

    /// [`apply`](Self::apply) for a caller that also holds the locks of other shards
    /// (an atomic batch): `evict_held(now)` evicts one entry of one of those shards and
    /// says whether it did, since this shard cannot lock them to make room.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_with(
        &mut self,
        strategy: &dyn Strategy,
        key: &str,
        hash: u64,
        limit: &RateLimit,
        op: Op,
        at: Timestamp,
        now: u64,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Verdict, StateError> {
        let tick = self.next_tick();
        if let Some(entry) = find_mut(&mut self.table, &mut self.overflow, key, hash) {
            if !entry.live(now) {
                // Expired counts as empty; a heap buffer is kept for reuse.
                entry.value.clear();
            }
            entry.used = tick;
            let outcome = match &mut entry.value {
                Value::Heap(vec) => strategy.apply(limit, vec, op, at)?,
                Value::Inline { len, bytes } => {
                    let scratch = &mut self.scratch;
                    scratch.clear();
                    scratch.extend_from_slice(bytes.get(..usize::from(*len)).unwrap_or_default());
                    let outcome = strategy.apply(limit, scratch, op, at)?;
                    if outcome.write.is_some() {
                        entry.value.set(scratch);
                    }
                    outcome
                }
            };
            if let Some(ttl) = outcome.write {
                entry.expires = deadline(now, ttl);
                self.version = self.version.wrapping_add(1);
                entry.version = self.version;
                self.after_update(now);
            }
            return Ok(outcome.verdict);
        }
        self.scratch.clear();
        let outcome = strategy.apply(limit, &mut self.scratch, op, at)?;
        if let Some(ttl) = outcome.write {
            let value = Value::new(&self.scratch);
            self.insert(key, hash, value, deadline(now, ttl), now, evict_held);
        }
        Ok(outcome.verdict)
    }

    /// The occasional sweep of an update.
    fn after_update(&mut self, now: u64) {
        if self.version % SWEEP_EVERY == 0 {
            self.sweep(now, SWEEP_ON_UPDATE);
        }
    }

    /// Adds an entry for a key known to be absent, evicting first if the storage or the
    /// shard is full, then sweeps a few entries. Whether it added the entry (see
    /// [`make_room`](Self::make_room) for when it cannot).
    fn insert(
        &mut self,
        key: &str,
        hash: u64,
        value: Value,
        expires: u64,
        now: u64,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> bool {
        if !self.make_room(now, evict_held) {
            return false;
        }
        self.version = self.version.wrapping_add(1);
        let mut entry = Entry {
            key: Box::from(key),
            value,
            version: self.version,
            expires,
            used: self.next_tick(),
            pos: 0,
        };
        if self.table.contains_key(&hash) {
            self.overflow.push((hash, entry));
        } else {
            entry.pos = to_u32(self.order.len());
            self.order.push(hash);
            self.table.insert(hash, entry);
        }
        self.sweep(now, SWEEP_ON_INSERT);
        true
    }

    /// Makes room for one more entry and, in a bounded storage, reserves its place in
    /// the shared key count; whether it could.
    ///
    /// Below the bound this only takes a place: nothing is evicted, however the keys
    /// are spread over the shards. At the bound it evicts one entry (an expired one if
    /// a short sweep finds one, else approximately the least recently used) and tries
    /// again: from this shard if it has entries, else from a shard the caller holds
    /// (`evict_held`), else from another shard, which it only `try_lock`s, so that no
    /// two shard locks ever wait for each other. A holder of a shard with entries
    /// evicts from its own shard or another one it holds, without waiting, so the
    /// shards it tries are soon free; after [`ROOM_ATTEMPTS`] failed attempts it gives
    /// up, and the key is not stored.
    fn make_room(&mut self, now: u64, evict_held: &mut dyn FnMut(u64) -> bool) -> bool {
        while self.len() >= self.cap {
            if !self.evict(now) {
                return false;
            }
        }
        let Some(bound) = self.bound.clone() else {
            return true;
        };
        for attempt in 0..ROOM_ATTEMPTS {
            if bound.reserve() {
                return true;
            }
            let evicted = (self.len() > 0 && self.evict(now))
                || evict_held(now)
                || self.evict_elsewhere(&bound, now);
            if !evicted && attempt > 0 {
                std::thread::yield_now();
            }
        }
        false
    }

    /// Evicts one entry of another shard that is not locked at the moment, trying the
    /// shards from a random one on; whether it did.
    fn evict_elsewhere(&mut self, bound: &Bound, now: u64) -> bool {
        let Some(shards) = bound.shards.get().and_then(Weak::upgrade) else {
            return false;
        };
        let count = shards.len();
        if count < 2 {
            return false;
        }
        let start = usize::try_from(self.random() % count as u64).unwrap_or(0);
        // This shard's own lock is held, so `try_lock` skips it.
        (0..count).any(|i| {
            shards
                .get((start + i) % count)
                .and_then(|other| other.0.try_lock())
                .is_some_and(|mut other| other.len() > 0 && other.evict(now))
        })
    }

    /// Evicts one entry if the shard has any, for a batch that holds its lock; whether
    /// it did.
    pub(crate) fn evict_one(&mut self, now: u64) -> bool {
        self.len() > 0 && self.evict(now)
    }

    /// Gives back `n` places of the shared key count, for entries that left.
    fn released(&self, n: usize) {
        if let Some(bound) = &self.bound {
            bound.release(n);
        }
    }

    /// Removes `key` and returns its entry.
    fn remove(&mut self, key: &str, hash: u64) -> Option<Entry> {
        let in_table = &*self.table.get(&hash)?.key == key;
        if in_table {
            return self.remove_from_table(hash);
        }
        let at = self
            .overflow
            .iter()
            .position(|(h, e)| *h == hash && &*e.key == key)?;
        self.released(1);
        Some(self.overflow.swap_remove(at).1)
    }

    /// Removes the table entry of `hash`, keeping `order` dense and promoting an
    /// overflow entry with the same hash into the table.
    fn remove_from_table(&mut self, hash: u64) -> Option<Entry> {
        let removed = self.table.remove(&hash)?;
        self.released(1);
        let pos = removed.pos as usize;
        if pos < self.order.len() {
            self.order.swap_remove(pos);
            if let Some(&moved) = self.order.get(pos) {
                if let Some(entry) = self.table.get_mut(&moved) {
                    entry.pos = to_u32(pos);
                }
            }
        }
        if let Some(at) = self.overflow.iter().position(|(h, _)| *h == hash) {
            let (_, mut promoted) = self.overflow.swap_remove(at);
            promoted.pos = to_u32(self.order.len());
            self.order.push(hash);
            self.table.insert(hash, promoted);
        }
        Some(removed)
    }

    /// Examines up to `budget` table entries at the sweep cursor and removes the
    /// expired ones; how many.
    fn sweep(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            if self.order.is_empty() {
                break;
            }
            if self.cursor >= self.order.len() {
                self.cursor = 0;
            }
            let hash = self.order[self.cursor];
            let expired = self.table.get(&hash).is_some_and(|e| !e.live(now));
            if expired {
                // The last hash moved into the cursor's place: look at it next.
                self.remove_from_table(hash);
                removed += 1;
            } else {
                self.cursor += 1;
            }
        }
        removed
    }

    /// Removes every expired entry; how many.
    pub(crate) fn purge(&mut self, now: u64) -> usize {
        let mut removed = 0;
        let mut at = 0;
        while let Some(&hash) = self.order.get(at) {
            if self.table.get(&hash).is_some_and(|e| !e.live(now)) {
                self.remove_from_table(hash);
                removed += 1;
            } else {
                at += 1;
            }
        }
        let before = self.overflow.len();
        self.overflow.retain(|(_, e)| e.live(now));
        let dropped = before - self.overflow.len();
        self.released(dropped);
        removed + dropped
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Evicts one entry: an expired one if a short sweep finds one, else the least
    /// recently used of [`EVICTION_SAMPLE`] random entries (of all entries when there
    /// are no more). Whether it removed anything.
    fn evict(&mut self, now: u64) -> bool {
        if self.sweep(now, EVICTION_SAMPLE) > 0 {
            return true;
        }
        let len = self.order.len();
        let mut victim = None;
        let mut oldest = 0u64;
        let mut consider = |shard: &Shard, at: usize| {
            let Some(entry) = shard.order.get(at).and_then(|h| shard.table.get(h)) else {
                return;
            };
            let score = if entry.live(now) {
                u64::from(shard.tick.wrapping_sub(entry.used))
            } else {
                u64::MAX
            };
            if victim.is_none() || score > oldest {
                oldest = score;
                victim = shard.order.get(at).copied();
            }
        };
        if len <= EVICTION_SAMPLE {
            for at in 0..len {
                consider(self, at);
            }
        } else {
            let len64 = len as u64;
            for _ in 0..EVICTION_SAMPLE {
                let at = usize::try_from(self.random() % len64).unwrap_or(0);
                consider(self, at);
            }
        }
        match victim {
            Some(hash) => self.remove_from_table(hash).is_some(),
            // Only overflow entries left (they always have a table entry, so never).
            None => {
                let popped = self.overflow.pop().is_some();
                self.released(usize::from(popped));
                popped
            }
        }
    }

    /// Checks the table, `order` and overflow against each other (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.table.len(), self.order.len());
        for (pos, hash) in self.order.iter().enumerate() {
            assert_eq!(self.table[hash].pos as usize, pos);
        }
        for (hash, entry) in &self.overflow {
            assert_ne!(self.table[hash].key, entry.key);
        }
        assert!(self.len() <= self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(shard: &mut Shard, key: &str, hash: u64, expires: u64) {
        let current = shard.get(key, hash, 0).map(|(_, v)| v);
        assert!(shard.compare_and_set(key, hash, current, key.as_bytes(), expires, 0));
    }

    fn has(shard: &mut Shard, key: &str, hash: u64, now: u64) -> bool {
        shard
            .get(key, hash, now)
            .is_some_and(|(value, _)| value == key.as_bytes())
    }

    #[test]
    fn colliding_hashes_overflow_and_survive_removals() {
        let mut shard = Shard::new(usize::MAX, None, 7);
        let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
        let hash = |i: usize| (i % 10) as u64;
        for (i, key) in keys.iter().enumerate() {
            // Five keys per hash value.
            put(&mut shard, key, hash(i), u64::MAX);
        }
        shard.check_invariants();
        assert_eq!((shard.table.len(), shard.overflow.len()), (10, 40));
        for (i, key) in keys.iter().enumerate() {
            assert!(has(&mut shard, key, hash(i), 0), "{key}");
        }
        // Removing the table entries promotes overflow entries into the table.
        for (i, key) in keys.iter().enumerate().step_by(3) {
            assert!(shard.delete(key, hash(i)));
            assert!(!shard.delete(key, hash(i)));
            shard.check_invariants();
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(has(&mut shard, key, hash(i), 0), i % 3 != 0, "{key}");
        }
        assert_eq!(shard.purge(u64::MAX), 33);
        assert_eq!(shard.len(), 0);
        shard.check_invariants();
    }

    #[test]
    fn the_shared_key_count_follows_every_insertion_and_removal() {
        let bound = Arc::new(Bound::new(30));
        let mut shard = Shard::new(usize::MAX, Some(bound.clone()), 5);
        let check = |shard: &Shard| {
            shard.check_invariants();
            assert_eq!(bound.keys(), shard.len());
        };
        // Colliding hashes (overflow entries), two lifetimes.
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
            shard.delete(&format!("k{i}"), i % 7);
            check(&shard);
        }
        let _ = shard.get("k1", 1, 20);
        shard.sweep(u64::MAX - 1, 5);
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
    fn sweep_and_purge_remove_only_expired() {
        let mut shard = Shard::new(usize::MAX, None, 1);
        for i in 0..100u64 {
            put(
                &mut shard,
                &format!("k{i}"),
                i,
                if i % 2 == 0 { 10 } else { 1_000 },
            );
        }
        let swept = shard.sweep(50, 4);
        assert!((1..=4).contains(&swept), "{swept}");
        shard.check_invariants();
        assert_eq!(shard.purge(50), 50 - swept);
        shard.check_invariants();
        assert_eq!(shard.len(), 50);
        assert!(has(&mut shard, "k1", 1, 50));
        assert!(!has(&mut shard, "k2", 2, 50));
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

    #[test]
    fn entries_stay_small_and_values_move_to_the_heap_when_long() {
        let size = std::mem::size_of::<(u64, Entry)>();
        assert!(size <= 80, "{size}");
        let mut value = Value::new(&[1; INLINE]);
        assert!(matches!(value, Value::Inline { .. }));
        value.set(&[2; INLINE + 1]);
        assert!(matches!(value, Value::Heap(_)));
        assert_eq!(value.as_slice(), &[2; INLINE + 1]);
        value.set(&[3; 2]);
        assert_eq!(value.as_slice(), &[3; 2]);
        value.clear();
        assert!(value.as_slice().is_empty());
    }

    #[test]
    fn deadline_never_shortens_the_ttl() {
        assert_eq!(deadline(10, Duration::from_millis(50)), 61);
        assert_eq!(deadline(10, Duration::from_micros(50_500)), 62);
        assert_eq!(deadline(10, Duration::MAX), u64::MAX);
    }
}
