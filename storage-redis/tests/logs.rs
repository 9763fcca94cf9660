//! Long moving-window logs through the scripts: several operations in one script call
//! (what coalescing sends) over logs of hundreds of records, so that the reads cross
//! chunk boundaries, records expire chunk after chunk, refunds rewrite old records and
//! the log is compacted, all within one call; the verdicts, the stored bytes and the
//! key's time-to-live must be the Rust strategy's after every call.

mod common;

use std::sync::Arc;

use limiter_core::storage::{KeyRef, Storage};
use limiter_core::strategy::{BuiltIn, Op};
use limiter_core::{Key, RateLimit, RateLimiter, Timestamp};
use limiter_redis::fred::prelude::KeysInterface;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_operations_on_long_logs_match_the_strategy_byte_for_byte() {
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-logs:").await;
    let native = storage.abilities().get_native().expect("native strategies");
    let limit: RateLimit = "200 per 3 seconds".parse().expect("limit");
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .strategy_arc(common::strategy(BuiltIn::MovingWindow))
        .namespace(format!("logs-{}", std::process::id()))
        .build();
    let key = limiter.storage_key(&limit, &Key::from("long-log"));
    let _ = storage.delete(&key).await;
    let strategy = BuiltIn::MovingWindow.strategy();
    let mut state = Vec::new();
    let mut rng = Rng(0x5EED_0F10_6500);
    let mut now = common::unix_ms();
    let (mut longest, mut operations) = (0, 0);
    for call in 0..60 {
        let mut ops = Vec::new();
        for _ in 0..rng.range(1, 48) {
            now = match rng.range(0, 20) {
                // Sometimes a step back, sometimes the same millisecond (the record
                // grows instead of a new one), mostly a few ms on.
                0 => now - rng.range(0, 200),
                1..=3 => now,
                _ => now + rng.range(1, 40),
            };
            let cost = rng.range(1, 4);
            let op = match rng.range(0, 10) {
                0..=6 => Op::Hit { cost },
                7 => Op::Test { cost },
                _ => Op::Refund {
                    cost,
                    at: Timestamp::from_millis(now - rng.range(0, 2_500)),
                },
            };
            ops.push((op, Timestamp::from_millis(now)));
        }
        let verdicts = native
            .apply_many(BuiltIn::MovingWindow, KeyRef::from(&key), &limit, &ops)
            .resolve()
            .await
            .unwrap_or_else(|| panic!("call {call}: the storage declined apply_many"))
            .expect("apply_many");
        // The time-to-live the last write of the call sets.
        let mut ttl = None;
        for (i, &(op, at)) in ops.iter().enumerate() {
            let want = strategy
                .apply(&limit, &mut state, op, at)
                .expect("strategy");
            assert_eq!(
                verdicts[i], want.verdict,
                "call {call}, operation {i}: {op:?} at {at}"
            );
            ttl = want.write.or(ttl);
        }
        if let Some(ttl) = ttl {
            let want = u64::try_from(ttl.as_millis()).expect("ttl");
            let pttl: i64 = storage
                .pool()
                .pttl(storage.redis_key(&key))
                .await
                .expect("PTTL");
            let pttl = u64::try_from(pttl).expect("a key with a time-to-live");
            assert!(
                pttl <= want && pttl + 100 >= want,
                "call {call}: PTTL {pttl} ms, the last write's {want} ms"
            );
        }
        let stored = storage
            .get(&key, Timestamp::from_millis(now))
            .await
            .expect("get");
        let bytes = stored.map(|v| v.value).unwrap_or_default();
        assert_eq!(
            bytes,
            state,
            "call {call}: the stored bytes after {} operations",
            ops.len()
        );
        longest = longest.max(state.len().saturating_sub(17) / 16);
        operations += ops.len();
    }
    // What the test means to cover: logs over several chunks of 64 records.
    assert!(longest > 130, "the longest log held only {longest} records");
    assert!(operations > 1_000, "{operations} operations");
    storage.delete(&key).await.expect("delete");
}
