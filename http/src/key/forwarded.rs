//! The client address that trusted proxies report in `X-Forwarded-For` or
//! `Forwarded`, parsed strictly.

use std::net::IpAddr;

use ipnet::IpNet;

use super::ip::network_contains;
use super::peer_ip;
use crate::request::RequestInfo;

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
    /// the client itself, whatever the header says. An IPv4 network also holds the
    /// IPv4-mapped IPv6 form of its addresses (`::ffff:10.0.0.1` is in `10.0.0.0/8`).
    ///
    /// ```
    /// use limiter_http::{IpNet, KeySource, ProxyHeader, TrustedProxies};
    /// use std::net::IpAddr;
    ///
    /// let loopback: IpNet = "127.0.0.0/8".parse()?;
    /// let single = IpNet::from("::1".parse::<IpAddr>()?); // one address: ::1/128
    /// let trust = TrustedProxies::Networks(vec![loopback, single]);
    /// let key = KeySource::forwarded(ProxyHeader::XForwardedFor, trust);
    /// # let _ = key;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Networks(Vec<IpNet>),
}

/// The client address per the trusted proxies' header; the peer when the header
/// cannot be believed or read.
pub(super) fn forwarded_client(
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
            while networks.iter().any(|n| network_contains(n, client)) {
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
    use crate::key::tests::key_of;
    use crate::key::KeySource;

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
        let nets = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
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
        // An IPv4-mapped IPv6 peer is in the IPv4 network.
        assert_eq!(
            key_of(&key, "[::ffff:10.0.0.1]:80", &headers).as_deref(),
            Some("203.0.113.9")
        );
        // All trusted: the leftmost.
        let headers = [("x-forwarded-for", "10.9.9.9")];
        assert_eq!(
            key_of(&key, "[::1]:80", &headers).as_deref(),
            Some("10.9.9.9")
        );
    }
}
