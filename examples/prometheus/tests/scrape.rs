//! The example's real server on a loopback port: requests until one is rejected,
//! then a scrape of `/metrics`, whose counters, histogram and gauges must say so,
//! with their labels.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use limiter::http::{HttpLimiter, RecorderMetrics};
use limiter::storage::BreakerConfig;
use limiter::{MemoryStorage, RateLimiter};

/// The value of the sample `name{labels}` in a Prometheus text scrape, whatever the
/// order of its labels; `None` when it is absent.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if series_name != name {
            return None;
        }
        let mut found: Vec<(&str, &str)> = rest
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        found.sort_unstable();
        let mut wanted = labels.to_vec();
        wanted.sort_unstable();
        (found == wanted).then(|| value.parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_shows_in_the_scrape_with_its_labels() {
    let handle = example_prometheus::install_recorder().unwrap();
    let app = example_prometheus::app(handle.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let hello = format!("http://{addr}/hello");

    let mut allowed = 0;
    let mut rejected = false;
    for _ in 0..10 {
        let status = client.get(&hello).send().await.unwrap().status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            rejected = true;
            break;
        }
        assert_eq!(status, reqwest::StatusCode::OK);
        allowed += 1;
    }
    assert!(rejected, "no 429 within 10 requests");
    assert_eq!(allowed, 3, "3 per minute");

    let scrape = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = [
        ("route", "/hello"),
        ("limit", "3 per 1 minute"),
        ("storage", "memory"),
    ];
    assert_eq!(
        sample(&scrape, "limiter_requests_allowed_total", &labels),
        Some(3.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "limiter_requests_rejected_total", &labels),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "limiter_requests_shadow_rejected_total", &labels),
        None,
        "{scrape}"
    );
    let timed = [("route", "/hello"), ("storage", "memory")];
    assert_eq!(
        sample(&scrape, "limiter_decision_duration_seconds_count", &timed),
        Some(4.0),
        "{scrape}"
    );
    let mut le = timed.to_vec();
    le.push(("le", "+Inf"));
    assert_eq!(
        sample(&scrape, "limiter_decision_duration_seconds_bucket", &le),
        Some(4.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "limiter_fallback_active", &[]),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "limiter_memory_keys", &[("storage", "memory")]),
        Some(1.0),
        "one client on one route: {scrape}"
    );
    assert!(
        sample(&scrape, "limiter_memory_bytes", &[("storage", "memory")]).is_some_and(|b| b > 0.0),
        "{scrape}"
    );
    assert!(
        scrape.contains("# TYPE limiter_requests_allowed_total counter"),
        "{scrape}"
    );
    assert!(
        scrape.contains("# TYPE limiter_decision_duration_seconds histogram"),
        "{scrape}"
    );

    // A limiter whose storage has a circuit breaker (network storages get one by
    // default) reports its state.
    let guarded = RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .circuit_breaker(Some(BreakerConfig::default()))
        .build();
    let guarded = HttpLimiter::builder(guarded)
        .default_limits("1 per second")
        .storage_name("guarded")
        .build()
        .unwrap();
    RecorderMetrics::new().observe(&guarded);
    assert_eq!(
        sample(
            &handle.render(),
            "limiter_circuit_breaker_open",
            &[("storage", "guarded")]
        ),
        Some(0.0)
    );
    server.abort();
}
