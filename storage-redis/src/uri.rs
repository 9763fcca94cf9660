//! Parsing Redis URIs into [`RedisOptions`], with the `url` crate.

use limiter_options::{decode, host_port};
use url::Url;

use crate::error::RedisError;
use crate::options::{RedisOptions, Topology, MAX_POOL_SIZE, SCHEMES};

/// The query options, as the error for an unknown one lists them.
const OPTIONS: &str = "key_prefix, pool_size, connect_timeout, command_timeout, tls, tls_ca_file";

/// What a scheme says: the topology's kind and whether TLS is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Standalone,
    Unix,
    Cluster,
    Sentinel,
}

/// The kind and TLS of a known scheme (lower case).
fn scheme(scheme: &str) -> Option<(Kind, bool)> {
    if !SCHEMES.contains(&scheme) {
        return None;
    }
    let (base, kind) = scheme.split_once('+').unwrap_or((scheme, ""));
    let kind = match kind {
        "" => Kind::Standalone,
        "unix" => Kind::Unix,
        "cluster" => Kind::Cluster,
        _ => Kind::Sentinel,
    };
    Some((kind, base == "rediss" || base == "valkeys"))
}

pub(crate) fn parse(uri: &str) -> Result<RedisOptions, RedisError> {
    let shown = redact(uri);
    let malformed = |reason: String| RedisError::MalformedUri {
        uri: shown.clone(),
        reason,
    };
    let (scheme_text, rest) = uri.split_once("://").ok_or_else(|| {
        malformed("expected scheme://…, for example redis://127.0.0.1:6379".to_owned())
    })?;
    let scheme_lower = scheme_text.to_ascii_lowercase();
    let (kind, tls) = scheme(&scheme_lower).ok_or_else(|| {
        malformed(format!(
            "unknown scheme {scheme_lower:?} (known: {})",
            SCHEMES.join(", ")
        ))
    })?;
    // The url crate reads one host; a Cluster or Sentinel URI lists several, so the
    // list is read host by host, and the rest of the URI with a single one.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, hosts) = match rest[..authority_end].rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..authority_end]),
        None => ("", &rest[..authority_end]),
    };
    let single = if kind == Kind::Unix { hosts } else { "host" };
    let url = Url::parse(&format!(
        "{scheme_lower}://{userinfo}{single}{}",
        &rest[authority_end..]
    ))
    .map_err(|e| malformed(e.to_string()))?;
    if url.fragment().is_some() {
        return Err(malformed("a fragment (#…) is not allowed".to_owned()));
    }
    let mut options =
        RedisOptions::new(topology(kind, hosts, url.path()).map_err(&malformed)?).tls(tls);
    if let Some(database) = database_of(kind, url.path()).map_err(&malformed)? {
        options = options.database(database);
    }
    if !userinfo.is_empty() {
        options = credentials(options, &url).map_err(&malformed)?;
    }

    let pairs = limiter_options::query(url.query().unwrap_or("")).map_err(|e| {
        RedisError::InvalidOption {
            name: e.name,
            uri: shown.clone(),
            reason: e.reason,
        }
    })?;
    for (name, value) in pairs {
        options = option(options, &name, value, (kind, tls, &scheme_lower)).map_err(|reason| {
            RedisError::InvalidOption {
                name,
                uri: shown.clone(),
                reason,
            }
        })?;
    }
    options.validate().map_err(|e| match e {
        RedisError::InvalidSetting { name, reason } => RedisError::InvalidOption {
            name: name.to_owned(),
            uri: shown.clone(),
            reason,
        },
        other => other,
    })?;
    Ok(options)
}

/// The topology of a URI of `kind` with the host list `hosts` and the `path` the url
/// crate read.
fn topology(kind: Kind, hosts: &str, path: &str) -> Result<Topology, String> {
    if kind == Kind::Unix {
        if !hosts.is_empty() || path.len() < 2 {
            return Err("expected redis+unix:///absolute/path/to/redis.sock".to_owned());
        }
        return Ok(Topology::Unix {
            path: decode(path)?.into(),
        });
    }
    let default_port = if kind == Kind::Sentinel { 26379 } else { 6379 };
    let nodes = hosts
        .split(',')
        .map(|h| host_port(h, default_port))
        .collect::<Result<Vec<_>, _>>()?;
    let path = path.strip_prefix('/').unwrap_or(path);
    match kind {
        Kind::Cluster if !path.is_empty() => {
            Err("a cluster uri has no path: a Redis Cluster has only database 0".to_owned())
        }
        Kind::Cluster => Ok(Topology::Cluster { nodes }),
        Kind::Sentinel => {
            let service = decode(path.split_once('/').map_or(path, |(service, _)| service))?;
            if service.is_empty() {
                return Err(
                    "expected redis+sentinel://host:26379[,host:port…]/service-name[/db]"
                        .to_owned(),
                );
            }
            Ok(Topology::Sentinel { nodes, service })
        }
        _ => {
            let [(host, port)] = <[_; 1]>::try_from(nodes).map_err(|_| {
                "a standalone server has one host; use redis+cluster:// for several".to_owned()
            })?;
            Ok(Topology::Standalone { host, port })
        }
    }
}

/// The database a path names, if it names one: `/db` for one server, `/service/db`
/// for Sentinel.
fn database_of(kind: Kind, path: &str) -> Result<Option<u8>, String> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let text = match kind {
        Kind::Standalone => path,
        Kind::Sentinel => path.split_once('/').map_or("", |(_, db)| db),
        Kind::Unix | Kind::Cluster => "",
    };
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u8>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .map(Some)
        .ok_or_else(|| format!("invalid database {text:?}: expected a number from 0 to 255"))
}

/// `options` with the user name and password of `url`.
fn credentials(options: RedisOptions, url: &Url) -> Result<RedisOptions, String> {
    let user = decode(url.username())?;
    let Some(password) = url.password() else {
        return Err("credentials need a password: user:password@ or :password@".to_owned());
    };
    let options = options.password(decode(password)?);
    Ok(if user.is_empty() {
        options
    } else {
        options.username(user)
    })
}

/// `options` with query option `name` set to `value`, for a URI whose scheme is
/// `scheme`, of `kind`, with TLS or not.
fn option(
    options: RedisOptions,
    name: &str,
    value: String,
    (kind, scheme_tls, scheme): (Kind, bool, &str),
) -> Result<RedisOptions, String> {
    Ok(match name {
        "key_prefix" => options.key_prefix(value),
        "pool_size" => {
            let size = limiter_options::whole_number(&value, 1, u64::from(MAX_POOL_SIZE))?;
            // At most MAX_POOL_SIZE, a u32.
            options.pool_size(u32::try_from(size).unwrap_or(MAX_POOL_SIZE))
        }
        "connect_timeout" => options.connect_timeout(limiter_options::duration(&value)?),
        "command_timeout" => options.command_timeout(limiter_options::duration(&value)?),
        "tls" | "tls_ca_file" if kind == Kind::Unix => {
            return Err("a unix socket does not use TLS".to_owned())
        }
        "tls" => match limiter_options::flag(&value)? {
            false if scheme_tls => {
                let plain = scheme
                    .replacen("rediss", "redis", 1)
                    .replacen("valkeys", "valkey", 1);
                return Err(format!(
                    "{scheme}:// always uses TLS; use {plain}:// for none"
                ));
            }
            on => options.tls(on),
        },
        "tls_ca_file" if !value.is_empty() => options.tls_ca_file(value),
        "tls_ca_file" => return Err("no path given".to_owned()),
        _ => return Err(format!("unknown option (known: {OPTIONS})")),
    })
}

/// `uri` with the password, if any, replaced by `***`.
pub(crate) fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => uri.to_owned(),
        },
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ok(uri: &str) -> RedisOptions {
        match parse(uri) {
            Ok(c) => c,
            Err(e) => panic!("{uri}: {e}"),
        }
    }

    fn standalone(host: &str, port: u16) -> Topology {
        Topology::Standalone {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn every_form_parses() {
        let c = ok("redis://127.0.0.1");
        assert_eq!(c.get_topology(), &standalone("127.0.0.1", 6379));
        assert!(!c.get_tls());
        assert_eq!(c.get_database(), None);

        let c = ok("REDIS://user:p%40ss@localhost:16379/3");
        assert_eq!(c.get_topology(), &standalone("localhost", 16379));
        assert_eq!(c.get_username(), Some("user"));
        assert!(c.get_password().is_some());
        assert_eq!(c.get_database(), Some(3));

        let c = ok("redis://:secret@[::1]:6380/");
        assert_eq!(c.get_topology(), &standalone("::1", 6380));
        assert_eq!(c.get_username(), None);
        assert!(c.get_password().is_some());

        let c = ok("rediss://example.test:6390?tls_ca_file=/tmp/ca.pem");
        assert!(c.get_tls());
        assert_eq!(
            c.get_tls_ca_file(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );

        let c = ok("redis+unix:///run/redis/redis.sock?pool_size=1");
        assert_eq!(
            c.get_topology(),
            &Topology::Unix {
                path: "/run/redis/redis.sock".into()
            }
        );
        assert_eq!(c.get_pool_size(), 1);

        let c = ok("redis+cluster://h1:7000,h2:7001,[::1]");
        assert_eq!(
            c.get_topology(),
            &Topology::Cluster {
                nodes: vec![
                    ("h1".into(), 7000),
                    ("h2".into(), 7001),
                    ("::1".into(), 6379)
                ]
            }
        );

        let c = ok("redis+sentinel://s1,s2:26380/my-primary/4?key_prefix=app%3Arl%3A");
        assert_eq!(
            c.get_topology(),
            &Topology::Sentinel {
                nodes: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                service: "my-primary".into()
            }
        );
        assert_eq!(c.get_database(), Some(4));
        assert_eq!(c.get_key_prefix(), "app:rl:");

        let c = ok("redis://h?connect_timeout=2s&command_timeout=250ms&pool_size=8&key_prefix=");
        assert_eq!(c.get_connect_timeout(), Duration::from_secs(2));
        assert_eq!(c.get_command_timeout(), Duration::from_millis(250));
        assert_eq!(c.get_pool_size(), 8);
        assert_eq!(c.get_key_prefix(), "");
    }

    #[test]
    fn tls_by_scheme_or_option_on_every_topology_and_valkey_schemes() {
        for (uri, tls) in [
            ("rediss://h", true),
            ("rediss+cluster://h1:7000,h2:7001", true),
            ("rediss+sentinel://s1,[::1]:26380/main", true),
            ("redis+cluster://h:7000?tls=true", true),
            ("redis+sentinel://s1/main/2?tls=true", true),
            ("redis://h?tls=true", true),
            ("redis://h?tls=false", false),
            ("redis+cluster://h?tls_ca_file=/ca.pem", true),
            ("valkey://h", false),
            ("valkeys://h", true),
            ("VALKEY+CLUSTER://h1,h2", false),
            ("valkeys+cluster://h1,h2", true),
            ("valkey+sentinel://s1/main", false),
            ("valkeys+sentinel://s1/main", true),
            ("valkey+unix:///run/valkey.sock", false),
        ] {
            assert_eq!(ok(uri).get_tls(), tls, "{uri}");
        }
        assert_eq!(
            ok("valkey://u:p@[2001:db8::1]:6380/1"),
            ok("redis://u:p@[2001:db8::1]:6380/1")
        );
        assert_eq!(
            ok("valkeys+sentinel://s1:1,s2/main").get_topology(),
            &Topology::Sentinel {
                nodes: vec![("s1".into(), 1), ("s2".into(), 26379)],
                service: "main".into()
            }
        );
        for scheme in SCHEMES {
            let uri = if scheme.ends_with("+unix") {
                format!("{scheme}:///s.sock")
            } else if scheme.ends_with("+sentinel") {
                format!("{scheme}://h/main")
            } else {
                format!("{scheme}://h")
            };
            let _parsed = ok(&uri);
        }
    }

    #[test]
    fn malformed_uris_say_what_is_wrong() {
        for (uri, part) in [
            ("127.0.0.1:6379", "expected scheme://"),
            ("redis+tcp://h", "unknown scheme"),
            ("redis+tcp://h", "known: redis, rediss, redis+unix"),
            ("rediss+unix:///s", "unknown scheme"),
            ("redis://[::1]:x", "invalid port"),
            ("redis://[::1]:0", "invalid port"),
            ("redis://[zz::1]", "IPv6"),
            ("redis+cluster://h1,,h2", "missing host"),
            ("redis+cluster://h1,::1", "needs brackets"),
            ("redis://h/+1", "invalid database"),
            ("redis://h/-1", "invalid database"),
            ("redis://:p%ff@h", "UTF-8"),
            ("redis://", "missing host"),
            ("redis://h1,h2", "one host"),
            ("redis://h:0", "invalid port"),
            ("redis://h:99999", "invalid port"),
            ("redis://h:x", "invalid port"),
            ("redis://::1", "needs brackets"),
            ("redis://[::1", "unclosed"),
            ("redis://h/16x", "invalid database"),
            ("redis://h/256", "invalid database"),
            ("redis+cluster://h:7000/1", "no path"),
            ("redis+sentinel://h:26379", "service-name"),
            ("redis+sentinel://h/svc/x", "invalid database"),
            ("redis+unix://relative.sock", "absolute"),
            ("redis://user@h", "need a password"),
            ("redis://h#frag", "fragment"),
            ("redis://u:p%zz@h", "percent escape"),
        ] {
            match parse(uri) {
                Err(RedisError::MalformedUri { reason, .. }) => {
                    assert!(reason.contains(part), "{uri}: {reason}")
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_options_are_named() {
        for (uri, name, part) in [
            ("redis://h?pool=3", "pool", "unknown option"),
            ("redis://h?pool_size=0", "pool_size", "from 1 to 256"),
            ("redis://h?pool_size=257", "pool_size", "from 1 to 256"),
            ("redis://h?pool_size=+2", "pool_size", "from 1 to 256"),
            (
                "redis://h?pool_size=+5",
                "pool_size",
                "not a plain decimal number",
            ),
            (
                "redis://h?pool_size=-5",
                "pool_size",
                "not a plain decimal number",
            ),
            ("redis://h?pool_size=", "pool_size", "no value given"),
            (
                "redis://h?pool_size=99999999999999999999999",
                "pool_size",
                "out of range",
            ),
            (
                "redis://h?pool_size=2&pool_size=2",
                "pool_size",
                "more than once",
            ),
            ("redis://h?Pool_size=2", "Pool_size", "unknown option"),
            ("redis://h?tls=yes", "tls", "true or false"),
            ("rediss://h?tls=false", "tls", "use redis:// for none"),
            (
                "valkeys+cluster://h?tls=false",
                "tls",
                "use valkey+cluster://",
            ),
            ("redis+unix:///s?tls=true", "tls", "does not use TLS"),
            ("redis://h?key_prefix=%zz", "key_prefix", "percent escape"),
            ("redis://h?command_timeout=5", "command_timeout", "duration"),
            (
                "redis://h?command_timeout=0ms",
                "command_timeout",
                "duration",
            ),
            (
                "redis://h?connect_timeout=1h",
                "connect_timeout",
                "duration",
            ),
            ("redis://h?connect_timeout=", "connect_timeout", "duration"),
            (
                "redis://h?key_prefix=a&key_prefix=b",
                "key_prefix",
                "more than once",
            ),
            ("redis://h?key_prefix=%7Bx%7D", "key_prefix", "hash tag"),
            ("redis://h?tls_ca_file=", "tls_ca_file", "no path"),
            (
                "redis+unix:///s?tls_ca_file=/ca",
                "tls_ca_file",
                "does not use TLS",
            ),
        ] {
            match parse(uri) {
                Err(RedisError::InvalidOption {
                    name: found,
                    reason,
                    ..
                }) => {
                    assert_eq!(found, name, "{uri}");
                    assert!(reason.contains(part), "{uri}: {reason}");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        let e = parse("redis://u:hunter2@h?nope=1").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("u:***@h"), "{e}");
        let c = ok("redis://u:hunter2@h");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(redact("redis://h/1"), "redis://h/1");
    }
}
