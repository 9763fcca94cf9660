//! The storage trait: where rate-limit state lives.
//!
//! # Contract
//!
//! A storage has a required core of four methods and optional abilities apart.
//!
//! 1. **The required core**, which any key-value store can provide:
//!    [`get`](Storage::get) a key's bytes with a [`Version`] token,
//!    [`compare_and_set`](Storage::compare_and_set) them with a time-to-live,
//!    [`delete`](Storage::delete), and a health [`check`](Storage::check). Every
//!    strategy, built-in or custom, runs on this core alone: the
//!    [`RateLimiter`](crate::RateLimiter) reads the state, lets the
//!    [`Strategy`](crate::Strategy) decide, and writes back with compare-and-set,
//!    retrying (with a randomised back-off) when another writer won.
//! 2. **Optional abilities**, all returned by one method,
//!    [`abilities`](Storage::abilities), so that a storage wrapping another forwards
//!    them in one line and cannot lose one by forgetting a method:
//!    - [`NativeStrategies`]: [`apply`](NativeStrategies::apply) runs a built-in
//!      strategy on one key in one step (under a lock, in a server-side script), and
//!      [`batch`](NativeStrategies::batch) runs a multi-limit hit all or nothing. Both
//!      answer with an [`Answer`]: [`Ready`](Answer::Ready) with the result when the
//!      storage decided without waiting (in-process storages: no future, no
//!      allocation), [`Pending`](Answer::Pending) with a future when it must wait
//!      (network storages), or [`Declined`](Answer::Declined) to send the limiter to the
//!      generic path over the core. A storage may decline case by case, for example a
//!      limit whose numbers its script language cannot hold exactly. Two more,
//!      optional, take what the limiter's coalescing queues in one step:
//!      [`apply_many`](NativeStrategies::apply_many) (several operations on one key)
//!      and [`batch_many`](NativeStrategies::batch_many) (several multi-limit hits on
//!      the same keys).
//!    - [`ClearAll`]: removing every key the storage holds for rate limiting.
//!    - [`Expiry`]: whether keys expire on the limiter's clock or on a server's.
//!    - [`Sleep`]: sleeping in real time, which the generic path uses to back off
//!      after a lost compare-and-set race (storages on an async runtime set it;
//!      without it the back-off counts scheduler turns).
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
//! Native operations receive the key as a [`KeyRef`]: on the limiter's hot path still
//! in its parts (prefix, identifiers, limit), so that an in-process storage can hash
//! and compare them without the key's text ever being built; a network storage calls
//! [`KeyRef::to_storage_key`] (or [`Display`](std::fmt::Display)) for the text.
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
//! [`abilities`](Storage::abilities) whole (`self.inner.abilities()`), or builds its
//! own from the inner storage's, wrapping the ones it watches.
//!
//! # Writing your own storage
//!
//! 1. Implement the required core: `get`, `compare_and_set`, `delete`, `check`. Every
//!    strategy then works.
//! 2. Declare what else the store does in [`abilities`](Storage::abilities): how its
//!    keys expire ([`Expiry`]), and [`ClearAll`] if it can flush its keys.
//! 3. Run the conformance suite against a real instance of the store:
//!    `limiter_conformance::suite!(MyStorage::connect(..).await?)` in a test file.
//! 4. Only then, if profiling says so, implement [`NativeStrategies`] for the built-ins
//!    your store can run in one step, following the layouts on each strategy; the
//!    suite compares its decisions and bytes with the generic path's.
//!
//! ```
//! use limiter_core::storage::{async_trait, Storage, StorageKey, Version, Versioned};
//! use limiter_core::{StorageError, StorageErrorKind, Timestamp};
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

mod answer;
mod batch;
mod breaker;

use std::fmt;
use std::time::Duration;

pub use async_trait::async_trait;

pub use answer::{Answer, BoxFuture};
pub use batch::{Batch, BatchError, BatchItem};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, OPEN_OPERATION};

use crate::clock::Timestamp;
use crate::error::StorageError;
pub use crate::key::{KeyRef, StorageKey};
use crate::limit::RateLimit;
pub use crate::limiter::{
    apply, apply_batch, apply_batches_in_turn, apply_in_turn, apply_many_with_cas, apply_with_cas,
};
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
/// What [`NativeStrategies::apply`] receives, and what the generic path
/// ([`apply_with_cas`]) runs over the required core.
#[derive(Debug, Clone, Copy)]
pub struct KeyOp<'a> {
    /// The stored key: in its parts on the limiter's hot path, so that a storage that
    /// needs no text builds none ([`KeyRef::to_storage_key`] builds it).
    pub key: KeyRef<'a>,
    /// The limit the key counts against.
    pub limit: &'a RateLimit,
    /// What to do.
    pub op: Op,
    /// The limiter's current time; the storage must not use its own.
    pub now: Timestamp,
}

/// A rate-limit state store: four required methods, and optional
/// [`abilities`](Self::abilities). See the [module docs](self) for the contract.
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

    /// What the storage offers beyond the required core. Default: nothing, and keys
    /// that expire in real time ([`Expiry::default`]).
    ///
    /// ```
    /// # use limiter_core::storage::{Abilities, ClearAll, Expiry, NativeStrategies, Storage};
    /// # fn example(storage: &(impl Storage + NativeStrategies + ClearAll)) -> Abilities<'_> {
    /// // In `impl Storage for MyStorage`:
    /// // fn abilities(&self) -> Abilities<'_> {
    /// Abilities::new()
    ///     .native(storage)
    ///     .clear_all(storage)
    ///     .expiry(Expiry::LimiterTime)
    /// // }
    /// # }
    /// ```
    fn abilities(&self) -> Abilities<'_> {
        Abilities::new()
    }
}

/// What a storage offers beyond the required core, from [`Storage::abilities`]: each
/// optional ability, borrowed from the storage, and how its keys expire.
#[derive(Clone, Copy, Default)]
#[must_use]
pub struct Abilities<'a> {
    native: Option<&'a dyn NativeStrategies>,
    clear_all: Option<&'a dyn ClearAll>,
    sleep: Option<&'a dyn Sleep>,
    expiry: Expiry,
    breaker: Option<&'a CircuitBreaker>,
}

impl fmt::Debug for Abilities<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Abilities")
            .field("native", &self.native.is_some())
            .field("clear_all", &self.clear_all.is_some())
            .field("sleep", &self.sleep.is_some())
            .field("expiry", &self.expiry)
            .field("breaker", &self.breaker.map(CircuitBreaker::state))
            .finish()
    }
}

impl<'a> Abilities<'a> {
    /// No ability, keys expiring in real time.
    pub fn new() -> Abilities<'a> {
        Abilities::default()
    }

    /// Built-in strategies run by the storage itself.
    pub fn native(mut self, native: &'a dyn NativeStrategies) -> Self {
        self.native = Some(native);
        self
    }

    /// Flushing every rate-limit key.
    pub fn clear_all(mut self, clear_all: &'a dyn ClearAll) -> Self {
        self.clear_all = Some(clear_all);
        self
    }

    /// Sleeping in real time, for the generic path's back-off after a lost race (see
    /// [`Sleep`], whose example shows one).
    pub fn sleep(mut self, sleep: &'a dyn Sleep) -> Self {
        self.sleep = Some(sleep);
        self
    }

    /// How keys expire.
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// The [`CircuitBreaker`] the storage is, for reading its
    /// [`state`](CircuitBreaker::state) (the breaker sets this itself).
    pub fn breaker(mut self, breaker: &'a CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The circuit breaker in front of the storage, if it is one: how a
    /// [`RateLimiter`](crate::RateLimiter)'s own breaker is read, for metrics.
    ///
    /// ```
    /// use limiter_core::storage::{BreakerState, Storage};
    /// use limiter_core::RateLimiter;
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::sync::Arc;
    ///
    /// let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
    ///     .circuit_breaker(Some(Default::default()))
    ///     .build();
    /// let breaker = limiter.storage().abilities().get_breaker().map(|b| b.state());
    /// assert_eq!(breaker, Some(BreakerState::Closed));
    /// ```
    pub fn get_breaker(&self) -> Option<&'a CircuitBreaker> {
        self.breaker
    }

    /// The storage's own operations for the built-in strategies, if any.
    pub fn get_native(&self) -> Option<&'a dyn NativeStrategies> {
        self.native
    }

    /// The storage's flush, if it has one.
    pub fn get_clear_all(&self) -> Option<&'a dyn ClearAll> {
        self.clear_all
    }

    /// The storage's real-time sleep, if it has one.
    pub fn get_sleep(&self) -> Option<&'a dyn Sleep> {
        self.sleep
    }

    /// How the storage's keys expire.
    pub fn get_expiry(&self) -> Expiry {
        self.expiry
    }
}

/// How a storage's keys expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// On the limiter's time, which every call carries: under a
    /// [`ManualClock`](crate::ManualClock), nothing expires until the clock moves
    /// (in-process storages).
    LimiterTime,
    /// On a server's clock, in real time, at most `late` after the time-to-live ends
    /// (network storages).
    RealTime {
        /// How late the server may drop an expired key (Memcached counts whole
        /// seconds, for example).
        late: Duration,
    },
}

impl Default for Expiry {
    /// Real time, at most a second late.
    fn default() -> Self {
        Expiry::RealTime {
            late: Duration::from_secs(1),
        }
    }
}

/// A storage that runs the built-in strategies itself, in one step per operation:
/// under a lock, or in a server-side script. See the [module docs](self).
///
/// Each method may decline ([`Answer::Declined`]), case by case, sending the limiter to
/// the generic compare-and-set path.
pub trait NativeStrategies: Send + Sync {
    /// Runs built-in `strategy` on `op.key`, or declines.
    ///
    /// The result must be the [`Verdict`] that `strategy`'s
    /// [`Strategy::apply`](crate::Strategy::apply) gives on the key's current state, and
    /// the state left behind (bytes and time-to-live) must be the one it writes, as one
    /// atomic step. Answer [`Answer::Ready`] when no waiting is needed and
    /// [`Answer::Pending`] otherwise; the limiter treats both alike.
    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict>;

    /// A multi-limit hit under built-in `strategy`, all or nothing; or
    /// [`Answer::Declined`] (the default).
    ///
    /// If every item of `batch` passes, each is consumed and the verdicts are those of
    /// the hits. Otherwise nothing is consumed and the verdicts are those of
    /// [`Op::Test`] for each item. One verdict per item, in order: the limiter rejects
    /// any other count. A [`Batch`] never repeats a key.
    fn batch<'a>(&'a self, strategy: BuiltIn, batch: Batch<'a>) -> Answer<'a, Vec<Verdict>> {
        let _ = (strategy, batch);
        Answer::Declined
    }

    /// Several operations on one key under built-in `strategy`, each with its own
    /// time, in order, as if each ran alone right after the one before; or
    /// [`Answer::Declined`] (the default), and the limiter sends them one by one
    /// through [`apply`](Self::apply).
    ///
    /// One verdict per operation, in order: the limiter rejects any other count. The
    /// state left behind is the one the last operation leaves when each is applied in
    /// turn. What the limiter's coalescing
    /// ([`RateLimiterBuilder::coalesce`](crate::RateLimiterBuilder::coalesce)) sends
    /// for the calls queued behind one in flight on a key: a storage that answers it
    /// in one round trip decides a hot key's queue in one. `ops` is never empty.
    fn apply_many<'a>(
        &'a self,
        strategy: BuiltIn,
        key: KeyRef<'a>,
        limit: &'a RateLimit,
        ops: &'a [(Op, Timestamp)],
    ) -> Answer<'a, Vec<Verdict>> {
        let _ = (strategy, key, limit, ops);
        Answer::Declined
    }

    /// Several multi-limit hits on the same `items` under built-in `strategy`, each
    /// with its own cost and time (`calls`), in order, each all or nothing as
    /// [`batch`](Self::batch) would decide it right after the one before; or
    /// [`Answer::Declined`] (the default), and the limiter sends them one by one
    /// through [`batch`](Self::batch).
    ///
    /// One list of verdicts per call, in order, each as [`batch`](Self::batch) answers
    /// (one verdict per item): the limiter rejects any other count. What the limiter's
    /// coalescing sends for the [`hit_all`](crate::RateLimiter::hit_all) calls of one
    /// client queued behind one in flight. `items` are as in a [`Batch`] (at least
    /// one, no key twice); `calls` is never empty and every cost is at least 1.
    fn batch_many<'a>(
        &'a self,
        strategy: BuiltIn,
        items: &'a [BatchItem<'a>],
        calls: &'a [(u64, Timestamp)],
    ) -> Answer<'a, Vec<Vec<Verdict>>> {
        let _ = (strategy, items, calls);
        Answer::Declined
    }
}

/// Sleeping in real time, on the runtime a storage runs on: what the generic path's
/// back-off uses after a lost compare-and-set race (see [`apply_with_cas`]).
///
/// A network storage on Tokio sets it (a round trip lasts far longer than a
/// scheduler turn, so a back-off counted in turns retries before the winner's write
/// has even landed); a runtime-agnostic storage leaves it out and the back-off yields
/// to the scheduler instead.
///
/// ```
/// use limiter_core::storage::{BoxFuture, Sleep};
/// use std::time::Duration;
///
/// /// Sleeps on a thread of its own: for illustration; use your runtime's timer.
/// struct ThreadSleep;
///
/// impl Sleep for ThreadSleep {
///     fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
///         Box::pin(async move { std::thread::sleep(duration) })
///     }
/// }
/// # futures::executor::block_on(ThreadSleep.sleep(Duration::from_millis(1)));
/// ```
pub trait Sleep: Send + Sync {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The most one decision may spend sleeping in back-off before it gives up with
    /// [`Contention`](crate::StorageErrorKind::Contention): the time a caller is
    /// prepared to wait for one call, such as the storage's command timeout.
    /// Default: 250 ms.
    fn budget(&self) -> Duration {
        Duration::from_millis(250)
    }
}

/// A storage that can remove every key it holds for rate limiting.
#[async_trait]
pub trait ClearAll: Send + Sync {
    /// Removes every key this storage holds for rate limiting.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when the storage cannot answer.
    async fn clear_all(&self) -> Result<(), StorageError>;
}
