//! Keys: who or what a limit applies to.
//!
//! A stored key ([`StorageKey`]) is `namespace/strategy/identifier/…/amount/multiples/unit`.
//! Every part that comes from the user is escaped (`%` → `%25`, `/` → `%2F`, `{` → `%7B`,
//! `}` → `%7D`), so two different identifier lists can never produce the same key:
//! `["a/b", "c"]` and `["a", "b/c"]` stay apart.

use std::borrow::Cow;

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

    /// An empty key with room for `bytes` bytes of identifiers (each takes its
    /// length, one more for its separator, and two more per `%`, `/`, `{` or `}`
    /// in it) before it reallocates.
    pub fn with_capacity(bytes: usize) -> Key {
        Key {
            escaped: String::with_capacity(bytes),
            len: 0,
        }
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

    /// The escaped identifiers, each preceded by `/`.
    pub(crate) fn escaped(&self) -> &str {
        &self.escaped
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

/// Appends `part` to `out`, escaping `%`, `/`, `{` and `}`: the runs between them
/// are copied whole.
pub(crate) fn escape_into(out: &mut String, part: &str) {
    // Most parts (addresses, user ids, route patterns but for their `/`) have nothing
    // to escape: checked eight bytes at a time, then copied whole.
    if !needs_escape(part.as_bytes()) {
        out.push_str(part);
        return;
    }
    let mut start = 0;
    for (at, byte) in part.bytes().enumerate() {
        let escaped = match byte {
            b'%' => "%25",
            b'/' => "%2F",
            b'{' => "%7B",
            b'}' => "%7D",
            _ => continue,
        };
        // ASCII bytes: `at` and `at + 1` are character boundaries.
        out.push_str(part.get(start..at).unwrap_or_default());
        out.push_str(escaped);
        start = at + 1;
    }
    out.push_str(part.get(start..).unwrap_or_default());
}

/// Whether `bytes` holds a `%`, `/`, `{` or `}`: eight bytes at a time, each word
/// compared with the four bytes at once (a byte of `word ^ splat(b)` is zero where
/// `word` holds `b`; the classic test finds whether any byte is zero).
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let has = |w: u64| {
        has_zero(w ^ (ONES * u64::from(b'%')))
            || has_zero(w ^ (ONES * u64::from(b'/')))
            || has_zero(w ^ (ONES * u64::from(b'{')))
            || has_zero(w ^ (ONES * u64::from(b'}')))
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        if has(u64::from_ne_bytes(word)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|b| matches!(b, b'%' | b'/' | b'{' | b'}'))
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
    let mut digits = itoa::Buffer::new();
    out.push('/');
    out.push_str(digits.format(limit.amount()));
    out.push('/');
    out.push_str(digits.format(limit.multiples()));
    out.push('/');
    out.push_str(limit.unit().name());
    if limit.has_own_burst() {
        out.push_str("/b");
        out.push_str(digits.format(limit.burst()));
    }
}

impl StorageKey {
    /// The limit this key counts against, when it is in the limiter's layout: its
    /// [limit part](Self::limit_part) exactly as the limiter writes it for that limit
    /// (`None` for a key from [`StorageKey::new`] or with any other limit part).
    ///
    /// ```
    /// use limiter_core::storage::StorageKey;
    /// use limiter_core::{Key, RateLimit, RateLimiter};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::sync::Arc;
    ///
    /// let limiter = RateLimiter::new(Arc::new(TinyStorage::default()));
    /// let limit: RateLimit = "10 per second burst 50".parse()?;
    /// let key = limiter.storage_key(&limit, &Key::from("10.0.0.1"));
    /// assert_eq!(key.limit(), Some(limit));
    /// assert_eq!(StorageKey::new("tests", "10/1/second").limit(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(&self) -> Option<RateLimit> {
        parse_limit_part(self.limit_part())
    }

    /// Where the group's first two parts (`namespace/strategy` in the limiter's
    /// layout) end: at its second `/`, or at its end when it has fewer.
    fn prefix_len(&self) -> usize {
        let group = self.group().as_bytes();
        let mut slashes = group.iter().enumerate().filter(|(_, b)| **b == b'/');
        match slashes.nth(1) {
            Some((at, _)) => at,
            None => group.len(),
        }
    }
}

/// The limit whose limit part is `text`, exactly as [`push_limit_part`] writes it.
fn parse_limit_part(text: &str) -> Option<RateLimit> {
    let mut parts = text.split('/');
    let amount = parts.next()?.parse().ok()?;
    let multiples = parts.next()?.parse().ok()?;
    let unit_name = parts.next()?;
    let unit = crate::limit::Unit::ALL
        .into_iter()
        .find(|unit| unit.name() == unit_name)?;
    let mut limit = RateLimit::new(amount, multiples, unit).ok()?;
    if let Some(burst) = parts.next() {
        let burst = burst.strip_prefix('b')?.parse().ok()?;
        limit = limit.with_burst(std::num::NonZeroU64::new(burst)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    // Only the limiter's own spelling: no leading zeros or signs, no burst equal to
    // the amount.
    let mut canonical = String::with_capacity(text.len() + 1);
    push_limit_part(&mut canonical, &limit);
    (canonical.get(1..) == Some(text)).then_some(limit)
}

/// A stored key as an operation names it: built ([`StorageKey`]), or still in its
/// parts (the limiter's `namespace/strategy` prefix, the escaped identifiers of a
/// [`Key`] and the limit), so that a storage that never needs the key's text (an
/// in-process one) never has it built.
///
/// Whichever form, it names the same stored key:
/// [`to_storage_key`](Self::to_storage_key) builds it,
/// [`group_parts`](Self::group_parts) and [`limit`](Self::limit) give its pieces
/// without building anything for a key in parts.
///
/// ```
/// use limiter_core::storage::{KeyRef, StorageKey};
///
/// let built = StorageKey::new("tests/a", "b");
/// let key = KeyRef::from(&built);
/// assert_eq!(key.to_storage_key().as_str(), "tests%2Fa/b");
/// assert_eq!(key.to_string(), "tests%2Fa/b");
/// assert_eq!(key.group_parts(), ("tests%2Fa", ""));
/// assert_eq!(key.limit(), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Built(&'a StorageKey),
    Parts {
        /// `namespace/strategy`, escaped.
        prefix: &'a str,
        /// Escaped identifiers, each preceded by `/`.
        identifiers: &'a str,
        limit: &'a RateLimit,
    },
}

impl<'a> KeyRef<'a> {
    /// The key of escaped `identifiers` (each preceded by `/`) under `limit`, for a
    /// limiter whose escaped `namespace/strategy` is `prefix`.
    pub(crate) fn parts(prefix: &'a str, identifiers: &'a str, limit: &'a RateLimit) -> Self {
        KeyRef(Repr::Parts {
            prefix,
            identifiers,
            limit,
        })
    }

    /// The stored key: borrowed when built already, else built now (one allocation).
    pub fn to_storage_key(self) -> Cow<'a, StorageKey> {
        match self.0 {
            Repr::Built(key) => Cow::Borrowed(key),
            Repr::Parts {
                prefix,
                identifiers,
                limit,
            } => Cow::Owned(with_prefix(prefix, identifiers, limit)),
        }
    }

    /// The key's [group](StorageKey::group) in two pieces that concatenate to it: up
    /// to its second `/` (in the limiter's layout, `namespace/strategy`), and the rest
    /// (the identifiers, each preceded by `/`). The split depends only on the group's
    /// text, so both forms of one key split alike: a storage may hash the pieces in
    /// turn instead of the group.
    pub fn group_parts(self) -> (&'a str, &'a str) {
        match self.0 {
            Repr::Built(key) => {
                let group = key.group();
                group.split_at(key.prefix_len())
            }
            Repr::Parts {
                prefix,
                identifiers,
                ..
            } => (prefix, identifiers),
        }
    }

    /// The limit the key counts against when it is in the limiter's layout (as
    /// [`StorageKey::limit`]); `None` for other keys, whose limit part is text only.
    pub fn limit(self) -> Option<RateLimit> {
        match self.0 {
            Repr::Built(key) => key.limit(),
            Repr::Parts { limit, .. } => Some(*limit),
        }
    }

    /// The key built, if it is; `None` for a key in parts.
    pub fn as_built(self) -> Option<&'a StorageKey> {
        match self.0 {
            Repr::Built(key) => Some(key),
            Repr::Parts { .. } => None,
        }
    }
}

impl<'a> From<&'a StorageKey> for KeyRef<'a> {
    fn from(key: &'a StorageKey) -> Self {
        KeyRef(Repr::Built(key))
    }
}

impl PartialEq for KeyRef<'_> {
    /// The same stored key.
    fn eq(&self, other: &Self) -> bool {
        match (self.0, other.0) {
            (Repr::Built(a), Repr::Built(b)) => a == b,
            (
                Repr::Parts {
                    prefix: p1,
                    identifiers: i1,
                    limit: l1,
                },
                Repr::Parts {
                    prefix: p2,
                    identifiers: i2,
                    limit: l2,
                },
            ) => p1 == p2 && i1 == i2 && l1 == l2,
            _ => self.to_storage_key() == other.to_storage_key(),
        }
    }
}

impl Eq for KeyRef<'_> {}

impl std::fmt::Display for KeyRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Repr::Built(key) => f.write_str(key.as_str()),
            Repr::Parts { .. } => f.write_str(self.to_storage_key().as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Unit;
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
    fn the_word_at_a_time_scan_finds_every_byte_to_escape() {
        // Every byte value at every position of parts up to 24 bytes long, among
        // neighbours one above and one below each special byte (the near misses of
        // the word test).
        let filler = [b'a', b'$', b'&', b'.', b'0', b'z', b'|', b'~', 0x80, 0xFE];
        for len in 1..=24 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut part: Vec<u8> = (0..len).map(|i| filler[i % filler.len()]).collect();
                    part[at] = byte;
                    let expected = part.iter().any(|b| matches!(b, b'%' | b'/' | b'{' | b'}'));
                    assert_eq!(needs_escape(&part), expected, "{part:?}");
                }
            }
        }
        assert!(!needs_escape(b""));
        let mut out = String::new();
        escape_into(&mut out, "10.0.0.1");
        escape_into(&mut out, "a/b%c{d}e-and-more-than-eight");
        assert_eq!(out, "10.0.0.1a%2Fb%25c%7Bd%7De-and-more-than-eight");
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
    fn key_refs_in_parts_name_the_built_key() {
        let limits = [
            limit(),
            RateLimit::per_second(NonZeroU64::MAX),
            RateLimit::per_second(NonZeroU64::new(10).unwrap())
                .with_burst(NonZeroU64::new(50).unwrap())
                .unwrap(),
        ];
        let keys = [
            Key::global(),
            Key::new(["a/b", "{c}"]),
            Key::new(["x".repeat(300)]),
        ];
        for l in &limits {
            for key in &keys {
                let built = storage_key("N/s", key, l);
                let parts = KeyRef::parts("N/s", &key.escaped, l);
                assert_eq!(*parts.to_storage_key(), built);
                assert_eq!(parts.to_string(), built.as_str());
                assert_eq!(parts, KeyRef::from(&built));
                assert_eq!(parts.limit(), Some(*l));
                assert_eq!(built.limit(), Some(*l));
                assert_eq!(parts.group_parts(), KeyRef::from(&built).group_parts());
                let (prefix, rest) = parts.group_parts();
                assert_eq!(format!("{prefix}{rest}"), built.group());
            }
        }
        assert_ne!(
            KeyRef::parts("N/s", "/a", &limits[0]),
            KeyRef::parts("N/s", "/a", &limits[1])
        );
    }

    #[test]
    fn only_the_limiters_spelling_names_a_limit() {
        let named = |text: &str| StorageKey::new("g", "x").limit().or(parse_limit_part(text));
        assert_eq!(
            named("10/2/minute"),
            Some(RateLimit::new(10, 2, Unit::Minute).unwrap())
        );
        assert!(named("10/1/second/b50").is_some());
        for text in [
            "010/1/minute",
            "+10/1/minute",
            "10/1/minutes",
            "10/1/Minute",
            "0/1/minute",
            "10/1/second/b10",
            "10/1/second/b",
            "10/1/second/b50/x",
            "10/1",
            "",
            "18446744073709551616/1/second",
        ] {
            assert_eq!(named(text), None, "{text}");
        }
    }

    #[test]
    fn escaping_copies_runs_and_replaces_each_special_byte() {
        let by_char = |part: &str| -> String {
            part.chars()
                .map(|c| match c {
                    '%' => "%25".to_owned(),
                    '/' => "%2F".to_owned(),
                    '{' => "%7B".to_owned(),
                    '}' => "%7D".to_owned(),
                    c => c.to_string(),
                })
                .collect()
        };
        for part in [
            "",
            "/",
            "%%",
            "é/ü{ß}",
            "a/b/c",
            "{}",
            "plain",
            "/x%",
            "日本/語",
        ] {
            assert_eq!(escape(part), by_char(part), "{part}");
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
