//! The `TRACE` span of each decision and the events of lost compare-and-set races:
//! their fields, and no key in plain text.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use limiter_conformance::events::Recorder;
use limiter_core::doc_support::TinyStorage;
use limiter_core::observe::key_digest;
use limiter_core::storage::{async_trait, Storage, StorageKey, Version, Versioned};
use limiter_core::strategy::Gcra;
use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, StorageError, Timestamp};

/// [`TinyStorage`] whose first compare-and-set loses, as to a concurrent writer.
#[derive(Debug, Default)]
struct LosesOnce {
    inner: TinyStorage,
    sets: AtomicU32,
}

#[async_trait]
impl Storage for LosesOnce {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
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
        if self.sets.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(false);
        }
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

#[test]
fn each_decision_has_a_span_with_its_outcome_and_no_key() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    tracing::callsite::rebuild_interest_cache();
    let limiter = RateLimiter::builder(Arc::new(LosesOnce::default()))
        .strategy(Gcra)
        .clock(ManualClock::new(1_000))
        .coalesce(None)
        .build();
    let limit: RateLimit = "1 per minute".parse().unwrap();
    let key = Key::from("203.0.113.77");
    futures::executor::block_on(async {
        assert!(limiter.hit(&limit, &key, 1).await.unwrap().is_allowed());
        assert!(!limiter.hit(&limit, &key, 1).await.unwrap().is_allowed());
        let two = [limit, "5 per hour".parse().unwrap()];
        assert!(!limiter.hit_all(&two, &key, 1).await.unwrap().is_allowed());
    });

    let spans = recorder.spans();
    let decisions: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "limiter.decision")
        .map(|s| &s.fields)
        .collect();
    assert_eq!(decisions.len(), 3, "{spans:?}");
    let outcomes: Vec<&str> = decisions
        .iter()
        .map(|f| f.get("limiter.outcome").map_or("", String::as_str))
        .collect();
    assert_eq!(outcomes, ["allowed", "rejected", "rejected"]);
    for fields in &decisions {
        assert_eq!(fields["limiter.strategy"], "gcra");
        assert_eq!(fields["limiter.operation"], "hit");
        assert!(
            fields.contains_key("limiter.storage.duration_us"),
            "{fields:?}"
        );
        assert!(
            fields.values().all(|v| !v.contains("203.0.113.77")),
            "{fields:?}"
        );
    }
    assert_eq!(decisions[0]["limiter.limit"], limit.to_string());
    assert_eq!(
        decisions[2]["limiter.limit"],
        "1 per 1 minute; 5 per 1 hour"
    );

    // The first write lost its race: one event for it, naming the key by its digest.
    let events = recorder.events();
    let lost: Vec<_> = events
        .iter()
        .filter(|e| e.message().contains("lost a race"))
        .collect();
    assert_eq!(lost.len(), 1, "{events:?}");
    let stored = limiter.storage_key(&limit, &key);
    assert_eq!(
        lost[0].fields["limiter.key.digest"],
        key_digest(stored.as_str()).to_string()
    );
    assert!(events
        .iter()
        .flat_map(|e| e.fields.values())
        .all(|v| !v.contains("203.0.113.77")));
}
