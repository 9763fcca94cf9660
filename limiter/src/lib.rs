//! **limiter**: async rate limiting for Rust services, with limits as data, four
//! strategies and pluggable storages.
//!
//! ```
//! # #[cfg(feature = "memory")]
//! use limiter::{Key, RateLimit, RateLimiter, MemoryStorage};
//! use limiter::strategy::SlidingWindow;
//! use std::sync::Arc;
//!
//! # #[cfg(feature = "memory")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
//!     .strategy(SlidingWindow)
//!     .build();
//! let limits = limiter::parse_many("10 per second; 100 per minute")?;
//! let decision = limiter.hit_all(&limits, &Key::from("203.0.113.9"), 1).await?;
//! if decision.is_allowed() {
//!     println!("{} left of {}", decision.remaining(), decision.limit());
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "memory"))] fn main() {}
//! ```
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `memory` | yes | [`MemoryStorage`], `memory://`, and [`KeyedLimiter`] (one GCRA limit in process, synchronous) |
//! | `tokio` | yes | [`TokioTimer`], for [`RateLimiter::until_ready`] on the in-memory storage |
//! | `memcached` | no | `MemcachedStorage`, `memcached://` |
//! | `redis` | no | `RedisStorage` (Redis or Valkey: standalone, Cluster, Sentinel, Unix socket), the `redis…://` and `valkey…://` URIs |
//! | `redis-tls` | no | TLS for the Redis storage: `rediss://`, `rediss+cluster://`, `valkeys://`…, `tls=true` |
//! | `serde` | no | `Serialize`/`Deserialize` for [`RateLimit`] as its string form |
//! | `http` | no | [`http`]: Flask-Limiter's policies as a framework-neutral engine |
//! | `tower` | no | `http`, plus the tower layer [`http::tower::LimiterLayer`] |
//! | `axum` | no | `tower`, plus axum's `MatchedPath` and `ConnectInfo` |
//! | `config` | no | `http`, plus [`config`]: the storage and the HTTP policy from a TOML file, environment overrides, reloading |
//! | `actix-web` | no | `http`, plus the actix-web 4 middleware `http::actix::Limiter` (needs Rust 1.89, actix-web's MSRV) |
//! | `metrics` | no | `http`, plus `http::RecorderMetrics`: the HTTP limiter's counters, decision-time histogram and gauges on the `metrics` crate |
//! | `full` | no | everything above |
//!
//! # Choosing a strategy
//!
//! See [`strategy`]: [`FixedWindow`](strategy::FixedWindow) is the cheapest,
//! [`MovingWindow`](strategy::MovingWindow) exact, [`SlidingWindow`](strategy::SlidingWindow)
//! a close O(1) estimate of it, and [`Gcra`](strategy::Gcra) smooths traffic with a burst.
//!
//! # Writing a storage or a strategy
//!
//! Everything a storage author needs is in [`storage`]: a storage implements
//! [`Storage`]'s required core (read with a version, compare-and-set, delete, check)
//! and gets every strategy; the `limiter-conformance` crate checks it. A strategy
//! implements [`Strategy`], a pure state machine, and runs on every storage.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod uri;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;

#[doc(inline)]
pub use limiter_core::{
    limit, observe, parse_many, storage, strategy, Clock, Decision, Error, Key, ManualClock,
    ParseError, RateLimit, RateLimiter, RateLimiterBuilder, Retry, Storage, StorageError,
    StorageErrorKind, Strategy, SystemClock, Timestamp, WindowStats,
};

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
#[doc(inline)]
pub use limiter_memory::{KeyedLimiter, MemoryOptions, MemoryOptionsError, MemoryStorage};

#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
#[doc(inline)]
pub use limiter_memcached::{MemcachedOptions, MemcachedOptionsError, MemcachedStorage};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use limiter_redis::{RedisError, RedisOptions, RedisStorage};

/// The Redis storage's crate, for the rest of its options ([`redis::Topology`], the
/// TLS settings) (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use limiter_redis as redis;

pub use uri::{storage_from_uri, UriError};

/// Tokio's timer as a [`storage::Sleep`]: what [`RateLimiter::until_ready`] waits on
/// over a storage without a timer of its own, such as the in-memory storage (the
/// network storages bring Tokio's already).
///
/// ```
/// # #[cfg(feature = "memory")]
/// use limiter::{Key, MemoryStorage, RateLimiter, TokioTimer};
/// use std::{sync::Arc, time::Duration};
///
/// # #[cfg(feature = "memory")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
///     .timer(TokioTimer)
///     .build();
/// let limit = "20 per second".parse()?;
/// for page in 0..25 {
///     // Never more than 20 requests a second to the upstream API.
///     let permit = limiter.until_ready(&limit, &Key::from("upstream"), 1, Duration::from_secs(10)).await?;
///     assert!(permit.is_allowed(), "page {page}");
/// }
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "memory"))] fn main() {}
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl storage::Sleep for TokioTimer {
    fn sleep(&self, duration: std::time::Duration) -> storage::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// HTTP rate limiting: the `limiter-http` crate (features `http`, `tower`, `axum`, `actix-web`).
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[doc(inline)]
pub use limiter_http as http;

/// The README's examples, compiled and run as doctests so that they cannot rot (the
/// HTTP one needs the `axum` feature, all of them the default `memory` and `tokio`).
#[cfg(all(doctest, feature = "axum", feature = "memory", feature = "tokio"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
