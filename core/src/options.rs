//! Reading settings written as text, such as the query options of a storage URI
//! (`redis://host?command_timeout=500ms`), with one grammar for every storage.

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
