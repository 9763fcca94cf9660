//! The `[storage]` table.

use std::fmt;
use std::sync::Arc;

use limiter_core::Storage;
use serde::de::{self, Deserialize, Deserializer};

use crate::uri::{self, StorageOptions};
use crate::UriError;

/// Where the counts live: a `[storage]` table with exactly one of `uri` (as
/// [`storage_from_uri`](crate::storage_from_uri) takes it) and one storage's options
/// as a table of its own (`[storage.memory]`, `[storage.redis]`,
/// `[storage.memcached]`, with the names of [`MemoryOptions`](crate::MemoryOptions)
/// and the other options types). `storage = "memory://"` is short for a table with
/// `uri` alone. A URI is parsed when the file is read, so a bad one
/// fails at start-up; networked storages connect in [`connect`](Self::connect).
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConfig {
    uri: Option<String>,
    options: StorageOptions,
}

impl StorageConfig {
    /// The storage for `uri`, checked but not connected.
    ///
    /// # Errors
    ///
    /// [`UriError`] for a malformed URI, an unknown scheme, a scheme whose feature is
    /// off, or options its storage rejects.
    pub fn from_uri(uri: &str) -> Result<StorageConfig, UriError> {
        Ok(StorageConfig {
            uri: Some(uri.to_owned()),
            options: uri::parse(uri)?,
        })
    }

    /// Builds or connects the storage.
    ///
    /// # Errors
    ///
    /// [`UriError`] when the options are invalid or the server cannot be reached.
    pub async fn connect(&self) -> Result<Arc<dyn Storage>, UriError> {
        uri::connect(self.options.clone()).await
    }

    /// The storage's kind: `memory`, `redis` or `memcached`.
    pub fn kind(&self) -> &'static str {
        match self.options {
            #[cfg(feature = "memory")]
            StorageOptions::Memory(_) => "memory",
            #[cfg(feature = "memcached")]
            StorageOptions::Memcached(_) => "memcached",
            #[cfg(feature = "redis")]
            StorageOptions::Redis(_) => "redis",
        }
    }
}

/// `uri` with any password replaced by `***`, for printing.
///
/// ```
/// assert_eq!(limiter::config::redact("redis://app:s3cret@db:6379/0"), "redis://app:***@db:6379/0");
/// ```
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => uri.to_owned(),
    }
}

impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.uri {
            Some(uri) => f.write_str(&redact(uri)),
            None => write!(f, "{} (options table)", self.kind()),
        }
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageConfig({self})")
    }
}

/// A URI, parsed as it is deserialized (so that its errors point at it).
struct UriValue(StorageConfig);

impl<'de> Deserialize<'de> for UriValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let uri = String::deserialize(d)?;
        StorageConfig::from_uri(&uri)
            .map(UriValue)
            .map_err(de::Error::custom)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default)]
    uri: Option<UriValue>,
    #[cfg(feature = "memory")]
    #[serde(default)]
    memory: Option<crate::MemoryOptions>,
    #[cfg(not(feature = "memory"))]
    #[serde(default, deserialize_with = "memory_off")]
    memory: Option<()>,
    #[cfg(feature = "redis")]
    #[serde(default)]
    redis: Option<crate::RedisOptions>,
    #[cfg(not(feature = "redis"))]
    #[serde(default, deserialize_with = "redis_off")]
    redis: Option<()>,
    #[cfg(feature = "memcached")]
    #[serde(default)]
    memcached: Option<crate::MemcachedOptions>,
    #[cfg(not(feature = "memcached"))]
    #[serde(default, deserialize_with = "memcached_off")]
    memcached: Option<()>,
}

macro_rules! feature_off {
    ($($name:ident => $feature:literal;)*) => {$(
        #[allow(dead_code)]
        fn $name<'de, D: Deserializer<'de>>(_: D) -> Result<Option<()>, D::Error> {
            Err(de::Error::custom(concat!(
                "this storage needs the limiter crate's \"", $feature, "\" feature"
            )))
        }
    )*};
}

feature_off! {
    memory_off => "memory";
    redis_off => "redis";
    memcached_off => "memcached";
}

impl StorageConfig {
    // Without any storage feature, no storage can be configured.
    #[cfg_attr(
        not(any(feature = "memory", feature = "redis", feature = "memcached")),
        allow(unreachable_code)
    )]
    fn from_raw(raw: RawStorage) -> Result<StorageConfig, String> {
        let _ = (&raw.memory, &raw.redis, &raw.memcached);
        let mut found: Vec<StorageConfig> = Vec::new();
        if let Some(UriValue(config)) = raw.uri {
            found.push(config);
        }
        #[cfg(feature = "memory")]
        if let Some(options) = raw.memory {
            found.push(StorageConfig {
                uri: None,
                options: StorageOptions::Memory(options),
            });
        }
        #[cfg(feature = "redis")]
        if let Some(options) = raw.redis {
            found.push(StorageConfig {
                uri: None,
                options: StorageOptions::Redis(options),
            });
        }
        #[cfg(feature = "memcached")]
        if let Some(options) = raw.memcached {
            found.push(StorageConfig {
                uri: None,
                options: StorageOptions::Memcached(options),
            });
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(
                "the storage table needs one of `uri`, `memory`, `redis` and `memcached`".into(),
            ),
            _ => Err(
                "the storage table takes only one of `uri`, `memory`, `redis` and `memcached`"
                    .into(),
            ),
        }
    }
}

/// `storage = "redis://…"` is short for `[storage] uri = "redis://…"`.
impl<'de> Deserialize<'de> for StorageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StorageVisitor;

        impl<'de> de::Visitor<'de> for StorageVisitor {
            type Value = StorageConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a storage URI, or a table with `uri`, `memory`, `redis` or `memcached`",
                )
            }

            fn visit_str<E: de::Error>(self, uri: &str) -> Result<StorageConfig, E> {
                StorageConfig::from_uri(uri).map_err(E::custom)
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<StorageConfig, A::Error> {
                let raw = RawStorage::deserialize(de::value::MapAccessDeserializer::new(map))?;
                StorageConfig::from_raw(raw).map_err(de::Error::custom)
            }
        }

        d.deserialize_any(StorageVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact("redis://:secret@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:6379?x=@"), "redis://h:6379?x=@");
        assert_eq!(redact("memory://"), "memory://");
    }
}
