//! A flood of distinct long keys cannot grow a default `MemoryStorage` past its byte
//! bound: one million keys of 1 KiB each (a gigabyte of key text) go through
//! `RateLimiter::hit`, and the process's resident set grows by less than the default
//! bound plus [`SLACK`]. Alone in its test binary, so that no other test allocates
//! meanwhile.

use std::sync::Arc;

use limiter_core::{Key, ManualClock, RateLimit, RateLimiter};
use limiter_memory::{MemoryStorage, DEFAULT_MAX_BYTES};

const KEYS: usize = 1_000_000;

/// The length of each key's identifier.
const KEY_LEN: usize = 1_024;

/// What the resident set may grow by beyond the bytes the storage counts: the slack
/// of the shards' vectors (they grow by doubling), of the index (its load factor and
/// control bytes), and of the allocator.
const SLACK: u64 = 32 << 20;

/// The resident set size in bytes, from `/proc/self/statm` (4 KiB pages).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_million_distinct_kilobyte_keys_stay_within_the_default_bound() {
    let storage = Arc::new(MemoryStorage::new());
    assert_eq!(storage.max_bytes(), Some(DEFAULT_MAX_BYTES));
    let limiter = RateLimiter::builder(storage.clone())
        .clock(ManualClock::new(1_000_000))
        .build();
    let limit: RateLimit = "10 per hour".parse().expect("a limit");
    // One buffer for every key: only its last digits change.
    let mut text = "x".repeat(KEY_LEN);
    let Some(before) = rss_bytes() else {
        eprintln!("no /proc/self/statm: skipped");
        return;
    };
    let started = std::time::Instant::now();
    let mut peak = before;
    futures::executor::block_on(async {
        for i in 0..KEYS {
            let digits = format!("{i:07}");
            text.replace_range(KEY_LEN - digits.len().., &digits);
            let key = Key::from(text.as_str());
            let decision = limiter.hit(&limit, &key, 1).await.expect("a decision");
            assert!(decision.is_allowed(), "key {i}");
            if i % 65_536 == 0 {
                assert!(storage.bytes() <= DEFAULT_MAX_BYTES, "{}", storage.bytes());
                peak = peak.max(rss_bytes().unwrap_or(0));
            }
        }
    });
    let after = rss_bytes().unwrap_or(0);
    peak = peak.max(after);
    let grown = peak.saturating_sub(before);
    println!(
        "{KEYS} keys of {KEY_LEN} bytes in {:.1?}: {} keys and {} bytes held (bound {}); \
         RSS {before} -> {after}, peak growth {grown} ({:.1} MiB)",
        started.elapsed(),
        storage.len(),
        storage.bytes(),
        DEFAULT_MAX_BYTES,
        grown as f64 / f64::from(1 << 20),
    );
    assert!(storage.bytes() <= DEFAULT_MAX_BYTES);
    assert!(storage.len() < KEYS, "some keys were evicted");
    let bound = u64::try_from(DEFAULT_MAX_BYTES).unwrap_or(u64::MAX);
    assert!(
        grown < bound + SLACK,
        "the resident set grew by {grown} bytes, over {bound} + {SLACK}"
    );
}
