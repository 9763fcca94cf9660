//! [`CircuitBreaker`]: a storage wrapper that stops calling a storage that is down.
//!
//! After [`BreakerConfig::failures`] consecutive transport failures
//! ([`Unavailable`](StorageErrorKind::Unavailable) or
//! [`Timeout`](StorageErrorKind::Timeout)), the breaker **opens**: every call fails at
//! once with an [`Unavailable`](StorageErrorKind::Unavailable) error whose operation is
//! [`OPEN_OPERATION`], instead of waiting for the storage's own timeout. Every
//! [`probe_interval`](BreakerConfig::probe_interval) one probe, the storage's
//! [`check`](Storage::check), starts in the background; no caller waits for it. The
//! first call that finds it passed **closes** the breaker and goes through, as do all
//! later ones. No task is spawned, so it works under any async runtime: the probe is a
//! future the breaker keeps, which each call made while it is open polls once, without
//! waiting.
//!
//! Any answer from the storage, including errors that are not transport failures
//! (a lost race, corrupt state), resets the count of consecutive failures.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Abilities, Answer, Batch, BatchItem, BoxFuture, ClearAll, KeyOp, KeyRef, NativeStrategies,
    Storage, StorageKey, Version, Versioned,
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
/// storage's own timeout.
///
/// **Probes.** Every [`probe_interval`](BreakerConfig::probe_interval) one probe, the
/// storage's [`check`](Storage::check), starts; never two at a time, and no caller
/// waits for one: the breaker keeps the probe's future, and each call made while it is
/// open polls it once and fails at once unless it finds the probe passed, in which
/// case the breaker **closes** and that call goes through, as do all later ones. A
/// probe that fails, or is still unanswered a probe interval after it started, is
/// replaced by a new one from then on. No task is spawned, so it works under any async
/// runtime; with no calls at all, nothing probes (and nobody waits).
///
/// Any answer from the storage other than a transport failure resets the count.
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
    /// probe may start.
    open: AtomicU64,
    /// Whether a probe is in flight (for [`state`](Self::state) without the lock).
    probing: AtomicBool,
    /// The probe in flight, if any.
    probe: Mutex<Option<Probe>>,
}

/// A probe in flight: the storage's `check`, and when it started.
struct Probe {
    check: BoxFuture<'static, Result<(), StorageError>>,
    /// Nanoseconds since the breaker's `base`.
    started: u64,
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
    /// Open, and a probe of the storage is in flight.
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
            probe: Mutex::new(None),
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

    fn interval_nanos(&self) -> u64 {
        u64::try_from(self.config.probe_interval.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The `open` value for a next probe one interval after `from`.
    fn probe_after(&self, from: u64) -> u64 {
        from.saturating_add(self.interval_nanos()).saturating_add(1)
    }

    fn next_probe(&self) -> u64 {
        self.probe_after(self.now_nanos())
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
        // A probe still in flight would speak of an older outage by the next one.
        if let Ok(mut slot) = self.probe.try_lock() {
            *slot = None;
            self.probing.store(false, Ordering::Release);
        }
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

    /// Whether a call may go through now: always while closed; while open, only when
    /// the probe, polled here once without waiting, has just passed.
    fn admits(&self) -> bool {
        let open = self.open.load(Ordering::Acquire);
        if open == 0 {
            return true;
        }
        let due = self.now_nanos().saturating_add(1) >= open;
        if !due && !self.probing.load(Ordering::Acquire) {
            return false;
        }
        self.poll_probe()
    }

    /// Polls the probe in flight once, or starts one if it is time and none runs (or
    /// the one in flight failed, or has gone unanswered for a probe interval) and polls
    /// that. Whether it passed, closing the breaker. Never waits: a caller that finds
    /// another polling the probe just goes on.
    fn poll_probe(&self) -> bool {
        let Ok(mut slot) = self.probe.try_lock() else {
            return false;
        };
        let mut fresh = false;
        loop {
            let now = self.now_nanos();
            if slot.is_none() {
                if fresh || now.saturating_add(1) < self.open.load(Ordering::Acquire) {
                    self.probing.store(false, Ordering::Release);
                    return false;
                }
                let inner = Arc::clone(&self.inner);
                *slot = Some(Probe {
                    check: Box::pin(async move { inner.check().await }),
                    started: now,
                });
                self.probing.store(true, Ordering::Release);
                fresh = true;
            }
            let Some(probe) = slot.as_mut() else {
                return false;
            };
            let mut cx = Context::from_waker(Waker::noop());
            let result = match probe.check.as_mut().poll(&mut cx) {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    let overdue = now >= probe.started.saturating_add(self.interval_nanos());
                    if fresh || !overdue {
                        return false;
                    }
                    // Unanswered for an interval: a fresh probe takes its place.
                    *slot = None;
                    continue;
                }
            };
            let started = probe.started;
            *slot = None;
            match result {
                Ok(()) => {
                    self.probing.store(false, Ordering::Release);
                    self.close();
                    return true;
                }
                Err(e) => {
                    // The next probe one interval after this one started: at once if
                    // this one took that long. (Unless a call closed the breaker since.)
                    let next = self.probe_after(started);
                    let _ = self
                        .open
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                            (open != 0).then_some(next)
                        });
                    tracing::debug!(
                        limiter.storage = ?self.inner,
                        error.type = e.kind().as_str(),
                        error.message = %e,
                        "storage circuit breaker probe failed"
                    );
                }
            }
        }
    }

    /// Lets a call through, or refuses it at once.
    fn admit(&self, operation: &'static str, key: Option<&StorageKey>) -> Result<(), StorageError> {
        if self.admits() {
            Ok(())
        } else {
            Err(Self::open_error(operation, key.map(KeyRef::from)))
        }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        key: Option<&StorageKey>,
        call: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.admit(operation, key)?;
        let result = call.await;
        self.record(&result);
        result
    }

    /// Wraps a native answer: counts its result, and refuses it at once while open.
    fn wrap<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        key: Option<KeyRef<'a>>,
        answer: impl FnOnce() -> Answer<'a, T>,
    ) -> Answer<'a, T> {
        if !self.admits() {
            return Answer::Ready(Err(Self::open_error(operation, key)));
        }
        match answer() {
            Answer::Declined => Answer::Declined,
            Answer::Ready(result) => {
                self.record(&result);
                Answer::Ready(result)
            }
            Answer::Pending(future) => Answer::pending(async move {
                let result = future.await;
                self.record(&result);
                result
            }),
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

    fn batch_many<'a>(
        &'a self,
        strategy: BuiltIn,
        items: &'a [BatchItem<'a>],
        calls: &'a [(u64, Timestamp)],
    ) -> Answer<'a, Vec<Vec<Verdict>>> {
        let key = items.first().map(|item| item.key);
        self.wrap("batch", key, move || {
            match self.inner.abilities().get_native() {
                Some(native) => native.batch_many(strategy, items, calls),
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
