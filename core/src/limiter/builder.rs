//! [`RateLimiterBuilder`]: the strategy, clock, namespace and storage settings of a
//! [`RateLimiter`].

use std::sync::Arc;

use super::*;

/// A setting whose default depends on the storage: on for network storages (keys
/// expiring in [real time](Expiry::RealTime)), off for in-process ones.
#[derive(Debug, Clone, Copy)]
enum Auto<T> {
    ByStorage,
    Set(Option<T>),
}

impl<T> Auto<T> {
    fn resolve(self, network: bool, default: T) -> Option<T> {
        match self {
            Auto::ByStorage => network.then_some(default),
            Auto::Set(value) => value,
        }
    }
}

/// Builds a [`RateLimiter`].
#[derive(Debug)]
#[must_use]
pub struct RateLimiterBuilder {
    storage: Arc<dyn Storage>,
    strategy: Arc<dyn Strategy>,
    clock: Arc<dyn Clock>,
    namespace: String,
    max_attempts: u32,
    breaker: Auto<BreakerConfig>,
    rejection_cache: Auto<usize>,
    coalesce: Auto<usize>,
    timer: Option<Timer>,
}

impl RateLimiterBuilder {
    pub(super) fn new(storage: Arc<dyn Storage>) -> RateLimiterBuilder {
        RateLimiterBuilder {
            storage,
            strategy: Arc::new(FixedWindow),
            clock: Arc::new(SystemClock),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            breaker: Auto::ByStorage,
            rejection_cache: Auto::ByStorage,
            coalesce: Auto::ByStorage,
            timer: None,
        }
    }

    /// The timer [`RateLimiter::until_ready`] waits on. Default: the storage's
    /// [`Sleep`](crate::storage::Sleep) ability (the network storages have one); the
    /// in-memory storage has none, so set one to wait on it (the facade's
    /// `TokioTimer`, or any [`Sleep`](crate::storage::Sleep) of your runtime).
    pub fn timer(mut self, timer: impl Sleep + 'static) -> Self {
        self.timer = Some(Timer(Arc::new(timer)));
        self
    }

    /// The strategy. Default: [`FixedWindow`].
    pub fn strategy(mut self, strategy: impl Strategy) -> Self {
        self.strategy = Arc::new(strategy);
        self
    }

    /// The strategy, shared. Default: [`FixedWindow`].
    pub fn strategy_arc(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// The clock. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The first part of every stored key, so that several applications can share one
    /// storage. Default: [`DEFAULT_NAMESPACE`] (`"LIMITER"`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How many compare-and-set attempts a decision makes on the generic path before it
    /// fails with [`StorageErrorKind::Contention`]. Default: [`DEFAULT_MAX_ATTEMPTS`];
    /// values below 1 count as 1. After each lost race the decision backs off for a
    /// random number of scheduler turns that doubles with each loss (up to 256), so a
    /// burst on one hot key spreads out instead of failing.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Wraps the storage in a [`CircuitBreaker`] with `config`, or not (`None`).
    ///
    /// Default: `Some(BreakerConfig::default())` (5 consecutive transport failures
    /// open it; a probe every 500 ms) for a network storage, one whose keys expire in
    /// [real time](Expiry::RealTime): while such a storage is down, every call would
    /// otherwise wait for its full command timeout, and a failure policy (fail open,
    /// fail closed, a fallback) could answer only that late. `None` for in-process
    /// storages, which do not fail that way. When you wrap the storage in a
    /// [`CircuitBreaker`] yourself (to share one between limiters), pass `None` here.
    ///
    /// ```
    /// use limiter_core::storage::BreakerConfig;
    /// use limiter_core::RateLimiter;
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let config = BreakerConfig::default().failures(3).probe_interval(Duration::from_millis(200));
    /// let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
    ///     .circuit_breaker(Some(config))
    ///     .build();
    /// # let _ = limiter;
    /// ```
    pub fn circuit_breaker(mut self, config: Option<BreakerConfig>) -> Self {
        self.breaker = Auto::Set(config);
        self
    }

    /// Whether to keep a local cache of rejections, and how many keys it holds at
    /// most (`Some(entries)`), or not (`None`).
    ///
    /// After the storage rejected a hit or test of cost 1 on a key with a retry time
    /// `T`, later hits and tests of cost 1 on that key are rejected by this limiter,
    /// without a call to the storage, until the limiter's clock reaches `T`. Each
    /// cached decision is the storage's: `remaining` 0, the same `reset_at` and retry
    /// instant, so its `retry_after` shrinks as time passes. Larger costs always ask
    /// the storage (before their retry time, most strategies free units one by one, so
    /// `remaining` moves).
    ///
    /// It never admits a hit. It may reject a hit that the storage would admit only
    /// when units were given back elsewhere ([`clear`](RateLimiter::clear) or
    /// [`refund`](RateLimiter::refund) by another process, or on the storage
    /// directly): until the cached retry time at most. Clears, refunds and admitted
    /// hits through this limiter forget the key's entry. Hits by other processes can
    /// make the storage's retry time later than the cached one, so that a cached
    /// decision's `retry_after` is then shorter than the storage's would be (the hit
    /// after it goes to the storage and is rejected again, with the new time); without
    /// them, its decisions equal the storage's.
    /// A multi-limit [`hit_all`](RateLimiter::hit_all) always asks the
    /// storage (its decision names the limit that waits longest, which only the
    /// storage knows), but fills the cache with the limits it finds rejecting.
    ///
    /// Default: `Some(DEFAULT_REJECTION_CACHE_SIZE)` (4,096 keys) for network storages,
    /// whose round trip this saves; `None` for in-process storages.
    ///
    /// ```
    /// use limiter_core::{Key, ManualClock, RateLimit, RateLimiter};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = ManualClock::new(0);
    /// let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
    ///     .clock(clock.clone())
    ///     .rejection_cache(Some(1024))
    ///     .build();
    /// let (limit, key): (RateLimit, _) = ("1 per second".parse()?, Key::from("hot"));
    /// assert!(limiter.hit(&limit, &key, 1).await?.is_allowed());
    /// assert!(!limiter.hit(&limit, &key, 1).await?.is_allowed()); // asks the storage
    /// clock.set(400);
    /// let cached = limiter.hit(&limit, &key, 1).await?; // answered here
    /// assert_eq!(cached.retry_after(), Some(Duration::from_millis(600)));
    /// clock.set(1_000);
    /// assert!(limiter.hit(&limit, &key, 1).await?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn rejection_cache(mut self, entries: Option<usize>) -> Self {
        self.rejection_cache = Auto::Set(entries.filter(|n| *n > 0));
        self
    }

    /// Whether to coalesce concurrent calls on one stored key, at most
    /// `Some(max_batch)` calls per unit, or not (`None`).
    ///
    /// While a decision on a key is in flight, later calls on the same key in this
    /// process queue up; when it completes, the queued calls go to the storage as one
    /// unit: on the generic path, one `get` and one `compare_and_set` that apply each
    /// call's operation in arrival order, each with its own verdict; on a storage that
    /// runs the strategy natively, one
    /// [`apply_many`](crate::storage::NativeStrategies::apply_many) (on Redis one
    /// script call, or, for a wide unit on a one-value state, one read and one
    /// compare-and-set). Multi-limit [`hit_all`](RateLimiter::hit_all) calls of one client
    /// (the same limits and key) queue likewise on a storage with its own batches,
    /// and go as one
    /// [`batch_many`](crate::storage::NativeStrategies::batch_many), each all or
    /// nothing. The outcome is that of the calls run one at a time in some order. No
    /// call waits for a timer: a lone call goes at once.
    ///
    /// Default: `Some(DEFAULT_MAX_BATCH)` (64) for network storages, where a hot key
    /// would otherwise cost every caller a round trip per lost compare-and-set race;
    /// `None` for in-process storages.
    ///
    /// ```
    /// use limiter_core::{Key, RateLimit, RateLimiter};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::sync::Arc;
    ///
    /// # futures::executor::block_on(async {
    /// let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
    ///     .coalesce(Some(32))
    ///     .build();
    /// let (limit, key): (RateLimit, _) = ("5 per minute".parse()?, Key::from("hot"));
    /// let calls = (0..8).map(|_| limiter.hit(&limit, &key, 1));
    /// let decisions = futures::future::join_all(calls).await;
    /// let admitted = decisions.iter().filter(|d| d.as_ref().is_ok_and(|d| d.is_allowed()));
    /// assert_eq!(admitted.count(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn coalesce(mut self, max_batch: Option<usize>) -> Self {
        self.coalesce = Auto::Set(max_batch.filter(|n| *n > 0));
        self
    }

    /// Builds the limiter.
    pub fn build(self) -> RateLimiter {
        let mut prefix = key::escape(&self.namespace);
        prefix.push('/');
        key::escape_into(&mut prefix, self.strategy.name());
        let network = matches!(
            self.storage.abilities().get_expiry(),
            Expiry::RealTime { .. }
        );
        let storage = match self.breaker.resolve(network, BreakerConfig::default()) {
            Some(config) => Arc::new(CircuitBreaker::new(self.storage, config)) as Arc<dyn Storage>,
            _ => self.storage,
        };
        let rejections = self
            .rejection_cache
            .resolve(network, DEFAULT_REJECTION_CACHE_SIZE)
            .map(Rejections::new);
        let coalescer = self
            .coalesce
            .resolve(network, DEFAULT_MAX_BATCH)
            .map(Coalescer::new);
        let batch_coalescer = coalescer.as_ref().map(|c| Coalescer::new(c.max_batch()));
        RateLimiter {
            inner: Arc::new(Inner {
                storage,
                strategy: self.strategy,
                clock: self.clock,
                namespace: self.namespace,
                prefix,
                max_attempts: self.max_attempts,
                rejections,
                coalescer,
                batch_coalescer,
                timer: self.timer,
            }),
        }
    }
}
