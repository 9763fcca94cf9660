//! Building an [`HttpLimiter`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use limiter_core::{Decision, ParseError, RateLimiter};

use crate::failure::{Failure, FailurePolicy};
use crate::headers::{HeaderStyle, RetryAfter};
use crate::key::KeySource;
use crate::limiter::{HttpLimiter, Inner};
use crate::metrics::{Metrics, NoMetrics};
use crate::plan::{CompiledRoute, Scope, Set, SetLimits};
use crate::policy::{Cost, Limits, RequestPredicate, Route, Source};
use crate::rejection::RejectionBody;
use crate::request::RequestInfo;

pub(crate) type OnBreach = dyn Fn(&Decision, &RequestInfo<'_>) + Send + Sync;

/// A limiter that could not be built: a malformed limit string (with the parser's
/// error) or an invalid option. Nothing is checked at request time instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A limit string did not parse.
    #[error("{context}: {source}")]
    Limit {
        /// Where the string was given (`default limits`, `route "/slow"`, …).
        context: String,
        /// The parser's error.
        #[source]
        source: ParseError,
    },
    /// An option is invalid.
    #[error("{context}: {message}")]
    Invalid {
        /// Where the option was given.
        context: String,
        /// What is wrong.
        message: String,
    },
}

/// Builds an [`HttpLimiter`]; see [`HttpLimiter::builder`].
#[must_use]
pub struct HttpLimiterBuilder {
    limiter: RateLimiter,
    defaults: Vec<Limits>,
    application: Vec<Limits>,
    meta: Vec<Limits>,
    routes: Vec<(String, Route)>,
    key: KeySource,
    key_prefix: String,
    filters: Vec<Arc<RequestPredicate>>,
    enabled: bool,
    header_style: HeaderStyle,
    retry_after: RetryAfter,
    on_breach: Option<Arc<OnBreach>>,
    rejection: RejectionBody,
    failure: FailurePolicy,
    deadline: Option<Duration>,
    metrics: Arc<dyn Metrics>,
    measured: bool,
    storage_name: Arc<str>,
    charge_unmatched: bool,
    charge_options: bool,
    charge_method_not_allowed: bool,
    shadow: bool,
}

impl fmt::Debug for HttpLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLimiterBuilder")
            .field("limiter", &self.limiter)
            .field("defaults", &self.defaults)
            .field("application", &self.application)
            .field("routes", &self.routes)
            .field("key", &self.key)
            .field("key_prefix", &self.key_prefix)
            .field("enabled", &self.enabled)
            .field("header_style", &self.header_style)
            .field("failure", &self.failure)
            .field("deadline", &self.deadline)
            .field("shadow", &self.shadow)
            .field("storage_name", &self.storage_name)
            .finish_non_exhaustive()
    }
}

impl HttpLimiterBuilder {
    pub(crate) fn new(limiter: RateLimiter) -> Self {
        HttpLimiterBuilder {
            limiter,
            defaults: Vec::new(),
            application: Vec::new(),
            meta: Vec::new(),
            routes: Vec::new(),
            key: KeySource::peer(),
            key_prefix: String::new(),
            filters: Vec::new(),
            enabled: true,
            header_style: HeaderStyle::Off,
            retry_after: RetryAfter::Seconds,
            on_breach: None,
            rejection: RejectionBody::PlainText,
            failure: FailurePolicy::FailClosed,
            deadline: Some(Duration::from_secs(1)),
            metrics: Arc::new(NoMetrics),
            measured: false,
            storage_name: Arc::from("primary"),
            charge_unmatched: false,
            charge_options: false,
            charge_method_not_allowed: false,
            shadow: false,
        }
    }

    /// Adds default limits: they apply, one budget per route, to every route without
    /// limits of its own (Flask-Limiter's `default_limits`). Call again to add more
    /// sets.
    pub fn default_limits(mut self, limits: impl Into<Limits>) -> Self {
        self.defaults.push(limits.into());
        self
    }

    /// Adds application limits: one budget shared by all routes (Flask-Limiter's
    /// `application_limits`). Only [`Route::exempt`] escapes them.
    pub fn application_limits(mut self, limits: impl Into<Limits>) -> Self {
        self.application.push(limits.into());
        self
    }

    /// Adds meta limits: limits on how often a client is rejected (Flask-Limiter's
    /// `meta_limits`). Every rejection counts one against them; while they are
    /// exhausted, every request of that client is rejected, exempt routes excepted.
    ///
    /// ```
    /// use limiter_http::HttpLimiter;
    /// use limiter_core::RateLimiter;
    /// use limiter_memory::MemoryStorage;
    /// use std::sync::Arc;
    ///
    /// // A client rejected 5 times within an hour is shut out for the rest of it.
    /// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
    ///     .default_limits("10 per minute")
    ///     .meta_limits("5 per hour")
    ///     .build()?;
    /// # Ok::<(), limiter_http::BuildError>(())
    /// ```
    pub fn meta_limits(mut self, limits: impl Into<Limits>) -> Self {
        self.meta.push(limits.into());
        self
    }

    /// Configures the route `pattern`: as axum writes it (`/users/{id}`, matched
    /// through `MatchedPath`), or the exact request path for adapters that know no
    /// patterns. A second call for one pattern replaces the first.
    pub fn route(mut self, pattern: impl Into<String>, route: Route) -> Self {
        self.routes.push((pattern.into(), route));
        self
    }

    /// Where the limit sets without a key source of their own find the client.
    /// Default: [`KeySource::peer`], the socket peer's address.
    pub fn key(mut self, key: KeySource) -> Self {
        self.key = key;
        self
    }

    /// A first identifier in every key, so that several applications or limiters can
    /// share one storage without sharing budgets. Default: none.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Exempts every request for which `f` is true (Flask-Limiter's
    /// `request_filter`), such as an allow-list of addresses.
    pub fn request_filter<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestInfo<'_>) -> bool + Send + Sync + 'static,
    {
        self.filters.push(Arc::new(f));
        self
    }

    /// Whether requests that match no route are charged. Default: `false`: as in
    /// Flask-Limiter, a request the router answers with 404 (axum's fallback, which
    /// `Router::layer` also wraps) counts against nothing and gets no headers.
    ///
    /// With `true`, such requests count against the application and default limits
    /// in one budget per client, whatever their path, to slow down scanners. The raw
    /// path never becomes part of a stored key either way: a client could send any
    /// number of distinct ones.
    ///
    /// A request matches a route when the adapter reports the pattern it matched
    /// ([`RequestInfo::with_route`]; the tower layer reads axum's `MatchedPath`), or
    /// when its path is exactly a pattern given to [`route`](Self::route). Behind a
    /// tower stack without a router (plain hyper, say), every other request is
    /// unmatched: set this to `true` there to limit them.
    ///
    /// ```
    /// use limiter_http::{HttpLimiter, RequestInfo};
    /// use limiter_core::RateLimiter;
    /// use limiter_memory::MemoryStorage;
    /// use std::sync::Arc;
    /// use http::HeaderMap;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
    ///     .default_limits("1 per minute")
    ///     .charge_unmatched(true)
    ///     .build()?;
    /// let headers = HeaderMap::new();
    /// let peer = "192.0.2.1:1".parse()?;
    /// let probe = |path| RequestInfo::new("GET", path, &headers).with_peer(peer);
    /// assert!(limiter.check(&probe("/.env")).await.is_ok());
    /// // Another path, the same budget.
    /// assert!(limiter.check(&probe("/wp-admin")).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn charge_unmatched(mut self, charge: bool) -> Self {
        self.charge_unmatched = charge;
        self
    }

    /// Whether `OPTIONS` requests are charged. Default: `false`: browsers send CORS
    /// preflights that the application never sees as requests (Flask answers
    /// `OPTIONS` itself, and Flask-Limiter does not count it), so a preflight must not
    /// spend the budget of the request it announces. With `true`, an `OPTIONS` that
    /// the router answers `405` is still given back unless
    /// [`charge_method_not_allowed`](Self::charge_method_not_allowed) is `true` too.
    pub fn charge_options(mut self, charge: bool) -> Self {
        self.charge_options = charge;
        self
    }

    /// Whether requests answered `405 Method Not Allowed` stay charged. Default:
    /// `false`: as in Flask-Limiter, where the router rejects them before any limit
    /// is looked at. The router answers them after the limiter let the request
    /// through (axum wraps a route's 405 answer in the route's layers), so the
    /// limiter gives back what such a request counted when it sees the 405, and
    /// sends no rate-limit headers with it. Until then, concurrent requests see the
    /// units taken: a refund can reject another request early, never admit one too
    /// many.
    pub fn charge_method_not_allowed(mut self, charge: bool) -> Self {
        self.charge_method_not_allowed = charge;
        self
    }

    /// Whether the limiter starts enabled. Default: `true`. See also
    /// [`HttpLimiter::set_enabled`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Which rate-limit headers to send. Default: [`HeaderStyle::Off`].
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.header_style = style;
        self
    }

    /// The format of `Retry-After` on 429 responses. Default: [`RetryAfter::Seconds`].
    pub fn retry_after(mut self, format: RetryAfter) -> Self {
        self.retry_after = format;
        self
    }

    /// Called on every rejection with the decision and the request, before the 429
    /// response is built.
    pub fn on_breach<F>(mut self, f: F) -> Self
    where
        F: Fn(&Decision, &RequestInfo<'_>) + Send + Sync + 'static,
    {
        self.on_breach = Some(Arc::new(f));
        self
    }

    /// The body of 429 responses. Default: [`RejectionBody::PlainText`].
    pub fn rejection_body(mut self, rejection: RejectionBody) -> Self {
        self.rejection = rejection;
        self
    }

    /// What to do when the storage fails or misses the deadline. Default:
    /// [`FailurePolicy::FailClosed`].
    pub fn on_storage_failure(mut self, policy: FailurePolicy) -> Self {
        self.failure = policy;
        self
    }

    /// How long one request may wait for the storage before the failure policy
    /// applies; `None` waits as long as the storage takes. Default: 1 second. Needs a
    /// tokio runtime with the time driver; without one, no deadline applies.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Shadow mode for the whole limiter: every request is planned, decided and
    /// counted exactly as when enforcing, but none is rejected. A request that would
    /// have been answered 429 (or 503, when the storage fails and the policy is to fail
    /// closed) reaches its handler without rate-limit headers; the
    /// [`Metrics::shadow_rejected`] hook and a `tracing` warning report it. Default:
    /// `false`.
    ///
    /// Since the stored counts are the same as when enforcing (a would-be rejection
    /// counts nothing, except against the meta limits, as an enforced one), turning
    /// shadow mode off enforces from the current state. For single limit sets, see
    /// [`Limits::shadow`].
    ///
    /// ```
    /// use limiter_http::{CountingMetrics, HttpLimiter, RequestInfo};
    /// use limiter_core::RateLimiter;
    /// use limiter_memory::MemoryStorage;
    /// use std::sync::Arc;
    /// use http::HeaderMap;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let metrics = Arc::new(CountingMetrics::default());
    /// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
    ///     .default_limits("1 per minute")
    ///     .shadow(true)
    ///     .metrics(metrics.clone())
    ///     .build()?;
    /// let headers = HeaderMap::new();
    /// let request = RequestInfo::new("GET", "/", &headers)
    ///     .with_route("/")
    ///     .with_peer("192.0.2.1:1".parse()?);
    /// assert!(limiter.check(&request).await.is_ok());
    /// assert!(limiter.check(&request).await.is_ok()); // would have been a 429
    /// assert_eq!(metrics.shadow_rejected_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }

    /// Where to report events. Default: nowhere (and then no route name is kept
    /// and no decision is timed).
    pub fn metrics(mut self, metrics: impl Metrics) -> Self {
        self.metrics = Arc::new(metrics);
        self.measured = true;
        self
    }

    /// The name of the primary storage in metrics labels ([`Labels::storage`](crate::Labels)),
    /// such as `"redis"` or `"memory"`. Default: `"primary"`. Decisions of the
    /// in-memory fallback are labelled `"fallback"` whatever this is.
    pub fn storage_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.storage_name = name.into();
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    ///
    /// [`BuildError::Limit`] for a malformed limit string, [`BuildError::Invalid`] for
    /// a cost of 0, an empty limit list, an invalid key option, a shared scope that
    /// is empty, or a per-request deadline of zero.
    pub fn build(self) -> Result<HttpLimiter, BuildError> {
        let HttpLimiterBuilder {
            limiter,
            defaults,
            application,
            meta,
            routes,
            key,
            key_prefix,
            filters,
            enabled,
            header_style,
            retry_after,
            on_breach,
            rejection,
            failure,
            deadline,
            metrics,
            measured,
            storage_name,
            charge_unmatched,
            charge_options,
            charge_method_not_allowed,
            shadow,
        } = self;
        let invalid = |context: &str, message: String| BuildError::Invalid {
            context: context.to_owned(),
            message,
        };
        key.validate().map_err(|m| invalid("key source", m))?;
        if deadline == Some(Duration::ZERO) {
            return Err(invalid(
                "deadline",
                "a deadline of zero fails every request".into(),
            ));
        }
        let defaults = compile_all(defaults, &key, Scope::Route, "default limits")?;
        let application = compile_all(application, &key, Scope::Application, "application limits")?;
        let meta = compile_all(meta, &key, Scope::Meta, "meta limits")?;
        let mut table = HashMap::with_capacity(routes.len());
        for (pattern, route) in routes {
            let context = format!("route {pattern:?}");
            let compiled = compile_route(route, &key, &context)?;
            table.insert(pattern, compiled);
        }
        let failure =
            Failure::new(failure, &limiter).map_err(|m| invalid("storage failure policy", m))?;
        Ok(HttpLimiter::from_inner(Inner {
            limiter,
            defaults,
            application,
            meta,
            routes: table,
            key,
            key_prefix: (!key_prefix.is_empty()).then_some(key_prefix),
            filters,
            enabled: enabled.into(),
            header_style,
            retry_after,
            on_breach,
            rejection,
            failure,
            deadline,
            metrics,
            measured,
            storage_name,
            inflight: Default::default(),
            charge_unmatched,
            charge_options,
            charge_method_not_allowed,
            shadow,
        }))
    }
}

impl From<&str> for Limits {
    fn from(text: &str) -> Limits {
        Limits::new(text)
    }
}

/// A route rule, its limits parsed.
pub(crate) fn compile_route(
    route: Route,
    default_key: &KeySource,
    context: &str,
) -> Result<CompiledRoute, BuildError> {
    Ok(CompiledRoute {
        sets: compile_all(route.limits, default_key, Scope::Route, context)?,
        keep_defaults: route.keep_defaults,
        exempt: route.exempt,
    })
}

fn compile_all(
    all: Vec<Limits>,
    default_key: &KeySource,
    scope: Scope,
    context: &str,
) -> Result<Vec<Set>, BuildError> {
    all.into_iter()
        .map(|limits| compile(limits, default_key, scope.clone(), context))
        .collect()
}

fn compile(
    limits: Limits,
    default_key: &KeySource,
    scope: Scope,
    context: &str,
) -> Result<Set, BuildError> {
    let invalid = |message: String| BuildError::Invalid {
        context: context.to_owned(),
        message,
    };
    let set_limits = match limits.source {
        Source::Text(text) => {
            let parsed = limiter_core::parse_many(&text).map_err(|source| BuildError::Limit {
                context: context.to_owned(),
                source,
            })?;
            SetLimits::Static(parsed.into())
        }
        Source::Parsed(parsed) => SetLimits::Static(parsed),
        Source::Dynamic(f) => SetLimits::Dynamic(f),
    };
    if let SetLimits::Static(list) = &set_limits {
        if list.is_empty() {
            return Err(invalid("no limits given".into()));
        }
    }
    if let Cost::Fixed(0) = limits.cost {
        return Err(invalid("a request costs at least 1".into()));
    }
    let key = limits.key.unwrap_or_else(|| default_key.clone());
    key.validate().map_err(invalid)?;
    let scope = match limits.shared {
        Some(name) if name.is_empty() => return Err(invalid("empty shared scope".into())),
        Some(_) if scope == Scope::Meta => {
            return Err(invalid("meta limits cannot be shared".into()))
        }
        Some(name) => Scope::Shared(format!("~shared:{name}")),
        None => scope,
    };
    Ok(Set {
        limits: set_limits,
        key,
        scope,
        per_method: limits.per_method,
        methods: limits.methods,
        cost: limits.cost,
        exempt_when: limits.exempt_when,
        deduct_when: limits.deduct_when,
        shadow: limits.shadow,
    })
}
