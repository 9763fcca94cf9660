//! Choosing a storage by URI: [`storage_from_uri`].

use std::sync::Arc;

#[cfg(feature = "memory")]
use limiter_core::options;
use limiter_core::Storage;

/// A storage URI that could not be turned into a storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The text is not `scheme://…`.
    #[error("malformed storage uri {uri:?}: expected scheme://…, for example memory://")]
    Malformed {
        /// The URI as given.
        uri: String,
    },
    /// No storage has this scheme.
    #[error("unknown storage scheme {scheme:?} in {uri:?} (known: {known})")]
    UnknownScheme {
        /// The scheme found.
        scheme: String,
        /// The URI as given.
        uri: String,
        /// The schemes this build knows, comma-separated.
        known: String,
    },
    /// The scheme belongs to a storage whose cargo feature is off.
    #[error("storage scheme {scheme:?} needs the limiter crate's {feature:?} feature")]
    FeatureDisabled {
        /// The scheme found.
        scheme: String,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// A `memcached://` URI that the Memcached storage cannot use: its servers or
    /// options are malformed. The inner error names the part that is wrong.
    #[cfg(feature = "memcached")]
    #[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
    #[error(transparent)]
    Memcached(#[from] limiter_memcached::MemcachedOptionsError),
    /// A Redis URI that the Redis storage rejected, or a Redis server it could not
    /// connect to.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[error(transparent)]
    Redis(#[from] limiter_redis::RedisError),
    /// A query parameter is unknown, given more than once, or has an invalid value;
    /// or the URI has a host or path that its storage does not take.
    #[error("invalid parameter {name:?} in storage uri {uri:?}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: String,
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Every scheme limiter recognizes, and the cargo feature of the limiter crate that
/// compiles its storage in.
const SCHEMES: &[(&str, &str)] = &[
    ("memory", "memory"),
    ("redis", "redis"),
    ("rediss", "redis"),
    ("redis+unix", "redis"),
    ("redis+cluster", "redis"),
    ("redis+sentinel", "redis"),
    ("memcached", "memcached"),
];

/// A ready storage for `uri`, such as `memory://`.
///
/// The function is `async` because storages behind a network connect before they are
/// returned.
///
/// | URI | storage | cargo feature |
/// |---|---|---|
/// | `memory://` | [`MemoryStorage`](crate::MemoryStorage) | `memory` (default) |
/// | `memory://?max_keys=100000&shards=64` | the same, bounded to 100,000 keys, 64 shards | `memory` |
/// | `memcached://10.0.0.1:11211,10.0.0.2:11211?key_prefix=app:` | `MemcachedStorage` on two servers | `memcached` |
/// | `memcached:///run/memcached.sock` | the same, on a Unix socket | `memcached` |
/// | `redis://[user:password@]host[:port][/db]` | `RedisStorage`, one server | `redis` |
/// | `rediss://…` | the same over TLS | `redis-tls` |
/// | `redis+unix:///path/to/redis.sock` | one server on a Unix socket | `redis` |
/// | `redis+cluster://host1:7000,host2:7001` | a Redis Cluster | `redis` |
/// | `redis+sentinel://host1:26379,host2:26379/service-name[/db]` | a primary found through Sentinel | `redis` |
///
/// The scheme is case-insensitive. `memory://` takes no host or path, and two
/// optional query parameters:
///
/// | parameter | meaning | allowed values |
/// |---|---|---|
/// | `max_keys` | [`MemoryStorageBuilder::max_keys`](crate::MemoryStorageBuilder::max_keys) | 1 or more |
/// | `shards` | [`MemoryStorageBuilder::shards`](crate::MemoryStorageBuilder::shards) | 1 to 65,536 |
///
/// Values are plain decimal digits: `+5`, ` 5`, `5.0` and an empty value are errors,
/// and so is a value out of range (it is not clamped). A parameter given twice and
/// any other parameter are errors.
///
/// `memcached://` takes one or more servers and the options listed on
/// `MemcachedOptions` (`key_prefix`, `pool_size`, `connect_timeout`, `command_timeout`,
/// `flush_on_clear`); a URI it cannot use is a `UriError::Memcached` naming the part
/// that is wrong. Its connections open on first use, so a server that is down shows in
/// [`Storage::check`] and in decisions, not here.
///
/// The Redis URIs take the query options `key_prefix`, `pool_size`,
/// `connect_timeout`, `command_timeout` (`500ms`, `2s`) and `tls_ca_file`; the Redis
/// storage's crate docs (`limiter_redis`) describe them. A Redis URI connects before
/// it returns; a malformed one, an unknown option, or a server that cannot be reached is
/// a `UriError::Redis` (with the `redis` feature). `rediss://` without the `redis-tls`
/// feature is an error too, never a plain-text connection.
///
/// A scheme whose cargo feature is off (`memory://` without `memory`, the Redis schemes
/// without `redis`, `memcached://` without `memcached`) is a
/// [`UriError::FeatureDisabled`] that names the feature to enable.
///
/// # Errors
///
/// [`UriError`] for a malformed URI, an unknown scheme, a scheme whose feature is off
/// or whose backend this build does not include, or a bad parameter.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let storage = limiter::storage_from_uri("memory://?max_keys=10000").await?;
/// storage.check().await?;
///
/// let err = limiter::storage_from_uri("postgres://localhost").await.unwrap_err();
/// assert!(err.to_string().contains("unknown storage scheme"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn storage_from_uri(uri: &str) -> Result<Arc<dyn Storage>, UriError> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(UriError::Malformed {
            uri: uri.to_owned(),
        });
    };
    let scheme_lower = scheme.to_ascii_lowercase();
    let valid_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(UriError::Malformed {
            uri: uri.to_owned(),
        });
    }
    #[cfg(not(feature = "memory"))]
    let _ = rest;
    match scheme_lower.as_str() {
        #[cfg(feature = "memory")]
        "memory" => memory(uri, rest),
        #[cfg(feature = "memcached")]
        "memcached" => Ok(Arc::new(
            limiter_memcached::MemcachedStorage::from_uri(uri).await?,
        )),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "redis+unix" | "redis+cluster" | "redis+sentinel" => {
            let storage = limiter_redis::RedisStorage::from_uri(uri).await?;
            Ok(Arc::new(storage))
        }
        other => match SCHEMES.iter().find(|(s, _)| *s == other) {
            Some((_, feature)) => Err(UriError::FeatureDisabled {
                scheme: other.to_owned(),
                feature,
            }),
            None => Err(UriError::UnknownScheme {
                scheme: scheme.to_owned(),
                uri: uri.to_owned(),
                known: SCHEMES
                    .iter()
                    .map(|(s, _)| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}

/// The most shards `memory://?shards=` accepts, as [`MemoryStorageBuilder::shards`]
/// documents.
///
/// [`MemoryStorageBuilder::shards`]: crate::MemoryStorageBuilder::shards
#[cfg(feature = "memory")]
const MAX_SHARDS: usize = 65_536;

#[cfg(feature = "memory")]
fn memory(uri: &str, rest: &str) -> Result<Arc<dyn Storage>, UriError> {
    use limiter_memory::MemoryStorageBuilder as Builder;

    let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
    let invalid = |name: &str, reason: String| UriError::InvalidParameter {
        name: name.to_owned(),
        uri: uri.to_owned(),
        reason,
    };
    if !host.is_empty() && host != "/" {
        return Err(invalid(host, "memory:// takes no host or path".to_owned()));
    }
    let mut builder = limiter_memory::MemoryStorage::builder();
    let pairs = options::query_pairs(query).map_err(|e| invalid(&e.name, e.to_string()))?;
    for (name, value) in pairs {
        let (max, set): (usize, fn(Builder, usize) -> Builder) = match name {
            "max_keys" => (usize::MAX, Builder::max_keys),
            "shards" => (MAX_SHARDS, Builder::shards),
            _ => {
                return Err(invalid(
                    name,
                    "unknown parameter (known: max_keys, shards)".to_owned(),
                ))
            }
        };
        let number = options::whole_number(value, 1, u64::try_from(max).unwrap_or(u64::MAX))
            .map_err(|reason| invalid(name, reason))?;
        // At most `max`, a `usize`.
        builder = set(builder, usize::try_from(number).unwrap_or(max));
    }
    Ok(Arc::new(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(uri: &str) -> UriError {
        block_on(storage_from_uri(uri)).expect_err("an error")
    }

    /// Runs a future on a fresh runtime with timers and I/O (the Redis storage needs
    /// both).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn malformed_and_unknown_uris_are_clear_errors() {
        assert!(matches!(err("memory"), UriError::Malformed { .. }));
        assert!(matches!(err("://x"), UriError::Malformed { .. }));
        assert!(matches!(err("me mory://"), UriError::Malformed { .. }));
        match err("postgres://localhost/db") {
            UriError::UnknownScheme { scheme, known, .. } => {
                assert_eq!(scheme, "postgres");
                assert!(known.contains("memory://"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_its_feature_names_the_feature() {
        for (uri, scheme) in [
            ("redis://127.0.0.1:6379", "redis"),
            ("rediss://127.0.0.1:6380", "rediss"),
            ("redis+unix:///run/redis.sock", "redis+unix"),
            ("redis+cluster://127.0.0.1:7000", "redis+cluster"),
            ("redis+sentinel://127.0.0.1:26379/main", "redis+sentinel"),
            ("REDIS://127.0.0.1", "redis"),
        ] {
            let e = err(uri);
            assert_eq!(
                e,
                UriError::FeatureDisabled {
                    scheme: scheme.to_owned(),
                    feature: "redis",
                },
                "{uri}"
            );
            assert!(e
                .to_string()
                .contains(r#"needs the limiter crate's "redis" feature"#));
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_uris_reach_the_redis_storage() {
        // Nothing listens on port 1 of the loopback address: the storage itself
        // answers, with a typed error naming the target.
        match err("redis://127.0.0.1:1?connect_timeout=500ms") {
            UriError::Redis(limiter_redis::RedisError::Connect { target, .. }) => {
                assert_eq!(target, "redis://127.0.0.1:1");
            }
            other => panic!("unexpected {other:?}"),
        }
        match err("redis://127.0.0.1?colour=red") {
            UriError::Redis(limiter_redis::RedisError::InvalidOption { name, .. }) => {
                assert_eq!(name, "colour");
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = err("redis+cluster://127.0.0.1:7000/2");
        assert!(
            matches!(
                e,
                UriError::Redis(limiter_redis::RedisError::MalformedUri { .. })
            ),
            "{e:?}"
        );
    }

    #[cfg(all(feature = "redis", not(feature = "redis-tls")))]
    #[test]
    fn rediss_without_tls_is_refused() {
        let e = err("rediss://127.0.0.1:6380");
        assert!(
            matches!(
                e,
                UriError::Redis(limiter_redis::RedisError::TlsUnavailable { .. })
            ),
            "{e:?}"
        );
    }

    #[cfg(not(feature = "memory"))]
    #[test]
    fn memory_without_its_feature_names_the_feature() {
        let e = err("memory://");
        assert_eq!(
            e,
            UriError::FeatureDisabled {
                scheme: "memory".to_owned(),
                feature: "memory",
            }
        );
        assert_eq!(
            e.to_string(),
            r#"storage scheme "memory" needs the limiter crate's "memory" feature"#
        );
    }

    #[cfg(not(feature = "memcached"))]
    #[test]
    fn memcached_without_its_feature_names_the_feature() {
        assert_eq!(
            err("memcached://127.0.0.1:11211"),
            UriError::FeatureDisabled {
                scheme: "memcached".to_owned(),
                feature: "memcached",
            }
        );
    }

    #[cfg(feature = "memcached")]
    #[test]
    fn memcached_uris_are_read_by_the_memcached_storage() {
        use limiter_memcached::MemcachedOptionsError;

        match err("memcached://127.0.0.1:11211?pool_size=0") {
            UriError::Memcached(MemcachedOptionsError::InvalidParameter { name, .. }) => {
                assert_eq!(name, "pool_size")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            err("memcached://"),
            UriError::Memcached(MemcachedOptionsError::NoServers { .. })
        ));
        assert_eq!(
            err("memcached://h?colour=red").to_string(),
            "invalid parameter \"colour\" in memcached uri \"memcached://h?colour=red\": \
             unknown parameter (known: key_prefix, pool_size, connect_timeout, \
             command_timeout, flush_on_clear)"
        );
        // A well-formed URI gives a storage without connecting: servers are reached on
        // first use.
        let storage = block_on(storage_from_uri("MEMCACHED://127.0.0.1:1,/tmp/none.sock"));
        assert!(storage.is_ok());
    }

    #[cfg(feature = "memory")]
    #[test]
    fn memory_uri_bounds_the_key_count() {
        let storage = block_on(storage_from_uri("memory://?max_keys=2&shards=1")).unwrap();
        let keys = ["a", "b", "c", "d"].map(|name| limiter_core::StorageKey::new("t", name));
        let now = limiter_core::Timestamp::from_millis(0);
        block_on(async {
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

    #[cfg(feature = "memory")]
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
            if let Err(e) = block_on(storage_from_uri(good)) {
                panic!("{good}: {e}");
            }
        }
    }

    #[cfg(feature = "memory")]
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
            ("memory://?max_keys=5%20".into(), "max_keys", not_digits("5%20", keys)),
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
                "unknown parameter (known: max_keys, shards)".into(),
            ),
            (
                "memory://?max_keys=5&Shards=2".into(),
                "Shards",
                "unknown parameter (known: max_keys, shards)".into(),
            ),
            (
                "memory://?=5".into(),
                "",
                "unknown parameter (known: max_keys, shards)".into(),
            ),
            (
                "memory://host".into(),
                "host",
                "memory:// takes no host or path".into(),
            ),
        ];
        for (uri, name, reason) in cases {
            assert_eq!(
                err(&uri),
                UriError::InvalidParameter {
                    name: name.to_owned(),
                    uri: uri.clone(),
                    reason,
                },
                "{uri}"
            );
        }
    }

    #[cfg(feature = "memory")]
    #[test]
    fn memory_parameter_errors_read_well() {
        assert_eq!(
            err("memory://?max_keys=+5").to_string(),
            r#"invalid parameter "max_keys" in storage uri "memory://?max_keys=+5": "+5" is not a plain decimal number; expected a whole number of at least 1, written with the digits 0-9 only (no sign or spaces)"#
        );
        assert_eq!(
            err("memory://?shards=65537").to_string(),
            r#"invalid parameter "shards" in storage uri "memory://?shards=65537": 65537 is out of range; expected a whole number from 1 to 65536"#
        );
    }
}
