//! Keys: who or what a limit applies to.
//!
//! A stored key is `namespace/strategy/identifier/…/amount/multiples/unit`. Every part
//! that comes from the user is escaped (`%` → `%25`, `/` → `%2F`), so two different
//! identifier lists can never produce the same key: `["a/b", "c"]` and `["a", "b/c"]`
//! stay apart.

use std::fmt::Write as _;

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

/// Appends `part` to `out`, escaping `%` and `/`.
pub(crate) fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
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

/// The stored key for `key` under `limit`; `prefix` is the escaped
/// `namespace/strategy` part.
pub(crate) fn storage_key(prefix: &str, key: &Key, limit: &RateLimit) -> String {
    let mut out = String::with_capacity(prefix.len() + key.escaped.len() + 32);
    out.push_str(prefix);
    out.push_str(&key.escaped);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "/{}/{}/{}",
        limit.amount(),
        limit.multiples(),
        limit.unit()
    );
    out
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
        assert_eq!(
            storage_key("LIMITER/fixed-window", &key, &limit()),
            "LIMITER/fixed-window/127.0.0.1/root/1/1/minute"
        );
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
        let keys: Vec<String> = lists
            .iter()
            .map(|ids| storage_key("N", &Key::new(ids.iter()), &limit()))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(escape("50%/x"), "50%25%2Fx");
    }

    #[test]
    fn empty_and_global_keys_differ() {
        assert_ne!(Key::global(), Key::new([""]));
        assert!(Key::global().is_empty());
    }
}
