//! [`RedisConfig`]: where the server is, how to reach it, and the storage's settings;
//! built with setters or parsed from a URI.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::RedisError;

/// The default [`key_prefix`](RedisConfig::key_prefix).
pub const DEFAULT_KEY_PREFIX: &str = "limiter:";
/// The default [`pool_size`](RedisConfig::pool_size).
pub const DEFAULT_POOL_SIZE: usize = 2;
/// The default [`connect_timeout`](RedisConfig::connect_timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default [`command_timeout`](RedisConfig::command_timeout).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The largest [`pool_size`](RedisConfig::pool_size).
pub const MAX_POOL_SIZE: usize = 256;

/// How the Redis deployment is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One server over TCP.
    Standalone {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// One server over a Unix domain socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
    },
    /// A Redis Cluster; one reachable node is enough, the others are discovered.
    Cluster {
        /// Seed nodes as `(host, port)`.
        nodes: Vec<(String, u16)>,
    },
    /// A primary found through Redis Sentinel, followed across failovers.
    Sentinel {
        /// Sentinel nodes as `(host, port)`.
        nodes: Vec<(String, u16)>,
        /// The name of the monitored primary (the service name).
        service: String,
    },
}

/// Settings of a [`RedisStorage`](crate::RedisStorage): the [`Topology`], credentials,
/// TLS, key prefix, pool size and timeouts.
///
/// Build it from a URI with [`from_uri`](Self::from_uri), or with
/// [`new`](Self::new) and the setters, then
/// [`connect`](crate::RedisStorage::connect).
///
/// # Examples
///
/// ```
/// use limiter_redis::{RedisConfig, Topology};
/// use std::time::Duration;
///
/// let config = RedisConfig::from_uri(
///     "redis://app:secret@127.0.0.1:6379/2?key_prefix=rl:&command_timeout=250ms",
/// )?;
/// assert_eq!(config.topology(), &Topology::Standalone { host: "127.0.0.1".into(), port: 6379 });
/// assert_eq!(config.database(), Some(2));
/// assert_eq!(config.get_key_prefix(), "rl:");
/// assert_eq!(config.get_command_timeout(), Duration::from_millis(250));
///
/// let same = RedisConfig::new(Topology::Standalone { host: "127.0.0.1".into(), port: 6379 })
///     .credentials(Some("app"), "secret")
///     .db(2)
///     .key_prefix("rl:")
///     .command_timeout(Duration::from_millis(250));
/// assert_eq!(config, same);
/// # Ok::<(), limiter_redis::RedisError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct RedisConfig {
    topology: Topology,
    tls: bool,
    tls_ca_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    database: Option<u8>,
    key_prefix: String,
    pool_size: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("topology", &self.topology)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl RedisConfig {
    /// Settings for `topology`, every other setting at its default: no TLS, no
    /// credentials, database 0, key prefix [`DEFAULT_KEY_PREFIX`], pool size
    /// [`DEFAULT_POOL_SIZE`], timeouts [`DEFAULT_CONNECT_TIMEOUT`] and
    /// [`DEFAULT_COMMAND_TIMEOUT`].
    pub fn new(topology: Topology) -> RedisConfig {
        RedisConfig {
            topology,
            tls: false,
            tls_ca_file: None,
            username: None,
            password: None,
            database: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Parses a Redis URI. See the [crate docs](crate#uris) for the forms and options.
    ///
    /// # Errors
    ///
    /// [`RedisError::MalformedUri`] for a URI of no known form, and
    /// [`RedisError::InvalidOption`] for an unknown, repeated or invalid option.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiter_redis::{RedisConfig, RedisError, Topology};
    ///
    /// let cluster = RedisConfig::from_uri("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")?;
    /// assert_eq!(
    ///     cluster.topology(),
    ///     &Topology::Cluster { nodes: vec![("10.0.0.1".into(), 7000), ("10.0.0.2".into(), 7001)] },
    /// );
    /// let err = RedisConfig::from_uri("redis://127.0.0.1?pool=3").unwrap_err();
    /// assert!(matches!(err, RedisError::InvalidOption { ref name, .. } if name == "pool"));
    /// # Ok::<(), RedisError>(())
    /// ```
    pub fn from_uri(uri: &str) -> Result<RedisConfig, RedisError> {
        crate::uri::parse(uri)
    }

    /// Uses TLS (`rediss://`). Default: off. Needs the crate's `tls` feature to connect.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Trusts the PEM certificates in `path` as TLS roots, instead of the system's
    /// (for servers with a private CA). Default: none. Implies [`tls`](Self::tls).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls = true;
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Authenticates with `password`, as `username` when given (Redis 6 ACL users).
    /// Default: no authentication.
    pub fn credentials(mut self, username: Option<&str>, password: &str) -> Self {
        self.username = username.map(str::to_owned);
        self.password = Some(password.to_owned());
        self
    }

    /// Selects database `db` (standalone, Unix socket and Sentinel only; a Cluster has
    /// only database 0). Default: 0.
    pub fn db(mut self, db: u8) -> Self {
        self.database = Some(db);
        self
    }

    /// The prefix of every key this storage writes, and the scope of
    /// [`clear_all`](limiter_core::Storage::clear_all). It may not contain `{` or `}`
    /// (they would move the Cluster hash tag). Default: [`DEFAULT_KEY_PREFIX`]
    /// (`limiter:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Connections in the pool; commands are pipelined on each, so a few suffice.
    /// 1 to [`MAX_POOL_SIZE`]. Default: [`DEFAULT_POOL_SIZE`].
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long connecting may take, at start and on reconnects. Default:
    /// [`DEFAULT_CONNECT_TIMEOUT`] (2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long any one storage call may take before it fails with
    /// [`StorageErrorKind::Timeout`](limiter_core::StorageErrorKind::Timeout), also
    /// while the server is down or being reconnected. Default:
    /// [`DEFAULT_COMMAND_TIMEOUT`] (500 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The CA file trusted for TLS, if any.
    pub fn get_tls_ca_file(&self) -> Option<&std::path::Path> {
        self.tls_ca_file.as_deref()
    }

    /// The user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether a password is set.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The password, for the client's configuration.
    pub(crate) fn password_owned(&self) -> Option<String> {
        self.password.clone()
    }

    /// The database, if one was chosen.
    pub fn database(&self) -> Option<u8> {
        self.database
    }

    /// The key prefix.
    pub fn get_key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The pool size.
    pub fn get_pool_size(&self) -> usize {
        self.pool_size
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The command timeout.
    pub fn get_command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// A short description of where the storage connects, for messages (no password).
    pub fn target(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let list = |nodes: &[(String, u16)]| {
            nodes
                .iter()
                .map(|(h, p)| format_host(h, *p))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.topology {
            Topology::Standalone { host, port } => {
                format!("{scheme}://{}", format_host(host, *port))
            }
            Topology::Unix { path } => format!("redis+unix://{}", path.display()),
            Topology::Cluster { nodes } => format!("{scheme} cluster {}", list(nodes)),
            Topology::Sentinel { nodes, service } => {
                format!("{scheme} sentinel {} service {service:?}", list(nodes))
            }
        }
    }

    /// Checks the settings that setters cannot check.
    pub(crate) fn validate(&self) -> Result<(), RedisError> {
        let invalid = |name, reason: &str| RedisError::InvalidSetting {
            name,
            reason: reason.to_owned(),
        };
        if self.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "key_prefix",
                "may not contain '{' or '}', which would move the Cluster hash tag",
            ));
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(invalid("pool_size", "must be from 1 to 256"));
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(invalid("timeout", "timeouts must be above zero"));
        }
        match &self.topology {
            Topology::Cluster { nodes } | Topology::Sentinel { nodes, .. } if nodes.is_empty() => {
                Err(invalid("topology", "needs at least one node"))
            }
            Topology::Cluster { .. } if self.database.is_some_and(|db| db != 0) => {
                Err(invalid("db", "a Redis Cluster has only database 0"))
            }
            Topology::Sentinel { service, .. } if service.is_empty() => {
                Err(invalid("topology", "sentinel needs a service name"))
            }
            _ => Ok(()),
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn format_host(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
