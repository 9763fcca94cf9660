//! Measures the memory a key costs: the growth of the process's resident set while
//! 100,000 fixed-window keys are stored. Alone in its test binary, so that no other
//! test allocates meanwhile. Run with
//! `cargo test -p limiter-memory --release --test bytes_per_key -- --nocapture`.

use std::sync::Arc;

use limiter_core::{Key, ManualClock, RateLimit, RateLimiter};
use limiter_memory::MemoryStorage;

const KEYS: u32 = 100_000;

/// The resident set size in bytes, from `/proc/self/statm` (pages) and the page size
/// from `/proc/self/smaps` (4 KiB when it cannot be read).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_kib = std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|smaps| {
            smaps
                .lines()
                .find_map(|l| l.strip_prefix("KernelPageSize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(4);
    Some(pages * page_kib * 1024)
}

#[test]
fn bytes_per_fixed_window_key() {
    // Keys are built up front so that only the storage grows during the measurement.
    let keys: Vec<Key> = (0..KEYS)
        .map(|i| Key::from(format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)))
        .collect();
    let storage = Arc::new(MemoryStorage::new());
    let limiter = RateLimiter::builder(storage.clone())
        .clock(ManualClock::new(1_000_000))
        .build();
    let limit: RateLimit = "100 per minute".parse().unwrap();
    let example = limiter.storage_key(&limit, &keys[0]);

    let Some(before) = rss_bytes() else {
        eprintln!("no /proc/self/statm: skipped");
        return;
    };
    futures::executor::block_on(async {
        for key in &keys {
            assert!(limiter.hit(&limit, key, 1).await.unwrap().is_allowed());
        }
    });
    let after = rss_bytes().unwrap();
    assert_eq!(storage.len(), KEYS as usize);

    let per_key = after.saturating_sub(before) as f64 / f64::from(KEYS);
    println!(
        "{per_key:.0} bytes per key ({KEYS} fixed-window keys like {example:?}, {} bytes; \
         RSS {before} -> {after})",
        example.as_str().len()
    );
    assert!(per_key > 50.0, "implausibly low: {per_key}");
    assert!(per_key < 250.0, "{per_key} bytes per key");
}
