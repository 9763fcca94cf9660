//! [`MemoryOptions`]: the bound and the shard count of a [`MemoryStorage`]; built
//! with setters, parsed from a `memory://` URI ([`FromStr`]) or deserialized.

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::{MemoryStorage, DEFAULT_MAX_BYTES, MAX_SHARDS, MIN_MAX_BYTES};

/// The URI schemes of the in-memory storage.
pub const SCHEMES: &[&str] = &["memory"];

/// The options a `memory://` URI takes.
const KNOWN: &str = "max_bytes, max_keys, shards";

/// A `memory://` URI that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryOptionsError {
    /// The URI is not `memory://`, or has a host or path.
    #[error("malformed memory uri {uri:?}: {reason}")]
    MalformedUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query option is unknown, given more than once, or has an invalid value.
    #[error("invalid option {name:?} in memory uri {uri:?}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: String,
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How a [`MemoryStorage`] is bounded and sharded.
///
/// Make it with [`new`](Self::new) and the setters, parse it from a `memory://` URI
/// ([`str::parse`]), or deserialize it; then [`MemoryStorage::with_options`]. Each
/// setter has the option's name and takes `self`; each getter is `get_` and the same
/// name.
///
/// # URI
///
/// `memory://` takes no host or path, and these query options:
///
/// | option | meaning | allowed values | default |
/// |---|---|---|---|
/// | `max_bytes` | [`max_bytes`](Self::max_bytes): the most bytes of keys and states held | 4096 or more; 18446744073709551615 (`usize::MAX` on 64-bit targets) lifts the bound | 67108864 (64 MiB) |
/// | `max_keys` | [`max_keys`](Self::max_keys): the most keys kept | 1 or more | unbounded |
/// | `shards` | [`shards`](Self::shards): the number of shards | 1 to 65,536 | from the core count |
///
/// Values are plain decimal digits (after percent-decoding): `+5`, `-5`, ` 5`, `5.0`
/// and an empty value are errors, and so is a value out of range (it is not clamped).
/// An option given twice and any other option are errors. The storage has no pool,
/// timeouts or key prefix: nothing leaves the process.
///
/// Deserialized with the same names and ranges; an unknown field is an error.
///
/// # Examples
///
/// ```
/// use limiter_memory::{MemoryOptions, MemoryStorage};
///
/// let options: MemoryOptions = "memory://?max_keys=100000&shards=64".parse()?;
/// assert_eq!(options, MemoryOptions::new().max_keys(100_000).shards(64));
/// assert_eq!(options.get_max_keys(), Some(100_000));
/// assert_eq!(options.get_max_bytes(), Some(64 << 20));
///
/// let from_file: MemoryOptions = serde_json::from_str(r#"{"max_keys": 100000, "shards": 64}"#)?;
/// assert_eq!(from_file, options);
///
/// let storage = MemoryStorage::with_options(options);
/// assert_eq!(storage.max_keys(), Some(100_000));
/// assert_eq!(storage.shard_count(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct MemoryOptions {
    #[serde(default = "default_max_bytes", deserialize_with = "max_bytes")]
    max_bytes: Option<usize>,
    #[serde(default, deserialize_with = "max_keys")]
    max_keys: Option<usize>,
    #[serde(default, deserialize_with = "shards")]
    shards: Option<usize>,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            max_bytes: default_max_bytes(),
            max_keys: None,
            shards: None,
        }
    }
}

fn default_max_bytes() -> Option<usize> {
    Some(DEFAULT_MAX_BYTES)
}

fn max_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = usize::deserialize(d)?;
    if n < MIN_MAX_BYTES {
        return Err(serde::de::Error::custom(format!(
            "{n} is out of range; expected {MIN_MAX_BYTES} or more"
        )));
    }
    Ok(MemoryOptions::new().max_bytes(n).max_bytes)
}

fn in_range<'de, D: Deserializer<'de>>(
    d: D,
    max: usize,
    range: &str,
) -> Result<Option<usize>, D::Error> {
    let n = usize::deserialize(d)?;
    if (1..=max).contains(&n) {
        Ok(Some(n))
    } else {
        Err(serde::de::Error::custom(format!(
            "{n} is out of range; expected {range}"
        )))
    }
}

fn max_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    in_range(d, usize::MAX, "a whole number of at least 1")
}

fn shards<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    in_range(d, MAX_SHARDS, "a whole number from 1 to 65536")
}

impl MemoryOptions {
    /// The defaults: at most [`DEFAULT_MAX_BYTES`] (64 MiB), any number of keys within
    /// that, the default number of shards.
    pub fn new() -> MemoryOptions {
        MemoryOptions::default()
    }

    /// Keeps at most `max_keys` keys (at least 1), evicting approximately the least
    /// recently used. Default: unbounded (expired keys are still reclaimed).
    ///
    /// [`len`](MemoryStorage::len) never exceeds `max_keys`, and no key is evicted
    /// while fewer than `max_keys` are stored, whatever the number of shards: eviction
    /// only starts at the bound, one key out for each new key in (see the crate docs,
    /// **Bound**).
    ///
    /// This bounds keys, not bytes. A fixed-window, sliding-window or GCRA key costs
    /// about 120 to 145 bytes (see the crate docs, **Memory**), but a moving-window key
    /// keeps a 16-byte record per millisecond with admitted hits in its window: up to
    /// `amount × 16` bytes of live records (16 MB for `1000000 per hour`), and up to
    /// twice that before expired records are dropped. With moving windows the memory
    /// bound is therefore about `max_keys × (190 + 32 × amount)` bytes for the largest
    /// amount in use.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys.max(1));
        self
    }

    /// Holds at most `max_bytes` bytes of keys and states (at least [`MIN_MAX_BYTES`],
    /// 4 KiB), evicting approximately the least recently used keys to make room.
    /// Default: [`DEFAULT_MAX_BYTES`], 64 MiB. `usize::MAX` lifts the byte bound.
    ///
    /// The bytes counted ([`MemoryStorage::bytes`]) are, for each key, its entry and
    /// index slot (80 bytes), its stored key's bytes (at most 513: longer keys are
    /// digested, see the crate docs, **Memory**) and the capacity of its heap state
    /// (moving-window logs; other states are inside the entry); plus the bytes of
    /// removed keys until their shard's key buffer is compacted. The guarantees are
    /// those of [`max_keys`](Self::max_keys): the count never exceeds `max_bytes`, under
    /// any concurrency (bytes are reserved before a key is inserted or a state grows),
    /// and nothing is evicted below it (see the crate docs, **Bound**). The process's
    /// memory is larger than the count by the slack of the vectors and the index
    /// (about a third more in the measurements of the crate docs, **Memory**).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = (max_bytes != usize::MAX).then(|| max_bytes.max(MIN_MAX_BYTES));
        self
    }

    /// Lifts both bounds: no [`max_keys`](Self::max_keys), no
    /// [`max_bytes`](Self::max_bytes). Expired keys are still reclaimed, but live keys
    /// are never evicted, so memory grows with the number of distinct keys clients
    /// send: only for keys that clients cannot choose freely.
    pub fn unbounded(mut self) -> Self {
        self.max_keys = None;
        self.max_bytes = None;
        self
    }

    /// The byte bound, if any.
    pub fn get_max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// The number of shards, from 1 to 65,536 (any value, not only powers of two;
    /// others are clamped into that range). Default: the next power of two at or above
    /// 4 × the available parallelism, and at least 64. With
    /// [`max_keys`](Self::max_keys), never more shards than keys.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards.clamp(1, MAX_SHARDS));
        self
    }

    /// The bound on the number of keys, if any.
    pub fn get_max_keys(&self) -> Option<usize> {
        self.max_keys
    }

    /// The number of shards asked for, if any (else the default).
    pub fn get_shards(&self) -> Option<usize> {
        self.shards
    }
}

impl FromStr for MemoryOptions {
    type Err = MemoryOptionsError;

    /// Reads a `memory://` URI. See the [type docs](Self#uri) for its options.
    ///
    /// # Errors
    ///
    /// A [`MemoryOptionsError`] naming what is wrong.
    fn from_str(uri: &str) -> Result<MemoryOptions, MemoryOptionsError> {
        let malformed = |reason: &str| MemoryOptionsError::MalformedUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(uri).map_err(|e| malformed(&e.to_string()))?;
        if !SCHEMES.contains(&url.scheme()) {
            return Err(malformed("expected memory://"));
        }
        if url.has_host() && url.host_str() != Some("") || !matches!(url.path(), "" | "/") {
            return Err(malformed("memory:// takes no host or path"));
        }
        if url.fragment().is_some() {
            return Err(malformed("a fragment (#…) is not allowed"));
        }
        let pairs = limiter_options::query(url.query().unwrap_or("")).map_err(|e| {
            MemoryOptionsError::InvalidOption {
                name: e.name,
                uri: uri.to_owned(),
                reason: e.reason,
            }
        })?;
        let mut options = MemoryOptions::new();
        for (name, value) in pairs {
            let invalid = |reason: String| MemoryOptionsError::InvalidOption {
                name: name.clone(),
                uri: uri.to_owned(),
                reason,
            };
            type Set = fn(MemoryOptions, usize) -> MemoryOptions;
            let (min, max, set): (usize, usize, Set) = match name.as_str() {
                "max_bytes" => (MIN_MAX_BYTES, usize::MAX, MemoryOptions::max_bytes),
                "max_keys" => (1, usize::MAX, MemoryOptions::max_keys),
                "shards" => (1, MAX_SHARDS, MemoryOptions::shards),
                _ => return Err(invalid(format!("unknown option (known: {KNOWN})"))),
            };
            let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let n = limiter_options::whole_number(&value, wide(min), wide(max)).map_err(invalid)?;
            // At most `max`, a `usize`.
            options = set(options, usize::try_from(n).unwrap_or(max));
        }
        Ok(options)
    }
}

impl MemoryStorage {
    /// A storage with `options`.
    ///
    /// ```
    /// use limiter_memory::{MemoryOptions, MemoryStorage};
    ///
    /// let storage = MemoryStorage::with_options(MemoryOptions::new().max_keys(3));
    /// assert_eq!(storage.max_keys(), Some(3));
    /// assert_eq!(storage.shard_count(), 3);
    /// ```
    pub fn with_options(options: MemoryOptions) -> MemoryStorage {
        crate::build(&options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiter_core::Storage;

    fn ok(uri: &str) -> MemoryOptions {
        uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn err(uri: &str) -> MemoryOptionsError {
        uri.parse::<MemoryOptions>().expect_err(uri)
    }

    #[test]
    fn options_parse_and_defaults() {
        assert_eq!(ok("memory://"), MemoryOptions::new());
        assert_eq!(ok("memory://").get_max_keys(), None);
        assert_eq!(ok("memory://").get_shards(), None);
        assert_eq!(
            ok("MEMORY://?max_keys=5&shards=2"),
            MemoryOptions::new().max_keys(5).shards(2)
        );
    }

    #[test]
    fn the_byte_bound_is_on_by_default_and_set_or_lifted_by_uri_and_serde() {
        assert_eq!(
            ok("memory://").get_max_bytes(),
            Some(crate::DEFAULT_MAX_BYTES)
        );
        assert_eq!(ok("memory://?max_bytes=4096").get_max_bytes(), Some(4096));
        let lifted = format!("memory://?max_bytes={}", usize::MAX);
        assert_eq!(ok(&lifted).get_max_bytes(), None);
        let too_small = err("memory://?max_bytes=4095").to_string();
        assert!(too_small.contains("max_bytes"), "{too_small}");
        let from_json: MemoryOptions = serde_json::from_str(r#"{"max_bytes": 8192}"#).unwrap();
        assert_eq!(from_json.get_max_bytes(), Some(8192));
        let default: MemoryOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(default, MemoryOptions::new());
        assert!(serde_json::from_str::<MemoryOptions>(r#"{"max_bytes": 10}"#).is_err());
        let storage = MemoryStorage::with_options(ok("memory://?max_bytes=65536&shards=2"));
        assert_eq!(storage.max_bytes(), Some(65_536));
        assert_eq!(
            MemoryStorage::new().max_bytes(),
            Some(crate::DEFAULT_MAX_BYTES)
        );
        let unbounded = MemoryStorage::with_options(MemoryOptions::new().unbounded());
        assert_eq!((unbounded.max_bytes(), unbounded.max_keys()), (None, None));
    }

    #[test]
    fn malformed_uris_say_what_is_wrong() {
        for (uri, part) in [
            ("memory", "relative URL"),
            ("memory://host", "takes no host or path"),
            ("memory:///path", "takes no host or path"),
            ("memory://?max_keys=1#x", "fragment"),
            ("memcached://h", "expected memory://"),
        ] {
            match err(uri) {
                MemoryOptionsError::MalformedUri { reason, .. } => {
                    assert!(reason.contains(part), "{uri}: {reason}")
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn deserializes_with_ranges_and_rejects_unknown_fields() {
        let o: MemoryOptions = serde_json::from_str(r#"{"shards": 65536}"#).expect("options");
        assert_eq!(o, MemoryOptions::new().shards(65536));
        assert_eq!(
            serde_json::from_str::<MemoryOptions>("{}").ok(),
            Some(MemoryOptions::new())
        );
        for (bad, part) in [
            (r#"{"max_keys": 0}"#, "out of range"),
            (r#"{"shards": 65537}"#, "out of range"),
            (r#"{"max_keys": -5}"#, "invalid value"),
            (r#"{"max_keys": "5"}"#, "invalid type"),
            (r#"{"max_key": 5}"#, "max_key"),
        ] {
            let e = serde_json::from_str::<MemoryOptions>(bad)
                .expect_err(bad)
                .to_string();
            assert!(e.contains(part), "{bad}: {e}");
        }
    }

    #[test]
    fn memory_uri_bounds_the_key_count() {
        let storage = MemoryStorage::with_options(ok("memory://?max_keys=2&shards=1"));
        let keys = ["a", "b", "c", "d"].map(|name| limiter_core::StorageKey::new("t", name));
        let now = limiter_core::Timestamp::from_millis(0);
        futures::executor::block_on(async {
            for key in &keys {
                let ttl = std::time::Duration::from_secs(60);
                assert!(storage
                    .compare_and_set(key, None, b"x", ttl, now)
                    .await
                    .unwrap());
            }
            let mut present = 0;
            for key in &keys {
                present += usize::from(storage.get(key, now).await.unwrap().is_some());
            }
            assert_eq!(present, 2);
        });
    }

    #[test]
    fn memory_uris_with_valid_parameters_are_accepted() {
        let largest = format!("memory://?max_keys={}", usize::MAX);
        for good in [
            "memory://",
            "memory:///",
            "memory://?",
            "MEMORY://?max_keys=5&shards=2",
            "memory://?shards=2&max_keys=5",
            "memory://?max_keys=1",
            "memory://?shards=1",
            "memory://?shards=65536",
            "memory://?max_keys=007",
            "memory://?&max_keys=5&&shards=3&",
            &largest,
        ] {
            let _options = ok(good);
        }
    }

    #[test]
    fn memory_uris_with_bad_parameters_are_errors_naming_the_parameter() {
        let not_digits = |value: &str, range: &str| {
            format!(
                "{value:?} is not a plain decimal number; expected a whole number {range}, \
                 written with the digits 0-9 only (no sign or spaces)"
            )
        };
        let keys = "of at least 1";
        let shards = "from 1 to 65536";
        let too_large = format!("{}0", usize::MAX);
        let cases: Vec<(String, &str, String)> = vec![
            // Numbers are plain ASCII decimal digits.
            ("memory://?max_keys=+5".into(), "max_keys", not_digits("+5", keys)),
            ("memory://?max_keys=-5".into(), "max_keys", not_digits("-5", keys)),
            ("memory://?shards=+2".into(), "shards", not_digits("+2", shards)),
            ("memory://?max_keys= 5".into(), "max_keys", not_digits(" 5", keys)),
            ("memory://?max_keys=5%20".into(), "max_keys", not_digits("5 ", keys)),
            ("memory://?shards=-5".into(), "shards", not_digits("-5", shards)),
            ("memory://?shards=%2B5".into(), "shards", not_digits("+5", shards)),
            ("memory://?max_keys=x".into(), "max_keys", not_digits("x", keys)),
            ("memory://?shards=1.5".into(), "shards", not_digits("1.5", shards)),
            ("memory://?shards=\u{663}".into(), "shards", not_digits("\u{663}", shards)),
            (
                "memory://?max_keys=".into(),
                "max_keys",
                "no value given; expected a whole number of at least 1".into(),
            ),
            (
                "memory://?shards".into(),
                "shards",
                "no value given; expected a whole number from 1 to 65536".into(),
            ),
            // Out of range is an error, not clamped.
            (
                "memory://?max_keys=0".into(),
                "max_keys",
                "0 is out of range; expected a whole number of at least 1".into(),
            ),
            (
                "memory://?shards=0".into(),
                "shards",
                "0 is out of range; expected a whole number from 1 to 65536".into(),
            ),
            (
                "memory://?shards=65537".into(),
                "shards",
                "65537 is out of range; expected a whole number from 1 to 65536".into(),
            ),
            (
                "memory://?shards=99999999999999999999999".into(),
                "shards",
                "99999999999999999999999 is out of range; expected a whole number from 1 to 65536"
                    .into(),
            ),
            (
                format!("memory://?max_keys={too_large}"),
                "max_keys",
                format!(
                    "{too_large} is out of range; expected a whole number of at least 1, at most {}",
                    usize::MAX
                ),
            ),
            // Each parameter at most once, even with the same value.
            (
                "memory://?max_keys=5&max_keys=6".into(),
                "max_keys",
                r#"given more than once ("5", then "6"); give each parameter at most once"#
                    .into(),
            ),
            (
                "memory://?shards=2&max_keys=5&shards=2".into(),
                "shards",
                r#"given more than once ("2", then "2"); give each parameter at most once"#
                    .into(),
            ),
            (
                "memory://?max_keys=5&max_keys=x".into(),
                "max_keys",
                r#"given more than once ("5", then "x"); give each parameter at most once"#
                    .into(),
            ),
            // Only known parameters, and no host or path.
            (
                "memory://?colour=red".into(),
                "colour",
                "unknown option (known: max_bytes, max_keys, shards)".into(),
            ),
            (
                "memory://?max_keys=5&Shards=2".into(),
                "Shards",
                "unknown option (known: max_bytes, max_keys, shards)".into(),
            ),
            (
                "memory://?=5".into(),
                "",
                "unknown option (known: max_bytes, max_keys, shards)".into(),
            ),
        ];
        for (uri, name, reason) in cases {
            assert_eq!(
                err(&uri),
                MemoryOptionsError::InvalidOption {
                    name: name.to_owned(),
                    uri: uri.clone(),
                    reason,
                },
                "{uri}"
            );
        }
    }

    #[test]
    fn memory_parameter_errors_read_well() {
        assert_eq!(
            err("memory://?max_keys=+5").to_string(),
            r#"invalid option "max_keys" in memory uri "memory://?max_keys=+5": "+5" is not a plain decimal number; expected a whole number of at least 1, written with the digits 0-9 only (no sign or spaces)"#
        );
        assert_eq!(
            err("memory://?shards=65537").to_string(),
            r#"invalid option "shards" in memory uri "memory://?shards=65537": 65537 is out of range; expected a whole number from 1 to 65536"#
        );
    }
}
