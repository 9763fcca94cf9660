//! Waiting for a permit: [`RateLimiter::until_ready`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::backoff;
use super::RateLimiter;
use crate::decision::{Decision, Retry};
use crate::error::Error;
use crate::key::Key;
use crate::limit::RateLimit;
use crate::storage::Sleep;

/// A limiter's own timer ([`RateLimiterBuilder::timer`](crate::RateLimiterBuilder::timer)).
#[derive(Clone)]
pub(crate) struct Timer(pub(crate) Arc<dyn Sleep>);

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Timer")
    }
}

impl RateLimiter {
    /// Waits until a hit of `cost` on `limit` for `key` passes, then takes it (governor's
    /// `until_ready`): for throttling your own outbound calls, such as an API client or
    /// a crawler. On a network storage every process waiting on the same key shares
    /// one limit, so this throttles a whole fleet.
    ///
    /// It hits; on a rejection it sleeps for the decision's
    /// [`retry_after`](Decision::retry_after) plus a random jitter (up to a tenth of
    /// the wait, at most 50 ms, so that many waiters do not wake together) and tries
    /// again. It returns the allowed decision, or, without waiting, the rejection when
    /// the hit can never pass ([`Retry::Never`]) or when the next wait would take the
    /// total past `max_wait`.
    ///
    /// The timer is the limiter's own ([`timer`](crate::RateLimiterBuilder::timer)) or
    /// the storage's [`Sleep`] ability.
    ///
    /// ```
    /// use limiter_core::storage::{BoxFuture, Sleep};
    /// use limiter_core::{Key, RateLimit, RateLimiter};
    /// # use limiter_core::doc_support::TinyStorage;
    /// use std::{sync::Arc, time::{Duration, Instant}};
    ///
    /// /// Sleeps on a thread: for illustration; use your runtime's timer.
    /// struct ThreadTimer;
    /// impl Sleep for ThreadTimer {
    ///     fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
    ///         Box::pin(async move { std::thread::sleep(duration) })
    ///     }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
    ///     .timer(ThreadTimer)
    ///     .build();
    /// let limit: RateLimit = "10 per second".parse()?;
    /// let start = Instant::now();
    /// for _ in 0..11 {
    ///     let d = limiter.until_ready(&limit, &Key::from("crawler"), 1, Duration::from_secs(5)).await?;
    ///     assert!(d.is_allowed());
    /// }
    /// // The eleventh call waited for the next window.
    /// assert!(start.elapsed() >= Duration::from_millis(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it sleeps consumes nothing. Dropping it while a hit is
    /// in flight on a network storage may or may not have counted that hit, as with
    /// [`hit`](Self::hit).
    ///
    /// # Errors
    ///
    /// As [`hit`](Self::hit); [`Error::NoTimer`] when it has to wait and no timer is
    /// set.
    pub async fn until_ready(
        &self,
        limit: &RateLimit,
        key: &Key,
        cost: u64,
        max_wait: Duration,
    ) -> Result<Decision, Error> {
        let timer: Option<&dyn Sleep> = match &self.inner.timer {
            Some(timer) => Some(&*timer.0),
            None => self.inner.storage.abilities().get_sleep(),
        };
        let mut waited = Duration::ZERO;
        loop {
            let decision = self.hit(limit, key, cost).await?;
            let Some(Retry::After(wait)) = decision.retry() else {
                // Allowed, or never.
                return Ok(decision);
            };
            let pause = wait + jitter(wait);
            if waited + pause > max_wait {
                return Ok(decision);
            }
            let Some(timer) = timer else {
                return Err(Error::NoTimer);
            };
            timer.sleep(pause).await;
            waited += pause;
        }
    }
}

/// A random extra wait: up to a tenth of `wait`, at most 50 ms.
fn jitter(wait: Duration) -> Duration {
    let most = (wait / 10).min(Duration::from_millis(50));
    let micros = u64::try_from(most.as_micros()).unwrap_or(u64::MAX);
    if micros == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(backoff::random() % (micros + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth_and_fifty_milliseconds() {
        for wait in [0, 1, 9, 100, 1_000, 60_000] {
            let wait = Duration::from_millis(wait);
            for _ in 0..100 {
                let j = jitter(wait);
                assert!(
                    j <= wait / 10 && j <= Duration::from_millis(50),
                    "{wait:?}: {j:?}"
                );
            }
        }
        let draws: std::collections::HashSet<_> =
            (0..50).map(|_| jitter(Duration::from_secs(1))).collect();
        assert!(draws.len() > 10, "jitter does not vary: {draws:?}");
    }
}
