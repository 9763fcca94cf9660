//! [`CasOnly`]: a wrapper that hides a storage's native operations.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{async_trait, Abilities, Storage, StorageKey, Version, Versioned};
use limiter_core::{StorageError, Timestamp};

/// Forwards the required core of [`Storage`] (`get`, `compare_and_set`, `delete`,
/// `check`) and every ability but the native strategies
/// ([`NativeStrategies`](limiter_core::storage::NativeStrategies)) to the wrapped
/// storage, so a [`RateLimiter`](limiter_core::RateLimiter) over a `CasOnly` always
/// takes the generic compare-and-set path.
///
/// The suite runs every case twice, once on the storage as given (`native::…`) and
/// once wrapped in `CasOnly` (`cas_only::…`), so both of a storage's paths are tested.
///
/// # Examples
///
/// ```
/// use limiter_conformance::{CasOnly, ReferenceStorage};
/// use limiter_core::Storage;
/// use std::sync::Arc;
///
/// let generic: Arc<dyn Storage> = Arc::new(CasOnly::new(Arc::new(ReferenceStorage::new())));
/// # let _ = generic;
/// ```
pub struct CasOnly<S: ?Sized = dyn Storage> {
    inner: Arc<S>,
}

impl<S: Storage + ?Sized> CasOnly<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>) -> CasOnly<S> {
        CasOnly { inner }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

impl<S: Storage + ?Sized> fmt::Debug for CasOnly<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CasOnly").field(&&*self.inner).finish()
    }
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for CasOnly<S> {
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
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.inner.check().await
    }

    fn abilities(&self) -> Abilities<'_> {
        let inner = self.inner.abilities();
        let abilities = Abilities::new().expiry(inner.get_expiry());
        match inner.get_clear_all() {
            Some(clear_all) => abilities.clear_all(clear_all),
            None => abilities,
        }
    }
}
