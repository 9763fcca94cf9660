//! Configuration files: the annotated example, errors with positions and field paths,
//! environment overrides, code and file building the same limiter, and reloading.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request, Response};
use limiter::config::{Config, ConfigError, Loader, Reloader};
use limiter::http::config::SourceKind;
use limiter::http::{
    HeaderStyle, HttpLimiter, KeySource, Limits, ProxyHeader, RejectionBody, RequestInfo, Route,
    TrustedProxies,
};
use limiter::strategy::SlidingWindow;
use limiter::{ManualClock, MemoryStorage, RateLimiter};
use tower::{Service, ServiceExt};

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/limiter.toml")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Loader::without_env().parse(text, "test.toml")
}

#[test]
fn the_annotated_example_loads() {
    let config = Loader::without_env().load(example_path()).unwrap();
    assert_eq!(config.strategy.to_string(), "sliding-window-counter");
    assert_eq!(config.routes.len(), 6);
    assert_eq!(config.default_limits[0].limits.limits().len(), 2);
    assert!(matches!(
        config.key.kind,
        SourceKind::Forwarded {
            trust: TrustedProxies::Hops(1),
            ..
        }
    ));
    assert_eq!(config.key.ipv6_prefix, 56);
    assert_eq!(config.storage.as_ref().unwrap().to_string(), "memory://");
}

#[tokio::test]
async fn the_annotated_example_builds() {
    let config = Loader::without_env().load(example_path()).unwrap();
    limiter::config::build(&config).await.unwrap();
}

/// Every kind of mistake, with the position and the field path it is reported at.
#[test]
fn mistakes_name_the_file_position_field_and_problem() {
    let cases: &[(&str, &str)] = &[
        ("stratgy = \"gcra\"", "test.toml:1:1: stratgy: unknown field `stratgy`, expected one of `storage`"),
        (
            "default_limits = [\"10 per fortnight\"]",
            "test.toml:1:19: default_limits[0]: malformed limit \"10 per fortnight\"",
        ),
        ("strategy = \"leaky\"", "test.toml:1:12: strategy: unknown strategy \"leaky\""),
        (
            "[storage]\nuri = \"postgres://db\"",
            "test.toml:2:7: storage.uri: unknown storage scheme \"postgres\"",
        ),
        (
            "[storage]\nuri = \"memory://?colour=red\"",
            "test.toml:2:7: storage.uri: invalid option \"colour\"",
        ),
        ("[storage]\nuri = \"memory://\"\nmemory = {}", "test.toml:1:1: storage: the storage table takes only one"),
        ("storage = \"memroy://\"", "test.toml:1:11: storage: unknown storage scheme \"memroy\""),
        ("storage = 5", "test.toml:1:11: storage: invalid type: integer `5`, expected a storage URI, or a table"),
        ("meta_limits = [{ limits = \"1/hour\", shared = \"x\" }]", "test.toml:1:15: meta_limits: meta limits count a client's rejections and cannot be shared"),
        (
            "[key]\nsource = \"forwarded\"",
            "test.toml:1:1: key: source = \"forwarded\" needs exactly one of `trusted_hops` and `trusted_networks`",
        ),
        (
            "[key]\nsource = \"forwarded\"\ntrusted_hops = 1\ntrusted_networks = [\"10.0.0.0/8\"]",
            "key: source = \"forwarded\" needs exactly one",
        ),
        (
            "[key]\nsource = \"forwarded\"\ntrusted_networks = [\"10.0.0.0/33\"]",
            "key: \"10.0.0.0/33\" is not a network",
        ),
        ("[key]\nsource = \"header\"\nheader = \"x api\"", "key: \"x api\" is not a valid header name"),
        ("[key]\nsource = \"peer\"\nipv6_prefix = 129", "key: ipv6_prefix 129 is longer than 128 bits"),
        ("[key]\nsorce = \"peer\"", "test.toml:2:1: key.sorce: unknown field `sorce`, expected one of `source`"),
        ("[failure]\npolicy = \"fail-open\"\nmax_probe = \"3s\"", "failure: `first_probe` and `max_probe` need policy = \"fallback\""),
        ("[failure]\npolicy = \"fallback\"\nfirst_probe = \"10s\"\nmax_probe = \"3s\"", "failure: max_probe (3s) is shorter than first_probe (10s)"),
        ("[failure]\ndeadline = \"0ms\"", "failure: deadline: \"0ms\" is not a duration"),
        ("[headers]\nstyle = \"fancy\"", "test.toml:2:9: headers.style: unknown variant `fancy`"),
        ("rejection_body = \"html\"", "rejection_body: unknown variant `html`"),
        (
            "[[routes]]\npath = \"/a\"\nexempt = true\nlimits = [\"1/second\"]",
            "routes[0]: route \"/a\" needs exactly one of",
        ),
        ("[[routes]]\npath = \"/a\"", "routes[0]: route \"/a\" needs exactly one of"),
        ("[[routes]]\npath = \"a\"\nexempt = true", "routes[0]: route path \"a\" must start with /"),
        (
            "[[routes]]\npath = \"/a\"\nexempt = true\n[[routes]]\npath = \"/a\"\nexempt = true",
            "routes: route \"/a\" is configured twice",
        ),
        (
            "[[routes]]\npath = \"/a\"\n[[routes.limits]]\nlimits = \"1/second\"\ncost = 0",
            "routes[0].limits[0]: a request costs at least 1",
        ),
        (
            "[[routes]]\npath = \"/a\"\n[[routes.limits]]\nlimits = \"1/second\"\nmethods = [\"G T\"]",
            "routes[0].limits[0].methods[0]: \"G T\" is not an HTTP method",
        ),
        (
            "[[routes]]\npath = \"/a\"\n[[routes.limits]]\nlimit = \"1/second\"",
            "test.toml:4:1: routes[0].limits[0].limit: unknown field `limit`",
        ),
        ("enabled = \"yes\"", "test.toml:1:11: enabled: invalid type: string \"yes\", expected a boolean"),
        ("default_limits = [", "test.toml:1:19:"),
    ];
    let mut failures = Vec::new();
    for (text, expected) in cases {
        let err = parse(text).expect_err(text).to_string();
        if !err.contains(expected) || err.contains('\n') {
            failures.push(format!("{text:?}\n  gave: {err}\n  want: {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn environment_variables_override_fields_and_name_themselves_when_wrong() {
    let text = "strategy = \"fixed-window\"\ndefault_limits = [\"1 per second\"]\n[storage]\nuri = \"memory://\"";
    let loader = Loader::with_env([
        ("LIMITER_STRATEGY", "gcra"),
        ("LIMITER_ENABLED", "false"),
        ("LIMITER_DEFAULT_LIMITS", "5 per minute; 1 per second"),
        ("LIMITER_FAILURE_DEADLINE", "none"),
        ("LIMITER_KEY_SOURCE", "forwarded"),
        ("LIMITER_KEY_TRUSTED_NETWORKS", "10.0.0.0/8, ::1"),
        ("LIMITER_STORAGE_URI", "memory://?max_keys=10"),
        ("LIMITER_REDIS_URL", "redis://elsewhere"),
        ("LIMITER_NAMESPAC", "x"),
    ]);
    assert_eq!(
        loader.misspelt(),
        [(
            "LIMITER_NAMESPAC".to_owned(),
            "LIMITER_NAMESPACE".to_owned()
        )]
    );
    let config = loader.parse(text, "test.toml").unwrap();
    assert_eq!(config.strategy.to_string(), "gcra");
    assert!(!config.enabled);
    assert_eq!(config.default_limits[0].limits.limits().len(), 2);
    assert_eq!(config.failure.deadline, None);
    assert!(matches!(
        &config.key.kind,
        SourceKind::Forwarded { trust: TrustedProxies::Networks(n), .. } if n.len() == 2
    ));
    assert_eq!(
        config.storage.as_ref().unwrap().to_string(),
        "memory://?max_keys=10"
    );

    let cases = [
        ("LIMITER_ENABLED", "maybe", "environment variable LIMITER_ENABLED: \"maybe\" is not true or false"),
        ("LIMITER_DEFAULT_LIMITS", "3 per fortnight", "environment variable LIMITER_DEFAULT_LIMITS: malformed limit"),
        ("LIMITER_STRATEGY", "leaky", "environment variable LIMITER_STRATEGY: unknown strategy"),
        ("LIMITER_STORAGE_URI", "postgres://x", "environment variable LIMITER_STORAGE_URI: unknown storage scheme"),
        ("LIMITER_KEY_TRUSTED_HOPS", "two", "environment variable LIMITER_KEY_TRUSTED_HOPS: \"two\" is not a whole number"),
        ("LIMITER_KEY_TRUSTED_HOPS", "2", "environment variable LIMITER_KEY_TRUSTED_HOPS: `trusted_hops` and `trusted_networks` need"),
    ];
    for (name, value, expected) in cases {
        let err = Loader::with_env([(name, value)])
            .parse(text, "test.toml")
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(expected),
            "{name}={value}\n  gave: {err}\n  want: {expected}"
        );
    }
}

#[test]
fn a_storage_uri_alone_is_short_for_the_table() {
    let config = parse("storage = \"memory://?max_keys=5\"").unwrap();
    assert_eq!(config.storage.unwrap().to_string(), "memory://?max_keys=5");
}

#[test]
fn other_serde_formats_work_through_the_types() {
    let json = r#"{"storage": {"uri": "memory://"}, "default_limits": ["1/second"],
                   "routes": [{"path": "/a", "exempt": true}], "failure": {"policy": "fail-open"}}"#;
    let config: Config = serde_json::from_str(json).unwrap();
    assert_eq!(config.routes.len(), 1);
    let err = serde_json::from_str::<Config>(r#"{"stratgy": "gcra"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `stratgy`"), "{err}");
}

#[tokio::test]
async fn a_missing_storage_is_an_error_not_a_default() {
    let config = parse("default_limits = [\"1 per second\"]").unwrap();
    let err = limiter::config::build(&config).await.unwrap_err();
    assert!(err.to_string().contains("no storage"), "{err}");
}

const POLICY: &str = r#"
strategy = "sliding-window-counter"
namespace = "t"
key_prefix = "shop"
default_limits = ["3 per minute"]
application_limits = ["10 per minute"]
rejection_body = "problem"
[storage]
uri = "memory://"
[key]
source = "forwarded"
trusted_hops = 1
ipv6_prefix = 56
[headers]
style = "both"
[[routes]]
path = "/login"
methods = ["POST"]
limits = ["2 per minute"]
[[routes]]
path = "/search"
with_defaults = true
[[routes.limits]]
limits = "4 per minute"
shared = "search"
cost = 2
[[routes]]
path = "/suggest"
[[routes.limits]]
limits = "4 per minute"
shared = "search"
[[routes]]
path = "/api"
[[routes.limits]]
limits = "2 per minute"
per_method = true
key = { source = "header", header = "x-api-key" }
[[routes]]
path = "/health"
exempt = true
"#;

fn in_code(core: RateLimiter) -> HttpLimiter {
    HttpLimiter::builder(core)
        .key(
            KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(1))
                .ipv6_prefix(56),
        )
        .key_prefix("shop")
        .default_limits("3 per minute")
        .application_limits("10 per minute")
        .headers(HeaderStyle::Both)
        .rejection_body(RejectionBody::Problem)
        .route(
            "/login",
            Route::limits(Limits::new("2 per minute").methods([Method::POST])),
        )
        .route(
            "/search",
            Route::limits(Limits::new("4 per minute").shared("search").cost(2)).with_defaults(),
        )
        .route(
            "/suggest",
            Route::limits(Limits::new("4 per minute").shared("search")),
        )
        .route(
            "/api",
            Route::limits(
                Limits::new("2 per minute")
                    .per_method()
                    .key(KeySource::header("x-api-key")),
            ),
        )
        .route("/health", Route::exempt())
        .build()
        .unwrap()
}

fn core(clock: &ManualClock) -> RateLimiter {
    RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .strategy(SlidingWindow)
        .namespace("t")
        .clock(clock.clone())
        .build()
}

/// What a limiter answers a request: status, rate-limit headers, body.
async fn answer(
    limiter: &HttpLimiter,
    method: &str,
    route: &str,
    forwarded: &str,
    api_key: Option<&str>,
) -> String {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_str(forwarded).unwrap());
    if let Some(key) = api_key {
        headers.insert("x-api-key", HeaderValue::from_str(key).unwrap());
    }
    let request = RequestInfo::new(method, route, &headers)
        .with_route(route)
        .with_peer("10.0.0.1:4000".parse().unwrap());
    let mut out = HeaderMap::new();
    let (status, body) = match limiter.check(&request).await {
        Ok(admission) => {
            admission.write_headers(&mut out);
            (200, String::new())
        }
        Err(response) => {
            out = response.headers().clone();
            (response.status().as_u16(), response.body().clone())
        }
    };
    let mut headers: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
        .collect();
    headers.sort();
    format!("{status} {headers:?} {body}")
}

#[tokio::test]
async fn code_and_file_build_the_same_limiter() {
    let (code_clock, file_clock) = (ManualClock::new(1_000_000), ManualClock::new(1_000_000));
    let from_code = in_code(core(&code_clock));
    let config = parse(POLICY).unwrap();
    let storage = config.storage.as_ref().unwrap().connect().await.unwrap();
    let from_file = config
        .http_builder(
            config
                .limiter_builder(storage)
                .clock(file_clock.clone())
                .build(),
        )
        .build()
        .unwrap();

    // (method, route, X-Forwarded-For, API key, milliseconds to advance before)
    let table: &[(&str, &str, &str, Option<&str>, u64)] = &[
        ("GET", "/", "203.0.113.1", None, 0),
        ("GET", "/", "203.0.113.1", None, 0),
        ("GET", "/", "203.0.113.1", None, 0),
        ("GET", "/", "203.0.113.1", None, 0), // the defaults are spent
        ("GET", "/other", "203.0.113.1", None, 0), // another route, another budget
        ("GET", "/login", "203.0.113.1", None, 0), // GET: defaults
        ("POST", "/login", "203.0.113.1", None, 0),
        ("POST", "/login", "203.0.113.1", None, 0),
        ("POST", "/login", "203.0.113.1", None, 0), // 2 per minute
        ("GET", "/search", "198.51.100.7", None, 0), // costs 2 of the shared 4
        ("GET", "/suggest", "198.51.100.7", None, 0),
        ("GET", "/suggest", "198.51.100.7", None, 0), // the shared budget is spent
        ("GET", "/search", "198.51.100.7", None, 0),
        ("GET", "/api", "198.51.100.7", Some("k1"), 0),
        ("GET", "/api", "198.51.100.7", Some("k1"), 0),
        ("GET", "/api", "198.51.100.7", Some("k1"), 0), // per key
        ("POST", "/api", "198.51.100.7", Some("k1"), 0), // per method
        ("GET", "/api", "198.51.100.7", Some("k2"), 0),
        ("GET", "/api", "198.51.100.7", None, 0), // no key: the set is skipped
        ("GET", "/health", "198.51.100.7", None, 0),
        ("GET", "/", "2001:db8:0:1::1", None, 0),
        ("GET", "/", "2001:db8:0:2::1", None, 0), // the same /56
        ("GET", "/", "2001:db8:0:3::1", None, 0),
        ("GET", "/", "2001:db8:0:4::1", None, 0),  // over
        ("GET", "/", "203.0.113.1", None, 30_000), // half a window later: still over
        ("GET", "/", "203.0.113.1", None, 61_000),
        ("GET", "/x", "192.0.2.1", None, 61_000),
        ("GET", "/y", "192.0.2.1", None, 0),
        ("GET", "/z", "192.0.2.1", None, 0),
        ("GET", "/w", "192.0.2.1", None, 0),
    ];
    let mut rejected = 0;
    for (i, (method, route, forwarded, key, advance)) in table.iter().enumerate() {
        code_clock.advance(Duration::from_millis(*advance));
        file_clock.advance(Duration::from_millis(*advance));
        let a = answer(&from_code, method, route, forwarded, *key).await;
        let b = answer(&from_file, method, route, forwarded, *key).await;
        assert_eq!(a, b, "row {i}: {method} {route}");
        rejected += usize::from(a.starts_with("429"));
    }
    // The table does exercise the limits.
    assert!(rejected >= 6, "{rejected} rejections");
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("limiter-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("limiter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const BEFORE: &str =
    "default_limits = [\"2 per minute\"]\n[charge]\nunmatched = true\n[storage]\nuri = \"memory://\"\n";
const AFTER: &str = "default_limits = [\"2 per minute\"]\napplication_limits = [\"100 per hour\"]\n\
    [headers]\nstyle = \"x-ratelimit\"\n[charge]\nunmatched = true\n[storage]\nuri = \"memory://\"\n";

#[tokio::test]
async fn a_reload_swaps_the_policy_keeps_the_counts_and_spares_requests_in_flight() {
    let path = temp_file("reload", BEFORE);
    let clock = ManualClock::new(1_000_000);
    let tick = clock.clone();
    let mut reloader = Reloader::start_with(
        &path,
        Loader::without_env(),
        move |core| core.clock(tick.clone()),
        |http| http,
    )
    .await
    .unwrap();

    // The service: the reloading layer over a handler that answers 200.
    let handler = tower::service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let mut service = tower::Layer::layer(&reloader.handle().layer(), handler);
    // (status, X-RateLimit-Limit)
    async fn get<S>(service: &mut S) -> (u16, Option<String>)
    where
        S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
    {
        let mut request = Request::new(String::new());
        let peer: std::net::SocketAddr = "192.0.2.9:1".parse().unwrap();
        request.extensions_mut().insert(peer);
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        let limit = response
            .headers()
            .get("x-ratelimit-limit")
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), limit)
    }
    assert_eq!(get(&mut service).await, (200, None));
    assert_eq!(get(&mut service).await, (200, None));
    assert_eq!(get(&mut service).await, (429, None));

    // A request that started under the first policy keeps it.
    let in_flight = reloader.handle().current();

    std::fs::write(&path, AFTER).unwrap();
    reloader.reload().await.unwrap();
    // The new policy sends headers; the count of the unchanged limit was kept.
    assert_eq!(get(&mut service).await, (429, Some("2".into())));
    let headers = HeaderMap::new();
    let request = RequestInfo::new("GET", "/", &headers).with_peer("192.0.2.9:1".parse().unwrap());
    let old = in_flight.check(&request).await.unwrap_err();
    assert!(
        old.headers().get("x-ratelimit-limit").is_none(),
        "the old policy"
    );

    // An invalid file leaves the running policy in place.
    std::fs::write(&path, "default_limits = [\"3 per fortnight\"]\n").unwrap();
    let err = reloader.reload().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("limiter.toml:1:19: default_limits[0]"),
        "{err}"
    );
    clock.advance(Duration::from_secs(61));
    assert_eq!(get(&mut service).await, (200, Some("2".into())));
    assert_eq!(reloader.config().application_limits.len(), 1);
}
