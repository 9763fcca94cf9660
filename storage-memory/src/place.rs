//! Where a key lives: its shard, its full hash, and the bytes it is stored under.
//!
//! Keys come from clients, so a key's group ([`StorageKey::group`](limiter_core::storage::StorageKey::group): namespace,
//! strategy and identifiers) goes through a randomly seeded hash (foldhash), in the two
//! pieces [`KeyRef::group_parts`] gives (so a key still in its parts is never joined
//! into one string); the middle bits of that hash pick the shard, so all of one
//! client's limits under one strategy share a shard, and a multi-limit hit locks one.
//! The limit, which the application chooses, is mixed in cheaply ([`mix`]) for the
//! key's full hash, which the shard's table uses as it is: a key is hashed once per
//! operation, and a lookup allocates nothing.
//!
//! # Stored form
//!
//! A key in the limiter's layout (its limit part names a limit, [`KeyRef::limit`]) is
//! stored as its group, [`LIMIT_MARK`] and the limit in binary ([`push_limit`]: a few
//! bytes, where `/100/1/minute` takes 13), never joined or formatted on the hot path
//! ([`StoredKey`]). Any other key ([`StorageKey::new`](limiter_core::storage::StorageKey::new)) is stored as its text. A part longer
//! than [`DIGEST_ABOVE`] bytes is stored digested ([`push_part`]), so a stored key
//! takes at most 513 bytes whatever the key function returns.

use limiter_core::storage::KeyRef;
use limiter_core::{RateLimit, Unit};
use sha2::{Digest, Sha256};

use crate::{MemoryStorage, DIGEST_ABOVE};

/// How many bytes of a digested part are kept as they are, before its digest.
const DIGEST_PREFIX: usize = 64;

/// Marks a digested part: never in a key's text, which is UTF-8.
const DIGEST_MARK: u8 = 0xFF;

/// Marks a limit stored in binary, in place of `/` and the limit part: never in a
/// key's text either, nor in a digested part's first 65 bytes.
const LIMIT_MARK: u8 = 0xFE;

/// The most bytes [`push_limit`] writes: the mark, three LEB128 numbers of up to 10
/// bytes and the unit.
const LIMIT_BYTES: usize = 1 + 3 * 10 + 1;

/// The bytes a key is stored under, in up to three pieces that are never joined on
/// the hot path: a lookup compares them in turn with a stored key's bytes, and only
/// a new key has them copied, into the shard's key buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredKey<'k> {
    pieces: [&'k [u8]; 3],
}

impl StoredKey<'_> {
    /// How many bytes the key takes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        let [a, b, c] = self.pieces;
        a.len() + b.len() + c.len()
    }

    /// Whether `stored` holds exactly this key's bytes.
    #[inline]
    pub(crate) fn matches(&self, stored: &[u8]) -> bool {
        let [a, b, c] = self.pieces;
        stored.len() == self.len()
            && stored.get(..a.len()) == Some(a)
            && stored.get(a.len()..a.len() + b.len()) == Some(b)
            && stored.get(a.len() + b.len()..) == Some(c)
    }

    /// Appends the key's bytes to `out`.
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        for piece in self.pieces {
            out.extend_from_slice(piece);
        }
    }

    /// The key's bytes, joined.
    #[cfg(test)]
    pub(crate) fn to_vec(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.append_to(&mut out);
        out
    }
}

impl<'k> From<&'k [u8]> for StoredKey<'k> {
    fn from(bytes: &'k [u8]) -> Self {
        StoredKey {
            pieces: [bytes, &[], &[]],
        }
    }
}

/// Room for the parts of a key's stored bytes that are not borrowed from the key:
/// its binary limit, or the whole of a key stored otherwise.
pub(crate) struct KeyBuf {
    limit: [u8; LIMIT_BYTES],
    other: Vec<u8>,
}

impl KeyBuf {
    pub(crate) fn new() -> KeyBuf {
        KeyBuf {
            limit: [0; LIMIT_BYTES],
            other: Vec::new(),
        }
    }
}

/// Writes `n` in LEB128 at `out[at..]` (seven bits per byte, the high bit set on all
/// but the last); where it ends.
#[inline]
fn put_leb128(out: &mut [u8; LIMIT_BYTES], mut at: usize, mut n: u64) -> usize {
    while n >= 0x80 {
        if let Some(byte) = out.get_mut(at) {
            // The low seven bits, with the continuation bit.
            *byte = (n.to_le_bytes()[0] & 0x7F) | 0x80;
        }
        at += 1;
        n >>= 7;
    }
    if let Some(byte) = out.get_mut(at) {
        // Below 0x80 here.
        *byte = n.to_le_bytes()[0];
    }
    at + 1
}

/// The position of `unit` in [`Unit::ALL`].
#[inline]
fn unit_index(unit: Unit) -> u8 {
    match unit {
        Unit::Millisecond => 0,
        Unit::Second => 1,
        Unit::Minute => 2,
        Unit::Hour => 3,
        Unit::Day => 4,
        Unit::Month => 5,
        Unit::Year => 6,
    }
}

/// Writes [`LIMIT_MARK`] and `limit` in binary into `out`: its amount and multiples in
/// LEB128, its unit's position in [`Unit::ALL`], then, for a limit with a burst of its
/// own, the burst in LEB128; how many bytes. LEB128 is prefix-free and the burst is
/// there exactly when the limit part has `/b`, so distinct limits (distinct limit
/// parts) get distinct bytes.
#[inline]
fn push_limit(out: &mut [u8; LIMIT_BYTES], limit: &RateLimit) -> usize {
    out[0] = LIMIT_MARK;
    let mut at = put_leb128(out, 1, limit.amount());
    at = put_leb128(out, at, limit.multiples());
    if let Some(byte) = out.get_mut(at) {
        *byte = unit_index(limit.unit());
    }
    at += 1;
    if limit.burst() != limit.amount() {
        at = put_leb128(out, at, limit.burst());
    }
    at.min(LIMIT_BYTES)
}

/// A group already hashed, for [`MemoryStorage::place_plain_key`].
#[derive(Clone, Copy)]
pub(crate) struct SeenGroup<'k> {
    parts: (&'k str, &'k str),
    hash: u64,
}

impl SeenGroup<'_> {
    /// Whether `parts` are the very strings hashed (not merely equal ones: comparing
    /// the bytes would cost about what hashing them does).
    #[inline]
    fn is(&self, (prefix, rest): (&str, &str)) -> bool {
        std::ptr::eq(self.parts.0, prefix) && std::ptr::eq(self.parts.1, rest)
    }
}

/// Where a key lives: its shard, its full hash, and the bytes it is stored under.
pub(crate) struct Place<'k> {
    pub(crate) shard: usize,
    pub(crate) hash: u64,
    pub(crate) key: StoredKey<'k>,
}

impl MemoryStorage {
    /// The seeded hash of a group given in two pieces.
    #[inline]
    fn hash_group(&self, (prefix, rest): (&str, &str)) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, (prefix, rest))
    }

    fn hash_bytes(&self, part: &[u8]) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, part)
    }

    /// Where `key` lives: its shard, from the hash of its group alone, so that all of
    /// one client's limits under one strategy share a shard (a multi-limit hit then
    /// locks one shard); its full hash in the shard's table, the group's hash mixed
    /// with the limit's stored bytes; and those bytes (see the module docs), borrowed
    /// from `key` and `buf`.
    #[inline]
    pub(crate) fn place<'k>(&self, key: KeyRef<'k>, buf: &'k mut KeyBuf) -> Place<'k> {
        let (prefix, rest) = key.group_parts();
        match key.limit() {
            Some(limit) if prefix.len() + rest.len() <= DIGEST_ABOVE => {
                self.place_plain((prefix, rest), &limit, buf)
            }
            limit => self.place_other(key, limit, buf),
        }
    }

    /// [`place`](Self::place) when the key is stored as its group and binary limit
    /// with the group as it is (the hot path); `None` for any other key.
    ///
    /// `seen` carries the group and hash of the key placed before: the keys of one
    /// multi-limit hit share their group (the very same strings), which is then hashed
    /// once.
    #[inline]
    pub(crate) fn place_plain_key<'k>(
        &self,
        key: KeyRef<'k>,
        buf: &'k mut KeyBuf,
        seen: &mut Option<SeenGroup<'k>>,
    ) -> Option<Place<'k>> {
        let (prefix, rest) = key.group_parts();
        if prefix.len() + rest.len() > DIGEST_ABOVE {
            return None;
        }
        let limit = key.limit()?;
        let hash = match seen {
            Some(seen) if seen.is((prefix, rest)) => seen.hash,
            _ => {
                let hash = self.hash_group((prefix, rest));
                *seen = Some(SeenGroup {
                    parts: (prefix, rest),
                    hash,
                });
                hash
            }
        };
        Some(self.place_hashed((prefix, rest), hash, &limit, buf))
    }

    /// [`place`](Self::place) for a key of the limiter's layout whose group is at
    /// most [`DIGEST_ABOVE`] bytes: stored as its group and its binary limit. The hot
    /// path: no allocation, no copy, no number formatted.
    #[inline]
    fn place_plain<'k>(
        &self,
        group: (&'k str, &'k str),
        limit: &RateLimit,
        buf: &'k mut KeyBuf,
    ) -> Place<'k> {
        self.place_hashed(group, self.hash_group(group), limit, buf)
    }

    /// [`place_plain`](Self::place_plain) with the group's hash already known.
    #[inline]
    fn place_hashed<'k>(
        &self,
        (prefix, rest): (&'k str, &'k str),
        hash: u64,
        limit: &RateLimit,
        buf: &'k mut KeyBuf,
    ) -> Place<'k> {
        let len = push_limit(&mut buf.limit, limit);
        let limit_bytes = buf.limit.get(..len).unwrap_or_default();
        Place {
            shard: self.shard_of(hash),
            hash: hash ^ mix(limit_bytes),
            key: StoredKey {
                pieces: [prefix.as_bytes(), rest.as_bytes(), limit_bytes],
            },
        }
    }

    /// [`place`](Self::place) for a key with a group longer than [`DIGEST_ABOVE`] or
    /// a limit part that names no limit: stored as its group and binary limit, or as
    /// `group/limit`, with each long part digested (see [`push_part`]), in
    /// `buf`. The shard depends on the group alone, as for other keys: a group is
    /// always stored the same way, whatever the limit.
    #[cold]
    #[inline(never)]
    fn place_other<'k>(
        &self,
        key: KeyRef<'_>,
        limit: Option<RateLimit>,
        buf: &'k mut KeyBuf,
    ) -> Place<'k> {
        let (prefix, rest) = key.group_parts();
        let stored = &mut buf.other;
        stored.clear();
        stored.reserve(2 * DIGESTED_LEN + 1);
        let hash = if prefix.len() + rest.len() > DIGEST_ABOVE {
            push_part(stored, &[prefix, rest].concat());
            self.hash_bytes(stored)
        } else {
            stored.extend_from_slice(prefix.as_bytes());
            stored.extend_from_slice(rest.as_bytes());
            self.hash_group((prefix, rest))
        };
        let group_len = stored.len();
        match limit {
            Some(limit) => {
                let len = push_limit(&mut buf.limit, &limit);
                stored.extend_from_slice(buf.limit.get(..len).unwrap_or_default());
            }
            None => {
                stored.push(b'/');
                push_part(stored, key.to_storage_key().limit_part());
            }
        }
        let stored: &'k [u8] = stored;
        let limit_part = stored.get(group_len..).unwrap_or_default();
        Place {
            shard: self.shard_of(hash),
            hash: hash ^ mix(limit_part),
            key: StoredKey::from(stored),
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
/// UTF-8, so neither mark ever appears in it, and the first 64 bytes of a digested
/// part are text. The first byte that is not UTF-8 tells the shape: none for a key
/// stored as its text; [`LIMIT_MARK`] right after a plain group for a binary limit;
/// [`DIGEST_MARK`] at byte 64 for a digested group (then byte 97 is `/` or
/// [`LIMIT_MARK`]); [`DIGEST_MARK`] at byte 65 or later for a plain group and a
/// digested limit part. A digested limit part after a digested group puts a second
/// mark at byte 162, where a plain limit part has none; within each of these shapes
/// the lengths are fixed or told by a mark's position, LEB128 numbers are
/// prefix-free, and the digests tell the parts apart.
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

    use limiter_core::storage::StorageKey;
    use limiter_core::{Key, RateLimit, RateLimiter};
    use std::sync::Arc;

    fn stored(group: &str, limit: &str) -> Vec<u8> {
        let storage = MemoryStorage::with_options(MemoryOptions::new().shards(4));
        let key = StorageKey::new(group, limit);
        storage
            .place((&key).into(), &mut KeyBuf::new())
            .key
            .to_vec()
    }

    /// The stored bytes of a limiter's key, and its text.
    fn layout_key(identifier: &str, limit: &str) -> (Vec<u8>, Vec<u8>) {
        let storage = Arc::new(MemoryStorage::with_options(MemoryOptions::new().shards(4)));
        let limiter = RateLimiter::new(storage.clone());
        let limit: RateLimit = limit.parse().unwrap();
        let key = limiter.storage_key(&limit, &Key::from(identifier));
        let built = storage
            .place((&key).into(), &mut KeyBuf::new())
            .key
            .to_vec();
        (built, key.as_str().as_bytes().to_vec())
    }

    #[test]
    fn layout_keys_store_their_limit_in_binary() {
        let (stored, text) = layout_key("10.0.0.1", "100 per minute");
        let group = b"LIMITER/fixed-window/10.0.0.1";
        assert_eq!(&text[..group.len()], group);
        // The group, the mark, 100 and 1 in LEB128 and the minute's position.
        assert_eq!(stored, [&group[..], &[LIMIT_MARK, 100, 1, 2]].concat());
        let (bursty, _) = layout_key("10.0.0.1", "300 per 2 hours burst 1000");
        assert_eq!(
            bursty,
            [&group[..], &[LIMIT_MARK, 0xAC, 0x02, 2, 3, 0xE8, 0x07]].concat()
        );
        // A long identifier digests the group and keeps the binary limit.
        let (long, _) = layout_key(&"x".repeat(DIGEST_ABOVE), "1 per second");
        assert_eq!(long.len(), DIGESTED_LEN + 4);
        assert_eq!(long[DIGEST_PREFIX], DIGEST_MARK);
        assert_eq!(long[DIGESTED_LEN], LIMIT_MARK);
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
            let short = StorageKey::new(&group, "1/1/minute");
            let long = StorageKey::new(&group, &"l".repeat(1_000));
            let short = storage.place((&short).into(), &mut KeyBuf::new()).shard;
            let long = storage.place((&long).into(), &mut KeyBuf::new()).shard;
            assert_eq!(short, long);
        }
    }
}
