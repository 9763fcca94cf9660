//! A flood of distinct long keys cannot grow a `KeyedLimiter` past its bound: one
//! million keys of 1 KiB each (a gigabyte of key text) against a limiter bounded to
//! 8 MiB, and the process's resident set grows by less than the bound plus [`SLACK`],
//! since a key is held as its hash. Alone in its test binary, so that no other test
//! allocates meanwhile.

use limiter_core::{ManualClock, RateLimit};
use limiter_memory::{KeyedLimiter, MemoryOptions};

const KEYS: usize = 1_000_000;

/// The length of each key.
const KEY_LEN: usize = 1_024;

/// The limiter's byte bound.
const MAX_BYTES: usize = 8 << 20;

/// What the resident set may grow by beyond the bound: the allocator's own slack.
const SLACK: u64 = 4 << 20;

/// The resident set size in bytes, from `/proc/self/statm` (4 KiB pages).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_million_distinct_kilobyte_keys_stay_within_the_bound() {
    let limit: RateLimit = "10 per hour".parse().expect("a limit");
    let options = MemoryOptions::new().max_bytes(MAX_BYTES);
    let limiter = KeyedLimiter::<str>::with_options(limit, &options)
        .expect("a limit one word holds")
        .with_clock(ManualClock::new(1_000_000));
    let max_keys = limiter.max_keys();
    assert!(max_keys < KEYS, "{max_keys} keys fit");
    // One buffer for every key: only its last digits change.
    let mut text = "x".repeat(KEY_LEN);
    let Some(before) = rss_bytes() else {
        panic!("no /proc/self/statm to measure the resident set with");
    };
    let mut peak = before;
    for i in 0..KEYS {
        let digits = format!("{i:07}");
        text.replace_range(KEY_LEN - digits.len().., &digits);
        let decision = limiter.hit(&text, 1).expect("a decision");
        assert!(decision.is_allowed(), "key {i}");
        if i % 65_536 == 0 {
            assert!(limiter.len() <= max_keys, "{} keys held", limiter.len());
            peak = peak.max(rss_bytes().unwrap_or(0));
        }
    }
    let after = rss_bytes().unwrap_or(0);
    peak = peak.max(after);
    let grown = peak.saturating_sub(before);
    println!(
        "{KEYS} keys of {KEY_LEN} bytes: {} keys held (bound {max_keys}); RSS {before} -> \
         {after}, peak growth {grown} ({:.1} MiB)",
        limiter.len(),
        grown as f64 / f64::from(1 << 20),
    );
    assert!(limiter.len() <= max_keys);
    let bound = u64::try_from(MAX_BYTES).unwrap_or(u64::MAX);
    assert!(
        grown < bound + SLACK,
        "the resident set grew by {grown} bytes, over {bound} + {SLACK}"
    );
}
