//! What this process last wrote to its hot keys, so that the next unit of coalesced
//! operations on one can skip the read: it applies its operations to the state held
//! here and sends one compare-and-set at the version held here, one round trip
//! instead of two (a `GET`, then the compare-and-set), or instead of a script that
//! runs every operation on the server.
//!
//! **Exact.** Versions never repeat for a key (see `Versions`), so a compare-and-set
//! at the held version writes only if the key still holds exactly the held bytes:
//! nothing else wrote it, and it has not expired (an absent key has no version).
//! Then the unit's verdicts are those of the state it replaced, as after a read. If
//! another writer got there first, nothing is written and the unit goes by script, as
//! after any lost race. A unit that would write nothing does not trust the held
//! state (no compare-and-set would confirm it) and goes by script.
//!
//! **Bounded.** A fixed number of slots, each holding at most one key (a new key
//! replaces the slot's old one), keys and states of bounded length: at most
//! [`SLOTS`] × ([`MAX_KEY_BYTES`] + [`MAX_STATE_BYTES`]) bytes, whatever keys
//! clients send. Only units that went by compare-and-set fill it, which are those
//! of keys hit concurrently.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

/// How many keys are held at most.
pub(crate) const SLOTS: usize = 32;

/// The longest stored key held, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// The longest state held, in bytes: longer ones (long moving-window logs) are read
/// again by the next unit, or go by script.
pub(crate) const MAX_STATE_BYTES: usize = 16 * 1024;

/// A state this process wrote (or read) and its version.
pub(crate) struct Held {
    key: String,
    pub(crate) state: Vec<u8>,
    pub(crate) version: u64,
}

impl Held {
    /// `state` at `version` in `key`.
    pub(crate) fn new(key: &str, state: Vec<u8>, version: u64) -> Held {
        Held {
            key: key.to_owned(),
            state,
            version,
        }
    }
}

/// The held states, one key per slot.
pub(crate) struct Memo {
    slots: Box<[Mutex<Option<Held>>]>,
    hasher: RandomState,
}

impl Memo {
    pub(crate) fn new() -> Memo {
        Memo {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::new(),
        }
    }

    fn slot(&self, key: &str) -> &Mutex<Option<Held>> {
        let hash = self.hasher.hash_one(key);
        let index = usize::try_from(hash % SLOTS as u64).unwrap_or(0);
        &self.slots[index]
    }

    /// Takes what is held for `key` out of the memo: the caller puts it back only
    /// once a compare-and-set confirmed it (or wrote a newer one).
    pub(crate) fn take(&self, key: &str) -> Option<Held> {
        let mut slot = self
            .slot(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(held) if held.key == key => slot.take(),
            _ => None,
        }
    }

    /// Holds `held`, unless its key or state is too long (then forgets its key).
    pub(crate) fn keep(&self, held: Held) {
        let fits = held.key.len() <= MAX_KEY_BYTES && held.state.len() <= MAX_STATE_BYTES;
        let mut slot = self
            .slot(&held.key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if fits {
            *slot = Some(held);
        } else if slot.as_ref().is_some_and(|h| h.key == held.key) {
            *slot = None;
        }
    }

    /// Forgets `key`: this process wrote it another way.
    pub(crate) fn forget(&self, key: &str) {
        let _ = self.take(key);
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.lock().unwrap_or_else(PoisonError::into_inner).is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_taken_once_and_only_by_its_name() {
        let memo = Memo::new();
        memo.keep(Held::new("a", vec![1, 2], 7));
        assert!(memo.take("b").is_none());
        let held = memo.take("a").map(|h| (h.state, h.version));
        assert_eq!(held, Some((vec![1, 2], 7)));
        assert!(memo.take("a").is_none());
    }

    #[test]
    fn long_keys_and_states_are_not_held_and_a_flood_stays_within_the_slots() {
        let memo = Memo::new();
        memo.keep(Held::new("k", vec![0; MAX_STATE_BYTES], 1));
        assert_eq!(memo.len(), 1);
        // A longer state for the same key forgets the old one.
        memo.keep(Held::new("k", vec![0; MAX_STATE_BYTES + 1], 2));
        assert!(memo.take("k").is_none());
        memo.keep(Held::new(&"x".repeat(MAX_KEY_BYTES + 1), Vec::new(), 3));
        assert_eq!(memo.len(), 0);
        for i in 0..10_000 {
            memo.keep(Held::new(&format!("{i:01000}"), vec![0; 100], i));
        }
        assert!(memo.len() <= SLOTS);
        let held: usize = (0..10_000)
            .filter_map(|i| memo.take(&format!("{i:01000}")))
            .map(|h| h.key.len() + h.state.len())
            .sum();
        assert!(held <= SLOTS * (MAX_KEY_BYTES + MAX_STATE_BYTES));
        assert!(held > 0);
    }
}
