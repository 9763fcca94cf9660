//! The policy engine: which limits apply to a request, one decision for all of them,
//! and what to answer.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Method, Response, StatusCode};
use limiter_core::{Decision, Error, Key, RateLimit, RateLimiter, Timestamp};
use pin_project_lite::pin_project;
use smallvec::SmallVec;

use crate::builder::{compile_route, BuildError, HttpLimiterBuilder, OnBreach};
use crate::failure::{Failure, ProbeGuard};
use crate::headers::{self, HeaderStyle, RetryAfter};
use crate::key::KeySource;
use crate::metrics::Metrics;
use crate::policy::Route;
use crate::policy::{Cost, DynamicLimitsFn, Exempt, RequestPredicate, ResponsePredicate};
use crate::request::{RequestInfo, ResponseInfo};
use crate::response::{self, Rejection};

/// Flask-Limiter's policies over a [`RateLimiter`]: default, application, per-route
/// and shared limits, keys, costs, exemptions, conditional deduction, headers, 429
/// responses and a storage failure policy. Framework-neutral: the tower adapter
/// ([`HttpLimiter::layer`], feature `tower`) is a thin shell over
/// [`plan`](Self::plan) and [`decide`](Self::decide), and any other framework can
/// call [`check`](Self::check).
///
/// Cheap to clone: clones share everything, including the on/off switch.
///
/// # Examples
///
/// ```
/// use limiter_http::{HttpLimiter, Limits, Route, RequestInfo, Checked};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use http::HeaderMap;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("2 per minute; 1 per second")
///     .route("/slow", Route::limits(Limits::new("1 per day")))
///     .route("/ping", Route::exempt())
///     .build()?;
///
/// let headers = HeaderMap::new();
/// let request = RequestInfo::new("GET", "/slow", &headers).with_peer("203.0.113.9:4711".parse()?);
/// assert!(matches!(limiter.check(&request).await, Checked::Allowed(_)));
/// match limiter.check(&request).await {
///     Checked::Rejected(response) => assert!(response.body().contains("1 per 1 day")),
///     Checked::Allowed(_) => unreachable!("1 per day"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpLimiter {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) limiter: RateLimiter,
    pub(crate) defaults: Vec<Set>,
    pub(crate) application: Vec<Set>,
    pub(crate) meta: Vec<Set>,
    pub(crate) routes: HashMap<String, CompiledRoute>,
    pub(crate) key: KeySource,
    pub(crate) key_prefix: Option<String>,
    pub(crate) filters: Vec<Arc<RequestPredicate>>,
    pub(crate) enabled: AtomicBool,
    pub(crate) header_style: HeaderStyle,
    pub(crate) retry_after: RetryAfter,
    pub(crate) on_breach: Option<Arc<OnBreach>>,
    pub(crate) rejection: Rejection,
    pub(crate) failure: Failure,
    pub(crate) deadline: Option<Duration>,
    pub(crate) metrics: Arc<dyn Metrics>,
    pub(crate) inflight: Mutex<HashMap<Key, u64>>,
    pub(crate) charge_unmatched: bool,
    pub(crate) charge_options: bool,
    pub(crate) charge_method_not_allowed: bool,
}

impl fmt::Debug for HttpLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("HttpLimiter")
            .field("limiter", &inner.limiter)
            .field("defaults", &inner.defaults.len())
            .field("application", &inner.application.len())
            .field("routes", &inner.routes.keys().collect::<Vec<_>>())
            .field("enabled", &self.is_enabled())
            .field("header_style", &inner.header_style)
            .field("failure", &inner.failure)
            .finish_non_exhaustive()
    }
}

/// One compiled limit set.
pub(crate) struct Set {
    pub(crate) limits: SetLimits,
    pub(crate) key: KeySource,
    pub(crate) scope: Scope,
    pub(crate) per_method: bool,
    pub(crate) methods: Option<Vec<Method>>,
    pub(crate) cost: Cost,
    pub(crate) exempt_when: Option<Arc<RequestPredicate>>,
    pub(crate) deduct_when: Option<Arc<ResponsePredicate>>,
}

pub(crate) enum SetLimits {
    Static(Arc<[RateLimit]>),
    Dynamic(Arc<DynamicLimitsFn>),
}

/// The scope identifier of application limits. Route scopes are route patterns, which
/// start with `/` (others are stored as `~route:` and the route); shared scopes are
/// `~shared:` and their name: the three never collide.
pub(crate) const APPLICATION_SCOPE: &str = "~app";

/// The scope identifier of meta limits.
pub(crate) const META_SCOPE: &str = "~meta";

/// The route scope of requests that match no route, when they are charged: one budget
/// per client, whatever the path.
pub(crate) const UNMATCHED_SCOPE: &str = "~unmatched";

/// Whose budget a set counts against, besides the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// One budget per route.
    Route,
    /// One budget for the whole application.
    Application,
    /// One budget per name, across routes; holds the whole identifier,
    /// `~shared:` and the name.
    Shared(String),
    /// How often the client was rejected.
    Meta,
}

/// A route's rule with its limits parsed, made by [`HttpLimiter::route_rule`].
#[derive(Clone)]
pub struct RouteRule(pub(crate) Arc<CompiledRoute>);

impl fmt::Debug for RouteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteRule")
            .field("sets", &self.0.sets.len())
            .field("keep_defaults", &self.0.keep_defaults)
            .field("exempt", &self.0.exempt)
            .finish()
    }
}

pub(crate) struct CompiledRoute {
    pub(crate) sets: Vec<Set>,
    pub(crate) keep_defaults: bool,
    pub(crate) exempt: Exempt,
}

/// The limits of one request that share a key and a cost: decided by one
/// [`RateLimiter::hit_all`].
#[derive(Clone)]
struct Group {
    key: Key,
    limits: Arc<[RateLimit]>,
    cost: u64,
    deduct_when: Option<Arc<ResponsePredicate>>,
    /// When the hit that counted this group was decided, once an admitted request's
    /// unconditional groups are all counted: what a refund gives back.
    hit_at: Timestamp,
}

type Groups = SmallVec<[Group; 2]>;

/// What applies to one request, computed from it synchronously by
/// [`HttpLimiter::plan`]; owns everything, so deciding it borrows nothing.
#[must_use]
pub struct Plan {
    groups: Groups,
    /// Meta limits, boxed: most limiters have none, and the plan rides in every
    /// request's future.
    meta: Option<Box<Groups>>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.groups
                    .iter()
                    .chain(self.meta.iter().flat_map(|m| m.iter()))
                    .map(|g| (&g.key, &g.limits, g.cost)),
            )
            .finish()
    }
}

impl Plan {
    /// Whether no limit applies (the request is exempt, filtered, or the limiter is
    /// off): nothing to decide, no headers to send.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// The outcome of [`HttpLimiter::decide`].
#[derive(Debug)]
#[must_use]
pub enum Decided {
    /// Let the request through; see [`Admission`] for the headers and any deduction
    /// that waits for the response.
    Allowed(Admission),
    /// Rejected: answer with [`HttpLimiter::limited_response`].
    Limited(Limited),
    /// The storage failed and the policy is to fail closed: answer with
    /// [`HttpLimiter::unavailable_response`].
    Unavailable,
}

/// A rejected request: the decision of the limit that rejected it.
#[derive(Debug)]
pub struct Limited {
    decision: Decision,
    applied: Groups,
}

impl Limited {
    /// The decision of the limit that rejected the request.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("key", &self.key)
            .field("limits", &self.limits)
            .field("cost", &self.cost)
            .field("conditional", &self.deduct_when.is_some())
            .finish()
    }
}

/// The outcome of [`HttpLimiter::check`].
#[derive(Debug)]
#[must_use]
pub enum Checked {
    /// Let the request through; after the handler, call [`Admission::finish`] (or
    /// [`Admission::write_headers`] when [`Admission::needs_settling`] is false).
    Allowed(Admission),
    /// Answer with this response (429, or 503 when failing closed).
    Rejected(Response<String>),
}

/// A request let through: the decision for headers, and any deductions that wait for
/// the response ([`Limits::deduct_when`](crate::Limits::deduct_when)).
#[must_use]
pub struct Admission {
    engine: HttpLimiter,
    limiter: RateLimiter,
    decision: Option<Decision>,
    groups: Groups,
    _inflight: SmallVec<[InflightGuard; 1]>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("decision", &self.decision)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl Admission {
    fn empty(engine: &HttpLimiter) -> Admission {
        Admission {
            engine: engine.clone(),
            limiter: engine.inner.limiter.clone(),
            decision: None,
            groups: Groups::new(),
            _inflight: SmallVec::new(),
        }
    }

    /// The decision the headers come from; `None` when no limit applied or the
    /// storage failed open.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Whether some limits are deducted only after the response
    /// ([`settle`](Self::settle) or [`finish`](Self::finish) does it).
    pub fn is_conditional(&self) -> bool {
        self.groups.iter().any(|g| g.deduct_when.is_some())
    }

    /// Whether a response with `status` changes what is counted, so that it must go
    /// through [`settle`](Self::settle) (or [`finish`](Self::finish)) rather than
    /// straight to [`write_headers`](Self::write_headers): when some limits are
    /// [conditional](Self::is_conditional), or when the status is `405 Method Not
    /// Allowed` and such answers are not charged
    /// ([`charge_method_not_allowed`](crate::HttpLimiterBuilder::charge_method_not_allowed)).
    pub fn needs_settling(&self, status: StatusCode) -> bool {
        self.is_conditional() || self.refunds(status)
    }

    /// Whether a response with `status` gives back what this request counted.
    fn refunds(&self, status: StatusCode) -> bool {
        status == StatusCode::METHOD_NOT_ALLOWED
            && !self.engine.inner.charge_method_not_allowed
            && self.groups.iter().any(|g| g.deduct_when.is_none())
    }

    /// Writes the configured rate-limit headers into a response's `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let inner = &self.engine.inner;
        if inner.header_style == HeaderStyle::Off {
            return;
        }
        if let Some(decision) = &self.decision {
            let applied = applied_limits(&self.groups);
            headers::write(
                headers,
                inner.header_style,
                inner.retry_after,
                decision,
                &applied,
                false,
            );
        }
    }

    /// Decides, from the response, which conditional limits to deduct, or whether to
    /// give back what the request counted (a `405` that is not charged); the returned
    /// [`Settlement`] owns everything and does it when run.
    pub fn settle(self, response: &ResponseInfo<'_>) -> Settlement {
        if self.refunds(response.status()) {
            return Settlement {
                admission: self,
                deduct: SmallVec::new(),
                refund: true,
            };
        }
        let deduct = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.deduct_when.as_ref().is_some_and(|f| f(response)))
            .map(|(i, _)| i)
            .collect();
        Settlement {
            admission: self,
            deduct,
            refund: false,
        }
    }

    /// [`settle`](Self::settle) and [`Settlement::run`] in one call, then writes the
    /// headers into `headers`.
    pub async fn finish(self, response: &ResponseInfo<'_>, headers: &mut HeaderMap) {
        let admission = self.settle(response).run().await;
        admission.write_headers(headers);
    }
}

/// Conditional deductions decided from a response, not yet made.
#[must_use]
pub struct Settlement {
    admission: Admission,
    deduct: SmallVec<[usize; 2]>,
    /// Give back what the request counted, deduct nothing.
    refund: bool,
}

impl fmt::Debug for Settlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settlement")
            .field("deduct", &self.deduct)
            .field("refund", &self.refund)
            .finish_non_exhaustive()
    }
}

impl Settlement {
    /// Makes the deductions and returns the admission, whose headers now include
    /// them. Storage failures are logged and counted, never surfaced: the response
    /// already exists.
    pub async fn run(self) -> Admission {
        let Settlement {
            mut admission,
            deduct,
            refund,
        } = self;
        let engine = admission.engine.clone();
        if refund {
            admission.refund().await;
            return admission;
        }
        for i in deduct {
            let Some(group) = admission.groups.get(i) else {
                continue;
            };
            match Deadline::new(hit(&admission.limiter, group), engine.inner.deadline).await {
                Ok(decision) => {
                    if !decision.is_allowed() {
                        tracing::debug!(
                            limit = %decision.limit(),
                            "rate limiter: conditional deduction found the budget spent by concurrent requests"
                        );
                    }
                    admission.decision = Some(match admission.decision {
                        Some(d) if d.remaining() <= decision.remaining() => d,
                        _ => decision,
                    });
                }
                Err(err) => {
                    engine.inner.metrics.storage_error();
                    tracing::warn!(error = %err, "rate limiter: conditional deduction failed");
                }
            }
        }
        admission
    }
}

impl Admission {
    /// Gives back every group this request counted; the response then carries no
    /// rate-limit headers, as for a request that was never charged.
    async fn refund(&mut self) {
        let engine = self.engine.clone();
        // An admission's unconditional groups were all counted; its conditional ones
        // are not deducted when the request is given back.
        for group in self.groups.iter().filter(|g| g.deduct_when.is_none()) {
            let refund = self
                .limiter
                .refund(&group.limits, &group.key, group.cost, group.hit_at);
            if let Err(err) = Deadline::new(refund, engine.inner.deadline).await {
                engine.inner.metrics.storage_error();
                tracing::warn!(error = %err, "rate limiter: giving back a 405's hit failed");
            }
        }
        self.decision = None;
    }
}

/// Counts requests in flight per conditional key, so that the pre-check of `n`
/// concurrent requests asks for `n` times the cost.
struct InflightGuard {
    engine: HttpLimiter,
    key: Key,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut map = self
            .engine
            .inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// One group's hit: all its limits or none. A single limit takes the limiter's
/// single-limit path, which allocates less than a batch of one.
async fn hit(limiter: &RateLimiter, group: &Group) -> Result<Decision, Error> {
    match &*group.limits {
        [one] => limiter.hit(one, &group.key, group.cost).await,
        all => limiter.hit_all(all, &group.key, group.cost).await,
    }
}

/// Whether one group's hit of `cost` would pass now.
async fn test(limiter: &RateLimiter, group: &Group, cost: u64) -> Result<Decision, Error> {
    match &*group.limits {
        [one] => limiter.test(one, &group.key, cost).await,
        all => limiter.test_all(all, &group.key, cost).await,
    }
}

fn applied_limits(groups: &Groups) -> SmallVec<[RateLimit; 4]> {
    groups
        .iter()
        .flat_map(|g| g.limits.iter().copied())
        .collect()
}

/// The identifier of a method in per-method keys: the standard methods by name, every
/// extension method as one (a client can invent any number of them).
fn method_scope(method: &str) -> &str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if STANDARD.contains(&method) {
        method
    } else {
        "~other"
    }
}

/// Picks the decision that speaks for the request: a rejection, else the one with
/// the fewest units left (the last on ties).
fn pick(decisions: &[Decision]) -> Option<Decision> {
    decisions
        .iter()
        .find(|d| !d.is_allowed())
        .or_else(|| decisions.iter().rev().min_by_key(|d| d.remaining()))
        .copied()
}

/// What [`HttpLimiter::decide`] found, before it becomes a [`Decided`].
enum Outcome {
    Allowed(Option<Decision>, RateLimiter),
    Limited(Decision),
    Open,
    Closed,
}

/// Which limiter decides a request.
enum Active {
    Primary,
    Memory(RateLimiter),
    ProbeDue(ProbeGuard),
}

pin_project! {
    /// A future with an optional deadline. The timer is armed only if the future does
    /// not finish on its first poll, so an in-process storage pays nothing for it. It
    /// needs a tokio runtime with the time driver; without one no deadline applies.
    struct Deadline<F> {
        #[pin]
        future: F,
        limit: Option<Duration>,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F> Deadline<F> {
    fn new(future: F, limit: Option<Duration>) -> Self {
        Deadline {
            future,
            limit,
            sleep: None,
        }
    }
}

impl<F, T, E> Future for Deadline<F>
where
    F: Future<Output = Result<T, E>>,
    Failed: From<E>,
{
    type Output = Result<T, Failed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result.map_err(Failed::from));
        }
        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            // Outside a tokio runtime, or in one built without its timer (where tokio
            // panics on a new timer), there is no deadline.
            let timer = tokio::runtime::Handle::try_current()
                .ok()
                .and_then(|_| std::panic::catch_unwind(|| tokio::time::sleep(limit)).ok());
            match timer {
                Some(sleep) => *this.sleep = Some(Box::pin(sleep)),
                None => {
                    warn_no_timer();
                    *this.limit = None;
                    return Poll::Pending;
                }
            }
        }
        match this.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Failed::Deadline(limit))),
            _ => Poll::Pending,
        }
    }
}

fn warn_no_timer() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "rate limiter: no tokio timer here (enable_time on the runtime builder), \
             so storage calls have no deadline"
        );
    }
}

#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error(transparent)]
    Limiter(#[from] Error),
    #[error("storage missed the deadline of {0:?}")]
    Deadline(Duration),
}

impl HttpLimiter {
    /// A builder over `limiter` (its storage, strategy, clock and namespace).
    pub fn builder(limiter: RateLimiter) -> HttpLimiterBuilder {
        HttpLimiterBuilder::new(limiter)
    }

    pub(crate) fn from_inner(inner: Inner) -> HttpLimiter {
        HttpLimiter {
            inner: Arc::new(inner),
        }
    }

    /// The rate limiter underneath.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Compiles a route rule for [`plan_for`](Self::plan_for): for adapters that
    /// configure limits where a route is declared, such as
    /// [`layer_for`](Self::layer_for) (feature `tower`).
    ///
    /// ```
    /// use limiter_http::{HttpLimiter, Limits, RequestInfo, Route};
    /// # use limiter_core::RateLimiter;
    /// # use limiter_memory::MemoryStorage;
    /// # use std::sync::Arc;
    /// use http::HeaderMap;
    ///
    /// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
    ///     .default_limits("100 per minute")
    ///     .build()?;
    /// let slow = limiter.route_rule(Route::limits(Limits::new("1 per day")))?;
    /// let headers = HeaderMap::new();
    /// let request = RequestInfo::new("GET", "/slow", &headers)
    ///     .with_route("/slow")
    ///     .with_peer("192.0.2.1:1".parse()?);
    /// assert!(!limiter.plan_for(&request, &slow).is_empty());
    /// assert!(limiter.route_rule(Route::limits(Limits::new("1 per eon"))).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`HttpLimiterBuilder::build`] for the route's limits.
    pub fn route_rule(&self, route: Route) -> Result<RouteRule, BuildError> {
        let compiled = compile_route(route, &self.inner.key, "route rule")?;
        Ok(RouteRule(Arc::new(compiled)))
    }

    /// [`plan`](Self::plan) with `rule` as the request's route rule, in place of the
    /// route table. The request still names its route by its pattern
    /// ([`RequestInfo::with_route`]); without one it counts as unmatched
    /// ([`charge_unmatched`](HttpLimiterBuilder::charge_unmatched)).
    pub fn plan_for(&self, request: &RequestInfo<'_>, rule: &RouteRule) -> Plan {
        self.plan_route(request, Some(&rule.0))
    }

    /// Turns limiting on or off at run time (Flask-Limiter's `enabled`); off, every
    /// request passes without headers.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Whether limiting is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Checks a request before its handler runs: [`plan`](Self::plan), then
    /// [`decide`](Self::decide), then the rejection response if any.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have counted the request.
    pub async fn check(&self, request: &RequestInfo<'_>) -> Checked {
        let plan = self.plan(request);
        match self.decide(plan).await {
            Decided::Allowed(admission) => Checked::Allowed(admission),
            Decided::Limited(limited) => {
                Checked::Rejected(self.limited_response(&limited, request))
            }
            Decided::Unavailable => Checked::Rejected(self.unavailable_response()),
        }
    }

    /// Which limits apply to `request`, with their keys and costs. Runs every key
    /// function, dynamic limit, cost function and filter, and nothing else; the plan
    /// owns its data, so the request may be moved on before [`decide`](Self::decide).
    ///
    /// Nothing applies, unless configured otherwise, to `OPTIONS` requests
    /// ([`charge_options`](HttpLimiterBuilder::charge_options)) and to requests that
    /// match no route ([`charge_unmatched`](HttpLimiterBuilder::charge_unmatched)).
    pub fn plan(&self, request: &RequestInfo<'_>) -> Plan {
        self.plan_route(request, None)
    }

    /// [`plan`](Self::plan) with `route` instead of the rule the route table holds for
    /// the request's route (for layers configured per route).
    pub(crate) fn plan_route(
        &self,
        request: &RequestInfo<'_>,
        route: Option<&CompiledRoute>,
    ) -> Plan {
        let mut plan = Plan {
            groups: Groups::new(),
            meta: None,
        };
        let inner = &*self.inner;
        if !self.is_enabled() || inner.filters.iter().any(|f| f(request)) {
            return plan;
        }
        // Browsers send preflights that the application never sees as requests.
        if request.method() == Method::OPTIONS && !inner.charge_options {
            return plan;
        }
        // The route the request names: the pattern the adapter matched, else the path
        // when it is a pattern of the route table. Both are bounded by configuration;
        // the raw path of an unmatched request never names anything.
        let (name, table_rule) = match request.route() {
            Some(pattern) => (Some(pattern), inner.routes.get(pattern)),
            None => match inner.routes.get_key_value(request.path()) {
                Some((pattern, rule)) => (Some(pattern.as_str()), Some(rule)),
                None => (None, None),
            },
        };
        if name.is_none() && !inner.charge_unmatched {
            return plan;
        }
        let route = route.or(table_rule);
        let (own, defaults) = match route {
            Some(r) if r.exempt == Exempt::All => return plan,
            Some(r) => {
                // As Flask-Limiter: when the method filters of all the route's own
                // limits leave the request out, the defaults apply to it.
                let method_exempt = r.sets.iter().all(|s| {
                    s.methods
                        .as_ref()
                        .is_some_and(|m| !m.iter().any(|m| m.as_str() == request.method()))
                });
                (
                    r.sets.as_slice(),
                    r.exempt == Exempt::No && (r.keep_defaults || method_exempt),
                )
            }
            None => (&[][..], true),
        };
        let defaults: &[Set] = if defaults { &inner.defaults } else { &[] };
        for set in inner.application.iter().chain(own).chain(defaults) {
            self.add(&mut plan.groups, set, request, name);
        }
        if !plan.groups.is_empty() && !inner.meta.is_empty() {
            let mut meta = Groups::new();
            for set in &inner.meta {
                self.add(&mut meta, set, request, name);
            }
            if !meta.is_empty() {
                plan.meta = Some(Box::new(meta));
            }
        }
        plan
    }

    /// Adds `set`'s limits for `request` to `groups`; `route` names the request's
    /// route, `None` when it matched none.
    fn add(&self, groups: &mut Groups, set: &Set, request: &RequestInfo<'_>, route: Option<&str>) {
        if let Some(methods) = &set.methods {
            if !methods.iter().any(|m| m.as_str() == request.method()) {
                return;
            }
        }
        if set.exempt_when.as_ref().is_some_and(|f| f(request)) {
            return;
        }
        let limits = match &set.limits {
            SetLimits::Static(limits) => limits.clone(),
            SetLimits::Dynamic(f) => match f(request) {
                Some(limits) if !limits.is_empty() => limits,
                _ => return,
            },
        };
        let cost = match &set.cost {
            Cost::Fixed(cost) => *cost,
            Cost::Dynamic(f) => f(request),
        };
        if cost == 0 {
            return;
        }
        let Some(client) = set.key.extract(request) else {
            return;
        };
        let mut key = Key::default();
        if let Some(prefix) = &self.inner.key_prefix {
            key.push(prefix);
        }
        key.push(client.as_str());
        match &set.scope {
            Scope::Route => match route {
                Some(route) if route.starts_with('/') => key.push(route),
                Some(other) => key.push(&format!("~route:{other}")),
                None => key.push(UNMATCHED_SCOPE),
            },
            Scope::Application => key.push(APPLICATION_SCOPE),
            Scope::Meta => key.push(META_SCOPE),
            Scope::Shared(scope) => key.push(scope),
        }
        if set.per_method {
            key.push(method_scope(request.method()));
        }
        let conditional = set.deduct_when.clone();
        let same = groups.iter_mut().find(|g| {
            g.key == key
                && g.cost == cost
                && match (&g.deduct_when, &conditional) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                }
        });
        match same {
            // Same key, cost and condition: one `hit_all`, all or nothing.
            Some(group) => {
                group.limits = group.limits.iter().chain(limits.iter()).copied().collect();
            }
            None => groups.push(Group {
                key,
                limits,
                cost,
                deduct_when: conditional,
                hit_at: Timestamp::ZERO,
            }),
        }
    }

    /// Decides a [`plan`](Self::plan): every limit that applies, all or nothing,
    /// under the failure policy and the deadline.
    ///
    /// Limits that share a key and a cost are decided by one
    /// [`RateLimiter::hit_all`], atomically. When a request has several such groups
    /// (application limits beside route limits, say), all are tested first, and the
    /// request is rejected without counting anything if any would reject; then each
    /// group is hit in turn. Only a concurrent request that spends the last units
    /// between the test and the hit can make a later group reject after an earlier
    /// one counted: the earlier group then keeps that one request's cost. The core
    /// has no public refund, so this bound (one cost per such race) is the guarantee.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have counted the request.
    pub fn decide(&self, plan: Plan) -> impl Future<Output = Decided> + Send + 'static {
        self.clone().decide_owned(plan)
    }

    async fn decide_owned(self, mut plan: Plan) -> Decided {
        if plan.groups.is_empty() {
            return Decided::Allowed(Admission::empty(&self));
        }
        let limiter = match self.fallback_state() {
            Active::Primary => self.inner.limiter.clone(),
            Active::Memory(memory) => memory,
            // Rare: a separate allocation keeps the common future small.
            Active::ProbeDue(probe) => Box::pin(self.probe(probe)).await,
        };
        let guards = self.register_inflight(&plan.groups);
        let deadline = self.inner.deadline;
        let decided = match plan.meta.as_deref() {
            None => Deadline::new(self.run(&limiter, &mut plan.groups), deadline).await,
            Some(meta) => {
                let run = self.run_with_meta(&limiter, &mut plan.groups, meta);
                Deadline::new(Box::pin(run), deadline).await
            }
        };
        let outcome = match decided {
            Ok(Ok(decision)) => Outcome::Allowed(decision, limiter),
            Ok(Err(decision)) => Outcome::Limited(decision),
            // Rare: a separate allocation keeps the common future small.
            Err(err) => Box::pin(self.on_failure(err, &mut plan)).await,
        };
        let inner = &*self.inner;
        match outcome {
            Outcome::Allowed(decision, limiter) => {
                inner.metrics.allowed();
                Decided::Allowed(Admission {
                    engine: self.clone(),
                    limiter,
                    decision,
                    groups: plan.groups,
                    _inflight: guards,
                })
            }
            Outcome::Limited(decision) => {
                inner.metrics.limited();
                Decided::Limited(Limited {
                    decision,
                    applied: plan.groups,
                })
            }
            Outcome::Open => {
                inner.metrics.allowed();
                Decided::Allowed(Admission::empty(&self))
            }
            Outcome::Closed => Decided::Unavailable,
        }
    }

    /// The storage failed or missed the deadline: the failure policy decides.
    async fn on_failure(&self, err: Failed, plan: &mut Plan) -> Outcome {
        let inner = &*self.inner;
        inner.metrics.storage_error();
        match &inner.failure {
            Failure::Closed => {
                tracing::error!(error = %err, "rate limiter storage failed; failing closed (503)");
                Outcome::Closed
            }
            Failure::Open => {
                tracing::warn!(error = %err, "rate limiter storage failed; failing open");
                Outcome::Open
            }
            Failure::Fallback(fallback) => {
                if fallback.activate() {
                    inner.metrics.fallback(true);
                    tracing::warn!(error = %err, "rate limiter storage failed; deciding in memory until it answers");
                }
                let memory = fallback.memory.clone();
                let decided = match plan.meta.as_deref() {
                    None => self.run(&memory, &mut plan.groups).await,
                    Some(meta) => self.run_with_meta(&memory, &mut plan.groups, meta).await,
                };
                match decided {
                    Ok(Ok(decision)) => Outcome::Allowed(decision, memory),
                    Ok(Err(decision)) => Outcome::Limited(decision),
                    Err(err) => {
                        tracing::warn!(error = %err, "in-memory fallback failed; failing open");
                        Outcome::Open
                    }
                }
            }
        }
    }

    /// `Ok(decision for headers)` or `Err(rejecting decision)`.
    async fn run(
        &self,
        limiter: &RateLimiter,
        groups: &mut Groups,
    ) -> Result<Result<Option<Decision>, Decision>, Failed> {
        match groups.as_mut_slice() {
            [g] if g.deduct_when.is_none() => {
                let decision = hit(limiter, g).await?;
                Ok(if decision.is_allowed() {
                    g.hit_at = decision.decided_at();
                    Ok(Some(decision))
                } else {
                    Err(decision)
                })
            }
            // Several groups: a separate allocation keeps the common future small.
            _ => Box::pin(self.run_groups(limiter, groups)).await,
        }
    }

    /// [`run`](Self::run) behind the meta limits: rejected at once while they are
    /// exhausted, and one unit of them spent on each rejection.
    async fn run_with_meta(
        &self,
        limiter: &RateLimiter,
        groups: &mut Groups,
        meta: &Groups,
    ) -> Result<Result<Option<Decision>, Decision>, Failed> {
        for g in meta {
            let decision = test(limiter, g, g.cost).await?;
            if !decision.is_allowed() {
                return Ok(Err(decision));
            }
        }
        let decided = self.run(limiter, groups).await?;
        if decided.is_err() {
            for g in meta {
                if let Err(err) = hit(limiter, g).await {
                    self.inner.metrics.storage_error();
                    tracing::warn!(error = %err, "rate limiter: counting a breach against the meta limits failed");
                }
            }
        }
        Ok(decided)
    }

    async fn run_groups(
        &self,
        limiter: &RateLimiter,
        groups: &mut Groups,
    ) -> Result<Result<Option<Decision>, Decision>, Failed> {
        let mut decisions: SmallVec<[Decision; 4]> = SmallVec::new();
        // Test everything first: a rejection counts nothing anywhere.
        for g in groups.iter() {
            let cost = match &g.deduct_when {
                Some(_) => g.cost.saturating_mul(self.inflight_count(&g.key)),
                None => g.cost,
            };
            let decision = test(limiter, g, cost).await?;
            if !decision.is_allowed() {
                return Ok(Err(decision));
            }
            if g.deduct_when.is_some() {
                decisions.push(decision);
            }
        }
        for g in groups.iter_mut().filter(|g| g.deduct_when.is_none()) {
            let decision = hit(limiter, g).await?;
            if !decision.is_allowed() {
                return Ok(Err(decision));
            }
            g.hit_at = decision.decided_at();
            decisions.push(decision);
        }
        Ok(Ok(pick(&decisions)))
    }

    fn register_inflight(&self, groups: &Groups) -> SmallVec<[InflightGuard; 1]> {
        let mut guards = SmallVec::new();
        if groups.iter().all(|g| g.deduct_when.is_none()) {
            return guards;
        }
        let mut map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for g in groups.iter().filter(|g| g.deduct_when.is_some()) {
            *map.entry(g.key.clone()).or_insert(0) += 1;
            guards.push(InflightGuard {
                engine: self.clone(),
                key: g.key.clone(),
            });
        }
        guards
    }

    fn inflight_count(&self, key: &Key) -> u64 {
        let map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(key).copied().unwrap_or(1).max(1)
    }

    /// Which limiter decides: the primary, or the in-memory fallback while the primary
    /// is down, or the primary's probe when one is due.
    fn fallback_state(&self) -> Active {
        let Failure::Fallback(fallback) = &self.inner.failure else {
            return Active::Primary;
        };
        if !fallback.is_active() {
            return Active::Primary;
        }
        match fallback.probe_due() {
            Some(probe) => Active::ProbeDue(probe),
            None if fallback.is_active() => Active::Memory(fallback.memory.clone()),
            None => Active::Primary,
        }
    }

    /// Probes the primary storage; the limiter to decide with afterwards.
    async fn probe(&self, probe: ProbeGuard) -> RateLimiter {
        let inner = &*self.inner;
        let storage = inner.limiter.storage().clone();
        let check = async move { storage.check().await.map_err(Error::from) };
        let ok = Deadline::new(check, inner.deadline).await.is_ok();
        probe.finish(ok);
        match &inner.failure {
            Failure::Fallback(fallback) if fallback.is_active() => {
                tracing::debug!("rate limiter storage still down");
                fallback.memory.clone()
            }
            _ => {
                inner.metrics.fallback(false);
                tracing::info!(
                    "rate limiter storage answers again; leaving the in-memory fallback"
                );
                inner.limiter.clone()
            }
        }
    }

    /// The 429 response for a rejection, with the configured headers and
    /// `Retry-After`; calls the `on_breach` callback first.
    pub fn limited_response(
        &self,
        limited: &Limited,
        request: &RequestInfo<'_>,
    ) -> Response<String> {
        let inner = &*self.inner;
        let decision = &limited.decision;
        tracing::info!(
            method = request.method(),
            route = request.route(),
            limit = %decision.limit(),
            retry_after_ms = decision.retry_after().map(|d| d.as_millis()),
            "rate limit exceeded"
        );
        if let Some(on_breach) = &inner.on_breach {
            on_breach(decision, request);
        }
        let mut response = inner.rejection.build(decision, request);
        let applied = applied_limits(&limited.applied);
        headers::write(
            response.headers_mut(),
            inner.header_style,
            inner.retry_after,
            decision,
            &applied,
            true,
        );
        response
    }

    /// The 503 response when the storage fails and the policy is to fail closed.
    pub fn unavailable_response(&self) -> Response<String> {
        response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable: the rate limiter's storage is not answering\n".to_owned(),
        )
    }
}
