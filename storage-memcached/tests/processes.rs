//! Two operating-system processes of 64 callers each, one key of `1000 per minute`,
//! every strategy, coalescing and the rejection cache on: exactly the limit on a frozen
//! clock, never more than the strategy allows on the system clock (see
//! `limiter_conformance::processes`).

mod common;

use limiter_memcached::MemcachedStorage;

limiter_conformance::processes!({
    // Exact counts are the point here, not latency: 16 processes share two cores.
    let uri = common::with_options(&common::single_url(), "pool_size=16&command_timeout=5s");
    MemcachedStorage::from_uri(&uri)
        .await
        .expect("connect to memcached")
});
