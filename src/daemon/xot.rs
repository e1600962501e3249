//! The TLS settings of zone transfers over TLS (XoT, RFC 9103): `[transfer] tls_listen`.
//!
//! Design note: the certificate is the same kind of thing as the API's, so it is loaded and
//! reloaded by the same code (`reload::CertFiles`, read at each handshake, refilled on SIGHUP);
//! only the session settings differ. RFC 9103 asks for TLS 1.3 or later (section 7.2) and the
//! ALPN token "dot" (section 7.1), so nothing older is offered and "dot" is the only token.
//! With `tls_client_ca` the listener asks every client for a certificate and accepts only one
//! that chains to those CA certificates (mutual TLS, one of RFC 9103's ways to authenticate a secondary); the CA file is
//! built into the settings once, at start: changing it needs a restart. The listener itself is
//! `dns::xot`; here is only what needs the files.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::{RootCertStore, ServerConfig, version};

use super::reload::{self, CertFiles};
use crate::config::TransferTls;

/// The TLS acceptor of the transfer listener: TLS 1.3, ALPN "dot", the certificate `certs`
/// holds at each handshake, and a client certificate required when a client CA is set.
pub(super) fn acceptor(tls: &TransferTls, certs: &Arc<CertFiles>) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&version::TLS13])
        .map_err(|e| format!("transfer.tls_listen: {e}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let mut config = builder.with_cert_resolver(Arc::clone(certs) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![crate::dns::xot::ALPN.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Trusts every certificate in the PEM file `path` as a root for client certificates; an
/// error names `transfer.tls_client_ca`.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let error = |what: String| format!("transfer.tls_client_ca: {}: {what}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect())
        .map_err(|e| error(format!("cannot read: {e}")))?;
    if certs.is_empty() {
        return Err(error("no certificate in it".to_owned()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| error(format!("not a CA certificate rustls can use: {e}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| error(e.to_string()))
}

/// Reads the files of `[transfer]`'s TLS keys as the start does (`check-config` uses it): an
/// error names the key whose file is at fault.
pub(crate) fn check_files(tls: &TransferTls) -> Result<(), String> {
    reload::check_cert_files("transfer", &tls.fullchain, &tls.privkey)?;
    match &tls.client_ca {
        Some(path) => client_verifier(path, Arc::new(ring::default_provider())).map(drop),
        None => Ok(()),
    }
}
