//! The API's own certificate by ACME (`api.tls = "letsencrypt"` or `"letsencryptstaging"`).
//!
//! Design note: as acme-dns does, the certificate is for `general.domain`, and the DNS-01
//! challenge is answered by our own zone (`_acme-challenge.<domain>`), so neither port 80 nor
//! another server is needed. The challenge value goes through the store, like a TXT update, so
//! that every instance serving the zone answers it (the CA may ask any of them). The API listens at once; TLS handshakes fail until the first
//! certificate is there (a cached one with time left is served from the start). A background
//! task renews the certificate when a third of its lifetime is left, and retries failures with
//! a growing pause. The account's credentials, the certificate and its key are kept in
//! `acme_cache_dir` (files of mode 0600 in a directory of mode 0700); nothing secret is logged.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::dns::zone::unix_now;
use crate::zone_sync::ZoneSync;

/// The longest pause between two checks of the certificate.
const CHECK_EVERY: u64 = 12 * 3600;
/// The first pause after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: u64 = 30;
/// The longest pause after failures.
const MAX_RETRY: u64 = 3600;

/// Where the certificate comes from and what it is for.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The name the certificate is for (`general.domain`).
    pub domain: String,
    /// The ACME directory URL.
    pub directory: String,
    /// `acme_cache_dir`.
    pub cache_dir: PathBuf,
    /// `notification_email`.
    pub email: Option<String>,
    /// A PEM root to trust for the directory's HTTPS instead of the system's (`acme_ca_file`).
    pub ca_file: Option<PathBuf>,
}

/// Why a certificate could not be obtained (logged; the task tries again later).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    /// The CA refused or the exchange failed.
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// A file in the cache directory.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The store could not publish the challenge, or the zone could not serve it.
    #[error("publishing the challenge: {0}")]
    Publish(#[from] crate::zone_sync::SyncError),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// Publishes this instance's challenge value through the store and serves what the store
/// then holds (this instance's value and any other instance's).
struct Challenge<'a> {
    /// Store and zone: the value is published in one and served by the other.
    sync: &'a ZoneSync,
    /// This order's key in the store.
    token: String,
}

impl Challenge<'_> {
    /// Publishes `value` (or withdraws ours with `None`) and serves the current set.
    async fn set(&self, value: Option<&str>) -> Result<(), AcmeError> {
        // A value left by a crash stops counting after ten minutes.
        let expires = i64::from(unix_now()) + 600;
        self.sync.put_own_challenge(&self.token, value, expires).await?;
        Ok(())
    }
}

/// The certificate currently served, replaced in place on renewal.
#[derive(Debug, Default)]
pub(crate) struct CertSlot(RwLock<Option<Arc<CertifiedKey>>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok()?.clone()
    }
}

impl CertSlot {
    /// Serves `key` from now on.
    fn install(&self, key: CertifiedKey) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Arc::new(key));
        }
    }
}

/// A TLS acceptor that serves whatever `slot` holds.
pub(crate) fn acceptor(slot: Arc<CertSlot>) -> Result<TlsAcceptor, String> {
    Ok(TlsAcceptor::from(Arc::new(super::tls_server_config()?.with_cert_resolver(slot))))
}

/// Keeps `slot` filled with a valid certificate until `shutdown` changes.
pub(crate) async fn run(
    settings: Settings,
    slot: Arc<CertSlot>,
    sync: ZoneSync,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut renew_at = match load_cached(&settings, &slot) {
        Ok(Some(at)) => {
            tracing::info!(
                "API certificate for {} loaded from {}",
                settings.domain,
                settings.cache_dir.display()
            );
            at
        }
        Ok(None) => 0,
        Err(error) => {
            tracing::warn!("cached API certificate not used: {error}");
            0
        }
    };
    let mut retry = FIRST_RETRY;
    loop {
        let now = unix_now() as u64;
        if renew_at > now {
            let pause = Duration::from_secs((renew_at - now).min(CHECK_EVERY));
            tokio::select! {
                _ = tokio::time::sleep(pause) => continue,
                _ = shutdown.changed() => return,
            }
        }
        tracing::info!(
            "obtaining a certificate for the API's name {} from {}",
            settings.domain,
            settings.directory
        );
        let challenge = Challenge { sync: &sync, token: crate::api::credentials::random_uuid() };
        let result = tokio::select! {
            r = obtain(&settings, &challenge) => r,
            _ = shutdown.changed() => Err(AcmeError::Other("stopped".into())),
        };
        if let Err(error) = challenge.set(None).await {
            tracing::warn!("could not withdraw the API's ACME challenge (it expires by itself): {error}");
        }
        if *shutdown.borrow() {
            return;
        }
        match result.and_then(|(chain, key)| install(&settings, &slot, &chain, &key)) {
            Ok((not_after, at)) => {
                tracing::info!(
                    "API certificate for {} obtained: valid for {} more days, renewed in {} days",
                    settings.domain,
                    not_after.saturating_sub(now) / 86_400,
                    at.saturating_sub(now) / 86_400
                );
                // Never sooner than a retry: with a wrong clock the time could be past already.
                renew_at = at.max(now + FIRST_RETRY);
                retry = FIRST_RETRY;
            }
            Err(error) => {
                tracing::warn!(
                    "could not obtain the API certificate for {}: {error} (trying again in {retry} s)",
                    settings.domain
                );
                renew_at = now + retry;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// The cached certificate's and key's paths.
fn cert_paths(settings: &Settings) -> (PathBuf, PathBuf) {
    let dir = &settings.cache_dir;
    (dir.join(format!("{}.crt", settings.domain)), dir.join(format!("{}.key", settings.domain)))
}

/// Serves the cached certificate if it has time left; returns when to renew it.
fn load_cached(settings: &Settings, slot: &CertSlot) -> Result<Option<u64>, AcmeError> {
    let (cert_path, key_path) = cert_paths(settings);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| AcmeError::File { path: path.into(), source })
    };
    if !cert_path.exists() {
        return Ok(None);
    }
    let (chain, key) = (read(&cert_path)?, read(&key_path)?);
    let (certified, (not_before, not_after)) = certified_key(&chain, &key)?;
    if not_after <= unix_now() as u64 + 60 {
        return Ok(None);
    }
    slot.install(certified);
    Ok(Some(renewal_time(not_before, not_after)))
}

/// When to renew a certificate valid from `not_before` to `not_after`: with a third left.
fn renewal_time(not_before: u64, not_after: u64) -> u64 {
    not_after - not_after.saturating_sub(not_before) / 3
}

/// Checks, serves and stores a new certificate; returns its end and when to renew it.
///
/// Served first: a cache that cannot be written (a full disk) must not cost the certificate,
/// or every retry would order another one and run into the CA's duplicate limits.
fn install(settings: &Settings, slot: &CertSlot, chain: &str, key: &str) -> Result<(u64, u64), AcmeError> {
    let (certified, (not_before, not_after)) = certified_key(chain, key)?;
    slot.install(certified);
    let (cert_path, key_path) = cert_paths(settings);
    if let Err(error) =
        write_private(&key_path, key.as_bytes()).and_then(|()| write_private(&cert_path, chain.as_bytes()))
    {
        tracing::warn!(
            "the API certificate is served but could not be cached (a restart orders a new one): {error}"
        );
    }
    Ok((not_after, renewal_time(not_before, not_after)))
}

/// The rustls form of a PEM chain and key, and the leaf's validity (seconds since the epoch).
fn certified_key(chain: &str, key: &str) -> Result<(CertifiedKey, (u64, u64)), AcmeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| AcmeError::Other(format!("certificate chain: {e}")))?;
    let leaf = certs.first().ok_or_else(|| AcmeError::Other("no certificate in the chain".into()))?;
    let validity =
        validity(leaf).ok_or_else(|| AcmeError::Other("cannot read the certificate's validity".into()))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| AcmeError::Other(format!("certificate key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| AcmeError::Other(format!("certificate key: {e}")))?;
    let certified = CertifiedKey::new(certs, signing);
    // A crash between writing the key and the certificate would leave a pair that does not
    // belong together; serving it would fail every handshake.
    certified.keys_match().map_err(|e| AcmeError::Other(format!("key and certificate do not match: {e}")))?;
    Ok((certified, validity))
}

/// Writes a file only its owner may read, creating the directory (mode 0700) if needed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let error = |source| AcmeError::File { path: path.into(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(error)?;
    }
    // Written beside and renamed, so a crash never leaves half a key or certificate; the
    // name is this file's and this process's, so instances sharing the directory do not mix.
    let partial = PathBuf::from(format!("{}.{}.partial", path.display(), std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(error)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(error)?;
    std::fs::rename(&partial, path).map_err(error)
}

/// The ACME account: from the cache (one file per directory URL), or made and cached.
async fn account(settings: &Settings) -> Result<Account, AcmeError> {
    let builder = match &settings.ca_file {
        Some(file) => Account::builder_with_root(file)?,
        None => Account::builder()?,
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, settings.directory.as_bytes());
    let tag: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    let path = settings.cache_dir.join(format!("account-{tag}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => {
            let credentials: AccountCredentials = serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::Other(format!("{}: {e}", path.display())))?;
            Ok(builder.from_credentials(credentials).await?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let new =
                NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
            let (account, credentials) = builder.create(&new, settings.directory.clone(), None).await?;
            let json = serde_json::to_vec(&credentials).map_err(|e| AcmeError::Other(e.to_string()))?;
            write_private(&path, &json)?;
            tracing::info!("ACME account made at {}", settings.directory);
            Ok(account)
        }
        Err(source) => Err(AcmeError::File { path, source }),
    }
}

/// Runs one order for the domain through DNS-01 published by `challenge_out`; returns (chain,
/// key) PEM.
async fn obtain(settings: &Settings, challenge_out: &Challenge<'_>) -> Result<(String, String), AcmeError> {
    let account = account(settings).await?;
    let identifiers = [Identifier::Dns(settings.domain.clone())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authorization = result?;
        if authorization.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Dns01)
            .ok_or_else(|| AcmeError::Other("the CA offers no dns-01 challenge".into()))?;
        challenge_out.set(Some(&challenge.key_authorization().dns_value())).await?;
        challenge.set_ready().await?;
    }
    let patience = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = order.poll_ready(&patience).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Other(format!("the order is {status:?}, not ready")));
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&patience).await?;
    Ok((chain, key))
}

/// notBefore and notAfter of an X.509 certificate, in seconds since the epoch (also read by
/// the client for a certificate it pins); `None` for bytes that are not a DER certificate.
pub(crate) fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    use x509_cert::der::Decode;
    let validity = x509_cert::Certificate::from_der(cert).ok()?.tbs_certificate.validity;
    Some((validity.not_before.to_unix_duration().as_secs(), validity.not_after.to_unix_duration().as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_read_in_epoch_seconds_from_both_time_forms() {
        // rcgen writes UTCTime before 2050 and GeneralizedTime from 2050 on (RFC 5280).
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["auth.example.org".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 11, 29);
        params.not_after = rcgen::date_time_ymd(2060, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(validity(cert.der()), Some((1_795_910_400, 2_840_140_800)));
        assert_eq!(renewal_time(0, 90), 60);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }
}
