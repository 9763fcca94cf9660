//! The `limiter-conformance` suite on every Redis topology: a standalone server, a
//! three-primary Cluster and a Sentinel-managed primary, each with every capability on,
//! on the native scripts and on the generic compare-and-set path.
//!
//! The servers come from `scripts/services/redis.sh` (see `tests/common/mod.rs`).

mod common;

/// Keys of this suite start with this prefix, which `clear_all` empties.
const PREFIX: &str = "limiter-conformance:";

mod standalone {
    limiter_conformance::suite!(super::common::connect("LIMITER_REDIS_URL", super::PREFIX).await);
}

mod cluster {
    limiter_conformance::suite!(
        super::common::connect("LIMITER_REDIS_CLUSTER_URL", super::PREFIX).await
    );
}

mod sentinel {
    limiter_conformance::suite!(
        super::common::connect("LIMITER_REDIS_SENTINEL_URL", super::PREFIX).await
    );
}
