//! One shard: a dense list of entries, an index over it and the keys' bytes; what a
//! key costs, and how it is found, added and removed.
//!
//! The rest of a shard's work has a file each: running built-ins on its states
//! ([`apply`]), making room at the bounds ([`room`]), reclaiming expired entries
//! ([`expiry`]), and the stored state itself ([`value`]).
//!
//! # Layout
//!
//! Entries live in one dense `Vec` (removal is `swap_remove`), each with its key's
//! hash folded to 32 bits (4 bytes a key less than the full hash). The index is a hash
//! table of slots (8 bytes each: the entry's position and where its key's bytes start)
//! keyed by that folded hash, spread back over 64 bits: the storage computes the hash
//! once per operation, and the index never needs it again, so a key is never hashed
//! twice. The keys' bytes are kept back to
//! back in one buffer per shard (`keys`); an entry also holds where its key starts and
//! its length. So a stored key costs its entry, its bytes and an index slot, with no
//! allocation of its own, and a hit touches the index slot, then the entry and the
//! key's bytes (to confirm the match) at once.
//!
//! Two different keys with the same folded hash (practically never, but keys come from
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
//! Entries also carry a version from the shard's counter: a key always lives in the
//! same shard, so a deleted and re-created key never gets a version it had before (no
//! ABA), and no counter is shared between cores.

mod apply;
mod expiry;
mod room;
mod value;

use std::sync::Arc;

use hashbrown::HashTable;

use crate::bound::Bound;
use crate::place::StoredKey;
pub(crate) use apply::InlineCopy;
pub(crate) use expiry::deadline;
use expiry::SWEEP_ON_INSERT;
use value::Value;

/// The most entries a shard holds, so that positions fit a `u32`.
const MAX_ENTRIES: usize = u32::MAX as usize;
/// The most bytes of keys a shard holds, so that offsets fit a `u32`.
const MAX_KEY_BYTES: usize = u32::MAX as usize;
/// The key buffer is rebuilt once its garbage is over half of it and over this many
/// bytes.
const MIN_GARBAGE: usize = 4_096;
/// What one entry costs in the byte count, besides its key's bytes and its heap
/// state: the entry itself and its index slot.
pub(crate) const ENTRY_BYTES: usize = std::mem::size_of::<Entry>() + std::mem::size_of::<Slot>();
/// The 32 bits of a key's hash its entry keeps.
fn fold(hash: u64) -> u32 {
    // The low 32 bits of the xor of both halves: always fits.
    u32::try_from((hash ^ (hash >> 32)) & u64::from(u32::MAX)).unwrap_or_default()
}

/// The index's hash of a folded hash: times an odd constant, so that both the low bits
/// (the bucket) and the top bits (the table's tag byte) vary with the folded bits.
fn spread(folded: u32) -> u64 {
    u64::from(folded).wrapping_mul(0x9E37_79B9_7F4A_7C15)
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
    /// The key's hash, [folded](fold) to 32 bits.
    hash: u32,
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
    fn find(&self, key: &StoredKey<'_>, hash: u64) -> Option<usize> {
        let (entries, keys) = (&self.entries, &self.keys);
        let hash = fold(hash);
        self.index
            .find(spread(hash), |slot| {
                let at = slot.key_at as usize;
                keys.get(at..at + key.len())
                    .is_some_and(|stored| key.matches(stored))
                    && entries
                        .get(slot.pos as usize)
                        .is_some_and(|e| e.key_len as usize == key.len() && e.hash == hash)
            })
            .map(|slot| slot.pos as usize)
    }

    /// `key`'s bytes and version, if it is live at `now`.
    pub(crate) fn get(
        &mut self,
        key: &StoredKey<'_>,
        hash: u64,
        now: u64,
    ) -> Option<(Vec<u8>, u64)> {
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
        key: &StoredKey<'_>,
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
    pub(crate) fn delete(&mut self, key: &StoredKey<'_>, hash: u64) -> bool {
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

    /// Adds an entry for a key known to be absent, evicting first if the storage or the
    /// shard is full, then sweeps a few entries. Whether it added the entry (see
    /// [`make_room`](Self::make_room) for when it cannot).
    fn insert(
        &mut self,
        key: &StoredKey<'_>,
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
        key.append_to(&mut self.keys);
        self.bytes += cost;
        self.version = self.version.wrapping_add(1);
        let entry = Entry {
            hash: fold(hash),
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
        self.index.insert_unique(spread(fold(hash)), slot, |slot| {
            entries.get(slot.pos as usize).map_or(0, |e| spread(e.hash))
        });
        self.sweep(now, SWEEP_ON_INSERT, None);
        true
    }

    /// Removes the entry at `at` (a valid position), keeping `entries` dense, and
    /// returns it. Its key's bytes stay counted until the key buffer is compacted.
    fn remove_at(&mut self, at: usize) -> Option<Entry> {
        let hash = spread(self.entries.get(at)?.hash);
        let pos = to_u32(at);
        if let Ok(slot) = self.index.find_entry(hash, |slot| slot.pos == pos) {
            slot.remove();
        }
        let removed = self.entries.swap_remove(at);
        // The last entry moved into `at`: point its index slot there.
        if let Some(moved) = self.entries.get(at) {
            let old = to_u32(self.entries.len());
            if let Some(slot) = self
                .index
                .find_mut(spread(moved.hash), |slot| slot.pos == old)
            {
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
            if let Some(slot) = self
                .index
                .find_mut(spread(entry.hash), |slot| slot.pos == pos)
            {
                slot.key_at = at;
            }
            end += len;
        }
        self.keys.truncate(end);
        self.bytes = self.bytes.saturating_sub(self.garbage);
        self.released(0, self.garbage);
        self.garbage = 0;
    }

    /// Checks the entries, the index and the key buffer against each other (tests
    /// only).
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.index.len(), self.entries.len());
        for (pos, entry) in self.entries.iter().enumerate() {
            let found = self
                .index
                .find(spread(entry.hash), |slot| slot.pos as usize == pos);
            assert_eq!(found.map(|s| s.key_at), Some(entry.key_at), "entry {pos}");
        }
        let used: usize = self.entries.iter().map(|e| e.key_len as usize).sum();
        assert_eq!(used + self.garbage, self.keys.len());
        let states: usize = self.entries.iter().map(Entry::bytes).sum();
        assert_eq!(self.bytes, states + self.keys.len());
        assert!(self.len() <= self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::value::Value;
    use super::*;
    use limiter_core::strategy::state::InlineState;

    pub(crate) fn put(shard: &mut Shard, key: &str, hash: u64, expires: u64) {
        let current = shard
            .get(&StoredKey::from(key.as_bytes()), hash, 0)
            .map(|(_, v)| v);
        assert!(shard.compare_and_set(
            &StoredKey::from(key.as_bytes()),
            hash,
            current,
            key.as_bytes(),
            expires,
            0
        ));
    }

    pub(crate) fn has(shard: &mut Shard, key: &str, hash: u64, now: u64) -> bool {
        shard
            .get(&StoredKey::from(key.as_bytes()), hash, now)
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
            assert!(shard.delete(&StoredKey::from(key.as_bytes()), hash(i)));
            assert!(!shard.delete(&StoredKey::from(key.as_bytes()), hash(i)));
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
    fn entries_stay_small_and_values_move_to_the_heap_when_long() {
        let size = std::mem::size_of::<Entry>();
        assert!(size <= 64, "{size}");
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
            assert!(shard.delete(&StoredKey::from(key.as_bytes()), i as u64));
            shard.check_invariants();
        }
        assert!(shard.keys.len() < full, "rebuilt");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(has(&mut shard, key, i as u64, 0), i % 4 == 0, "{key}");
        }
    }
}
