//! Persistent storage of accounts, TXT values and DNSSEC keys.
//!
//! Design note: the store is the durable truth; the DNS side never reads it while answering.
//! The API writes through the store first and then tells the in-memory zone, so an update that
//! was answered with 200 is both on disk and being served. At start the daemon loads every
//! subdomain's values into the zone with [`Store::zone_contents`]. With PostgreSQL, several
//! instances share the database and each follows the others' writes through
//! [`Store::subscribe`] (LISTEN/NOTIFY, and a full resync after every reconnect).
//!
//! The store is an enum over the engines rather than a trait object: the set of engines is
//! closed (SQLite, PostgreSQL), the methods are async, and an enum keeps dispatch plain without
//! boxing futures.
//!
//! TXT values carry a sequence number from the store, strictly increasing per database, so the
//! order of updates is exact even for many updates within one second (acme-dns orders by a
//! seconds timestamp and loses values), and so the zone can ignore a late, older write.

mod export;
pub mod import;
pub mod postgres;
pub mod sqlite;

use tokio::sync::mpsc;

use crate::config::{Database, Engine};
use crate::privacy::Secret;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached at start.
    #[error("cannot open the database {target}: {reason}")]
    Open {
        /// File or URL (without password).
        target: String,
        /// Why.
        reason: String,
    },
    /// The database is unreachable now (it may come back).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database holds another program's schema that we do not take over in place.
    #[error("{0}")]
    ForeignSchema(String),
    /// The schema is newer than this program knows.
    #[error(
        "the database schema is version {found}, newer than this program's {known}; upgrade acme-delegate"
    )]
    TooNew {
        /// Version in the database.
        found: i64,
        /// Newest version we know.
        known: i64,
    },
    /// A uniqueness rule was violated (e.g. a colliding random name).
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Backend(String),
}

/// One account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Canonical lower-case UUID, the `X-Api-User`.
    pub username: String,
    /// SHA-256 of the API key; empty for an imported account not yet used.
    pub key_hash: Vec<u8>,
    /// bcrypt hash from acme-dns, until the first successful use replaces it.
    pub bcrypt_hash: Option<String>,
    /// Lower-case UUID label below the zone apex.
    pub subdomain: String,
    /// Networks allowed to update, as written at registration (brackets removed).
    pub allowfrom: Vec<String>,
}

/// The TXT values of one subdomain, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtValues {
    /// Subdomain label.
    pub subdomain: String,
    /// Sequence of the newest value (0 when there is none).
    pub seq: u64,
    /// Values, oldest first.
    pub values: Vec<String>,
}

/// A DNSSEC private key as stored.
#[derive(Clone, Debug)]
pub struct StoredKey {
    /// DNSSEC algorithm number.
    pub algorithm: u8,
    /// PKCS#8 private key.
    pub pkcs8: Secret<Vec<u8>>,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// One entry of the audit trail: a use of a credential.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Seconds since the epoch.
    pub at: i64,
    /// The account, when the request named an existing one.
    pub username: Option<String>,
    /// `register`, `update`, `account_read`, `account_update`, `rotate`, `delete`.
    pub action: String,
    /// `ok`, or why it failed (`bad_credentials`, `not_allowed_from`, …).
    pub outcome: String,
    /// The client's address as the privacy setting allows (by default a /24 or /48 network).
    pub source: String,
}

/// Everything held about one account (for access, portability and the operator's `show`).
#[derive(Clone, Debug)]
pub struct AccountRecord {
    /// The account.
    pub account: Account,
    /// When it was registered.
    pub created_at: i64,
    /// Last successful update.
    pub last_used: Option<i64>,
    /// TXT values, newest first, with when each was set.
    pub txt: Vec<(String, i64)>,
    /// Its audit trail, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// A line of the operator's account list.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccountSummary {
    /// Username.
    pub username: String,
    /// Subdomain.
    pub subdomain: String,
    /// Registered at.
    pub created_at: i64,
    /// Last successful update.
    pub last_used: Option<i64>,
}

/// What the retention task removes: everything older than these times (seconds since epoch).
#[derive(Clone, Copy, Debug)]
pub struct PurgeRules {
    /// Audit entries before this.
    pub audit_before: i64,
    /// TXT values set before this.
    pub txt_before: i64,
    /// Accounts not used since this (none when `None`).
    pub unused_before: Option<i64>,
}

/// What a purge removed.
#[derive(Clone, Debug, Default)]
pub struct Purged {
    /// Audit entries deleted.
    pub audit_entries: usize,
    /// Subdomains whose old TXT values were cleared.
    pub txt_cleared: Vec<String>,
    /// Subdomains of accounts deleted for being unused.
    pub accounts_expired: Vec<String>,
}

/// A change made by some instance, from the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// One subdomain changed (registered, updated or deleted): reload it.
    Subdomain(String),
    /// The feed was (re)connected and may have missed changes: reload everything.
    Resync,
    /// The API's own ACME challenge values changed: reload them.
    OwnChallenge,
}

/// An open store.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL database.
    Postgres(Box<postgres::PostgresStore>),
}

/// Calls the same method on whichever engine is open.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Self::Sqlite($store) => $call,
            Self::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Opens the configured store and brings its schema up to date.
    pub async fn open(database: &Database) -> Result<Self, StoreError> {
        match database.engine {
            Engine::Sqlite => Ok(Self::Sqlite(sqlite::SqliteStore::open(&database.connection).await?)),
            Engine::Postgres => {
                Ok(Self::Postgres(Box::new(postgres::PostgresStore::open(&database.connection).await?)))
            }
        }
    }

    /// Stores a new account with no TXT values.
    pub async fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_account(account.clone()).await)
    }

    /// Stores an imported account unless its username or subdomain exists; returns whether it
    /// was inserted.
    pub async fn import_account(&self, account: &Account) -> Result<bool, StoreError> {
        dispatch!(self, s => s.import_account(account.clone()).await)
    }

    /// Finds an account by username.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        dispatch!(self, s => s.account(username.to_owned()).await)
    }

    /// Replaces an imported account's bcrypt hash by the SHA-256 of its key, only while the
    /// bcrypt hash is still there: a slow check that ends after a rotation must not bring the
    /// old key back.
    pub async fn upgrade_key(&self, username: &str, key_hash: Vec<u8>) -> Result<(), StoreError> {
        dispatch!(self, s => s.upgrade_key(username.to_owned(), key_hash).await)
    }

    /// Sets an account's key hash (a rotation); any imported bcrypt hash goes with the old key.
    pub async fn set_key(&self, username: &str, key_hash: Vec<u8>) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_key(username.to_owned(), key_hash).await)
    }

    /// Adds a TXT value, keeps only the newest `keep`, and returns what remains.
    pub async fn update_txt(
        &self,
        subdomain: &str,
        value: &str,
        keep: usize,
    ) -> Result<TxtValues, StoreError> {
        dispatch!(self, s => s.update_txt(subdomain.to_owned(), value.to_owned(), keep).await)
    }

    /// The newest `keep` values of one subdomain, or `None` if it is not registered.
    pub async fn txt_of(&self, subdomain: &str, keep: usize) -> Result<Option<TxtValues>, StoreError> {
        dispatch!(self, s => s.txt_of(subdomain.to_owned(), keep).await)
    }

    /// Every subdomain with its newest `keep` values, for loading the zone.
    pub async fn zone_contents(&self, keep: usize) -> Result<Vec<TxtValues>, StoreError> {
        dispatch!(self, s => s.zone_contents(keep).await)
    }

    /// Publishes (`Some`) or withdraws (`None`) one ACME challenge value for the API's own
    /// certificate under `token`, so that every instance serving the zone answers it; a value
    /// left behind by a crash stops counting at `expires_at`.
    pub async fn put_own_challenge(
        &self,
        token: &str,
        value: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_own_challenge(token.to_owned(), value.map(str::to_owned), expires_at).await)
    }

    /// The API's own ACME challenge values currently published.
    pub async fn own_challenges(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.own_challenges().await)
    }

    /// The signing key for `algorithm`, if one was made.
    pub async fn dnssec_key(&self, algorithm: u8) -> Result<Option<StoredKey>, StoreError> {
        dispatch!(self, s => s.dnssec_key(algorithm).await)
    }

    /// Stores `pkcs8` as the key for `algorithm` unless one exists (so that instances starting
    /// together agree on one key: each then reads back whichever was stored first).
    pub async fn add_dnssec_key_if_none(
        &self,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_dnssec_key_if_none(algorithm, pkcs8).await)
    }

    /// Appends to the audit trail.
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_audit(entry).await)
    }

    /// Everything held about an account, or `None`.
    pub async fn account_record(
        &self,
        username: &str,
        keep: usize,
    ) -> Result<Option<AccountRecord>, StoreError> {
        dispatch!(self, s => s.account_record(username.to_owned(), keep).await)
    }

    /// All accounts, oldest first.
    pub async fn list_accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        dispatch!(self, s => s.list_accounts().await)
    }

    /// Replaces an account's `allowfrom`.
    pub async fn set_allowfrom(&self, username: &str, allowfrom: Vec<String>) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_allowfrom(username.to_owned(), allowfrom).await)
    }

    /// Erases an account, its TXT values and its audit entries; returns its subdomain if it
    /// existed.
    pub async fn delete_account(&self, username: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.delete_account(username.to_owned()).await)
    }

    /// Removes what is past retention.
    pub async fn purge(&self, rules: PurgeRules) -> Result<Purged, StoreError> {
        dispatch!(self, s => s.purge(rules).await)
    }

    /// Checks that the database answers (for the readiness endpoint).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Follows changes made by other processes: other instances (PostgreSQL's LISTEN/NOTIFY)
    /// or the operator's commands (both engines). Sends [`Change`]s until the receiver is
    /// dropped.
    pub fn subscribe(&self) -> mpsc::Receiver<Change> {
        dispatch!(self, s => s.subscribe())
    }

    /// Flushes and closes (checkpoints the SQLite WAL).
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }
}
