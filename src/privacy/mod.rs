//! Types for secrets and personal data that cannot leak through logs by accident.
//!
//! Design note: client IP addresses are personal data under the GDPR, and API keys are
//! secrets. Rather than trusting every log call to remember that, the values travel in types
//! whose `Debug` and `Display` print only what may be printed: [`Secret`] prints nothing of its
//! content, [`ClientIp`] prints the truncated network (/24 for IPv4, /48 for IPv6) by default.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A secret value (API key, token) whose formatting never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the few places that must use it (hashing, the one response).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A client's address, shown only as its truncated network.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(IpAddr);

impl ClientIp {
    /// Wraps an address.
    pub fn new(ip: IpAddr) -> Self {
        Self(crate::cidr::canonical(ip))
    }

    /// The full address, for access checks only; never log it.
    pub fn expose(&self) -> IpAddr {
        self.0
    }

    /// The network to record: /24 for IPv4, /48 for IPv6.
    pub fn truncated(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{}/24", Ipv4Addr::new(a, b, c, 0))
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        }
    }
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.truncated())
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.truncated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
        let ip = ClientIp::new("127.3.4.5".parse().unwrap());
        assert_eq!(format!("{ip} {ip:?}"), "127.3.4.0/24 127.3.4.0/24");
        let ip = ClientIp::new("2001:db8:1:2::5".parse().unwrap());
        assert_eq!(ip.to_string(), "2001:db8:1::/48");
        let mapped = ClientIp::new("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(mapped.to_string(), "10.1.2.0/24");
    }
}
