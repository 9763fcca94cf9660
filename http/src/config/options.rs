//! Response headers, 429 bodies, the failure policy and charging in a
//! [`Config`](super::Config).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

use crate::{FailurePolicy, HeaderStyle, RejectionBody, RetryAfter};

/// Rate-limit headers: `style` (`off`, the default; `x-ratelimit`; `ietf`; `both`)
/// and `retry_after` (`seconds`, the default, or `http-date`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HeadersConfig {
    /// Which headers.
    #[serde(default)]
    pub style: HeaderStyleName,
    /// The format of `Retry-After`.
    #[serde(default)]
    pub retry_after: RetryAfterName,
}

/// [`HeaderStyle`] by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderStyleName {
    /// [`HeaderStyle::Off`].
    #[default]
    Off,
    /// [`HeaderStyle::XRateLimit`].
    XRatelimit,
    /// [`HeaderStyle::Ietf`].
    Ietf,
    /// [`HeaderStyle::Both`].
    Both,
}

impl HeaderStyleName {
    /// The name in the file.
    pub fn name(self) -> &'static str {
        match self {
            HeaderStyleName::Off => "off",
            HeaderStyleName::XRatelimit => "x-ratelimit",
            HeaderStyleName::Ietf => "ietf",
            HeaderStyleName::Both => "both",
        }
    }
}

impl From<HeaderStyleName> for HeaderStyle {
    fn from(name: HeaderStyleName) -> HeaderStyle {
        match name {
            HeaderStyleName::Off => HeaderStyle::Off,
            HeaderStyleName::XRatelimit => HeaderStyle::XRateLimit,
            HeaderStyleName::Ietf => HeaderStyle::Ietf,
            HeaderStyleName::Both => HeaderStyle::Both,
        }
    }
}

/// [`RetryAfter`] by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryAfterName {
    /// [`RetryAfter::Seconds`].
    #[default]
    Seconds,
    /// [`RetryAfter::HttpDate`].
    HttpDate,
}

impl RetryAfterName {
    /// The name in the file.
    pub fn name(self) -> &'static str {
        match self {
            RetryAfterName::Seconds => "seconds",
            RetryAfterName::HttpDate => "http-date",
        }
    }
}

impl From<RetryAfterName> for RetryAfter {
    fn from(name: RetryAfterName) -> RetryAfter {
        match name {
            RetryAfterName::Seconds => RetryAfter::Seconds,
            RetryAfterName::HttpDate => RetryAfter::HttpDate,
        }
    }
}

/// The body of 429 responses: `plain-text` (the default), `problem` (RFC 9457
/// JSON) or `grpc` (a gRPC status, for gRPC services).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectionStyle {
    /// [`RejectionBody::PlainText`].
    #[default]
    PlainText,
    /// [`RejectionBody::Problem`].
    Problem,
    /// [`RejectionBody::Grpc`].
    Grpc,
}

impl RejectionStyle {
    /// The name in the file.
    pub fn name(self) -> &'static str {
        match self {
            RejectionStyle::PlainText => "plain-text",
            RejectionStyle::Problem => "problem",
            RejectionStyle::Grpc => "grpc",
        }
    }

    /// The builder's [`RejectionBody`].
    pub fn body(self) -> RejectionBody {
        match self {
            RejectionStyle::PlainText => RejectionBody::PlainText,
            RejectionStyle::Problem => RejectionBody::Problem,
            RejectionStyle::Grpc => RejectionBody::Grpc,
        }
    }
}

/// What happens when the storage fails or misses the deadline: `policy`
/// (`fail-closed`, the default; `fail-open`; `fallback`), `deadline` (a duration such
/// as `"250ms"`, default `"1s"`, or `"none"`), and, with `fallback` only,
/// `first_probe` (default `"1s"`) and `max_probe` (default `"32s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureConfig {
    /// The policy.
    pub policy: FailurePolicy,
    /// The per-request deadline; `None` waits as long as the storage takes.
    pub deadline: Option<Duration>,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            policy: FailurePolicy::FailClosed,
            deadline: Some(Duration::from_secs(1)),
        }
    }
}

impl FailureConfig {
    /// The builder's [`FailurePolicy`].
    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// The builder's deadline.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }
}

impl fmt::Display for FailureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            FailurePolicy::FailOpen => f.write_str("fail open")?,
            FailurePolicy::Fallback {
                first_probe,
                max_probe,
            } => write!(
                f,
                "in-memory fallback, probing after {first_probe:?} up to every {max_probe:?}"
            )?,
            _ => f.write_str("fail closed (503)")?,
        }
        match self.deadline {
            Some(d) => write!(f, ", deadline {d:?}"),
            None => f.write_str(", no deadline"),
        }
    }
}

#[derive(serde::Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum PolicyName {
    #[default]
    FailClosed,
    FailOpen,
    Fallback,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFailure {
    #[serde(default)]
    policy: PolicyName,
    #[serde(default)]
    deadline: Option<String>,
    #[serde(default)]
    first_probe: Option<String>,
    #[serde(default)]
    max_probe: Option<String>,
}

fn duration(field: &str, text: &str) -> Result<Duration, String> {
    limiter_options::duration(text).map_err(|e| format!("{field}: {e}"))
}

impl TryFrom<RawFailure> for FailureConfig {
    type Error = String;

    fn try_from(raw: RawFailure) -> Result<FailureConfig, String> {
        let deadline = match raw.deadline.as_deref() {
            None => Some(Duration::from_secs(1)),
            Some("none") => None,
            Some(text) => Some(duration("deadline", text)?),
        };
        let policy = match raw.policy {
            PolicyName::Fallback => {
                let first_probe = match raw.first_probe.as_deref() {
                    Some(text) => duration("first_probe", text)?,
                    None => Duration::from_secs(1),
                };
                let max_probe = match raw.max_probe.as_deref() {
                    Some(text) => duration("max_probe", text)?,
                    None => Duration::from_secs(32).max(first_probe),
                };
                if max_probe < first_probe {
                    return Err(format!(
                        "max_probe ({max_probe:?}) is shorter than first_probe ({first_probe:?})"
                    ));
                }
                FailurePolicy::Fallback {
                    first_probe,
                    max_probe,
                }
            }
            _ if raw.first_probe.is_some() || raw.max_probe.is_some() => {
                return Err("`first_probe` and `max_probe` need policy = \"fallback\"".into())
            }
            PolicyName::FailOpen => FailurePolicy::FailOpen,
            PolicyName::FailClosed => FailurePolicy::FailClosed,
        };
        Ok(FailureConfig { policy, deadline })
    }
}

impl<'de> Deserialize<'de> for FailureConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FailureConfig::try_from(RawFailure::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// Which requests are charged although the router does not hand them to a handler:
/// `unmatched` (404s), `options` (CORS preflights) and `method_not_allowed` (405s),
/// each `false` by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ChargeConfig {
    /// [`HttpLimiterBuilder::charge_unmatched`](crate::HttpLimiterBuilder::charge_unmatched).
    #[serde(default)]
    pub unmatched: bool,
    /// [`HttpLimiterBuilder::charge_options`](crate::HttpLimiterBuilder::charge_options).
    #[serde(default)]
    pub options: bool,
    /// [`HttpLimiterBuilder::charge_method_not_allowed`](crate::HttpLimiterBuilder::charge_method_not_allowed).
    #[serde(default)]
    pub method_not_allowed: bool,
}
