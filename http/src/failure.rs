//! What happens when the storage fails: fail closed, fail open, or an in-memory
//! fallback that probes the primary with exponential back-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use limiter_core::RateLimiter;
use limiter_memory::MemoryStorage;

/// What the limiter does when its storage returns an error or misses the per-request
/// deadline ([`HttpLimiterBuilder::deadline`](crate::HttpLimiterBuilder::deadline)).
/// Never a hang (with a deadline), never a panic, never a 500 by accident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Answer `503 Service Unavailable` with a plain-text body saying the rate
    /// limiter's storage is unavailable (the default).
    #[default]
    FailClosed,
    /// Let the request through without limits, and log a warning (Flask-Limiter's
    /// `swallow_errors`).
    FailOpen,
    /// Decide on an in-memory storage, with the same strategy, clock and limits, while
    /// the primary is down (Flask-Limiter's `in_memory_fallback_enabled`). The
    /// primary is probed with [`Storage::check`](limiter_core::Storage::check), first
    /// `first_probe` after it failed, then at doubling intervals up to `max_probe`;
    /// when a probe succeeds, decisions go back to it. Counts made on the fallback
    /// stay there: they do not carry over in either direction.
    Fallback {
        /// The wait before the first probe.
        first_probe: Duration,
        /// The longest wait between probes.
        max_probe: Duration,
    },
}

impl FailurePolicy {
    /// [`Fallback`](Self::Fallback) probing after 1 s, then 2, 4, … up to 32 s, as
    /// Flask-Limiter does.
    pub const fn fallback() -> FailurePolicy {
        FailurePolicy::Fallback {
            first_probe: Duration::from_secs(1),
            max_probe: Duration::from_secs(32),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Failure {
    Closed,
    Open,
    Fallback(Arc<Fallback>),
}

impl Failure {
    pub(crate) fn new(policy: FailurePolicy, primary: &RateLimiter) -> Result<Failure, String> {
        Ok(match policy {
            FailurePolicy::FailClosed => Failure::Closed,
            FailurePolicy::FailOpen => Failure::Open,
            FailurePolicy::Fallback {
                first_probe,
                max_probe,
            } => {
                if first_probe.is_zero() || max_probe < first_probe {
                    return Err(format!(
                        "probe intervals must satisfy 0 < first ({first_probe:?}) <= max ({max_probe:?})"
                    ));
                }
                let memory = RateLimiter::builder(Arc::new(MemoryStorage::new()))
                    .strategy_arc(primary.strategy().clone())
                    .clock_arc_from(primary)
                    .namespace(primary.namespace())
                    .build();
                Failure::Fallback(Arc::new(Fallback {
                    memory,
                    active: AtomicBool::new(false),
                    probing: AtomicBool::new(false),
                    state: Mutex::new(Backoff {
                        failures: 0,
                        next_probe: Instant::now(),
                    }),
                    first_probe,
                    max_probe,
                }))
            }
        })
    }
}

/// Copies the clock of another limiter: the core's builder takes clocks by value, so
/// a shared one goes through a small forwarding clock.
trait ClockFrom {
    fn clock_arc_from(self, other: &RateLimiter) -> Self;
}

impl ClockFrom for limiter_core::RateLimiterBuilder {
    fn clock_arc_from(self, other: &RateLimiter) -> Self {
        self.clock(SharedClock(other.clock().clone()))
    }
}

#[derive(Debug)]
struct SharedClock(Arc<dyn limiter_core::Clock>);

impl limiter_core::Clock for SharedClock {
    fn now(&self) -> limiter_core::Timestamp {
        self.0.now()
    }
}

#[derive(Debug)]
pub(crate) struct Fallback {
    pub(crate) memory: RateLimiter,
    active: AtomicBool,
    probing: AtomicBool,
    state: Mutex<Backoff>,
    first_probe: Duration,
    max_probe: Duration,
}

#[derive(Debug)]
struct Backoff {
    failures: u32,
    next_probe: Instant,
}

impl Fallback {
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Switches to the fallback; `true` if it was not on already.
    pub(crate) fn activate(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let was_active = self.active.swap(true, Ordering::AcqRel);
        if !was_active {
            state.failures = 0;
            state.next_probe = Instant::now() + self.first_probe;
        }
        !was_active
    }

    /// Whether this caller should probe the primary now; if so it holds the probe
    /// until the returned guard reports the result or is dropped.
    pub(crate) fn probe_due(self: &Arc<Self>) -> Option<ProbeGuard> {
        let due = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            Instant::now() >= state.next_probe
        };
        if due && !self.probing.swap(true, Ordering::AcqRel) {
            Some(ProbeGuard {
                fallback: self.clone(),
            })
        } else {
            None
        }
    }

    fn record_probe(&self, ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            state.failures = 0;
            self.active.store(false, Ordering::Release);
        } else {
            state.failures = state.failures.saturating_add(1);
            let wait = self
                .first_probe
                .saturating_mul(1u32 << state.failures.min(16))
                .min(self.max_probe);
            state.next_probe = Instant::now() + wait;
        }
    }
}

/// One probe of the primary storage in progress.
pub(crate) struct ProbeGuard {
    fallback: Arc<Fallback>,
}

impl ProbeGuard {
    pub(crate) fn finish(self, ok: bool) {
        self.fallback.record_probe(ok);
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        self.fallback.probing.store(false, Ordering::Release);
    }
}
