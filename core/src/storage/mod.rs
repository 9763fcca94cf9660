//! The storage trait: where rate-limit state lives.
//!
//! # Contract
//!
//! A storage has two layers.
//!
//! 1. **The required core**, which any key-value store can provide:
//!    [`get`](Storage::get) a key's bytes with a [`Version`] token,
//!    [`compare_and_set`](Storage::compare_and_set) them with a time-to-live,
//!    [`delete`](Storage::delete), a health [`check`](Storage::check), and
//!    [`clear_all`](Storage::clear_all) where the store can. Every strategy, built-in or
//!    custom, runs on this core alone: the [`RateLimiter`](crate::RateLimiter) reads
//!    the state, lets the [`Strategy`](crate::Strategy) decide, and writes back with
//!    compare-and-set, retrying (with a randomised back-off) when another writer won.
//! 2. **Optional native operations**: [`apply`](Storage::apply) runs a built-in
//!    strategy on one key in one step (under a lock, in a server-side script), and
//!    [`batch`](Storage::batch) runs a multi-limit hit all or nothing. Both answer with
//!    a [`Native`]: [`Ready`](Native::Ready) with the result when the storage decided
//!    without waiting (in-process storages: no future, no allocation),
//!    [`Pending`](Native::Pending) with a future when it must wait (network storages),
//!    or [`Declined`](Native::Declined) (the default) to send the limiter to the generic
//!    path over layer 1. A storage may decline case by case, for example a limit whose
//!    numbers its script language cannot hold exactly.
//!
//! A native operation must give the same [`Verdict`] and leave the same state bytes,
//! with the same time-to-live, as the built-in [`Strategy::apply`](crate::Strategy::apply)
//! would on the same input: the state layouts are documented on each strategy, and
//! golden vectors in `core/tests/golden/` pin them for ports in other languages. The
//! conformance suite (`limiter-conformance`) checks both layers and that they agree.
//!
//! # Keys
//!
//! Every call names its key with a [`StorageKey`]: the encoded string and its
//! structure (the group shared by one client's limits, and the limit part). A storage
//! must map a `StorageKey` to the same stored key in every method, native or not. See
//! [`StorageKey`] for the layout and the escaping rules.
//!
//! # Time
//!
//! Time comes from the limiter, never from the storage: native operations receive the
//! limiter's `now` ([`KeyOp::now`]), and so do [`get`](Storage::get) and
//! [`compare_and_set`](Storage::compare_and_set). An in-process storage expires state
//! on that time, so a [`ManualClock`](crate::ManualClock) governs expiry as well as
//! decisions. A network storage hands the time-to-live to its server, which expires
//! state in real time: decisions never depend on it while real time since a write stays
//! below the write's time-to-live, which always covers the state's relevance on the
//! limiter's clock plus a second of grace.
//!
//! # Values and versions
//!
//! An empty value means "no state" to every strategy, so a storage may keep an empty
//! value as present or treat it as absent, as long as `get` and `compare_and_set` agree.
//!
//! A [`Version`] must never repeat for a key, even across a delete and re-create:
//! otherwise a writer holding an old version could overwrite a newer state (the ABA
//! problem). Safe schemes: a counter shared by every key of the store (or of a shard
//! that a key never leaves), a server's compare-and-swap token such as Memcached's CAS
//! unique, or a random 64-bit value. A per-key counter that restarts at zero when the
//! key is deleted or expires is **not** safe.
//!
//! # Wrappers
//!
//! A storage that wraps another (for metrics, or a fallback) forwards
//! [`apply`](Storage::apply) and [`batch`](Storage::batch) like any other method; there
//! is no second entry point to forget.
//!
//! # Writing your own storage
//!
//! 1. Implement the required core: `get`, `compare_and_set`, `delete`, `check` (and
//!    `clear_all` if the store can). Every strategy then works.
//! 2. Run the conformance suite against a real instance of the store:
//!    `limiter_conformance::suite!(MyStorage::connect(..).await?)` in a test file.
//! 3. Only then, if profiling says so, implement [`apply`](Storage::apply) for the
//!    built-ins your store can run in one step, following the layouts on each strategy;
//!    the suite compares its decisions and bytes with the generic path's.
//!
//! ```
//! use limiter_core::{async_trait, Storage, StorageError, StorageErrorKind, StorageKey, Timestamp};
//! use limiter_core::{Version, Versioned};
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::Duration;
//!
//! #[derive(Debug, Default)]
//! struct MapStorage {
//!     // key → (value, version); `next` is shared by every key, so versions never repeat.
//!     map: Mutex<(HashMap<String, Versioned>, u64)>,
//! }
//!
//! fn poisoned<E>(_: E) -> StorageError {
//!     StorageError::new(StorageErrorKind::Other, "lock", "poisoned lock")
//! }
//!
//! #[async_trait]
//! impl Storage for MapStorage {
//!     async fn get(&self, key: &StorageKey, _now: Timestamp)
//!         -> Result<Option<Versioned>, StorageError>
//!     {
//!         let map = self.map.lock().map_err(poisoned)?;
//!         Ok(map.0.get(key.as_str()).cloned())
//!     }
//!
//!     async fn compare_and_set(&self, key: &StorageKey, expected: Option<Version>,
//!         value: &[u8], _ttl: Duration, _now: Timestamp) -> Result<bool, StorageError>
//!     {
//!         let mut map = self.map.lock().map_err(poisoned)?;
//!         if map.0.get(key.as_str()).map(|v| v.version) != expected {
//!             return Ok(false);
//!         }
//!         map.1 += 1;
//!         let version = Version(map.1);
//!         map.0.insert(key.as_str().to_owned(), Versioned { value: value.to_vec(), version });
//!         Ok(true)
//!     }
//!
//!     async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
//!         let mut map = self.map.lock().map_err(poisoned)?;
//!         map.0.remove(key.as_str());
//!         Ok(())
//!     }
//!
//!     async fn check(&self) -> Result<(), StorageError> {
//!         Ok(())
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let limiter = limiter_core::RateLimiter::new(std::sync::Arc::new(MapStorage::default()));
//! let limit = "1 per second".parse()?;
//! assert!(limiter.hit(&limit, &"me".into(), 1).await?.is_allowed());
//! assert!(!limiter.hit(&limit, &"me".into(), 1).await?.is_allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod native;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use native::{BoxFuture, Native};

use crate::clock::Timestamp;
use crate::error::StorageError;
pub use crate::key::StorageKey;
use crate::limit::RateLimit;
use crate::strategy::{BuiltIn, Op, Verdict};

/// An opaque token naming one stored value of one key. A storage returns it from
/// [`Storage::get`] and checks it in [`Storage::compare_and_set`].
///
/// A value written after the token was issued must never carry the same token for
/// that key, even after the key was deleted or expired and written again. See the
/// [module docs](self#values-and-versions) for safe schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

/// A stored value and its [`Version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes last written.
    pub value: Vec<u8>,
    /// The token to pass to [`Storage::compare_and_set`] to replace them.
    pub version: Version,
}

/// One operation on one key's state: apply `op` under `limit` at `now`.
///
/// What [`Storage::apply`] receives, and what the generic path
/// ([`apply_with_cas`](crate::apply_with_cas)) runs over the required core.
#[derive(Debug, Clone, Copy)]
pub struct KeyOp<'a> {
    /// The stored key.
    pub key: &'a StorageKey,
    /// The limit the key counts against.
    pub limit: &'a RateLimit,
    /// What to do.
    pub op: Op,
    /// The limiter's current time; the storage must not use its own.
    pub now: Timestamp,
}

/// One limit of a [`Storage::batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The stored key.
    pub key: &'a StorageKey,
    /// The limit the key counts against.
    pub limit: &'a RateLimit,
}

/// A rate-limit state store. See the [module docs](self) for the contract.
///
/// The trait is object safe: the limiter holds an `Arc<dyn Storage>`.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Reads `key` at the limiter's time `now`: its bytes and version, or `None` when it
    /// is absent or expired.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError>;

    /// Writes `value` to `key`, kept at least `ttl` after the limiter's time `now`, if
    /// and only if the key is still at `expected` (`None`: the key must be absent).
    /// Returns whether it wrote.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer; a lost race is `Ok(false)`.
    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError>;

    /// Removes `key`. Removing an absent key is not an error.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError>;

    /// Checks that the storage is reachable and answering.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] describing why it is not.
    async fn check(&self) -> Result<(), StorageError>;

    /// Removes every key this storage holds for rate limiting.
    ///
    /// # Errors
    ///
    /// [`StorageErrorKind::Unsupported`](crate::StorageErrorKind::Unsupported) by
    /// default, for stores that cannot enumerate or flush their keys.
    async fn clear_all(&self) -> Result<(), StorageError> {
        Err(StorageError::unsupported("clear_all"))
    }

    /// Runs built-in `strategy` natively on `op.key`, or declines (the default).
    ///
    /// The result must be the [`Verdict`] that `strategy`'s
    /// [`Strategy::apply`](crate::Strategy::apply) gives on the key's current state, and
    /// the state left behind (bytes and time-to-live) must be the one it writes, as one
    /// atomic step. Answer [`Native::Ready`] when no waiting is needed and
    /// [`Native::Pending`] otherwise; the limiter treats both alike.
    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Native<'a, Verdict> {
        let _ = (strategy, op);
        Native::Declined
    }

    /// A multi-limit hit of `cost` at `now` under built-in `strategy`, all or nothing,
    /// natively; or [`Native::Declined`] (the default).
    ///
    /// If every item passes, each is consumed and the verdicts are those of the hits.
    /// Otherwise nothing is consumed and the verdicts are those of [`Op::Test`] for each
    /// item. Verdicts come in the order of `items`, one per item. Items never repeat a
    /// key.
    fn batch<'a>(
        &'a self,
        strategy: BuiltIn,
        items: &'a [BatchItem<'a>],
        cost: u64,
        now: Timestamp,
    ) -> Native<'a, Vec<Verdict>> {
        let _ = (strategy, items, cost, now);
        Native::Declined
    }
}
