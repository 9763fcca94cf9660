//! Choosing a storage by URI.
//!
//! | URI | storage | cargo feature |
//! |---|---|---|
//! | `memory://` | [`MemoryStorage`](crate::MemoryStorage) | `memory` (default) |
//! | `memory://?max_keys=100000&shards=64` | the same, bounded to 100,000 keys, 64 shards | `memory` |
//!
//! The Redis (`redis://`, `rediss://`, `redis+unix://`, `redis+cluster://`,
//! `redis+sentinel://`) and Memcached (`memcached://`) schemes are reserved for
//! storages that limiter does not ship yet; such a URI is a
//! [`UriError::BackendUnavailable`]. `memory://` in a build without the `memory`
//! feature is a [`UriError::FeatureDisabled`] that names the feature to enable.

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
    /// The scheme belongs to a storage backend that this build of limiter does not
    /// include, and no cargo feature adds it yet.
    #[error("the {backend} backend is not available in this build of limiter (storage scheme {scheme:?})")]
    BackendUnavailable {
        /// The scheme found.
        scheme: String,
        /// The backend the scheme is reserved for, such as `redis`.
        backend: &'static str,
    },
    /// A query parameter is unknown or its value is invalid.
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

/// Where the storage for a scheme comes from.
#[derive(Clone, Copy)]
enum Backend {
    /// Compiled in by this cargo feature of the limiter crate.
    Feature(&'static str),
    /// Reserved for this backend, which no build of limiter includes yet.
    Unavailable(&'static str),
}

/// Every scheme limiter recognizes, and where its storage comes from.
const SCHEMES: &[(&str, Backend)] = &[
    ("memory", Backend::Feature("memory")),
    ("redis", Backend::Unavailable("redis")),
    ("rediss", Backend::Unavailable("redis")),
    ("redis+unix", Backend::Unavailable("redis")),
    ("redis+cluster", Backend::Unavailable("redis")),
    ("redis+sentinel", Backend::Unavailable("redis")),
    ("memcached", Backend::Unavailable("memcached")),
];

/// A ready storage for `uri`, such as `memory://`.
///
/// The function is `async` because storages behind a network connect before they are
/// returned.
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
        other => match SCHEMES.iter().find(|(s, _)| *s == other) {
            Some((_, Backend::Feature(feature))) => Err(UriError::FeatureDisabled {
                scheme: other.to_owned(),
                feature,
            }),
            Some((_, Backend::Unavailable(backend))) => Err(UriError::BackendUnavailable {
                scheme: other.to_owned(),
                backend,
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

/// Splits `a=1&b=2` into pairs; an empty query gives none.
#[cfg(feature = "memory")]
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

#[cfg(feature = "memory")]
fn memory(uri: &str, rest: &str) -> Result<Arc<dyn Storage>, UriError> {
    let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
    let invalid = |name: &str, reason: &str| UriError::InvalidParameter {
        name: name.to_owned(),
        uri: uri.to_owned(),
        reason: reason.to_owned(),
    };
    if !host.is_empty() && host != "/" {
        return Err(invalid(host, "memory:// takes no host or path"));
    }
    let mut builder = limiter_memory::MemoryStorage::builder();
    for (name, value) in query_pairs(query) {
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(name, "expected a whole number above 0"))
        };
        builder = match name {
            "max_keys" => builder.max_keys(number()?),
            "shards" => builder.shards(number()?),
            _ => return Err(invalid(name, "unknown parameter (known: max_keys, shards)")),
        };
    }
    Ok(Arc::new(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(uri: &str) -> UriError {
        block_on(storage_from_uri(uri)).expect_err("an error")
    }

    /// Runs a future that never waits (storage construction here does no I/O).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
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

    #[test]
    fn reserved_backends_are_unavailable_without_naming_a_feature() {
        for (uri, scheme, backend) in [
            ("redis://127.0.0.1:6379", "redis", "redis"),
            ("rediss://127.0.0.1:6380", "rediss", "redis"),
            ("redis+unix:///run/redis.sock", "redis+unix", "redis"),
            ("redis+cluster://127.0.0.1:7000", "redis+cluster", "redis"),
            (
                "redis+sentinel://127.0.0.1:26379/main",
                "redis+sentinel",
                "redis",
            ),
            ("REDIS://127.0.0.1", "redis", "redis"),
            ("memcached://127.0.0.1:11211", "memcached", "memcached"),
        ] {
            let e = err(uri);
            assert_eq!(
                e,
                UriError::BackendUnavailable {
                    scheme: scheme.to_owned(),
                    backend,
                },
                "{uri}"
            );
            let message = e.to_string();
            assert!(
                message.contains(&format!(
                    "the {backend} backend is not available in this build of limiter"
                )),
                "{uri}: {message}"
            );
            assert!(message.contains(scheme), "{uri}: {message}");
            assert!(!message.contains("feature"), "{uri}: {message}");
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

    #[cfg(feature = "memory")]
    #[test]
    fn memory_uri_bounds_the_key_count() {
        let storage = block_on(storage_from_uri("memory://?max_keys=2&shards=1")).unwrap();
        let keys = ["a", "b", "c", "d"];
        block_on(async {
            for key in keys {
                let ttl = std::time::Duration::from_secs(60);
                assert!(storage.compare_and_set(key, None, b"x", ttl).await.unwrap());
            }
            let mut present = 0;
            for key in keys {
                present += usize::from(storage.get(key).await.unwrap().is_some());
            }
            assert_eq!(present, 2);
        });
    }

    #[cfg(feature = "memory")]
    #[test]
    fn memory_uri_parameters_are_checked() {
        assert!(block_on(storage_from_uri("memory://")).is_ok());
        assert!(block_on(storage_from_uri("MEMORY://?max_keys=5&shards=2")).is_ok());
        for bad in [
            "memory://?max_keys=0",
            "memory://?max_keys=x",
            "memory://?colour=red",
            "memory://host",
        ] {
            assert!(
                matches!(err(bad), UriError::InvalidParameter { .. }),
                "{bad}"
            );
        }
    }
}
