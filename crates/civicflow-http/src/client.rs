//! Who a request comes from: the client's address, for the per-address connection caps and
//! rate limits.
//!
//! The address is the socket's peer, unless the peer is one of the configured trusted proxies
//! ([`crate::ServiceConfig::trusted_proxies`]; none by default): then it is read from
//! `X-Forwarded-For`, walking from the right (the hop the proxy itself appended) past every
//! trusted proxy to the first address that is not one. A client can write anything at the
//! left of that header, so nothing left of the first untrusted hop is believed.
//!
//! Only `X-Forwarded-For` is read, never `Forwarded` as well: nginx and Caddy append to
//! `X-Forwarded-For` by default and pass a client's own `Forwarded` header through untouched,
//! so reading both would let a client choose its address by sending the header its proxy does
//! not write (`docs/service.md`, "Behind a reverse proxy").

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// The client's address of a request that came through the service's own accept loop (a
/// request extension; absent for requests handed to the router in-process, which have no
/// socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address the limits charge: the peer, or the forwarded client behind a trusted proxy.
    pub ip: IpAddr,
    /// The socket's peer (a trusted proxy, when `ip` was forwarded).
    pub peer: SocketAddr,
}

/// A network of trusted proxies: an address with a prefix length (`10.0.0.0/8`,
/// `2001:db8::/32`), or one address (`192.0.2.7`, a `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A network that is not `ADDRESS` or `ADDRESS/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{given}' is not an IP address or a network (ADDRESS/PREFIX, e.g. 10.0.0.0/8): {why}")]
pub struct IpNetError {
    given: String,
    why: &'static str,
}

impl IpNet {
    /// The network of `addr`'s first `prefix` bits.
    ///
    /// # Errors
    /// A prefix longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(IpNetError {
                given: format!("{addr}/{prefix}"),
                why: "the prefix is longer than the address",
            });
        }
        Ok(Self {
            addr: canonical(addr),
            prefix,
        })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), 32, self.prefix)
                    == masked(u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.prefix)
                    == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `bits`-bit number.
fn masked(value: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        value >> (bits - prefix)
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why| IpNetError {
            given: text.to_owned(),
            why,
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (
                addr,
                Some(
                    prefix
                        .parse::<u8>()
                        .map_err(|_| error("the prefix is not a number of bits"))?,
                ),
            ),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| error("the address is not an IPv4 or IPv6 address"))?;
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Self::new(addr, prefix).map_err(|e| error(e.why))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, what a dual-stack socket reports for an
/// IPv4 client) as its IPv4 address, so that it matches IPv4 networks and shares its limits.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What the per-address limits count an address as: an IPv4 address alone, an IPv6 address
/// by its /64 (one host is given a whole /64 and can use any address in it, so counting single
/// IPv6 addresses would give it 2^64 buckets).
pub(crate) fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Whether `ip` is one of `trusted`.
pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client's address of a request from `peer` with `headers` (see the module's page).
pub(crate) fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientAddr {
    let direct = ClientAddr {
        ip: canonical(peer.ip()),
        peer,
    };
    if !is_trusted(trusted, peer.ip()) {
        return direct;
    }
    // Every X-Forwarded-For line, in order, is one list (RFC 9110 field combination).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = direct.ip;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Something the proxies did not write as an address: the nearest trusted hop is
            // the last one believed.
            break;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    ClientAddr { ip: client, peer }
}

/// One hop of `X-Forwarded-For`: an address, with a port or IPv6 brackets as some proxies
/// write them (`192.0.2.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(texts: &[&str]) -> Vec<IpNet> {
        texts
            .iter()
            .map(|t| t.parse().expect("a network"))
            .collect()
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(line).expect("a header value"),
            );
        }
        headers
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("an address"), 40_000)
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: IpNet = "10.1.0.0/16".parse().expect("valid");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().expect("ip")),
            "an IPv4-mapped address is its IPv4 address"
        );
        let one: IpNet = "192.0.2.7".parse().expect("valid");
        assert!(one.contains("192.0.2.7".parse().expect("ip")));
        assert!(!one.contains("192.0.2.8".parse().expect("ip")));
        let v6: IpNet = "2001:db8::/32".parse().expect("valid");
        assert!(v6.contains("2001:db8:ffff::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        assert!(!v6.contains("10.1.0.1".parse().expect("ip")));
        let all: IpNet = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains("203.0.113.1".parse().expect("ip")));
        assert_eq!(net.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn a_bad_network_is_refused_saying_why() {
        for (text, why) in [
            ("10.0.0.0/33", "longer than the address"),
            ("::/129", "longer than the address"),
            ("10.0.0.0/x", "not a number"),
            ("10.0.0/8", "not an IPv4 or IPv6"),
            ("", "not an IPv4 or IPv6"),
            ("localhost", "not an IPv4 or IPv6"),
        ] {
            let error = text.parse::<IpNet>().expect_err(text).to_string();
            assert!(error.contains(why), "{text:?}: {error}");
            assert!(error.contains(&format!("'{text}'")), "{error}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let spoofed = headers(&["203.0.113.9"]);
        // An untrusted peer's header is ignored: the peer is the client.
        let direct = resolve(peer("198.51.100.4"), &spoofed, &trusted);
        assert_eq!(direct.ip.to_string(), "198.51.100.4");
        // No proxies configured (the default): never read.
        let direct = resolve(peer("10.0.0.2"), &spoofed, &[]);
        assert_eq!(direct.ip.to_string(), "10.0.0.2");
        // From a trusted proxy: the client it names.
        let forwarded = resolve(peer("10.0.0.2"), &spoofed, &trusted);
        assert_eq!(forwarded.ip.to_string(), "203.0.113.9");
        assert_eq!(forwarded.peer, peer("10.0.0.2"));
        // A trusted proxy without the header: the proxy itself.
        let bare = resolve(peer("10.0.0.2"), &HeaderMap::new(), &trusted);
        assert_eq!(bare.ip.to_string(), "10.0.0.2");
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_whatever_the_client_wrote() {
        let trusted = nets(&["10.0.0.0/8", "192.0.2.1"]);
        // The client wrote "1.1.1.1" itself; the edge proxy appended the real address, an
        // inner proxy appended the edge's.
        let chain = headers(&["1.1.1.1, 203.0.113.9, 192.0.2.1"]);
        let client = resolve(peer("10.0.0.2"), &chain, &trusted);
        assert_eq!(client.ip.to_string(), "203.0.113.9");
        // The same list over two header lines.
        let lines = headers(&["1.1.1.1", "203.0.113.9, 192.0.2.1"]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &lines, &trusted).ip.to_string(),
            "203.0.113.9"
        );
        // Garbage the client wrote left of the real address changes nothing.
        let garbage = headers(&["not-an-ip, 203.0.113.9"]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &garbage, &trusted).ip.to_string(),
            "203.0.113.9"
        );
        // Garbage where the proxy should have written an address: the proxy is the client.
        let broken = headers(&["203.0.113.9, unknown"]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &broken, &trusted).ip.to_string(),
            "10.0.0.2"
        );
        // Ports and brackets as some proxies write them.
        let ported = headers(&["[2001:db8::7]:4711"]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &ported, &trusted).ip.to_string(),
            "2001:db8::7"
        );
        let ported = headers(&["203.0.113.9:5000"]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &ported, &trusted).ip.to_string(),
            "203.0.113.9"
        );
        // Every hop trusted: the leftmost.
        let inside = headers(&["10.9.9.9, 10.0.0.3"]);
        assert_eq!(
            resolve(peer("10.0.0.2"), &inside, &trusted).ip.to_string(),
            "10.9.9.9"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = limit_key("2001:db8:1:2:bbbb::9".parse().expect("ip"));
        let c = limit_key("2001:db8:1:3::1".parse().expect("ip"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            limit_key("::ffff:192.0.2.7".parse().expect("ip")),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }
}
