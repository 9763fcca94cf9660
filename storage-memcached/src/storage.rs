//! [`MemcachedStorage`]: the [`Storage`] core over the meta protocol.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_memcached::{Client, Error, MetaProtocol, Status};
use async_trait::async_trait;
use bb8::{Pool, PooledConnection, QueueStrategy, RunError};
use limiter_core::observe::key_digest;
use limiter_core::storage::{
    Abilities, BoxFuture, ClearAll, Expiry, Sleep, Storage, StorageKey, Version, Versioned,
};
use limiter_core::{StorageError, StorageErrorKind, Timestamp};
use tokio::time::Instant;

use crate::key;
use crate::manager::{ErrorSink, Manager, Shared};
use crate::options::{MemcachedOptions, MemcachedOptionsError};
use crate::ring::Ring;

/// The longest relative expiry Memcached takes: a larger `T` value is read as a Unix
/// time.
const MAX_RELATIVE_TTL_SECS: u64 = 30 * 24 * 60 * 60;
/// The largest expiry Memcached parses (a signed 32-bit number): 2038-01-19.
const MAX_EXPIRY: u64 = i32::MAX as u64;

/// A [`Storage`] on one or more Memcached servers, through the meta protocol.
///
/// Cheap to clone: clones share the connection pools. See the [crate docs](crate) for
/// the protocol, the key layout, placement over several servers, timeouts and errors.
///
/// # Examples
///
/// ```no_run
/// use limiter_core::{Key, RateLimiter};
/// use limiter_memcached::MemcachedStorage;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = MemcachedStorage::from_uri("memcached://127.0.0.1:11211?key_prefix=app:").await?;
/// let limiter = RateLimiter::new(Arc::new(storage));
/// let decision = limiter.hit(&"10 per minute".parse()?, &Key::from("203.0.113.9"), 1).await?;
/// println!("allowed: {}", decision.is_allowed());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemcachedStorage {
    inner: Arc<Inner>,
}

struct Inner {
    options: MemcachedOptions,
    servers: Vec<Server>,
    ring: Ring,
}

/// One server: its name and its connection pool.
struct Server {
    name: String,
    pool: Pool<Manager>,
    shared: Arc<Shared>,
}

impl fmt::Debug for MemcachedStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.servers.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("MemcachedStorage")
            .field("servers", &names)
            .field("key_prefix", &self.inner.options.get_key_prefix())
            .finish_non_exhaustive()
    }
}

impl MemcachedStorage {
    /// A storage for a `memcached://` URI; see [`MemcachedOptions`] for its form.
    ///
    /// Connections open on first use, so this succeeds while servers are down; call
    /// [`check`](Storage::check) to find out whether they answer.
    ///
    /// # Errors
    ///
    /// A [`MemcachedOptionsError`] when the URI is malformed.
    pub async fn from_uri(uri: &str) -> Result<MemcachedStorage, MemcachedOptionsError> {
        MemcachedStorage::connect(uri.parse()?).await
    }

    /// A storage with `options`. Connections open on first use, so this succeeds
    /// while servers are down; call [`check`](Storage::check) to find out whether they
    /// answer.
    ///
    /// `async` because the pools start their maintenance tasks on the current Tokio
    /// runtime.
    ///
    /// ```no_run
    /// use limiter_memcached::{MemcachedOptions, MemcachedStorage};
    /// use std::time::Duration;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let options = MemcachedOptions::new(["10.0.0.1:11211".parse()?, "10.0.0.2".parse()?])
    ///     .key_prefix("app:")
    ///     .command_timeout(Duration::from_millis(250));
    /// let storage = MemcachedStorage::connect(options).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`MemcachedOptionsError::InvalidSetting`] for options that cannot work: no
    /// server, one listed twice or over IPv6, a key prefix with characters Memcached
    /// keys cannot hold, a pool size or timeout out of range, or TLS.
    pub async fn connect(
        options: MemcachedOptions,
    ) -> Result<MemcachedStorage, MemcachedOptionsError> {
        options.validate()?;
        let servers = options
            .get_servers()
            .iter()
            .map(|addr| {
                let shared = Arc::new(Shared::new(addr.at()));
                let manager = Manager {
                    dsn: addr.dsn(),
                    connect_timeout: options.get_connect_timeout(),
                    shared: Arc::clone(&shared),
                };
                let pool = Pool::builder()
                    .max_size(options.get_pool_size())
                    // Waiting for a busy pool is bounded by the command timeout (every
                    // call's deadline); opening a connection by the connect timeout
                    // (`Manager::connect`).
                    .connection_timeout(
                        options
                            .get_connect_timeout()
                            .max(options.get_command_timeout()),
                    )
                    .test_on_check_out(false)
                    // The connection used last is the one most likely still open.
                    .queue_strategy(QueueStrategy::Lifo)
                    .error_sink(Box::new(ErrorSink(Arc::clone(&shared))))
                    .build_unchecked(manager);
                Server {
                    name: addr.name(),
                    pool,
                    shared,
                }
            })
            .collect();
        let ring = Ring::new(options.server_names());
        Ok(MemcachedStorage {
            inner: Arc::new(Inner {
                options,
                servers,
                ring,
            }),
        })
    }

    /// The options this storage runs with.
    pub fn options(&self) -> &MemcachedOptions {
        &self.inner.options
    }

    /// The key `key` is stored under in Memcached: the prefix and the key, or the
    /// digest form for keys that are not safe to send as they are (see the
    /// [crate docs](crate#keys)).
    pub fn memcached_key(&self, key: &StorageKey) -> String {
        key::encode(self.inner.options.get_key_prefix(), key.as_str())
    }

    /// Not part of the API: one Memcached increment (`ma <key> N<ttl> v`, creating the
    /// key) through the same pools, key encoding and deadline as every storage call.
    /// The throughput bench measures decisions against it.
    #[doc(hidden)]
    pub async fn raw_increment(&self, key: &StorageKey) -> Result<(), StorageError> {
        let (encoded, server) = self.inner.locate(key);
        let command = Command::Increment { vivify: "N60" };
        self.inner
            .run("increment", server, &encoded, Some(key), command)
            .await
            .map(|_| ())
    }

    /// The name of the server (`host:port` or socket path) that holds `key`.
    pub fn server_for(&self, key: &StorageKey) -> &str {
        let (_, server) = self.inner.locate(key);
        self.inner
            .servers
            .get(server)
            .map_or("", |s| s.name.as_str())
    }
}

/// One command on one connection.
enum Command<'a> {
    /// `mg <key> v c`
    Get,
    /// `ms <key> <len> <flags>`
    Set {
        value: &'a [u8],
        flags: [&'a str; 2],
    },
    /// `md <key>`
    Delete,
    /// `version`
    Version,
    /// `flush_all`
    FlushAll,
    /// `ma <key> N<ttl> v`: the yardstick of the throughput bench.
    Increment { vivify: &'a str },
}

impl Command<'_> {
    /// Whether sending it twice does no harm, so that it may be retried on a fresh
    /// connection when a reused one turns out to be closed.
    fn idempotent(&self) -> bool {
        !matches!(self, Command::Set { .. } | Command::Increment { .. })
    }
}

enum Reply {
    Value(Option<async_memcached::MetaValue>),
    Written(bool),
    Done,
}

async fn execute(client: &mut Client, key: &str, command: &Command<'_>) -> Result<Reply, Error> {
    match command {
        Command::Get => client
            .meta_get(key, false, None, Some(&["v", "c"]))
            .await
            .map(Reply::Value),
        Command::Set { value, flags } => {
            match client.meta_set(key, *value, false, None, Some(flags)).await {
                Ok(_) => Ok(Reply::Written(true)),
                // EX: the CAS unique differs; NF: the key is gone; NS: `ME` found it present.
                Err(Error::Protocol(Status::Exists | Status::NotFound | Status::NotStored)) => {
                    Ok(Reply::Written(false))
                }
                Err(e) => Err(e),
            }
        }
        Command::Delete => match client.meta_delete(key, false, None, None).await {
            Ok(_) | Err(Error::Protocol(Status::NotFound)) => Ok(Reply::Done),
            Err(e) => Err(e),
        },
        Command::Version => client.version().await.map(|_| Reply::Done),
        Command::FlushAll => client.flush_all().await.map(|_| Reply::Done),
        Command::Increment { vivify } => client
            .meta_increment(key, false, None, Some(1), Some(&[vivify, "v"]))
            .await
            .map(|_| Reply::Done),
    }
}

/// The kind of a client error.
pub(crate) fn kind_of(error: &Error) -> StorageErrorKind {
    match error {
        Error::Connect(_) | Error::ConnectionClosed | Error::Io(_) => StorageErrorKind::Unavailable,
        Error::Protocol(_) | Error::ParseError(_) => StorageErrorKind::Protocol,
    }
}

/// The `T` flag that keeps a value at least `ttl`, from the system clock's `now`.
///
/// Memcached's clock ticks in whole seconds, so `T<n>` keeps a value between n − 1 and
/// n seconds: the flag asks for the time-to-live rounded up, plus one second. Beyond 30
/// days Memcached reads the number as a Unix time, so it gets one, on the system clock
/// (the server compares it with its own). Past 2038-01-19, the largest time it
/// parses, the value is kept without expiry (`T0`), which still keeps it at least `ttl`.
pub(crate) fn expiry_flag(ttl: Duration, now: SystemTime) -> String {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .saturating_add(1);
    if secs <= MAX_RELATIVE_TTL_SECS {
        return format!("T{secs}");
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    match now.saturating_add(secs) {
        at if at <= MAX_EXPIRY => format!("T{at}"),
        _ => "T0".to_owned(),
    }
}

impl Inner {
    /// The Memcached key for `key` and the index of its server.
    fn locate(&self, key: &StorageKey) -> (String, usize) {
        let encoded = key::encode(self.options.get_key_prefix(), key.as_str());
        let server = self.ring.pick(encoded.as_bytes());
        (encoded, server)
    }

    /// Runs `command` on server `server` for `key`, within the command timeout.
    async fn run(
        &self,
        operation: &'static str,
        server: usize,
        encoded: &str,
        key: Option<&StorageKey>,
        command: Command<'_>,
    ) -> Result<Reply, StorageError> {
        let Some(server) = self.servers.get(server) else {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                operation,
                format!("no memcached server at index {server}"),
            ));
        };
        let timeout = self.options.get_command_timeout();
        let deadline = Instant::now() + timeout;
        let fail = |kind: StorageErrorKind, message: String| {
            let error = StorageError::new(
                kind,
                operation,
                format!("memcached server {}: {message}", server.name),
            );
            match key {
                Some(key) => error.with_key(key.as_str()),
                None => error,
            }
        };
        let mut retried = false;
        // Stale connections skipped; bounded, though the deadline bounds the loop too.
        let mut skipped = 0u32;
        loop {
            let mut conn = self
                .checkout(server, deadline)
                .await
                .map_err(|(kind, message)| fail(kind, message))?;
            if conn.generation < server.shared.generation()
                && skipped <= self.options.get_pool_size()
            {
                // Dropped as broken (see `Manager::has_broken`), so never reused.
                skipped += 1;
                continue;
            }
            let reused = conn.used;
            match tokio::time::timeout_at(deadline, execute(&mut conn.client, encoded, &command))
                .await
            {
                // Cancelling the command closed the connection; the pool drops it.
                Err(_) => {
                    tracing::warn!(
                        db.system.name = "memcached",
                        db.operation.name = operation,
                        server.address = %server.shared.at.address,
                        server.port = server.shared.at.port,
                        limiter.key.digest = key.map(|k| tracing::field::display(key_digest(k.as_str()))),
                        limiter.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        error.type = StorageErrorKind::Timeout.as_str(),
                        "memcached command timed out"
                    );
                    return Err(fail(
                        StorageErrorKind::Timeout,
                        format!("no reply within the command timeout ({timeout:?})"),
                    ));
                }
                Ok(Ok(reply)) => {
                    conn.used = true;
                    return Ok(reply);
                }
                Ok(Err(e)) => {
                    let broken = matches!(e, Error::Io(_) | Error::ConnectionClosed);
                    if broken {
                        // The server closed this connection, perhaps by restarting: every
                        // connection opened as long ago is suspect.
                        server.shared.retire_up_to(conn.generation);
                        if reused && !retried && command.idempotent() {
                            tracing::info!(
                                db.system.name = "memcached",
                                db.operation.name = operation,
                                server.address = %server.shared.at.address,
                                server.port = server.shared.at.port,
                                error.type = kind_of(&e).as_str(),
                                error.message = %e,
                                "memcached connection closed under a command; retrying it once on a fresh connection"
                            );
                            retried = true;
                            continue;
                        }
                    }
                    let message = e.to_string();
                    return Err(fail(kind_of(&e), message).with_source(e));
                }
            }
        }
    }

    /// A connection to `server`, by `deadline`; or the kind and text of the failure.
    async fn checkout<'a>(
        &self,
        server: &'a Server,
        deadline: Instant,
    ) -> Result<PooledConnection<'a, Manager>, (StorageErrorKind, String)> {
        let connect_timeout = self.options.get_connect_timeout();
        let cannot_connect = |shared: &Shared| {
            let cause = shared
                .last_connect_error()
                .unwrap_or_else(|| "no error reported".to_owned());
            (
                StorageErrorKind::Unavailable,
                format!("cannot connect ({cause})"),
            )
        };
        // Made before asking the pool, so that no failure in between is missed.
        let connect_failed = server.shared.connect_failed();
        // A server whose last connection attempt failed is not waited for: an idle
        // connection is taken if there is one, and otherwise the call fails at once
        // (the pool keeps trying to connect in the background, and the first success
        // ends this).
        let known_down = server.shared.is_down();
        let fail_now = async move {
            if !known_down {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            got = server.pool.get() => match got {
                Ok(conn) => Ok(conn),
                Err(RunError::User(e)) => Err((kind_of(&e), e.to_string())),
                Err(RunError::TimedOut) => {
                    let state = server.pool.state();
                    if state.connections >= self.options.get_pool_size() && state.idle_connections == 0 {
                        pool_exhausted(server, state.connections, state.idle_connections);
                        Err((
                            StorageErrorKind::Timeout,
                            format!(
                                "all {} connections stayed busy for {:?}",
                                state.connections,
                                connect_timeout.max(self.options.get_command_timeout()),
                            ),
                        ))
                    } else {
                        Err(cannot_connect(&server.shared))
                    }
                }
            },
            () = fail_now => Err(cannot_connect(&server.shared)),
            () = connect_failed => Err(cannot_connect(&server.shared)),
            () = tokio::time::sleep_until(deadline) => {
                let state = server.pool.state();
                pool_exhausted(server, state.connections, state.idle_connections);
                Err((
                    StorageErrorKind::Timeout,
                    format!(
                        "no connection within the command timeout ({:?}); {} of {} open, {} idle",
                        self.options.get_command_timeout(),
                        state.connections,
                        self.options.get_pool_size(),
                        state.idle_connections,
                    ),
                ))
            }
        }
    }

    /// Runs `command` on every server at once; the first error, if any.
    async fn on_every_server(
        &self,
        operation: &'static str,
        command: fn() -> Command<'static>,
    ) -> Result<(), StorageError> {
        let runs = (0..self.servers.len()).map(|i| self.run(operation, i, "", None, command()));
        for result in futures::future::join_all(runs).await {
            result?;
        }
        Ok(())
    }
}

/// Reports a server whose pool had no connection to give in time: a `WARN` event.
fn pool_exhausted(server: &Server, open: u32, idle: u32) {
    tracing::warn!(
        db.system.name = "memcached",
        server.address = %server.shared.at.address,
        server.port = server.shared.at.port,
        db.client.connection.count = open,
        limiter.memcached.idle_connections = idle,
        error.type = StorageErrorKind::Timeout.as_str(),
        "memcached connection pool exhausted: no connection free in time"
    );
}

fn unexpected(operation: &'static str, key: &StorageKey, message: &str) -> StorageError {
    StorageError::new(StorageErrorKind::Protocol, operation, message).with_key(key.as_str())
}

#[async_trait]
impl Storage for MemcachedStorage {
    /// `mg <key> v c`: the value, and its CAS unique as the version.
    async fn get(
        &self,
        key: &StorageKey,
        _now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        let (encoded, server) = self.inner.locate(key);
        let reply = self
            .inner
            .run("get", server, &encoded, Some(key), Command::Get)
            .await?;
        let Reply::Value(value) = reply else {
            return Err(unexpected("get", key, "reply of another command"));
        };
        let Some(value) = value else {
            return Ok(None);
        };
        match value.cas {
            Some(cas) if cas != 0 => Ok(Some(Versioned {
                value: value.data.unwrap_or_default(),
                version: Version(cas),
            })),
            // A server started with `-C` has no CAS uniques, and without them nothing
            // here is safe.
            _ => Err(unexpected(
                "get",
                key,
                "the server returned no CAS unique (is CAS disabled with -C?)",
            )),
        }
    }

    /// `ms <key> <len> T<ttl> C<version>`, or `ms <key> <len> T<ttl> ME` (add) when the
    /// key must be absent.
    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        _now: Timestamp,
    ) -> Result<bool, StorageError> {
        let (encoded, server) = self.inner.locate(key);
        let expiry = expiry_flag(ttl, SystemTime::now());
        let mode = match expected {
            // CAS uniques start at 1: no value carries 0.
            Some(Version(0)) => return Ok(false),
            Some(Version(cas)) => format!("C{cas}"),
            None => "ME".to_owned(),
        };
        let command = Command::Set {
            value,
            flags: [&expiry, &mode],
        };
        match self
            .inner
            .run("compare_and_set", server, &encoded, Some(key), command)
            .await?
        {
            Reply::Written(written) => Ok(written),
            _ => Err(unexpected(
                "compare_and_set",
                key,
                "reply of another command",
            )),
        }
    }

    /// `md <key>`.
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let (encoded, server) = self.inner.locate(key);
        self.inner
            .run("delete", server, &encoded, Some(key), Command::Delete)
            .await
            .map(|_| ())
    }

    /// `version` on every server.
    async fn check(&self) -> Result<(), StorageError> {
        self.inner
            .on_every_server("check", || Command::Version)
            .await
    }

    /// [`ClearAll`] when the URI says `flush_on_clear=true` (Memcached cannot list the
    /// keys of one application, and a flush removes everyone's), keys that the
    /// servers expire in real time, up to two seconds late (their clocks count whole
    /// seconds), and [`Sleep`] on Tokio's timer, so that the compare-and-set loop
    /// backs off in real time, within the command timeout.
    fn abilities(&self) -> Abilities<'_> {
        let abilities = Abilities::new()
            .expiry(Expiry::RealTime {
                late: Duration::from_secs(2),
            })
            .sleep(self);
        if self.inner.options.get_flush_on_clear() {
            abilities.clear_all(self)
        } else {
            abilities
        }
    }
}

impl Sleep for MemcachedStorage {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// The command timeout: the longest one call is meant to take.
    fn budget(&self) -> Duration {
        self.inner.options.get_command_timeout()
    }
}

#[async_trait]
impl ClearAll for MemcachedStorage {
    /// `flush_all` on every server.
    async fn clear_all(&self) -> Result<(), StorageError> {
        self.inner
            .on_every_server("clear_all", || Command::FlushAll)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiry_rounds_up_and_adds_a_tick() {
        let now = at(1_800_000_000);
        assert_eq!(expiry_flag(Duration::ZERO, now), "T1");
        assert_eq!(expiry_flag(Duration::from_millis(1), now), "T2");
        assert_eq!(expiry_flag(Duration::from_millis(1_000), now), "T2");
        assert_eq!(expiry_flag(Duration::from_millis(1_200), now), "T3");
        assert_eq!(expiry_flag(Duration::from_secs(60), now), "T61");
    }

    #[test]
    fn expiry_beyond_thirty_days_is_a_unix_time() {
        let now = at(1_800_000_000);
        let limit = MAX_RELATIVE_TTL_SECS;
        assert_eq!(
            expiry_flag(Duration::from_secs(limit - 1), now),
            format!("T{limit}")
        );
        assert_eq!(
            expiry_flag(Duration::from_secs(limit), now),
            format!("T{}", 1_800_000_000 + limit + 1)
        );
        let year = Duration::from_secs(365 * 24 * 3600 + 1);
        assert_eq!(
            expiry_flag(year, now),
            format!("T{}", 1_800_000_000 + 365 * 24 * 3600 + 2)
        );
        // Past what Memcached parses: kept for good rather than dropped at once.
        assert_eq!(expiry_flag(Duration::from_secs(400_000_000), now), "T0");
        assert_eq!(expiry_flag(Duration::MAX, now), "T0");
    }
}
