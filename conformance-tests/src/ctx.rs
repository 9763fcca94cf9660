//! [`Ctx`]: everything one case runs with.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{self, KeyOp, Storage, StorageKey, Versioned};
use limiter_core::strategy::{BuiltIn, Op, Verdict};
use limiter_core::{
    Clock, Decision, Error, Key, ManualClock, RateLimit, RateLimiter, RateLimiterBuilder,
    Timestamp, WindowStats, DEFAULT_MAX_ATTEMPTS,
};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{Capabilities, CasOnly};

/// The time every case's [`ManualClock`] starts at: 2023-11-14T22:13:20.123Z, in
/// milliseconds since the Unix epoch. Deliberately not aligned to a second or a minute,
/// so that a storage aligning windows to clock boundaries is caught.
pub const T0_MS: u64 = 1_700_000_000_123;

/// A future that makes a storage, as the [`suite!`](crate::suite) macro's factory
/// returns it.
pub type StorageFuture = Pin<Box<dyn Future<Output = Arc<dyn Storage>>>>;

/// Makes a fresh storage to test. Each call must return a storage that is ready to
/// use; it may share data with earlier ones (one server), as every case works in its
/// own random namespace.
pub type Factory = fn() -> StorageFuture;

/// How the suite is set up: the factory and the capabilities. The
/// [`suite!`](crate::suite) macro builds one from its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Makes storages.
    pub factory: Factory,
    /// What they support.
    pub capabilities: Capabilities,
}

/// Which of a storage's two paths a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The storage as given: native operations where it has them.
    Native,
    /// The storage wrapped in [`CasOnly`]: the generic compare-and-set path only.
    CasOnly,
}

impl Mode {
    /// `native` or `cas_only`, as in the test names.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::CasOnly => "cas_only",
        }
    }

    /// `storage` as this mode tests it: as is, or wrapped in [`CasOnly`].
    pub fn wrap(self, storage: Arc<dyn Storage>) -> Arc<dyn Storage> {
        match self {
            Mode::Native => storage,
            Mode::CasOnly => Arc::new(CasOnly::new(storage)),
        }
    }
}

/// Serialises the cases that call `clear_all` against all the others in this process,
/// for storages whose instances share one server.
static GATE: RwLock<()> = RwLock::const_new(());

#[derive(Debug)]
enum Gate {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// The context of one case: the storage under test (already wrapped for the
/// [`Mode`]), the strategy, a fresh random namespace, and a [`ManualClock`] at
/// [`T0_MS`].
///
/// Its helpers fail the case with a message naming the mode, strategy, case, the clock
/// offset from [`T0_MS`] and the step, so that a failure reads like
/// `cas_only/gcra/retry_and_reset_are_exact @ t0+1300ms: …`.
pub struct Ctx {
    case: &'static str,
    mode: Mode,
    strategy: Option<BuiltIn>,
    storage: Arc<dyn Storage>,
    setup: Setup,
    namespace: String,
    clock: ManualClock,
    _gate: Gate,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("case", &self.label())
            .field("storage", &self.storage)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Sets up case `case` on a fresh storage from `setup`, in `mode`, for `strategy`
    /// (`None` for the storage-level cases). `exclusive` cases run alone in this
    /// process.
    ///
    /// Fails the case if the storage's [`check`](Storage::check) fails.
    pub async fn start(
        setup: Setup,
        mode: Mode,
        strategy: Option<BuiltIn>,
        case: &'static str,
        exclusive: bool,
    ) -> Ctx {
        let gate = if exclusive {
            Gate::Exclusive(GATE.write().await)
        } else {
            Gate::Shared(GATE.read().await)
        };
        let storage = mode.wrap((setup.factory)().await);
        let ctx = Ctx {
            case,
            mode,
            strategy,
            storage,
            setup,
            namespace: format!("conformance-{:016x}", crate::rng::unique_u64()),
            clock: ManualClock::new(T0_MS),
            _gate: gate,
        };
        let checked = ctx.storage.check().await;
        ctx.ok(checked, "storage.check() before the case");
        ctx
    }

    /// The case's name.
    pub fn case(&self) -> &'static str {
        self.case
    }

    /// Native or compare-and-set only.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The strategy under test. Fails the case for storage-level cases, which have
    /// none.
    pub fn strategy(&self) -> BuiltIn {
        match self.strategy {
            Some(strategy) => strategy,
            None => self.fail("this storage-level case has no strategy"),
        }
    }

    /// The storage under test, wrapped in [`CasOnly`] in [`Mode::CasOnly`].
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Another storage from the factory, as given (not wrapped). It may share data
    /// with [`storage`](Self::storage); use another namespace.
    pub async fn new_storage(&self) -> Arc<dyn Storage> {
        let storage = (self.setup.factory)().await;
        let checked = storage.check().await;
        self.ok(checked, "check() of a second storage from the factory");
        storage
    }

    /// What the storage supports.
    pub fn capabilities(&self) -> Capabilities {
        self.setup.capabilities
    }

    /// This case's random namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A raw storage key inside this case's namespace, for storage-level cases: group
    /// `namespace/raw`, limit part `name`.
    pub fn raw_key(&self, name: &str) -> StorageKey {
        StorageKey::new(&format!("{}/raw", self.namespace), name)
    }

    /// The case's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The clock's time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// `T0_MS + offset_ms`.
    pub fn t0_plus(&self, offset_ms: u64) -> Timestamp {
        Timestamp::from_millis(T0_MS + offset_ms)
    }

    /// Milliseconds since [`T0_MS`] on the case's clock.
    pub fn elapsed_ms(&self) -> u64 {
        self.now().as_millis().saturating_sub(T0_MS)
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// Sets the clock to `T0_MS + offset_ms`, forward or back (a clock behind another
    /// process's is a case too).
    pub fn set_offset_ms(&self, offset_ms: u64) {
        self.clock.set(T0_MS + offset_ms);
    }

    /// A builder over the storage under test with this case's strategy, clock and
    /// namespace.
    pub fn builder(&self) -> RateLimiterBuilder {
        self.builder_on(Arc::clone(&self.storage), self.strategy(), "")
    }

    /// A builder over `storage` with `strategy`, this case's clock, and this case's
    /// namespace followed by `namespace_suffix`. It neither coalesces concurrent calls
    /// nor caches rejections (both are on by default for network storages), so that
    /// every call of a case reaches the storage and concurrent calls race on its
    /// compare-and-set; the cases that check those two turn them on.
    pub fn builder_on(
        &self,
        storage: Arc<dyn Storage>,
        strategy: BuiltIn,
        namespace_suffix: &str,
    ) -> RateLimiterBuilder {
        RateLimiter::builder(storage)
            .strategy_arc(arc_strategy(strategy))
            .clock(self.clock.clone())
            .namespace(format!("{}{namespace_suffix}", self.namespace))
            .coalesce(None)
            .rejection_cache(None)
    }

    /// The limiter under test: this case's storage, strategy, clock and namespace.
    pub fn limiter(&self) -> Checked<'_> {
        self.checked(self.builder().build(), "limiter")
    }

    /// Wraps `limiter` so that its errors fail the case; `name` appears in messages.
    pub fn checked(&self, limiter: RateLimiter, name: &str) -> Checked<'_> {
        Checked {
            ctx: self,
            inner: limiter,
            name: name.to_owned(),
        }
    }

    /// Parses a rate limit.
    pub fn limit(&self, text: &str) -> RateLimit {
        match text.parse() {
            Ok(limit) => limit,
            Err(e) => self.fail(format_args!("bad rate limit {text:?} in the case: {e}")),
        }
    }

    /// `mode/strategy/case @ t0+Nms`.
    pub fn label(&self) -> String {
        let strategy = self.strategy.map_or("storage", |s| s.name());
        format!(
            "{}/{}/{} @ t0+{}ms",
            self.mode.name(),
            strategy,
            self.case,
            self.elapsed_ms()
        )
    }

    /// Fails the case with `message`.
    #[track_caller]
    pub fn fail(&self, message: impl fmt::Display) -> ! {
        panic!(
            "\n[limiter-conformance] {}\n{message}\n(storage: {:?})\n",
            self.label(),
            self.storage
        )
    }

    /// The value of `result`, or fails the case naming `step` and the error.
    #[track_caller]
    pub fn ok<T, E: fmt::Display + fmt::Debug>(
        &self,
        result: Result<T, E>,
        step: impl fmt::Display,
    ) -> T {
        match result {
            Ok(value) => value,
            Err(e) => self.fail(format_args!("step `{step}` failed: {e}\n  ({e:?})")),
        }
    }

    /// Prints a note to the case's output.
    pub fn note(&self, message: impl fmt::Display) {
        eprintln!("[limiter-conformance] {}: {message}", self.label());
    }

    /// Reports that the case does not run because capability `capability` is off.
    pub fn not_run(&self, capability: &str) {
        eprintln!(
            "[limiter-conformance] NOT RUN: {} needs capability `{capability}`, which this \
             storage's Capabilities turn off",
            self.label()
        );
    }

    /// Applies `op` to the state of `limit` for `key` at the case's time, as the limiter
    /// does: through the storage's native operation if it runs one, else through the
    /// generic compare-and-set path. The way to reach [`Op::Refund`], which the limiter
    /// only uses to undo part of a multi-limit hit.
    pub async fn apply_op(&self, limit: &RateLimit, key: &Key, op: Op) -> Verdict {
        let stored = self.builder().build().storage_key(limit, key);
        let key_op = KeyOp {
            key: (&stored).into(),
            limit,
            op,
            now: self.now(),
        };
        let strategy = self.strategy().strategy();
        let result = storage::apply(&*self.storage, strategy, DEFAULT_MAX_ATTEMPTS, key_op).await;
        self.ok(result, format_args!("{op:?} on {stored:?}"))
    }

    /// Reads `key` from the storage under test at the case's time, failing the case on
    /// error.
    pub async fn get(&self, key: &StorageKey) -> Option<Versioned> {
        let result = self.storage.get(key, self.now()).await;
        self.ok(result, format_args!("get({key:?})"))
    }
}

/// The built-in's strategy as a shared trait object.
pub(crate) fn arc_strategy(strategy: BuiltIn) -> Arc<dyn limiter_core::Strategy> {
    Arc::new(Builtin(strategy.strategy()))
}

/// A built-in strategy behind a `&'static`, so that it can be shared as an `Arc`.
#[derive(Debug)]
struct Builtin(&'static dyn limiter_core::Strategy);

impl limiter_core::Strategy for Builtin {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn builtin(&self) -> Option<BuiltIn> {
        self.0.builtin()
    }

    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: limiter_core::strategy::Op,
        now: Timestamp,
    ) -> Result<limiter_core::strategy::Transition, limiter_core::strategy::StateError> {
        self.0.apply(limit, state, op, now)
    }
}

/// A [`RateLimiter`] whose calls fail the case on error, with a message naming the
/// call. Get one from [`Ctx::limiter`] or [`Ctx::checked`].
pub struct Checked<'a> {
    ctx: &'a Ctx,
    inner: RateLimiter,
    name: String,
}

impl fmt::Debug for Checked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("name", &self.name)
            .field("inner", &self.inner)
            .finish()
    }
}

impl Checked<'_> {
    /// The wrapped limiter, to call it directly (for expected errors).
    pub fn inner(&self) -> &RateLimiter {
        &self.inner
    }

    /// The stored key of `limit` for `key`.
    pub fn storage_key(&self, limit: &RateLimit, key: &Key) -> StorageKey {
        self.inner.storage_key(limit, key)
    }

    fn ok<T>(&self, result: Result<T, Error>, call: fmt::Arguments<'_>) -> T {
        self.ctx.ok(result, format_args!("{}.{call}", self.name))
    }

    /// [`RateLimiter::hit`].
    pub async fn hit(&self, limit: &RateLimit, key: &Key, cost: u64) -> Decision {
        let result = self.inner.hit(limit, key, cost).await;
        self.ok(result, format_args!("hit({limit}, {key:?}, {cost})"))
    }

    /// [`RateLimiter::test`].
    pub async fn test(&self, limit: &RateLimit, key: &Key, cost: u64) -> Decision {
        let result = self.inner.test(limit, key, cost).await;
        self.ok(result, format_args!("test({limit}, {key:?}, {cost})"))
    }

    /// [`RateLimiter::stats`].
    pub async fn stats(&self, limit: &RateLimit, key: &Key) -> WindowStats {
        let result = self.inner.stats(limit, key).await;
        self.ok(result, format_args!("stats({limit}, {key:?})"))
    }

    /// [`RateLimiter::clear`].
    pub async fn clear(&self, limit: &RateLimit, key: &Key) {
        let result = self.inner.clear(limit, key).await;
        self.ok(result, format_args!("clear({limit}, {key:?})"));
    }

    /// [`RateLimiter::hit_all`].
    pub async fn hit_all(&self, limits: &[RateLimit], key: &Key, cost: u64) -> Decision {
        let result = self.inner.hit_all(limits, key, cost).await;
        self.ok(result, format_args!("hit_all({limits:?}, {key:?}, {cost})"))
    }

    /// [`RateLimiter::test_all`].
    pub async fn test_all(&self, limits: &[RateLimit], key: &Key, cost: u64) -> Decision {
        let result = self.inner.test_all(limits, key, cost).await;
        self.ok(
            result,
            format_args!("test_all({limits:?}, {key:?}, {cost})"),
        )
    }

    /// The stored value of `limit` for `key`, read through the limiter's storage.
    pub async fn stored(&self, limit: &RateLimit, key: &Key) -> Option<Versioned> {
        let stored = self.storage_key(limit, key);
        let now = self.inner.clock().now();
        let result = self.inner.storage().get(&stored, now).await;
        self.ctx
            .ok(result, format_args!("{}: get({stored:?})", self.name))
    }
}
