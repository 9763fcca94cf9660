//! What the integration tests share: where the test servers are.
#![allow(dead_code)]

/// The value of `var`, a `memcached://` URI exported by `scripts/services/memcached.sh`.
///
/// Panics when it is missing: a test that needs a server never passes without one.
pub(crate) fn env_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: the limiter-memcached tests need Memcached servers. Run \
             `bash scripts/test.sh`, or start them in your shell with \
             `source scripts/lib.sh && source scripts/services/memcached.sh` and run \
             `cargo test -p limiter-memcached` from that shell"
        ),
    }
}

/// One test server.
pub(crate) fn single_url() -> String {
    env_url("LIMITER_MEMCACHED_URL")
}

/// Both test servers.
pub(crate) fn pair_url() -> String {
    env_url("LIMITER_MEMCACHED_PAIR_URL")
}

/// `url` with `options` (`a=1&b=2`) added to its query.
pub(crate) fn with_options(url: &str, options: &str) -> String {
    if url.contains('?') {
        format!("{url}&{options}")
    } else {
        format!("{url}?{options}")
    }
}
