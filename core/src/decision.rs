//! What a limiter call answers.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::limit::RateLimit;
use crate::strategy::Verdict;

/// The answer to a hit or a test: allowed or not, and the numbers an HTTP layer turns
/// into `X-RateLimit-*` and `Retry-After` headers.
///
/// A rejection is a `Decision`, not an error.
#[must_use = "a decision says whether the hit passed"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    limit: RateLimit,
    cost: u64,
    remaining: u64,
    reset_at: Timestamp,
    retry_at: Option<Timestamp>,
    now: Timestamp,
}

impl Decision {
    pub(crate) fn new(limit: RateLimit, cost: u64, verdict: Verdict, now: Timestamp) -> Decision {
        Decision {
            allowed: verdict.allowed,
            limit,
            cost,
            remaining: verdict.remaining,
            reset_at: verdict.reset_at,
            retry_at: if verdict.allowed {
                None
            } else {
                verdict.retry_at
            },
            now,
        }
    }

    /// Whether the hit passed (for a test: would pass).
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The limit that decided: the one that rejected, or, when all passed, the one with
    /// the fewest units left.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// The cost of the hit.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Units of [`limit`](Self::limit) still available after this decision. For a
    /// test, which consumes nothing, the units available now.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// When the limit's full amount is available again if no more hits come
    /// ([`Timestamp::to_system_time`] converts it).
    pub fn reset_at(&self) -> Timestamp {
        self.reset_at
    }

    /// The time from the decision to [`reset_at`](Self::reset_at).
    pub fn reset_after(&self) -> Duration {
        self.reset_at.saturating_since(self.now)
    }

    /// For a rejected hit that can pass later, how long to wait before the same hit
    /// passes (if nothing else consumes meanwhile). `None` when the hit was allowed, or
    /// when it can never pass (exactly when [`can_ever_pass`](Self::can_ever_pass) is
    /// `false`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_at.map(|at| at.saturating_since(self.now))
    }

    /// `false` when the hit is rejected whatever happens: its cost exceeds the limit's
    /// amount, or it was rejected and the earliest instant it could pass lies past
    /// [`Timestamp::MAX`], where time stands still (within one window of the end of
    /// the time domain). For a rejected hit it is `true` exactly when
    /// [`retry_after`](Self::retry_after) is `Some`.
    pub fn can_ever_pass(&self) -> bool {
        self.cost <= self.limit.amount() && (self.allowed || self.retry_at.is_some())
    }

    /// The limiter's time when it decided.
    pub fn decided_at(&self) -> Timestamp {
        self.now
    }
}

/// The state of one limit for one key, without consuming anything.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    /// Units available now.
    pub remaining: u64,
    /// When the full amount is available again if no more hits come (the current time
    /// when nothing is counted).
    pub reset_at: Timestamp,
    /// The limiter's time when the stats were read.
    pub now: Timestamp,
}

impl WindowStats {
    /// The time from now to [`reset_at`](Self::reset_at).
    pub fn reset_after(&self) -> Duration {
        self.reset_at.saturating_since(self.now)
    }
}
