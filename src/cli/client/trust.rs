//! Which API certificates the client trusts, and what it says when it trusts none.
//!
//! Design note: a first server often runs with a self-signed certificate made by `openssl req
//! -x509`, which marks it CA:TRUE. WebPKI (rustls) refuses a CA certificate as the server's own
//! (`CaUsedAsEndEntity`) even when it is the very root it was given; curl (OpenSSL) accepts it
//! when it is the file given with `--cacert`. So a certificate in `--ca-file` counts twice: as a
//! trust root for a chain a CA issued, and as a pinned certificate: when the server presents
//! exactly it (the same bytes), it is accepted if now is within its validity and it names the
//! host of the URL, which is what OpenSSL checks of a trusted self-signed certificate. The
//! handshake's signature is verified with the provider's algorithms either way, so the server
//! must hold the pinned certificate's key. Any other certificate goes through rustls's WebPKI
//! verifier unchanged (the system's store plus the files' certificates as roots).
//!
//! A refusal becomes one sentence that says what to do ([`explain`]), never a bare rustls
//! error name.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// The advice every "not trusted" message ends with.
pub(crate) const ADVICE: &str = "pass --ca-file FILE with its CA or the certificate itself";

/// Trusts a chain WebPKI accepts, or exactly one of the pinned certificates.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    /// The ordinary verifier; `None` when there is no root at all (then only pins count).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates of `--ca-file`, accepted as the server's own when presented exactly.
    pinned: Vec<CertificateDer<'static>>,
    /// The provider's signature algorithms, for the handshake's signature.
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinningVerifier {
    /// A verifier trusting `roots` for chains and `pinned` as end-entity certificates.
    pub(crate) fn new(
        roots: RootCertStore,
        pinned: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let algorithms = provider.signature_verification_algorithms;
        let webpki = if roots.is_empty() {
            None
        } else {
            let built = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS setup failed: {e}"))?;
            Some(built)
        };
        Ok(Self { webpki, pinned, algorithms })
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.pinned.iter().any(|pin| pin.as_ref() == end_entity.as_ref()) {
            check_pinned(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(webpki) => {
                webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(CertificateError::UnknownIssuer.into()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks a pinned certificate as OpenSSL checks a trusted self-signed one: now within its
/// validity, and the URL's host among its names.
pub(crate) fn check_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), Error> {
    let (not_before, not_after) = crate::api::acme::validity(cert).ok_or(CertificateError::BadEncoding)?;
    let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
    if now.as_secs() < not_before {
        return Err(CertificateError::NotValidYetContext { time: now, not_before: at(not_before) }.into());
    }
    if now.as_secs() > not_after {
        return Err(CertificateError::ExpiredContext { time: now, not_after: at(not_after) }.into());
    }
    let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, server_name)
}

/// A failed TLS handshake with `authority` in words that say what to do; `ca_files` are the
/// files given with `--ca-file`.
pub(crate) fn explain(error: &std::io::Error, authority: &str, ca_files: &[PathBuf]) -> String {
    let failed = |detail: &dyn std::fmt::Display| format!("TLS with {authority} failed: {detail}");
    let Some(tls_error) = error.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return failed(error);
    };
    let Error::InvalidCertificate(reason) = tls_error else { return failed(tls_error) };
    let what = format!("TLS with {authority}: the server's certificate");
    match reason {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("{what} has expired: the server must renew it ({tls_error})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("{what} is not valid yet: check this machine's clock ({tls_error})")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("{what} is not valid for the host in the URL: use a name it was issued for ({tls_error})")
        }
        _ => {
            // webpki's name for a CA certificate presented as the server's own, which is what
            // `openssl req -x509` makes. Only the wording depends on it.
            let self_signed = matches!(reason, CertificateError::Other(other)
                if other.to_string().contains("CaUsedAsEndEntity"));
            let kind = if self_signed {
                "it is a self-signed CA certificate, as `openssl req -x509` makes"
            } else {
                "it is not issued by a CA of the system's store"
            };
            let files: Vec<String> = ca_files.iter().map(|f| f.display().to_string()).collect();
            let known = if files.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind}, and neither the certificate in {} nor issued by one there", files.join(", "))
            };
            format!("{what} is not trusted: {ADVICE} ({known}; rustls: {tls_error})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The io::Error tokio-rustls gives for a refused certificate.
    fn refused(reason: CertificateError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, Error::InvalidCertificate(reason))
    }

    #[test]
    fn refusals_say_what_to_do() {
        let text = explain(&refused(CertificateError::UnknownIssuer), "h:1", &[]);
        assert!(
            text.starts_with("TLS with h:1: the server's certificate is not trusted: pass --ca-file FILE"),
            "{text}"
        );
        assert!(text.contains("system's store"), "{text}");
        let text = explain(&refused(CertificateError::BadSignature), "h:1", &[PathBuf::from("/x/ca.pem")]);
        assert!(text.contains(ADVICE) && text.contains("/x/ca.pem"), "{text}");
        let text = explain(&refused(CertificateError::Expired), "h:1", &[]);
        assert!(text.contains("has expired"), "{text}");
        let text = explain(&refused(CertificateError::NotValidForName), "h:1", &[]);
        assert!(text.contains("not valid for the host"), "{text}");
        let text = explain(&std::io::Error::other("reset"), "h:1", &[]);
        assert_eq!(text, "TLS with h:1 failed: reset");
    }

    #[test]
    fn garbage_is_not_a_pin() {
        let name = ServerName::try_from("localhost").unwrap();
        let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        let err = check_pinned(&CertificateDer::from(vec![0x30, 0x00]), &name, now).unwrap_err();
        assert_eq!(err, Error::InvalidCertificate(CertificateError::BadEncoding));
    }
}
