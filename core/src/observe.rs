//! Helpers for logs that must not reveal who a client is.
//!
//! Rate-limit keys name clients: an address, a user, an API key. The `tracing`
//! events of every limiter crate carry a key in plain text only at the `DEBUG` and
//! `TRACE` levels; above them, an event carries the key's [`key_digest`] instead (the
//! field `limiter.key.digest`), and errors are written with
//! [`StorageError::redacted`](crate::StorageError::redacted), which does the same for
//! the key an error names.
//!
//! A digest is a keyed hash (SipHash-1-3) under a key drawn at random once per
//! process: two events of one process that concern the same key carry the same
//! digest, so they can be told apart and matched; a digest cannot be reversed by
//! hashing every candidate (every IPv4 address, say) without the process's secret,
//! and digests of different processes, or of one process before and after a restart,
//! do not match. To find which key a digest stands for, compute [`key_digest`] of the
//! candidates in the same process, or turn on `DEBUG` for the `limiter` targets,
//! whose events carry the key itself.
//!
//! ```
//! use limiter_core::observe::key_digest;
//!
//! let digest = key_digest("LIMITER/gcra/203.0.113.9/10/1/second");
//! assert_eq!(digest, key_digest("LIMITER/gcra/203.0.113.9/10/1/second"));
//! assert_ne!(digest, key_digest("LIMITER/gcra/203.0.113.10/10/1/second"));
//! let text = digest.to_string();
//! assert_eq!(text.len(), 16);
//! assert!(!text.contains("203.0.113.9"));
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// The short, per-process digest of a key that logs above `DEBUG` carry instead of
/// the key: 16 lowercase hexadecimal digits. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(u64);

impl KeyDigest {
    /// The digest as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The digest of `key` (any key text: a client's key, a storage key, a server's key)
/// that logs above `DEBUG` carry in its place. Stable within the process, random
/// across processes. See the [module docs](self).
pub fn key_digest(key: &str) -> KeyDigest {
    static SECRET: OnceLock<RandomState> = OnceLock::new();
    KeyDigest(SECRET.get_or_init(RandomState::new).hash_one(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_short_and_tell_keys_apart() {
        let a = key_digest("a");
        assert_eq!(a, key_digest("a"));
        assert_ne!(a, key_digest("b"));
        assert_eq!(a.to_string().len(), 16);
        assert!(a.to_string().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(format!("{:016x}", a.as_u64()), a.to_string());
    }
}
