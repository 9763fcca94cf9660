//! Randomised exponential back-off for the compare-and-set loop.
//!
//! The core depends on no async runtime, so by itself it cannot sleep. It yields
//! instead: each yield puts the task at the back of the runtime's queue, which gives the
//! writers that won the race time to finish. Drawing the number of yields at random from
//! a range that doubles with each loss ("full jitter") spreads a burst of writers on one
//! hot key over time, so that few of them collide twice.
//!
//! A storage that can sleep ([`Sleep`]) backs off in real time instead: a random wait in
//! `[0, min(16 ms, 250 µs × 2^losses)]`, within the storage's [`Sleep::budget`] in all.
//! Scheduler turns are far shorter than a network round trip, so without real sleeps
//! the losers retry before the winner's write has landed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::storage::Sleep;

/// The largest number of yields one back-off step may draw, as a power of two.
const MAX_EXPONENT: u32 = 8;

/// The first real-time back-off range, doubled after each loss.
const BASE_SLEEP: Duration = Duration::from_micros(250);

/// The largest real-time back-off range.
const MAX_SLEEP: Duration = Duration::from_millis(16);

/// The back-off of one decision.
pub(crate) struct Backoff<'a> {
    losses: u32,
    sleep: Option<&'a dyn Sleep>,
    slept: Duration,
}

impl<'a> Backoff<'a> {
    pub(crate) fn new(sleep: Option<&'a dyn Sleep>) -> Backoff<'a> {
        Backoff {
            losses: 0,
            sleep,
            slept: Duration::ZERO,
        }
    }

    /// Waits after one more lost race: a random number of yields in `[1, 2^losses]`,
    /// or a random real-time sleep. `false` when the real-time budget is spent: the
    /// caller should give up.
    pub(crate) async fn wait(&mut self) -> bool {
        self.losses = self.losses.saturating_add(1);
        if let Some(sleep) = self.sleep {
            let range = BASE_SLEEP
                .saturating_mul(1 << self.losses.min(10))
                .min(MAX_SLEEP);
            let range_us = u64::try_from(range.as_micros()).unwrap_or(u64::MAX);
            let wait = Duration::from_micros(random() % range_us.saturating_add(1));
            let budget = sleep.budget();
            if self.slept.saturating_add(wait) > budget {
                return false;
            }
            self.slept += wait;
            sleep.sleep(wait).await;
            return true;
        }
        let range = 1u64 << self.losses.min(MAX_EXPONENT);
        let turns = 1 + random() % range;
        for _ in 0..turns {
            YieldNow(false).await;
        }
        true
    }
}

/// A pseudo-random number from `fastrand`'s per-thread generator, seeded at random.
pub(crate) fn random() -> u64 {
    fastrand::u64(..)
}

/// Returns `Pending` once, waking itself, so that the runtime runs other tasks first.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BoxFuture;
    use std::sync::Mutex;

    #[test]
    fn waits_complete_and_randoms_vary() {
        let mut backoff = Backoff::new(None);
        for _ in 0..12 {
            assert!(futures::executor::block_on(backoff.wait()));
        }
        assert_eq!(backoff.losses, 12);
        let draws: std::collections::HashSet<u64> = (0..32).map(|_| random()).collect();
        assert!(draws.len() > 30, "{draws:?}");
    }

    /// Records the sleeps asked for instead of sleeping.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Duration>>);

    impl Sleep for Recorder {
        fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
            if let Ok(mut log) = self.0.lock() {
                log.push(duration);
            }
            Box::pin(async {})
        }

        fn budget(&self) -> Duration {
            Duration::from_millis(40)
        }
    }

    #[test]
    fn real_time_waits_are_jittered_growing_and_bounded_by_the_budget() {
        let recorder = Recorder::default();
        let mut backoff = Backoff::new(Some(&recorder));
        let mut steps = 0;
        while futures::executor::block_on(backoff.wait()) {
            steps += 1;
            assert!(steps < 1_000, "the budget never ran out");
        }
        let log = recorder.0.lock().expect("log").clone();
        assert_eq!(log.len(), steps);
        for (i, wait) in log.iter().enumerate() {
            let range = BASE_SLEEP
                .saturating_mul(1 << (i + 1).min(10))
                .min(MAX_SLEEP);
            assert!(*wait <= range, "step {i}: {wait:?} > {range:?}");
        }
        assert!(log.iter().sum::<Duration>() <= Duration::from_millis(40));
        let distinct: std::collections::HashSet<_> = log.iter().collect();
        assert!(distinct.len() > log.len() / 2, "{log:?}");
    }
}
