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
    /// The decision a [`Verdict`] of `limit` makes for a hit or test of `cost` at
    /// `now`: what the [`RateLimiter`](crate::RateLimiter) answers, for limiters built
    /// beside it (such as the in-memory storage's typed one).
    pub fn new(limit: RateLimit, cost: u64, verdict: Verdict, now: Timestamp) -> Decision {
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
    /// ([`Timestamp::to_system_time`] converts it); `None` when that never happens:
    /// the window outlasts [`Timestamp::MAX`], where the limiter's time stands still.
    pub fn reset_at(&self) -> Option<Timestamp> {
        reset(self.reset_at)
    }

    /// The time from the decision to [`reset_at`](Self::reset_at); `None` for never.
    pub fn reset_after(&self) -> Option<Duration> {
        self.reset_at().map(|at| at.saturating_since(self.now))
    }

    /// `None` when the hit was allowed; for a rejected one, whether and when the same
    /// hit passes: [`Retry::After`] a wait (if nothing else consumes meanwhile), or
    /// [`Retry::Never`].
    ///
    /// ```
    /// use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, Retry};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// # futures::executor::block_on(async {
    /// let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
    ///     .clock(ManualClock::new(0))
    ///     .build();
    /// let limit: RateLimit = "2 per second".parse()?;
    /// let key = Key::from("client");
    /// assert_eq!(limiter.hit(&limit, &key, 2).await?.retry(), None);
    /// let again = limiter.hit(&limit, &key, 1).await?;
    /// assert_eq!(again.retry(), Some(Retry::After(Duration::from_secs(1))));
    /// let too_big = limiter.hit(&limit, &key, 3).await?;
    /// assert_eq!(too_big.retry(), Some(Retry::Never));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn retry(&self) -> Option<Retry> {
        if self.allowed {
            return None;
        }
        Some(match self.retry_at {
            Some(at) => Retry::After(at.saturating_since(self.now)),
            None => Retry::Never,
        })
    }

    /// The wait of [`Retry::After`]: `Some` exactly for a rejected hit that can pass
    /// later (see [`retry`](Self::retry) for the other cases).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.retry() {
            Some(Retry::After(wait)) => Some(wait),
            _ => None,
        }
    }

    /// The limiter's time when it decided.
    pub fn decided_at(&self) -> Timestamp {
        self.now
    }
}

/// Whether and when a rejected hit can pass: [`Decision::retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// The same hit passes after this long, if nothing else consumes meanwhile.
    After(Duration),
    /// The same hit never passes: its cost exceeds what the strategy ever admits at
    /// once (the limit's amount; for GCRA its burst), or the earliest
    /// instant it could pass lies past [`Timestamp::MAX`], where the limiter's time
    /// stands still.
    Never,
}

/// A strategy's reset time as the caller sees it: `None` at the end of time.
fn reset(at: Timestamp) -> Option<Timestamp> {
    (at < Timestamp::MAX).then_some(at)
}

/// The state of one limit for one key, without consuming anything.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    /// Units available now.
    pub remaining: u64,
    /// When the full amount is available again if no more hits come (the current time
    /// when nothing is counted); `None` when that never happens, as for
    /// [`Decision::reset_at`].
    pub reset_at: Option<Timestamp>,
    /// The limiter's time when the stats were read.
    pub now: Timestamp,
}

impl WindowStats {
    pub(crate) fn new(remaining: u64, reset_at: Timestamp, now: Timestamp) -> WindowStats {
        WindowStats {
            remaining,
            reset_at: reset(reset_at),
            now,
        }
    }

    /// The time from now to [`reset_at`](Self::reset_at); `None` for never.
    pub fn reset_after(&self) -> Option<Duration> {
        self.reset_at.map(|at| at.saturating_since(self.now))
    }
}
