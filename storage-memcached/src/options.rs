//! [`MemcachedOptions`]: the servers and the storage's settings; built with setters,
//! parsed from a `memcached://` URI ([`FromStr`]) or deserialized.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

pub use limiter_options::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_POOL_SIZE,
};

/// The URI schemes of the Memcached storage.
pub const SCHEMES: &[&str] = &["memcached"];
/// The port a server listed without one listens on.
pub const DEFAULT_PORT: u16 = 11211;
/// The largest [`pool_size`](MemcachedOptions::pool_size).
pub const MAX_POOL_SIZE: u32 = 1_024;
/// The longest timeout accepted: 10 minutes.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest `key_prefix`, so that a digested key still has room for its readable
/// part (see [`crate::key`]).
pub(crate) const MAX_PREFIX_LEN: usize = 64;
/// The options a `memcached://` URI takes.
const KNOWN: &str = "key_prefix, pool_size, connect_timeout, command_timeout, flush_on_clear, tls";
/// Why an IPv6 server is refused.
const NO_IPV6: &str = "IPv6 addresses are not supported: the Memcached client \
    (async-memcached 0.9) opens IPv4 sockets only; use a host name or an IPv4 address";
/// Why TLS is refused.
const NO_TLS: &str = "TLS is not supported: the Memcached client (async-memcached 0.9) \
    has no TLS; reach the servers over a trusted network or a TLS tunnel";

/// A `memcached://` URI that could not be read, or options that cannot work.
///
/// Every URI variant carries the URI as given and names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemcachedOptionsError {
    /// The URI does not start with `memcached://`.
    #[error("not a memcached uri {uri:?}: expected memcached://host:port[,host:port…][?options] or memcached:///path/to/socket")]
    Scheme {
        /// The URI as given.
        uri: String,
    },
    /// The URI names no server.
    #[error("no memcached server in {uri:?}: expected memcached://host:port or memcached:///path/to/socket")]
    NoServers {
        /// The URI as given.
        uri: String,
    },
    /// One entry of the server list is not `host`, `host:port` or `/path`.
    #[error("invalid memcached server {server:?} in {uri:?}: {reason}")]
    InvalidServer {
        /// The entry as given.
        server: String,
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query option is unknown, given more than once, or has an invalid value.
    #[error("invalid option {name:?} in memcached uri {uri:?}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: String,
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option set with a setter or deserialized is not valid.
    #[error("invalid memcached storage setting {name}: {reason}")]
    InvalidSetting {
        /// The option.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// One Memcached server: where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// A TCP server: a host name or IPv4 address, and a port.
    Tcp {
        /// The host, as written in the URI.
        host: String,
        /// The port.
        port: u16,
    },
    /// A server on a Unix socket at this path.
    Unix {
        /// The socket's path.
        path: String,
    },
}

impl ServerAddr {
    /// The name the server goes by in error messages and in key placement: `host:port`
    /// or the socket's path. Every client sharing a set of servers must name them alike
    /// (see the [crate docs](crate#several-servers)).
    pub fn name(&self) -> String {
        match self {
            ServerAddr::Tcp { host, port } => format!("{host}:{port}"),
            ServerAddr::Unix { path } => path.clone(),
        }
    }

    /// Where the server is, for `tracing` events.
    pub(crate) fn at(&self) -> crate::manager::Where {
        match self {
            ServerAddr::Tcp { host, port } => crate::manager::Where {
                address: host.clone(),
                port: Some(*port),
            },
            ServerAddr::Unix { path } => crate::manager::Where {
                address: path.clone(),
                port: None,
            },
        }
    }

    /// The address as the Memcached client takes it: `tcp://host:port` or
    /// `unix:///path`.
    pub(crate) fn dsn(&self) -> String {
        match self {
            ServerAddr::Tcp { host, port } => format!("tcp://{host}:{port}"),
            ServerAddr::Unix { path } => format!("unix://{path}"),
        }
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for ServerAddr {
    type Err = String;

    /// One server as a URI lists it: `host`, `host:port` or `/path/to/socket`.
    fn from_str(entry: &str) -> Result<ServerAddr, String> {
        parse_server(entry)
    }
}

/// Where the servers are and how to talk to them.
///
/// Make it with [`new`](Self::new) and the setters, parse it from a `memcached://`
/// URI ([`str::parse`]), or deserialize it; then
/// [`MemcachedStorage::connect`](crate::MemcachedStorage::connect). Each setter has
/// the option's name and takes `self`; each getter is `get_` and the same name.
///
/// # URI
///
/// ```text
/// memcached://host:port[,host:port…][?option=value&…]
/// memcached:///path/to/memcached.sock[?option=value&…]
/// ```
///
/// Servers are separated by commas; each is `host:port`, `host` (port 11211) or an
/// absolute socket path. Hosts are names or IPv4 addresses, read with the `url` crate:
/// the client connects over IPv4 only, so an IPv6 literal (`[::1]:11211`) is an error
/// that says so. Options, which share their name, type and default with the other
/// storages (`limiter_options`) where they mean the same:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `key_prefix` | put in front of every stored key (printable ASCII without `#`, `%`, `&`, `=` or `?`; at most 64 bytes) | [`DEFAULT_KEY_PREFIX`] (`limiter:`) |
/// | `pool_size` | connections per server, 1 to [`MAX_POOL_SIZE`], opened on demand | [`DEFAULT_POOL_SIZE`] (8) |
/// | `connect_timeout` | longest wait for a new connection, such as `250ms` or `2s` | [`DEFAULT_CONNECT_TIMEOUT`] (`2s`) |
/// | `command_timeout` | longest a whole storage call may take, connection included | [`DEFAULT_COMMAND_TIMEOUT`] (`500ms`) |
/// | `flush_on_clear` | `true` lets [`clear_all`](limiter_core::storage::ClearAll::clear_all) run `flush_all` on every server | `false` |
/// | `tls` | only `false`: the client has no TLS, so `true` is an error that says so | `false` |
///
/// Durations are whole numbers of milliseconds (`ms`), seconds (`s`) or minutes (`m`),
/// as for every storage, from 1 ms to 10 minutes. Values are percent-decoded. An
/// unknown option, an option given twice, or a bad value is a
/// [`MemcachedOptionsError::InvalidOption`] naming it.
///
/// The key prefix is part of every stored key (see the [crate docs](crate#keys)):
/// storages with different prefixes do not see each other's counts, so changing it
/// starts every limit afresh. (Before this options type the default was empty.)
///
/// Deserialized with the same names, servers as they are written in URIs and
/// durations as text (`"500ms"`); an unknown field is an error.
///
/// # Examples
///
/// ```
/// use limiter_memcached::{MemcachedOptions, ServerAddr};
/// use std::time::Duration;
///
/// let options: MemcachedOptions =
///     "memcached://10.0.0.1:11211,10.0.0.2?pool_size=32&command_timeout=250ms".parse()?;
/// assert_eq!(options.get_servers()[1].name(), "10.0.0.2:11211");
/// assert_eq!(options.get_pool_size(), 32);
/// assert_eq!(options.get_command_timeout(), Duration::from_millis(250));
///
/// let same = MemcachedOptions::new(["10.0.0.1:11211".parse()?, "10.0.0.2".parse()?])
///     .pool_size(32)
///     .command_timeout(Duration::from_millis(250));
/// assert_eq!(options, same);
///
/// let from_file: MemcachedOptions = serde_json::from_str(
///     r#"{"servers": ["10.0.0.1:11211", "10.0.0.2"], "pool_size": 32, "command_timeout": "250ms"}"#,
/// )?;
/// assert_eq!(from_file, same);
///
/// let err = "memcached://h?pool_size=0".parse::<MemcachedOptions>().unwrap_err();
/// assert!(err.to_string().contains("pool_size"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct MemcachedOptions {
    #[serde(deserialize_with = "servers")]
    servers: Vec<ServerAddr>,
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
    #[serde(default)]
    flush_on_clear: bool,
    #[serde(default)]
    tls: bool,
}

fn servers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ServerAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|entry| {
            parse_server(entry)
                .map_err(|reason| serde::de::Error::custom(format!("server {entry:?}: {reason}")))
        })
        .collect()
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

impl MemcachedOptions {
    /// Options for `servers`, every other option at its default (see the
    /// [table](Self#uri)).
    pub fn new(servers: impl IntoIterator<Item = ServerAddr>) -> MemcachedOptions {
        MemcachedOptions {
            servers: servers.into_iter().collect(),
            key_prefix: default_key_prefix(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            flush_on_clear: false,
            tls: false,
        }
    }

    /// The servers, at least one, each listed once. Set by [`new`](Self::new).
    pub fn servers(mut self, servers: impl IntoIterator<Item = ServerAddr>) -> Self {
        self.servers = servers.into_iter().collect();
        self
    }

    /// What every stored key starts with: printable ASCII without `#`, `%`, `&`, `=`
    /// or `?`, at most 64 bytes. Default: [`DEFAULT_KEY_PREFIX`] (`limiter:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Connections per server, opened on demand, 1 to [`MAX_POOL_SIZE`]. Each carries
    /// one command at a time, so this bounds the concurrent calls per server. Default:
    /// [`DEFAULT_POOL_SIZE`] (8).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// The longest wait for a new connection, 1 ms to 10 minutes. Default:
    /// [`DEFAULT_CONNECT_TIMEOUT`] (2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest a whole storage call may take, waiting for a connection included,
    /// 1 ms to 10 minutes. Default: [`DEFAULT_COMMAND_TIMEOUT`] (500 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Lets [`clear_all`](limiter_core::storage::ClearAll::clear_all) flush every server.
    /// Default: `false`.
    pub fn flush_on_clear(mut self, on: bool) -> Self {
        self.flush_on_clear = on;
        self
    }

    /// TLS, which the Memcached client does not support: `true` makes
    /// [`connect`](crate::MemcachedStorage::connect) fail with a message saying so.
    /// Default: `false`.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The servers, in the order given.
    pub fn get_servers(&self) -> &[ServerAddr] {
        &self.servers
    }

    /// The key prefix.
    pub fn get_key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Connections per server.
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

    /// Whether [`clear_all`](limiter_core::storage::ClearAll::clear_all) may flush every server.
    pub fn get_flush_on_clear(&self) -> bool {
        self.flush_on_clear
    }

    /// Whether TLS was asked for.
    pub fn get_tls(&self) -> bool {
        self.tls
    }

    /// The servers' names (`host:port` or socket path), in order.
    pub(crate) fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(ServerAddr::name).collect()
    }

    /// Checks what setters and the deserializer cannot.
    pub(crate) fn validate(&self) -> Result<(), MemcachedOptionsError> {
        let invalid = |name, reason: String| MemcachedOptionsError::InvalidSetting { name, reason };
        if self.servers.is_empty() {
            return Err(invalid("servers", "no server given".to_owned()));
        }
        for (i, server) in self.servers.iter().enumerate() {
            if self.servers[..i].contains(server) {
                return Err(invalid(
                    "servers",
                    format!("{server} listed more than once"),
                ));
            }
            if let ServerAddr::Tcp { host, .. } = server {
                if host.contains(':') {
                    return Err(invalid("servers", format!("{server}: {NO_IPV6}")));
                }
            }
        }
        check_prefix(&self.key_prefix).map_err(|e| invalid("key_prefix", e))?;
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(invalid(
                "pool_size",
                format!(
                    "{} is out of range; expected 1 to {MAX_POOL_SIZE}",
                    self.pool_size
                ),
            ));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if d.is_zero() || d > MAX_TIMEOUT {
                return Err(invalid(
                    name,
                    format!("{d:?} is out of range; expected 1ms to 10m"),
                ));
            }
        }
        if self.tls {
            return Err(invalid("tls", NO_TLS.to_owned()));
        }
        Ok(())
    }
}

impl FromStr for MemcachedOptions {
    type Err = MemcachedOptionsError;

    /// Reads a `memcached://` URI. See the [type docs](Self#uri) for its form.
    ///
    /// # Errors
    ///
    /// A [`MemcachedOptionsError`] naming the scheme, server or option that is wrong.
    fn from_str(uri: &str) -> Result<MemcachedOptions, MemcachedOptionsError> {
        let rest = match uri.split_once("://") {
            Some((scheme, rest)) if SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => rest,
            _ => {
                return Err(MemcachedOptionsError::Scheme {
                    uri: uri.to_owned(),
                })
            }
        };
        // The list may mix hosts and socket paths, so it is read entry by entry; each
        // host by the url crate (`limiter_options::host_port`).
        let (servers_part, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut servers: Vec<ServerAddr> = Vec::new();
        for entry in servers_part.split(',') {
            let bad = |reason: String| MemcachedOptionsError::InvalidServer {
                server: entry.to_owned(),
                uri: uri.to_owned(),
                reason,
            };
            if entry.is_empty() {
                if servers_part.is_empty() {
                    break;
                }
                return Err(bad("empty entry in the server list".to_owned()));
            }
            let server = parse_server(entry).map_err(bad)?;
            if servers.contains(&server) {
                return Err(bad("listed more than once".to_owned()));
            }
            servers.push(server);
        }
        if servers.is_empty() {
            return Err(MemcachedOptionsError::NoServers {
                uri: uri.to_owned(),
            });
        }
        let mut options = MemcachedOptions::new(servers);
        let pairs =
            limiter_options::query(query).map_err(|e| MemcachedOptionsError::InvalidOption {
                name: e.name,
                uri: uri.to_owned(),
                reason: e.reason,
            })?;
        for (name, value) in pairs {
            let invalid = |reason: String| MemcachedOptionsError::InvalidOption {
                name: name.clone(),
                uri: uri.to_owned(),
                reason,
            };
            options = match name.as_str() {
                "key_prefix" => {
                    check_prefix(&value).map_err(invalid)?;
                    options.key_prefix(value)
                }
                "pool_size" => options.pool_size(parse_pool_size(&value).map_err(invalid)?),
                "connect_timeout" => {
                    options.connect_timeout(parse_duration(&value).map_err(invalid)?)
                }
                "command_timeout" => {
                    options.command_timeout(parse_duration(&value).map_err(invalid)?)
                }
                "flush_on_clear" => {
                    options.flush_on_clear(limiter_options::flag(&value).map_err(invalid)?)
                }
                "tls" => match limiter_options::flag(&value).map_err(&invalid)? {
                    true => return Err(invalid(NO_TLS.to_owned())),
                    false => options.tls(false),
                },
                _ => return Err(invalid(format!("unknown option (known: {KNOWN})"))),
            };
        }
        Ok(options)
    }
}

/// One entry of the server list.
fn parse_server(entry: &str) -> Result<ServerAddr, String> {
    if entry.starts_with('/') {
        // The client reads the path out of a `unix://` URL, which would percent-encode
        // anything outside this set; keep to characters that survive unchanged.
        let safe = |c: char| c.is_ascii_alphanumeric() || "/._-~+@=:".contains(c);
        if let Some(bad) = entry.chars().find(|c| !safe(*c)) {
            return Err(format!(
                "socket path contains {bad:?}; use letters, digits and / . _ - ~ + @ = :"
            ));
        }
        return Ok(ServerAddr::Unix {
            path: entry.to_owned(),
        });
    }
    if entry.starts_with('[') || entry.matches(':').count() > 1 {
        return Err(NO_IPV6.to_owned());
    }
    let (host, port) = limiter_options::host_port(entry, DEFAULT_PORT)?;
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "host contains {bad:?}; expected a host name or an IPv4 address"
        ));
    }
    Ok(ServerAddr::Tcp { host, port })
}

fn check_prefix(value: &str) -> Result<(), String> {
    if value.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "{} bytes long; at most {MAX_PREFIX_LEN}",
            value.len()
        ));
    }
    let allowed = |b: u8| b.is_ascii_graphic() && !b"#%&=?".contains(&b);
    if let Some(bad) = value.chars().find(|c| !u8::try_from(*c).is_ok_and(allowed)) {
        return Err(format!(
            "contains {bad:?}; use printable ASCII without spaces, '#', '%', '&', '=' or '?'"
        ));
    }
    Ok(())
}

fn parse_pool_size(value: &str) -> Result<u32, String> {
    let n = limiter_options::whole_number(value, 1, u64::from(MAX_POOL_SIZE))?;
    // At most MAX_POOL_SIZE, a u32.
    Ok(u32::try_from(n).unwrap_or(MAX_POOL_SIZE))
}

/// A duration in the grammar every storage shares (`250ms`, `2s`, `1m`), at most
/// [`MAX_TIMEOUT`].
fn parse_duration(value: &str) -> Result<Duration, String> {
    let d = limiter_options::duration(value)?;
    if d > MAX_TIMEOUT {
        return Err(format!(
            "{value} is out of range; expected at most {}s",
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(uri: &str) -> MemcachedOptions {
        uri.parse::<MemcachedOptions>()
            .unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn param_err(uri: &str) -> (String, String) {
        match uri.parse::<MemcachedOptions>() {
            Err(MemcachedOptionsError::InvalidOption { name, reason, .. }) => (name, reason),
            other => panic!("{uri}: expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn servers_ports_and_sockets() {
        let c = config("memcached://127.0.0.1:21211");
        assert_eq!(
            c.get_servers(),
            [ServerAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 21211
            }]
        );
        assert_eq!(c.get_servers()[0].dsn(), "tcp://127.0.0.1:21211");
        let c = config("MEMCACHED://a.example,b-2:1?");
        assert_eq!(c.server_names(), ["a.example:11211", "b-2:1"]);
        let c = config("memcached:///run/memcached/memcached.sock");
        assert_eq!(
            c.get_servers(),
            [ServerAddr::Unix {
                path: "/run/memcached/memcached.sock".into()
            }]
        );
        assert_eq!(
            c.get_servers()[0].dsn(),
            "unix:///run/memcached/memcached.sock"
        );
        assert_eq!(c.server_names(), ["/run/memcached/memcached.sock"]);
        let c = config("memcached://h1:1,/tmp/m.sock");
        assert_eq!(c.get_servers().len(), 2);
    }

    #[test]
    fn defaults() {
        let c = config("memcached://h");
        assert_eq!(c.get_key_prefix(), DEFAULT_KEY_PREFIX);
        assert!(!c.get_tls());
        assert_eq!(c.get_pool_size(), DEFAULT_POOL_SIZE);
        assert_eq!(c.get_connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.get_command_timeout(), DEFAULT_COMMAND_TIMEOUT);
        assert!(!c.get_flush_on_clear());
    }

    #[test]
    fn every_option() {
        let c = config(
            "memcached://h?key_prefix=app1:&pool_size=1024&connect_timeout=250ms\
             &command_timeout=2s&flush_on_clear=true",
        );
        assert_eq!(c.get_key_prefix(), "app1:");
        assert_eq!(c.get_pool_size(), 1024);
        assert_eq!(c.get_connect_timeout(), Duration::from_millis(250));
        assert_eq!(c.get_command_timeout(), Duration::from_secs(2));
        assert!(c.get_flush_on_clear());
        assert!(!config("memcached://h?flush_on_clear=false").get_flush_on_clear());
        assert_eq!(
            config("memcached://h?command_timeout=600s").get_command_timeout(),
            MAX_TIMEOUT
        );
    }

    #[test]
    fn bad_uris_name_what_is_wrong() {
        for uri in ["memcache://h", "redis://h", "memcached:/h", "h:11211"] {
            assert!(
                matches!(
                    uri.parse::<MemcachedOptions>(),
                    Err(MemcachedOptionsError::Scheme { .. })
                ),
                "{uri}"
            );
        }
        for uri in ["memcached://", "memcached://?pool_size=2"] {
            assert!(
                matches!(
                    uri.parse::<MemcachedOptions>(),
                    Err(MemcachedOptionsError::NoServers { .. })
                ),
                "{uri}"
            );
        }
        for (uri, server) in [
            ("memcached://h:0", "h:0"),
            ("memcached://h:65536", "h:65536"),
            ("memcached://h:", "h:"),
            ("memcached://h:x", "h:x"),
            ("memcached://:1", ":1"),
            ("memcached://[::1]:11211", "[::1]:11211"),
            ("memcached://::1", "::1"),
            ("memcached://h,,g", ""),
            ("memcached://h,", ""),
            ("memcached://h h", "h h"),
            ("memcached://a:1,a:1", "a:1"),
            ("memcached:///tmp/a b.sock", "/tmp/a b.sock"),
            ("memcached:///tmp/%41", "/tmp/%41"),
        ] {
            match uri.parse::<MemcachedOptions>() {
                Err(MemcachedOptionsError::InvalidServer { server: s, .. }) => {
                    assert_eq!(s, server, "{uri}")
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_options_are_errors_naming_them() {
        for (uri, name, reason_part) in [
            ("memcached://h?colour=red", "colour", "unknown option"),
            ("memcached://h?Pool_size=2", "Pool_size", "unknown option"),
            ("memcached://h?pool_size=0", "pool_size", "out of range"),
            ("memcached://h?pool_size=1025", "pool_size", "out of range"),
            (
                "memcached://h?pool_size=+2",
                "pool_size",
                "not a plain decimal number",
            ),
            ("memcached://h?pool_size=", "pool_size", "no value given"),
            (
                "memcached://h?pool_size=2&pool_size=2",
                "pool_size",
                "more than once",
            ),
            (
                "memcached://h?connect_timeout=5",
                "connect_timeout",
                "is not a duration",
            ),
            (
                "memcached://h?connect_timeout=0ms",
                "connect_timeout",
                "is not a duration",
            ),
            (
                "memcached://h?command_timeout=601s",
                "command_timeout",
                "out of range",
            ),
            (
                "memcached://h?command_timeout=1.5s",
                "command_timeout",
                "is not a duration",
            ),
            (
                "memcached://h?command_timeout=ms",
                "command_timeout",
                "is not a duration",
            ),
            (
                "memcached://h?command_timeout=99999999999999999999s",
                "command_timeout",
                "is not a duration",
            ),
            (
                "memcached://h?flush_on_clear=yes",
                "flush_on_clear",
                "true or false",
            ),
            (
                "memcached://h?flush_on_clear",
                "flush_on_clear",
                "true or false",
            ),
            ("memcached://h?key_prefix=a%25b", "key_prefix", "'%'"),
            ("memcached://h?key_prefix=a%20b", "key_prefix", "' '"),
            (
                "memcached://h?key_prefix=a%zz",
                "key_prefix",
                "percent escape",
            ),
            (
                "memcached://h?pool_size=+5",
                "pool_size",
                "not a plain decimal number",
            ),
            (
                "memcached://h?pool_size=-5",
                "pool_size",
                "not a plain decimal number",
            ),
            (
                "memcached://h?pool_size=99999999999999999999999",
                "pool_size",
                "out of range",
            ),
            ("memcached://h?tls=true", "tls", "TLS is not supported"),
            ("memcached://h?tls=1", "tls", "true or false"),
            ("memcached://h?key_prefix=a#b", "key_prefix", "'#'"),
            (
                "memcached://h?key_prefix=é",
                "key_prefix",
                "printable ASCII",
            ),
        ] {
            let (n, reason) = param_err(uri);
            assert_eq!(n, name, "{uri}");
            assert!(reason.contains(reason_part), "{uri}: {reason}");
        }
        let long = format!("memcached://h?key_prefix={}", "p".repeat(65));
        assert!(param_err(&long).1.contains("at most 64"));
        let message = "memcached://h?pool_size=0"
            .parse::<MemcachedOptions>()
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(r#"invalid option "pool_size" in memcached uri "memcached://h?pool_size=0": 0 is out of range; expected a whole number from 1 to 1024"#.to_owned())
        );
    }

    #[test]
    fn ipv6_is_refused_saying_why() {
        for uri in [
            "memcached://[::1]:11211",
            "memcached://[::1]",
            "memcached://::1",
            "memcached://h,[2001:db8::1]:11211",
        ] {
            match uri.parse::<MemcachedOptions>() {
                Err(MemcachedOptionsError::InvalidServer { reason, .. }) => {
                    assert!(
                        reason.contains("IPv6 addresses are not supported"),
                        "{uri}: {reason}"
                    );
                    assert!(reason.contains("IPv4 sockets only"), "{uri}: {reason}");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
        let set = MemcachedOptions::new([ServerAddr::Tcp {
            host: "::1".into(),
            port: 11211,
        }]);
        assert!(matches!(
            set.validate(),
            Err(MemcachedOptionsError::InvalidSetting { name: "servers", ref reason })
                if reason.contains("IPv6")
        ));
    }

    #[test]
    fn setters_are_checked_when_connecting() {
        let server = || "h".parse::<ServerAddr>().expect("server");
        assert_eq!(MemcachedOptions::new([server()]).validate(), Ok(()));
        for (options, name) in [
            (MemcachedOptions::new([]), "servers"),
            (MemcachedOptions::new([server(), server()]), "servers"),
            (
                MemcachedOptions::new([server()]).key_prefix("a b"),
                "key_prefix",
            ),
            (MemcachedOptions::new([server()]).pool_size(0), "pool_size"),
            (
                MemcachedOptions::new([server()]).pool_size(1025),
                "pool_size",
            ),
            (
                MemcachedOptions::new([server()]).command_timeout(Duration::ZERO),
                "command_timeout",
            ),
            (
                MemcachedOptions::new([server()]).connect_timeout(Duration::from_secs(601)),
                "connect_timeout",
            ),
            (MemcachedOptions::new([server()]).tls(true), "tls"),
        ] {
            match options.validate() {
                Err(MemcachedOptionsError::InvalidSetting { name: found, .. }) => {
                    assert_eq!(found, name)
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        let c: MemcachedOptions =
            serde_json::from_str(r#"{"servers": ["h", "/tmp/m.sock"], "flush_on_clear": true}"#)
                .expect("options");
        assert_eq!(c.server_names(), ["h:11211", "/tmp/m.sock"]);
        assert!(c.get_flush_on_clear());
        assert_eq!(c, config("memcached://h,/tmp/m.sock?flush_on_clear=true"));
        for (bad, part) in [
            (r#"{"servers": ["h"], "colour": "red"}"#, "colour"),
            (r#"{"servers": ["[::1]"]}"#, "IPv6"),
            (
                r#"{"servers": ["h"], "command_timeout": "1.5s"}"#,
                "duration",
            ),
            (r#"{"servers": ["h"], "pool_size": -1}"#, "invalid value"),
            (r#"{"key_prefix": "x"}"#, "servers"),
        ] {
            let e = serde_json::from_str::<MemcachedOptions>(bad)
                .expect_err(bad)
                .to_string();
            assert!(e.contains(part), "{bad}: {e}");
        }
    }
}
