//! A custom strategy: a fixed window aligned to the calendar, so that a
//! "1000 per day" quota resets at midnight UTC for everyone rather than a day after
//! each client's first request.
//!
//! A strategy is a pure state machine over the key's stored bytes; the limiter runs it
//! on any storage through the storage's compare-and-set core, so this example needs no
//! storage-specific code.
//!
//! Run with: `cargo run -p example-custom-strategy`

use std::sync::Arc;
use std::time::Duration;

use limiter::strategy::{Op, StateError, Strategy, Transition, Verdict};
use limiter::{Key, ManualClock, MemoryStorage, RateLimit, RateLimiter, Timestamp};

/// A fixed window whose boundaries are multiples of the window length since the Unix
/// epoch: days start at 00:00 UTC, hours on the hour.
///
/// State: `[window_index, count]` as little-endian `u64`s.
#[derive(Debug, Clone, Copy)]
struct CalendarWindow;

const NAME: &str = "calendar-window";

fn decode(state: &[u8]) -> Result<(u64, u64), StateError> {
    let corrupt = StateError {
        strategy: NAME,
        reason: "expected 16 bytes",
    };
    match state {
        [] => Ok((0, 0)),
        bytes if bytes.len() == 16 => {
            let (index, count) = bytes.split_at(8);
            let word = |b: &[u8]| b.try_into().map(u64::from_le_bytes);
            Ok((
                word(index).map_err(|_| corrupt.clone())?,
                word(count).map_err(|_| corrupt.clone())?,
            ))
        }
        _ => Err(corrupt),
    }
}

impl Strategy for CalendarWindow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Transition, StateError> {
        let window = limit.window_ms();
        let index = now.as_millis() / window;
        let (stored_index, stored_count) = decode(state)?;
        let used = if stored_index == index {
            stored_count
        } else {
            0
        };
        let end = Timestamp::from_millis((index + 1).saturating_mul(window));
        let amount = limit.amount();

        let (allowed, used_after) = match op {
            Op::Hit { cost } | Op::Test { cost } => {
                let after = used.saturating_add(cost);
                if after <= amount {
                    (true, after)
                } else {
                    (false, used)
                }
            }
            Op::Refund { cost, at } if at.as_millis() / window == index => {
                (true, used.saturating_sub(cost))
            }
            Op::Refund { .. } => (true, used),
        };
        let cost_fits = op.cost() <= amount;
        let verdict = Verdict {
            allowed,
            remaining: amount
                - if matches!(op, Op::Test { .. }) {
                    used
                } else {
                    used_after
                },
            reset_at: if used_after == 0 { now } else { end },
            retry_at: (!allowed && cost_fits).then_some(end),
        };
        let changed =
            !matches!(op, Op::Test { .. }) && (used_after != used || stored_index != index);
        if !changed {
            return Ok(Transition {
                verdict,
                write: None,
            });
        }
        state.clear();
        state.extend_from_slice(&index.to_le_bytes());
        state.extend_from_slice(&used_after.to_le_bytes());
        let ttl = Duration::from_millis(end.as_millis() - now.as_millis());
        Ok(Transition {
            verdict,
            write: Some(ttl),
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 23:59:58 UTC on some day, on a manual clock so the example is repeatable.
    let day_ms = 86_400_000;
    let clock = ManualClock::new(20_000 * day_ms - 2_000);
    let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .strategy(CalendarWindow)
        .clock(clock.clone())
        .build();
    let quota: RateLimit = "3 per day".parse()?;
    let user = Key::from("user-42");

    for _ in 0..4 {
        let d = limiter.hit(&quota, &user, 1).await?;
        println!(
            "23:59:58  allowed={:<5} remaining={} retry_after={:?}",
            d.is_allowed(),
            d.remaining(),
            d.retry_after()
        );
    }
    clock.advance(Duration::from_secs(2));
    let d = limiter.hit(&quota, &user, 1).await?;
    println!(
        "00:00:00  allowed={:<5} remaining={} (a new calendar day)",
        d.is_allowed(),
        d.remaining()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quota_resets_at_the_calendar_boundary_on_any_storage() {
        let hour = 3_600_000;
        let clock = ManualClock::new(500 * hour + 1_000);
        let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
            .strategy(CalendarWindow)
            .clock(clock.clone())
            .build();
        let limit: RateLimit = "2 per hour".parse().unwrap();
        let key = Key::from("k");
        assert!(limiter.hit(&limit, &key, 2).await.unwrap().is_allowed());
        let rejected = limiter.hit(&limit, &key, 1).await.unwrap();
        assert!(!rejected.is_allowed());
        assert_eq!(
            rejected.retry_after(),
            Some(Duration::from_millis(hour - 1_000))
        );
        let too_big = limiter.hit(&limit, &key, 3).await.unwrap();
        assert_eq!(too_big.retry(), Some(limiter::Retry::Never));
        clock.set(501 * hour);
        assert!(limiter.hit(&limit, &key, 2).await.unwrap().is_allowed());
        assert_eq!(limiter.stats(&limit, &key).await.unwrap().remaining, 0);
    }
}
