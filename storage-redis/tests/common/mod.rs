//! What the integration tests share: the servers' addresses, read from the environment.
//!
//! A test that needs a server and finds no address fails with the command that starts
//! the servers; it never passes on nothing.
#![allow(dead_code)]

use limiter_redis::{RedisConfig, RedisStorage};

/// How to get the servers, for failure messages.
pub(crate) const HOW_TO_START: &str =
    "start the test servers first: run `bash scripts/test.sh`, or \
     `source scripts/services/redis.sh` in your shell and then `cargo test -p limiter-redis`";

/// The value of environment variable `var`; fails the test when it is missing.
pub(crate) fn env(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{var} is not set: {HOW_TO_START}"),
    }
}

/// The settings for the URI in `var`, with `prefix` as the key prefix.
pub(crate) fn config(var: &str, prefix: &str) -> RedisConfig {
    let uri = env(var);
    match RedisConfig::from_uri(&uri) {
        Ok(config) => config.key_prefix(prefix),
        Err(e) => panic!("{var}={uri} does not parse: {e}"),
    }
}

/// A storage connected to the server in `var`, keys under `prefix`; fails the test
/// when it cannot connect.
pub(crate) async fn connect(var: &str, prefix: &str) -> RedisStorage {
    let config = config(var, prefix);
    match config.connect().await {
        Ok(storage) => storage,
        Err(e) => panic!("cannot connect to the server in {var}: {e}; {HOW_TO_START}"),
    }
}

/// A plain client to the server in `var`, to look at keys directly.
pub(crate) async fn raw_client(var: &str) -> limiter_redis::fred::prelude::Client {
    use limiter_redis::fred::prelude::{Builder, ClientLike, Config};
    let uri = env(var);
    let config = Config::from_url(&uri).unwrap_or_else(|e| panic!("{var}={uri}: {e}"));
    let client = Builder::from_config(config)
        .build()
        .unwrap_or_else(|e| panic!("{var}={uri}: {e}"));
    if let Err(e) = client.init().await {
        panic!("cannot connect to {uri}: {e}; {HOW_TO_START}");
    }
    client
}
