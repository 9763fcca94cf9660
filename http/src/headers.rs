//! Rate-limit response headers.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::HeaderMap;
use limiter_core::{Decision, RateLimit, Timestamp};

/// Which rate-limit headers responses carry.
///
/// Values always come from the limit that decided the request: the one that rejected
/// it, or, when all passed, the one with the fewest units left. Every style but
/// [`Off`](Self::Off) also sends `Retry-After`, on 429 responses only, rounded up so
/// that a client that waits that long is not rejected again (none when the request
/// can never pass, its cost being above the limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// No rate-limit headers at all (the default, as in Flask-Limiter).
    #[default]
    Off,
    /// Flask-Limiter's `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (epoch seconds, rounded up).
    XRateLimit,
    /// The IETF fields of draft-ietf-httpapi-ratelimit-headers, in structured-field
    /// syntax: `RateLimit-Policy: "2 per 1 minute";q=2;w=60` listing every limit
    /// that applied, and `RateLimit: "2 per 1 minute";r=1;t=60` for the deciding one
    /// (`r` units remaining, `t` seconds until the window resets, rounded up).
    Ietf,
    /// Both of the above.
    Both,
}

/// The format of `Retry-After`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryAfter {
    /// Whole seconds to wait, rounded up (the default).
    #[default]
    Seconds,
    /// The HTTP date after which to retry, rounded up to the next whole second.
    HttpDate,
}

pub(crate) const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub(crate) const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub(crate) const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `d` in whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX)
}

fn ceil_epoch_secs(t: Timestamp) -> u64 {
    t.as_millis().div_ceil(1000)
}

fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// Writes the rate-limit headers of `style` for `decision` into `headers`;
/// `applied` lists every limit that applied to the request (for `RateLimit-Policy`).
/// `limited` adds `Retry-After`.
pub(crate) fn write(
    headers: &mut HeaderMap,
    style: HeaderStyle,
    retry_after: RetryAfter,
    decision: &Decision,
    applied: &[RateLimit],
    limited: bool,
) {
    let limit = decision.limit();
    if matches!(style, HeaderStyle::XRateLimit | HeaderStyle::Both) {
        headers.insert(X_LIMIT, number(limit.amount()));
        headers.insert(X_REMAINING, number(decision.remaining()));
        // A window that never resets (at the end of the limiter's time) has no reset.
        if let Some(reset) = decision.reset_at() {
            headers.insert(X_RESET, number(ceil_epoch_secs(reset)));
        }
    }
    if matches!(style, HeaderStyle::Ietf | HeaderStyle::Both) {
        let mut policy = String::new();
        let mut seen: Vec<&RateLimit> = Vec::with_capacity(applied.len());
        for l in applied {
            if seen.contains(&l) {
                continue;
            }
            seen.push(l);
            if !policy.is_empty() {
                policy.push_str(", ");
            }
            let window = ceil_secs(l.window()).max(1);
            let _ = write!(policy, "\"{l}\";q={};w={window}", l.amount());
        }
        if let Ok(value) = HeaderValue::from_str(&policy) {
            headers.insert(RATELIMIT_POLICY, value);
        }
        let mut current = format!("\"{limit}\";r={}", decision.remaining());
        if let Some(reset) = decision.reset_after() {
            let _ = write!(current, ";t={}", ceil_secs(reset));
        }
        if let Ok(value) = HeaderValue::from_str(&current) {
            headers.insert(RATELIMIT, value);
        }
    }
    if limited && style != HeaderStyle::Off {
        if let Some(wait) = decision.retry_after() {
            let value = match retry_after {
                RetryAfter::Seconds => number(ceil_secs(wait).max(1)),
                RetryAfter::HttpDate => {
                    let at = decision
                        .decided_at()
                        .add_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                    HeaderValue::from_str(&http_date(ceil_epoch_secs(at)))
                        .unwrap_or_else(|_| number(ceil_secs(wait).max(1)))
                }
            };
            headers.insert(RETRY_AFTER, value);
        }
    }
}

/// `secs` since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the
/// format of `Retry-After` with [`RetryAfter::HttpDate`]. Times after the year 9999,
/// which the format cannot express, read as its last second.
///
/// ```
/// assert_eq!(limiter_http::http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
/// assert_eq!(limiter_http::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
/// ```
pub fn http_date(secs: u64) -> String {
    // 9999-12-31T23:59:59Z: `httpdate` formats nothing later.
    const LAST: u64 = 253_402_300_799;
    let time = UNIX_EPOCH + Duration::from_secs(secs.min(LAST));
    httpdate::fmt_http_date(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_across_leap_years() {
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn rounding_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_epoch_secs(Timestamp::from_millis(1_500)), 2);
    }
}
