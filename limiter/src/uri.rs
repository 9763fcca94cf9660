//! Choosing a storage by URI: [`storage_from_uri`].
//!
//! Each storage crate parses its own URIs (its options type's `FromStr`) and declares
//! its schemes (`SCHEMES`); this module only dispatches on the scheme.

use std::sync::Arc;

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
        /// The schemes limiter knows, comma-separated.
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
    /// A `memory://` URI that the in-memory storage cannot use. The inner error names
    /// the part that is wrong.
    #[cfg(feature = "memory")]
    #[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
    #[error(transparent)]
    Memory(#[from] limiter_memory::MemoryOptionsError),
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
}

/// Each storage's cargo feature and schemes, so that a scheme whose storage is not
/// compiled in can name its feature. When the feature is on, the storage crate's own
/// `SCHEMES` is used, and a test checks that this list matches it.
const FEATURES: &[(&str, &[&str])] = &[
    ("memory", &["memory"]),
    ("memcached", &["memcached"]),
    (
        "redis",
        &[
            "redis",
            "rediss",
            "redis+unix",
            "redis+cluster",
            "rediss+cluster",
            "redis+sentinel",
            "rediss+sentinel",
            "valkey",
            "valkeys",
            "valkey+unix",
            "valkey+cluster",
            "valkeys+cluster",
            "valkey+sentinel",
            "valkeys+sentinel",
        ],
    ),
];

/// A ready storage for `uri`, such as `memory://`.
///
/// The function is `async` because storages behind a network connect before they are
/// returned. It reads the scheme (case-insensitive) and hands the whole URI to that
/// storage's options type (`str::parse`), then builds or connects the storage: each
/// storage crate documents its URIs and options.
///
/// | URI | storage | cargo feature |
/// |---|---|---|
/// | `memory://` | [`MemoryStorage`](crate::MemoryStorage) | `memory` (default) |
/// | `memory://?max_keys=100000&shards=64` | the same, bounded to 100,000 keys, 64 shards ([`MemoryOptions`](crate::MemoryOptions)) | `memory` |
/// | `memcached://10.0.0.1:11211,10.0.0.2:11211?key_prefix=app:` | `MemcachedStorage` on two servers (`MemcachedOptions`) | `memcached` |
/// | `memcached:///run/memcached.sock` | the same, on a Unix socket | `memcached` |
/// | `redis://[user:password@]host[:port][/db]` | `RedisStorage`, one server (`RedisOptions`) | `redis` |
/// | `rediss://…`, `rediss+cluster://…`, `rediss+sentinel://…` | the same over TLS | `redis-tls` |
/// | `redis+unix:///path/to/redis.sock` | one server on a Unix socket | `redis` |
/// | `redis+cluster://host1:7000,host2:7001` | a Redis Cluster | `redis` |
/// | `redis+sentinel://host1:26379,host2:26379/service-name[/db]` | a primary found through Sentinel | `redis` |
/// | `valkey://…`, `valkeys://…`, `valkey+unix://…`, `valkey+cluster://…`, `valkeys+cluster://…`, `valkey+sentinel://…`, `valkeys+sentinel://…` | the same forms, for Valkey | `redis` (`redis-tls`) |
///
/// The networked storages share the options `key_prefix` (default `limiter:`),
/// `pool_size` (8), `connect_timeout` (`2s`), `command_timeout` (`500ms`) and `tls`.
/// A bad URI is the storage's own error (`UriError::Memory`, `UriError::Memcached`,
/// `UriError::Redis`), naming the part that is wrong. A Redis URI connects before it
/// returns; Memcached connections open on first use, so a server that is down shows in
/// [`Storage::check`] and in decisions, not here. `rediss://` without the `redis-tls`
/// feature is an error, never a plain-text connection.
///
/// A scheme whose cargo feature is off is a [`UriError::FeatureDisabled`] that names
/// the feature to enable.
///
/// # Errors
///
/// [`UriError`] for a malformed URI, an unknown scheme, a scheme whose feature is off,
/// a URI its storage rejects, or a server that cannot be reached.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "memory")]
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
    connect(parse(uri)?).await
}

/// A storage's options, parsed from a URI or given as a table, not yet connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageOptions {
    #[cfg(feature = "memory")]
    Memory(limiter_memory::MemoryOptions),
    #[cfg(feature = "memcached")]
    Memcached(limiter_memcached::MemcachedOptions),
    #[cfg(feature = "redis")]
    Redis(limiter_redis::RedisOptions),
}

/// The options `uri` stands for, without connecting.
pub(crate) fn parse(uri: &str) -> Result<StorageOptions, UriError> {
    let malformed = || UriError::Malformed {
        uri: uri.to_owned(),
    };
    let (scheme, _) = uri.split_once("://").ok_or_else(malformed)?;
    let valid_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(malformed());
    }
    let lower = scheme.to_ascii_lowercase();
    #[cfg(feature = "memory")]
    if limiter_memory::SCHEMES.contains(&lower.as_str()) {
        return Ok(StorageOptions::Memory(uri.parse()?));
    }
    #[cfg(feature = "memcached")]
    if limiter_memcached::SCHEMES.contains(&lower.as_str()) {
        return Ok(StorageOptions::Memcached(uri.parse()?));
    }
    #[cfg(feature = "redis")]
    if limiter_redis::SCHEMES.contains(&lower.as_str()) {
        return Ok(StorageOptions::Redis(uri.parse()?));
    }
    match FEATURES
        .iter()
        .find(|(_, schemes)| schemes.contains(&lower.as_str()))
    {
        Some((feature, _)) => Err(UriError::FeatureDisabled {
            scheme: lower,
            feature,
        }),
        None => Err(UriError::UnknownScheme {
            scheme: scheme.to_owned(),
            uri: uri.to_owned(),
            known: FEATURES
                .iter()
                .flat_map(|(_, schemes)| schemes.iter())
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Builds or connects the storage for `options`.
pub(crate) async fn connect(options: StorageOptions) -> Result<Arc<dyn Storage>, UriError> {
    match options {
        #[cfg(feature = "memory")]
        StorageOptions::Memory(options) => Ok(Arc::new(
            limiter_memory::MemoryStorage::with_options(options),
        )),
        #[cfg(feature = "memcached")]
        StorageOptions::Memcached(options) => Ok(Arc::new(
            limiter_memcached::MemcachedStorage::connect(options).await?,
        )),
        #[cfg(feature = "redis")]
        StorageOptions::Redis(options) => Ok(Arc::new(
            limiter_redis::RedisStorage::connect(options).await?,
        )),
    }
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

    fn schemes_of(feature: &str) -> &'static [&'static str] {
        FEATURES
            .iter()
            .find(|(f, _)| *f == feature)
            .map_or(&[], |(_, schemes)| schemes)
    }

    #[test]
    fn malformed_and_unknown_uris_are_clear_errors() {
        assert!(matches!(err("memory"), UriError::Malformed { .. }));
        assert!(matches!(err("://x"), UriError::Malformed { .. }));
        assert!(matches!(err("me mory://"), UriError::Malformed { .. }));
        match err("postgres://localhost/db") {
            UriError::UnknownScheme { scheme, known, .. } => {
                assert_eq!(scheme, "postgres");
                for scheme in FEATURES.iter().flat_map(|(_, s)| s.iter()) {
                    assert!(known.contains(&format!("{scheme}://")), "{known}");
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[cfg(feature = "memory")]
    #[test]
    fn memory_uris_reach_the_memory_storage() {
        assert_eq!(schemes_of("memory"), limiter_memory::SCHEMES);
        assert!(block_on(storage_from_uri("MEMORY://?max_keys=5")).is_ok());
        match err("memory://?colour=red") {
            UriError::Memory(limiter_memory::MemoryOptionsError::InvalidOption {
                name, ..
            }) => assert_eq!(name, "colour"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[cfg(feature = "memcached")]
    #[test]
    fn memcached_uris_reach_the_memcached_storage() {
        use limiter_memcached::MemcachedOptionsError;

        assert_eq!(schemes_of("memcached"), limiter_memcached::SCHEMES);
        match err("memcached://127.0.0.1:11211?pool_size=0") {
            UriError::Memcached(MemcachedOptionsError::InvalidOption { name, .. }) => {
                assert_eq!(name, "pool_size")
            }
            other => panic!("unexpected {other:?}"),
        }
        // A well-formed URI gives a storage without connecting: servers are reached on
        // first use.
        let storage = block_on(storage_from_uri("MEMCACHED://127.0.0.1:1,/tmp/none.sock"));
        assert!(storage.is_ok());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_uris_reach_the_redis_storage() {
        assert_eq!(schemes_of("redis"), limiter_redis::SCHEMES);
        for scheme in limiter_redis::SCHEMES {
            let rest = if scheme.ends_with("+unix") {
                "/s.sock"
            } else if scheme.ends_with("+sentinel") {
                "h/main"
            } else {
                "h"
            };
            let uri = format!("{}://{rest}?colour=red", scheme.to_ascii_uppercase());
            match err(&uri) {
                UriError::Redis(limiter_redis::RedisError::InvalidOption { name, .. }) => {
                    assert_eq!(name, "colour", "{uri}");
                }
                other => panic!("{uri}: unexpected {other:?}"),
            }
        }
        // Nothing listens on port 1 of the loopback address: the storage itself
        // answers, with a typed error naming the target.
        match err("redis://127.0.0.1:1?connect_timeout=500ms") {
            UriError::Redis(limiter_redis::RedisError::Connect { target, .. }) => {
                assert_eq!(target, "redis://127.0.0.1:1");
            }
            other => panic!("unexpected {other:?}"),
        }
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

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_its_feature_names_the_feature() {
        for scheme in schemes_of("redis") {
            let uri = format!("{}://127.0.0.1:6379", scheme.to_ascii_uppercase());
            let e = err(&uri);
            assert_eq!(
                e,
                UriError::FeatureDisabled {
                    scheme: (*scheme).to_owned(),
                    feature: "redis",
                },
                "{uri}"
            );
            assert!(e
                .to_string()
                .contains(r#"needs the limiter crate's "redis" feature"#));
        }
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
}
