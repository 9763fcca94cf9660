//! What the limiter reports: labelled metrics events (route, limit, storage), decision
//! times, and `tracing` events with their fields, none of which names a client's key
//! in plain text above `DEBUG`.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use limiter_conformance::events::Recorder;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use limiter_core::storage::{async_trait, Abilities, Storage, StorageKey, Version, Versioned};
use limiter_core::{RateLimiter, StorageError, StorageErrorKind, Timestamp};
use limiter_http::{
    Event, FailurePolicy, HttpLimiter, Labels, Limits, Metrics, RequestInfo, Route,
};
use limiter_memory::MemoryStorage;

/// The in-memory storage behind a switch: while down, every call fails as
/// unavailable, naming its key as network storages do.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStorage,
    down: AtomicBool,
}

impl Flaky {
    fn gate(&self, operation: &'static str, key: Option<&StorageKey>) -> Result<(), StorageError> {
        if !self.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let error = StorageError::new(StorageErrorKind::Unavailable, operation, "switched off");
        Err(match key {
            Some(key) => error.with_key(key.as_str()),
            None => error,
        })
    }
}

#[async_trait]
impl Storage for Flaky {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        self.gate("get", Some(key))?;
        self.inner.get(key, now).await
    }
    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        self.gate("compare_and_set", Some(key))?;
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.gate("delete", Some(key))?;
        self.inner.delete(key).await
    }
    async fn check(&self) -> Result<(), StorageError> {
        self.gate("check", None)
    }
    /// No native strategies: every decision goes through `get` and
    /// `compare_and_set`, which name the key when they fail.
    fn abilities(&self) -> Abilities<'_> {
        Abilities::new().expiry(self.inner.abilities().get_expiry())
    }
}

/// One labelled event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    event: Event,
    route: Option<String>,
    limit: Option<String>,
    storage: String,
}

fn seen(event: Event, route: Option<&str>, limit: Option<&str>, storage: &str) -> Seen {
    Seen {
        event,
        route: route.map(str::to_owned),
        limit: limit.map(str::to_owned),
        storage: storage.to_owned(),
    }
}

/// Metrics that keep every labelled event and count decision times.
#[derive(Debug, Default)]
struct Recording {
    events: Mutex<Vec<Seen>>,
    timed: Mutex<Vec<(Option<String>, String, Duration)>>,
    fallback: Mutex<Vec<bool>>,
}

impl Metrics for Recording {
    fn record(&self, event: Event, labels: &Labels<'_>) {
        self.events.lock().unwrap().push(Seen {
            event,
            route: labels.route.map(str::to_owned),
            limit: labels.limit.map(ToString::to_string),
            storage: labels.storage.to_owned(),
        });
    }
    fn decision_time(&self, labels: &Labels<'_>, elapsed: Duration) {
        self.timed.lock().unwrap().push((
            labels.route.map(str::to_owned),
            labels.storage.to_owned(),
            elapsed,
        ));
    }
    fn fallback(&self, active: bool) {
        self.fallback.lock().unwrap().push(active);
    }
}

const CLIENT: &str = "192.0.2.77";

async fn status(limiter: &HttpLimiter, path: &str, route: Option<&str>) -> u16 {
    let headers = HeaderMap::new();
    let peer: SocketAddr = format!("{CLIENT}:4711").parse().unwrap();
    let mut request = RequestInfo::new("GET", path, &headers).with_peer(peer);
    if let Some(route) = route {
        request = request.with_route(route);
    }
    match limiter.check(&request).await {
        Ok(_) => 200,
        Err(response) => response.status().as_u16(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn events_carry_route_limit_and_storage_and_logs_no_plain_key() {
    let events = Recorder::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let flaky = Arc::new(Flaky::default());
    let metrics = Arc::new(Recording::default());
    let limiter = HttpLimiter::builder(RateLimiter::new(flaky.clone()))
        .default_limits("5 per minute")
        .route("/users/{id}", Route::limits(Limits::new("2 per minute")))
        .on_storage_failure(FailurePolicy::Fallback {
            first_probe: Duration::from_millis(50),
            max_probe: Duration::from_millis(50),
        })
        .storage_name("flaky")
        .metrics(metrics.clone())
        .build()
        .unwrap();
    assert_eq!(limiter.storage_name(), "flaky");

    let users = Some("/users/{id}");
    assert_eq!(status(&limiter, "/users/1", users).await, 200);
    assert_eq!(status(&limiter, "/users/2", users).await, 200);
    assert_eq!(status(&limiter, "/users/3", users).await, 429);
    // A path that matches no route: not decided, not reported.
    assert_eq!(status(&limiter, "/nowhere", None).await, 200);

    flaky.down.store(true, Ordering::SeqCst);
    assert_eq!(status(&limiter, "/a", Some("/a")).await, 200);
    assert!(limiter.fallback_active());
    flaky.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(status(&limiter, "/a", Some("/a")).await, 200);
    assert!(!limiter.fallback_active());

    let two = Some("2 per 1 minute");
    let five = Some("5 per 1 minute");
    assert_eq!(
        *metrics.events.lock().unwrap(),
        [
            seen(Event::Allowed, users, two, "flaky"),
            seen(Event::Allowed, users, two, "flaky"),
            seen(Event::Limited, users, two, "flaky"),
            seen(Event::StorageError, Some("/a"), None, "flaky"),
            seen(Event::Allowed, Some("/a"), five, "fallback"),
            seen(Event::Allowed, Some("/a"), five, "flaky"),
        ]
    );
    let timed = metrics.timed.lock().unwrap();
    let timed: Vec<_> = timed
        .iter()
        .map(|(route, storage, _)| (route.as_deref(), storage.as_str()))
        .collect();
    assert_eq!(
        timed,
        [
            (users, "flaky"),
            (users, "flaky"),
            (users, "flaky"),
            (Some("/a"), "fallback"),
            (Some("/a"), "flaky"),
        ]
    );
    assert_eq!(*metrics.fallback.lock().unwrap(), [true, false]);

    let events = events.events();
    let rejected = events
        .iter()
        .find(|e| e.message() == "rate limit exceeded")
        .unwrap();
    assert_eq!(rejected.level, tracing::Level::INFO);
    assert_eq!(rejected.fields["http.route"], "/users/{id}");
    assert_eq!(rejected.fields["http.request.method"], "GET");
    assert_eq!(rejected.fields["limit"], "2 per 1 minute");

    let on = events
        .iter()
        .find(|e| e.message().contains("deciding in memory"))
        .unwrap();
    assert_eq!(on.level, tracing::Level::WARN);
    assert_eq!(on.fields["limiter.fallback.active"], "true");
    assert_eq!(on.fields["error.type"], "unavailable");
    assert_eq!(on.fields["http.route"], "/a");
    assert!(
        on.fields["error.message"].contains("on key #"),
        "the key, as its digest: {on:?}"
    );

    let off = events
        .iter()
        .find(|e| e.message().contains("leaving the in-memory fallback"))
        .unwrap();
    assert_eq!(off.level, tracing::Level::INFO);
    assert_eq!(off.fields["limiter.fallback.active"], "false");

    for event in events.iter().filter(|e| e.level < tracing::Level::DEBUG) {
        assert!(
            event.fields.values().all(|v| !v.contains(CLIENT)),
            "a client's key in plain text above DEBUG: {event:?}"
        );
    }
}
