//! Zone transfers over TLS (XoT, RFC 9103): the TLS side of a DNS listener.
//!
//! Design note: XoT is DNS over TLS (RFC 7858) used by a secondary for its SOA queries, AXFR
//! and IXFR. The TLS stream wraps the TCP path: once the handshake is done, the connection is
//! served by the very code that serves clear TCP (`server::tcp_connection`), so requests over
//! TLS meet the same TSIG check, `allow_transfer`, transfer caps and idle timeouts, and the
//! same answers; the only difference a request sees is its [`Transport`], which lets
//! `transfer.clear_transfers = false` refuse transfers over clear TCP and name TLS in the
//! transfer's log line. The handshake runs inside the connection's slot and within
//! `dns.tcp_first_message_timeout`, so a client that opens TLS and stalls holds a slot no
//! longer than one that sends nothing over TCP. A failed handshake is logged like a refused
//! transfer (first per network at once, the rest summed per minute).
//!
//! The TLS settings are the daemon's (it owns the files): TLS 1.3 only and the ALPN token "dot"
//! (RFC 9103 sections 7.1 and 7.2), the certificate from files a reload may replace, and
//! optionally a client CA for mutual TLS. Here a client that did not select "dot" is closed
//! after the handshake: rustls already refuses one that offers other tokens only, and one that
//! offers none has not selected it either.
//!
//! NOTIFY is not part of this: RFC 9103 encrypts the transfer, not the NOTIFY, which carries
//! only the zone's name and serial, so NOTIFY stays on UDP (`notify`), TSIG-signed when a key
//! is set.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

use super::rrl::Network;
use super::server::{BindError, Serving, bind_tcp, tcp_connection};
use super::xfr::Transport;

/// What a TCP listener serves: DNS over clear TCP, or DNS over TLS (XoT, this module).
#[derive(Clone)]
pub(crate) enum Channel {
    /// Clear TCP; `transfers: false` answers AXFR and IXFR REFUSED here
    /// (`transfer.clear_transfers = false`).
    Clear {
        /// Whether AXFR and IXFR are served on this listener.
        transfers: bool,
    },
    /// TLS by this acceptor (whose certificate a reload may replace), then the same messages.
    Tls(TlsAcceptor),
}

/// The ALPN token of DNS over TLS, which XoT uses too (RFC 9103 section 7.1).
pub(crate) const ALPN: &[u8] = b"dot";

/// How long a closing connection may take to send its TLS close_notify: a client that stopped
/// reading does not hold its slot for longer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds the TLS listeners (`transfer.tls_listen`); an error names the address.
pub(crate) fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, BindError> {
    addrs
        .iter()
        .map(|&addr| bind_tcp(addr).map_err(|e| BindError { proto: "TLS (transfer.tls_listen)", ..e }))
        .collect()
}

/// Serves one TLS connection from `peer`: the handshake within the first message's deadline,
/// then DNS messages as on clear TCP, then a clean TLS close.
pub(super) async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    mut serving: Serving,
) {
    let deadline = serving.options.tcp_first_message_timeout;
    let handshake = tokio::select! {
        r = tokio::time::timeout(deadline, acceptor.accept(stream)) => r,
        _ = serving.shutdown.changed() => return,
        _ = serving.slot.close.notified() => return,
    };
    // Logged as transfer refusals are: a network's first at once, the rest of its minute in one
    // summary line, so a scanner cannot flood the log, and an operator whose secondary refuses
    // our certificate (or has none for mutual TLS) sees why here too.
    let refused = |reason: String| {
        if let Some(settings) = serving.transfers.as_ref().map(|t| t.settings()) {
            settings.gate.refused(Network::of(peer.ip()), &settings.client(peer), "TLS connection", &reason);
        }
    };
    let mut tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => return refused(format!("the handshake failed ({error})")),
        Err(_) => return refused("no TLS handshake within dns.tcp_first_message_timeout".to_owned()),
    };
    if tls.get_ref().1.alpn_protocol() != Some(ALPN) {
        refused("the client did not select ALPN \"dot\" (RFC 9103 section 7.1)".to_owned());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
        return;
    }
    tcp_connection(&mut tls, peer, Transport::Tls, &mut serving).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls;

    use super::*;
    use crate::dns::xfr::Outcome;

    /// A server acceptor and a client connector for one self-signed name, both with ALPN "dot".
    fn pair() -> (TlsAcceptor, tokio_rustls::TlsConnector) {
        let made = rcgen::generate_simple_self_signed(vec!["ns1.example.test".to_owned()]).unwrap();
        let cert = made.cert.der().clone();
        let key = rustls_pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN.to_vec()];
        (TlsAcceptor::from(Arc::new(server)), tokio_rustls::TlsConnector::from(Arc::new(client)))
    }

    #[tokio::test]
    async fn a_transfer_message_leaves_the_tls_buffer_whole_through_a_narrow_pipe() {
        // A pipe that takes 1 KB at a time: most writes of a 60 KB message wait, the last one
        // too, and what TLS has buffered then must still reach the reader.
        let (server_io, client_io) = tokio::io::duplex(1024);
        let (acceptor, connector) = pair();
        let name = rustls_pki_types::ServerName::try_from("ns1.example.test").unwrap();
        let (server, client) = tokio::join!(acceptor.accept(server_io), connector.connect(name, client_io));
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        let mut msg = vec![7u8; 60_000];
        let send = crate::dns::xfr::send(&mut server, &mut msg, Duration::from_secs(5));
        let read = async {
            let mut got = vec![0u8; 60_002];
            tokio::time::timeout(Duration::from_secs(2), client.read_exact(&mut got))
                .await
                .map(|r| r.map(|_| got))
        };
        let (sent, read) = tokio::join!(send, read);
        assert_eq!(sent, Outcome::Sent);
        let got = read.expect("the whole message arrives within 2 s").unwrap();
        assert_eq!((&got[..2], got[2..].iter().all(|&b| b == 7)), (&[0xea, 0x60][..], true));
    }
}
