//! Types for secrets and personal data that cannot leak through logs by accident.
//!
//! Design note: client IP addresses are personal data under the GDPR, and API keys are
//! secrets. Rather than trusting every log call to remember that, the values travel in types
//! whose `Debug` and `Display` print only what may be printed: [`Secret`] prints nothing of its
//! content, [`ClientIp`] prints the truncated network (/24 for IPv4, /48 for IPv6); what is
//! recorded follows [`IpPolicy`]. Subdomains appear in logs as keyed pseudonyms unless the
//! operator asks for them in full ([`pseudonym`]), since logs outlive erasure. [`Privacy`]
//! holds the retention periods, and [`report`] writes the record of processing activities
//! (GDPR Art. 30) from the running configuration.

pub(crate) mod pseudonym;
pub(crate) mod report;

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
pub(crate) struct ClientIp(IpAddr);

impl ClientIp {
    /// Wraps an address.
    pub(crate) fn new(ip: IpAddr) -> Self {
        Self(crate::cidr::canonical(ip))
    }

    /// The full address, for access checks only; never log it.
    pub(crate) fn expose(&self) -> IpAddr {
        self.0
    }

    /// The network to record: /24 for IPv4, /48 for IPv6.
    pub(crate) fn truncated(&self) -> String {
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

/// How client addresses are recorded in logs and the audit trail (`privacy.client_ip`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpPolicy {
    /// The /24 (IPv4) or /48 (IPv6) network: enough to spot abuse, not to single out a host.
    #[default]
    Truncated,
    /// The whole address (e.g. for fail2ban).
    Full,
    /// Nothing.
    None,
}

impl IpPolicy {
    /// The name used in the configuration.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Full => "full",
            Self::None => "none",
        }
    }

    /// What may be recorded of `ip`.
    pub(crate) fn render(self, ip: ClientIp) -> String {
        match self {
            Self::Truncated => ip.truncated(),
            Self::Full => ip.0.to_string(),
            Self::None => "-".to_owned(),
        }
    }
}

/// Retention and minimisation settings (`[privacy]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Privacy {
    /// How client addresses are recorded.
    pub(crate) client_ip: IpPolicy,
    /// How subdomains are written into logs.
    pub(crate) log_subdomain: pseudonym::SubdomainPolicy,
    /// Seconds audit entries are kept.
    pub(crate) audit_retention: u64,
    /// Seconds a TXT value is kept after it was set.
    pub(crate) txt_retention: u64,
    /// Seconds an account may go unused before it is deleted; `None` keeps accounts.
    pub(crate) account_expiry: Option<u64>,
    /// Seconds between purges.
    pub(crate) purge_interval: u64,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            client_ip: IpPolicy::Truncated,
            log_subdomain: pseudonym::SubdomainPolicy::Pseudonym { key_file: None },
            audit_retention: 30 * 86_400,
            txt_retention: 7 * 86_400,
            account_expiry: None,
            purge_interval: 3600,
        }
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
        assert_eq!(IpPolicy::Full.render(mapped), "10.1.2.3");
        assert_eq!(IpPolicy::None.render(mapped), "-");
    }
}
