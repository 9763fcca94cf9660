//! Who a request counts against: the key source and the client identity it yields.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderName;

use crate::request::RequestInfo;

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

/// Which header carries the addresses that proxies saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1` (only `for=` is read).
    Forwarded,
}

/// Which proxies in front of the service are trusted to report the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxies {
    /// This many proxies stand in front of the service, each appending the address it
    /// saw. The client is the address that many hops from the right of the chain
    /// `header entries…, peer`: with `Hops(1)`, the last header entry (written by the
    /// proxy the service talks to). When the chain is shorter, its leftmost address.
    /// `Hops(0)` ignores the header.
    Hops(usize),
    /// Only peers in these networks are proxies. Walking the chain from the peer
    /// leftwards, the first address outside them is the client. A peer outside them is
    /// the client itself, whatever the header says.
    Networks(Vec<IpNetwork>),
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

/// An address formatted on the stack: the longest form, a full IPv6 address with a
/// prefix, is 43 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl Default for IpText {
    fn default() -> Self {
        IpText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl IpText {
    /// Appends one ASCII byte; the buffer holds the longest address, so nothing is
    /// ever dropped for an address.
    fn push_byte(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The first `bits` bits of `ip`, the rest zero.
///
/// ```
/// use limiter_http::ipv6_network;
/// use std::net::Ipv6Addr;
///
/// let ip: Ipv6Addr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse()?;
/// assert_eq!(ipv6_network(ip, 64), "2001:db8:1:2::".parse::<Ipv6Addr>()?);
/// assert_eq!(ipv6_network(ip, 48), "2001:db8:1::".parse::<Ipv6Addr>()?);
/// assert_eq!(ipv6_network(ip, 128), ip);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn ipv6_network(ip: Ipv6Addr, bits: u8) -> Ipv6Addr {
    let bits = u32::from(bits.min(128));
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    Ipv6Addr::from(u128::from(ip) & mask)
}

/// The client identity an address yields: an IPv4 address whole (also when embedded
/// in IPv6 as `::ffff:a.b.c.d`), an IPv6 address as its network of `ipv6_prefix`
/// bits, with the prefix length when below 128.
///
/// ```
/// use limiter_http::client_ip_key;
///
/// assert_eq!(client_ip_key("203.0.113.9".parse()?, 64), "203.0.113.9");
/// assert_eq!(client_ip_key("::ffff:203.0.113.9".parse()?, 64), "203.0.113.9");
/// assert_eq!(client_ip_key("2001:db8::1".parse()?, 64), "2001:db8::/64");
/// assert_eq!(client_ip_key("2001:db8::1".parse()?, 128), "2001:db8::1");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn client_ip_key(ip: IpAddr, ipv6_prefix: u8) -> String {
    let mut text = IpText::default();
    let _ = write_client_ip(&mut text, ip, ipv6_prefix);
    text.as_str().to_owned()
}

fn write_client_ip(out: &mut IpText, ip: IpAddr, ipv6_prefix: u8) -> fmt::Result {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            // By hand: on every request, and the formatting machinery would cost more
            // than the rest of the key.
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push_byte(b'.');
                }
                if octet >= 100 {
                    out.push_byte(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push_byte(b'0' + octet / 10 % 10);
                }
                out.push_byte(b'0' + octet % 10);
            }
            Ok(())
        }
        IpAddr::V6(v6) if ipv6_prefix >= 128 => write!(out, "{v6}"),
        IpAddr::V6(v6) => write!(out, "{}/{}", ipv6_network(v6, ipv6_prefix), ipv6_prefix),
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An IP network, such as `10.0.0.0/8` or `2001:db8::/32`; a bare address is a
/// network of one.
///
/// ```
/// use limiter_http::IpNetwork;
///
/// let net: IpNetwork = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse()?));
/// assert!(!net.contains("11.0.0.1".parse()?));
/// assert!("::1".parse::<IpNetwork>()?.contains("::1".parse()?));
/// assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP network {0:?}: expected an address or address/prefix-length")]
pub struct IpNetworkError(String);

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetworkError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(IpNetwork { addr, prefix })
    }
}

impl IpNetwork {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical(self.addr), canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                ipv6_network(net, self.prefix) == ipv6_network(ip, self.prefix)
            }
            _ => false,
        }
    }
}

/// The client address per the trusted proxies' header; the peer when the header
/// cannot be believed or read.
fn forwarded_client(
    request: &RequestInfo<'_>,
    header: ProxyHeader,
    trust: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer_ip(request)?;
    let name = match header {
        ProxyHeader::XForwardedFor => "x-forwarded-for",
        ProxyHeader::Forwarded => "forwarded",
    };
    // Entries from the right (nearest hop first); multiple header lines read as one
    // list in order.
    let mut entries = request
        .headers()
        .get_all(name)
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','))
        .map(move |entry| match header {
            ProxyHeader::XForwardedFor => x_forwarded_for_node(entry),
            ProxyHeader::Forwarded => forwarded_node(entry),
        });
    match trust {
        TrustedProxies::Hops(hops) => {
            let mut client = peer;
            for _ in 0..*hops {
                match entries.next() {
                    Some(Some(ip)) => client = ip,
                    // A trusted proxy wrote something that is not an address: believe
                    // nothing from the header.
                    Some(None) => return Some(peer),
                    None => break,
                }
            }
            Some(client)
        }
        TrustedProxies::Networks(networks) => {
            let mut client = peer;
            while networks.iter().any(|n| n.contains(client)) {
                match entries.next() {
                    Some(Some(ip)) => client = ip,
                    Some(None) => return Some(peer),
                    None => break,
                }
            }
            Some(client)
        }
    }
}

/// The address in the `for=` parameter of one RFC 7239 `Forwarded` element, or `None`
/// when there is none, it is obfuscated or `unknown`, or it does not parse: a token or
/// a quoted string (quotes balanced, no escapes) holding a node, `1.2.3.4`,
/// `1.2.3.4:80`, `[2001:db8::1]` or `[2001:db8::1]:80` (ports may be obfuscated,
/// `_x`). An IPv6 address must be in brackets. A parameter given twice is malformed.
fn forwarded_node(element: &str) -> Option<IpAddr> {
    let mut values = element.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    });
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    if value.contains(['"', '\\']) {
        return None;
    }
    parse_node(value, true)
}

/// The address of one `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:80`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:80`; anything else is `None`.
fn x_forwarded_for_node(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    match entry.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => parse_node(entry, false),
    }
}

/// An IPv4 address or a bracketed IPv6 address, then optionally `:` and a port of 1
/// to 5 digits up to 65535 (or, with `obfuscated_port`, `_` and letters, digits,
/// `.`, `_` or `-`), and nothing else.
fn parse_node(node: &str, obfuscated_port: bool) -> Option<IpAddr> {
    let (ip, rest) = match node.strip_prefix('[') {
        Some(bracketed) => {
            let (v6, rest) = bracketed.split_once(']')?;
            (IpAddr::V6(v6.parse().ok()?), rest)
        }
        None => {
            let (v4, rest) = node.split_at(node.find(':').unwrap_or(node.len()));
            (IpAddr::V4(v4.parse().ok()?), rest)
        }
    };
    if rest.is_empty() {
        return Some(ip);
    }
    let port = rest.strip_prefix(':')?;
    let valid = match port.strip_prefix('_') {
        Some(obfuscated) => {
            obfuscated_port
                && !obfuscated.is_empty()
                && obfuscated
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => {
            (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok()
        }
    };
    valid.then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn key_of(key: &KeySource, peer: &str, headers: &[(&str, &str)]) -> Option<String> {
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
    fn hops_count_from_the_right() {
        let xff =
            |hops| KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(hops));
        let headers = [("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")];
        let peer = "10.0.0.1:80";
        assert_eq!(key_of(&xff(0), peer, &headers).as_deref(), Some("10.0.0.1"));
        assert_eq!(key_of(&xff(1), peer, &headers).as_deref(), Some("10.0.0.2"));
        assert_eq!(
            key_of(&xff(2), peer, &headers).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(key_of(&xff(3), peer, &headers).as_deref(), Some("6.6.6.6"));
        // Shorter chain: the leftmost address.
        assert_eq!(key_of(&xff(9), peer, &headers).as_deref(), Some("6.6.6.6"));
        // No header: the peer.
        assert_eq!(key_of(&xff(1), peer, &[]).as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn several_header_lines_read_as_one_list() {
        let key = KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(2));
        let headers = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
        ];
        assert_eq!(
            key_of(&key, "10.0.0.1:80", &headers).as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_header_for_values() {
        let key = KeySource::forwarded(ProxyHeader::Forwarded, TrustedProxies::Hops(1));
        let cases = [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            (
                "for=1.1.1.1, For=\"[2001:db8:cafe::17]:4711\"",
                "2001:db8:cafe::/64",
            ),
            ("for=1.1.1.1, for=198.51.100.17:8080", "198.51.100.17"),
            // Obfuscated: believe nothing, use the peer.
            ("for=_hidden", "10.0.0.1"),
        ];
        for (header, want) in cases {
            assert_eq!(
                key_of(&key, "10.0.0.1:80", &[("forwarded", header)]).as_deref(),
                Some(want),
                "{header}"
            );
        }
    }

    #[test]
    fn malformed_forwarded_values_fall_back_to_the_peer() {
        let key = KeySource::forwarded(ProxyHeader::Forwarded, TrustedProxies::Hops(1));
        for header in [
            "for=[2001:db8::1",
            "for=\"[2001:db8::1\"",
            "for=\"[::1]:\"",
            "for=\"[::1]:80x\"",
            "for=\"[::1]x\"",
            "for=\"[::1]:123456\"",
            "for=\"[::1]:65536\"",
            "for=\"1.2.3.4",
            "for=1.2.3.4\"",
            "for=\"",
            "for=",
            "for=1.2.3.4:",
            "for=1.2.3.4:_",
            "for=2001:db8::1",
            "for=\"2001:db8::1\"",
            "for=\"1.2.3.4\\\"\"",
            "for=1.2.3.4;for=5.6.7.8",
            "for=1.2.3",
            "for=01.2.3.4",
            "for=unknown",
            "proto=https",
        ] {
            assert_eq!(
                key_of(&key, "10.0.0.1:80", &[("forwarded", header)]).as_deref(),
                Some("10.0.0.1"),
                "{header}"
            );
        }
        // Well-formed neighbours of the above are believed.
        for (header, want) in [
            ("for=\"[2001:db8::1]\"", "2001:db8::/64"),
            ("for=\"[::1]:80\"", "::/64"),
            ("for=\"[2001:db8::1]:_proxy-7\"", "2001:db8::/64"),
            ("for=1.2.3.4:65535", "1.2.3.4"),
            ("for=\"1.2.3.4:_x.y\"", "1.2.3.4"),
            ("FOR=1.2.3.4;proto=https", "1.2.3.4"),
        ] {
            assert_eq!(
                key_of(&key, "10.0.0.1:80", &[("forwarded", header)]).as_deref(),
                Some(want),
                "{header}"
            );
        }
    }

    #[test]
    fn malformed_x_forwarded_for_entries_fall_back_to_the_peer() {
        let key = KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(1));
        for header in [
            "[2001:db8::1",
            "[::1]:",
            "[::1]:80x",
            "[::1]]",
            "1.2.3.4:",
            "1.2.3.4:99999",
            "1.2.3.4:_obf",
            "1.2.3.4 5.6.7.8",
            "\"1.2.3.4\"",
            "",
            "unknown",
        ] {
            assert_eq!(
                key_of(&key, "10.0.0.1:80", &[("x-forwarded-for", header)]).as_deref(),
                Some("10.0.0.1"),
                "{header:?}"
            );
        }
        for (header, want) in [
            ("2001:db8::1", "2001:db8::/64"),
            ("[2001:db8::1]", "2001:db8::/64"),
            ("[2001:db8::1]:443", "2001:db8::/64"),
            ("1.2.3.4:80", "1.2.3.4"),
            (" 1.2.3.4 ", "1.2.3.4"),
        ] {
            assert_eq!(
                key_of(&key, "10.0.0.1:80", &[("x-forwarded-for", header)]).as_deref(),
                Some(want),
                "{header:?}"
            );
        }
    }

    #[test]
    fn trusted_networks() {
        let nets = vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        let key = KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Networks(nets));
        let headers = [("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")];
        assert_eq!(
            key_of(&key, "10.0.0.1:80", &headers).as_deref(),
            Some("203.0.113.9")
        );
        // An untrusted peer is the client, whatever it sends.
        assert_eq!(
            key_of(&key, "198.51.100.7:80", &headers).as_deref(),
            Some("198.51.100.7")
        );
        // All trusted: the leftmost.
        let headers = [("x-forwarded-for", "10.9.9.9")];
        assert_eq!(
            key_of(&key, "[::1]:80", &headers).as_deref(),
            Some("10.9.9.9")
        );
    }

    #[test]
    fn ipv6_grouping() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_ip_key(a, 64), client_ip_key(b, 64));
        assert_ne!(client_ip_key(a, 64), client_ip_key(c, 64));
        assert_eq!(client_ip_key(a, 56), client_ip_key(c, 56));
        assert_ne!(client_ip_key(a, 128), client_ip_key(b, 128));
        assert_eq!(client_ip_key(a, 0), "::/0");
        for v4 in ["0.0.0.0", "9.10.99.100", "255.255.255.255", "1.2.3.4"] {
            assert_eq!(client_ip_key(v4.parse().unwrap(), 64), v4);
        }
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(
            client_ip_key(longest, 127),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"
        );
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
