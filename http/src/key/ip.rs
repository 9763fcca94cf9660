//! Client addresses as key text: IPv4 whole, IPv6 by network prefix, formatted on
//! the stack.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

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

pub(super) fn write_client_ip(out: &mut IpText, ip: IpAddr, ipv6_prefix: u8) -> fmt::Result {
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

/// Whether `ip` is in `net`, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
/// counting as the IPv4 address it embeds, and the other way round.
pub(super) fn network_contains(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip)
        || match ip {
            IpAddr::V4(v4) => net.contains(&IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| net.contains(&IpAddr::V4(v4))),
        }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ipv4_networks_hold_ipv4_mapped_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let v4: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(network_contains(&v4, ip("10.1.2.3")));
        assert!(network_contains(&v4, ip("::ffff:10.1.2.3")));
        assert!(!network_contains(&v4, ip("::ffff:11.1.2.3")));
        assert!(
            !network_contains(&v4, ip("::10.1.2.3")),
            "IPv4-compatible is not mapped"
        );
        // An IPv4-mapped IPv6 network holds the IPv4 addresses it maps.
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(network_contains(&mapped, ip("::ffff:10.9.9.9")));
        assert!(network_contains(&mapped, ip("10.9.9.9")));
        assert!(!network_contains(&mapped, ip("11.9.9.9")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(network_contains(&v6, ip("2001:db8:1::1")));
        assert!(!network_contains(&v6, ip("10.1.2.3")));
        let host = IpNet::from(ip("::1"));
        assert!(network_contains(&host, ip("::1")));
        assert!(!network_contains(&host, ip("::2")));
    }
}
