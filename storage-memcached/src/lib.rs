//! Memcached storage for **limiter**: [`MemcachedStorage`], on one or more servers.
//!
//! It implements the required core of [`Storage`](limiter_core::Storage) with
//! Memcached's meta protocol (through `async-memcached`, pooled with `bb8`), and every
//! strategy, built-in or custom, runs on it through the limiter's generic
//! compare-and-set path.
//!
//! ```no_run
//! use limiter_core::{strategy::Gcra, Key, RateLimiter};
//! use limiter_memcached::MemcachedStorage;
//! use std::sync::Arc;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = MemcachedStorage::from_uri(
//!     "memcached://10.0.0.1:11211,10.0.0.2:11211?key_prefix=api:&command_timeout=250ms",
//! )
//! .await?;
//! let limiter = RateLimiter::builder(Arc::new(storage)).strategy(Gcra).build();
//! let decision = limiter.hit(&"100 per minute".parse()?, &Key::from("203.0.113.9"), 1).await?;
//! if !decision.is_allowed() {
//!     println!("retry in {:?}", decision.retry_after());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The URI and its options (`key_prefix`, `pool_size`, `connect_timeout`,
//! `command_timeout`, `flush_on_clear`, `tls`) are described on [`MemcachedOptions`],
//! which also builds them with setters ([`MemcachedStorage::connect`]) and reads them
//! from configuration files (serde). With the facade crate's `memcached` feature,
//! `limiter::storage_from_uri` accepts the same URIs.
//!
//! A storage needs a Tokio runtime with its time and I/O drivers enabled (as
//! `#[tokio::main]` sets up); like Tokio's own network types, it panics without them.
//!
//! # What to know
//!
//! - **Every strategy runs on it** through the limiter's generic compare-and-set path
//!   (`mg`, then `ms` with the CAS unique): Memcached has no atomic update of the
//!   strategies' binary states. Two round trips per admitted hit, one per rejection.
//! - **Keys** longer than Memcached's 250 bytes, or with spaces, control characters,
//!   non-ASCII or `#`, are stored as a readable start plus a SHA-256 of the whole key
//!   ([`MemcachedStorage::memcached_key`]): no two keys share a Memcached key, and no
//!   key can inject a command.
//! - **Expiry** is rounded up to whole seconds, plus one, so a key lives at least its
//!   time-to-live and at most two seconds longer; decisions never depend on it.
//! - **Several servers** share the keys by rendezvous hashing
//!   ([`MemcachedStorage::server_for`]); a server that is down fails only its own keys.
//! - **Every call ends within `command_timeout`**, also when a server is stopped or
//!   hung, with a typed [`StorageError`](limiter_core::StorageError).
//! - **`clear_all`** ([`ClearAll`](limiter_core::storage::ClearAll)) is offered only
//!   with `flush_on_clear=true`: Memcached can only flush whole servers.
//!
//! # Observability
//!
//! The storage emits `tracing` events (target `limiter_memcached`) with
//! OpenTelemetry's field names (`db.system.name = "memcached"`, `db.operation.name`,
//! `server.address`, `server.port`, `error.type`, `error.message`): a server that
//! cannot be reached (`WARN` for the first failure, `DEBUG` for the next attempts) and
//! is again (`INFO`); a connection closed under a command that is retried on a fresh
//! one (`INFO`); a pool with no connection free in time (`WARN`); a command that timed
//! out (`WARN`, the key as its digest `limiter.key.digest`, see
//! `limiter_core::observe`, never in plain text).
//!
//! `ARCHITECTURE.md` beside this crate has the protocol, the key encoding, the expiry
//! rules, the hashing, connection handling and cancel safety in full; `benches/README.md`
//! has the throughput figures and how to reproduce them.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod key;
mod manager;
mod options;
mod ring;
mod storage;

pub use options::{
    MemcachedOptions, MemcachedOptionsError, ServerAddr, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_POOL_SIZE, DEFAULT_PORT, MAX_POOL_SIZE,
    SCHEMES,
};
pub use storage::MemcachedStorage;
