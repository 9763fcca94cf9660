//! Two operating-system processes of 64 callers each, one key of `1000 per minute`,
//! every strategy, coalescing and the rejection cache on: exactly the limit on a frozen
//! clock, never more than the strategy allows on the system clock (see
//! `limiter_conformance::processes`).

mod common;

use std::time::Duration;

use limiter_redis::RedisStorage;

limiter_conformance::processes!({
    // Exact counts are the point here, not latency: 16 processes share two cores.
    let options = common::options("LIMITER_REDIS_URL", "limiter-two-processes:")
        .command_timeout(Duration::from_secs(5));
    RedisStorage::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}; {}", common::HOW_TO_START))
});
