//! Shadow mode: decides and counts as when enforcing, lets every request through,
//! and reports the ones it would have rejected.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use http::HeaderMap;
use limiter_core::{Clock, Key, ManualClock, RateLimiter};
use limiter_http::{CountingMetrics, HttpLimiter, HttpLimiterBuilder, Limits, RequestInfo};
use limiter_memory::MemoryStorage;

const NOW_MS: u64 = 1_700_000_000_000;

fn policy(limiter: RateLimiter) -> HttpLimiterBuilder {
    HttpLimiter::builder(limiter)
        .default_limits("2 per minute; 3 per hour")
        .application_limits("4 per minute")
        .meta_limits("2 per hour")
}

/// A limiter of its own storage and clock.
fn fresh() -> (RateLimiter, Arc<MemoryStorage>, ManualClock) {
    let storage = Arc::new(MemoryStorage::new());
    let clock = ManualClock::new(NOW_MS);
    let limiter = RateLimiter::builder(storage.clone())
        .clock(clock.clone())
        .build();
    (limiter, storage, clock)
}

async fn allowed(limiter: &HttpLimiter, route: &str, peer: &str) -> bool {
    let headers = HeaderMap::new();
    let peer: SocketAddr = peer.parse().unwrap();
    let request = RequestInfo::new("GET", route, &headers)
        .with_route(route)
        .with_peer(peer);
    limiter.check(&request).await.is_ok()
}

/// The traffic both limiters see: two clients on two routes, 7 s apart.
fn traffic() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for i in 0..30 {
        let route = if i % 3 == 0 { "/b" } else { "/a" };
        let peer = if i % 5 == 0 {
            "192.0.2.2:1"
        } else {
            "192.0.2.1:1"
        };
        out.push((route, peer));
    }
    out
}

#[tokio::test]
async fn shadow_lets_through_what_enforcing_rejects_and_counts_the_same() {
    let (enforcing_core, enforcing_storage, enforcing_clock) = fresh();
    let (shadow_core, shadow_storage, shadow_clock) = fresh();
    let enforcing_metrics = Arc::new(CountingMetrics::default());
    let shadow_metrics = Arc::new(CountingMetrics::default());
    let enforcing = policy(enforcing_core.clone())
        .metrics(enforcing_metrics.clone())
        .build()
        .unwrap();
    let shadow = policy(shadow_core.clone())
        .shadow(true)
        .metrics(shadow_metrics.clone())
        .build()
        .unwrap();

    let mut rejected = 0;
    for (route, peer) in traffic() {
        if !allowed(&enforcing, route, peer).await {
            rejected += 1;
        }
        assert!(
            allowed(&shadow, route, peer).await,
            "shadow mode rejects nothing"
        );
        enforcing_clock.advance(Duration::from_secs(7));
        shadow_clock.advance(Duration::from_secs(7));
    }
    assert!(
        rejected > 5,
        "the traffic must go over the limits: {rejected}"
    );
    assert_eq!(enforcing_metrics.limited_count(), rejected);
    assert_eq!(shadow_metrics.shadow_rejected_count(), rejected);
    assert_eq!(shadow_metrics.limited_count(), 0);
    assert_eq!(
        shadow_metrics.allowed_count(),
        enforcing_metrics.allowed_count()
    );

    // The same state in both storages, limit by limit and key by key. Expired keys are
    // reclaimed lazily, as their shard (randomly seeded) is next touched, so only the
    // live ones compare.
    shadow_storage.purge_expired(shadow_clock.now());
    enforcing_storage.purge_expired(enforcing_clock.now());
    assert_eq!(shadow_storage.len(), enforcing_storage.len());
    let limits =
        limiter_core::parse_many("2 per minute; 3 per hour; 4 per minute; 2 per hour").unwrap();
    for client in ["192.0.2.2", "192.0.2.1"] {
        for scope in ["/a", "/b", "~app", "~meta"] {
            let mut key = Key::from(client);
            key.push(scope);
            for limit in &limits {
                assert_eq!(
                    shadow_core.stats(limit, &key).await.unwrap(),
                    enforcing_core.stats(limit, &key).await.unwrap(),
                    "{limit} for {client} {scope}"
                );
            }
        }
    }

    // Switching shadow mode off enforces from the state it counted.
    let switched = policy(shadow_core).build().unwrap();
    let enforcing = policy(enforcing_core).build().unwrap();
    for (route, peer) in traffic().into_iter().take(8) {
        assert_eq!(
            allowed(&switched, route, peer).await,
            allowed(&enforcing, route, peer).await
        );
        shadow_clock.advance(Duration::from_secs(3));
        enforcing_clock.advance(Duration::from_secs(3));
    }
}

#[tokio::test]
async fn a_shadow_set_reports_without_rejecting_and_counts_as_if_enforced() {
    let (core, _storage, _clock) = fresh();
    let metrics = Arc::new(CountingMetrics::default());
    let limiter = HttpLimiter::builder(core.clone())
        .default_limits(Limits::new("1 per minute").shadow())
        .default_limits("3 per minute")
        .metrics(metrics.clone())
        .build()
        .unwrap();
    let peer = "192.0.2.1:1";
    assert!(allowed(&limiter, "/a", peer).await);
    assert!(allowed(&limiter, "/a", peer).await);
    assert!(allowed(&limiter, "/a", peer).await);
    assert!(
        !allowed(&limiter, "/a", peer).await,
        "the enforced set still rejects"
    );
    assert_eq!(metrics.shadow_rejected_count(), 2);
    assert_eq!(metrics.limited_count(), 1);
    let mut key = Key::from("192.0.2.1");
    key.push("/a");
    let shadow_limit = "1 per minute".parse().unwrap();
    let stats = core.stats(&shadow_limit, &key).await.unwrap();
    assert_eq!(stats.remaining, 0, "its one request counted");
}

/// Records the message of every warning with the thread that emitted it, and prints it.
#[derive(Default, Clone)]
struct Warnings(Arc<Mutex<Vec<(ThreadId, String)>>>);

/// The process's warnings. Installed once as the global default, not per test:
/// tracing caches each callsite's interest for the whole process when the callsite is
/// first hit, so a sibling test running the same warning on a thread without a
/// subscriber would otherwise mute it for a test that installed one on its own thread.
fn warnings() -> &'static Warnings {
    static WARNINGS: OnceLock<Warnings> = OnceLock::new();
    WARNINGS.get_or_init(|| {
        let warnings = Warnings::default();
        // Fails only if another global default was set first, which this file never does.
        let _ = tracing::subscriber::set_global_default(warnings.clone());
        warnings
    })
}

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        } else {
            self.0.push_str(&format!("{}={value:?}", field.name()));
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Message(&mut line));
        eprintln!(
            "{} {}: {line}",
            event.metadata().level(),
            event.metadata().target()
        );
        if *event.metadata().level() == tracing::Level::WARN {
            self.0
                .lock()
                .unwrap()
                .push((std::thread::current().id(), line));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn every_would_be_rejection_is_a_warning() {
    let warnings = warnings();
    let (core, _storage, _clock) = fresh();
    let metrics = Arc::new(CountingMetrics::default());
    let limiter = HttpLimiter::builder(core)
        .default_limits("2 per minute")
        .shadow(true)
        .metrics(metrics.clone())
        .build()
        .unwrap();
    for _ in 0..5 {
        assert!(allowed(&limiter, "/a", "192.0.2.1:1").await);
    }
    assert_eq!(metrics.shadow_rejected_count(), 3);
    // This test's own: its runtime runs on its thread.
    let me = std::thread::current().id();
    let warnings: Vec<String> = warnings
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, _)| *thread == me)
        .map(|(_, line)| line.clone())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings
        .iter()
        .all(|w| w.contains("shadow mode") && w.contains("limit=2 per 1 minute")));
}
