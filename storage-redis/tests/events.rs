//! The storage's `tracing` events against a server of the test's own: a script
//! flushed and loaded again, a connection lost and re-established, a command that
//! times out; with OpenTelemetry's field names, and no key in plain text above
//! `DEBUG`.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod common;

use limiter_conformance::events::Recorder;
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use limiter_core::storage::Storage;
use limiter_core::{Key, RateLimit, RateLimiter};
use limiter_redis::fred::prelude::LuaInterface;
use limiter_redis::{RedisOptions, RedisStorage};

// One thread: the client's background tasks run on it too, so the subscriber set
// for this thread sees their events.
#[tokio::test(flavor = "current_thread")]
async fn scripts_connections_and_timeouts_are_events() {
    let events = Recorder::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let mut server = TestServer::start(16398);
    let options = server
        .uri()
        .parse::<RedisOptions>()
        .unwrap()
        .pool_size(1)
        .command_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .key_prefix("limiter-events:");
    let storage = RedisStorage::connect(options).await.unwrap();
    // No breaker: every call reaches the server.
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .circuit_breaker(None)
        .rejection_cache(None)
        .coalesce(None)
        .build();
    let limit: RateLimit = "100 per minute".parse().unwrap();
    let client = "carol@example.org";
    let key = Key::from(client);

    let established = events
        .wait_for("connection established", Duration::from_secs(2))
        .await;
    assert_eq!(established.level, tracing::Level::DEBUG);
    assert_eq!(established.fields["server.port"], "16398");
    let mut seen = Vec::new();

    // A script flushed from the server is loaded again.
    assert!(limiter.hit(&limit, &key, 1).await.unwrap().is_allowed());
    let _: () = storage.pool().next().script_flush(false).await.unwrap();
    seen.append(&mut events.events());
    assert!(limiter.hit(&limit, &key, 1).await.unwrap().is_allowed());
    let reloaded = events.wait_for("loading it", Duration::ZERO).await;
    assert_eq!(reloaded.level, tracing::Level::INFO);
    assert_eq!(reloaded.fields["db.system.name"], "redis");
    assert_eq!(reloaded.fields["db.operation.name"], "fixed-window");
    assert_eq!(reloaded.fields["limiter.redis.script"].len(), 40, "a SHA-1");

    // A server that goes away and comes back.
    server.kill();
    let lost = events
        .wait_for("connection failed", Duration::from_secs(5))
        .await;
    assert_eq!(lost.level, tracing::Level::WARN);
    assert_eq!(lost.fields["db.system.name"], "redis");
    assert!(lost.fields.contains_key("error.type"), "{lost:?}");
    server.restart();
    let back = events
        .wait_for("re-established", Duration::from_secs(5))
        .await;
    assert_eq!(back.level, tracing::Level::INFO);
    assert_eq!(back.fields["server.address"], "127.0.0.1");
    assert_eq!(back.fields["server.port"], "16398");
    storage.check().await.unwrap();

    // A server that hangs: the command times out.
    server.signal("-STOP");
    assert!(limiter.hit(&limit, &key, 1).await.is_err());
    server.signal("-CONT");
    let late = events.wait_for("command timed out", Duration::ZERO).await;
    assert_eq!(late.level, tracing::Level::WARN);
    assert_eq!(late.fields["db.operation.name"], "fixed-window");
    assert_eq!(late.fields["error.type"], "timeout");
    assert_eq!(late.fields["limiter.timeout_ms"], "300");
    assert_eq!(late.fields["limiter.key.digest"].len(), 16, "{late:?}");

    seen.append(&mut events.events());
    for event in seen.iter().filter(|e| e.level < tracing::Level::DEBUG) {
        assert!(
            event.fields.values().all(|v| !v.contains(client)),
            "a key in plain text above DEBUG: {event:?}"
        );
    }
}
