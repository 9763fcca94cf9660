//! Memcached storage for **limiter**.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod key;
mod manager;
mod ring;
mod storage;

pub use config::{
    MemcachedConfig, MemcachedConfigError, ServerAddr, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_PORT,
};
pub use storage::MemcachedStorage;
