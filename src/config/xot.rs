//! `[transfer]`'s TLS keys: zone transfers over TLS (XoT, RFC 9103) and whether clear-text
//! transfers stay allowed.
//!
//! Design note: these keys describe a listener and its certificate, not the transfer policy
//! (who may transfer, with which key: [`super::transfer`]), so they are read apart from it
//! into [`TransferTls`], which only the daemon (binding, loading the files, reloading them)
//! and `check-config` read. What a connection's transport means for a transfer request is
//! decided where requests are judged (`dns::xfr`), from the listener it came in on. The files
//! are only named here; they are read where they are used (`daemon::reload` for the
//! certificate, shared with the API's, and `daemon::xot` for the client CA), so a file that
//! changes between a check and the start is still read once, where errors name the key.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::raw::Transfer;
use super::{ConfigError, key_error};

/// Zone transfers over TLS (`transfer.tls_listen` and the keys that go with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TransferTls {
    /// Where to accept TLS connections (DNS over TLS, ALPN "dot"): queries and transfers.
    pub(crate) listen: Vec<SocketAddr>,
    /// The certificate chain, PEM (`transfer.tls_cert_fullchain`; read again on reload).
    pub(crate) fullchain: PathBuf,
    /// Its private key, PEM (`transfer.tls_cert_privkey`; read again on reload).
    pub(crate) privkey: PathBuf,
    /// With mutual TLS: the CA certificates (PEM) a client's certificate must chain to; then
    /// a client without one is refused at the handshake (`transfer.tls_client_ca`).
    pub(crate) client_ca: Option<PathBuf>,
    /// Whether AXFR and IXFR are still served over clear TCP (`transfer.clear_transfers`);
    /// when not, they are answered REFUSED there, and served over TLS only.
    pub(crate) clear_transfers: bool,
}

/// An optional, non-empty path.
fn path(entry: super::raw::Entry<'_>) -> Result<Option<PathBuf>, ConfigError> {
    Ok(entry.string()?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).map(PathBuf::from))
}

/// Reads the TLS keys of `[transfer]`; `None` when `tls_listen` is not set (then transfers are
/// served over clear TCP only, as before).
pub(super) fn parse(section: &Transfer) -> Result<Option<TransferTls>, ConfigError> {
    let mut listen = Vec::new();
    for entry in section.tls_listen().strings()? {
        listen.extend(super::build::listen_addrs(&entry, "transfer.tls_listen", None)?);
    }
    listen.dedup();
    let clear_transfers = match section.clear_transfers().value {
        None => true,
        Some(_) => section.clear_transfers().boolean()?,
    };
    let (fullchain, privkey) = (path(section.tls_cert_fullchain())?, path(section.tls_cert_privkey())?);
    let client_ca = path(section.tls_client_ca())?;
    if listen.is_empty() {
        if !clear_transfers {
            return Err(key_error(
                "transfer.clear_transfers",
                "false without transfer.tls_listen would refuse every transfer; set tls_listen",
            ));
        }
        if fullchain.is_some() || privkey.is_some() || client_ca.is_some() {
            return Err(key_error(
                "transfer.tls_listen",
                "missing: tls_cert_fullchain, tls_cert_privkey and tls_client_ca need a TLS listener",
            ));
        }
        return Ok(None);
    }
    let missing = |key: &str| key_error(key, "missing: transfer.tls_listen needs a certificate and its key");
    Ok(Some(TransferTls {
        listen,
        fullchain: fullchain.ok_or_else(|| missing("transfer.tls_cert_fullchain"))?,
        privkey: privkey.ok_or_else(|| missing("transfer.tls_cert_privkey"))?,
        client_ca,
        clear_transfers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `[transfer]` body.
    fn parse_text(body: &str) -> Result<Option<TransferTls>, ConfigError> {
        let file = super::super::raw::File::parse(&format!("[transfer]\n{body}"), "test", &mut Vec::new())?;
        parse(&file.transfer)
    }

    /// The key named in an error.
    fn error_key(body: &str) -> String {
        match parse_text(body) {
            Err(ConfigError::Key { key, .. }) => key,
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn the_tls_keys_are_read() {
        let tls = parse_text(
            "tls_listen = [\"127.0.0.1:853\", \"[::1]:853\"]\ntls_cert_fullchain = \"/etc/c.pem\"\n\
             tls_cert_privkey = \"/etc/k.pem\"\ntls_client_ca = \"/etc/ca.pem\"\nclear_transfers = false",
        )
        .unwrap()
        .unwrap();
        assert_eq!(tls.listen, ["127.0.0.1:853".parse().unwrap(), "[::1]:853".parse().unwrap()]);
        assert_eq!((tls.fullchain.to_str(), tls.privkey.to_str()), (Some("/etc/c.pem"), Some("/etc/k.pem")));
        assert_eq!(tls.client_ca, Some(PathBuf::from("/etc/ca.pem")));
        assert!(!tls.clear_transfers);
        // One address as a string, clear transfers on by default, no client CA.
        let tls = parse_text(
            "tls_listen = \"127.0.0.1:853\"\ntls_cert_fullchain = \"c.pem\"\ntls_cert_privkey = \"k.pem\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!((tls.listen.len(), tls.clear_transfers, tls.client_ca), (1, true, None));
        assert_eq!(parse_text("allow_transfer = [\"127.0.0.1/32\"]").unwrap(), None);
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(error_key("tls_listen = \"127.0.0.1:853\""), "transfer.tls_cert_fullchain");
        assert_eq!(
            error_key("tls_listen = \"127.0.0.1:853\"\ntls_cert_fullchain = \"c.pem\""),
            "transfer.tls_cert_privkey"
        );
        assert_eq!(error_key("tls_listen = \"somewhere\""), "transfer.tls_listen");
        assert_eq!(error_key("tls_cert_fullchain = \"c.pem\""), "transfer.tls_listen");
        assert_eq!(error_key("clear_transfers = false"), "transfer.clear_transfers");
        assert_eq!(
            error_key(
                "tls_listen = \"127.0.0.1:853\"\ntls_cert_fullchain = \"c\"\ntls_cert_privkey = \"k\"\n\
                 clear_transfers = \"no\""
            ),
            "transfer.clear_transfers"
        );
    }
}
