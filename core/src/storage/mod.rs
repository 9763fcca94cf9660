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
//!    compare-and-set, retrying a bounded number of times when another writer won.
//! 2. **Optional native operations**, one per built-in strategy
//!    ([`fixed_window`](Storage::fixed_window), [`moving_window`](Storage::moving_window),
//!    [`sliding_window`](Storage::sliding_window), [`gcra`](Storage::gcra)) and one for
//!    a multi-limit [`batch`](Storage::batch). A storage overrides them to decide in one
//!    step (under a lock, in a server-side script). Each returns `Ok(None)` by default,
//!    which sends the limiter to the generic path over layer 1. In-process storages can
//!    also answer through [`native_immediate`](Storage::native_immediate), which skips
//!    the future (and its allocation) altogether.
//!
//! A native operation must give the same [`Verdict`] and leave the same state bytes as
//! the built-in [`Strategy::apply`](crate::Strategy::apply) would on the same input: the
//! state layouts are documented on each strategy. The conformance suite
//! (`limiter-conformance`) checks both layers and that they agree.
//!
//! An empty value means "no state" to every strategy, so a storage may keep an empty
//! value as present or treat it as absent, as long as `get` and `compare_and_set` agree.
//!
//! Time-to-live values only reclaim memory: decisions never depend on whether a storage
//! has expired a key yet, because strategies compare stored timestamps with the
//! limiter's clock.
//!
//! # Wrappers
//!
//! A storage that wraps another (for metrics, or a fallback) should forward every
//! method, native ones included; otherwise the inner storage's native paths are lost.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::error::StorageError;
use crate::limit::RateLimit;
use crate::strategy::{BuiltIn, Op, Verdict};

/// An opaque token naming one stored value of one key. A storage returns it from
/// [`Storage::get`] and checks it in [`Storage::compare_and_set`].
///
/// Any scheme works as long as a value written after the token was issued never
/// carries the same token for that key (a per-key counter, memcached's CAS unique).
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

/// One native operation: apply `op` to the state of `key` under `limit` at `now`.
#[derive(Debug, Clone, Copy)]
pub struct NativeOp<'a> {
    /// The stored key.
    pub key: &'a str,
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
    pub key: &'a str,
    /// The limit the key counts against.
    pub limit: &'a RateLimit,
}

/// A rate-limit state store. See the [module docs](self) for the contract.
///
/// The trait is object safe: the limiter holds an `Arc<dyn Storage>`.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Reads `key`: its bytes and version, or `None` when it is absent or expired.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StorageError>;

    /// Writes `value` to `key`, kept at least `ttl`, if and only if the key is still at
    /// `expected` (`None`: the key must be absent). Returns whether it wrote.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer; a lost race is `Ok(false)`.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError>;

    /// Removes `key`. Removing an absent key is not an error.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

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

    /// Runs the native operation for `builtin` right away, without a future, or
    /// returns `None` (the default) to go through the async native operations.
    ///
    /// For in-process storages that never wait: it spares every decision the boxed
    /// future of an async trait call. The result must be what the async native
    /// operation for `builtin` would return.
    fn native_immediate(
        &self,
        builtin: BuiltIn,
        op: NativeOp<'_>,
    ) -> Option<Result<Verdict, StorageError>> {
        let _ = (builtin, op);
        None
    }

    /// Runs [`FixedWindow`](crate::strategy::FixedWindow) natively, or returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn fixed_window(&self, op: NativeOp<'_>) -> Result<Option<Verdict>, StorageError> {
        let _ = op;
        Ok(None)
    }

    /// Runs [`MovingWindow`](crate::strategy::MovingWindow) natively, or returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn moving_window(&self, op: NativeOp<'_>) -> Result<Option<Verdict>, StorageError> {
        let _ = op;
        Ok(None)
    }

    /// Runs [`SlidingWindow`](crate::strategy::SlidingWindow) natively, or returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn sliding_window(&self, op: NativeOp<'_>) -> Result<Option<Verdict>, StorageError> {
        let _ = op;
        Ok(None)
    }

    /// Runs [`Gcra`](crate::strategy::Gcra) natively, or returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn gcra(&self, op: NativeOp<'_>) -> Result<Option<Verdict>, StorageError> {
        let _ = op;
        Ok(None)
    }

    /// A multi-limit hit of `cost` at `now` under `strategy`, all or nothing, natively;
    /// or `Ok(None)`.
    ///
    /// If every item passes, each is consumed and the verdicts are those of the hits.
    /// Otherwise nothing is consumed and the verdicts are those of
    /// [`Op::Test`] for each item. Verdicts come in the order of `items`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn batch(
        &self,
        strategy: BuiltIn,
        items: &[BatchItem<'_>],
        cost: u64,
        now: Timestamp,
    ) -> Result<Option<Vec<Verdict>>, StorageError> {
        let _ = (strategy, items, cost, now);
        Ok(None)
    }
}

/// Runs `op` on `storage`'s native operation for `builtin`: the immediate one if the
/// storage has it, else the async one.
pub(crate) async fn native(
    storage: &dyn Storage,
    builtin: BuiltIn,
    op: NativeOp<'_>,
) -> Result<Option<Verdict>, StorageError> {
    if let Some(result) = storage.native_immediate(builtin, op) {
        return result.map(Some);
    }
    match builtin {
        BuiltIn::FixedWindow => storage.fixed_window(op).await,
        BuiltIn::MovingWindow => storage.moving_window(op).await,
        BuiltIn::SlidingWindow => storage.sliding_window(op).await,
        BuiltIn::Gcra => storage.gcra(op).await,
    }
}
