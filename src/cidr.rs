//! IP networks written as CIDR (`192.0.2.0/24`, `2001:db8::/32`).
//!
//! Design note: used for acme-dns's per-account `allowfrom` and for our trusted-proxy list. The
//! text form is parsed the way acme-dns (Go `net.ParseCIDR`) does: an address and a prefix
//! length are both required, host bits may be set (`192.168.100.1/24` is the network
//! 192.168.100.0/24), and surrounding brackets are removed first. IPv4-mapped IPv6 client
//! addresses are compared as IPv4, so a dual-stack socket does not defeat an IPv4 rule.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address as written (host bits kept, for display).
    addr: IpAddr,
    /// Prefix length in bits.
    prefix: u8,
}

/// A string that is not `address/prefix`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a network in CIDR form (address/prefix)")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(text.to_owned());
        let stripped: String = text.chars().filter(|c| *c != '[' && *c != ']').collect();
        let (addr, prefix) = stripped.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Folds an IPv4-mapped IPv6 address to IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Whether `ip` lies in this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let c: Cidr = "192.168.100.1/24".parse().unwrap();
        assert_eq!(c.to_string(), "192.168.100.1/24");
        assert!(c.contains("192.168.100.77".parse().unwrap()));
        assert!(!c.contains("192.168.101.1".parse().unwrap()));
        assert!("[::1]/64".parse::<Cidr>().is_ok());
        assert!("10.0.0.1".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0.0/".parse::<Cidr>().is_err());
        assert!("".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(all.contains("::ffff:8.8.8.8".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
    }
}
