//! Which limits apply to a request: limit sets and route rules.

use std::fmt;
use std::sync::Arc;

use http::Method;
use limiter_core::RateLimit;

use crate::key::KeySource;
use crate::request::{RequestInfo, ResponseInfo};

pub(crate) type DynamicLimitsFn =
    dyn Fn(&RequestInfo<'_>) -> Option<Arc<[RateLimit]>> + Send + Sync;
pub(crate) type CostFn = dyn Fn(&RequestInfo<'_>) -> u64 + Send + Sync;
pub(crate) type RequestPredicate = dyn Fn(&RequestInfo<'_>) -> bool + Send + Sync;
pub(crate) type ResponsePredicate = dyn Fn(&ResponseInfo<'_>) -> bool + Send + Sync;

/// A set of rate limits with the options Flask-Limiter gives a decorator: key, cost,
/// per-method counting, a method filter, an exemption predicate, conditional
/// deduction and a shared scope.
///
/// Limit text is parsed when the limiter is built
/// ([`HttpLimiterBuilder::build`](crate::HttpLimiterBuilder::build)), so a malformed
/// string stops the service from starting instead of failing requests.
///
/// # Examples
///
/// ```
/// use limiter_http::{KeySource, Limits};
/// use http::{Method, StatusCode};
///
/// // 5 failed logins per minute per client address; successful ones cost nothing.
/// let logins = Limits::new("5 per minute")
///     .methods([Method::POST])
///     .deduct_when(|response| response.status() == StatusCode::UNAUTHORIZED);
///
/// // One budget shared by every route that uses this set, per API key.
/// let search = Limits::new("100 per hour").shared("search").key(KeySource::header("x-api-key"));
/// # let _ = (logins, search);
/// ```
#[derive(Clone)]
pub struct Limits {
    pub(crate) source: Source,
    pub(crate) key: Option<KeySource>,
    pub(crate) per_method: bool,
    pub(crate) methods: Option<Vec<Method>>,
    pub(crate) cost: Cost,
    pub(crate) exempt_when: Option<Arc<RequestPredicate>>,
    pub(crate) deduct_when: Option<Arc<ResponsePredicate>>,
    pub(crate) shared: Option<String>,
    pub(crate) shadow: bool,
}

#[derive(Clone)]
pub(crate) enum Source {
    Text(String),
    Parsed(Arc<[RateLimit]>),
    Dynamic(Arc<DynamicLimitsFn>),
}

#[derive(Clone)]
pub(crate) enum Cost {
    Fixed(u64),
    Dynamic(Arc<CostFn>),
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Text(text) => text.clone(),
            Source::Parsed(limits) => limits
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Source::Dynamic(_) => "dynamic".to_owned(),
        };
        f.debug_struct("Limits")
            .field("limits", &source)
            .field("key", &self.key)
            .field("per_method", &self.per_method)
            .field("methods", &self.methods)
            .field("shared", &self.shared)
            .field("conditional", &self.deduct_when.is_some())
            .field("shadow", &self.shadow)
            .finish_non_exhaustive()
    }
}

impl Limits {
    fn from_source(source: Source) -> Limits {
        Limits {
            source,
            key: None,
            per_method: false,
            methods: None,
            cost: Cost::Fixed(1),
            exempt_when: None,
            deduct_when: None,
            shared: None,
            shadow: false,
        }
    }

    /// Limits in the text grammar (`"2 per minute; 1 per second"`), parsed when the
    /// limiter is built.
    pub fn new(text: impl Into<String>) -> Limits {
        Limits::from_source(Source::Text(text.into()))
    }

    /// Limits already parsed or built.
    ///
    /// ```
    /// use limiter_http::Limits;
    /// use limiter_core::RateLimit;
    /// use std::num::NonZeroU64;
    ///
    /// let limits = Limits::from_limits([RateLimit::per_second(NonZeroU64::MIN)]);
    /// # let _ = limits;
    /// ```
    pub fn from_limits(limits: impl IntoIterator<Item = RateLimit>) -> Limits {
        Limits::from_source(Source::Parsed(limits.into_iter().collect()))
    }

    /// Limits computed per request, for example from the caller's plan. Return the
    /// limits as values parsed beforehand (so no text is parsed per request), or
    /// `None` (or an empty list) to apply no limit of this set to the request.
    ///
    /// ```
    /// use limiter_http::{KeySource, Limits};
    /// use limiter_core::{parse_many, RateLimit};
    /// use std::sync::Arc;
    ///
    /// let free: Arc<[RateLimit]> = parse_many("10 per minute")?.into();
    /// let pro: Arc<[RateLimit]> = parse_many("1000 per minute")?.into();
    /// let per_plan = Limits::dynamic(move |request| match request.header("x-plan") {
    ///     Some("pro") => Some(pro.clone()),
    ///     _ => Some(free.clone()),
    /// })
    /// .key(KeySource::header("x-api-key"));
    /// # let _ = per_plan;
    /// # Ok::<(), limiter_core::ParseError>(())
    /// ```
    pub fn dynamic<F>(f: F) -> Limits
    where
        F: Fn(&RequestInfo<'_>) -> Option<Arc<[RateLimit]>> + Send + Sync + 'static,
    {
        Limits::from_source(Source::Dynamic(Arc::new(f)))
    }

    /// Where these limits find the client, instead of the limiter's
    /// ([`HttpLimiterBuilder::key`](crate::HttpLimiterBuilder::key)).
    #[must_use]
    pub fn key(mut self, key: KeySource) -> Self {
        self.key = Some(key);
        self
    }

    /// Counts each HTTP method separately (Flask-Limiter's `per_method`). Default: off.
    #[must_use]
    pub fn per_method(mut self) -> Self {
        self.per_method = true;
        self
    }

    /// Applies the limits only to requests with one of `methods` (Flask-Limiter's
    /// `methods`). Default: every method. When the method filters of all of a route's
    /// own limits leave a request out, the defaults apply to it instead, as in
    /// Flask-Limiter.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// What one request costs. Default: 1. A cost of 0 makes
    /// [`build`](crate::HttpLimiterBuilder::build) fail.
    #[must_use]
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = Cost::Fixed(cost);
        self
    }

    /// What one request costs, computed from it. A computed cost of 0 makes the
    /// request free: these limits are skipped for it.
    #[must_use]
    pub fn cost_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestInfo<'_>) -> u64 + Send + Sync + 'static,
    {
        self.cost = Cost::Dynamic(Arc::new(f));
        self
    }

    /// Skips these limits for requests where `f` is true (Flask-Limiter's
    /// `exempt_when`).
    #[must_use]
    pub fn exempt_when<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestInfo<'_>) -> bool + Send + Sync + 'static,
    {
        self.exempt_when = Some(Arc::new(f));
        self
    }

    /// Counts a request only when `f` is true of its response (Flask-Limiter's
    /// `deduct_when`): the limits are tested before the handler runs and deducted
    /// after it answers ([`Admission::finish`](crate::Admission::finish)).
    ///
    /// Requests for the same key that are in flight together in one process are
    /// counted together: the `n`-th concurrent request is let in only if `n` times its
    /// cost is still available, so one process never lets more requests through than
    /// the budget allows, even if all of them end up deducted. Several processes
    /// sharing a storage can each admit up to the remaining budget before any of them
    /// deducts: at most (processes − 1) × budget over. A deduction that finds the
    /// budget already spent counts nothing (it is one all-or-nothing `hit_all`).
    #[must_use]
    pub fn deduct_when<F>(mut self, f: F) -> Self
    where
        F: Fn(&ResponseInfo<'_>) -> bool + Send + Sync + 'static,
    {
        self.deduct_when = Some(Arc::new(f));
        self
    }

    /// Makes these limits one budget named `scope`, shared by every route and every
    /// set that uses the same scope (Flask-Limiter's `shared_limit`), instead of one
    /// budget per route.
    #[must_use]
    pub fn shared(mut self, scope: impl Into<String>) -> Self {
        self.shared = Some(scope.into());
        self
    }

    /// Puts these limits in shadow mode: they are decided and counted, but never
    /// reject. A request they would reject goes through; the
    /// [`Metrics::shadow_rejected`](crate::Metrics::shadow_rejected) hook and a
    /// `tracing` warning report it. Use it to try a new limit on real traffic
    /// before enforcing it.
    ///
    /// A shadow set is decided after the enforced limits let the request in, on its
    /// own: all of its limits or none, and a request it would reject counts nothing
    /// against it, exactly as if it were enforced. Removing `shadow()` therefore
    /// enforces from the count it has. It sends no rate-limit headers and does not
    /// count against the [meta limits](crate::HttpLimiterBuilder::meta_limits). For
    /// the whole limiter at once, see
    /// [`HttpLimiterBuilder::shadow`](crate::HttpLimiterBuilder::shadow).
    ///
    /// ```
    /// use limiter_http::Limits;
    ///
    /// // Enforce 100 per minute; see how often 20 per minute would bite.
    /// let enforced = Limits::new("100 per minute");
    /// let trial = Limits::new("20 per minute").shadow();
    /// # let _ = (enforced, trial);
    /// ```
    #[must_use]
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }
}

/// How a route's own limits relate to the limiter's defaults and application limits,
/// as Flask-Limiter's decorators: a route with limits of its own does not get the
/// defaults unless asked, and an exempt route gets nothing.
///
/// # Examples
///
/// ```
/// use limiter_http::{Limits, Route};
///
/// let slow = Route::limits(Limits::new("1 per day"));                  // replaces the defaults
/// let search = Route::limits(Limits::new("10 per second")).with_defaults(); // adds to them
/// let ping = Route::exempt();                                            // nothing at all
/// let health = Route::exempt_from_defaults();                            // application limits only
/// # let _ = (slow, search, ping, health);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Route {
    pub(crate) limits: Vec<Limits>,
    pub(crate) keep_defaults: bool,
    pub(crate) exempt: Exempt,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Exempt {
    #[default]
    No,
    Defaults,
    All,
}

impl Route {
    /// A route with `limits` of its own, which replace the defaults.
    pub fn limits(limits: Limits) -> Route {
        Route {
            limits: vec![limits],
            keep_defaults: false,
            exempt: Exempt::No,
        }
    }

    /// Adds another set of limits (with its own options) to the route.
    #[must_use]
    pub fn and(mut self, limits: Limits) -> Self {
        self.limits.push(limits);
        self
    }

    /// Keeps the defaults as well as the route's own limits (Flask-Limiter's
    /// `override_defaults=False`).
    #[must_use]
    pub fn with_defaults(mut self) -> Self {
        self.keep_defaults = true;
        self
    }

    /// No limit at all for this route: neither defaults nor application limits.
    pub fn exempt() -> Route {
        Route {
            exempt: Exempt::All,
            ..Route::default()
        }
    }

    /// No default limits for this route; application limits still apply.
    pub fn exempt_from_defaults() -> Route {
        Route {
            exempt: Exempt::Defaults,
            ..Route::default()
        }
    }
}
