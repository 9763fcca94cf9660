//! The `limiter-conformance` suite on Memcached: once against one server, once against
//! two (keys spread by rendezvous hashing).
//!
//! Needs the servers of `scripts/services/memcached.sh` (`bash scripts/test.sh` starts
//! them); fails, never skips, without them.
//!
//! Capabilities: everything on. `clear_all` runs `flush_all`, which the test servers
//! allow (`flush_on_clear=true`: they hold nothing else); the expiry case allows the
//! 2 s of lateness the storage declares (Memcached's clock counts whole seconds).

mod common;

use limiter_conformance::Capabilities;

/// What the suite may assume of these servers.
const CAPABILITIES: Capabilities = Capabilities::ALL;

/// The suite against one server.
mod single {
    use limiter_memcached::MemcachedStorage;

    fn uri() -> String {
        super::common::with_options(&super::common::single_url(), "flush_on_clear=true")
    }

    limiter_conformance::suite!(
        MemcachedStorage::from_uri(&uri())
            .await
            .expect("LIMITER_MEMCACHED_URL is a valid memcached uri"),
        super::CAPABILITIES,
    );
}

/// The suite against two servers.
mod pair {
    use limiter_memcached::MemcachedStorage;

    fn uri() -> String {
        super::common::with_options(&super::common::pair_url(), "flush_on_clear=true")
    }

    limiter_conformance::suite!(
        MemcachedStorage::from_uri(&uri())
            .await
            .expect("LIMITER_MEMCACHED_PAIR_URL is a valid memcached uri"),
        super::CAPABILITIES,
    );
}
