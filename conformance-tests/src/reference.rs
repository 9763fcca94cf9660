//! [`ReferenceStorage`]: the smallest complete storage, and a template to copy.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use limiter_core::storage::{
    async_trait, Abilities, ClearAll, Expiry, Storage, StorageKey, Version, Versioned,
};
use limiter_core::{StorageError, Timestamp};

/// How many writes pass between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 1_024;

/// A storage that implements **only the required core** of [`Storage`] (`get`,
/// `compare_and_set`, `delete`, `check`) over a `Mutex<HashMap>`, and declares two
/// abilities: [`ClearAll`], and keys that expire in real time ([`Expiry::RealTime`]).
/// No native strategies.
///
/// It exists for two reasons:
///
/// 1. The suite runs on it (`conformance-tests/tests/reference.rs`), which proves that
///    these four methods are enough for every built-in strategy, single and multi-limit,
///    under concurrency: the [`RateLimiter`](limiter_core::RateLimiter) drives them
///    through its compare-and-set loop.
/// 2. It is the **template for a third-party storage**. Copy this file, replace the map
///    with your store's client, and keep the four rules it illustrates:
///    - a [`Version`] is never reused for a key, even after the key was deleted and
///      created again (here: one counter for the whole store, so no ABA);
///    - `compare_and_set` writes if and only if the key is still at the expected
///      version, where `None` means "absent", and an expired key counts as absent;
///    - values are opaque bytes, returned exactly as written (the strategies' state is
///      binary: any byte, including `0x00` and invalid UTF-8);
///    - the time-to-live is a lower bound: the key must stay readable at least that
///      long, and should disappear afterwards (here checked against [`Instant`]s on
///      read, and swept every 1,024 writes).
///
///    Then implement [`NativeStrategies`](limiter_core::storage::NativeStrategies) if
///    your store can decide in one round trip; the suite checks that it agrees with
///    this generic path.
///
/// Keys are compared as exact strings; no normalisation, no length limit.
///
/// # Examples
///
/// ```
/// use limiter_conformance::ReferenceStorage;
/// use limiter_core::{Key, RateLimiter};
/// use std::sync::Arc;
///
/// # futures::executor::block_on(async {
/// let limiter = RateLimiter::new(Arc::new(ReferenceStorage::new()));
/// let limit = "1 per minute".parse()?;
/// assert!(limiter.hit(&limit, &Key::from("me"), 1).await?.is_allowed());
/// assert!(!limiter.hit(&limit, &Key::from("me"), 1).await?.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct ReferenceStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// The last version handed out, for every key: never reused.
    last_version: u64,
    /// Writes since the last sweep of expired entries.
    writes_since_sweep: u64,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    version: Version,
    /// `None`: the TTL is too long to represent, so never.
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

impl State {
    /// The live entry of `key`, dropping it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| !e.is_live(now)) {
            self.entries.remove(key);
        }
        self.entries.get(key)
    }
}

impl ReferenceStorage {
    /// An empty storage.
    pub fn new() -> ReferenceStorage {
        ReferenceStorage::default()
    }

    /// The number of keys held, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below completes before the guard drops, so the state is
        // consistent even if another thread panicked while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Storage for ReferenceStorage {
    async fn get(
        &self,
        key: &StorageKey,
        _now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        let mut state = self.lock();
        Ok(state
            .live(key.as_str(), Instant::now())
            .map(|entry| Versioned {
                value: entry.value.clone(),
                version: entry.version,
            }))
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        _now: Timestamp,
    ) -> Result<bool, StorageError> {
        let now = Instant::now();
        let mut state = self.lock();
        let current = state.live(key.as_str(), now).map(|entry| entry.version);
        if current != expected {
            return Ok(false);
        }
        state.last_version += 1;
        let version = Version(state.last_version);
        state.entries.insert(
            key.as_str().to_owned(),
            Entry {
                value: value.to_vec(),
                version,
                expires_at: now.checked_add(ttl),
            },
        );
        state.writes_since_sweep += 1;
        if state.writes_since_sweep >= SWEEP_EVERY {
            state.writes_since_sweep = 0;
            state.entries.retain(|_, entry| entry.is_live(now));
        }
        Ok(true)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.lock().entries.remove(key.as_str());
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities::new().clear_all(self).expiry(Expiry::RealTime {
            late: Duration::ZERO,
        })
    }
}

#[async_trait]
impl ClearAll for ReferenceStorage {
    async fn clear_all(&self) -> Result<(), StorageError> {
        self.lock().entries.clear();
        Ok(())
    }
}
