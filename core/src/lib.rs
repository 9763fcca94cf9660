//! The core of **limiter**: rate limits as data, rate-limiting strategies, the
//! [`Storage`] trait that state stores implement, and the [`RateLimiter`] that ties
//! them together.
//!
//! Applications usually depend on the `limiter` facade crate, which re-exports all of
//! this and adds storages and web adapters. Storage authors depend on this crate alone.
//!
//! # Examples
//!
//! ```
//! use limiter_core::{Key, ManualClock, RateLimit, RateLimiter, strategy::MovingWindow};
//! // A small storage for examples; applications use `limiter_memory::MemoryStorage`
//! // (or `limiter::MemoryStorage`), which this crate cannot depend on.
//! use limiter_core::doc_support::TinyStorage;
//! use std::sync::Arc;
//!
//! # futures::executor::block_on(async {
//! let limiter = RateLimiter::builder(Arc::new(TinyStorage::default()))
//!     .strategy(MovingWindow)
//!     .clock(ManualClock::new(0))
//!     .build();
//! let limit: RateLimit = "2 per minute".parse()?;
//! let client = Key::from("203.0.113.9");
//!
//! assert!(limiter.hit(&limit, &client, 1).await?.is_allowed());
//! assert!(limiter.hit(&limit, &client, 1).await?.is_allowed());
//! let third = limiter.hit(&limit, &client, 1).await?;
//! assert!(!third.is_allowed());
//! assert_eq!(third.retry_after(), Some(std::time::Duration::from_secs(60)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod decision;
mod error;
mod key;
pub mod limit;
mod limiter;
pub mod observe;
pub mod storage;
pub mod strategy;

#[doc(hidden)]
pub mod doc_support;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use decision::{Decision, Retry, WindowStats};
pub use error::{Error, Redacted, StorageError, StorageErrorKind};
pub use key::{Key, StorageKey};
pub use limit::{parse_many, ParseError, ParseErrorKind, RateLimit, Unit};
pub use limiter::{
    PreparedKey, RateLimiter, RateLimiterBuilder, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BATCH,
    DEFAULT_NAMESPACE, DEFAULT_REJECTION_CACHE_SIZE,
};
pub use storage::Storage;
pub use strategy::{BuiltIn, Strategy};
