//! The key source in a [`Config`](super::Config).

use std::fmt;
use std::str::FromStr;

use http::HeaderName;
use ipnet::IpNet;
use serde::de::{self, Deserialize, Deserializer};

use crate::{KeySource, ProxyHeader, TrustedProxies};

/// Where requests find their client: a table with `source` (`peer`, the default;
/// `forwarded`; `header`; `global`) and the fields that source takes:
///
/// - `forwarded`: `header` (`x-forwarded-for`, the default, or `forwarded`) and
///   exactly one of `trusted_hops` (a number of proxies) and `trusted_networks`
///   (a list of networks such as `"10.0.0.0/8"`);
/// - `header`: `header`, the request header holding the identity (an API key);
/// - `peer` and `forwarded`: `ipv6_prefix`, the bits of an IPv6 address that name one
///   client (default 64).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The source.
    pub kind: SourceKind,
    /// The IPv6 grouping, in bits.
    pub ipv6_prefix: u8,
}

/// The kinds of [`KeyConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// The socket peer's address.
    Peer,
    /// The address that trusted proxies report.
    Forwarded {
        /// The header they write.
        header: ProxyHeader,
        /// Which of them are trusted.
        trust: TrustedProxies,
    },
    /// A request header's value.
    Header(HeaderName),
    /// One identity for everyone.
    Global,
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            kind: SourceKind::Peer,
            ipv6_prefix: 64,
        }
    }
}

impl KeyConfig {
    /// The builder's [`KeySource`].
    pub fn source(&self) -> KeySource {
        let source = match &self.kind {
            SourceKind::Peer => KeySource::peer(),
            SourceKind::Forwarded { header, trust } => KeySource::forwarded(*header, trust.clone()),
            SourceKind::Header(name) => KeySource::header(name.as_str()),
            SourceKind::Global => KeySource::global(),
        };
        source.ipv6_prefix(self.ipv6_prefix)
    }
}

impl fmt::Display for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SourceKind::Peer => write!(f, "peer address, IPv6 /{}", self.ipv6_prefix),
            SourceKind::Forwarded { header, trust } => {
                let header = match header {
                    ProxyHeader::XForwardedFor => "X-Forwarded-For",
                    ProxyHeader::Forwarded => "Forwarded",
                };
                let trust = match trust {
                    TrustedProxies::Hops(n) => format!("{n} trusted hop(s)"),
                    TrustedProxies::Networks(nets) => {
                        let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
                        format!("trusted networks {}", nets.join(", "))
                    }
                };
                write!(f, "{header} from {trust}, IPv6 /{}", self.ipv6_prefix)
            }
            SourceKind::Header(name) => write!(f, "header {name}"),
            SourceKind::Global => f.write_str("global (one budget for everyone)"),
        }
    }
}

#[derive(serde::Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum RawSource {
    #[default]
    Peer,
    Forwarded,
    Header,
    Global,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    #[serde(default)]
    source: RawSource,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    trusted_hops: Option<usize>,
    #[serde(default)]
    trusted_networks: Option<Vec<String>>,
    #[serde(default)]
    ipv6_prefix: Option<u8>,
}

impl TryFrom<RawKey> for KeyConfig {
    type Error = String;

    fn try_from(raw: RawKey) -> Result<KeyConfig, String> {
        let trust_given = raw.trusted_hops.is_some() || raw.trusted_networks.is_some();
        if trust_given && !matches!(raw.source, RawSource::Forwarded) {
            return Err("`trusted_hops` and `trusted_networks` need source = \"forwarded\"".into());
        }
        if raw.ipv6_prefix.is_some() && matches!(raw.source, RawSource::Header | RawSource::Global)
        {
            return Err(
                "`ipv6_prefix` applies to addresses: source = \"peer\" or \"forwarded\"".into(),
            );
        }
        let ipv6_prefix = raw.ipv6_prefix.unwrap_or(64);
        if ipv6_prefix > 128 {
            return Err(format!("ipv6_prefix {ipv6_prefix} is longer than 128 bits"));
        }
        let kind = match raw.source {
            RawSource::Peer | RawSource::Global if raw.header.is_some() => {
                return Err("`header` needs source = \"forwarded\" or \"header\"".into())
            }
            RawSource::Peer => SourceKind::Peer,
            RawSource::Global => SourceKind::Global,
            RawSource::Header => {
                let name = raw
                    .header
                    .ok_or("source = \"header\" needs `header`, the header's name")?;
                let name = HeaderName::from_str(&name)
                    .map_err(|_| format!("{name:?} is not a valid header name"))?;
                SourceKind::Header(name)
            }
            RawSource::Forwarded => {
                let header = match raw.header.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("x-forwarded-for") => ProxyHeader::XForwardedFor,
                    Some("forwarded") => ProxyHeader::Forwarded,
                    Some(_) => {
                        return Err(
                            "with source = \"forwarded\", `header` is \"x-forwarded-for\" or \"forwarded\""
                                .into(),
                        )
                    }
                };
                let trust = match (raw.trusted_hops, raw.trusted_networks) {
                    (Some(hops), None) => TrustedProxies::Hops(hops),
                    (None, Some(networks)) => TrustedProxies::Networks(
                        networks
                            .iter()
                            .map(|n| parse_network(n))
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => {
                        return Err(
                            "source = \"forwarded\" needs exactly one of `trusted_hops` \
                                    and `trusted_networks`"
                                .into(),
                        )
                    }
                };
                SourceKind::Forwarded { header, trust }
            }
        };
        Ok(KeyConfig { kind, ipv6_prefix })
    }
}

/// A network (`10.0.0.0/8`) or a single address (`::1`).
fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a network such as 10.0.0.0/8 or an address"))
}

impl<'de> Deserialize<'de> for KeyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KeyConfig::try_from(RawKey::deserialize(d)?).map_err(de::Error::custom)
    }
}
