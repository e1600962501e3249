//! Subdomains in logs: a short keyed pseudonym by default, or the name itself.
//!
//! Design note: logs outlive erasure (`DELETE /account` cannot reach lines already written,
//! and their rotation is the operator's), so by default they never hold the subdomain: they
//! hold `~` and the first 12 hex digits of HMAC-SHA256(secret, subdomain). Without the secret
//! the pseudonym cannot be tied back to a name (a subdomain is a random UUID, so there is no
//! dictionary to try); with it, the operator can still follow one account through the logs.
//!
//! The secret lives in a file of its own (`privacy.log_subdomain_key`; by default beside the
//! SQLite database), made with 32 random bytes at first start, mode 0600, and read at every
//! start after: pseudonyms stay the same across restarts, so log lines from before and after
//! one can be correlated, and copying the file to other instances makes theirs match. It is
//! deliberately not in the store: the logs' secret should not travel with database backups,
//! and the store's schema stays as it is. Deleting the file cuts every old log line off from
//! future ones. Without a file (PostgreSQL and no key configured) a random secret is made per
//! start: pseudonyms then change at every restart and differ between instances.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of a freshly made secret.
const SECRET_LEN: usize = 32;
/// Hex digits of the digest shown: 48 bits, enough to tell accounts apart in logs.
const SHOWN_HEX: usize = 12;

/// How subdomains are written into logs (`privacy.log_subdomain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubdomainPolicy {
    /// A keyed pseudonym, with the secret kept in this file (made if missing), or a secret made
    /// per start when `None`.
    Pseudonym {
        /// The secret's file (`privacy.log_subdomain_key`).
        key_file: Option<PathBuf>,
    },
    /// The subdomain itself.
    Full,
}

/// The secret's file could not be read or made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    /// Reading, creating or writing the file failed.
    #[error("privacy.log_subdomain_key: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file holds something other than a secret we made.
    #[error("privacy.log_subdomain_key: {0} does not hold 64 hex digits (delete it to make a new secret)")]
    Malformed(PathBuf),
    /// The system's random number generator failed.
    #[error("privacy.log_subdomain_key: no random bytes from the system")]
    Random,
}

/// Writes subdomains into logs as the policy says.
#[derive(Clone)]
pub(crate) struct SubdomainLog {
    /// The HMAC key; `None` writes names in full.
    key: Option<hmac::Key>,
}

impl fmt::Debug for SubdomainLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.key.is_some() { "SubdomainLog(pseudonym)" } else { "SubdomainLog(full)" })
    }
}

impl SubdomainLog {
    /// Names written in full.
    pub(crate) fn full() -> Self {
        Self { key: None }
    }

    /// Pseudonyms keyed by `secret`.
    pub(crate) fn keyed(secret: &[u8]) -> Self {
        Self { key: Some(hmac::Key::new(hmac::HMAC_SHA256, secret)) }
    }

    /// Sets up what `policy` asks for, reading or making the secret's file.
    pub(crate) fn open(policy: &SubdomainPolicy) -> Result<Self, KeyFileError> {
        match policy {
            SubdomainPolicy::Full => Ok(Self::full()),
            SubdomainPolicy::Pseudonym { key_file: Some(path) } => Ok(Self::keyed(&load_or_create(path)?)),
            SubdomainPolicy::Pseudonym { key_file: None } => Ok(Self::keyed(&random_secret()?)),
        }
    }

    /// What a log line may say of `subdomain`.
    pub(crate) fn render(&self, subdomain: &str) -> String {
        let Some(key) = &self.key else { return subdomain.to_owned() };
        let tag = hmac::sign(key, subdomain.to_ascii_lowercase().as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("~{}", &hex[..SHOWN_HEX])
    }
}

/// A fresh random secret.
fn random_secret() -> Result<[u8; SECRET_LEN], KeyFileError> {
    let mut secret = [0u8; SECRET_LEN];
    SystemRandom::new().fill(&mut secret).map_err(|_| KeyFileError::Random)?;
    Ok(secret)
}

/// Reads the secret from `path`, or makes the file (mode 0600) with a new one if it is missing.
fn load_or_create(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => return parse_hex(text.trim()).ok_or_else(|| KeyFileError::Malformed(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let secret = random_secret()?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{hex}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
            Ok(secret.to_vec())
        }
        // Another instance sharing the directory made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            parse_hex(text.trim()).ok_or_else(|| KeyFileError::Malformed(path.to_owned()))
        }
        Err(e) => Err(io(e)),
    }
}

/// Decodes exactly [`SECRET_LEN`] bytes of hex.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != SECRET_LEN * 2 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_short_keyed_and_stable() {
        let a = SubdomainLog::keyed(b"one secret");
        let b = SubdomainLog::keyed(b"another secret");
        let name = "4f1a9a1e-5a3c-4d7b-9f0e-0123456789ab";
        assert_eq!(a.render(name), a.render(&name.to_ascii_uppercase()));
        assert_ne!(a.render(name), b.render(name));
        assert_eq!(a.render(name).len(), 1 + SHOWN_HEX);
        assert!(!a.render(name).contains(name));
        assert_eq!(SubdomainLog::full().render(name), name);
    }

    #[test]
    fn the_secret_file_is_made_once_and_read_after() {
        let dir = std::env::temp_dir().join(format!("acme-delegate-pseudonym-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log-subdomain.key");
        let policy = SubdomainPolicy::Pseudonym { key_file: Some(path.clone()) };
        let first = SubdomainLog::open(&policy).unwrap().render("x");
        assert_eq!(SubdomainLog::open(&policy).unwrap().render("x"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(SubdomainLog::open(&policy), Err(KeyFileError::Malformed(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
