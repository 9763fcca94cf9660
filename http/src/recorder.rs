//! [`RecorderMetrics`]: the [`Metrics`] hook on the `metrics` crate (feature
//! `metrics`).

use std::time::Duration;

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use limiter_core::Storage;
use limiter_memory::MemoryStorage;

use crate::limiter::HttpLimiter;
use crate::metrics::{Event, Labels, Metrics};

/// [`Metrics`] reported to the recorder of the [`metrics`] crate: whichever exporter
/// the application installed (Prometheus, OpenTelemetry, StatsD…). Names follow the
/// Prometheus and OpenTelemetry conventions (`_total` for counters, base units,
/// `_seconds`); `route`, `limit` and `storage` are the [`Labels`] of each event, as
/// text (`route` is empty for requests that matched no route, `limit` for events
/// without a decision, such as storage errors).
///
/// | name | kind | labels | what |
/// |---|---|---|---|
/// | `limiter_requests_allowed_total` | counter | `route`, `limit`, `storage` | requests let through (`limit`: the one the headers speak for) |
/// | `limiter_requests_rejected_total` | counter | `route`, `limit`, `storage` | requests rejected with 429 |
/// | `limiter_requests_shadow_rejected_total` | counter | `route`, `limit`, `storage` | requests let through in shadow mode that would have been rejected |
/// | `limiter_storage_errors_total` | counter | `route`, `limit`, `storage` | storage failures and missed deadlines |
/// | `limiter_decision_duration_seconds` | histogram | `route`, `storage` | time to decide a request, storage round trips included |
/// | `limiter_fallback_active` | gauge | | 1 while the in-memory fallback decides, else 0 |
/// | `limiter_circuit_breaker_open` | gauge | `storage` | 1 while the primary storage's circuit breaker is open, else 0 ([`observe`](Self::observe)) |
/// | `limiter_memory_keys` | gauge | `storage` | keys an in-memory storage holds ([`observe_memory`](Self::observe_memory)) |
/// | `limiter_memory_bytes` | gauge | `storage` | bytes an in-memory storage counts ([`observe_memory`](Self::observe_memory)) |
///
/// The counters and the histogram are recorded as events happen; the gauges of
/// state that changes without an event (the breaker, the in-memory storage's size)
/// are set by [`observe`](Self::observe) and
/// [`observe_memory`](Self::observe_memory): call them before each scrape, or on a
/// timer. Each event formats its labels and looks them up in the recorder: a few
/// hundred nanoseconds, which the `metrics` crate's design implies.
///
/// ```
/// use limiter_http::{HttpLimiter, RecorderMetrics};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use std::sync::Arc;
///
/// // Install an exporter first (`metrics_exporter_prometheus`, say); without one,
/// // every event is dropped.
/// let metrics = RecorderMetrics::new();
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("10 per second")
///     .storage_name("memory")
///     .metrics(metrics.clone())
///     .build()?;
/// // Before each scrape:
/// metrics.observe(&limiter);
/// # Ok::<(), limiter_http::BuildError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RecorderMetrics {
    _private: (),
}

impl RecorderMetrics {
    /// Requests let through: a counter.
    pub const ALLOWED: &'static str = "limiter_requests_allowed_total";
    /// Requests rejected with 429: a counter.
    pub const REJECTED: &'static str = "limiter_requests_rejected_total";
    /// Requests let through in shadow mode that would have been rejected: a counter.
    pub const SHADOW_REJECTED: &'static str = "limiter_requests_shadow_rejected_total";
    /// Storage failures and missed deadlines: a counter.
    pub const STORAGE_ERRORS: &'static str = "limiter_storage_errors_total";
    /// Time to decide a request, in seconds: a histogram.
    pub const DECISION_DURATION: &'static str = "limiter_decision_duration_seconds";
    /// Whether the in-memory fallback decides (1) or not (0): a gauge.
    pub const FALLBACK_ACTIVE: &'static str = "limiter_fallback_active";
    /// Whether the primary storage's circuit breaker is open (1) or not (0): a gauge.
    pub const BREAKER_OPEN: &'static str = "limiter_circuit_breaker_open";
    /// Keys an in-memory storage holds: a gauge.
    pub const MEMORY_KEYS: &'static str = "limiter_memory_keys";
    /// Bytes an in-memory storage counts against its bound: a gauge.
    pub const MEMORY_BYTES: &'static str = "limiter_memory_bytes";

    /// Metrics on the current recorder. Describes every metric to it (units and
    /// help texts), so install the exporter first.
    pub fn new() -> RecorderMetrics {
        describe_counter!(
            Self::ALLOWED,
            Unit::Count,
            "Requests the rate limiter let through."
        );
        describe_counter!(
            Self::REJECTED,
            Unit::Count,
            "Requests the rate limiter rejected (429)."
        );
        describe_counter!(
            Self::SHADOW_REJECTED,
            Unit::Count,
            "Requests let through in shadow mode that would have been rejected."
        );
        describe_counter!(
            Self::STORAGE_ERRORS,
            Unit::Count,
            "Rate-limiter storage failures and missed deadlines."
        );
        describe_histogram!(
            Self::DECISION_DURATION,
            Unit::Seconds,
            "Time the rate limiter took to decide a request."
        );
        describe_gauge!(
            Self::FALLBACK_ACTIVE,
            "1 while the rate limiter decides in memory because its storage is down."
        );
        describe_gauge!(
            Self::BREAKER_OPEN,
            "1 while the circuit breaker of the rate limiter's storage is open."
        );
        describe_gauge!(
            Self::MEMORY_KEYS,
            Unit::Count,
            "Keys an in-memory rate-limit storage holds."
        );
        describe_gauge!(
            Self::MEMORY_BYTES,
            Unit::Bytes,
            "Bytes an in-memory rate-limit storage counts against its bound."
        );
        RecorderMetrics { _private: () }
    }

    /// Sets the gauges of `limiter`'s state: whether its in-memory fallback decides,
    /// and whether its primary storage's circuit breaker (the
    /// [`RateLimiter`](limiter_core::RateLimiter)'s own, or one the storage was
    /// wrapped in) is open, under the label `storage` =
    /// [`storage_name`](crate::HttpLimiterBuilder::storage_name). Two atomic loads
    /// and two gauge updates.
    pub fn observe(&self, limiter: &HttpLimiter) {
        gauge!(Self::FALLBACK_ACTIVE).set(f64::from(u8::from(limiter.fallback_active())));
        let storage: &dyn Storage = &**limiter.limiter().storage();
        if let Some(breaker) = storage.abilities().get_breaker() {
            let name = limiter.storage_name().to_owned();
            gauge!(Self::BREAKER_OPEN, "storage" => name)
                .set(f64::from(u8::from(breaker.is_open())));
        }
    }

    /// Sets the gauges of an in-memory storage's size, labelled `storage` = `name`:
    /// [`MemoryStorage::len`] and [`MemoryStorage::bytes`] (one atomic load each in a
    /// bounded storage, the default).
    pub fn observe_memory(&self, storage: &MemoryStorage, name: &str) {
        #[allow(clippy::cast_precision_loss)] // a gauge: approximate past 2^53
        let (keys, bytes) = (storage.len() as f64, storage.bytes() as f64);
        gauge!(Self::MEMORY_KEYS, "storage" => name.to_owned()).set(keys);
        gauge!(Self::MEMORY_BYTES, "storage" => name.to_owned()).set(bytes);
    }
}

/// The label values of `labels`, owned, as the `metrics` macros take them.
fn values(labels: &Labels<'_>) -> [(&'static str, String); 3] {
    [
        ("route", labels.route.unwrap_or_default().to_owned()),
        (
            "limit",
            labels.limit.map(ToString::to_string).unwrap_or_default(),
        ),
        ("storage", labels.storage.to_owned()),
    ]
}

impl Metrics for RecorderMetrics {
    fn record(&self, event: Event, labels: &Labels<'_>) {
        let name = match event {
            Event::Allowed => Self::ALLOWED,
            Event::Limited => Self::REJECTED,
            Event::ShadowRejected => Self::SHADOW_REJECTED,
            Event::StorageError => Self::STORAGE_ERRORS,
        };
        counter!(name, &values(labels)).increment(1);
    }

    fn decision_time(&self, labels: &Labels<'_>, elapsed: Duration) {
        let route = labels.route.unwrap_or_default().to_owned();
        let storage = labels.storage.to_owned();
        histogram!(Self::DECISION_DURATION, "route" => route, "storage" => storage)
            .record(elapsed.as_secs_f64());
    }

    fn fallback(&self, active: bool) {
        gauge!(Self::FALLBACK_ACTIVE).set(f64::from(u8::from(active)));
    }
}
