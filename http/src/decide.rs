//! Deciding a [`Plan`]: every group of limits, all or nothing, under the meta
//! limits, the storage failure policy and the per-request deadline.

use std::future::Future;
use std::time::Instant;

use limiter_core::{Decision, Error, RateLimit, RateLimiter};
use smallvec::SmallVec;

use crate::admission::Admission;
use crate::deadline::{Deadline, Failed};
use crate::failure::{Failure, ProbeGuard};
use crate::limiter::HttpLimiter;
use crate::metrics::{Event, Labels};
use crate::plan::{Group, Groups, Plan};
use crate::rejection::Rejected;

impl HttpLimiter {
    /// Decides a [`plan`](Self::plan): every limit that applies, all or nothing,
    /// under the failure policy and the deadline.
    ///
    /// Limits that share a key and a cost are decided by one
    /// [`RateLimiter::hit_all`], atomically. When a request has several such groups
    /// (application limits beside route limits, say), all are tested first, and the
    /// request is rejected without counting anything if any would reject; then each
    /// group is hit in turn. Only a concurrent request that spends the last units
    /// between the test and the hit can make a later group reject after an earlier
    /// one counted: the earlier group then keeps that one request's cost, so the
    /// bound is one cost per such race.
    ///
    /// A rejected request is an `Err(`[`Rejected`]`)`: answer it with
    /// [`rejection_response`](Self::rejection_response).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have counted the request.
    pub fn decide(
        &self,
        plan: Plan,
    ) -> impl Future<Output = Result<Admission, Rejected>> + Send + 'static {
        self.clone().decide_owned(plan)
    }

    async fn decide_owned(self, mut plan: Plan) -> Result<Admission, Rejected> {
        if plan.groups.is_empty() {
            return Ok(Admission::empty(&self));
        }
        let started = self.inner.measured.then(Instant::now);
        // Shadow sets are decided on their own, once the enforced ones let the request
        // in; with the whole limiter in shadow mode, everything is decided as usual.
        // Boxed: most requests have no shadow set, and the groups would otherwise ride
        // in every request's future.
        let shadow: Option<Box<Groups>> =
            if !self.inner.shadow && plan.groups.iter().any(|g| g.shadow) {
                let (shadow, enforced): (Groups, Groups) = std::mem::take(&mut plan.groups)
                    .into_iter()
                    .partition(|g| g.shadow);
                plan.groups = enforced;
                Some(Box::new(shadow))
            } else {
                None
            };
        let limiter = match self.fallback_state() {
            Active::Primary => self.inner.limiter.clone(),
            Active::Memory(memory) => memory,
            // Rare: a separate allocation keeps the common future small.
            Active::ProbeDue(probe) => Box::pin(self.probe(probe)).await,
        };
        let mut guards = self.register_inflight(&plan.groups);
        if let Some(shadow) = &shadow {
            guards.extend(self.register_inflight(shadow));
        }
        let deadline = self.inner.deadline;
        let route = plan.route.take();
        let route = route.as_deref();
        let decided = match plan.meta.as_deref() {
            None => Deadline::new(self.run(&limiter, &mut plan.groups), deadline).await,
            Some(meta) => {
                let run = self.run_with_meta(&limiter, &mut plan.groups, meta, route);
                Deadline::new(Box::pin(run), deadline).await
            }
        };
        let outcome = match decided {
            Ok(Ok(decision)) => Outcome::Allowed(decision, limiter),
            Ok(Err(decision)) => Outcome::Limited(decision, limiter),
            // Rare: a separate allocation keeps the common future small.
            Err(err) => Box::pin(self.on_failure(err, &mut plan, route)).await,
        };
        let inner = &*self.inner;
        let primary = &inner.limiter;
        match outcome {
            Outcome::Allowed(decision, limiter) => {
                let limit = decision.as_ref().map(Decision::limit);
                self.measure(Event::Allowed, route, limit, &limiter, started);
                let mut groups = plan.groups;
                let shadowed = match shadow {
                    None => None,
                    // Rare: a separate allocation keeps the common future small.
                    Some(shadow) => {
                        Box::pin(self.run_shadow(&limiter, *shadow, &mut groups, route)).await
                    }
                };
                Ok(Admission::new(&self, limiter, decision, groups, guards)
                    .with_route(plan.route)
                    .with_shadow_rejected(shadowed))
            }
            Outcome::Limited(decision, limiter) if inner.shadow => {
                self.report_shadow(Some(&decision), route, &limiter);
                self.measure_time(route, &limiter, started);
                Ok(Admission::empty(&self).with_shadow_rejected(Some(decision)))
            }
            Outcome::Limited(decision, limiter) => {
                let limit = Some(decision.limit());
                self.measure(Event::Limited, route, limit, &limiter, started);
                Err(Rejected::limited(decision, plan.groups))
            }
            Outcome::Open => {
                self.measure(Event::Allowed, route, None, primary, started);
                Ok(Admission::empty(&self))
            }
            Outcome::Closed if inner.shadow => {
                self.report_shadow(None, route, primary);
                self.measure_time(route, primary, started);
                Ok(Admission::empty(&self))
            }
            Outcome::Closed => {
                self.measure_time(route, primary, started);
                Err(Rejected::unavailable())
            }
        }
    }

    /// Reports `event` of a request on `route`, concerning `limit`, decided by
    /// `limiter`.
    pub(crate) fn record(
        &self,
        event: Event,
        route: Option<&str>,
        limit: Option<&RateLimit>,
        limiter: &RateLimiter,
    ) {
        let labels = Labels::new(self.storage_label(limiter))
            .with_route(route)
            .with_limit(limit);
        self.inner.metrics.record(event, &labels);
    }

    /// [`record`](Self::record), then the time the decision took since `started`.
    fn measure(
        &self,
        event: Event,
        route: Option<&str>,
        limit: Option<&RateLimit>,
        limiter: &RateLimiter,
        started: Option<Instant>,
    ) {
        self.record(event, route, limit, limiter);
        self.measure_time(route, limiter, started);
    }

    /// Reports the time a decision by `limiter` took since `started` (`None`: no
    /// metrics are set).
    fn measure_time(&self, route: Option<&str>, limiter: &RateLimiter, started: Option<Instant>) {
        if let Some(started) = started {
            let labels = Labels::new(self.storage_label(limiter)).with_route(route);
            self.inner.metrics.decision_time(&labels, started.elapsed());
        }
    }

    /// Decides the shadow groups of an admitted request, each on its own and all or
    /// nothing, as if enforced; those that count (or, when conditional, would) join
    /// `groups`. Returns the first decision that would have rejected.
    async fn run_shadow(
        &self,
        limiter: &RateLimiter,
        shadow: Groups,
        groups: &mut Groups,
        route: Option<&str>,
    ) -> Option<Decision> {
        let deadline = self.inner.deadline;
        let mut rejected = None;
        for mut g in shadow {
            let decided = match &g.deduct_when {
                Some(_) => {
                    let cost = g.cost.saturating_mul(self.inflight_count(&g.key));
                    Deadline::new(test(limiter, &g, cost), deadline).await
                }
                None => Deadline::new(hit(limiter, &g), deadline).await,
            };
            match decided {
                Ok(decision) if decision.is_allowed() => {
                    if g.deduct_when.is_none() {
                        g.hit_at = decision.decided_at();
                    }
                    groups.push(g);
                }
                Ok(decision) => {
                    self.report_shadow(Some(&decision), route, limiter);
                    rejected.get_or_insert(decision);
                }
                Err(err) => {
                    self.record(Event::StorageError, route, None, limiter);
                    tracing::warn!(
                        error.type = err.kind_str(),
                        error.message = %err.redacted(),
                        "rate limiter: deciding shadow limits failed"
                    );
                }
            }
        }
        rejected
    }

    /// Reports a request let through in shadow mode: rejected by `decision`, or by
    /// the storage failing closed (`None`).
    fn report_shadow(
        &self,
        decision: Option<&Decision>,
        route: Option<&str>,
        limiter: &RateLimiter,
    ) {
        let limit = decision.map(Decision::limit);
        self.record(Event::ShadowRejected, route, limit, limiter);
        match decision {
            Some(decision) => tracing::warn!(
                http.route = route,
                limit = %decision.limit(),
                retry_after_ms = decision.retry_after().map(|d| d.as_millis()),
                "rate limit exceeded in shadow mode; request let through"
            ),
            None => tracing::warn!(
                http.route = route,
                "rate limiter storage unavailable in shadow mode; request let through"
            ),
        }
    }

    /// The storage failed or missed the deadline: the failure policy decides.
    async fn on_failure(&self, err: Failed, plan: &mut Plan, route: Option<&str>) -> Outcome {
        let inner = &*self.inner;
        self.record(Event::StorageError, route, None, &inner.limiter);
        match &inner.failure {
            Failure::Closed => {
                tracing::error!(
                    http.route = route,
                    error.type = err.kind_str(),
                    error.message = %err.redacted(),
                    "rate limiter storage failed; failing closed (503)"
                );
                Outcome::Closed
            }
            Failure::Open => {
                tracing::warn!(
                    http.route = route,
                    error.type = err.kind_str(),
                    error.message = %err.redacted(),
                    "rate limiter storage failed; failing open"
                );
                Outcome::Open
            }
            Failure::Fallback(fallback) => {
                if fallback.activate() {
                    inner.metrics.fallback(true);
                    tracing::warn!(
                        limiter.fallback.active = true,
                        http.route = route,
                        error.type = err.kind_str(),
                        error.message = %err.redacted(),
                        "rate limiter storage failed; deciding in memory until it answers"
                    );
                }
                let memory = fallback.memory.clone();
                let decided = match plan.meta.as_deref() {
                    None => self.run(&memory, &mut plan.groups).await,
                    Some(meta) => {
                        self.run_with_meta(&memory, &mut plan.groups, meta, route)
                            .await
                    }
                };
                match decided {
                    Ok(Ok(decision)) => Outcome::Allowed(decision, memory),
                    Ok(Err(decision)) => Outcome::Limited(decision, memory),
                    Err(err) => {
                        tracing::warn!(
                            http.route = route,
                            error.type = err.kind_str(),
                            error.message = %err.redacted(),
                            "in-memory fallback failed; failing open"
                        );
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
        route: Option<&str>,
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
                    self.record(Event::StorageError, route, None, limiter);
                    tracing::warn!(
                        http.route = route,
                        error.type = err.kind_str(),
                        error.message = %err.redacted(),
                        "rate limiter: counting a breach against the meta limits failed"
                    );
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
                tracing::debug!(
                    limiter.fallback.active = true,
                    "rate limiter storage still down"
                );
                fallback.memory.clone()
            }
            _ => {
                inner.metrics.fallback(false);
                tracing::info!(
                    limiter.fallback.active = false,
                    "rate limiter storage answers again; leaving the in-memory fallback"
                );
                inner.limiter.clone()
            }
        }
    }
}

/// One group's hit: all its limits or none. A single limit takes the limiter's
/// single-limit path, which allocates less than a batch of one.
pub(crate) async fn hit(limiter: &RateLimiter, group: &Group) -> Result<Decision, Error> {
    match &*group.limits {
        [one] => limiter.hit(one, &group.key, group.cost).await,
        // Boxed: the larger future of several limits would otherwise ride in every
        // request's future.
        all => Box::pin(limiter.hit_all(all, &group.key, group.cost)).await,
    }
}

/// Whether one group's hit of `cost` would pass now.
async fn test(limiter: &RateLimiter, group: &Group, cost: u64) -> Result<Decision, Error> {
    match &*group.limits {
        [one] => limiter.test(one, &group.key, cost).await,
        all => limiter.test_all(all, &group.key, cost).await,
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

/// What [`HttpLimiter::decide`] found, before it becomes an [`Admission`] or a
/// [`Rejected`].
enum Outcome {
    Allowed(Option<Decision>, RateLimiter),
    Limited(Decision, RateLimiter),
    Open,
    Closed,
}

/// Which limiter decides a request.
enum Active {
    Primary,
    Memory(RateLimiter),
    ProbeDue(ProbeGuard),
}
