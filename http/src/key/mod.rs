//! Who a request counts against: the [`KeySource`] and the client identity it
//! yields for a request. Addresses are formatted in [`ip`], forwarding headers read
//! in [`forwarded`].

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderName;

use crate::request::RequestInfo;

mod forwarded;
mod ip;

pub use forwarded::{ProxyHeader, TrustedProxies};
pub use ip::{client_ip_key, ipv6_network};

use forwarded::forwarded_client;
use ip::{write_client_ip, IpText};

type KeyFn = dyn Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync;

/// Where a request's client identity comes from: the identity that limits count
/// against. A source is configured once ([`HttpLimiterBuilder::key`](crate::HttpLimiterBuilder::key),
/// [`Limits::key`](crate::Limits::key)) and read for every request; it is not an
/// extractor.
///
/// The default, [`KeySource::peer`], is the socket peer's address: no header is
/// believed unless configured, so a client cannot pick its own identity by sending
/// `X-Forwarded-For`. IPv6 addresses are grouped by prefix (a /64 by default, see
/// [`ipv6_prefix`](Self::ipv6_prefix)), because one customer usually holds a whole /64.
///
/// A source that yields nothing (a missing header, a custom function returning `None`)
/// skips the limits that use it for that request, as in Flask-Limiter.
///
/// # Examples
///
/// ```
/// use limiter_http::{KeySource, ProxyHeader, TrustedProxies};
///
/// // Behind one reverse proxy that appends to X-Forwarded-For:
/// let behind_proxy = KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(1));
/// // Per API key:
/// let per_api_key = KeySource::header("x-api-key");
/// // Anything else:
/// let per_tenant = KeySource::custom(|request| request.header("x-tenant").map(str::to_owned));
/// # let _ = (behind_proxy, per_api_key, per_tenant);
/// ```
#[derive(Clone)]
pub struct KeySource {
    kind: Kind,
    ipv6_prefix: u8,
}

#[derive(Clone)]
enum Kind {
    Peer,
    Forwarded {
        header: ProxyHeader,
        trust: TrustedProxies,
    },
    Header(HeaderName),
    Custom(Arc<KeyFn>),
    Global,
    /// A header name that did not parse, reported by `validate` at build time.
    InvalidHeader(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Peer => "peer".to_owned(),
            Kind::Forwarded { header, trust } => format!("forwarded({header:?}, {trust:?})"),
            Kind::Header(name) => format!("header({name})"),
            Kind::Custom(_) => "custom".to_owned(),
            Kind::Global => "global".to_owned(),
            Kind::InvalidHeader(name) => format!("invalid header({name:?})"),
        };
        f.debug_struct("KeySource")
            .field("kind", &kind)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource::peer()
    }
}

impl KeySource {
    /// The socket peer's address (the default). Needs the adapter to know the peer:
    /// with axum, serve with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn peer() -> KeySource {
        KeySource {
            kind: Kind::Peer,
            ipv6_prefix: 64,
        }
    }

    /// The client address reported by trusted proxies in `header`, as `trust` says.
    pub fn forwarded(header: ProxyHeader, trust: TrustedProxies) -> KeySource {
        KeySource {
            kind: Kind::Forwarded { header, trust },
            ipv6_prefix: 64,
        }
    }

    /// The value of a request header, such as an API key. Requests without it (or with
    /// a value that is not visible ASCII) skip the limits that use this key. An invalid
    /// header name makes [`build`](crate::HttpLimiterBuilder::build) fail.
    pub fn header(name: &str) -> KeySource {
        let kind = match HeaderName::from_str(name) {
            Ok(name) => Kind::Header(name),
            // Kept as is: `validate` reports it when the limiter is built.
            Err(_) => Kind::InvalidHeader(name.to_owned()),
        };
        KeySource {
            kind,
            ipv6_prefix: 64,
        }
    }

    /// Any function of the request; `None` skips the limits that use this key.
    pub fn custom<F>(f: F) -> KeySource
    where
        F: Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync + 'static,
    {
        KeySource {
            kind: Kind::Custom(Arc::new(f)),
            ipv6_prefix: 64,
        }
    }

    /// One identity for everyone: the limits count all requests together.
    pub fn global() -> KeySource {
        KeySource {
            kind: Kind::Global,
            ipv6_prefix: 64,
        }
    }

    /// How many leading bits of an IPv6 address name one client (default 64; 128 keeps
    /// every address apart). Values above 128 make
    /// [`build`](crate::HttpLimiterBuilder::build) fail. IPv4 addresses, and IPv6
    /// addresses that embed one (`::ffff:a.b.c.d`), always count whole.
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// The client identity this key yields for `request`, or `None` (the limits that
    /// use the key would be skipped). Handy inside a [`custom`](Self::custom) key that
    /// builds on another.
    ///
    /// ```
    /// use limiter_http::{KeySource, RequestInfo};
    /// use http::HeaderMap;
    ///
    /// let headers = HeaderMap::new();
    /// let request = RequestInfo::new("GET", "/", &headers).with_peer("[2001:db8::7]:443".parse()?);
    /// assert_eq!(KeySource::peer().client_id(&request).as_deref(), Some("2001:db8::/64"));
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn client_id(&self, request: &RequestInfo<'_>) -> Option<String> {
        self.extract(request).map(|id| id.as_str().to_owned())
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ipv6_prefix > 128 {
            return Err(format!(
                "IPv6 prefix /{} is longer than 128 bits",
                self.ipv6_prefix
            ));
        }
        if let Kind::InvalidHeader(name) = &self.kind {
            return Err(format!("invalid header name {name:?}"));
        }
        Ok(())
    }

    /// Which request headers [`extract`](Self::extract) reads.
    #[cfg(feature = "actix-web")]
    pub(crate) fn headers_read(&self) -> crate::actix::HeadersRead {
        use crate::actix::HeadersRead;
        match &self.kind {
            Kind::Peer | Kind::Global | Kind::InvalidHeader(_) => HeadersRead::Nothing,
            Kind::Forwarded { header, .. } => HeadersRead::Named(vec![match header {
                ProxyHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
                ProxyHeader::Forwarded => http::header::FORWARDED,
            }]),
            Kind::Header(name) => HeadersRead::Named(vec![name.clone()]),
            Kind::Custom(_) => HeadersRead::All,
        }
    }

    /// The client identity of `request`, or `None` to skip.
    pub(crate) fn extract<'r>(&self, request: &RequestInfo<'r>) -> Option<ClientId<'r>> {
        match &self.kind {
            Kind::Peer => Some(ClientId::Ip(self.format_ip(peer_ip(request)))),
            Kind::Forwarded { header, trust } => {
                let ip = forwarded_client(request, *header, trust);
                Some(ClientId::Ip(self.format_ip(ip)))
            }
            Kind::Header(name) => request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(ClientId::Borrowed),
            Kind::Custom(f) => f(request).map(ClientId::Owned),
            Kind::Global => Some(ClientId::Borrowed("*")),
            Kind::InvalidHeader(_) => None,
        }
    }

    fn format_ip(&self, ip: Option<IpAddr>) -> IpText {
        let mut out = IpText::default();
        match ip {
            // `IpText` holds the longest form ("ffff:…:ffff/128"), so writing cannot fail.
            Some(ip) => {
                let _ = write_client_ip(&mut out, ip, self.ipv6_prefix);
            }
            None => {
                let _ = out.write_str("unknown");
            }
        }
        out
    }
}

static WARNED_NO_PEER: AtomicBool = AtomicBool::new(false);

fn peer_ip(request: &RequestInfo<'_>) -> Option<IpAddr> {
    let peer = request.peer_addr().map(|a| a.ip());
    if peer.is_none() && !WARNED_NO_PEER.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "rate limiter: the request carries no peer address, so every such request \
             counts as one client \"unknown\"; with axum, serve with \
             into_make_service_with_connect_info::<SocketAddr>()"
        );
    }
    peer
}

/// The identity a key yields: borrowed from the request, owned, or an address
/// formatted on the stack.
#[derive(Debug)]
pub(crate) enum ClientId<'r> {
    Borrowed(&'r str),
    Owned(String),
    Ip(IpText),
}

impl ClientId<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            ClientId::Borrowed(s) => s,
            ClientId::Owned(s) => s,
            ClientId::Ip(text) => text.as_str(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderMap;

    /// The identity `key` yields for a request from `peer` with `headers`.
    pub(crate) fn key_of(key: &KeySource, peer: &str, headers: &[(&str, &str)]) -> Option<String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(HeaderName::from_str(name).unwrap(), value.parse().unwrap());
        }
        let request = RequestInfo::new("GET", "/", &map).with_peer(peer.parse().unwrap());
        key.extract(&request).map(|id| id.as_str().to_owned())
    }

    #[test]
    fn peer_ignores_forwarding_headers() {
        let key = KeySource::peer();
        let got = key_of(
            &key,
            "198.51.100.1:1000",
            &[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")],
        );
        assert_eq!(got.as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn header_key_and_missing_header() {
        let key = KeySource::header("x-api-key");
        assert_eq!(
            key_of(&key, "1.2.3.4:1", &[("x-api-key", "abc")]).as_deref(),
            Some("abc")
        );
        assert_eq!(key_of(&key, "1.2.3.4:1", &[]), None);
        assert!(KeySource::header("bad header").validate().is_err());
        assert!(KeySource::peer().ipv6_prefix(129).validate().is_err());
    }
}
