//! Parsing Redis URIs into a [`RedisConfig`].

use limiter_core::options::{self, percent_decode};

use crate::config::{RedisConfig, Topology, MAX_POOL_SIZE};
use crate::error::RedisError;

/// The schemes this crate takes.
pub(crate) const SCHEMES: [&str; 5] = [
    "redis",
    "rediss",
    "redis+unix",
    "redis+cluster",
    "redis+sentinel",
];

/// The query options, as the error for an unknown one lists them.
const OPTIONS: &str = "key_prefix, pool_size, connect_timeout, command_timeout, tls_ca_file";

pub(crate) fn parse(uri: &str) -> Result<RedisConfig, RedisError> {
    let shown = redact(uri);
    let malformed = |reason: &str| RedisError::MalformedUri {
        uri: shown.clone(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| malformed("expected scheme://…, for example redis://127.0.0.1:6379"))?;
    let scheme = scheme.to_ascii_lowercase();
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(malformed(&format!(
            "unknown scheme {scheme:?} (known: redis, rediss, redis+unix, redis+cluster, \
             redis+sentinel)"
        )));
    }
    if rest.contains('#') {
        return Err(malformed("a fragment (#…) is not allowed"));
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));

    let mut config = if scheme == "redis+unix" {
        if !rest.starts_with('/') || rest.len() < 2 {
            return Err(malformed(
                "expected redis+unix:///absolute/path/to/redis.sock",
            ));
        }
        RedisConfig::new(Topology::Unix {
            path: percent_decode(rest).map_err(|e| malformed(&e))?.into(),
        })
    } else {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let default_port = if scheme == "redis+sentinel" {
            26379
        } else {
            6379
        };
        let nodes = hosts
            .split(',')
            .map(|h| host_port(h, default_port))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| malformed(&e))?;
        let mut config = match scheme.as_str() {
            "redis" | "rediss" => {
                let [(host, port)] = <[_; 1]>::try_from(nodes).map_err(|_| {
                    malformed("a standalone server has one host; use redis+cluster:// for several")
                })?;
                let config = RedisConfig::new(Topology::Standalone { host, port });
                let config = config.tls(scheme == "rediss");
                match path {
                    "" => config,
                    db => config.db(database(db).map_err(|e| malformed(&e))?),
                }
            }
            "redis+cluster" => {
                if !path.is_empty() {
                    return Err(malformed(
                        "a cluster uri has no path: a Redis Cluster has only database 0",
                    ));
                }
                RedisConfig::new(Topology::Cluster { nodes })
            }
            _ => {
                let (service, db) = path.split_once('/').unwrap_or((path, ""));
                let service = percent_decode(service).map_err(|e| malformed(&e))?;
                if service.is_empty() {
                    return Err(malformed(
                        "expected redis+sentinel://host:26379[,host:port…]/service-name[/db]",
                    ));
                }
                let config = RedisConfig::new(Topology::Sentinel { nodes, service });
                match db {
                    "" => config,
                    db => config.db(database(db).map_err(|e| malformed(&e))?),
                }
            }
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = percent_decode(user).map_err(|e| malformed(&e))?;
            let Some(password) = password else {
                return Err(malformed(
                    "credentials need a password: user:password@ or :password@",
                ));
            };
            let password = percent_decode(password).map_err(|e| malformed(&e))?;
            let user = (!user.is_empty()).then_some(user.as_str());
            config = config.credentials(user, &password);
        }
        config
    };

    let pairs = options::query_pairs(query).map_err(|e| RedisError::InvalidOption {
        name: e.name.clone(),
        uri: shown.clone(),
        reason: e.to_string(),
    })?;
    for (name, value) in pairs {
        let invalid = |reason: String| RedisError::InvalidOption {
            name: name.to_owned(),
            uri: shown.clone(),
            reason,
        };
        let value = percent_decode(value).map_err(&invalid)?;
        config = match name {
            "key_prefix" => config.key_prefix(value),
            "pool_size" => {
                let max = u64::try_from(MAX_POOL_SIZE).unwrap_or(u64::MAX);
                let size = options::whole_number(&value, 1, max).map_err(&invalid)?;
                // At most MAX_POOL_SIZE, a usize.
                config.pool_size(usize::try_from(size).unwrap_or(MAX_POOL_SIZE))
            }
            "connect_timeout" => {
                config.connect_timeout(options::duration(&value).map_err(&invalid)?)
            }
            "command_timeout" => {
                config.command_timeout(options::duration(&value).map_err(&invalid)?)
            }
            "tls_ca_file" if !value.is_empty() => {
                if scheme == "redis+unix" {
                    return Err(invalid("a unix socket does not use TLS".to_owned()));
                }
                config.tls_ca_file(value)
            }
            "tls_ca_file" => return Err(invalid("no path given".to_owned())),
            _ => return Err(invalid(format!("unknown option (known: {OPTIONS})"))),
        };
    }
    config.validate().map_err(|e| match e {
        RedisError::InvalidSetting { name, reason } => RedisError::InvalidOption {
            name: name.to_owned(),
            uri: shown.clone(),
            reason,
        },
        other => other,
    })?;
    Ok(config)
}

/// `host[:port]` or `[v6]:port`.
fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in host {text:?}"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => {
                    return Err(format!(
                        "unexpected {after:?} after the address in {text:?}"
                    ))
                }
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(format!("IPv6 address {text:?} needs brackets: [addr]:port")),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".to_owned());
    }
    if host.contains(['/', '?', '@', ' ']) {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0 && !p.to_string().is_empty())
            .ok_or_else(|| format!("invalid port {p:?} in {text:?}"))?,
    };
    Ok((host.to_owned(), port))
}

/// A database number from a path segment.
fn database(text: &str) -> Result<u8, String> {
    text.parse::<u8>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("invalid database {text:?}: expected a number from 0 to 255"))
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

    fn ok(uri: &str) -> RedisConfig {
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
        assert_eq!(c.topology(), &standalone("127.0.0.1", 6379));
        assert!(!c.is_tls());
        assert_eq!(c.database(), None);

        let c = ok("REDIS://user:p%40ss@localhost:16379/3");
        assert_eq!(c.topology(), &standalone("localhost", 16379));
        assert_eq!(c.username(), Some("user"));
        assert!(c.has_password());
        assert_eq!(c.database(), Some(3));

        let c = ok("redis://:secret@[::1]:6380/");
        assert_eq!(c.topology(), &standalone("::1", 6380));
        assert_eq!(c.username(), None);
        assert!(c.has_password());

        let c = ok("rediss://example.test:6390?tls_ca_file=/tmp/ca.pem");
        assert!(c.is_tls());
        assert_eq!(
            c.get_tls_ca_file(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );

        let c = ok("redis+unix:///run/redis/redis.sock?pool_size=1");
        assert_eq!(
            c.topology(),
            &Topology::Unix {
                path: "/run/redis/redis.sock".into()
            }
        );
        assert_eq!(c.get_pool_size(), 1);

        let c = ok("redis+cluster://h1:7000,h2:7001,[::1]");
        assert_eq!(
            c.topology(),
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
            c.topology(),
            &Topology::Sentinel {
                nodes: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                service: "my-primary".into()
            }
        );
        assert_eq!(c.database(), Some(4));
        assert_eq!(c.get_key_prefix(), "app:rl:");

        let c = ok("redis://h?connect_timeout=2s&command_timeout=250ms&pool_size=8&key_prefix=");
        assert_eq!(c.get_connect_timeout(), Duration::from_secs(2));
        assert_eq!(c.get_command_timeout(), Duration::from_millis(250));
        assert_eq!(c.get_pool_size(), 8);
        assert_eq!(c.get_key_prefix(), "");
    }

    #[test]
    fn malformed_uris_say_what_is_wrong() {
        for (uri, part) in [
            ("127.0.0.1:6379", "expected scheme://"),
            ("redis+tcp://h", "unknown scheme"),
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
