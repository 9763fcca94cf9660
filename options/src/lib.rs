//! The options grammar that limiter's storage crates share, so that an option reads
//! the same way on every storage: query options of a URI, hosts and ports, whole
//! numbers, durations (in URIs and in configuration files), and the defaults of the
//! options that every networked storage has.
//!
//! This is a support crate of `limiter-redis`, `limiter-memcached` and
//! `limiter-memory`: use their options types (`RedisOptions`, `MemcachedOptions`,
//! `MemoryOptions`) instead. Its items follow what those crates need and may change
//! with them.
//!
//! URIs themselves are read with the [`url`] crate (hosts, IPv6 literals, ports) and
//! [`percent_encoding`]; what is here is what they leave to us: one error wording, no
//! repeated options, no signs or spaces in numbers, and one duration syntax.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

/// The default key prefix of every storage that has one: `limiter:`.
pub const DEFAULT_KEY_PREFIX: &str = "limiter:";
/// The default pool size of every storage that has a connection pool: 8.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// The default connect timeout of every networked storage: 2 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default command timeout of every networked storage: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// A duration written as whole milliseconds, seconds or minutes: `500ms`, `2s`, `1m`.
/// It must be above zero. The error says what was wrong, for the caller to wrap with
/// the option's name.
///
/// ```
/// use limiter_options::duration;
/// use std::time::Duration;
///
/// assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
/// assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
/// assert!(duration("0s").is_err());
/// assert!(duration("2").is_err());
/// assert!(duration("1.5s").is_err());
/// ```
///
/// # Errors
///
/// A message for text that is not such a duration.
pub fn duration(text: &str) -> Result<Duration, String> {
    let err = || format!("{text:?} is not a duration above zero such as 500ms, 2s or 1m");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
        _ => return Err(err()),
    };
    if d.is_zero() {
        return Err(err());
    }
    Ok(d)
}

/// Deserializes a [`duration`] from its text (`"500ms"`, `"2s"`, `"1m"`), for
/// `#[serde(deserialize_with = "limiter_options::deserialize_duration")]`.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     #[serde(deserialize_with = "limiter_options::deserialize_duration")]
///     timeout: std::time::Duration,
/// }
///
/// let s: Settings = serde_json::from_str(r#"{"timeout": "250ms"}"#).unwrap();
/// assert_eq!(s.timeout, std::time::Duration::from_millis(250));
/// assert!(serde_json::from_str::<Settings>(r#"{"timeout": 250}"#).is_err());
/// ```
///
/// # Errors
///
/// The deserializer's error for anything but a string, or a string that is not a
/// duration.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    duration(&text).map_err(D::Error::custom)
}

/// A whole number from `min` to `max` written with the digits 0-9 only (no sign,
/// spaces or other characters, not empty).
///
/// ```
/// use limiter_options::whole_number;
///
/// assert_eq!(whole_number("64", 1, 1024), Ok(64));
/// assert!(whole_number("+5", 1, 1024).is_err());
/// assert!(whole_number("0", 1, 1024).is_err());
/// ```
///
/// # Errors
///
/// A message saying what was wrong and what is expected.
pub fn whole_number(value: &str, min: u64, max: u64) -> Result<u64, String> {
    let range = if max == u64::MAX {
        format!("a whole number of at least {min}")
    } else {
        format!("a whole number from {min} to {max}")
    };
    if value.is_empty() {
        return Err(format!("no value given; expected {range}"));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{value:?} is not a plain decimal number; expected {range}, \
             written with the digits 0-9 only (no sign or spaces)"
        ));
    }
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        // Only digits, so the number does not fit; say where the top is when `range`
        // does not.
        Err(_) if max == u64::MAX => Err(format!(
            "{value} is out of range; expected {range}, at most {max}"
        )),
        _ => Err(format!("{value} is out of range; expected {range}")),
    }
}

/// `true` or `false`, spelled so.
///
/// # Errors
///
/// A message for any other text.
pub fn flag(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

/// `text` with its `%XX` escapes decoded, as UTF-8. Unlike a form decoder, `+` stays
/// `+`; unlike [`percent_encoding::percent_decode_str`] alone, a `%` that does not
/// start an escape is an error rather than kept.
///
/// ```
/// use limiter_options::decode;
///
/// assert_eq!(decode("p%40ss%2Fword+1").as_deref(), Ok("p@ss/word+1"));
/// assert!(decode("50%").is_err());
/// assert!(decode("%zz").is_err());
/// assert!(decode("%ff").is_err());
/// ```
///
/// # Errors
///
/// A message for a malformed escape, or bytes that are not UTF-8.
pub fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(format!("invalid percent escape in {text:?}"));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

/// An option of a URI query that cannot be read: its name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The option's name, as written.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The `name=value` pairs of a URI query (`a=1&b=2`), in order, their values
/// [`decode`]d: empty pairs are skipped, and a pair without `=` has an empty value.
///
/// ```
/// use limiter_options::query;
///
/// assert_eq!(
///     query("a=1&&b&c=x%3Ay"),
///     Ok(vec![("a".into(), "1".into()), ("b".into(), "".into()), ("c".into(), "x:y".into())]),
/// );
/// let repeated = query("a=1&a=2").unwrap_err();
/// assert_eq!(repeated.name, "a");
/// assert!(repeated.reason.contains("given more than once"));
/// ```
///
/// # Errors
///
/// A [`QueryError`] for a name given more than once (a setting given twice is a
/// mistake, never "the last one wins") or a value that does not decode.
pub fn query(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let error = |reason: String| QueryError {
            name: name.to_owned(),
            reason,
        };
        let value = decode(value).map_err(error)?;
        if let Some((_, first)) = pairs.iter().find(|(seen, _)| seen == name) {
            return Err(error(format!(
                "given more than once ({first:?}, then {value:?}); give each parameter at \
                 most once"
            )));
        }
        pairs.push((name.to_owned(), value));
    }
    Ok(pairs)
}

/// One `host[:port]` of a URI's host list, read by the [`url`] crate: a name, an IPv4
/// address or a bracketed IPv6 address (returned without its brackets), and a port
/// from 1 to 65535, `default_port` when none is written.
///
/// ```
/// use limiter_options::host_port;
///
/// assert_eq!(host_port("cache.internal", 11211), Ok(("cache.internal".into(), 11211)));
/// assert_eq!(host_port("[::1]:6380", 6379), Ok(("::1".into(), 6380)));
/// assert!(host_port("::1", 6379).unwrap_err().contains("needs brackets"));
/// assert!(host_port("h:0", 6379).unwrap_err().contains("invalid port"));
/// ```
///
/// # Errors
///
/// A message naming what is wrong: no host, a bad port, an IPv6 address without
/// brackets or not closed, or characters a host cannot have.
pub fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    use url::{Host, ParseError, Url};

    let bad_port = || format!("invalid port in {text:?}: expected a number from 1 to 65535");
    if !text.starts_with('[') && text.matches(':').count() > 1 {
        return Err(format!("IPv6 address {text:?} needs brackets: [addr]:port"));
    }
    if text.is_empty() || text.starts_with(':') {
        return Err("missing host".to_owned());
    }
    if text.ends_with(':') {
        return Err(bad_port());
    }
    if text.contains(['/', '?', '#', '@', '\\']) {
        return Err(format!("invalid host {text:?}"));
    }
    let url = Url::parse(&format!("host://{text}")).map_err(|e| match e {
        ParseError::EmptyHost => "missing host".to_owned(),
        ParseError::InvalidPort => bad_port(),
        ParseError::InvalidIpv6Address => {
            format!("invalid IPv6 address in {text:?}: unclosed '[' or not an address")
        }
        other => format!("invalid host {text:?}: {other}"),
    })?;
    let host = match url.host() {
        Some(Host::Domain(name)) if name.contains('%') => {
            return Err(format!("invalid host {text:?}"))
        }
        Some(Host::Domain(name)) => name.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => String::new(),
    };
    if host.is_empty() {
        return Err("missing host".to_owned());
    }
    match url.port() {
        None => Ok((host, default_port)),
        Some(0) => Err(bad_port()),
        Some(port) => Ok((host, port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_reject_what_is_not_plain() {
        for bad in [
            "",
            "ms",
            "s5",
            "-1s",
            "+1s",
            " 1s",
            "1 s",
            "1h",
            "1S",
            "99999999999999999999m",
        ] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(duration("007ms"), Ok(Duration::from_millis(7)));
    }

    #[test]
    fn decoding_rejects_bad_escapes_and_keeps_plus() {
        assert!(decode("%ff").is_err());
        assert!(decode("%+1").is_err());
        assert_eq!(decode("plain").as_deref(), Ok("plain"));
        assert_eq!(decode("a+b").as_deref(), Ok("a+b"));
    }

    #[test]
    fn hosts() {
        for (text, expected) in [
            ("h", Ok(("h".to_owned(), 7))),
            ("h:65535", Ok(("h".to_owned(), 65535))),
            ("10.0.0.1:1", Ok(("10.0.0.1".to_owned(), 1))),
            ("[::1]", Ok(("::1".to_owned(), 7))),
            ("[2001:DB8::1]:80", Ok(("2001:db8::1".to_owned(), 80))),
        ] {
            assert_eq!(host_port(text, 7), expected, "{text}");
        }
        for (text, part) in [
            ("", "missing host"),
            (":1", "missing host"),
            ("h:", "invalid port"),
            ("h:0", "invalid port"),
            ("h:65536", "invalid port"),
            ("h:x", "invalid port"),
            ("h:+1", "invalid port"),
            ("::1", "needs brackets"),
            ("[::1", "unclosed"),
            ("[zz::1]", "IPv6"),
            ("h h", "invalid host"),
            ("a@b", "invalid host"),
            ("h/x", "invalid host"),
            ("é", "invalid host"),
        ] {
            match host_port(text, 7) {
                Err(e) => assert!(e.contains(part), "{text}: {e}"),
                Ok(x) => panic!("{text}: {x:?}"),
            }
        }
    }
}
