//! A minimal storage for this crate's own documentation examples. Not part of the API:
//! use `limiter-memory` (or the `limiter` facade) in applications.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{StorageError, StorageErrorKind};
use crate::key::StorageKey;
use crate::storage::{Storage, Version, Versioned};

/// A single-mutex map implementing only the required storage core. No expiry.
#[derive(Debug, Default)]
pub struct TinyStorage {
    map: Mutex<HashMap<String, Versioned>>,
    // One counter for all keys, so a deleted and re-created key never reuses a token.
    next_version: AtomicU64,
}

impl TinyStorage {
    fn lock(
        &self,
        operation: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, Versioned>>, StorageError> {
        self.map
            .lock()
            .map_err(|_| StorageError::new(StorageErrorKind::Other, operation, "poisoned lock"))
    }
}

#[crate::storage::async_trait]
impl Storage for TinyStorage {
    async fn get(
        &self,
        key: &StorageKey,
        _now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        Ok(self.lock("get")?.get(key.as_str()).cloned())
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        _ttl: Duration,
        _now: Timestamp,
    ) -> Result<bool, StorageError> {
        let mut map = self.lock("compare_and_set")?;
        let current = map.get(key.as_str()).map(|v| v.version);
        if current != expected {
            return Ok(false);
        }
        let version = Version(self.next_version.fetch_add(1, Ordering::Relaxed));
        map.insert(
            key.as_str().to_owned(),
            Versioned {
                value: value.to_vec(),
                version,
            },
        );
        Ok(true)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.lock("delete")?.remove(key.as_str());
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.lock("check").map(|_| ())
    }
}
