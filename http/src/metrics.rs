//! A small hook for metrics.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Receives one call per event, to wire into any metrics library. Every method does
/// nothing by default.
///
/// # Examples
///
/// ```
/// use limiter_http::Metrics;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Debug, Default)]
/// struct Limited(AtomicU64);
///
/// impl Metrics for Limited {
///     fn limited(&self) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait Metrics: Send + Sync + fmt::Debug + 'static {
    /// A request passed its limits.
    fn allowed(&self) {}
    /// A request was rejected with 429.
    fn limited(&self) {}
    /// A request would have been rejected but went through: the limiter, or the
    /// limit set that would have rejected it, is in shadow mode
    /// ([`HttpLimiterBuilder::shadow`](crate::HttpLimiterBuilder::shadow),
    /// [`Limits::shadow`](crate::Limits::shadow)). Called once per such request and
    /// shadow set; [`limited`](Self::limited) is not called for it.
    fn shadow_rejected(&self) {}
    /// The storage failed or missed the deadline (each time).
    fn storage_error(&self) {}
    /// The in-memory fallback was switched on (`true`) or off (`false`).
    fn fallback(&self, active: bool) {
        let _ = active;
    }
}

/// [`Metrics`] that count in atomics: handy in tests and for a status page.
///
/// ```
/// use limiter_http::{CountingMetrics, Metrics};
///
/// let metrics = CountingMetrics::default();
/// metrics.allowed();
/// assert_eq!(metrics.allowed_count(), 1);
/// assert!(!metrics.fallback_active());
/// ```
#[derive(Debug, Default)]
pub struct CountingMetrics {
    allowed: AtomicU64,
    limited: AtomicU64,
    shadow_rejected: AtomicU64,
    storage_errors: AtomicU64,
    fallback: AtomicBool,
}

impl CountingMetrics {
    /// Requests allowed so far.
    pub fn allowed_count(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Requests limited so far.
    pub fn limited_count(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Requests let through in shadow mode that would have been rejected, so far.
    pub fn shadow_rejected_count(&self) -> u64 {
        self.shadow_rejected.load(Ordering::Relaxed)
    }

    /// Storage errors so far.
    pub fn storage_error_count(&self) -> u64 {
        self.storage_errors.load(Ordering::Relaxed)
    }

    /// Whether the in-memory fallback is on.
    pub fn fallback_active(&self) -> bool {
        self.fallback.load(Ordering::Relaxed)
    }
}

impl Metrics for CountingMetrics {
    fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }
    fn limited(&self) {
        self.limited.fetch_add(1, Ordering::Relaxed);
    }
    fn shadow_rejected(&self) {
        self.shadow_rejected.fetch_add(1, Ordering::Relaxed);
    }
    fn storage_error(&self) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
    }
    fn fallback(&self, active: bool) {
        self.fallback.store(active, Ordering::Relaxed);
    }
}

impl<M: Metrics> Metrics for std::sync::Arc<M> {
    fn allowed(&self) {
        (**self).allowed();
    }
    fn limited(&self) {
        (**self).limited();
    }
    fn shadow_rejected(&self) {
        (**self).shadow_rejected();
    }
    fn storage_error(&self) {
        (**self).storage_error();
    }
    fn fallback(&self, active: bool) {
        (**self).fallback(active);
    }
}

/// The default: no metrics.
#[derive(Debug, Default)]
pub(crate) struct NoMetrics;

impl Metrics for NoMetrics {}
