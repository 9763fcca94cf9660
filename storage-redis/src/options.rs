//! [`RedisOptions`]: where the server is, how to reach it, and the storage's settings;
//! built with setters, parsed from a URI ([`FromStr`]) or deserialized.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::RedisError;

pub use limiter_options::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_POOL_SIZE,
};

/// The largest [`pool_size`](RedisOptions::pool_size).
pub const MAX_POOL_SIZE: u32 = 256;

/// The URI schemes of the Redis storage: `redis` and its Valkey twin `valkey`, each
/// with TLS (`rediss`, `valkeys`), a Unix socket (`+unix`), a Cluster (`+cluster`) or
/// Sentinel (`+sentinel`). Valkey speaks the Redis protocol, so both name the same
/// storage.
pub const SCHEMES: &[&str] = &[
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
];

/// How the Redis deployment is laid out.
///
/// Deserialized with a `type` field naming the variant, and nodes written as in URIs
/// (`"host:port"`, `"[::1]:7000"`), for example
/// `{"type": "cluster", "nodes": ["10.0.0.1:7000", "10.0.0.2:7000"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Topology {
    /// One server over TCP.
    Standalone {
        /// Host name or IP address.
        host: String,
        /// TCP port (6379 when not given to the deserializer).
        #[serde(default = "default_port")]
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
        #[serde(deserialize_with = "nodes")]
        nodes: Vec<(String, u16)>,
    },
    /// A primary found through Redis Sentinel, followed across failovers.
    Sentinel {
        /// Sentinel nodes as `(host, port)`.
        #[serde(deserialize_with = "sentinel_nodes")]
        nodes: Vec<(String, u16)>,
        /// The name of the monitored primary (the service name).
        service: String,
    },
}

fn default_port() -> u16 {
    6379
}

fn nodes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, u16)>, D::Error> {
    nodes_with_port(d, 6379)
}

fn sentinel_nodes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, u16)>, D::Error> {
    nodes_with_port(d, 26379)
}

fn nodes_with_port<'de, D: serde::Deserializer<'de>>(
    d: D,
    port: u16,
) -> Result<Vec<(String, u16)>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|node| limiter_options::host_port(node, port).map_err(serde::de::Error::custom))
        .collect()
}

/// Settings of a [`RedisStorage`](crate::RedisStorage): the [`Topology`], credentials,
/// TLS, key prefix, pool size and timeouts.
///
/// Make it with [`new`](Self::new) and the setters, parse it from a URI
/// ([`str::parse`], see the [crate docs](crate#uris)), or deserialize it; then
/// [`RedisStorage::connect`](crate::RedisStorage::connect). Each setter has the
/// option's name and takes `self`; each getter is `get_` and the same name.
///
/// | option | type | default |
/// |---|---|---|
/// | `topology` | [`Topology`] | required |
/// | `tls` | `bool` | `false` (`true` for the `rediss`/`valkeys` schemes) |
/// | `tls_ca_file` | path | none: the system's roots |
/// | `username`, `password` | text | none |
/// | `database` | `u8` | none (database 0) |
/// | `key_prefix` | text | [`DEFAULT_KEY_PREFIX`] (`limiter:`) |
/// | `pool_size` | `u32`, 1 to [`MAX_POOL_SIZE`] | [`DEFAULT_POOL_SIZE`] (8) |
/// | `connect_timeout` | [`Duration`] | [`DEFAULT_CONNECT_TIMEOUT`] (2 s) |
/// | `command_timeout` | [`Duration`] | [`DEFAULT_COMMAND_TIMEOUT`] (500 ms) |
///
/// The key prefix is part of the [key layout](crate#key-layout): storages with
/// different prefixes do not see each other's counts, so changing it starts every
/// limit afresh.
///
/// Deserialized with the same names (durations as text such as `"500ms"` or `"2s"`);
/// an unknown field is an error.
///
/// # Examples
///
/// ```
/// use limiter_redis::{RedisOptions, Topology};
/// use std::time::Duration;
///
/// let options: RedisOptions =
///     "redis://app:secret@127.0.0.1:6379/2?key_prefix=rl:&command_timeout=250ms".parse()?;
/// assert_eq!(options.get_topology(), &Topology::Standalone { host: "127.0.0.1".into(), port: 6379 });
/// assert_eq!(options.get_database(), Some(2));
/// assert_eq!(options.get_key_prefix(), "rl:");
/// assert_eq!(options.get_command_timeout(), Duration::from_millis(250));
///
/// let same = RedisOptions::new(Topology::Standalone { host: "127.0.0.1".into(), port: 6379 })
///     .username("app")
///     .password("secret")
///     .database(2)
///     .key_prefix("rl:")
///     .command_timeout(Duration::from_millis(250));
/// assert_eq!(options, same);
///
/// let from_file: RedisOptions = serde_json::from_str(
///     r#"{"topology": {"type": "standalone", "host": "127.0.0.1"},
///         "username": "app", "password": "secret", "database": 2,
///         "key_prefix": "rl:", "command_timeout": "250ms"}"#,
/// )?;
/// assert_eq!(from_file, same);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct RedisOptions {
    topology: Topology,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    database: Option<u8>,
    #[serde(default = "default_key_prefix")]
    key_prefix: String,
    #[serde(default = "default_pool_size")]
    pool_size: u32,
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "limiter_options::deserialize_duration"
    )]
    connect_timeout: Duration,
    #[serde(
        default = "default_command_timeout",
        deserialize_with = "limiter_options::deserialize_duration"
    )]
    command_timeout: Duration,
}

fn default_key_prefix() -> String {
    DEFAULT_KEY_PREFIX.to_owned()
}

fn default_pool_size() -> u32 {
    DEFAULT_POOL_SIZE
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

fn default_command_timeout() -> Duration {
    DEFAULT_COMMAND_TIMEOUT
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
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

impl FromStr for RedisOptions {
    type Err = RedisError;

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
    /// use limiter_redis::{RedisError, RedisOptions, Topology};
    ///
    /// let cluster: RedisOptions = "rediss+cluster://10.0.0.1:7000,10.0.0.2:7001".parse()?;
    /// assert_eq!(
    ///     cluster.get_topology(),
    ///     &Topology::Cluster { nodes: vec![("10.0.0.1".into(), 7000), ("10.0.0.2".into(), 7001)] },
    /// );
    /// assert!(cluster.get_tls());
    /// let err = "redis://127.0.0.1?pool=3".parse::<RedisOptions>().unwrap_err();
    /// assert!(matches!(err, RedisError::InvalidOption { ref name, .. } if name == "pool"));
    /// # Ok::<(), RedisError>(())
    /// ```
    fn from_str(uri: &str) -> Result<RedisOptions, RedisError> {
        crate::uri::parse(uri)
    }
}

impl RedisOptions {
    /// Settings for `topology`, every other option at its default (see the
    /// [table](Self)).
    pub fn new(topology: Topology) -> RedisOptions {
        RedisOptions {
            topology,
            tls: false,
            tls_ca_file: None,
            username: None,
            password: None,
            database: None,
            key_prefix: default_key_prefix(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Where the servers are. Set by [`new`](Self::new).
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Uses TLS (as the `rediss` and `valkeys` schemes do), also on a Cluster or
    /// Sentinel. Default: `false`. Needs the crate's `tls` feature to connect; a Unix
    /// socket does not use TLS.
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

    /// The user to authenticate as (Redis 6 ACL users); needs a
    /// [`password`](Self::password). Default: none (the default user).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Authenticates with `password`, as the [`username`](Self::username) when one is
    /// set. Default: no authentication.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Selects database `database` (standalone, Unix socket and Sentinel only; a
    /// Cluster has only database 0). Default: none, database 0.
    pub fn database(mut self, database: u8) -> Self {
        self.database = Some(database);
        self
    }

    /// The prefix of every key this storage writes, and the scope of
    /// [`clear_all`](limiter_core::storage::ClearAll::clear_all). It may not contain `{` or `}`
    /// (they would move the Cluster hash tag). Default: [`DEFAULT_KEY_PREFIX`]
    /// (`limiter:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Connections in the pool, all opened when connecting; commands are pipelined on
    /// each, so a few suffice. 1 to [`MAX_POOL_SIZE`]. Default: [`DEFAULT_POOL_SIZE`].
    pub fn pool_size(mut self, size: u32) -> Self {
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
    pub fn get_topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether TLS is on.
    pub fn get_tls(&self) -> bool {
        self.tls
    }

    /// The CA file trusted for TLS, if any.
    pub fn get_tls_ca_file(&self) -> Option<&Path> {
        self.tls_ca_file.as_deref()
    }

    /// The user name, if any.
    pub fn get_username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if any.
    pub fn get_password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database, if one was chosen.
    pub fn get_database(&self) -> Option<u8> {
        self.database
    }

    /// The key prefix.
    pub fn get_key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The pool size.
    pub fn get_pool_size(&self) -> u32 {
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
    pub(crate) fn target(&self) -> String {
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
        if self.username.is_some() && self.password.is_none() {
            return Err(invalid("username", "a user name needs a password"));
        }
        match &self.topology {
            Topology::Cluster { nodes } | Topology::Sentinel { nodes, .. } if nodes.is_empty() => {
                Err(invalid("topology", "needs at least one node"))
            }
            Topology::Cluster { .. } if self.database.is_some_and(|db| db != 0) => {
                Err(invalid("database", "a Redis Cluster has only database 0"))
            }
            Topology::Sentinel { service, .. } if service.is_empty() => {
                Err(invalid("topology", "sentinel needs a service name"))
            }
            Topology::Unix { .. } if self.tls => {
                Err(invalid("tls", "a unix socket does not use TLS"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_every_topology_and_rejects_unknown_fields() {
        let options: RedisOptions = serde_json::from_str(
            r#"{"topology": {"type": "sentinel", "nodes": ["s1", "[::1]:26380"], "service": "main"},
                "tls": true, "pool_size": 4, "connect_timeout": "1s"}"#,
        )
        .expect("options");
        assert_eq!(
            options.get_topology(),
            &Topology::Sentinel {
                nodes: vec![("s1".into(), 26379), ("::1".into(), 26380)],
                service: "main".into()
            }
        );
        assert!(options.get_tls());
        assert_eq!(options.get_pool_size(), 4);
        assert_eq!(options.get_connect_timeout(), Duration::from_secs(1));
        assert_eq!(options.get_command_timeout(), DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(options.get_key_prefix(), DEFAULT_KEY_PREFIX);

        let unix: RedisOptions =
            serde_json::from_str(r#"{"topology": {"type": "unix", "path": "/run/r.sock"}}"#)
                .expect("options");
        assert_eq!(
            unix,
            RedisOptions::new(Topology::Unix {
                path: "/run/r.sock".into()
            })
        );
        let cluster: RedisOptions =
            serde_json::from_str(r#"{"topology": {"type": "cluster", "nodes": ["h:7000"]}}"#)
                .expect("options");
        assert_eq!(
            cluster.get_topology(),
            &Topology::Cluster {
                nodes: vec![("h".into(), 7000)]
            }
        );

        for (bad, part) in [
            (
                r#"{"topology": {"type": "standalone", "host": "h"}, "colour": 1}"#,
                "colour",
            ),
            (
                r#"{"topology": {"type": "standalone", "host": "h", "db": 1}}"#,
                "db",
            ),
            (
                r#"{"topology": {"type": "standalone", "host": "h"}, "command_timeout": 5}"#,
                "string",
            ),
            (
                r#"{"topology": {"type": "standalone", "host": "h"}, "command_timeout": "5"}"#,
                "duration",
            ),
            (
                r#"{"topology": {"type": "cluster", "nodes": ["::1"]}}"#,
                "brackets",
            ),
            (r#"{"topology": {"type": "ring", "host": "h"}}"#, "ring"),
            (r#"{"pool_size": 2}"#, "topology"),
        ] {
            let e = serde_json::from_str::<RedisOptions>(bad)
                .expect_err(bad)
                .to_string();
            assert!(e.contains(part), "{bad}: {e}");
        }
    }
}
