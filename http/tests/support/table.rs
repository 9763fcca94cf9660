//! One table of policy cases, run against every adapter: each case builds a limiter,
//! sends requests (method, path, headers, peer) to a server wrapped in it, and
//! states the status codes and chosen headers that must come back.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use limiter_core::{ManualClock, RateLimiter};
use limiter_http::{
    FailurePolicy, HeaderStyle, HttpLimiter, HttpLimiterBuilder, KeySource, Limits, ProxyHeader,
    RejectionBody, Route, TrustedProxies,
};

use super::Switch;

/// The manual clock's time in every case.
pub const NOW_MS: u64 = 1_700_000_000_000;

/// What one header (or, named `body`, the body) must be.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Exactly this value.
    Is(&'static str),
    /// Present, any value.
    Present,
    /// Absent.
    Absent,
    /// Containing this text.
    Contains(&'static str),
}

use Expect::*;

/// One request and what must come back.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: &'static str,
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    /// The client's address: a loopback address the client binds to.
    pub peer: &'static str,
    pub status: u16,
    pub expect: Vec<(&'static str, Expect)>,
}

fn step(method: &'static str, path: &'static str, status: u16) -> Step {
    Step {
        method,
        path,
        headers: Vec::new(),
        peer: "127.0.0.1",
        status,
        expect: Vec::new(),
    }
}

fn get(path: &'static str, status: u16) -> Step {
    step("GET", path, status)
}

fn post(path: &'static str, status: u16) -> Step {
    step("POST", path, status)
}

impl Step {
    fn header(mut self, name: &'static str, value: &'static str) -> Step {
        self.headers.push((name, value));
        self
    }
    fn peer(mut self, peer: &'static str) -> Step {
        self.peer = peer;
        self
    }
    fn expect(mut self, name: &'static str, expect: Expect) -> Step {
        self.expect.push((name, expect));
        self
    }
}

/// One policy case.
pub struct Case {
    pub name: &'static str,
    pub build: fn(HttpLimiterBuilder) -> HttpLimiterBuilder,
    /// Whether the storage is switched off before the first request.
    pub storage_down: bool,
    pub steps: Vec<Step>,
}

fn case(
    name: &'static str,
    build: fn(HttpLimiterBuilder) -> HttpLimiterBuilder,
    steps: Vec<Step>,
) -> Case {
    Case {
        name,
        build,
        storage_down: false,
        steps,
    }
}

/// The table.
pub fn cases() -> Vec<Case> {
    vec![
        case(
            "defaults, one budget per route",
            |b| b.default_limits("1 per minute"),
            vec![
                get("/a", 200),
                get("/b", 200),
                get("/a", 429),
                get("/users/1", 200),
                get("/users/2", 429), // the same pattern, the same budget
                get("/a", 200).peer("127.0.0.2"),
            ],
        ),
        case(
            "route limits replace the defaults",
            |b| {
                b.default_limits("1 per minute")
                    .route("/b", Route::limits(Limits::new("3 per minute")))
            },
            vec![
                get("/b", 200),
                get("/b", 200),
                get("/b", 200),
                get("/b", 429),
                get("/a", 200),
                get("/a", 429),
            ],
        ),
        case(
            "exempt route",
            |b| {
                b.default_limits("1 per minute")
                    .headers(HeaderStyle::Both)
                    .route("/ping", Route::exempt())
            },
            vec![
                get("/ping", 200).expect("x-ratelimit-limit", Absent),
                get("/ping", 200),
                get("/ping", 200).expect("ratelimit", Absent),
                get("/a", 200),
            ],
        ),
        case(
            "application limits, one budget for all routes",
            |b| b.application_limits("2 per minute"),
            vec![
                get("/a", 200),
                get("/b", 200),
                get("/c", 429),
                get("/ping", 429),
            ],
        ),
        case(
            "shared limits",
            |b| {
                let ab = || Limits::new("2 per minute").shared("ab");
                b.route("/a", Route::limits(ab()))
                    .route("/b", Route::limits(ab()))
            },
            vec![
                get("/a", 200),
                get("/b", 200),
                get("/a", 429),
                get("/b", 429),
                get("/c", 200),
            ],
        ),
        case(
            "per-method limits",
            |b| {
                b.route(
                    "/a",
                    Route::limits(Limits::new("1 per minute").per_method()),
                )
            },
            vec![
                get("/a", 200),
                post("/a", 200),
                get("/a", 429),
                post("/a", 429),
            ],
        ),
        case(
            "method filter: the defaults for the other methods",
            |b| {
                b.default_limits("2 per minute").route(
                    "/a",
                    Route::limits(Limits::new("1 per minute").methods([Method::POST])),
                )
            },
            vec![
                post("/a", 200),
                post("/a", 429),
                get("/a", 200),
                get("/a", 200),
                get("/a", 429),
            ],
        ),
        case(
            "a header key",
            |b| {
                b.default_limits("1 per minute")
                    .key(KeySource::header("x-api-key"))
            },
            vec![
                get("/a", 200).header("x-api-key", "k1"),
                get("/a", 200).header("x-api-key", "k2"),
                get("/a", 429).header("x-api-key", "k1"),
                get("/a", 200), // no key: not limited by this set
                get("/a", 200),
            ],
        ),
        case(
            "trusted proxy hops",
            |b| {
                b.default_limits("1 per minute").key(KeySource::forwarded(
                    ProxyHeader::XForwardedFor,
                    TrustedProxies::Hops(1),
                ))
            },
            vec![
                get("/a", 200).header("x-forwarded-for", "203.0.113.1"),
                get("/a", 200).header("x-forwarded-for", "203.0.113.2"),
                // A spoofed entry on the left is not believed: one hop only.
                get("/a", 429).header("x-forwarded-for", "198.51.100.9, 203.0.113.1"),
                get("/a", 200), // no header: the peer
            ],
        ),
        case(
            "dynamic limits and cost",
            |b| {
                let free: Arc<[limiter_core::RateLimit]> =
                    limiter_core::parse_many("1 per minute").unwrap().into();
                let pro: Arc<[limiter_core::RateLimit]> =
                    limiter_core::parse_many("3 per minute").unwrap().into();
                b.route(
                    "/a",
                    Route::limits(Limits::dynamic(move |r| match r.header("x-plan") {
                        Some("pro") => Some(pro.clone()),
                        _ => Some(free.clone()),
                    })),
                )
                .route("/b", Route::limits(Limits::new("3 per minute").cost(2)))
            },
            vec![
                get("/a", 200).header("x-plan", "pro"),
                get("/a", 200).header("x-plan", "pro"),
                get("/a", 200), // free: a limit of its own
                get("/a", 429),
                get("/a", 200).header("x-plan", "pro"),
                get("/a", 429).header("x-plan", "pro"),
                get("/b", 200),
                get("/b", 429),
            ],
        ),
        case(
            "meta limits",
            |b| b.default_limits("1 per minute").meta_limits("1 per hour"),
            vec![
                get("/a", 200),
                get("/a", 429),
                get("/b", 429),
                get("/c", 429),
            ],
        ),
        case(
            "unmatched path not charged",
            |b| {
                b.default_limits("1 per minute")
                    .headers(HeaderStyle::XRateLimit)
            },
            vec![
                get("/nope", 404).expect("x-ratelimit-limit", Absent),
                get("/nope", 404),
                get("/other/nope", 404),
                get("/a", 200).expect("x-ratelimit-remaining", Is("0")),
            ],
        ),
        case(
            "unmatched paths charged when asked, in one budget",
            |b| b.default_limits("1 per minute").charge_unmatched(true),
            vec![get("/nope", 404), get("/other", 429), get("/a", 200)],
        ),
        case(
            "OPTIONS preflight not charged",
            |b| {
                b.default_limits("1 per minute")
                    .headers(HeaderStyle::XRateLimit)
            },
            vec![
                step("OPTIONS", "/a", 405).expect("x-ratelimit-limit", Absent),
                step("OPTIONS", "/a", 405),
                get("/a", 200).expect("x-ratelimit-remaining", Is("0")),
            ],
        ),
        case(
            "405 given back",
            |b| {
                b.default_limits("1 per minute")
                    .headers(HeaderStyle::XRateLimit)
            },
            vec![
                post("/b", 405).expect("x-ratelimit-limit", Absent),
                post("/b", 405),
                get("/b", 200).expect("x-ratelimit-remaining", Is("0")),
                get("/b", 429),
            ],
        ),
        case(
            "405 charged when asked",
            |b| {
                b.default_limits("1 per minute")
                    .charge_method_not_allowed(true)
            },
            vec![post("/b", 405), get("/b", 429)],
        ),
        case(
            "X-RateLimit headers and Retry-After",
            |b| {
                b.default_limits("2 per minute")
                    .headers(HeaderStyle::XRateLimit)
            },
            vec![
                get("/a", 200)
                    .expect("x-ratelimit-limit", Is("2"))
                    .expect("x-ratelimit-remaining", Is("1"))
                    .expect("x-ratelimit-reset", Present)
                    .expect("retry-after", Absent)
                    .expect("ratelimit", Absent),
                get("/a", 200).expect("x-ratelimit-remaining", Is("0")),
                get("/a", 429)
                    .expect("x-ratelimit-limit", Is("2"))
                    .expect("x-ratelimit-remaining", Is("0"))
                    .expect("x-ratelimit-reset", Present)
                    .expect("retry-after", Is("60"))
                    .expect("content-type", Is("text/plain; charset=utf-8"))
                    .expect("body", Is("Too many requests: 2 per 1 minute\n")),
            ],
        ),
        case(
            "IETF headers",
            |b| {
                b.default_limits("2 per minute; 5 per hour")
                    .headers(HeaderStyle::Ietf)
            },
            vec![
                get("/a", 200)
                    .expect(
                        "ratelimit-policy",
                        Is("\"2 per 1 minute\";q=2;w=60, \"5 per 1 hour\";q=5;w=3600"),
                    )
                    .expect("ratelimit", Is("\"2 per 1 minute\";r=1;t=60"))
                    .expect("x-ratelimit-limit", Absent),
                get("/a", 200),
                get("/a", 429)
                    .expect("ratelimit", Is("\"2 per 1 minute\";r=0;t=60"))
                    .expect("retry-after", Is("60")),
            ],
        ),
        case(
            "problem-JSON 429 body",
            |b| {
                b.default_limits("1 per minute")
                    .rejection_body(RejectionBody::Problem)
            },
            vec![
                get("/a", 200),
                get("/a", 429)
                    .expect("content-type", Is("application/problem+json"))
                    .expect("body", Contains("\"status\":429"))
                    .expect("body", Contains("\"retry_after\":60")),
            ],
        ),
        case(
            "deduct_when: only failed logins count",
            |b| {
                b.headers(HeaderStyle::XRateLimit).route(
                    "/login",
                    Route::limits(
                        Limits::new("2 per minute")
                            .deduct_when(|r| r.status() == StatusCode::UNAUTHORIZED),
                    ),
                )
            },
            vec![
                post("/login", 200).header("x-password", "secret"),
                post("/login", 200).header("x-password", "secret"),
                post("/login", 200).header("x-password", "secret"),
                post("/login", 401).expect("x-ratelimit-remaining", Is("1")),
                post("/login", 401).expect("x-ratelimit-remaining", Is("0")),
                post("/login", 429),
                post("/login", 429).header("x-password", "secret"),
            ],
        ),
        Case {
            name: "fail closed: 503 with the storage off",
            build: |b| {
                b.default_limits("1 per minute")
                    .route("/ping", Route::exempt())
                    .on_storage_failure(FailurePolicy::FailClosed)
            },
            storage_down: true,
            steps: vec![
                get("/a", 503).expect("body", Contains("Service unavailable")),
                get("/ping", 200),
            ],
        },
        Case {
            name: "fail open with the storage off",
            build: |b| {
                b.default_limits("1 per minute")
                    .on_storage_failure(FailurePolicy::FailOpen)
            },
            storage_down: true,
            steps: vec![get("/a", 200), get("/a", 200)],
        },
        case(
            "the handler reads the decision",
            |b| {
                b.default_limits("3 per minute")
                    .route("/ping", Route::exempt())
            },
            vec![
                get("/info", 200).expect("body", Is("remaining=2")),
                get("/info", 200).expect("body", Is("remaining=1")),
                get("/info", 200).expect("body", Is("remaining=0")),
                get("/info", 429),
            ],
        ),
        case(
            "shadow mode lets through what it would reject",
            |b| {
                b.default_limits("1 per minute")
                    .headers(HeaderStyle::XRateLimit)
                    .shadow(true)
            },
            vec![
                get("/info", 200).expect("x-ratelimit-remaining", Is("0")),
                get("/info", 200)
                    .expect("x-ratelimit-remaining", Absent)
                    .expect("body", Is("unlimited")),
            ],
        ),
        case(
            "a shadow limit beside an enforced one",
            |b| {
                b.default_limits(Limits::new("1 per minute").shadow())
                    .default_limits("3 per minute")
                    .headers(HeaderStyle::XRateLimit)
            },
            vec![
                get("/a", 200).expect("x-ratelimit-limit", Is("3")),
                get("/a", 200).expect("x-ratelimit-remaining", Is("1")),
                get("/a", 200),
                get("/a", 429),
            ],
        ),
    ]
}

/// What one adapter answered to one step, in one line.
fn observed(status: u16, response: &[(String, Option<String>)]) -> String {
    let mut line = status.to_string();
    for (name, value) in response {
        line.push_str(&format!(" {name}={value:?}"));
    }
    line
}

/// Runs `case` against a server made by `serve`; returns one line per step and
/// the mismatches with the table.
pub async fn run<F, Fut>(case: &Case, serve: F) -> (Vec<String>, Vec<String>)
where
    F: Fn(HttpLimiter) -> Fut,
    Fut: Future<Output = SocketAddr>,
{
    let storage = Switch::default();
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .clock(ManualClock::new(NOW_MS))
        .build();
    let limiter = (case.build)(HttpLimiter::builder(limiter)).build().unwrap();
    if case.storage_down {
        storage.down();
    }
    let addr = serve(limiter).await;
    let mut lines = Vec::new();
    let mut mismatches = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .local_address(step.peer.parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let method = reqwest::Method::from_bytes(step.method.as_bytes()).unwrap();
        let mut request = client.request(method, format!("http://{addr}{}", step.path));
        for (name, value) in &step.headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let mut seen = Vec::new();
        if status != step.status {
            mismatches.push(format!(
                "{}: step {i} ({} {}): status {status}, expected {}",
                case.name, step.method, step.path, step.status
            ));
        }
        for (name, expect) in &step.expect {
            let value = if *name == "body" {
                Some(body.clone())
            } else {
                headers.get(*name).map(|v| v.to_str().unwrap().to_owned())
            };
            let ok = match (expect, value.as_deref()) {
                (Is(want), Some(got)) => *want == got,
                (Present, Some(_)) | (Absent, None) => true,
                (Contains(want), Some(got)) => got.contains(want),
                _ => false,
            };
            if !ok {
                mismatches.push(format!(
                    "{}: step {i} ({} {}): {name} is {value:?}, expected {expect:?}",
                    case.name, step.method, step.path
                ));
            }
            seen.push((name.to_string(), value));
        }
        lines.push(format!(
            "{} {} -> {}",
            step.method,
            step.path,
            observed(status, &seen)
        ));
    }
    (lines, mismatches)
}
