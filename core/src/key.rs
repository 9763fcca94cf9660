//! Keys: who or what a limit applies to.
//!
//! A stored key is `namespace/strategy/identifier/…/amount/multiples/unit`. Every part
//! that comes from the user is escaped (`%` → `%25`, `/` → `%2F`), so two different
//! identifier lists can never produce the same key: `["a/b", "c"]` and `["a", "b/c"]`
//! stay apart.

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
///
/// On every hit's path, so it formats by hand: one allocation, no `fmt` machinery.
pub(crate) fn storage_key(prefix: &str, key: &Key, limit: &RateLimit) -> String {
    let unit = limit.unit().name();
    let mut out = String::with_capacity(prefix.len() + key.escaped.len() + unit.len() + 43);
    out.push_str(prefix);
    out.push_str(&key.escaped);
    out.push('/');
    push_decimal(&mut out, limit.amount());
    out.push('/');
    push_decimal(&mut out, limit.multiples());
    out.push('/');
    out.push_str(unit);
    out
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
    fn decimals_are_formatted_exactly() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn empty_and_global_keys_differ() {
        assert_ne!(Key::global(), Key::new([""]));
        assert!(Key::global().is_empty());
    }
}
