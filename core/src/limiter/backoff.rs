//! Randomised exponential back-off for the compare-and-set loop, in scheduler turns.
//!
//! The core depends on no async runtime, so it cannot sleep. It yields instead: each
//! yield puts the task at the back of the runtime's queue, which gives the writers that
//! won the race time to finish. Drawing the number of yields at random from a range that
//! doubles with each loss ("full jitter") spreads a burst of writers on one hot key over
//! time, so that few of them collide twice.

use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The largest number of yields one back-off step may draw, as a power of two.
const MAX_EXPONENT: u32 = 8;

/// The back-off of one decision.
#[derive(Debug)]
pub(crate) struct Backoff {
    losses: u32,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { losses: 0 }
    }

    /// Waits after one more lost race: a random number of yields in `[1, 2^losses]`.
    pub(crate) async fn wait(&mut self) {
        self.losses = self.losses.saturating_add(1);
        let range = 1u64 << self.losses.min(MAX_EXPONENT);
        let turns = 1 + random() % range;
        for _ in 0..turns {
            YieldNow(false).await;
        }
    }
}

/// A pseudo-random number from a per-thread xorshift generator, seeded at random.
fn random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0x5EED_u64) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
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

    #[test]
    fn waits_complete_and_randoms_vary() {
        let mut backoff = Backoff::new();
        for _ in 0..12 {
            futures::executor::block_on(backoff.wait());
        }
        assert_eq!(backoff.losses, 12);
        let draws: std::collections::HashSet<u64> = (0..32).map(|_| random()).collect();
        assert!(draws.len() > 30, "{draws:?}");
    }
}
