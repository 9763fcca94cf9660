//! The storage's `tracing` events against a server of the test's own: a connection
//! closed under a command and retried, a server that cannot be reached and then can,
//! a command that times out; with OpenTelemetry's field names, and no key in plain
//! text above `DEBUG`.
//!
//! Starts its server with the binary named by `LIMITER_MEMCACHED_BIN` (exported by
//! `scripts/services/memcached.sh`).
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod common;

use limiter_conformance::events::Recorder;
use std::process::Stdio;

use std::time::Duration;

use limiter_core::{Storage, StorageKey, Timestamp};
use limiter_memcached::MemcachedStorage;
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

const PORT: u16 = 21315;

/// Starts memcached on 127.0.0.1:[`PORT`], killed when dropped.
async fn start() -> Child {
    let bin = common::env_url("LIMITER_MEMCACHED_BIN");
    let child = Command::new(&bin)
        .args(["-u", "nobody", "-l", "127.0.0.1", "-p", &PORT.to_string()])
        .args(["-U", "0", "-m", "16", "-t", "1"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin} on port {PORT}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", PORT))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "memcached did not start");
        sleep(Duration::from_millis(20)).await;
    }
    child
}

fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("a running server");
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

// One thread: the pool's background tasks run on it too, so the subscriber set for
// this thread sees their events.
#[tokio::test(flavor = "current_thread")]
async fn retries_outages_and_timeouts_are_events() {
    let events = Recorder::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let mut server = start().await;
    let storage = MemcachedStorage::from_uri(&format!(
        "memcached://127.0.0.1:{PORT}?command_timeout=300ms&connect_timeout=200ms&pool_size=1"
    ))
    .await
    .unwrap();
    let client = "dave@example.org";
    let key = StorageKey::new(&format!("LIMITER/fixed-window/{client}"), "1/1/minute");
    let now = Timestamp::from_millis(1_700_000_000_000);
    assert!(storage.get(&key, now).await.unwrap().is_none());

    // The server goes away under an open connection: the read is retried once on a
    // fresh connection, which cannot open.
    server.kill().await.unwrap();
    assert!(storage.get(&key, now).await.is_err());
    let retried = events.wait_for("retrying it once", Duration::ZERO).await;
    assert_eq!(retried.level, tracing::Level::INFO);
    assert_eq!(retried.fields["db.system.name"], "memcached");
    assert_eq!(retried.fields["db.operation.name"], "get");
    assert_eq!(retried.fields["server.address"], "127.0.0.1");
    assert_eq!(retried.fields["server.port"], PORT.to_string());
    let down = events
        .wait_for("cannot connect", Duration::from_secs(2))
        .await;
    assert_eq!(down.level, tracing::Level::WARN);
    assert_eq!(down.fields["server.port"], PORT.to_string());
    assert!(down.fields.contains_key("error.type"), "{down:?}");

    // Back: the first connection that opens says so.
    server = start().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while storage.check().await.is_err() {
        assert!(Instant::now() < deadline, "the storage did not recover");
        sleep(Duration::from_millis(50)).await;
    }
    let up = events.wait_for("reachable again", Duration::ZERO).await;
    assert_eq!(up.level, tracing::Level::INFO);

    // A server that hangs: the command times out.
    signal(&server, "-STOP");
    assert!(storage.get(&key, now).await.is_err());
    signal(&server, "-CONT");
    let late = events.wait_for("command timed out", Duration::ZERO).await;
    assert_eq!(late.level, tracing::Level::WARN);
    assert_eq!(late.fields["db.operation.name"], "get");
    assert_eq!(late.fields["error.type"], "timeout");
    assert_eq!(late.fields["limiter.key.digest"].len(), 16, "{late:?}");

    for event in events
        .events()
        .iter()
        .filter(|e| e.level < tracing::Level::DEBUG)
    {
        assert!(
            event.fields.values().all(|v| !v.contains(client)),
            "a key in plain text above DEBUG: {event:?}"
        );
    }
}
