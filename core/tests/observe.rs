//! The circuit breaker's `tracing` events: their levels and fields, and no key in
//! plain text above `DEBUG`.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use limiter_conformance::events::Recorder;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::doc_support::TinyStorage;
use limiter_core::observe::key_digest;
use limiter_core::storage::{
    async_trait, BreakerConfig, BreakerState, CircuitBreaker, Storage, StorageKey, Version,
    Versioned,
};
use limiter_core::{StorageError, StorageErrorKind, Timestamp};

/// A storage that fails with `Unavailable` (naming the key) while `down`.
#[derive(Debug, Default)]
struct Flaky {
    inner: TinyStorage,
    down: AtomicBool,
}

impl Flaky {
    fn fail(&self, operation: &'static str, key: Option<&StorageKey>) -> Result<(), StorageError> {
        if !self.down.load(Ordering::Relaxed) {
            return Ok(());
        }
        let error = StorageError::new(
            StorageErrorKind::Unavailable,
            operation,
            "connection refused",
        );
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
        self.fail("get", Some(key))?;
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
        self.fail("compare_and_set", Some(key))?;
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.fail("delete", Some(key))?;
        self.inner.delete(key).await
    }
    async fn check(&self) -> Result<(), StorageError> {
        self.fail("check", None)
    }
}

#[test]
fn opening_and_closing_are_events_with_fields_and_no_plain_key() {
    let events = Recorder::default();
    let flaky = Arc::new(Flaky::default());
    let breaker = CircuitBreaker::new(
        flaky.clone(),
        BreakerConfig::default()
            .failures(2)
            .probe_interval(Duration::from_millis(10)),
    );
    let secret = "LIMITER/fixed/alice@example.org/1/1/minute";
    let key = StorageKey::new(secret, "1/1/minute");
    let plain = "alice@example.org";
    tracing::subscriber::with_default(events.clone(), || {
        futures::executor::block_on(async {
            flaky.down.store(true, Ordering::Relaxed);
            assert!(breaker.get(&key, Timestamp::ZERO).await.is_err());
            assert_eq!(breaker.state(), BreakerState::Closed);
            assert_eq!(breaker.consecutive_failures(), 1);
            assert!(breaker.get(&key, Timestamp::ZERO).await.is_err());
            assert_eq!(breaker.state(), BreakerState::Open);
            // A probe that fails: a DEBUG event, which may name what it likes.
            std::thread::sleep(Duration::from_millis(15));
            assert!(breaker.get(&key, Timestamp::ZERO).await.is_err());
            assert_eq!(breaker.state(), BreakerState::Open);
            flaky.down.store(false, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(15));
            assert!(breaker.get(&key, Timestamp::ZERO).await.is_ok());
            assert_eq!(breaker.state(), BreakerState::Closed);
        });
    });
    let events = events.events();
    let opened: Vec<_> = events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.contains("breaker opened"))
        })
        .collect();
    assert_eq!(opened.len(), 1, "{events:#?}");
    let opened = &opened[0];
    assert_eq!(opened.level, tracing::Level::WARN);
    assert_eq!(opened.fields["limiter.breaker.failures"], "2");
    assert_eq!(opened.fields["error.type"], "unavailable");
    assert!(opened.fields["limiter.storage"].contains("Flaky"));
    let digest = key_digest(key.as_str()).to_string();
    assert!(
        opened.fields["error.message"].contains(&format!("on key #{digest}")),
        "{opened:?}"
    );

    let closed: Vec<_> = events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.contains("breaker closed"))
        })
        .collect();
    assert_eq!(closed.len(), 1, "{events:#?}");
    assert_eq!(closed[0].level, tracing::Level::INFO);
    assert!(closed[0].fields["limiter.storage"].contains("Flaky"));

    let probe = events.iter().find(|e| {
        e.fields
            .get("message")
            .is_some_and(|m| m.contains("probe failed"))
    });
    assert!(
        probe.is_some_and(|p| p.level == tracing::Level::DEBUG),
        "{events:#?}"
    );

    for event in events.iter().filter(|e| e.level < tracing::Level::DEBUG) {
        assert!(
            event.fields.values().all(|v| !v.contains(plain)),
            "a key in plain text above DEBUG: {event:?}"
        );
    }
}
