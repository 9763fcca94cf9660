//! A small hook for metrics.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use limiter_core::RateLimit;

/// Receives one call per event, to wire into any metrics library. Every method does
/// nothing by default.
///
/// Each request's events come through [`record`](Self::record), with [`Labels`]
/// saying which route, limit and storage they concern; by default it calls the
/// label-free method of the event ([`allowed`](Self::allowed),
/// [`limited`](Self::limited)…), so implement either. The time each decision took
/// comes through [`decision_time`](Self::decision_time). With the feature `metrics`,
/// [`RecorderMetrics`](crate::RecorderMetrics) reports all of it to the `metrics`
/// crate (and so to Prometheus, OpenTelemetry, StatsD…).
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

    /// One event of a request, with its labels. By default, calls the label-free
    /// method of the event: [`allowed`](Self::allowed), [`limited`](Self::limited),
    /// [`shadow_rejected`](Self::shadow_rejected) or
    /// [`storage_error`](Self::storage_error).
    ///
    /// ```
    /// use limiter_http::{Event, Labels, Metrics};
    /// use std::sync::Mutex;
    ///
    /// #[derive(Debug, Default)]
    /// struct Rejections(Mutex<Vec<String>>);
    ///
    /// impl Metrics for Rejections {
    ///     fn record(&self, event: Event, labels: &Labels<'_>) {
    ///         if event == Event::Limited {
    ///             let route = labels.route.unwrap_or("unmatched");
    ///             let limit = labels.limit.map(|l| l.to_string()).unwrap_or_default();
    ///             self.0.lock().unwrap().push(format!("{route}: {limit}"));
    ///         }
    ///     }
    /// }
    /// ```
    fn record(&self, event: Event, labels: &Labels<'_>) {
        let _ = labels;
        match event {
            Event::Allowed => self.allowed(),
            Event::Limited => self.limited(),
            Event::ShadowRejected => self.shadow_rejected(),
            Event::StorageError => self.storage_error(),
        }
    }

    /// How long deciding a request took, from the start of
    /// [`decide`](crate::HttpLimiter::decide) to its answer: storage round trips,
    /// the failure policy and any fallback included. Called once per decided request
    /// (not for requests that no limit applies to), after its [`record`](Self::record).
    fn decision_time(&self, labels: &Labels<'_>, elapsed: Duration) {
        let _ = (labels, elapsed);
    }
}

/// The events of a request that [`Metrics::record`] receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// The request passed its limits (also when the storage failed and the policy
    /// let it through).
    Allowed,
    /// The request was rejected with 429.
    Limited,
    /// The request would have been rejected but went through, in shadow mode.
    ShadowRejected,
    /// The storage failed or missed the deadline.
    StorageError,
}

impl Event {
    /// `"allowed"`, `"limited"`, `"shadow_rejected"` or `"storage_error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Allowed => "allowed",
            Event::Limited => "limited",
            Event::ShadowRejected => "shadow_rejected",
            Event::StorageError => "storage_error",
        }
    }
}

/// What an event of [`Metrics`] concerns, borrowed for the call. Every value is
/// bounded by configuration (route patterns, configured limits, storage names),
/// except the limits a [dynamic](crate::Limits::dynamic) limit function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Labels<'a> {
    /// The route pattern the request matched (the adapter's, such as axum's
    /// `MatchedPath`, or a pattern of the route table); `None` when it matched none.
    /// Never the raw path.
    pub route: Option<&'a str>,
    /// The limit the event is about: the one that rejected (or would have, in shadow
    /// mode), or, for an allowed request, the one its rate-limit headers speak for
    /// (the fewest units left). `None` when no decision was made (a storage failure,
    /// a request let through because the storage failed).
    pub limit: Option<&'a RateLimit>,
    /// The storage that decided:
    /// [`storage_name`](crate::HttpLimiterBuilder::storage_name) (default
    /// `"primary"`), or `"fallback"` for the in-memory fallback.
    pub storage: &'a str,
}

impl<'a> Labels<'a> {
    /// Labels for an event on `storage`, with no route and no limit.
    pub fn new(storage: &'a str) -> Labels<'a> {
        Labels {
            route: None,
            limit: None,
            storage,
        }
    }

    /// With the route pattern `route`.
    #[must_use]
    pub fn with_route(mut self, route: Option<&'a str>) -> Labels<'a> {
        self.route = route;
        self
    }

    /// With the limit `limit`.
    #[must_use]
    pub fn with_limit(mut self, limit: Option<&'a RateLimit>) -> Labels<'a> {
        self.limit = limit;
        self
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
    fn record(&self, event: Event, labels: &Labels<'_>) {
        (**self).record(event, labels);
    }
    fn decision_time(&self, labels: &Labels<'_>, elapsed: Duration) {
        (**self).decision_time(labels, elapsed);
    }
}

/// The default: no metrics.
#[derive(Debug, Default)]
pub(crate) struct NoMetrics;

impl Metrics for NoMetrics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_events_reach_the_label_free_methods_by_default() {
        let metrics = std::sync::Arc::new(CountingMetrics::default());
        let limit: RateLimit = "1 per second".parse().unwrap_or_else(|e| panic!("{e}"));
        let labels = Labels::new("primary")
            .with_route(Some("/a"))
            .with_limit(Some(&limit));
        for event in [
            Event::Allowed,
            Event::Limited,
            Event::ShadowRejected,
            Event::StorageError,
            Event::Allowed,
        ] {
            metrics.record(event, &labels);
        }
        metrics.decision_time(&labels, Duration::from_millis(1));
        assert_eq!(metrics.allowed_count(), 2);
        assert_eq!(metrics.limited_count(), 1);
        assert_eq!(metrics.shadow_rejected_count(), 1);
        assert_eq!(metrics.storage_error_count(), 1);
        assert_eq!(Event::ShadowRejected.as_str(), "shadow_rejected");
    }
}
