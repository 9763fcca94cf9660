//! [`CircuitBreaker`]: a storage wrapper that stops calling a storage that is down.
//!
//! After [`BreakerConfig::failures`] consecutive transport failures
//! ([`Unavailable`](StorageErrorKind::Unavailable) or
//! [`Timeout`](StorageErrorKind::Timeout)), the breaker **opens**: every call fails at
//! once with an [`Unavailable`](StorageErrorKind::Unavailable) error whose operation is
//! [`OPEN_OPERATION`], instead of waiting for the storage's own timeout. Once every
//! [`probe_interval`](BreakerConfig::probe_interval), one caller (never two at a time)
//! runs the storage's [`check`](Storage::check) first; when it passes, the breaker
//! **closes** and that caller's call goes through, as do all later ones. No task is
//! spawned: probes ride on callers, so it works under any async runtime.
//!
//! Any answer from the storage, including errors that are not transport failures
//! (a lost race, corrupt state), resets the count of consecutive failures.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Abilities, Answer, Batch, ClearAll, KeyOp, KeyRef, NativeStrategies, Storage, StorageKey,
    Version, Versioned,
};
use crate::clock::Timestamp;
use crate::error::{StorageError, StorageErrorKind};
use crate::limit::RateLimit;
use crate::strategy::{BuiltIn, Op, Verdict};

/// The [`StorageError::operation`] of the error an open breaker answers with.
pub const OPEN_OPERATION: &str = "circuit_breaker";

/// When a [`CircuitBreaker`] opens and how often it probes.
///
/// ```
/// use limiter_core::storage::BreakerConfig;
/// use std::time::Duration;
///
/// let config = BreakerConfig::default()
///     .failures(3)
///     .probe_interval(Duration::from_millis(250));
/// assert_eq!(config.get_failures(), 3);
/// assert_eq!(BreakerConfig::default().get_probe_interval(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct BreakerConfig {
    failures: u32,
    probe_interval: Duration,
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive transport failures; probes every 500 ms.
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            probe_interval: Duration::from_millis(500),
        }
    }
}

impl BreakerConfig {
    /// How many consecutive transport failures open the breaker. Default: 5; values
    /// below 1 count as 1.
    pub fn failures(mut self, failures: u32) -> Self {
        self.failures = failures.max(1);
        self
    }

    /// How long an open breaker waits between probes. Default: 500 ms.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// The number of consecutive failures that opens the breaker.
    pub fn get_failures(&self) -> u32 {
        self.failures
    }

    /// The time between probes.
    pub fn get_probe_interval(&self) -> Duration {
        self.probe_interval
    }
}

/// A storage that fails fast while the storage it wraps is down.
///
/// After [`BreakerConfig::failures`] consecutive transport failures
/// ([`Unavailable`](StorageErrorKind::Unavailable) or
/// [`Timeout`](StorageErrorKind::Timeout)), the breaker **opens**: every call fails at
/// once with an [`Unavailable`](StorageErrorKind::Unavailable) error whose operation is
/// [`OPEN_OPERATION`] (and whose key is the call's), instead of waiting for the
/// storage's own timeout. Once every [`probe_interval`](BreakerConfig::probe_interval),
/// one caller (never two at a time) runs the storage's [`check`](Storage::check) first;
/// when it passes, the breaker **closes** and that caller's call goes through, as do
/// all later ones. No task is spawned: probes ride on callers, so it works under any
/// async runtime. Any answer from the storage other than a transport failure resets
/// the count.
///
/// A `tracing` event marks each opening (`WARN`, fields `limiter.storage`,
/// `limiter.breaker.failures`, `error.type`, `error.message` with any key as its
/// digest) and each closing (`INFO`, field `limiter.storage`); a failed probe is a
/// `DEBUG` event. [`state`](Self::state) reads the state, for metrics; a
/// [`RateLimiter`](crate::RateLimiter)'s own breaker is reached through its
/// storage's [`abilities`](Storage::abilities)
/// ([`get_breaker`](super::Abilities::get_breaker)).
///
/// The [`RateLimiter`](crate::RateLimiter) wraps network storages in one by default
/// (see [`RateLimiterBuilder::circuit_breaker`](crate::RateLimiterBuilder::circuit_breaker));
/// wrap a storage yourself to share one breaker between several limiters.
///
/// ```
/// use limiter_core::storage::{BreakerConfig, CircuitBreaker, Storage};
/// # use limiter_core::doc_support::TinyStorage;
/// use std::sync::Arc;
///
/// let storage = CircuitBreaker::new(Arc::new(TinyStorage::default()), BreakerConfig::default());
/// assert!(!storage.is_open());
/// # futures::executor::block_on(async {
/// storage.check().await?;
/// # Ok::<(), limiter_core::StorageError>(())
/// # }).unwrap();
/// ```
pub struct CircuitBreaker {
    inner: Arc<dyn Storage>,
    config: BreakerConfig,
    base: Instant,
    consecutive: AtomicU32,
    /// 0 while closed; otherwise 1 + the nanoseconds since `base` at which the next
    /// probe may run.
    open: AtomicU64,
    probing: AtomicBool,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("open", &self.is_open())
            .finish()
    }
}

/// The state of a [`CircuitBreaker`], from [`CircuitBreaker::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through to the storage.
    Closed,
    /// Calls fail at once; a probe runs when the probe interval has passed.
    Open,
    /// Open, and one caller is probing the storage now.
    Probing,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"probing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::Probing => "probing",
        }
    }
}

/// Whether an error says the storage could not be reached or did not answer.
fn is_transport(error: &StorageError) -> bool {
    matches!(
        error.kind(),
        StorageErrorKind::Unavailable | StorageErrorKind::Timeout
    )
}

impl CircuitBreaker {
    /// Wraps `inner`, closed.
    pub fn new(inner: Arc<dyn Storage>, config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            inner,
            config,
            base: Instant::now(),
            consecutive: AtomicU32::new(0),
            open: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Whether the breaker is open: calls fail at once until a probe passes.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) != 0
    }

    /// The breaker's state now: two atomic loads, for metrics and status pages.
    ///
    /// ```
    /// use limiter_core::storage::{BreakerConfig, BreakerState, CircuitBreaker};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::sync::Arc;
    ///
    /// let breaker = CircuitBreaker::new(Arc::new(TinyStorage::default()), BreakerConfig::default());
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// ```
    pub fn state(&self) -> BreakerState {
        if !self.is_open() {
            BreakerState::Closed
        } else if self.probing.load(Ordering::Acquire) {
            BreakerState::Probing
        } else {
            BreakerState::Open
        }
    }

    /// The count of consecutive transport failures so far (reset by any other
    /// answer).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Acquire)
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn next_probe(&self) -> u64 {
        let interval = u64::try_from(self.config.probe_interval.as_nanos()).unwrap_or(u64::MAX);
        self.now_nanos().saturating_add(interval).saturating_add(1)
    }

    /// Counts one answer of the storage.
    fn record<T>(&self, result: &Result<T, StorageError>) {
        match result {
            Err(e) if is_transport(e) => {
                let failures = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.config.failures
                    && self
                        .open
                        .compare_exchange(0, self.next_probe(), Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    tracing::warn!(
                        limiter.storage = ?self.inner,
                        limiter.breaker.failures = failures,
                        error.type = e.kind().as_str(),
                        error.message = %e.redacted(),
                        "storage circuit breaker opened: calls fail at once until a probe passes"
                    );
                }
            }
            _ => {
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Release);
                }
                if self.is_open() {
                    self.close();
                }
            }
        }
    }

    fn close(&self) {
        self.consecutive.store(0, Ordering::Release);
        if self.open.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!(limiter.storage = ?self.inner, "storage circuit breaker closed");
        }
    }

    fn open_error(operation: &'static str, key: Option<KeyRef<'_>>) -> StorageError {
        let error = StorageError::new(
            StorageErrorKind::Unavailable,
            OPEN_OPERATION,
            format!("circuit breaker open: {operation} not sent to a storage that is down"),
        );
        match key {
            Some(key) => error.with_key(key.to_string()),
            None => error,
        }
    }

    /// What an open breaker lets through now: `Pass` while closed, `Probe` for the one
    /// caller whose turn it is to probe, `Refuse` for everyone else.
    fn gate(&self) -> Gate {
        let open = self.open.load(Ordering::Acquire);
        if open == 0 {
            return Gate::Pass;
        }
        if self.now_nanos().saturating_add(1) < open {
            return Gate::Refuse;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Gate::Probe
        } else {
            Gate::Refuse
        }
    }

    /// Runs the probe: the storage's `check`. Closes the breaker when it passes, else
    /// schedules the next probe.
    async fn probe(&self) -> bool {
        let mut guard = ProbeGuard {
            breaker: self,
            done: false,
        };
        let result = self.inner.check().await;
        guard.done = true;
        self.probing.store(false, Ordering::Release);
        match result {
            Ok(()) => {
                self.close();
                true
            }
            Err(e) => {
                self.open.store(self.next_probe(), Ordering::Release);
                tracing::debug!(
                    limiter.storage = ?self.inner,
                    error.type = e.kind().as_str(),
                    error.message = %e,
                    "storage circuit breaker probe failed"
                );
                false
            }
        }
    }

    /// Lets a call through (probing first when it is time), or refuses it.
    async fn admit(
        &self,
        operation: &'static str,
        key: Option<&StorageKey>,
    ) -> Result<(), StorageError> {
        match self.gate() {
            Gate::Pass => Ok(()),
            Gate::Refuse => Err(Self::open_error(operation, key.map(KeyRef::from))),
            Gate::Probe => {
                if self.probe().await {
                    Ok(())
                } else {
                    Err(Self::open_error(operation, key.map(KeyRef::from)))
                }
            }
        }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        key: Option<&StorageKey>,
        call: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.admit(operation, key).await?;
        let result = call.await;
        self.record(&result);
        result
    }

    /// Wraps a native answer: counts its result, and refuses or probes first while open.
    fn wrap<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        key: Option<KeyRef<'a>>,
        answer: impl FnOnce() -> Answer<'a, T>,
    ) -> Answer<'a, T> {
        let probe = match self.gate() {
            Gate::Refuse => return Answer::Ready(Err(Self::open_error(operation, key))),
            Gate::Pass => false,
            Gate::Probe => true,
        };
        match answer() {
            Answer::Declined => {
                if probe {
                    // The generic path's own calls will probe.
                    self.probing.store(false, Ordering::Release);
                }
                Answer::Declined
            }
            Answer::Ready(result) => {
                self.record(&result);
                if probe {
                    if self.is_open() {
                        self.open.store(self.next_probe(), Ordering::Release);
                    }
                    self.probing.store(false, Ordering::Release);
                }
                Answer::Ready(result)
            }
            Answer::Pending(future) => Answer::pending(async move {
                if probe && !self.probe().await {
                    return Err(Self::open_error(operation, key));
                }
                let result = future.await;
                self.record(&result);
                result
            }),
        }
    }
}

enum Gate {
    Pass,
    Probe,
    Refuse,
}

/// Ends a probe whose future was dropped: counts it as failed.
struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    done: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let breaker = self.breaker;
            breaker.open.store(breaker.next_probe(), Ordering::Release);
            breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[async_trait]
impl Storage for CircuitBreaker {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        self.run("get", Some(key), self.inner.get(key, now)).await
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let call = self.inner.compare_and_set(key, expected, value, ttl, now);
        self.run("compare_and_set", Some(key), call).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.run("delete", Some(key), self.inner.delete(key)).await
    }

    /// Always asks the wrapped storage, open or not: a passing check closes the
    /// breaker.
    async fn check(&self) -> Result<(), StorageError> {
        let result = self.inner.check().await;
        self.record(&result);
        result
    }

    fn abilities(&self) -> Abilities<'_> {
        let inner = self.inner.abilities();
        let mut abilities = Abilities::new().expiry(inner.get_expiry()).breaker(self);
        if inner.get_native().is_some() {
            abilities = abilities.native(self);
        }
        if inner.get_clear_all().is_some() {
            abilities = abilities.clear_all(self);
        }
        if let Some(sleep) = inner.get_sleep() {
            abilities = abilities.sleep(sleep);
        }
        abilities
    }
}

impl NativeStrategies for CircuitBreaker {
    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict> {
        self.wrap(strategy.name(), Some(op.key), move || {
            match self.inner.abilities().get_native() {
                Some(native) => native.apply(strategy, op),
                None => Answer::Declined,
            }
        })
    }

    fn batch<'a>(&'a self, strategy: BuiltIn, batch: Batch<'a>) -> Answer<'a, Vec<Verdict>> {
        let key = batch.items().first().map(|item| item.key);
        self.wrap("batch", key, move || {
            match self.inner.abilities().get_native() {
                Some(native) => native.batch(strategy, batch),
                None => Answer::Declined,
            }
        })
    }

    fn apply_many<'a>(
        &'a self,
        strategy: BuiltIn,
        key: KeyRef<'a>,
        limit: &'a RateLimit,
        ops: &'a [(Op, Timestamp)],
    ) -> Answer<'a, Vec<Verdict>> {
        self.wrap(strategy.name(), Some(key), move || {
            match self.inner.abilities().get_native() {
                Some(native) => native.apply_many(strategy, key, limit, ops),
                None => Answer::Declined,
            }
        })
    }
}

#[async_trait]
impl ClearAll for CircuitBreaker {
    async fn clear_all(&self) -> Result<(), StorageError> {
        let Some(clear) = self.inner.abilities().get_clear_all() else {
            return Err(StorageError::unsupported("clear_all"));
        };
        self.run("clear_all", None, clear.clear_all()).await
    }
}
