//! Where a key lives: its shard, its full hash, and the bytes it is stored under.
//!
//! Keys come from clients, so a key's group ([`StorageKey::group`]: namespace,
//! strategy and identifiers) goes through a randomly seeded hash (foldhash); the middle
//! bits of that hash pick the shard, so all of one client's limits under one strategy
//! share a shard, and a multi-limit hit locks one. The limit part, which the
//! application chooses, is mixed in cheaply ([`mix`]) for the key's full hash, which
//! the shard's table uses as it is: a key is hashed once per operation, and a lookup
//! allocates nothing.
//!
//! A part longer than [`DIGEST_ABOVE`] bytes is stored digested ([`push_part`]), so a
//! stored key takes at most 513 bytes whatever the key function returns; keys whose
//! parts are shorter are stored as they are, borrowed from the caller.

use std::borrow::Cow;

use limiter_core::storage::StorageKey;
use sha2::{Digest, Sha256};

use crate::{MemoryStorage, DIGEST_ABOVE};

/// How many bytes of a digested part are kept as they are, before its digest.
const DIGEST_PREFIX: usize = 64;

/// Marks a digested part: never in a key's text, which is UTF-8.
const DIGEST_MARK: u8 = 0xFF;

/// Where a key lives: its shard, its full hash, and the bytes it is stored under (its
/// text, or its digested form when a part is longer than [`DIGEST_ABOVE`]).
pub(crate) struct Place<'k> {
    pub(crate) shard: usize,
    pub(crate) hash: u64,
    pub(crate) key: Cow<'k, [u8]>,
}

impl MemoryStorage {
    fn hash(&self, part: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, part)
    }

    fn hash_bytes(&self, part: &[u8]) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, part)
    }

    /// Where `key` lives: its shard, from the hash of its group alone, so that all of
    /// one client's limits under one strategy share a shard (a multi-limit hit then
    /// locks one shard); and its full hash in the shard's table, the group's hash
    /// mixed with the limit part. Only the group holds what clients choose, so only
    /// the group goes through the seeded hash; the limit part (the application's
    /// limits) is mixed in cheaply. A key whose parts are at most [`DIGEST_ABOVE`]
    /// bytes is stored under its own text, borrowed.
    #[inline]
    pub(crate) fn place<'k>(&self, key: &'k StorageKey) -> Place<'k> {
        match self.place_plain(key) {
            Some((shard, hash)) => Place {
                shard,
                hash,
                key: Cow::Borrowed(key.as_str().as_bytes()),
            },
            None => self.place_digested(key.group(), key.limit_part()),
        }
    }

    /// The shard and full hash of a key stored under its own text (both parts at most
    /// [`DIGEST_ABOVE`] bytes), as [`place`](Self::place) gives them; `None` for a key
    /// to digest. The hot path: no allocation, no copy.
    #[inline]
    pub(crate) fn place_plain(&self, key: &StorageKey) -> Option<(usize, u64)> {
        let (group, limit) = (key.group(), key.limit_part());
        if group.len() > DIGEST_ABOVE || limit.len() > DIGEST_ABOVE {
            return None;
        }
        let hash = self.hash(group);
        Some((self.shard_of(hash), hash ^ mix(limit.as_bytes())))
    }

    /// [`place`](Self::place) for a key with a part longer than [`DIGEST_ABOVE`]:
    /// stored as `group/limit` with each long part digested (see [`push_part`]). The
    /// shard depends on the group alone, as for other keys: a group is always stored
    /// the same way, whatever the limit.
    #[cold]
    #[inline(never)]
    fn place_digested(&self, group: &str, limit: &str) -> Place<'static> {
        let mut stored = Vec::with_capacity(2 * DIGESTED_LEN + 1);
        push_part(&mut stored, group);
        let group_len = stored.len();
        stored.push(b'/');
        push_part(&mut stored, limit);
        let hash = match stored.get(..group_len) {
            Some(digested) if group.len() > DIGEST_ABOVE => self.hash_bytes(digested),
            _ => self.hash(group),
        };
        let limit_part = stored.get(group_len + 1..).unwrap_or_default();
        Place {
            shard: self.shard_of(hash),
            hash: hash ^ mix(limit_part),
            key: Cow::Owned(stored),
        }
    }

    /// The shard of a group's hash: its middle 32 bits scaled to the shard count.
    fn shard_of(&self, hash: u64) -> usize {
        let middle = (hash >> 24) & 0xFFFF_FFFF;
        usize::try_from((middle * self.shard_count) >> 32).unwrap_or(0)
    }
}

/// The most bytes a digested part takes: its first [`DIGEST_PREFIX`] bytes, the
/// mark and a SHA-256.
const DIGESTED_LEN: usize = DIGEST_PREFIX + 1 + 32;

/// Appends `part` as it is stored: as it is when at most [`DIGEST_ABOVE`] bytes, else
/// its first [`DIGEST_PREFIX`] bytes, [`DIGEST_MARK`] and the SHA-256 of the whole
/// part.
///
/// No two keys share a stored form (barring a SHA-256 collision): a key's text is
/// UTF-8, so the mark appears only in digested parts; a digested group puts it at byte
/// 64, a plain group followed by a digested limit part at byte 65 or later, and a
/// digested limit part after a digested group puts a second one at byte 162, where a
/// plain limit part has none; within each of these shapes the lengths are fixed or
/// told by the mark's position, and the digests tell the parts apart.
fn push_part(out: &mut Vec<u8>, part: &str) {
    let bytes = part.as_bytes();
    if bytes.len() <= DIGEST_ABOVE {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend_from_slice(bytes.get(..DIGEST_PREFIX).unwrap_or(bytes));
    out.push(DIGEST_MARK);
    out.extend_from_slice(&Sha256::digest(bytes));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryOptions;

    fn stored(group: &str, limit: &str) -> Vec<u8> {
        let storage = MemoryStorage::with_options(MemoryOptions::new().shards(4));
        let key = StorageKey::new(group, limit);
        storage.place(&key).key.into_owned()
    }

    #[test]
    fn parts_over_the_threshold_are_digested_and_no_two_keys_meet() {
        let plain = "p".repeat(DIGEST_ABOVE);
        let long = "p".repeat(DIGEST_ABOVE + 1);
        // At the threshold a part is kept as it is.
        assert_eq!(
            stored(&plain, &plain),
            format!("{plain}/{plain}").into_bytes()
        );
        let shapes = [
            stored(&long, "1/1/minute"),
            stored("g", &long),
            stored(&long, &long),
            stored(&"q".repeat(64 * 1024), &long),
            stored("", &long),
        ];
        for (i, a) in shapes.iter().enumerate() {
            assert!(a.len() <= 2 * DIGEST_ABOVE + 1, "{}", a.len());
            assert!(a.contains(&DIGEST_MARK));
            for b in &shapes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The same part is digested the same way, and a change past the kept prefix
        // still changes the digest.
        assert_eq!(stored(&long, "x"), stored(&long, "x"));
        let mut other = long.clone();
        other.push('!');
        assert_ne!(stored(&long, "x"), stored(&other, "x"));
    }

    #[test]
    fn a_group_maps_to_one_shard_whatever_its_limit_part() {
        let storage = MemoryStorage::with_options(MemoryOptions::new().shards(64));
        for group in ["g".repeat(10), "g".repeat(DIGEST_ABOVE + 1)] {
            let short = storage.place(&StorageKey::new(&group, "1/1/minute")).shard;
            let long = storage
                .place(&StorageKey::new(&group, &"l".repeat(1_000)))
                .shard;
            assert_eq!(short, long);
        }
    }
}
