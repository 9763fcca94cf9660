//! The `RateLimiter`: strategy + storage + clock.

use std::fmt;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::decision::{Decision, WindowStats};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::key::{self, Key, KeyRef, StorageKey};
use crate::limit::RateLimit;
use crate::storage::{
    Answer, Batch, BatchItem, BreakerConfig, CircuitBreaker, Expiry, KeyOp, Sleep, Storage,
};
use crate::strategy::{FixedWindow, Op, Strategy, Verdict};

mod backoff;
mod builder;
#[macro_use]
mod dispatch;
mod coalesce;
mod rejections;
mod trace;
mod wait;

use wait::Timer;

use coalesce::{Coalescer, Path};
use rejections::Rejections;

pub use builder::RateLimiterBuilder;

use dispatch::all_or_nothing;
pub use dispatch::{
    apply, apply_batch, apply_batches_in_turn, apply_in_turn, apply_many_with_cas, apply_with_cas,
};

/// The default number of compare-and-set attempts per decision on the generic path.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 128;

/// The default key namespace, as in Python's `limits`.
pub const DEFAULT_NAMESPACE: &str = "LIMITER";

/// The default number of entries of the local rejection cache
/// ([`RateLimiterBuilder::rejection_cache`]).
pub const DEFAULT_REJECTION_CACHE_SIZE: usize = 4096;

/// The default largest number of calls coalesced into one unit
/// ([`RateLimiterBuilder::coalesce`]).
pub const DEFAULT_MAX_BATCH: usize = 64;

/// Decides hits against rate limits, with one strategy, on one storage.
///
/// Cheap to clone: clones share the storage, strategy and clock.
///
/// Every method reads the clock once and passes that time down, so results are
/// deterministic under a [`ManualClock`](crate::ManualClock).
///
/// # Cancel safety
///
/// Dropping a `hit` future before it completes may or may not have consumed the hit,
/// as with any write to a remote store. Dropping a multi-limit
/// [`hit_all`](Self::hit_all) on the generic path may leave some limits consumed.
///
/// # Examples
///
/// ```
/// use limiter_core::{Key, RateLimit, RateLimiter};
/// // A small storage for examples; applications use `limiter_memory::MemoryStorage`
/// // (or `limiter::MemoryStorage`), which this crate cannot depend on.
/// use limiter_core::doc_support::TinyStorage;
/// use std::sync::Arc;
///
/// # futures::executor::block_on(async {
/// let limiter = RateLimiter::new(Arc::new(TinyStorage::default()));
/// let limits = limiter_core::parse_many("1 per second; 2 per minute")?;
/// let key = Key::new(["user-42"]);
/// let decision = limiter.hit_all(&limits, &key, 1).await?;
/// assert!(decision.is_allowed());
/// // The "1 per second" limit now rejects, and the minute limit is not consumed.
/// assert!(!limiter.hit_all(&limits, &key, 1).await?.is_allowed());
/// assert_eq!(limiter.stats(&limits[1], &key).await?.remaining, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    strategy: Arc<dyn Strategy>,
    clock: Arc<dyn Clock>,
    namespace: String,
    /// `escaped namespace / strategy name`, the start of every stored key.
    prefix: String,
    max_attempts: u32,
    rejections: Option<Rejections>,
    coalescer: Option<Coalescer>,
    /// The same for `hit_all` calls on one client's keys, on storages with their own
    /// batches.
    batch_coalescer: Option<Coalescer<Vec<Verdict>>>,
    /// The timer [`until_ready`](RateLimiter::until_ready) waits on, when set on the
    /// builder (else the storage's [`Sleep`](crate::storage::Sleep) ability).
    timer: Option<Timer>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("storage", &self.inner.storage)
            .field("strategy", &self.inner.strategy.name())
            .field("clock", &self.inner.clock)
            .field("namespace", &self.inner.namespace)
            .field(
                "rejection_cache",
                &self.inner.rejections.as_ref().map(Rejections::capacity),
            )
            .field(
                "coalesce",
                &self.inner.coalescer.as_ref().map(Coalescer::max_batch),
            )
            .finish()
    }
}

/// `key_op` on the limiter's storage: [`run_op!`], with the generic path coalesced
/// when the limiter coalesces, and the rejection cache consulted first and filled
/// after when it has one.
macro_rules! run_limiter_op {
    ($inner:expr, $key_op:expr) => {{
        let inner: &Inner = $inner;
        let key_op: KeyOp<'_> = $key_op;
        // The cache names keys by their text: built once, for the lookup, the
        // storage and the record.
        let rendered = inner
            .rejections
            .as_ref()
            .map(|_| key_op.key.to_storage_key());
        let key_op = match &rendered {
            Some(stored) => KeyOp {
                key: KeyRef::from(&**stored),
                ..key_op
            },
            None => key_op,
        };
        let cached = match (&inner.rejections, &rendered) {
            (Some(cache), Some(stored)) => {
                cache.lookup(stored, key_op.op, key_op.limit.amount(), key_op.now)
            }
            _ => None,
        };
        match cached {
            Some(verdict) => Ok(verdict),
            None => {
                let (storage, strategy): (&dyn Storage, &dyn Strategy) =
                    (&*inner.storage, &*inner.strategy);
                let native = match (strategy.builtin(), storage.abilities().get_native()) {
                    (Some(builtin), Some(native)) => Some((native, builtin)),
                    _ => None,
                };
                let answer = match (native, &inner.coalescer) {
                    // Coalesced: the unit goes through the storage's own operations.
                    (Some(_), Some(_)) => Answer::Declined,
                    (Some((native, builtin)), None) => native.apply(builtin, key_op),
                    (None, _) => Answer::Declined,
                };
                let result = match answer {
                    Answer::Ready(result) => result,
                    Answer::Pending(future) => future.await,
                    Answer::Declined => match &inner.coalescer {
                        Some(coalescer) => {
                            let path = match native {
                                Some((native, builtin)) => Path::Native(native, builtin),
                                None => Path::Generic,
                            };
                            let max_attempts = inner.max_attempts;
                            Box::pin(coalescer.run(path, storage, strategy, max_attempts, key_op))
                                .await
                        }
                        None => {
                            Box::pin(apply_with_cas(
                                storage,
                                strategy,
                                inner.max_attempts,
                                key_op,
                            ))
                            .await
                        }
                    },
                };
                if let (Some(cache), Some(stored), Ok(verdict)) =
                    (&inner.rejections, &rendered, &result)
                {
                    cache.record(
                        stored,
                        key_op.op,
                        key_op.limit.amount(),
                        verdict,
                        key_op.now,
                    );
                }
                result
            }
        }
    }};
}

/// One hit or peek (`op`) of one limit on one stored key at the clock's time, as a
/// [`Decision`]; see [`run_limiter_op!`].
macro_rules! decide {
    ($limiter:expr, $stored:expr, $limit:expr, $op:expr) => {{
        let inner = &*$limiter.inner;
        let (key, limit, op): (KeyRef<'_>, &RateLimit, Op) = ($stored, $limit, $op);
        let now = inner.clock.now();
        let key_op = KeyOp {
            key,
            limit,
            op,
            now,
        };
        let traced = trace::Traced::start(inner, limit, op);
        let verdict = run_limiter_op!(inner, key_op);
        traced.finish(&verdict);
        Ok(Decision::new(*limit, op.cost(), verdict?, now))
    }};
}

impl RateLimiter {
    /// A limiter with the [`FixedWindow`] strategy and the [`SystemClock`].
    pub fn new(storage: Arc<dyn Storage>) -> RateLimiter {
        RateLimiter::builder(storage).build()
    }

    /// A builder over `storage`, to choose the strategy, clock and namespace.
    pub fn builder(storage: Arc<dyn Storage>) -> RateLimiterBuilder {
        RateLimiterBuilder::new(storage)
    }

    /// The storage: the one given to the builder, or the [`CircuitBreaker`] wrapping
    /// it (see [`RateLimiterBuilder::circuit_breaker`]).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The strategy.
    pub fn strategy(&self) -> &Arc<dyn Strategy> {
        &self.inner.strategy
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The key namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The stored key for `key` under `limit`:
    /// `namespace/strategy/identifiers…/amount/multiples/unit`, each user part escaped.
    /// See [`StorageKey`] for the layout.
    pub fn storage_key(&self, limit: &RateLimit, key: &Key) -> StorageKey {
        key::storage_key(&self.inner.prefix, key, limit)
    }

    /// Consumes `cost` units of `limit` for `key` if they are available.
    ///
    /// A rejected hit consumes nothing. A cost above what the strategy ever admits at
    /// once (the limit's amount; for GCRA, its burst) is rejected and the decision says
    /// it never passes ([`Retry::Never`](crate::Retry::Never)).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroCost`] for a cost of 0; [`Error::Storage`] when the storage fails.
    pub async fn hit(&self, limit: &RateLimit, key: &Key, cost: u64) -> Result<Decision, Error> {
        let op = Op::Hit { cost };
        check_cost(cost)?;
        let stored = KeyRef::parts(&self.inner.prefix, key.escaped(), limit);
        decide!(self, stored, limit, op)
    }

    /// Whether a hit of `cost` would pass now. Never changes anything.
    ///
    /// # Errors
    ///
    /// As for [`hit`](Self::hit).
    pub async fn test(&self, limit: &RateLimit, key: &Key, cost: u64) -> Result<Decision, Error> {
        let op = Op::Test { cost };
        check_cost(cost)?;
        let stored = KeyRef::parts(&self.inner.prefix, key.escaped(), limit);
        decide!(self, stored, limit, op)
    }

    /// Units remaining and the reset time of `limit` for `key`. Never changes anything.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the storage fails.
    pub async fn stats(&self, limit: &RateLimit, key: &Key) -> Result<WindowStats, Error> {
        let now = self.inner.clock.now();
        let stored = KeyRef::parts(&self.inner.prefix, key.escaped(), limit);
        let verdict = self.apply(stored, limit, Op::Test { cost: 1 }, now).await?;
        Ok(WindowStats::new(verdict.remaining, verdict.reset_at, now))
    }

    /// Forgets everything counted for `limit` and `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the storage fails.
    pub async fn clear(&self, limit: &RateLimit, key: &Key) -> Result<(), Error> {
        let stored = self.storage_key(limit, key);
        if let Some(cache) = &self.inner.rejections {
            cache.forget(&stored);
        }
        let deleted = self.inner.storage.delete(&stored).await;
        if let Some(cache) = &self.inner.rejections {
            cache.forget(&stored);
        }
        deleted?;
        Ok(())
    }

    /// Consumes `cost` of every limit in `limits` for `key`, all or nothing.
    ///
    /// When any limit rejects, none is consumed: a rejected `1 per second` leaves the
    /// `2 per minute` beside it untouched. The decision names the limit that rejected
    /// (the one with the longest wait), or, when all passed, the one with the fewest
    /// units left; on ties, the first in `limits`. Repeated limits count once.
    ///
    /// On a storage with a native [`batch`](crate::storage::NativeStrategies::batch) this is one atomic step. On
    /// the generic path the limits are consumed one by one and given back if a later
    /// one rejects; in between, concurrent calls may see the earlier limits consumed
    /// (so they may reject where they would have passed, but never pass where they
    /// should reject). When a storage error interrupts it, the limits already consumed
    /// are given back too, best effort, and the error is returned: if giving back fails
    /// as well (the storage is down), those limits stay consumed, which can reject
    /// later hits early but never admit one too many.
    ///
    /// # Errors
    ///
    /// [`Error::NoLimits`] for an empty `limits`; otherwise as [`hit`](Self::hit).
    pub async fn hit_all(
        &self,
        limits: &[RateLimit],
        key: &Key,
        cost: u64,
    ) -> Result<Decision, Error> {
        check_cost(cost)?;
        let limits = distinct(limits)?;
        let limits = &*limits;
        let now = self.inner.clock.now();
        let (prefix, identifiers) = (&*self.inner.prefix, key.escaped());
        let item = |i: usize| BatchItem {
            key: KeyRef::parts(prefix, identifiers, &limits[i]),
            limit: &limits[i],
        };
        // Up to four limits (nearly always), the items live on the stack.
        let on_stack: [BatchItem<'_>; 4];
        let on_heap: Vec<BatchItem<'_>>;
        let items: &[BatchItem<'_>] = if limits.len() <= 4 {
            on_stack = std::array::from_fn(|i| item(i.min(limits.len() - 1)));
            &on_stack[..limits.len()]
        } else {
            on_heap = (0..limits.len()).map(item).collect();
            &on_heap
        };
        let inner = &*self.inner;
        // Distinct limits have distinct keys, and the cost was checked.
        let batch = Batch::trusted(items, cost, now);
        let remember = |verdicts: &[Verdict]| {
            if let Some(cache) = &inner.rejections {
                for (item, verdict) in items.iter().zip(verdicts) {
                    let stored = item.key.to_storage_key();
                    cache.record(
                        &stored,
                        Op::Test { cost },
                        item.limit.amount(),
                        verdict,
                        now,
                    );
                }
            }
        };
        let traced = trace::Traced::start_all(inner, limits, Op::Hit { cost });
        let native = inner.storage.abilities().get_native();
        let answered = match (inner.strategy.builtin(), native, &inner.batch_coalescer) {
            // Coalesced: the calls of this client queued behind one in flight go
            // together (boxed, as below).
            (Some(builtin), Some(native), Some(coalescer)) => {
                let one = |cost, now| async move {
                    let batch = Batch::trusted(items, cost, now);
                    match native.batch(builtin, batch).resolve().await {
                        Some(verdicts) => verdicts,
                        None => self.batch_per_key(batch).await,
                    }
                };
                let unit = coalescer.run_batch(native, builtin, items, (cost, now), one);
                Some(Box::pin(unit).await)
            }
            (Some(builtin), Some(native), None) => native.batch(builtin, batch).resolve().await,
            _ => None,
        };
        let verdicts = match answered {
            Some(verdicts) => verdicts,
            // Each item's operations as a hit's: through the coalescing (a hot
            // client's concurrent calls queue per key instead of racing) and the
            // rejection cache. Boxed, so that the future of every hit_all stays small
            // (see `decide!`).
            None => Box::pin(self.batch_per_key(batch)).await,
        };
        traced.finish(&verdicts);
        let verdicts = verdicts?;
        if verdicts.len() != limits.len() {
            return Err(StorageError::new(
                StorageErrorKind::Protocol,
                "batch",
                format!("{} verdicts for {} limits", verdicts.len(), limits.len()),
            )
            .into());
        }
        remember(&verdicts);
        combine(limits, &verdicts, cost, now)
    }

    /// Gives back `cost` units of every limit in `limits` for `key`, taken by an
    /// allowed [`hit`](Self::hit) or [`hit_all`](Self::hit_all) whose decision was made
    /// at `at` ([`Decision::decided_at`]): for work that turned out not to count, such
    /// as a request the framework answered `405 Method Not Allowed`.
    ///
    /// Each strategy gives back only what the hit can still be holding (see the
    /// strategy docs, rule **Refund**): a fixed or sliding window whose window has
    /// moved on, or a moving-window record that expired, gives back nothing, so a
    /// refund never leaves more room than if the hit had not happened. Refunding a hit
    /// twice, or one that was rejected, can give back units that other hits took.
    ///
    /// ```
    /// use limiter_core::{Key, RateLimit, RateLimiter};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::sync::Arc;
    ///
    /// # futures::executor::block_on(async {
    /// let limiter = RateLimiter::new(Arc::new(TinyStorage::default()));
    /// let limit: RateLimit = "1 per minute".parse()?;
    /// let client = Key::from("203.0.113.9");
    /// let decision = limiter.hit(&limit, &client, 1).await?;
    /// assert!(decision.is_allowed());
    /// limiter.refund(&[limit], &client, 1, decision.decided_at()).await?;
    /// assert!(limiter.hit(&limit, &client, 1).await?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`hit_all`](Self::hit_all). Limits refunded before a storage error stay
    /// refunded.
    pub async fn refund(
        &self,
        limits: &[RateLimit],
        key: &Key,
        cost: u64,
        at: Timestamp,
    ) -> Result<(), Error> {
        check_cost(cost)?;
        let limits = distinct(limits)?;
        let now = self.inner.clock.now();
        for limit in limits.iter() {
            let stored = KeyRef::parts(&self.inner.prefix, key.escaped(), limit);
            let cached = self
                .inner
                .rejections
                .as_ref()
                .map(|cache| (cache, stored.to_storage_key()));
            if let Some((cache, stored)) = &cached {
                cache.forget(stored);
            }
            let refunded = self
                .apply(stored, limit, Op::Refund { cost, at }, now)
                .await;
            if let Some((cache, stored)) = &cached {
                cache.forget(stored);
            }
            refunded?;
        }
        Ok(())
    }

    /// Whether [`hit_all`](Self::hit_all) would pass now. Never changes anything.
    ///
    /// # Errors
    ///
    /// As for [`hit_all`](Self::hit_all).
    pub async fn test_all(
        &self,
        limits: &[RateLimit],
        key: &Key,
        cost: u64,
    ) -> Result<Decision, Error> {
        check_cost(cost)?;
        let limits = distinct(limits)?;
        let now = self.inner.clock.now();
        let mut verdicts = Vec::with_capacity(limits.len());
        for limit in limits.iter() {
            let stored = KeyRef::parts(&self.inner.prefix, key.escaped(), limit);
            verdicts.push(self.apply(stored, limit, Op::Test { cost }, now).await?);
        }
        combine(&limits, &verdicts, cost, now)
    }

    /// `key` under `limit`, prepared for repeated hits: the stored key is built once,
    /// here, instead of on every [`hit`](Self::hit). For callers that keep a client's
    /// key and limit around (a connection, a session, a fixed set of routes).
    ///
    /// ```
    /// use limiter_core::{Key, RateLimit, RateLimiter};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::sync::Arc;
    ///
    /// # futures::executor::block_on(async {
    /// let limiter = RateLimiter::new(Arc::new(TinyStorage::default()));
    /// let limit: RateLimit = "2 per minute".parse()?;
    /// let prepared = limiter.prepare(&limit, &Key::from("user-42"));
    /// assert!(limiter.hit_prepared(&prepared, 1).await?.is_allowed());
    /// // The same counter as a plain hit on the same key and limit.
    /// assert!(limiter.hit(&limit, &Key::from("user-42"), 1).await?.is_allowed());
    /// assert!(!limiter.hit_prepared(&prepared, 1).await?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn prepare(&self, limit: &RateLimit, key: &Key) -> PreparedKey {
        PreparedKey {
            stored: self.storage_key(limit, key),
            prefix_len: self.inner.prefix.len(),
            limit: *limit,
        }
    }

    /// [`hit`](Self::hit) on a key from [`prepare`](Self::prepare). A key prepared by
    /// a limiter with another namespace or strategy is rebuilt for this one first.
    ///
    /// # Errors
    ///
    /// As for [`hit`](Self::hit).
    pub async fn hit_prepared(&self, key: &PreparedKey, cost: u64) -> Result<Decision, Error> {
        self.decide_prepared(key, Op::Hit { cost }).await
    }

    /// [`test`](Self::test) on a key from [`prepare`](Self::prepare).
    ///
    /// # Errors
    ///
    /// As for [`hit`](Self::hit).
    pub async fn test_prepared(&self, key: &PreparedKey, cost: u64) -> Result<Decision, Error> {
        self.decide_prepared(key, Op::Test { cost }).await
    }

    async fn decide_prepared(&self, key: &PreparedKey, op: Op) -> Result<Decision, Error> {
        check_cost(op.cost())?;
        // The identifiers of the prepared key, under this limiter's prefix (the same
        // key when it prepared it; else the same identifiers under its own).
        let identifiers = key.stored.group().get(key.prefix_len..).unwrap_or_default();
        let stored = KeyRef::parts(&self.inner.prefix, identifiers, &key.limit);
        decide!(self, stored, &key.limit, op)
    }

    /// A multi-limit hit over single-key operations, all or nothing as
    /// [`apply_batch`], each operation run as a hit's ([`apply`](Self::apply): through
    /// the coalescing and the rejection cache).
    async fn batch_per_key(&self, batch: Batch<'_>) -> Result<Vec<Verdict>, StorageError> {
        let now = batch.now();
        all_or_nothing(batch, |item, op| self.apply(item.key, item.limit, op, now)).await
    }

    /// Applies `op` to one stored key: natively when the storage can, else through the
    /// compare-and-set core.
    async fn apply(
        &self,
        key: KeyRef<'_>,
        limit: &RateLimit,
        op: Op,
        now: Timestamp,
    ) -> Result<Verdict, StorageError> {
        let inner = &*self.inner;
        let key_op = KeyOp {
            key,
            limit,
            op,
            now,
        };
        run_limiter_op!(inner, key_op)
    }
}

/// A stored key built once for repeated hits: see [`RateLimiter::prepare`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreparedKey {
    stored: StorageKey,
    /// The length of the preparing limiter's `namespace/strategy` prefix.
    prefix_len: usize,
    limit: RateLimit,
}

impl PreparedKey {
    /// The limit it counts against.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// The stored key, as the preparing limiter names it.
    pub fn storage_key(&self) -> &StorageKey {
        &self.stored
    }
}

fn check_cost(cost: u64) -> Result<(), Error> {
    if cost == 0 {
        Err(Error::ZeroCost)
    } else {
        Ok(())
    }
}

/// `limits` without repeats, in first-seen order: borrowed when there are none.
fn distinct(limits: &[RateLimit]) -> Result<std::borrow::Cow<'_, [RateLimit]>, Error> {
    if limits.is_empty() {
        return Err(Error::NoLimits);
    }
    let repeats = limits
        .iter()
        .enumerate()
        .any(|(i, limit)| limits[..i].contains(limit));
    if !repeats {
        return Ok(std::borrow::Cow::Borrowed(limits));
    }
    let mut out: Vec<RateLimit> = Vec::with_capacity(limits.len());
    for limit in limits {
        if !out.contains(limit) {
            out.push(*limit);
        }
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// One decision for several limits: the rejecting limit that waits longest (never
/// passing counts as longest), or, when all pass, the one with the fewest units left;
/// on ties, the first listed.
fn combine(
    limits: &[RateLimit],
    verdicts: &[Verdict],
    cost: u64,
    now: Timestamp,
) -> Result<Decision, Error> {
    let pairs = limits.iter().zip(verdicts);
    let chosen = if verdicts.iter().any(|v| !v.allowed) {
        // `max_by_key` keeps the last of equals: reversed, that is the first listed.
        pairs
            .filter(|(_, v)| !v.allowed)
            .rev()
            .max_by_key(|(_, v)| v.retry_at.map_or(u64::MAX, Timestamp::as_millis))
    } else {
        pairs.min_by_key(|(_, v)| v.remaining)
    };
    chosen
        .map(|(limit, verdict)| Decision::new(*limit, cost, *verdict, now))
        .ok_or(Error::NoLimits)
}
