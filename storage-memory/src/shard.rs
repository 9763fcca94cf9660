//! One shard: a dense list of entries, an index over it, the keys' bytes, and the
//! per-shard bookkeeping for versions, expiry sweeps and approximate LRU eviction.
//!
//! # Layout
//!
//! Entries live in one dense `Vec` (removal is `swap_remove`), each with its key's full
//! 64-bit hash. The index is a hash table of slots (8 bytes each: the entry's position
//! and where its key's bytes start) that uses that hash as-is: the storage computes it
//! once per operation, so a key is never hashed twice. The keys' bytes are kept back to
//! back in one buffer per shard (`keys`); an entry also holds where its key starts and
//! its length. So a stored key costs its entry, its bytes and an index slot, with no
//! allocation of its own, and a hit touches the index slot, then the entry and the
//! key's bytes (to confirm the match) at once.
//!
//! Two different keys with the same full hash (practically never, but keys come from
//! clients and nothing may break if it happens) both live in the index: a lookup
//! compares the keys' bytes of every candidate, so collisions are handled, not assumed
//! away.
//!
//! Removing an entry leaves its key's bytes in the buffer as garbage; once the garbage
//! is more than half of the buffer (a quarter when room is needed at the byte bound),
//! the live keys' bytes are moved to its front, in place, which moves each byte O(1)
//! times overall and keeps the buffer's capacity.
//!
//! The dense list gives O(1) uniform random samples for LRU eviction and a cursor for
//! the incremental expiry sweep.
//!
//! # The bounds
//!
//! The shards of a bounded storage share one [`Bound`]: an atomic count of the keys
//! stored in all of them and one of their bytes ([`Shard::bytes`]). A shard reserves a
//! place and the new entry's bytes before it inserts a key, and the new capacity
//! before a heap state grows; it gives them back whenever an entry leaves it
//! (deletion, expiry, eviction, clearing) and when it compacts its key buffer. So the
//! counts are never below what is stored and never above the bounds. Eviction starts
//! only when a reservation does not fit: the shard then frees room (see
//! [`Shard::free_some`]) and tries again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use hashbrown::HashTable;
use limiter_core::strategy::state::InlineState;
use limiter_core::strategy::{BuiltIn, Op, StateError, Transition, Verdict};
use limiter_core::{RateLimit, Timestamp};

use crate::batch::BATCH_INLINE;

/// The most entries a shard holds, so that positions fit a `u32`.
const MAX_ENTRIES: usize = u32::MAX as usize;

/// The most bytes of keys a shard holds, so that offsets fit a `u32`.
const MAX_KEY_BYTES: usize = u32::MAX as usize;

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

/// The key buffer is rebuilt once its garbage is over half of it and over this many
/// bytes.
const MIN_GARBAGE: usize = 4_096;

/// What one entry costs in the byte count, besides its key's bytes and its heap
/// state: the entry itself and its index slot.
pub(crate) const ENTRY_BYTES: usize = std::mem::size_of::<Entry>() + std::mem::size_of::<Slot>();

/// The most bytes a built-in's hit adds to a heap state (a moving-window log's
/// 17-byte header when it is empty, and one 16-byte record), reserved before the hit
/// runs.
const HEAP_GROWTH: usize = 33;

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
    /// The bytes held by all shards (see [`Shard::bytes`]), plus bytes reserved by
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

    /// The number of keys stored, with the places reserved by insertions under way.
    pub(crate) fn keys(&self) -> usize {
        self.keys.load(Ordering::Acquire)
    }

    /// The bytes held, with the bytes reserved by insertions and growths under way.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Adds `n` to `count` if the sum stays within `max`; whether it did.
    fn take(count: &AtomicUsize, n: usize, max: usize) -> bool {
        n == 0
            || count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                    c.checked_add(n).filter(|&sum| sum <= max)
                })
                .is_ok()
    }

    /// Takes one key's place and `bytes` bytes if both fit; whether it did (if not,
    /// it took nothing).
    fn reserve(&self, bytes: usize) -> bool {
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
    fn reserve_bytes(&self, n: usize) -> bool {
        Bound::take(&self.bytes, n, self.max_bytes)
    }

    /// Counts `n` bytes that are already held, whether or not they fit (only for a
    /// state that grew by more than [`HEAP_GROWTH`], which no built-in does).
    fn force_bytes(&self, n: usize) {
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
    fn release(&self, keys: usize, bytes: usize) {
        Bound::give(&self.keys, keys);
        Bound::give(&self.bytes, bytes);
    }
}

/// A stored state: inline when short (every fixed-window, sliding-window and GCRA
/// state), else on the heap (moving-window logs).
#[derive(Debug)]
enum Value {
    Inline(InlineState),
    Heap(Vec<u8>),
}

impl Value {
    fn new(bytes: &[u8]) -> Value {
        match InlineState::new(bytes) {
            Some(state) => Value::Inline(state),
            None => Value::Heap(bytes.to_vec()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Value::Inline(state) => state.as_slice(),
            Value::Heap(vec) => vec,
        }
    }

    /// The heap bytes the state holds: its buffer's capacity (none when inline).
    fn heap_bytes(&self) -> usize {
        match self {
            Value::Inline(_) => 0,
            Value::Heap(vec) => vec.capacity(),
        }
    }

    /// The heap bytes the state will hold once [`set`](Self::set) to `new`.
    fn heap_bytes_after_set(&self, new: &[u8]) -> usize {
        match self {
            Value::Heap(vec) => vec.capacity().max(new.len()),
            Value::Inline(_) if new.len() <= InlineState::CAPACITY => 0,
            Value::Inline(_) => new.len(),
        }
    }

    /// Replaces the bytes, reusing a heap buffer if it is large enough (else one of
    /// exactly `new.len()` bytes, as [`heap_bytes_after_set`](Self::heap_bytes_after_set)
    /// says).
    fn set(&mut self, new: &[u8]) {
        match self {
            Value::Heap(vec) if vec.capacity() >= new.len() => {
                vec.clear();
                vec.extend_from_slice(new);
            }
            Value::Heap(vec) => *vec = new.to_vec(),
            Value::Inline(state) => {
                if !state.set(new) {
                    *self = Value::Heap(new.to_vec());
                }
            }
        }
    }

    fn clear(&mut self) {
        match self {
            Value::Inline(state) => state.clear(),
            Value::Heap(vec) => vec.clear(),
        }
    }
}

/// An index slot: where an entry is, and where its key's bytes start.
#[derive(Debug, Clone, Copy)]
struct Slot {
    pos: u32,
    key_at: u32,
}

/// One stored key.
#[derive(Debug)]
struct Entry {
    /// The key's full hash.
    hash: u64,
    value: Value,
    version: u64,
    /// Milliseconds since the epoch at which the entry expires, on the limiter's clock.
    expires: u64,
    /// Where the key's bytes start in [`Shard::keys`].
    key_at: u32,
    /// The key's length in bytes.
    key_len: u32,
    /// The shard's access tick at the last access (wrapping).
    used: u32,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires > now
    }

    /// What the entry counts in its shard's bytes, besides its key's bytes.
    fn bytes(&self) -> usize {
        ENTRY_BYTES + self.value.heap_bytes()
    }
}

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

/// What an attempt to free room found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freed {
    /// Something was freed.
    Some,
    /// Nothing now, but a shard was locked by someone else: worth another try.
    Busy,
    /// Nothing, and nothing else to free: give up.
    Nothing,
}

/// One shard of a `MemoryStorage`.
#[derive(Debug)]
pub(crate) struct Shard {
    /// The entries, densely.
    entries: Vec<Entry>,
    /// Positions in `entries` and where their keys' bytes start, by the entries'
    /// hashes.
    index: HashTable<Slot>,
    /// The keys' bytes, back to back; removed keys' bytes stay until a rebuild.
    keys: Vec<u8>,
    /// Bytes of `keys` that no entry uses.
    garbage: usize,
    /// The bytes this shard counts against the storage's byte bound:
    /// [`ENTRY_BYTES`] per entry, the whole key buffer (garbage included, until it is
    /// compacted) and the capacity of every heap state.
    bytes: usize,
    /// The most entries this shard keeps (at least 1), whatever the storage's bound.
    cap: usize,
    /// The storage's key bound, if it has one.
    bound: Option<Arc<Bound>>,
    /// Access counter for LRU ages.
    tick: u32,
    /// The last version handed out. Keys never move between shards, so a per-shard
    /// counter is enough to make versions unique per key for the storage's lifetime.
    version: u64,
    /// Where the incremental expiry sweep resumes in `entries`.
    cursor: usize,
    /// Picks the entries an eviction samples, and the shard it tries first elsewhere.
    rng: fastrand::Rng,
}

/// The expiry for a write at `now` (ms since the epoch) kept at least `ttl`.
pub(crate) fn deadline(now: u64, ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    // `now` is truncated to the millisecond, so one more keeps the TTL a lower bound.
    let extra = u64::from(ttl.subsec_nanos() % 1_000_000 != 0) + 1;
    now.saturating_add(ttl_ms).saturating_add(extra)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Shard {
    /// An empty shard keeping at most `cap` keys itself, and sharing the storage's
    /// `bound` if there is one, with eviction sampling seeded by `seed`.
    pub(crate) fn new(cap: usize, bound: Option<Arc<Bound>>, seed: u64) -> Shard {
        Shard {
            entries: Vec::new(),
            index: HashTable::new(),
            keys: Vec::new(),
            garbage: 0,
            bytes: 0,
            cap: cap.clamp(1, MAX_ENTRIES - 1),
            bound,
            tick: 0,
            version: 0,
            cursor: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The number of entries, expired ones not yet reclaimed included.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes this shard counts against the byte bound (see [`Shard::bytes`]).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn next_tick(&mut self) -> u32 {
        self.tick = self.tick.wrapping_add(1);
        self.tick
    }

    /// The position of `key`'s entry, expired or not.
    ///
    /// The slot says where both the entry and the key's bytes are, so that the two
    /// loads (likely cache misses with many keys) are issued together, not one after
    /// the other.
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        let (entries, keys) = (&self.entries, &self.keys);
        self.index
            .find(hash, |slot| {
                let at = slot.key_at as usize;
                keys.get(at..at + key.len()) == Some(key)
                    && entries
                        .get(slot.pos as usize)
                        .is_some_and(|e| e.key_len as usize == key.len() && e.hash == hash)
            })
            .map(|slot| slot.pos as usize)
    }

    /// `key`'s bytes and version, if it is live at `now`.
    pub(crate) fn get(&mut self, key: &[u8], hash: u64, now: u64) -> Option<(Vec<u8>, u64)> {
        let tick = self.next_tick();
        let at = self.find(key, hash)?;
        let entry = self.entries.get_mut(at)?;
        if entry.live(now) {
            entry.used = tick;
            return Some((entry.value.as_slice().to_vec(), entry.version));
        }
        self.remove_at(at);
        None
    }

    /// Writes `value` if `key`'s live version is `expected` (`None`: absent or
    /// expired); whether it wrote.
    pub(crate) fn compare_and_set(
        &mut self,
        key: &[u8],
        hash: u64,
        expected: Option<u64>,
        value: &[u8],
        expires: u64,
        now: u64,
    ) -> bool {
        let tick = self.next_tick();
        let version = self.version.wrapping_add(1);
        let found = self.find(key, hash);
        match found.and_then(|at| self.entries.get_mut(at)) {
            Some(entry) => {
                let current = entry.live(now).then_some(entry.version);
                if current != expected {
                    return false;
                }
                let (before, after) = (
                    entry.value.heap_bytes(),
                    entry.value.heap_bytes_after_set(value),
                );
                let Some(at) = found.and_then(|at| {
                    self.grow_room(key, hash, at, after - before, now, &mut |_| false)
                }) else {
                    // No room for the larger state: not written.
                    return false;
                };
                let Some(entry) = self.entries.get_mut(at) else {
                    return false;
                };
                entry.value.set(value);
                let actual = entry.value.heap_bytes();
                self.account(before, actual, after);
                let Some(entry) = self.entries.get_mut(at) else {
                    return false;
                };
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
    pub(crate) fn delete(&mut self, key: &[u8], hash: u64) -> bool {
        match self.find(key, hash) {
            Some(at) => {
                self.remove_at(at);
                true
            }
            None => false,
        }
    }

    /// Removes every entry. Versions keep counting up.
    pub(crate) fn clear(&mut self) {
        self.released(self.len(), self.bytes);
        self.bytes = 0;
        self.entries = Vec::new();
        self.index = HashTable::new();
        self.keys = Vec::new();
        self.garbage = 0;
        self.cursor = 0;
    }

    /// Runs `builtin` on `key`'s state in place. Writes back (inserting the key if
    /// needed) only when the strategy asks for it.
    pub(crate) fn apply(
        &mut self,
        builtin: BuiltIn,
        key: &[u8],
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
        key: &[u8],
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
        key: &[u8],
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

    /// Copies of the inline states of `keys` (all stored in this shard) as of `at`
    /// (empty when expired), for a batch of `builtin` to run on (see
    /// [`crate::batch`]). `None` when `builtin` keeps its state on the heap, or a key is
    /// absent, repeated or holds a heap state: the batch then runs in place.
    pub(crate) fn inline_copies(
        &self,
        builtin: BuiltIn,
        keys: &[(&[u8], u64)],
        at: Timestamp,
    ) -> Option<[InlineCopy; BATCH_INLINE]> {
        if grows(builtin) || keys.len() > BATCH_INLINE {
            return None;
        }
        let now = at.as_millis();
        let mut copies = [InlineCopy::default(); BATCH_INLINE];
        for (i, &(key, hash)) in keys.iter().enumerate() {
            let pos = self.find(key, hash)?;
            if copies[..i].iter().any(|copy| copy.pos == pos) {
                return None;
            }
            let entry = self.entries.get(pos)?;
            let state = match &entry.value {
                Value::Inline(state) if entry.live(now) => *state,
                Value::Inline(_) => InlineState::default(),
                Value::Heap(_) => return None,
            };
            copies[i] = InlineCopy {
                pos,
                state,
                write: None,
            };
        }
        Some(copies)
    }

    /// Ends a batch run on `copies` (from [`inline_copies`](Self::inline_copies)):
    /// marks their entries used and, if `commit`, stores every copy the batch wrote,
    /// with its new expiry and version.
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

    /// The occasional sweep of an update.
    fn after_update(&mut self, now: u64) {
        if self.version % SWEEP_EVERY == 0 {
            self.sweep(now, SWEEP_ON_UPDATE, None);
        }
    }

    /// Adds an entry for a key known to be absent, evicting first if the storage or the
    /// shard is full, then sweeps a few entries. Whether it added the entry (see
    /// [`make_room`](Self::make_room) for when it cannot).
    fn insert(
        &mut self,
        key: &[u8],
        hash: u64,
        value: Value,
        expires: u64,
        now: u64,
        evict_held: &mut dyn FnMut(u64) -> bool,
    ) -> bool {
        let cost = ENTRY_BYTES + key.len() + value.heap_bytes();
        if !self.make_room(cost, now, evict_held) {
            return false;
        }
        if self.keys.len() + key.len() > MAX_KEY_BYTES {
            self.compact_keys();
        }
        let (Ok(key_at), Ok(key_len)) = (u32::try_from(self.keys.len()), u32::try_from(key.len()))
        else {
            // Over 4 GiB of keys in one shard: the key is not stored.
            self.released(1, cost);
            return false;
        };
        if self.keys.len() + key.len() > MAX_KEY_BYTES {
            self.released(1, cost);
            return false;
        }
        self.keys.extend_from_slice(key);
        self.bytes += cost;
        self.version = self.version.wrapping_add(1);
        let entry = Entry {
            hash,
            value,
            version: self.version,
            expires,
            key_at,
            key_len,
            used: self.next_tick(),
        };
        let slot = Slot {
            pos: to_u32(self.entries.len()),
            key_at,
        };
        self.entries.push(entry);
        let entries = &self.entries;
        self.index.insert_unique(hash, slot, |slot| {
            entries.get(slot.pos as usize).map_or(0, |e| e.hash)
        });
        self.sweep(now, SWEEP_ON_INSERT, None);
        true
    }

    /// Makes room for one more entry of `cost` bytes and, in a bounded storage,
    /// reserves its place and its bytes in the shared counts; whether it could.
    ///
    /// Below the bounds this only takes a place and the bytes: nothing is evicted,
    /// however the keys are spread over the shards. At a bound it frees room (see
    /// [`free_some`](Self::free_some)) and tries again, as long as something was freed
    /// or another shard was busy; after [`ROOM_ATTEMPTS`] attempts it gives up, and
    /// the key is not stored.
    fn make_room(
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
    fn grow_room(
        &mut self,
        key: &[u8],
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
    fn heap_room(
        &mut self,
        builtin: BuiltIn,
        key: &[u8],
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
    fn account(&mut self, counted: usize, actual: usize, reserved: usize) {
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
    fn free_some(
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
    fn evict_elsewhere(&mut self, bound: &Bound, now: u64) -> Freed {
        let Some(shards) = bound.shards.get().and_then(Weak::upgrade) else {
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
            match other.0.try_lock() {
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
    fn released(&self, keys: usize, bytes: usize) {
        if let Some(bound) = &self.bound {
            bound.release(keys, bytes);
        }
    }

    /// Removes the entry at `at` (a valid position), keeping `entries` dense, and
    /// returns it. Its key's bytes stay counted until the key buffer is compacted.
    fn remove_at(&mut self, at: usize) -> Option<Entry> {
        let hash = self.entries.get(at)?.hash;
        let pos = to_u32(at);
        if let Ok(slot) = self.index.find_entry(hash, |slot| slot.pos == pos) {
            slot.remove();
        }
        let removed = self.entries.swap_remove(at);
        // The last entry moved into `at`: point its index slot there.
        if let Some(moved) = self.entries.get(at) {
            let old = to_u32(self.entries.len());
            if let Some(slot) = self.index.find_mut(moved.hash, |slot| slot.pos == old) {
                slot.pos = pos;
            }
        }
        let freed = removed.bytes();
        self.bytes = self.bytes.saturating_sub(freed);
        self.released(1, freed);
        self.garbage += removed.key_len as usize;
        if self.garbage > MIN_GARBAGE && self.garbage * 2 > self.keys.len() {
            self.compact_keys();
        }
        Some(removed)
    }

    /// Moves the live keys' bytes to the front of the key buffer, in place (keeping its
    /// capacity, so that a full storage does not churn through allocations), dropping
    /// the garbage and giving its bytes back.
    fn compact_keys(&mut self) {
        // Positions by where their keys start: each key then moves down, never over a
        // key not yet moved.
        let mut order: Vec<(u32, u32)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(pos, entry)| (entry.key_at, to_u32(pos)))
            .collect();
        order.sort_unstable();
        let mut end = 0usize;
        for (from, pos) in order {
            let Some(entry) = self.entries.get_mut(pos as usize) else {
                continue;
            };
            let (from, len) = (from as usize, entry.key_len as usize);
            if from + len > self.keys.len() {
                continue;
            }
            self.keys.copy_within(from..from + len, end);
            let at = to_u32(end);
            entry.key_at = at;
            if let Some(slot) = self.index.find_mut(entry.hash, |slot| slot.pos == pos) {
                slot.key_at = at;
            }
            end += len;
        }
        self.keys.truncate(end);
        self.bytes = self.bytes.saturating_sub(self.garbage);
        self.released(0, self.garbage);
        self.garbage = 0;
    }

    /// Examines up to `budget` entries at the sweep cursor and removes the expired
    /// ones other than the one at `keep`; how many.
    fn sweep(&mut self, now: u64, budget: usize, keep: Option<usize>) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            if self.entries.is_empty() {
                break;
            }
            if self.cursor >= self.entries.len() {
                self.cursor = 0;
            }
            let expired = self.entries.get(self.cursor).is_some_and(|e| !e.live(now));
            if expired && keep != Some(self.cursor) {
                // The last entry moved into the cursor's place: look at it next.
                self.remove_at(self.cursor);
                removed += 1;
                if keep == Some(self.entries.len()) {
                    // The kept entry was the last: it moved too, and is found again by
                    // its key; stop here.
                    break;
                }
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
        while let Some(entry) = self.entries.get(at) {
            if entry.live(now) {
                at += 1;
            } else {
                self.remove_at(at);
                removed += 1;
            }
        }
        removed
    }

    /// Evicts one entry other than the one at `keep`: an expired one if a short sweep
    /// finds one, else the least recently used of [`EVICTION_SAMPLE`] random entries
    /// (of all entries when there are no more). Whether it removed anything.
    fn evict(&mut self, now: u64, keep: Option<usize>) -> bool {
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

    /// Checks the entries, the index and the key buffer against each other (tests
    /// only).
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.entries.len());
        for (pos, entry) in self.entries.iter().enumerate() {
            let found = self.index.find(entry.hash, |slot| slot.pos as usize == pos);
            assert_eq!(found.map(|s| s.key_at), Some(entry.key_at), "entry {pos}");
        }
        let used: usize = self.entries.iter().map(|e| e.key_len as usize).sum();
        assert_eq!(used + self.garbage, self.keys.len());
        let states: usize = self.entries.iter().map(Entry::bytes).sum();
        assert_eq!(self.bytes, states + self.keys.len());
        assert!(self.len() <= self.cap);
    }
}

/// Whether `builtin` keeps its state on the heap and grows it on hits (moving-window
/// logs; a built-in this crate does not know is assumed to).
fn grows(builtin: BuiltIn) -> bool {
    !matches!(
        builtin,
        BuiltIn::FixedWindow | BuiltIn::SlidingWindow | BuiltIn::Gcra
    )
}

/// How long a hit refused for want of memory is told to wait.
const NO_ROOM_RETRY_MS: u64 = 1_000;

/// `verdict` (of a hit or a test that passed) turned into a refusal, for a hit whose
/// state cannot be stored: a hit that is not counted is never admitted. It may pass
/// again once the storage has room: `retry_at` is [`NO_ROOM_RETRY_MS`] later.
fn refused(verdict: Verdict, at: Timestamp) -> Verdict {
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

/// Runs `builtin` on `value` in place: inline states without a copy, logs on their
/// heap buffer. A moving-window log that starts inline (empty, or short bytes written
/// by compare-and-set) moves to the heap.
fn run(
    builtin: BuiltIn,
    value: &mut Value,
    limit: &RateLimit,
    op: Op,
    at: Timestamp,
) -> Result<Transition, StateError> {
    match value {
        Value::Inline(state) => match builtin.apply_inline(limit, state, op, at) {
            Some(outcome) => outcome,
            None => {
                let mut vec = state.as_slice().to_vec();
                let outcome = builtin.strategy().apply(limit, &mut vec, op, at)?;
                if outcome.write.is_some() {
                    *value = Value::Heap(vec);
                }
                Ok(outcome)
            }
        },
        Value::Heap(vec) => builtin.strategy().apply(limit, vec, op, at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(shard: &mut Shard, key: &str, hash: u64, expires: u64) {
        let current = shard.get(key.as_bytes(), hash, 0).map(|(_, v)| v);
        assert!(shard.compare_and_set(key.as_bytes(), hash, current, key.as_bytes(), expires, 0));
    }

    fn has(shard: &mut Shard, key: &str, hash: u64, now: u64) -> bool {
        shard
            .get(key.as_bytes(), hash, now)
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
        assert_eq!(shard.len(), 50);
        for (i, key) in keys.iter().enumerate() {
            assert!(has(&mut shard, key, hash(i), 0), "{key}");
        }
        // Removing some keys of a hash leaves the others of that hash findable.
        for (i, key) in keys.iter().enumerate().step_by(3) {
            assert!(shard.delete(key.as_bytes(), hash(i)));
            assert!(!shard.delete(key.as_bytes(), hash(i)));
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
            shard.delete(format!("k{i}").as_bytes(), i % 7);
            check(&shard);
        }
        let _ = shard.get(b"k1", 1, 20);
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
                    key.as_bytes(),
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
                    format!("cas-{}", t - t % 5).as_bytes(),
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
        let swept = shard.sweep(50, 4, None);
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
        let size = std::mem::size_of::<Entry>();
        assert!(size <= 72, "{size}");
        let inline = InlineState::CAPACITY;
        let mut value = Value::new(&[1; InlineState::CAPACITY]);
        assert!(matches!(value, Value::Inline(_)));
        value.set(&vec![2; inline + 1]);
        assert!(matches!(value, Value::Heap(_)));
        assert_eq!(value.as_slice(), &vec![2; inline + 1][..]);
        value.set(&[3; 2]);
        assert_eq!(value.as_slice(), &[3; 2]);
        value.clear();
        assert!(value.as_slice().is_empty());
    }

    #[test]
    fn the_key_buffer_is_rebuilt_when_half_garbage() {
        let mut shard = Shard::new(usize::MAX, None, 9);
        let keys: Vec<String> = (0..2_000).map(|i| format!("key-{i:06}")).collect();
        for (i, key) in keys.iter().enumerate() {
            put(&mut shard, key, i as u64, u64::MAX);
        }
        let full = shard.keys.len();
        for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 4 != 0) {
            assert!(shard.delete(key.as_bytes(), i as u64));
            shard.check_invariants();
        }
        assert!(shard.keys.len() < full, "rebuilt");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(has(&mut shard, key, i as u64, 0), i % 4 == 0, "{key}");
        }
    }

    #[test]
    fn deadline_never_shortens_the_ttl() {
        assert_eq!(deadline(10, Duration::from_millis(50)), 61);
        assert_eq!(deadline(10, Duration::from_micros(50_500)), 62);
        assert_eq!(deadline(10, Duration::MAX), u64::MAX);
    }
}
