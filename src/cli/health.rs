//! `acme-delegate healthcheck`: is the server of this configuration answering? For the
//! container image's `HEALTHCHECK` (an image built `FROM scratch` has no curl or dig).
//!
//! Design note: it asks what a client would see, over the sockets the configuration names: the
//! zone's SOA over DNS (UDP when it is served, else a TCP connection), and `GET /health` on the
//! API. An API on TLS is only connected to: its certificate is for a public name, not for the
//! loopback address probed here, and the check is about the process, not the certificate. A
//! wildcard listen address (`0.0.0.0`, `::`) is probed on the loopback address of its family.
//! The server's own code is not reused for the DNS side: the client's small stub asks, so the
//! check sees what a resolver would.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::client::dns;
use crate::config::{Config, Tls};

/// How long each probe may wait (a health check has a few seconds in all).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Probes DNS and the API; `Ok` with a one-line summary when both answer.
pub(super) fn run(config: &Config) -> Result<String, String> {
    let zone = config.dns.zone.apex.trim_end_matches('.').to_ascii_lowercase();
    let dns_addr = config.dns.listen.first().map(|a| probe_address(*a)).ok_or("no DNS listen address")?;
    if config.dns.transports.udp {
        let reply =
            dns::ask(dns_addr, &zone, dns::rtype::SOA, false, TIMEOUT).map_err(|e| format!("DNS: {e}"))?;
        if reply.rcode() != 0 || !reply.aa() || reply.answers_for(&zone, dns::rtype::SOA).next().is_none() {
            return Err(format!(
                "DNS: {dns_addr} answers the SOA of {zone} with {} and no authoritative SOA",
                dns::rcode_name(reply.rcode())
            ));
        }
    } else {
        TcpStream::connect_timeout(&dns_addr, TIMEOUT).map_err(|e| format!("DNS: {dns_addr} (TCP): {e}"))?;
    }
    let api = probe_address(config.api.listen);
    if config.api.tls == Tls::None {
        let status = http_status(api, "/health").map_err(|e| format!("API: http://{api}/health: {e}"))?;
        if status != 200 {
            return Err(format!("API: http://{api}/health answers {status}"));
        }
    } else {
        TcpStream::connect_timeout(&api, TIMEOUT).map_err(|e| format!("API: {api} (TLS): {e}"))?;
    }
    Ok(format!("healthy: DNS {dns_addr} answers for {zone}, API {api} is up"))
}

/// The address to probe for a listen address: a wildcard becomes loopback of its family.
fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// One plain HTTP/1.1 GET; the status code of the answer.
fn http_status(to: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&to, TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // The status line is all that is read: "HTTP/1.1 200 OK" fits in the first bytes.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::probe_address;

    #[test]
    fn wildcards_are_probed_on_loopback() {
        assert_eq!(probe_address("0.0.0.0:53".parse().unwrap()), "127.0.0.1:53".parse().unwrap());
        assert_eq!(probe_address("[::]:8053".parse().unwrap()), "[::1]:8053".parse().unwrap());
        assert_eq!(probe_address("192.0.2.1:53".parse().unwrap()), "192.0.2.1:53".parse().unwrap());
    }
}
