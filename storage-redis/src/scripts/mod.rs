//! The Lua scripts, one file each, loaded once per server and run with EVALSHA.
//!
//! Every script touches the keys it is given and nothing else, takes the time from
//! its arguments (never the server's `TIME`), and runs in one round trip. The client
//! reloads a script transparently when the server answers `NOSCRIPT` (after a
//! restart, `SCRIPT FLUSH` or a failover).

use fred::types::scripts::Script;

/// The source of every script, by name, for tools and tests.
pub const SOURCES: [(&str, &str); 1] = [("cas", CAS)];

/// Compare-and-set of one key (the required core).
pub(crate) const CAS: &str = include_str!("cas.lua");

/// Every script, prepared (its SHA-1 computed) once per storage.
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub(crate) cas: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            cas: Script::from_lua(CAS),
        }
    }
}
