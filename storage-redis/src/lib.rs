#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod events;
mod memo;
pub mod native;
mod options;
pub mod scripts;
mod storage;
mod tls;
mod uri;

pub use error::RedisError;
pub use native::{runs_natively, ScriptAnswer, MAX_EXACT, MAX_PRODUCT};
pub use options::{
    RedisOptions, Topology, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX,
    DEFAULT_POOL_SIZE, MAX_POOL_SIZE, SCHEMES,
};
pub use storage::RedisStorage;

/// The Redis client this crate is built on, re-exported so that its version matches.
pub use fred;
