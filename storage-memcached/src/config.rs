//! [`MemcachedConfig`]: servers and options, read from a `memcached://` URI.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The port a server listed without one listens on.
pub const DEFAULT_PORT: u16 = 11211;
/// Connections per server unless `pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// How long opening a connection may take unless `connect_timeout` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a whole storage call may take unless `command_timeout` says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The most connections per server `pool_size` accepts.
const MAX_POOL_SIZE: u32 = 1_024;
/// The longest timeout the URI accepts: 10 minutes.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest `key_prefix`, so that a digested key still has room for its readable
/// part (see [`crate::key`]).
pub(crate) const MAX_PREFIX_LEN: usize = 64;
/// The parameters a `memcached://` URI takes.
const KNOWN: &str = "key_prefix, pool_size, connect_timeout, command_timeout, flush_on_clear";

/// A `memcached://` URI that could not be read, or a configuration that cannot work.
///
/// Every variant carries the URI as given and names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemcachedConfigError {
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
    /// A query parameter is unknown, given more than once, or has an invalid value.
    #[error("invalid parameter {name:?} in memcached uri {uri:?}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: String,
        /// The URI as given.
        uri: String,
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

/// Where the servers are and how to talk to them: what a `memcached://` URI says.
///
/// # URI
///
/// ```text
/// memcached://host:port[,host:port…][?option=value&…]
/// memcached:///path/to/memcached.sock[?option=value&…]
/// ```
///
/// Servers are separated by commas; each is `host:port`, `host` (port 11211) or an
/// absolute socket path. Hosts are names or IPv4 addresses: the client connects over
/// IPv4 only, so an IPv6 literal is an error. Options:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `key_prefix` | put in front of every stored key (printable ASCII without `#`, `%`, `&`, `=` or `?`; at most 64 bytes) | none |
/// | `pool_size` | connections per server, 1 to 1024 | 16 |
/// | `connect_timeout` | longest wait for a new connection, such as `250ms` or `2s` | `500ms` |
/// | `command_timeout` | longest a whole storage call may take, connection included | `1s` |
/// | `flush_on_clear` | `true` lets [`clear_all`](limiter_core::Storage::clear_all) run `flush_all` on every server | `false` |
///
/// Durations are whole numbers of milliseconds (`ms`), seconds (`s`) or minutes (`m`),
/// as for every storage ([`limiter_core::options::duration`]), from 1 ms to 10 minutes. An unknown option, an option given twice, or a bad value is a
/// [`MemcachedConfigError::InvalidParameter`] naming it.
///
/// # Examples
///
/// ```
/// use limiter_memcached::MemcachedConfig;
/// use std::time::Duration;
///
/// let config: MemcachedConfig =
///     "memcached://10.0.0.1:11211,10.0.0.2?pool_size=32&command_timeout=250ms".parse()?;
/// assert_eq!(config.server_names(), ["10.0.0.1:11211", "10.0.0.2:11211"]);
/// assert_eq!(config.pool_size(), 32);
/// assert_eq!(config.command_timeout(), Duration::from_millis(250));
///
/// let err = MemcachedConfig::from_uri("memcached://h?pool_size=0").unwrap_err();
/// assert!(err.to_string().contains("pool_size"));
/// # Ok::<(), limiter_memcached::MemcachedConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedConfig {
    servers: Vec<ServerAddr>,
    key_prefix: String,
    pool_size: u32,
    connect_timeout: Duration,
    command_timeout: Duration,
    flush_on_clear: bool,
}

impl MemcachedConfig {
    /// Reads a `memcached://` URI. See the [type docs](Self) for its form.
    ///
    /// # Errors
    ///
    /// A [`MemcachedConfigError`] naming the scheme, server or option that is wrong.
    pub fn from_uri(uri: &str) -> Result<MemcachedConfig, MemcachedConfigError> {
        let rest = match uri.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("memcached") => rest,
            _ => {
                return Err(MemcachedConfigError::Scheme {
                    uri: uri.to_owned(),
                })
            }
        };
        let (servers_part, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut servers: Vec<ServerAddr> = Vec::new();
        for entry in servers_part.split(',') {
            if entry.is_empty() {
                if servers_part.is_empty() {
                    break;
                }
                return Err(MemcachedConfigError::InvalidServer {
                    server: entry.to_owned(),
                    uri: uri.to_owned(),
                    reason: "empty entry in the server list".to_owned(),
                });
            }
            let server =
                parse_server(entry).map_err(|reason| MemcachedConfigError::InvalidServer {
                    server: entry.to_owned(),
                    uri: uri.to_owned(),
                    reason,
                })?;
            if servers.contains(&server) {
                return Err(MemcachedConfigError::InvalidServer {
                    server: entry.to_owned(),
                    uri: uri.to_owned(),
                    reason: "listed more than once".to_owned(),
                });
            }
            servers.push(server);
        }
        if servers.is_empty() {
            return Err(MemcachedConfigError::NoServers {
                uri: uri.to_owned(),
            });
        }
        let mut config = MemcachedConfig {
            servers,
            key_prefix: String::new(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            flush_on_clear: false,
        };
        let pairs = limiter_core::options::query_pairs(query).map_err(|e| {
            MemcachedConfigError::InvalidParameter {
                name: e.name.clone(),
                uri: uri.to_owned(),
                reason: e.to_string(),
            }
        })?;
        for (name, value) in pairs {
            let invalid = |reason: String| MemcachedConfigError::InvalidParameter {
                name: name.to_owned(),
                uri: uri.to_owned(),
                reason,
            };
            match name {
                "key_prefix" => config.key_prefix = parse_prefix(value).map_err(invalid)?,
                "pool_size" => config.pool_size = parse_pool_size(value).map_err(invalid)?,
                "connect_timeout" => {
                    config.connect_timeout = parse_duration(value).map_err(invalid)?
                }
                "command_timeout" => {
                    config.command_timeout = parse_duration(value).map_err(invalid)?
                }
                "flush_on_clear" => config.flush_on_clear = parse_bool(value).map_err(invalid)?,
                _ => return Err(invalid(format!("unknown parameter (known: {KNOWN})"))),
            }
        }
        Ok(config)
    }

    /// The servers, in the order of the URI.
    pub fn servers(&self) -> &[ServerAddr] {
        &self.servers
    }

    /// The servers' names (`host:port` or socket path), in the order of the URI.
    pub fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(ServerAddr::name).collect()
    }

    /// What every stored key starts with. Default: nothing.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Connections per server. Default: [`DEFAULT_POOL_SIZE`].
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// The longest wait for a new connection. Default: [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The longest a whole storage call may take, waiting for a connection included.
    /// Default: [`DEFAULT_COMMAND_TIMEOUT`].
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Whether [`clear_all`](limiter_core::Storage::clear_all) may flush every server.
    /// Default: `false`.
    pub fn flush_on_clear(&self) -> bool {
        self.flush_on_clear
    }
}

impl FromStr for MemcachedConfig {
    type Err = MemcachedConfigError;

    fn from_str(uri: &str) -> Result<MemcachedConfig, MemcachedConfigError> {
        MemcachedConfig::from_uri(uri)
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
        return Err("IPv6 addresses are not supported (the client connects over IPv4)".to_owned());
    }
    let (host, port) = match entry.split_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (entry, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "host contains {bad:?}; expected a host name or an IPv4 address"
        ));
    }
    Ok(ServerAddr::Tcp {
        host: host.to_owned(),
        port,
    })
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number from 1 to 65535"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {port} is out of range; expected 1 to 65535")),
    }
}

fn parse_prefix(value: &str) -> Result<String, String> {
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
    Ok(value.to_owned())
}

fn parse_pool_size(value: &str) -> Result<u32, String> {
    let n = limiter_core::options::whole_number(value, 1, u64::from(MAX_POOL_SIZE))?;
    // At most MAX_POOL_SIZE, a u32.
    Ok(u32::try_from(n).unwrap_or(MAX_POOL_SIZE))
}

/// A duration in the grammar every storage shares (`250ms`, `2s`, `1m`; see
/// [`limiter_core::options::duration`]), at most [`MAX_TIMEOUT`].
fn parse_duration(value: &str) -> Result<Duration, String> {
    let d = limiter_core::options::duration(value)?;
    if d > MAX_TIMEOUT {
        return Err(format!(
            "{value} is out of range; expected at most {}s",
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(d)
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(uri: &str) -> MemcachedConfig {
        MemcachedConfig::from_uri(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn param_err(uri: &str) -> (String, String) {
        match MemcachedConfig::from_uri(uri) {
            Err(MemcachedConfigError::InvalidParameter { name, reason, .. }) => (name, reason),
            other => panic!("{uri}: expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn servers_ports_and_sockets() {
        let c = config("memcached://127.0.0.1:21211");
        assert_eq!(
            c.servers(),
            [ServerAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 21211
            }]
        );
        assert_eq!(c.servers()[0].dsn(), "tcp://127.0.0.1:21211");
        let c = config("MEMCACHED://a.example,b-2:1?");
        assert_eq!(c.server_names(), ["a.example:11211", "b-2:1"]);
        let c = config("memcached:///run/memcached/memcached.sock");
        assert_eq!(
            c.servers(),
            [ServerAddr::Unix {
                path: "/run/memcached/memcached.sock".into()
            }]
        );
        assert_eq!(c.servers()[0].dsn(), "unix:///run/memcached/memcached.sock");
        assert_eq!(c.server_names(), ["/run/memcached/memcached.sock"]);
        let c = config("memcached://h1:1,/tmp/m.sock");
        assert_eq!(c.servers().len(), 2);
    }

    #[test]
    fn defaults() {
        let c = config("memcached://h");
        assert_eq!(c.key_prefix(), "");
        assert_eq!(c.pool_size(), DEFAULT_POOL_SIZE);
        assert_eq!(c.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.command_timeout(), DEFAULT_COMMAND_TIMEOUT);
        assert!(!c.flush_on_clear());
    }

    #[test]
    fn every_option() {
        let c = config(
            "memcached://h?key_prefix=app1:&pool_size=1024&connect_timeout=250ms\
             &command_timeout=2s&flush_on_clear=true",
        );
        assert_eq!(c.key_prefix(), "app1:");
        assert_eq!(c.pool_size(), 1024);
        assert_eq!(c.connect_timeout(), Duration::from_millis(250));
        assert_eq!(c.command_timeout(), Duration::from_secs(2));
        assert!(c.flush_on_clear());
        assert!(!config("memcached://h?flush_on_clear=false").flush_on_clear());
        assert_eq!(
            config("memcached://h?command_timeout=600s").command_timeout(),
            MAX_TIMEOUT
        );
    }

    #[test]
    fn bad_uris_name_what_is_wrong() {
        for uri in ["memcache://h", "redis://h", "memcached:/h", "h:11211"] {
            assert!(
                matches!(
                    MemcachedConfig::from_uri(uri),
                    Err(MemcachedConfigError::Scheme { .. })
                ),
                "{uri}"
            );
        }
        for uri in ["memcached://", "memcached://?pool_size=2"] {
            assert!(
                matches!(
                    MemcachedConfig::from_uri(uri),
                    Err(MemcachedConfigError::NoServers { .. })
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
            match MemcachedConfig::from_uri(uri) {
                Err(MemcachedConfigError::InvalidServer { server: s, .. }) => {
                    assert_eq!(s, server, "{uri}")
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_options_are_errors_naming_them() {
        for (uri, name, reason_part) in [
            ("memcached://h?colour=red", "colour", "unknown parameter"),
            (
                "memcached://h?Pool_size=2",
                "Pool_size",
                "unknown parameter",
            ),
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
            ("memcached://h?key_prefix=a%20b", "key_prefix", "'%'"),
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
        let message = MemcachedConfig::from_uri("memcached://h?pool_size=0")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(r#"invalid parameter "pool_size" in memcached uri "memcached://h?pool_size=0": 0 is out of range; expected a whole number from 1 to 1024"#.to_owned())
        );
    }
}
