//! Keys: who or what a limit applies to.
//!
//! A stored key ([`StorageKey`]) is `namespace/strategy/identifier/…/amount/multiples/unit`.
//! Every part that comes from the user is escaped (`%` → `%25`, `/` → `%2F`, `{` → `%7B`,
//! `}` → `%7D`), so two different identifier lists can never produce the same key:
//! `["a/b", "c"]` and `["a", "b/c"]` stay apart.

use std::cell::RefCell;
use std::ops::Deref;

use crate::limit::RateLimit;

/// The identifiers a limit is counted against, such as a client address and a route.
///
/// Identifiers are escaped once, when the key is built, so building the stored key for
/// a hit costs one allocation.
///
/// # Examples
///
/// ```
/// use limiter_core::Key;
///
/// let key = Key::new(["203.0.113.9", "/login"]);
/// assert_eq!(key.len(), 2);
/// assert_ne!(Key::new(["a/b", "c"]), Key::new(["a", "b/c"]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Key {
    escaped: String,
    len: usize,
}

impl Key {
    /// A key made of `identifiers`, in order.
    pub fn new<I>(identifiers: I) -> Key
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut key = Key::default();
        for identifier in identifiers {
            key.push(identifier.as_ref());
        }
        key
    }

    /// A key with no identifiers: one counter shared by everyone.
    pub fn global() -> Key {
        Key::default()
    }

    /// Appends one identifier.
    pub fn push(&mut self, identifier: &str) {
        self.escaped.push('/');
        escape_into(&mut self.escaped, identifier);
        self.len += 1;
    }

    /// How many identifiers the key has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the key has no identifiers.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl From<&str> for Key {
    fn from(identifier: &str) -> Key {
        Key::new([identifier])
    }
}

impl From<String> for Key {
    fn from(identifier: String) -> Key {
        Key::new([identifier])
    }
}

impl<const N: usize> From<[&str; N]> for Key {
    fn from(identifiers: [&str; N]) -> Key {
        Key::new(identifiers)
    }
}

/// Appends `part` to `out`, escaping `%`, `/`, `{` and `}`.
pub(crate) fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// The escaped form of `part`.
pub(crate) fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    escape_into(&mut out, part);
    out
}

/// The key a storage keeps one limit's state under, with its structure.
///
/// # Layout
///
/// ```text
/// namespace/strategy/identifier…/amount/multiples/unit
/// \______________ group _______/ \____ limit _____/
/// ```
///
/// - The **group** is the escaped namespace, the escaped strategy name and each escaped
///   identifier of the [`Key`], joined by `/`. It is shared by every limit one client is
///   counted against under one strategy, so every key of one
///   [`RateLimiter::hit_all`](crate::RateLimiter::hit_all) has the same group.
/// - The **limit** part is the limit's amount and multiples in decimal and its unit's
///   name ([`Unit::name`](crate::Unit::name)), joined by `/`, then, for a limit with a
///   [burst](crate::RateLimit::with_burst) of its own, `/b` and the burst in decimal. It
///   never contains anything a client chose.
/// - Escaping replaces `%` with `%25`, `/` with `%2F`, `{` with `%7B` and `}` with
///   `%7D` in every part that comes from the user (namespace, strategy name,
///   identifiers). It is injective, so distinct keys never share a stored key, and the
///   whole key contains no `{` or `}`: a Redis Cluster storage can store a key as
///   `{group}/limit` so that all of one client's limits hash to one slot, and no
///   identifier can move the tag.
///
/// [`as_str`](Self::as_str) is `group + "/" + limit`. The layout is part of the storage
/// contract: stored keys stay the same across versions of a major release.
///
/// # Examples
///
/// ```
/// use limiter_core::{Key, RateLimit, RateLimiter};
/// # use limiter_core::doc_support::TinyStorage;
/// use std::sync::Arc;
///
/// let limiter = RateLimiter::new(Arc::new(TinyStorage::default()));
/// let limit: RateLimit = "10 per 2 minutes".parse()?;
/// let key = limiter.storage_key(&limit, &Key::new(["10.0.0.1", "/{login}"]));
/// assert_eq!(key.as_str(), "LIMITER/fixed-window/10.0.0.1/%2F%7Blogin%7D/10/2/minute");
/// assert_eq!(key.group(), "LIMITER/fixed-window/10.0.0.1/%2F%7Blogin%7D");
/// assert_eq!(key.limit_part(), "10/2/minute");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    text: String,
    group_len: usize,
}

impl StorageKey {
    /// A key outside the limiter's layout, for tests and tools: `group` and `name`
    /// escaped like identifiers and joined by `/`, with `name` as the limit part.
    ///
    /// ```
    /// use limiter_core::StorageKey;
    ///
    /// let key = StorageKey::new("tests/a", "b{1}");
    /// assert_eq!(key.as_str(), "tests%2Fa/b%7B1%7D");
    /// assert_eq!(key.group(), "tests%2Fa");
    /// ```
    pub fn new(group: &str, name: &str) -> StorageKey {
        let mut text = String::with_capacity(group.len() + name.len() + 1);
        escape_into(&mut text, group);
        let group_len = text.len();
        text.push('/');
        escape_into(&mut text, name);
        StorageKey { text, group_len }
    }

    /// The whole key: `group/limit`.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part shared by one client's limits under one strategy:
    /// `namespace/strategy/identifier…`, escaped.
    #[inline]
    pub fn group(&self) -> &str {
        self.text.get(..self.group_len).unwrap_or_default()
    }

    /// The part that names the limit: `amount/multiples/unit`, then `/b` and the
    /// burst for a limit with a burst of its own (`10/1/second/b50`).
    #[inline]
    pub fn limit_part(&self) -> &str {
        self.text.get(self.group_len + 1..).unwrap_or_default()
    }
}

impl std::fmt::Display for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for StorageKey {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// The stored key for `key` under `limit`; `prefix` is the escaped
/// `namespace/strategy` part.
pub(crate) fn storage_key(prefix: &str, key: &Key, limit: &RateLimit) -> StorageKey {
    with_prefix(prefix, &key.escaped, limit)
}

/// The stored key of escaped `identifiers` (each preceded by `/`) under `limit`.
pub(crate) fn with_prefix(prefix: &str, identifiers: &str, limit: &RateLimit) -> StorageKey {
    let mut text = String::with_capacity(prefix.len() + identifiers.len() + 44);
    text.push_str(prefix);
    text.push_str(identifiers);
    let group_len = text.len();
    push_limit_part(&mut text, limit);
    StorageKey { text, group_len }
}

/// Appends `/amount/multiples/unit`, and `/burst` for a limit with a burst of its own
/// (a GCRA state under another burst means something else).
fn push_limit_part(out: &mut String, limit: &RateLimit) {
    out.push('/');
    push_decimal(out, limit.amount());
    out.push('/');
    push_decimal(out, limit.multiples());
    out.push('/');
    out.push_str(limit.unit().name());
    if limit.has_own_burst() {
        out.push_str("/b");
        push_decimal(out, limit.burst());
    }
}

/// How many limits' limit parts a thread keeps formatted.
const LIMIT_PARTS: usize = 4;

/// What a thread keeps to build stored keys on the hit path without allocating: a
/// buffer for one key, a pool of keys for multi-limit hits, and the limit parts of the
/// last limits it formatted.
#[derive(Default)]
struct Scratch {
    text: String,
    pool: Vec<StorageKey>,
    limits: [Option<RateLimit>; LIMIT_PARTS],
    limit_parts: [String; LIMIT_PARTS],
    /// The slot of `limits` the next new limit takes.
    next: usize,
}

impl Scratch {
    /// `/amount/multiples/unit` for `limit`, formatted once while it stays cached.
    fn limit_part(&mut self, limit: &RateLimit) -> &str {
        let slot = match self.limits.iter().position(|l| *l == Some(*limit)) {
            Some(slot) => slot,
            None => {
                let slot = self.next % LIMIT_PARTS;
                self.next = slot + 1;
                self.limits[slot] = Some(*limit);
                self.limit_parts[slot].clear();
                push_limit_part(&mut self.limit_parts[slot], limit);
                slot
            }
        };
        &self.limit_parts[slot]
    }

    /// Builds `prefix + identifiers + limit part` into `text`.
    fn fill(&mut self, mut text: String, prefix: &str, key: &Key, limit: &RateLimit) -> StorageKey {
        text.clear();
        text.push_str(prefix);
        text.push_str(&key.escaped);
        let group_len = text.len();
        text.push_str(self.limit_part(limit));
        StorageKey { text, group_len }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            text: String::new(),
            pool: Vec::new(),
            limits: [None; LIMIT_PARTS],
            limit_parts: [const { String::new() }; LIMIT_PARTS],
            next: 0,
        })
    };
}

/// A stored key built in a buffer that its thread reuses: once a thread has built one,
/// building the next allocates nothing and formats no number while the limit stays
/// among the last few used. The buffer goes back to the thread that drops the key.
pub(crate) struct ReusedKey(StorageKey);

impl Deref for ReusedKey {
    type Target = StorageKey;

    fn deref(&self) -> &StorageKey {
        &self.0
    }
}

impl Drop for ReusedKey {
    fn drop(&mut self) {
        let text = std::mem::take(&mut self.0.text);
        let _ = SCRATCH.try_with(|cell| {
            if let Ok(mut scratch) = cell.try_borrow_mut() {
                if scratch.text.capacity() < text.capacity() {
                    scratch.text = text;
                }
            }
        });
    }
}

/// [`storage_key`], built in the thread's reused buffer.
pub(crate) fn reused_storage_key(prefix: &str, key: &Key, limit: &RateLimit) -> ReusedKey {
    let built = SCRATCH.try_with(|cell| {
        let mut scratch = cell.try_borrow_mut().ok()?;
        let text = std::mem::take(&mut scratch.text);
        Some(scratch.fill(text, prefix, key, limit))
    });
    ReusedKey(match built {
        Ok(Some(stored)) => stored,
        _ => storage_key(prefix, key, limit),
    })
}

/// The stored keys of one [`Key`] under several limits, built in buffers that the
/// thread reuses (see [`ReusedKey`]).
/// The keys are the first `.1` of the vector; the rest keep their buffers for later.
pub(crate) struct ReusedKeys(Vec<StorageKey>, usize);

impl Deref for ReusedKeys {
    type Target = [StorageKey];

    fn deref(&self) -> &[StorageKey] {
        self.0.get(..self.1).unwrap_or_default()
    }
}

impl Drop for ReusedKeys {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut self.0);
        let _ = SCRATCH.try_with(|cell| {
            if let Ok(mut scratch) = cell.try_borrow_mut() {
                if scratch.pool.capacity() < keys.capacity() {
                    scratch.pool = keys;
                }
            }
        });
    }
}

/// [`storage_key`] for each of `limits`, built in the thread's reused buffers.
pub(crate) fn reused_storage_keys(prefix: &str, key: &Key, limits: &[RateLimit]) -> ReusedKeys {
    let built = SCRATCH.try_with(|cell| {
        let mut scratch = cell.try_borrow_mut().ok()?;
        let mut keys = std::mem::take(&mut scratch.pool);
        // Reuse the buffers of the keys left in the pool.
        for (i, limit) in limits.iter().enumerate() {
            let text = match keys.get_mut(i) {
                Some(old) => std::mem::take(&mut old.text),
                None => String::new(),
            };
            let stored = scratch.fill(text, prefix, key, limit);
            match keys.get_mut(i) {
                Some(slot) => *slot = stored,
                None => keys.push(stored),
            }
        }
        Some(keys)
    });
    let keys = match built {
        Ok(Some(keys)) => keys,
        _ => limits.iter().map(|l| storage_key(prefix, key, l)).collect(),
    };
    ReusedKeys(keys, limits.len())
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits are always UTF-8; one `push_str` beats a `push` per digit.
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    fn limit() -> RateLimit {
        RateLimit::per_minute(NonZeroU64::MIN)
    }

    #[test]
    fn stored_key_layout() {
        let key = Key::new(["127.0.0.1", "root"]);
        let stored = storage_key("LIMITER/fixed-window", &key, &limit());
        assert_eq!(
            stored.as_str(),
            "LIMITER/fixed-window/127.0.0.1/root/1/1/minute"
        );
        assert_eq!(stored.group(), "LIMITER/fixed-window/127.0.0.1/root");
        assert_eq!(stored.limit_part(), "1/1/minute");
    }

    #[test]
    fn escaping_keeps_identifier_lists_apart() {
        let lists: [&[&str]; 6] = [
            &["a/b", "c"],
            &["a", "b/c"],
            &["a%2Fb", "c"],
            &["a", "b", "c"],
            &["a/b/c"],
            &["", "a/b/c"],
        ];
        let keys: Vec<StorageKey> = lists
            .iter()
            .map(|ids| storage_key("N", &Key::new(ids.iter()), &limit()))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(escape("50%/x"), "50%25%2Fx");
        assert_eq!(escape("{a}"), "%7Ba%7D");
    }

    #[test]
    fn reused_keys_match_built_keys() {
        let limits = [limit(), RateLimit::per_second(NonZeroU64::MAX), limit()];
        for (i, l) in limits.iter().enumerate() {
            let key = Key::new(["a".repeat(i * 40), "b/{c}".to_owned()]);
            let reused = reused_storage_key("N/s", &key, l);
            // Held while another is built: the second gets a buffer of its own.
            let other = reused_storage_key("N/s", &Key::global(), l);
            assert_eq!(*reused, storage_key("N/s", &key, l));
            assert_eq!(*other, storage_key("N/s", &Key::global(), l));
            assert_eq!(
                reused.limit_part(),
                storage_key("N/s", &key, l).limit_part()
            );
        }
    }

    #[test]
    fn reused_key_lists_match_built_keys() {
        let limits: Vec<RateLimit> = (1..=6)
            .map(|n| RateLimit::per_second(NonZeroU64::new(n).unwrap()))
            .collect();
        for n in [2, 6, 1, 3, 6] {
            let key = Key::new(["x".repeat(n * 7)]);
            let keys = reused_storage_keys("N/s", &key, &limits[..n]);
            assert_eq!(keys.len(), n);
            for (stored, l) in keys.iter().zip(&limits) {
                assert_eq!(*stored, storage_key("N/s", &key, l));
            }
        }
    }

    #[test]
    fn decimals_are_formatted_exactly() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn braces_never_reach_the_stored_key() {
        let key = Key::new(["{tag}", "}{"]);
        let stored = storage_key("N", &key, &limit());
        assert!(!stored.as_str().contains(['{', '}']), "{stored}");
        assert_ne!(
            storage_key("N", &Key::new(["{a}"]), &limit()),
            storage_key("N", &Key::new(["%7Ba%7D"]), &limit())
        );
    }

    #[test]
    fn empty_and_global_keys_differ() {
        assert_ne!(Key::global(), Key::new([""]));
        assert!(Key::global().is_empty());
    }
}
