//! Reading settings written as text, such as the query options of a storage URI
//! (`redis://host?command_timeout=500ms&pool_size=16`), with one grammar for every
//! storage: query pairs with no repeats, plain whole numbers, durations, percent
//! escapes.

use std::time::Duration;

/// A duration written as whole milliseconds, seconds or minutes: `500ms`, `2s`, `1m`.
/// It must be above zero. The error says what was wrong, for the caller to wrap with
/// the option's name.
///
/// ```
/// use limiter_core::options::duration;
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

/// `text` with its `%XX` escapes decoded, as UTF-8.
///
/// ```
/// use limiter_core::options::percent_decode;
///
/// assert_eq!(percent_decode("p%40ss%2Fword").as_deref(), Ok("p@ss/word"));
/// assert!(percent_decode("50%").is_err());
/// assert!(percent_decode("%zz").is_err());
/// ```
///
/// # Errors
///
/// A message for a malformed escape, or bytes that are not UTF-8.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent escape in {text:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

/// The `name=value` pairs of a URI query (`a=1&b=2`), in order: empty pairs are
/// skipped, and a pair without `=` has an empty value. Values are not decoded.
///
/// ```
/// use limiter_core::options::query_pairs;
///
/// assert_eq!(query_pairs("a=1&&b"), Ok(vec![("a", "1"), ("b", "")]));
/// let repeated = query_pairs("a=1&a=2").unwrap_err();
/// assert_eq!(repeated.name, "a");
/// assert!(repeated.to_string().contains("given more than once"));
/// ```
///
/// # Errors
///
/// [`RepeatedOption`] for a name given more than once: a setting given twice is a
/// mistake, never "the last one wins".
pub fn query_pairs(query: &str) -> Result<Vec<(&str, &str)>, RepeatedOption> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some((_, first)) = pairs.iter().find(|(seen, _)| *seen == name) {
            return Err(RepeatedOption {
                name: name.to_owned(),
                first: (*first).to_owned(),
                second: value.to_owned(),
            });
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// A query option given more than once; see [`query_pairs`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("given more than once ({first:?}, then {second:?}); give each parameter at most once")]
pub struct RepeatedOption {
    /// The option's name.
    pub name: String,
    /// Its first value.
    pub first: String,
    /// Its second value.
    pub second: String,
}

/// A whole number from `min` to `max` written with the digits 0-9 only (no sign,
/// spaces or other characters, not empty).
///
/// ```
/// use limiter_core::options::whole_number;
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
    fn percent_decoding_rejects_bad_utf8_and_signs() {
        assert!(percent_decode("%ff").is_err());
        assert!(percent_decode("%+1").is_err());
        assert_eq!(percent_decode("plain").as_deref(), Ok("plain"));
    }
}
