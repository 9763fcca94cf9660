//! [`RedisStorage`]: the [`Storage`] implementation.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::bytes::Bytes;
use fred::prelude::{
    Builder, ClientLike, Config, KeysInterface, Pool, ReconnectPolicy, Server, ServerConfig,
};
use fred::types::config::{ClusterDiscoveryPolicy, UnresponsiveConfig};
use fred::types::scan::Scanner;
use fred::types::{FromValue, Key, Value};
use futures::StreamExt;
use limiter_core::observe::key_digest;
use limiter_core::storage::{
    async_trait, Abilities, ClearAll, Expiry, Sleep, Storage, StorageKey, Version, Versioned,
};
use limiter_core::{StorageError, StorageErrorKind, Timestamp};

use crate::error::{self, RedisError};
use crate::events::{self, Listeners};
use crate::memo::Memo;
use crate::options::{RedisOptions, Topology};
use crate::scripts::Scripts;

/// The longest time-to-live written, in milliseconds (2^53 − 1, about 285,000 years):
/// longer ones are clamped, so that the server's expiry arithmetic never overflows.
const MAX_TTL_MS: u64 = (1 << 53) - 1;

/// Bytes of the version in front of every stored state.
pub(crate) const VERSION_LEN: usize = 8;

/// A rate-limit [`Storage`] on Redis: standalone, Unix socket, Cluster or Sentinel,
/// with or without TLS. See the [crate docs](crate) for URIs, the key layout and
/// what each operation sends.
///
/// Cheap to clone: clones share the connection pool.
///
/// # Examples
///
/// ```no_run
/// use limiter_core::{Key, RateLimiter};
/// use limiter_redis::RedisStorage;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = RedisStorage::from_uri("redis://127.0.0.1:6379?key_prefix=app:").await?;
/// let limiter = RateLimiter::new(Arc::new(storage));
/// let decision = limiter.hit(&"10 per second".parse()?, &Key::from("203.0.113.9"), 1).await?;
/// assert!(decision.is_allowed());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStorage {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    options: RedisOptions,
    scripts: Scripts,
    versions: Versions,
    /// Units of coalesced operations still to run by script after a read and
    /// compare-and-set lost a race (see `native::CAS_UNIT_MIN`).
    script_units: AtomicU32,
    /// The states this process last wrote to its hot keys, with their versions.
    memo: Memo,
    /// The `tracing` listeners of the pool's connection events.
    _listeners: Listeners,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("target", &self.inner.options.target())
            .field("key_prefix", &self.inner.options.get_key_prefix())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop the pool's reconnect loops; best effort, on the runtime if there is one.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            let limit = self.options.get_command_timeout();
            handle.spawn(async move {
                let _ = tokio::time::timeout(limit, pool.quit()).await;
            });
        }
    }
}

impl RedisStorage {
    /// Connects to the server a Redis URI names. See the [crate docs](crate#uris).
    ///
    /// # Errors
    ///
    /// [`RedisError`] for a malformed URI or option, TLS asked for in a build without
    /// it, or a server that cannot be reached within the connect timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), limiter_redis::RedisError> {
    /// let storage = limiter_redis::RedisStorage::from_uri("redis+cluster://10.0.0.1:7000,10.0.0.2:7000").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_uri(uri: &str) -> Result<RedisStorage, RedisError> {
        RedisStorage::connect(uri.parse()?).await
    }

    /// Connects with `options`, waiting at most its connect timeout.
    ///
    /// ```no_run
    /// use limiter_redis::{RedisOptions, RedisStorage, Topology};
    /// use std::time::Duration;
    ///
    /// # async fn run() -> Result<(), limiter_redis::RedisError> {
    /// let options = RedisOptions::new(Topology::Unix { path: "/run/redis.sock".into() })
    ///     .key_prefix("app:rl:")
    ///     .command_timeout(Duration::from_millis(200));
    /// let storage = RedisStorage::connect(options).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`from_uri`](Self::from_uri), less the parsing.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt.
    pub async fn connect(options: RedisOptions) -> Result<RedisStorage, RedisError> {
        options.validate()?;
        let target = options.target();
        let fred_config = client_config(&options)?;
        let limit = options.get_connect_timeout();
        let command_timeout = options.get_command_timeout();
        let pool = Builder::from_config(fred_config)
            .with_connection_config(|c| {
                c.connection_timeout = limit;
                c.internal_command_timeout = limit;
                // A command is sent once: a hit that reached the server before its
                // connection broke must not be counted twice.
                c.max_command_attempts = 1;
                // Bounded: past this many commands waiting for a connection, new ones
                // fail at once instead of queueing.
                c.max_command_buffer_len = 10_000;
                // A server that stops answering (hung, or a half-open socket after a
                // failover) is dropped and reconnected.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(command_timeout.max(Duration::from_millis(500)) * 2),
                    interval: command_timeout.max(Duration::from_millis(500)) / 2,
                };
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
            .build_pool(usize::try_from(options.get_pool_size()).unwrap_or(usize::MAX))
            .map_err(|e| connect_error(&target, &e))?;
        let sentinel = matches!(options.get_topology(), Topology::Sentinel { .. });
        let listeners = events::listen(&pool, sentinel);
        match tokio::time::timeout(limit, pool.init()).await {
            Ok(Ok(_task)) => {}
            Ok(Err(e)) => {
                stop(&pool, command_timeout).await;
                return Err(connect_error(&target, &e));
            }
            Err(_) => {
                stop(&pool, command_timeout).await;
                return Err(RedisError::Connect {
                    target,
                    kind: StorageErrorKind::Timeout,
                    reason: format!("no connection within the connect timeout of {limit:?}"),
                });
            }
        }
        Ok(RedisStorage {
            inner: Arc::new(Inner {
                pool,
                options,
                scripts: Scripts::new(),
                versions: Versions::new(),
                script_units: AtomicU32::new(0),
                memo: Memo::new(),
                _listeners: listeners,
            }),
        })
    }

    /// The connection pool, for commands of your own on the same connections (the
    /// client is re-exported as [`fred`](crate::fred)). Keep clear of this storage's
    /// key prefix.
    ///
    /// ```no_run
    /// use limiter_redis::fred::prelude::*;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let storage = limiter_redis::RedisStorage::from_uri("redis://127.0.0.1").await?;
    /// let info: String = storage.pool().ping(None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The options this storage was made with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// The Redis key that holds `key`'s state: `<key_prefix>{<group>}/<limit part>`.
    /// See the [crate docs](crate#key-layout).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), limiter_redis::RedisError> {
    /// use limiter_core::StorageKey;
    /// let storage = limiter_redis::RedisStorage::from_uri("redis://127.0.0.1").await?;
    /// let key = StorageKey::new("app/user-1", "10/1/second");
    /// assert_eq!(storage.redis_key(&key), "limiter:{app%2Fuser-1}/10%2F1%2Fsecond");
    /// # Ok(())
    /// # }
    /// ```
    pub fn redis_key(&self, key: &StorageKey) -> String {
        redis_key(self.inner.options.get_key_prefix(), key)
    }

    /// Runs `future` within the command timeout, mapping its error.
    pub(crate) async fn bounded<T>(
        &self,
        operation: &'static str,
        key: Option<&str>,
        future: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, StorageError> {
        let limit = self.inner.options.get_command_timeout();
        let error = match tokio::time::timeout(limit, future).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => error::storage_error(operation, key, e),
            Err(_) => error::timeout(operation, key, limit),
        };
        if error.kind() == StorageErrorKind::Timeout {
            self.timed_out(operation, key, limit);
        }
        Err(error)
    }

    /// Reports a command that missed the command timeout (the client's own, or this
    /// storage's) as a `WARN` event, the key as its digest.
    fn timed_out(&self, operation: &'static str, key: Option<&str>, limit: Duration) {
        let (host, port) = match self.inner.options.get_topology() {
            Topology::Standalone { host, port } => (Some(host.as_str()), Some(*port)),
            _ => (None, None),
        };
        tracing::warn!(
            db.system.name = "redis",
            db.operation.name = operation,
            server.address = host,
            server.port = port,
            limiter.key.digest = key.map(|k| tracing::field::display(key_digest(k))),
            limiter.timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            error.type = StorageErrorKind::Timeout.as_str(),
            "redis command timed out"
        );
    }

    /// Runs one of the scripts on `keys` with `args`: EVALSHA, reloading the script on
    /// `NOSCRIPT` (an `INFO` event), all within the command timeout.
    pub(crate) async fn run_script<R: FromValue>(
        &self,
        script: &fred::types::scripts::Script,
        operation: &'static str,
        key: &str,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, StorageError> {
        let client = self.inner.pool.next_connected();
        let run = async move {
            match script.evalsha(client, keys.clone(), args.clone()).await {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    tracing::info!(
                        db.system.name = "redis",
                        db.operation.name = operation,
                        limiter.redis.script = &**script.sha1(),
                        "redis script not cached on the server (first use, restart, failover or SCRIPT FLUSH); loading it"
                    );
                    script.load(client).await?;
                    script.evalsha(client, keys, args).await
                }
                result => result,
            }
        };
        self.bounded(operation, Some(key), run).await
    }

    /// A fresh version, as the 8 bytes stored in front of the state.
    pub(crate) fn next_version(&self) -> Bytes {
        Bytes::copy_from_slice(&self.inner.versions.next().to_le_bytes())
    }

    /// The states this process last wrote to its hot keys.
    pub(crate) fn memo(&self) -> &Memo {
        &self.inner.memo
    }

    /// `value` into `redis_key` at a fresh version, if the key is at `expected`
    /// (`None`: absent), by `cas.lua`: the version written, or `None` when the key
    /// was not at `expected` (nothing written).
    pub(crate) async fn cas_script(
        &self,
        redis_key: &str,
        expected: Option<u64>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<Option<u64>, StorageError> {
        let expected = match expected {
            Some(v) => Bytes::copy_from_slice(&v.to_le_bytes()),
            None => Bytes::new(),
        };
        let version = self.inner.versions.next();
        let args = vec![
            Value::Bytes(expected),
            Value::Bytes(Bytes::copy_from_slice(&version.to_le_bytes())),
            Value::Bytes(Bytes::copy_from_slice(value)),
            Value::from(ttl_ms(ttl).to_string()),
        ];
        let wrote: i64 = self
            .run_script(
                &self.inner.scripts.cas,
                "compare_and_set",
                redis_key,
                vec![Key::from(redis_key)],
                args,
            )
            .await?;
        match wrote {
            0 => Ok(None),
            1 => Ok(Some(version)),
            other => Err(error::protocol(
                "compare_and_set",
                redis_key,
                format!("script answered {other}, expected 0 or 1"),
            )),
        }
    }

    /// Whether a unit of coalesced operations may try a read and a compare-and-set
    /// now: not while units still go by script after a lost race (this counts one of
    /// them down).
    pub(crate) fn cas_unit_allowed(&self) -> bool {
        let left = &self.inner.script_units;
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
    }

    /// A unit's compare-and-set lost a race: the next `units` go by script.
    pub(crate) fn script_next_units(&self, units: u32) {
        self.inner.script_units.store(units, Ordering::Relaxed);
    }

    /// The values of `keys` (all of one hash slot), with `MGET`, each as its version
    /// and state (`None`: absent).
    pub(crate) async fn get_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Versioned>>, StorageError> {
        let first = keys.first().map(String::as_str);
        let client = self.inner.pool.next_connected();
        let values: Vec<Option<Bytes>> = self
            .bounded("get", first, client.mget(keys.to_vec()))
            .await?;
        if values.len() != keys.len() {
            let message = format!("{} values for {} keys", values.len(), keys.len());
            return Err(error::protocol("get", first.unwrap_or_default(), message));
        }
        values
            .iter()
            .zip(keys)
            .map(|(value, key)| {
                value
                    .as_deref()
                    .map(|v| split_version(v, "get", key))
                    .transpose()
            })
            .collect()
    }

    /// The value of `redis_key`, as its version and state (`None`: absent).
    pub(crate) async fn get_value(
        &self,
        redis_key: &str,
    ) -> Result<Option<Versioned>, StorageError> {
        let client = self.inner.pool.next_connected();
        let value: Option<Bytes> = self
            .bounded("get", Some(redis_key), client.get(redis_key))
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        split_version(&value, "get", redis_key).map(Some)
    }

    /// The prepared scripts.
    pub(crate) fn scripts(&self) -> &Scripts {
        &self.inner.scripts
    }

    /// Whether this storage talks to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.inner.options.get_topology(), Topology::Cluster { .. })
    }
}

/// A stored value as its version and state bytes.
pub(crate) fn split_version(
    value: &[u8],
    operation: &'static str,
    redis_key: &str,
) -> Result<Versioned, StorageError> {
    let (version, state) = value.split_at_checked(VERSION_LEN).ok_or_else(|| {
        StorageError::new(
            StorageErrorKind::Corrupt,
            operation,
            format!(
                "stored value of {} bytes is shorter than its {VERSION_LEN}-byte version",
                value.len()
            ),
        )
        .with_key(redis_key)
    })?;
    let mut word = [0u8; VERSION_LEN];
    word.copy_from_slice(version);
    Ok(Versioned {
        value: state.to_vec(),
        version: Version(u64::from_le_bytes(word)),
    })
}

/// `<prefix>{<group>}/<limit part>`.
pub(crate) fn redis_key(prefix: &str, key: &StorageKey) -> String {
    let (group, limit) = (key.group(), key.limit_part());
    let mut out = String::with_capacity(prefix.len() + group.len() + limit.len() + 3);
    out.push_str(prefix);
    out.push('{');
    out.push_str(group);
    out.push_str("}/");
    out.push_str(limit);
    out
}

/// Asks the pool to stop, waiting at most `limit`.
async fn stop(pool: &Pool, limit: Duration) {
    let _ = tokio::time::timeout(limit, pool.quit()).await;
}

fn connect_error(target: &str, e: &fred::error::Error) -> RedisError {
    let kind = match error::kind_of(e) {
        StorageErrorKind::Timeout => StorageErrorKind::Timeout,
        _ => StorageErrorKind::Unavailable,
    };
    RedisError::Connect {
        target: target.to_owned(),
        kind,
        reason: if e.details().is_empty() {
            format!("{:?}", e.kind())
        } else {
            e.details().to_owned()
        },
    }
}

/// The client's configuration for `options`.
fn client_config(options: &RedisOptions) -> Result<Config, RedisError> {
    let servers = |nodes: &[(String, u16)]| {
        nodes
            .iter()
            .map(|(h, p)| Server::new(h.as_str(), *p))
            .collect::<Vec<_>>()
    };
    let server = match options.get_topology() {
        Topology::Standalone { host, port } => ServerConfig::new_centralized(host.as_str(), *port),
        Topology::Unix { path } => ServerConfig::Unix { path: path.clone() },
        Topology::Cluster { nodes } => ServerConfig::Clustered {
            hosts: servers(nodes),
            policy: ClusterDiscoveryPolicy::default(),
        },
        Topology::Sentinel { nodes, service } => ServerConfig::Sentinel {
            hosts: servers(nodes),
            service_name: service.clone(),
        },
    };
    let mut out = Config {
        server,
        username: options.get_username().map(str::to_owned),
        password: options.get_password().map(str::to_owned),
        database: options.get_database(),
        fail_fast: true,
        ..Config::default()
    };
    if options.get_tls() {
        crate::tls::configure(&mut out, options)?;
    }
    Ok(out)
}

/// Versions that never repeat for a key: a random 64-bit start per storage, then a
/// bijective mix of a counter, so values never repeat within a process and collide
/// across processes with probability about 2⁻⁶⁴ per pair.
struct Versions {
    seed: u64,
    counter: AtomicU64,
}

impl Versions {
    fn new() -> Versions {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(since.as_nanos());
        }
        Versions {
            seed: hasher.finish(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // splitmix64: a bijection of the counter, keyed by the seed.
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A time-to-live in whole milliseconds, at least 1 and at most [`MAX_TTL_MS`].
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

/// `*`, `?`, `[`, `]` and `\` escaped for a SCAN `MATCH` pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Storage for RedisStorage {
    async fn get(
        &self,
        key: &StorageKey,
        _now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        self.get_value(&self.redis_key(key)).await
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        _now: Timestamp,
    ) -> Result<bool, StorageError> {
        let redis_key = self.redis_key(key);
        let expected = expected.map(|v| v.0);
        let wrote = self.cas_script(&redis_key, expected, value, ttl).await?;
        Ok(wrote.is_some())
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let redis_key = self.redis_key(key);
        self.memo().forget(&redis_key);
        let client = self.inner.pool.next_connected();
        let _: i64 = self
            .bounded("delete", Some(&redis_key), client.del(redis_key.as_str()))
            .await?;
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        let client = self.inner.pool.next_connected();
        let _: String = self.bounded("check", None, client.ping(None)).await?;
        Ok(())
    }

    /// The strategies run as Lua scripts ([`NativeStrategies`](limiter_core::storage::NativeStrategies)),
    /// [`ClearAll`] under the key prefix, keys that Redis expires in real time
    /// (it drops them within about a second of their time-to-live), and [`Sleep`] on
    /// Tokio's timer for the back-off of the generic path (custom strategies).
    fn abilities(&self) -> Abilities<'_> {
        Abilities::new()
            .native(self)
            .clear_all(self)
            .sleep(self)
            .expiry(Expiry::RealTime {
                late: Duration::from_secs(1),
            })
    }
}

impl Sleep for RedisStorage {
    fn sleep(&self, duration: Duration) -> limiter_core::storage::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// The command timeout: the longest one call is meant to take.
    fn budget(&self) -> Duration {
        self.inner.options.get_command_timeout()
    }
}

#[async_trait]
impl ClearAll for RedisStorage {
    /// Removes every key under this storage's key prefix, with `SCAN` (on every
    /// primary of a Cluster) and `UNLINK`. Each page of the scan, and the removal of its
    /// keys, is bounded by the command timeout.
    async fn clear_all(&self) -> Result<(), StorageError> {
        let pattern = format!("{}*", glob_escape(self.inner.options.get_key_prefix()));
        let client = self.inner.pool.next_connected().clone();
        let limit = self.inner.options.get_command_timeout();
        let mut pages = if self.is_cluster() {
            client.scan_cluster(pattern, Some(1_000), None).boxed()
        } else {
            client.scan(pattern, Some(1_000), None).boxed()
        };
        loop {
            let page = match tokio::time::timeout(limit, pages.next()).await {
                Err(_) => return Err(error::timeout("clear_all", None, limit)),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(error::storage_error("clear_all", None, e)),
                Ok(Some(Ok(page))) => page,
            };
            let keys = page.results().clone().unwrap_or_default();
            // One key per UNLINK: the keys of a page may lie in several hash slots.
            let removals = keys.into_iter().map(|key| {
                let client = &client;
                async move { client.unlink::<i64, _>(key).await }
            });
            let results = self
                .bounded("clear_all", None, async {
                    let results = futures::future::join_all(removals).await;
                    results.into_iter().collect::<Result<Vec<i64>, _>>()
                })
                .await;
            page.next();
            results?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_group_as_hash_tag() {
        let key = StorageKey::new("LIMITER/gcra/a{b}", "1/2/second");
        assert_eq!(
            redis_key("rl:", &key),
            "rl:{LIMITER%2Fgcra%2Fa%7Bb%7D}/1%2F2%2Fsecond"
        );
    }

    #[test]
    fn versions_do_not_repeat() {
        let v = Versions::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(v.next()));
        }
    }

    #[test]
    fn ttls_are_clamped_to_what_the_server_takes() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1_500)), 1_500);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn scan_patterns_escape_glob_characters() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
