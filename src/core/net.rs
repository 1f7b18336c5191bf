//! Client addresses: address ranges (CIDRs), the one rule that decides a request's client
//! address, and the key an address is counted under (IPv6 by its /64, since one host is
//! commonly given a whole /64).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range such as `10.0.0.0/8`, `::1/128` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn mask_bits(bits: u128, width: u32, prefix: u8) -> u128 {
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        0
    } else {
        let keep = u128::MAX << (width - prefix);
        bits & keep & (u128::MAX >> (128 - width))
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical(self.addr), canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_bits(u128::from(u32::from(net)), 32, self.prefix)
                    == mask_bits(u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_bits(u128::from(net), 128, self.prefix) == mask_bits(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Is `ip` in any of `ranges`?
pub fn in_any(ranges: &[Cidr], ip: IpAddr) -> bool {
    ranges.iter().any(|r| r.contains(ip))
}

/// The key an address is counted under, for limits and caps: an IPv4 address itself, an IPv6
/// address by its /64.
pub fn address_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = Ipv6Addr::from(mask_bits(u128::from(v6), 128, 64));
            format!("{net}/64")
        }
    }
}

/// One address out of a forwarding header's element: `192.0.2.1`, `192.0.2.1:80`,
/// `[2001:db8::1]:4711`, `"[2001:db8::1]"`, `2001:db8::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    // An IPv4 address with a port.
    let (host, _) = s.rsplit_once(':')?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The hops a proxy chain reports, oldest first: `Forwarded`'s `for=` values when the header is
/// there, else `X-Forwarded-For`. `None` when a hop cannot be read.
pub fn forwarded_chain(forwarded: &[&str], x_forwarded_for: &[&str]) -> Option<Vec<IpAddr>> {
    if !forwarded.is_empty() {
        let mut out = vec![];
        for element in forwarded.iter().flat_map(|h| h.split(',')) {
            for pair in element.split(';') {
                if let Some((k, v)) = pair.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("for") {
                        out.push(parse_hop(v)?);
                    }
                }
            }
        }
        return Some(out);
    }
    x_forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(parse_hop)
        .collect()
}

/// The one rule for a request's client address: the peer, unless the peer is a trusted proxy;
/// then the last hop of the chain that is not a trusted proxy (walking back from the peer). A
/// chain that cannot be read, or that is all trusted proxies, leaves the peer.
pub fn client_address(peer: IpAddr, chain: Option<&[IpAddr]>, trusted: &[Cidr]) -> IpAddr {
    if !in_any(trusted, peer) {
        return peer;
    }
    chain
        .and_then(|hops| hops.iter().rev().find(|h| !in_any(trusted, **h)).copied())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let r: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains(ip("10.1.200.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")));
        let lo: Cidr = "::1".parse().unwrap();
        assert!(lo.contains(ip("::1")));
        assert!(!lo.contains(ip("::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(address_key(ip("2001:db8:1:2:bbbb::9")), "2001:db8:1:2::/64");
        assert_eq!(address_key(ip("127.0.0.2")), "127.0.0.2");
        assert_eq!(address_key(ip("::ffff:127.0.0.2")), "127.0.0.2");
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = forwarded_chain(&[], &["1.1.1.1, 203.0.113.7, 10.0.0.5"]).unwrap();
        // From an untrusted peer, the headers count for nothing.
        assert_eq!(
            client_address(ip("198.51.100.1"), Some(&chain), &trusted),
            ip("198.51.100.1")
        );
        // Behind a trusted proxy: the last untrusted hop (a client's own left-hand entries are ignored).
        assert_eq!(
            client_address(ip("10.0.0.9"), Some(&chain), &trusted),
            ip("203.0.113.7")
        );
        let fwd = forwarded_chain(
            &[r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https"#],
            &["9.9.9.9"],
        )
        .unwrap();
        assert_eq!(fwd, vec![ip("192.0.2.43"), ip("2001:db8:cafe::17")]);
        assert_eq!(
            client_address(ip("10.0.0.9"), Some(&fwd), &trusted),
            ip("2001:db8:cafe::17")
        );
        assert!(forwarded_chain(&[], &["1.1.1.1, garbage"]).is_none());
        assert_eq!(client_address(ip("10.0.0.9"), None, &trusted), ip("10.0.0.9"));
        assert_eq!(
            client_address(ip("10.0.0.9"), Some(&[ip("10.0.0.1")]), &trusted),
            ip("10.0.0.9")
        );
        assert_eq!(parse_hop("192.0.2.1:8080"), Some(ip("192.0.2.1")));
    }
}
