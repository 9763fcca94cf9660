//! Rate-limit headers on 200 and 429 responses, in each mode.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use std::time::Duration;

use limiter_http::{HeaderStyle, HttpLimiter, RetryAfter};
use support::*;

const NOW_MS: u64 = 1_700_000_000_000;

async fn server(
    style: HeaderStyle,
    retry_after: RetryAfter,
) -> (std::net::SocketAddr, limiter_core::ManualClock) {
    let (limiter, clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("2 per minute; 5 per hour")
        .headers(style)
        .retry_after(retry_after)
        .build()
        .unwrap();
    (serve(routes().layer(limiter.layer())).await, clock)
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

const ALL: [&str; 6] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
];

#[tokio::test]
async fn off_sends_none() {
    let (addr, _clock) = server(HeaderStyle::Off, RetryAfter::Seconds).await;
    let c = client();
    let ok = send(&c, addr, "GET", "/a", &[]).await;
    assert!(ALL.iter().all(|h| header(&ok, h).is_none()));
    send(&c, addr, "GET", "/a", &[]).await;
    let limited = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(limited.status(), 429);
    assert!(ALL.iter().all(|h| header(&limited, h).is_none()));
}

#[tokio::test]
async fn x_ratelimit_on_200_and_429() {
    let (addr, clock) = server(HeaderStyle::XRateLimit, RetryAfter::Seconds).await;
    let c = client();
    let ok = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(ok.status(), 200);
    // The deciding limit is the one with the fewest units left: 2 per minute.
    assert_eq!(header(&ok, "x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&ok, "x-ratelimit-remaining").as_deref(), Some("1"));
    let reset = (NOW_MS + 60_000) / 1000;
    assert_eq!(header(&ok, "x-ratelimit-reset"), Some(reset.to_string()));
    assert_eq!(header(&ok, "retry-after"), None, "no Retry-After on 200");
    assert_eq!(header(&ok, "ratelimit"), None);

    clock.advance(Duration::from_millis(10_500));
    send(&c, addr, "GET", "/a", &[]).await;
    let limited = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(
        header(&limited, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(&limited, "x-ratelimit-reset"),
        Some(reset.to_string())
    );
    // 49.5 s left, rounded up.
    assert_eq!(header(&limited, "retry-after").as_deref(), Some("50"));
}

#[tokio::test]
async fn ietf_fields_on_200_and_429() {
    let (addr, clock) = server(HeaderStyle::Ietf, RetryAfter::Seconds).await;
    let c = client();
    let ok = send(&c, addr, "GET", "/a", &[]).await;
    let policy = "\"2 per 1 minute\";q=2;w=60, \"5 per 1 hour\";q=5;w=3600";
    assert_eq!(header(&ok, "ratelimit-policy").as_deref(), Some(policy));
    assert_eq!(
        header(&ok, "ratelimit").as_deref(),
        Some("\"2 per 1 minute\";r=1;t=60")
    );
    assert_eq!(header(&ok, "x-ratelimit-limit"), None);
    assert_eq!(header(&ok, "retry-after"), None);

    clock.advance(Duration::from_millis(30_001));
    send(&c, addr, "GET", "/a", &[]).await;
    let limited = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(
        header(&limited, "ratelimit-policy").as_deref(),
        Some(policy)
    );
    assert_eq!(
        header(&limited, "ratelimit").as_deref(),
        Some("\"2 per 1 minute\";r=0;t=30")
    );
    assert_eq!(header(&limited, "retry-after").as_deref(), Some("30"));
}

#[tokio::test]
async fn both_with_http_date() {
    let (addr, clock) = server(HeaderStyle::Both, RetryAfter::HttpDate).await;
    let c = client();
    let ok = send(&c, addr, "GET", "/a", &[]).await;
    assert!(ALL[..5].iter().all(|h| header(&ok, h).is_some()));
    assert_eq!(header(&ok, "retry-after"), None);
    clock.advance(Duration::from_millis(100));
    send(&c, addr, "GET", "/a", &[]).await;
    let limited = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(limited.status(), 429);
    assert!(ALL.iter().all(|h| header(&limited, h).is_some()));
    // Retry at NOW + 60 s exactly: 1_700_000_060 s since the epoch.
    assert_eq!(
        header(&limited, "retry-after").as_deref(),
        Some(limiter_http::http_date(1_700_000_060).as_str())
    );
    assert_eq!(
        header(&limited, "retry-after").as_deref(),
        Some("Tue, 14 Nov 2023 22:14:20 GMT")
    );
}

#[tokio::test]
async fn a_client_waiting_retry_after_passes() {
    let (addr, clock) = server(HeaderStyle::XRateLimit, RetryAfter::Seconds).await;
    let c = client();
    clock.advance(Duration::from_millis(333));
    send(&c, addr, "GET", "/a", &[]).await;
    clock.advance(Duration::from_millis(20_400));
    send(&c, addr, "GET", "/a", &[]).await;
    let limited = send(&c, addr, "GET", "/a", &[]).await;
    let wait: u64 = header(&limited, "retry-after").unwrap().parse().unwrap();
    assert_eq!(wait, 40, "39.6 s rounds up to 40");
    clock.advance(Duration::from_secs(wait));
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
}
