//! The whole HTTP policy as data: [`Config`], deserialized from any serde format
//! (feature `config`).
//!
//! Every table denies unknown fields, and every value is checked while it is
//! deserialized: a malformed limit string, an unknown strategy, a header name that is
//! not one, or an impossible combination (a route both exempt and limited, trusted
//! proxies given both as hops and as networks, probe intervals without the fallback
//! policy) is an error of the deserializer, so a format that knows positions (TOML)
//! reports the line and column of the value. Nothing is defaulted silently: a field
//! that is absent takes the default documented on it, a misspelt one is an error.
//!
//! The storage is a type parameter: this crate does not know the networked storages,
//! so the `limiter` facade (feature `config`) plugs in its storage table and loads
//! TOML files, with environment overrides. Here, the storage is given in code and the
//! file may not have a `storage` table ([`NoStorage`]).
//!
//! ```
//! use limiter_http::config::Config;
//! use limiter_memory::MemoryStorage;
//! use std::sync::Arc;
//!
//! let config: Config = serde_json::from_str(r#"{
//!     "strategy": "sliding-window-counter",
//!     "default_limits": ["10 per minute"],
//!     "routes": [{ "path": "/login", "limits": [{ "limits": "5 per minute", "methods": ["POST"] }] }],
//!     "key": { "source": "forwarded", "trusted_hops": 1 }
//! }"#)?;
//! let limiter = config.build(Arc::new(MemoryStorage::new()))?;
//! # let _ = limiter;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;

use limiter_core::strategy::BuiltIn;
use limiter_core::{RateLimiter, RateLimiterBuilder, Storage};
use serde::de::{self, Deserialize, Deserializer};

use crate::{BuildError, HttpLimiter, HttpLimiterBuilder};

mod key;
mod options;
mod sets;

pub use key::{KeyConfig, SourceKind};
pub use options::{
    ChargeConfig, FailureConfig, HeaderStyleName, HeadersConfig, RejectionStyle, RetryAfterName,
};
pub use sets::{LimitList, LimitSet, MethodName, RouteConfig, Routes};

/// The HTTP policy of a service, and optionally its storage (`S`), strategy and
/// namespace: everything [`HttpLimiterBuilder`] takes that is data rather than code.
/// See the [module docs](self) and the annotated `examples/limiter.toml`.
///
/// Callbacks (`on_breach`, custom keys, costs computed per request, conditional
/// deduction, metrics) are code: add them to the builder that
/// [`http_builder`](Self::http_builder) returns.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
#[non_exhaustive]
pub struct Config<S = NoStorage> {
    /// Where the counts live. Default: none (given in code).
    #[serde(default = "none")]
    pub storage: Option<S>,
    /// The algorithm: `fixed-window` (the default), `moving-window`,
    /// `sliding-window-counter` or `gcra`.
    #[serde(default)]
    pub strategy: Strategy,
    /// The first part of every stored key, separating limiters that share a storage.
    /// Default: the core's default namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Whether limits apply at all. Default: `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Shadow mode for every limit: decide and count as usual, report what would be
    /// rejected, let it through ([`HttpLimiterBuilder::shadow`]). Default: `false`.
    #[serde(default)]
    pub shadow: bool,
    /// A first identifier in every key of the HTTP limits. Default: none.
    #[serde(default)]
    pub key_prefix: String,
    /// Limits for every route without its own, one budget per route.
    #[serde(default)]
    pub default_limits: Vec<LimitSet>,
    /// Limits shared by all routes.
    #[serde(default)]
    pub application_limits: Vec<LimitSet>,
    /// Limits on how often a client is rejected (they cannot be `shared`).
    #[serde(default, deserialize_with = "meta_sets")]
    pub meta_limits: Vec<LimitSet>,
    /// Routes with limits of their own, or exempt.
    #[serde(default)]
    pub routes: Routes,
    /// Where the client identity comes from. Default: the peer address.
    #[serde(default)]
    pub key: KeyConfig,
    /// Rate-limit headers. Default: none.
    #[serde(default)]
    pub headers: HeadersConfig,
    /// The body of 429 responses. Default: `plain-text`.
    #[serde(default)]
    pub rejection_body: RejectionStyle,
    /// What happens when the storage fails. Default: fail closed, 1 s deadline.
    #[serde(default)]
    pub failure: FailureConfig,
    /// Which requests the router does not route are charged. Default: none.
    #[serde(default)]
    pub charge: ChargeConfig,
}

fn meta_sets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LimitSet>, D::Error> {
    let sets = Vec::<LimitSet>::deserialize(d)?;
    if sets.iter().any(|set| set.shared.is_some()) {
        return Err(de::Error::custom(
            "meta limits count a client's rejections and cannot be shared",
        ));
    }
    Ok(sets)
}

fn none<S>() -> Option<S> {
    None
}

fn yes() -> bool {
    true
}

impl<S> Default for Config<S> {
    fn default() -> Self {
        Config {
            storage: None,
            strategy: Strategy::default(),
            namespace: None,
            enabled: true,
            shadow: false,
            key_prefix: String::new(),
            default_limits: Vec::new(),
            application_limits: Vec::new(),
            meta_limits: Vec::new(),
            routes: Routes::default(),
            key: KeyConfig::default(),
            headers: HeadersConfig::default(),
            rejection_body: RejectionStyle::default(),
            failure: FailureConfig::default(),
            charge: ChargeConfig::default(),
        }
    }
}

impl<S> Config<S> {
    /// A core limiter builder over `storage` with this strategy and namespace; add a
    /// clock or other options, then build it.
    pub fn limiter_builder(&self, storage: Arc<dyn Storage>) -> RateLimiterBuilder {
        let builder = RateLimiter::builder(storage).strategy_arc(self.strategy.to_arc());
        match &self.namespace {
            Some(namespace) => builder.namespace(namespace.clone()),
            None => builder,
        }
    }

    /// An HTTP limiter builder over `limiter` with this whole policy, for adding
    /// callbacks before [`build`](HttpLimiterBuilder::build).
    pub fn http_builder(&self, limiter: RateLimiter) -> HttpLimiterBuilder {
        let mut builder = HttpLimiter::builder(limiter)
            .enabled(self.enabled)
            .shadow(self.shadow)
            .key_prefix(self.key_prefix.clone())
            .key(self.key.source())
            .headers(self.headers.style.into())
            .retry_after(self.headers.retry_after.into())
            .rejection_body(self.rejection_body.body())
            .on_storage_failure(self.failure.policy())
            .deadline(self.failure.deadline())
            .charge_unmatched(self.charge.unmatched)
            .charge_options(self.charge.options)
            .charge_method_not_allowed(self.charge.method_not_allowed);
        for set in &self.default_limits {
            builder = builder.default_limits(set.limits(None));
        }
        for set in &self.application_limits {
            builder = builder.application_limits(set.limits(None));
        }
        for set in &self.meta_limits {
            builder = builder.meta_limits(set.limits(None));
        }
        for route in self.routes.iter() {
            builder = builder.route(route.path.clone(), route.route());
        }
        builder
    }

    /// The limiter for this policy over `storage`, with the system clock.
    ///
    /// # Errors
    ///
    /// What [`HttpLimiterBuilder::build`] reports; the checks made while
    /// deserializing leave nothing for it to find in a deserialized configuration.
    pub fn build(&self, storage: Arc<dyn Storage>) -> Result<HttpLimiter, BuildError> {
        self.http_builder(self.limiter_builder(storage).build())
            .build()
    }
}

/// The storage table of a [`Config`] when the storage is given in code: a file with
/// a `storage` field is an error that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStorage {}

impl<'de> Deserialize<'de> for NoStorage {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom(
            "the storage is given in code here; load the file with the limiter crate's \
             `config` feature to configure the storage in it",
        ))
    }
}

/// A built-in strategy by its stable name ([`BuiltIn::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy(pub BuiltIn);

impl Default for Strategy {
    fn default() -> Self {
        Strategy(BuiltIn::FixedWindow)
    }
}

impl Strategy {
    /// The strategy object, for [`RateLimiterBuilder::strategy_arc`].
    pub fn to_arc(self) -> Arc<dyn limiter_core::Strategy> {
        Arc::new(Named(self.0))
    }

    /// The strategy named `name`, or a message listing the names.
    ///
    /// # Errors
    ///
    /// A message for a name that no built-in strategy has.
    pub fn from_name(name: &str) -> Result<Strategy, String> {
        BuiltIn::from_name(name).map(Strategy).ok_or_else(|| {
            let names: Vec<_> = BuiltIn::ALL.iter().map(|b| b.name()).collect();
            format!(
                "unknown strategy {name:?}, expected one of {}",
                names.join(", ")
            )
        })
    }
}

/// A built-in as an owned strategy object: forwards to [`BuiltIn::strategy`], so
/// that storages still recognise it ([`builtin`](limiter_core::Strategy::builtin)).
#[derive(Debug)]
struct Named(BuiltIn);

impl limiter_core::Strategy for Named {
    fn name(&self) -> &'static str {
        self.0.strategy().name()
    }

    fn builtin(&self) -> Option<BuiltIn> {
        self.0.strategy().builtin()
    }

    fn apply(
        &self,
        limit: &limiter_core::RateLimit,
        state: &mut Vec<u8>,
        op: limiter_core::strategy::Op,
        now: limiter_core::Timestamp,
    ) -> Result<limiter_core::strategy::Transition, limiter_core::strategy::StateError> {
        self.0.strategy().apply(limit, state, op, now)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Strategy::from_name(&name).map_err(de::Error::custom)
    }
}
