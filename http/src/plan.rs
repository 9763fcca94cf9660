//! Which limits apply to a request: the compiled limit sets, route rules, and the
//! keys and groups a [`Plan`] holds.

use std::fmt;
use std::sync::Arc;

use http::Method;
use limiter_core::{Key, RateLimit, Timestamp};
use smallvec::SmallVec;

use crate::builder::{compile_route, BuildError};
use crate::key::KeySource;
use crate::limiter::HttpLimiter;
use crate::policy::{Cost, DynamicLimitsFn, Exempt, RequestPredicate, ResponsePredicate, Route};
use crate::request::RequestInfo;

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
    pub(crate) shadow: bool,
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
pub(crate) struct Group {
    pub(crate) key: Key,
    pub(crate) limits: Arc<[RateLimit]>,
    pub(crate) cost: u64,
    pub(crate) deduct_when: Option<Arc<ResponsePredicate>>,
    /// When the hit that counted this group was decided, once an admitted request's
    /// unconditional groups are all counted: what a refund gives back.
    pub(crate) hit_at: Timestamp,
    /// Decided, counted, never rejecting ([`Limits::shadow`](crate::Limits::shadow)).
    pub(crate) shadow: bool,
}

pub(crate) type Groups = SmallVec<[Group; 1]>;

/// What applies to one request, computed from it synchronously by
/// [`HttpLimiter::plan`]; owns everything, so deciding it borrows nothing.
#[must_use]
pub struct Plan {
    pub(crate) groups: Groups,
    /// Meta limits, boxed: most limiters have none, and the plan rides in every
    /// request's future.
    pub(crate) meta: Option<Box<Groups>>,
    /// The route pattern, for metrics labels: kept only when metrics are set.
    pub(crate) route: Option<Arc<str>>,
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

impl HttpLimiter {
    /// Compiles a route rule for [`plan_for`](Self::plan_for): for adapters that
    /// configure limits where a route is declared, such as
    /// [`layer_for`](Self::layer_for) (feature `tower`).
    ///
    /// ```
    /// use limiter_http::{HttpLimiter, Limits, RequestInfo, Route};
    /// use limiter_core::RateLimiter;
    /// use limiter_memory::MemoryStorage;
    /// use std::sync::Arc;
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
    /// As [`HttpLimiterBuilder::build`](crate::HttpLimiterBuilder::build) for the route's limits.
    pub fn route_rule(&self, route: Route) -> Result<RouteRule, BuildError> {
        let compiled = compile_route(route, &self.inner.key, "route rule")?;
        Ok(RouteRule(Arc::new(compiled)))
    }

    /// [`plan`](Self::plan) with `rule` as the request's route rule, in place of the
    /// route table. The request still names its route by its pattern
    /// ([`RequestInfo::with_route`]); without one it counts as unmatched
    /// ([`charge_unmatched`](crate::HttpLimiterBuilder::charge_unmatched)).
    pub fn plan_for(&self, request: &RequestInfo<'_>, rule: &RouteRule) -> Plan {
        self.plan_route(request, Some(&rule.0))
    }

    /// Which limits apply to `request`, with their keys and costs. Runs every key
    /// function, dynamic limit, cost function and filter, and nothing else; the plan
    /// owns its data, so the request may be moved on before [`decide`](Self::decide).
    ///
    /// Nothing applies, unless configured otherwise, to `OPTIONS` requests
    /// ([`charge_options`](crate::HttpLimiterBuilder::charge_options)) and to requests that
    /// match no route ([`charge_unmatched`](crate::HttpLimiterBuilder::charge_unmatched)).
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
            route: None,
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
        if inner.measured {
            plan.route = name.map(Arc::from);
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
        let client = client.as_str();
        // Room for the parts and their separators, and a few escapes, in one
        // allocation.
        let prefix_len = self.inner.key_prefix.as_ref().map_or(0, |p| p.len() + 1);
        let scope_len = match (&set.scope, route) {
            (Scope::Route, Some(route)) => route.len() + 8,
            (Scope::Shared(scope), _) => scope.len(),
            _ => 10,
        };
        let mut key = Key::with_capacity(prefix_len + client.len() + scope_len + 16);
        if let Some(prefix) = &self.inner.key_prefix {
            key.push(prefix);
        }
        key.push(client);
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
                && g.shadow == set.shadow
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
                shadow: set.shadow,
            }),
        }
    }
}

/// The limits the rate-limit headers speak for: every group's but the shadow ones.
pub(crate) fn applied_limits(groups: &Groups) -> SmallVec<[RateLimit; 4]> {
    groups
        .iter()
        .filter(|g| !g.shadow)
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
