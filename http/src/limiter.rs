//! The [`HttpLimiter`] type: its configuration, its on/off switch, and
//! [`check`](HttpLimiter::check), which runs a request's whole lifecycle before the
//! handler. Planning, deciding and settling live in their own modules.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Response;
use limiter_core::{Key, RateLimiter};

use crate::admission::Admission;
use crate::builder::{HttpLimiterBuilder, OnBreach};
use crate::failure::Failure;
use crate::headers::{HeaderStyle, RetryAfter};
use crate::key::KeySource;
use crate::metrics::Metrics;
use crate::plan::{CompiledRoute, Set};
use crate::policy::RequestPredicate;
use crate::rejection::RejectionBody;
use crate::request::RequestInfo;

/// The `storage` label of decisions of the in-memory fallback.
pub(crate) const FALLBACK_LABEL: &str = "fallback";

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
/// use limiter_http::{HttpLimiter, Limits, Route, RequestInfo};
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
/// assert!(limiter.check(&request).await.is_ok());
/// let rejected = limiter.check(&request).await.err();
/// assert!(rejected.is_some_and(|response| response.body().contains("1 per 1 day")));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpLimiter {
    pub(crate) inner: Arc<Inner>,
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
    pub(crate) rejection: RejectionBody,
    pub(crate) failure: Failure,
    pub(crate) deadline: Option<Duration>,
    pub(crate) metrics: Arc<dyn Metrics>,
    /// Whether metrics were set: only then are route names and decision times taken.
    pub(crate) measured: bool,
    /// The primary storage's name in metrics labels.
    pub(crate) storage_name: Arc<str>,
    pub(crate) inflight: Mutex<HashMap<Key, u64>>,
    pub(crate) charge_unmatched: bool,
    pub(crate) charge_options: bool,
    pub(crate) charge_method_not_allowed: bool,
    pub(crate) shadow: bool,
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
            .field("shadow", &inner.shadow)
            .finish_non_exhaustive()
    }
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

    /// The primary storage's name in metrics labels
    /// ([`HttpLimiterBuilder::storage_name`]).
    pub fn storage_name(&self) -> &str {
        &self.inner.storage_name
    }

    /// Whether the in-memory fallback decides now, because the primary storage failed
    /// ([`FailurePolicy::InMemoryFallback`](crate::FailurePolicy)).
    pub fn fallback_active(&self) -> bool {
        match &self.inner.failure {
            Failure::Fallback(fallback) => fallback.is_active(),
            _ => false,
        }
    }

    /// The `storage` label of what `limiter` decided: the primary's name, or
    /// `"fallback"`.
    pub(crate) fn storage_label(&self, limiter: &RateLimiter) -> &str {
        if Arc::ptr_eq(limiter.storage(), self.inner.limiter.storage()) {
            &self.inner.storage_name
        } else {
            FALLBACK_LABEL
        }
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
    /// [`decide`](Self::decide), then, for a rejected request, the
    /// [`rejection_response`](Self::rejection_response) to answer with (429, or 503
    /// when the storage fails and the policy is to fail closed). After the handler,
    /// hand its response to [`Admission::finish`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have counted the request.
    pub async fn check(&self, request: &RequestInfo<'_>) -> Result<Admission, Response<String>> {
        let plan = self.plan(request);
        self.decide(plan)
            .await
            .map_err(|rejected| self.rejection_response(&rejected, request))
    }
}
