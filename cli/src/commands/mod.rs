//! One module per command.

pub(crate) mod bench;
pub(crate) mod config;
pub(crate) mod ping;
pub(crate) mod status;

use std::sync::Arc;

use limiter::strategy::BuiltIn;
use limiter::{RateLimit, RateLimiter, Storage};

use crate::Failure;

/// The options every command on one key shares.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The storage, as a URI: memory://, redis://host:6379/0, memcached://host:11211, …
    #[arg(long, value_name = "URI")]
    pub(crate) storage: String,
    /// The limit, such as "10/minute" or "100 per hour".
    #[arg(long, value_parser = parse_limit)]
    pub(crate) limit: RateLimit,
    /// The key's identifiers; repeat for a key of several parts.
    #[arg(long, required = true, value_name = "K")]
    pub(crate) key: Vec<String>,
    /// The strategy the service uses.
    #[arg(long, value_parser = parse_strategy, default_value = "fixed-window")]
    pub(crate) strategy: BuiltIn,
    /// The namespace the service uses (default: the library's).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
}

pub(crate) fn parse_limit(text: &str) -> Result<RateLimit, String> {
    text.parse::<RateLimit>().map_err(|e| e.to_string())
}

pub(crate) fn parse_strategy(text: &str) -> Result<BuiltIn, String> {
    BuiltIn::from_name(text).ok_or_else(|| {
        let names: Vec<_> = BuiltIn::ALL.iter().map(|b| b.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

pub(crate) async fn storage(uri: &str) -> Result<Arc<dyn Storage>, Failure> {
    limiter::storage_from_uri(uri)
        .await
        .map_err(|e| Failure(format!("storage {}: {e}", limiter::config::redact(uri))))
}

/// A core limiter over `storage` with `strategy` and `namespace`.
pub(crate) fn limiter(
    storage: Arc<dyn Storage>,
    strategy: BuiltIn,
    namespace: Option<&str>,
) -> RateLimiter {
    let mut builder = RateLimiter::builder(storage)
        .strategy_arc(limiter::http::config::Strategy(strategy).to_arc());
    if let Some(namespace) = namespace {
        builder = builder.namespace(namespace);
    }
    builder.build()
}
