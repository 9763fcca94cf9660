#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use limiter_core::strategy::{Gcra, Op, Strategy};
use limiter_core::ManualClock;

use super::*;

fn limit(text: &str) -> RateLimit {
    text.parse().unwrap()
}

fn keyed(text: &str, at: u64) -> (KeyedLimiter<str, ManualClock>, ManualClock) {
    let clock = ManualClock::new(at);
    let limiter = KeyedLimiter::new(limit(text))
        .unwrap()
        .with_clock(clock.clone());
    (limiter, clock)
}

/// Every hit and test, on random limits and at random times (forward, standing still
/// and stepping back, never before the epoch), decides as the strategy on bytes.
#[test]
fn decides_as_the_gcra_strategy() {
    let limits = [
        "1 per second",
        "2 per second",
        "3 per 7 seconds",
        "10 per minute",
        "7 per 3 minutes burst 20",
        "100 per hour burst 1",
        "1000000000 per second",
        "999983 per day",
        "5 per 250 milliseconds",
        "40 per 1 millisecond",
        "12 per year burst 30",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for text in limits {
        let limit = limit(text);
        for epoch in [0, 1_000_000, 1_780_000_000_000] {
            for _ in 0..20 {
                let (limiter, clock) = keyed(text, epoch);
                let mut state = Vec::new();
                let mut now = epoch;
                let window = limit.window_ms();
                for step in 0..200 {
                    now = match rng.u8(0..10) {
                        0..=3 => now,
                        4..=6 => now + rng.u64(0..=window / 4 + 1),
                        7 | 8 => now + rng.u64(0..=window * 2),
                        _ => now.saturating_sub(rng.u64(0..=window)).max(epoch),
                    };
                    clock.set(now);
                    let cost = match rng.u8(0..10) {
                        0 => limit.burst() + rng.u64(1..3),
                        1 => rng.u64(1..=limit.burst().min(50)),
                        _ => 1,
                    };
                    let hit = rng.u8(0..4) != 0;
                    let op = if hit {
                        Op::Hit { cost }
                    } else {
                        Op::Test { cost }
                    };
                    let at = Timestamp::from_millis(now);
                    let expected = Gcra.apply(&limit, &mut state, op, at).unwrap().verdict;
                    let decision = if hit {
                        limiter.hit("k", cost)
                    } else {
                        limiter.test("k", cost)
                    }
                    .unwrap();
                    assert_eq!(
                        decision,
                        Decision::new(limit, cost, expected, at),
                        "{text} from {epoch}, step {step}: {op:?} at {now}"
                    );
                }
            }
        }
    }
}

#[test]
fn limits_one_word_cannot_hold_are_refused() {
    // 16,777,259 is odd and not a multiple of 5: nothing to divide by.
    let error = KeyedLimiter::<str>::new(limit("16777259 per second")).unwrap_err();
    assert!(
        matches!(&error, Error::Storage(e) if e.kind() == StorageErrorKind::Unsupported),
        "{error}"
    );
    // The same amount per 1,000 ms shares factors with its window: fine.
    assert!(KeyedLimiter::<str>::new(limit("16777000 per second")).is_ok());
}

#[test]
fn zero_cost_test_and_clear() {
    let (limiter, clock) = keyed("2 per second", 5_000);
    assert!(matches!(limiter.hit("a", 0), Err(Error::ZeroCost)));
    assert!(matches!(limiter.test("a", 0), Err(Error::ZeroCost)));
    // A test stores nothing.
    assert!(limiter.test("a", 2).unwrap().is_allowed());
    assert!(limiter.is_empty());
    assert_eq!(limiter.hit("a", 2).unwrap().remaining(), 0);
    assert_eq!(limiter.len(), 1);
    assert!(!limiter.test("a", 1).unwrap().is_allowed());
    limiter.clear("a");
    assert!(limiter.is_empty());
    assert!(limiter.hit("a", 2).unwrap().is_allowed());
    clock.advance(Duration::from_millis(500));
    let decision = limiter.hit("a", 1).unwrap();
    assert!(decision.is_allowed());
    assert_eq!(decision.remaining(), 0);
    assert_eq!(decision.reset_after(), Some(Duration::from_millis(1000)));
}

/// With limit N, N + k threads hitting one key on a frozen clock admit exactly N.
#[test]
fn concurrent_hits_admit_exactly_the_limit() {
    for (text, n) in [("100 per minute", 100), ("37 per hour burst 250", 250)] {
        let (limiter, _clock) = keyed(text, 1_000);
        let limiter = Arc::new(limiter);
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..n / 4 {
                        if limiter.hit("hot", 1).unwrap().is_allowed() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), n, "{text}");
    }
}

/// A flood of distinct long keys holds no key's bytes and no more keys than the bound.
#[test]
fn a_flood_of_distinct_long_keys_is_bounded() {
    let options = MemoryOptions::new().max_keys(5_000).shards(4);
    let limiter = KeyedLimiter::<str>::with_options(limit("10 per minute"), &options)
        .unwrap()
        .with_clock(ManualClock::new(0));
    assert_eq!(limiter.max_keys(), 5_000);
    let mut key = "x".repeat(4096);
    for i in 0..50_000 {
        key.truncate(4096);
        key.push_str(&i.to_string());
        assert!(limiter.hit(&key, 1).unwrap().is_allowed());
        assert!(limiter.len() <= 5_000);
    }
    assert!(limiter.len() > 4_000, "{}", limiter.len());
    // The byte bound alone bounds keys too.
    let options = MemoryOptions::new().max_bytes(1 << 20).shards(1);
    let limiter = KeyedLimiter::<u64>::with_options(limit("10 per minute"), &options).unwrap();
    assert_eq!(limiter.max_keys(), (1 << 20) / KEYED_BYTES_PER_KEY);
    let unbounded = MemoryOptions::new().unbounded();
    let limiter = KeyedLimiter::<u64>::with_options(limit("10 per minute"), &unbounded).unwrap();
    assert_eq!(limiter.max_keys(), usize::MAX);
}

/// At the bound, keys whose bucket is full again go first, and no key still counting
/// goes while they make room.
#[test]
fn spent_keys_make_room_before_counting_ones() {
    let options = MemoryOptions::new().max_keys(100).shards(1);
    let clock = ManualClock::new(0);
    let limiter = KeyedLimiter::<u32>::with_options(limit("1 per second"), &options)
        .unwrap()
        .with_clock(clock.clone());
    for key in 0..50 {
        assert!(limiter.hit(&key, 1).unwrap().is_allowed());
    }
    clock.advance(Duration::from_millis(1000));
    // Keys 0..50 are spent now; 50..100 count.
    for key in 50..100 {
        assert!(limiter.hit(&key, 1).unwrap().is_allowed());
    }
    assert_eq!(limiter.len(), 100);
    // The 101st key drops the 50 spent ones and nothing else.
    assert!(limiter.hit(&100, 1).unwrap().is_allowed());
    assert_eq!(limiter.len(), 51);
    for key in 50..=100 {
        assert!(!limiter.hit(&key, 1).unwrap().is_allowed(), "key {key}");
    }
}

#[test]
fn times_before_the_epoch_count_as_the_epoch() {
    let (limiter, clock) = keyed("1 per second", 10_000);
    clock.set(2_000);
    let decision = limiter.hit("a", 1).unwrap();
    assert!(decision.is_allowed());
    assert_eq!(
        decision.reset_at(),
        Some(Timestamp::from_millis(11_000)),
        "counted from the epoch"
    );
    clock.set(10_999);
    assert!(!limiter.hit("a", 1).unwrap().is_allowed());
    clock.set(11_000);
    assert!(limiter.hit("a", 1).unwrap().is_allowed());
}
