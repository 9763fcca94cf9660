//! A request let through, after its handler: the rate-limit headers, deductions
//! that wait for the response, refunds of `405` answers, and the count of
//! conditional requests in flight.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, MutexGuard, PoisonError};

use http::{HeaderMap, StatusCode};
use limiter_core::{Decision, Key, RateLimiter};
use smallvec::SmallVec;

use crate::deadline::Deadline;
use crate::decide::hit;
use crate::headers::{self, HeaderStyle};
use crate::limiter::HttpLimiter;
use crate::metrics::Event;
use crate::plan::{applied_limits, Groups};
use crate::request::ResponseInfo;

/// A request let through by [`HttpLimiter::decide`] or [`HttpLimiter::check`]: the
/// decision its rate-limit headers come from, and what is still to be counted once
/// its response is known.
///
/// After the handler answers, hand the response to [`finish`](Self::finish), which
/// settles and writes the headers. Adapters that cannot borrow the response across
/// an `await` call [`needs_settling`](Self::needs_settling) with the status; when it
/// is false, [`write_headers`](Self::write_headers) is all there is to do, otherwise
/// [`settle`](Self::settle) returns an owned future that does the rest.
///
/// Dropping an admission without settling it deducts none of its
/// [conditional](crate::Limits::deduct_when) limits.
///
/// # Examples
///
/// ```
/// use limiter_http::{HeaderStyle, HttpLimiter, RequestInfo, ResponseInfo};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use std::sync::Arc;
/// use http::HeaderMap;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("10 per minute")
///     .headers(HeaderStyle::XRateLimit)
///     .build()?;
/// let headers = HeaderMap::new();
/// let request = RequestInfo::new("GET", "/", &headers)
///     .with_route("/")
///     .with_peer("192.0.2.1:1".parse()?);
/// let Ok(admission) = limiter.check(&request).await else {
///     unreachable!("the first request of ten");
/// };
/// // … the handler runs and answers …
/// let mut response = http::Response::new("hello");
/// let admission = admission
///     .settle(&ResponseInfo::new(response.status(), response.headers()))
///     .await;
/// admission.write_headers(response.headers_mut());
/// assert_eq!(response.headers()["x-ratelimit-remaining"], "9");
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct Admission {
    engine: HttpLimiter,
    limiter: RateLimiter,
    decision: Option<Decision>,
    groups: Groups,
    /// Boxed: rare, and the admission rides in every admitted request's future.
    shadow_rejected: Option<Box<Decision>>,
    /// The route pattern, for metrics labels (kept only when metrics are set).
    route: Option<Arc<str>>,
    /// Empty (no allocation) unless some limits are conditional.
    _inflight: Vec<InflightGuard>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("decision", &self.decision)
            .field("groups", &self.groups)
            .field("shadow_rejected", &self.shadow_rejected)
            .finish_non_exhaustive()
    }
}

/// What a response leaves to do, decided from it synchronously.
enum Settling {
    /// Give back what the request counted (a `405` that is not charged).
    Refund,
    /// Deduct the conditional groups at these indices.
    Deduct(SmallVec<[usize; 2]>),
}

impl Admission {
    /// An admission decided with `limiter` (the primary or the in-memory fallback).
    pub(crate) fn new(
        engine: &HttpLimiter,
        limiter: RateLimiter,
        decision: Option<Decision>,
        groups: Groups,
        inflight: Vec<InflightGuard>,
    ) -> Admission {
        Admission {
            engine: engine.clone(),
            limiter,
            decision,
            groups,
            shadow_rejected: None,
            route: None,
            _inflight: inflight,
        }
    }

    /// Records the decision that would have rejected the request, had its limits not
    /// been in shadow mode.
    pub(crate) fn with_shadow_rejected(mut self, decision: Option<Decision>) -> Admission {
        self.shadow_rejected = decision.map(Box::new);
        self
    }

    /// Records the route pattern, for metrics labels.
    pub(crate) fn with_route(mut self, route: Option<Arc<str>>) -> Admission {
        self.route = route;
        self
    }

    /// An admission that counted nothing and sends no headers.
    pub(crate) fn empty(engine: &HttpLimiter) -> Admission {
        let limiter = engine.inner.limiter.clone();
        Admission::new(engine, limiter, None, Groups::new(), Vec::new())
    }

    /// The decision the headers come from; `None` when no limit applied or the
    /// storage failed open.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The decision that would have rejected the request, when limits in shadow mode
    /// ([`Limits::shadow`](crate::Limits::shadow),
    /// [`HttpLimiterBuilder::shadow`](crate::HttpLimiterBuilder::shadow)) let it
    /// through; `None` otherwise (also when the storage failed in shadow mode).
    pub fn shadow_rejected(&self) -> Option<&Decision> {
        self.shadow_rejected.as_deref()
    }

    /// Whether some limits are deducted only after the response
    /// ([`Limits::deduct_when`](crate::Limits::deduct_when)).
    fn is_conditional(&self) -> bool {
        self.groups.iter().any(|g| g.deduct_when.is_some())
    }

    /// Whether a response with `status` changes what is counted, so that it must go
    /// through [`settle`](Self::settle) (or [`finish`](Self::finish)) rather than
    /// straight to [`write_headers`](Self::write_headers): when some limits are
    /// deducted only after the response
    /// ([`Limits::deduct_when`](crate::Limits::deduct_when)), or when the status is
    /// `405 Method Not Allowed` and such answers are not charged
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

    /// Settles the admission with its response: decides now, from `response`, which
    /// conditional limits to deduct, or whether to give back what the request counted
    /// (a `405` that is not charged); the returned future owns everything, makes those
    /// deductions or that refund, and yields the admission, whose headers then
    /// include them. Storage failures are logged and counted, never surfaced: the
    /// response already exists.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave some deductions or refunds unmade.
    pub fn settle(
        self,
        response: &ResponseInfo<'_>,
    ) -> impl Future<Output = Admission> + Send + 'static {
        let settling = if self.refunds(response.status()) {
            Settling::Refund
        } else {
            Settling::Deduct(
                self.groups
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| g.deduct_when.as_ref().is_some_and(|f| f(response)))
                    .map(|(i, _)| i)
                    .collect(),
            )
        };
        self.run(settling)
    }

    /// [`settle`](Self::settle), then [`write_headers`](Self::write_headers) into the
    /// response's `headers`.
    ///
    /// # Cancel safety
    ///
    /// As [`settle`](Self::settle); no headers are written.
    pub async fn finish(self, response: &ResponseInfo<'_>, headers: &mut HeaderMap) {
        let admission = self.settle(response).await;
        admission.write_headers(headers);
    }

    async fn run(mut self, settling: Settling) -> Admission {
        match settling {
            Settling::Refund => self.refund().await,
            Settling::Deduct(deduct) => self.deduct(&deduct).await,
        }
        self
    }

    /// Deducts the conditional groups at `indices`; the headers then speak for the
    /// group with the fewest units left.
    async fn deduct(&mut self, indices: &[usize]) {
        let inner = &self.engine.inner;
        for &i in indices {
            let Some(group) = self.groups.get(i) else {
                continue;
            };
            match Deadline::new(hit(&self.limiter, group), inner.deadline).await {
                Ok(decision) => {
                    if !decision.is_allowed() {
                        tracing::debug!(
                            limit = %decision.limit(),
                            "rate limiter: conditional deduction found the budget spent by concurrent requests"
                        );
                    }
                    if group.shadow {
                        // Shadow limits never speak in the headers.
                        continue;
                    }
                    self.decision = Some(match self.decision {
                        Some(d) if d.remaining() <= decision.remaining() => d,
                        _ => decision,
                    });
                }
                Err(err) => {
                    let route = self.route.as_deref();
                    self.engine
                        .record(Event::StorageError, route, None, &self.limiter);
                    tracing::warn!(
                        http.route = route,
                        error.type = err.kind_str(),
                        error.message = %err.redacted(),
                        "rate limiter: conditional deduction failed"
                    );
                }
            }
        }
    }

    /// Gives back every group this request counted; the response then carries no
    /// rate-limit headers, as for a request that was never charged.
    async fn refund(&mut self) {
        let inner = &self.engine.inner;
        // An admission's unconditional groups were all counted; its conditional ones
        // are not deducted when the request is given back.
        for group in self.groups.iter().filter(|g| g.deduct_when.is_none()) {
            let refund = self
                .limiter
                .refund(&group.limits, &group.key, group.cost, group.hit_at);
            if let Err(err) = Deadline::new(refund, inner.deadline).await {
                let route = self.route.as_deref();
                self.engine
                    .record(Event::StorageError, route, None, &self.limiter);
                tracing::warn!(
                    http.route = route,
                    error.type = err.kind_str(),
                    error.message = %err.redacted(),
                    "rate limiter: giving back a 405's hit failed"
                );
            }
        }
        self.decision = None;
    }
}

/// Counts requests in flight per conditional key, so that the pre-check of `n`
/// concurrent requests asks for `n` times the cost.
pub(crate) struct InflightGuard {
    engine: HttpLimiter,
    key: Key,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut map = self.engine.inflight();
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl HttpLimiter {
    /// The count of requests in flight per conditional key. A panic while it was
    /// held leaves counts that are still consistent: each update is one statement.
    fn inflight(&self) -> MutexGuard<'_, HashMap<Key, u64>> {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the request of `groups` as in flight for each of its conditional keys,
    /// until the returned guards are dropped.
    pub(crate) fn register_inflight(&self, groups: &Groups) -> Vec<InflightGuard> {
        let mut guards = Vec::new();
        if groups.iter().all(|g| g.deduct_when.is_none()) {
            return guards;
        }
        let mut map = self.inflight();
        for g in groups.iter().filter(|g| g.deduct_when.is_some()) {
            *map.entry(g.key.clone()).or_insert(0) += 1;
            guards.push(InflightGuard {
                engine: self.clone(),
                key: g.key.clone(),
            });
        }
        guards
    }

    /// How many requests for the conditional `key` are in flight, at least one.
    pub(crate) fn inflight_count(&self, key: &Key) -> u64 {
        let map = self.inflight();
        map.get(key).copied().unwrap_or(1).max(1)
    }
}
