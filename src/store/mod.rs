//! Persistent storage of accounts and TXT values.
//!
//! Design note: the store is the durable truth; the DNS side never reads it while answering.
//! The API writes through the store first and then tells the in-memory zone, so an update that
//! was answered with 200 is both on disk and being served. At start the daemon loads every
//! subdomain's values into the zone with [`Store::zone_contents`].
//!
//! The store is an enum over the engines rather than a trait object: the set of engines is
//! closed (SQLite now, PostgreSQL next), the methods are async, and an enum keeps dispatch
//! plain without boxing futures.
//!
//! TXT values carry a sequence number from the store, strictly increasing per database, so the
//! order of updates is exact even for many updates within one second (acme-dns orders by a
//! seconds timestamp and loses values), and so the zone can ignore a late, older write.

pub mod sqlite;

use crate::config::{Database, Engine};
use crate::privacy::Secret;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open the database {target}: {reason}")]
    Open {
        /// File or URL (without password).
        target: String,
        /// Why.
        reason: String,
    },
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
    /// This engine is not available in this build.
    #[error("{0}")]
    Unsupported(String),
}

/// One account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Canonical lower-case UUID, the `X-Api-User`.
    pub username: String,
    /// SHA-256 of the API key.
    pub key_hash: Vec<u8>,
    /// Lower-case UUID label below the zone apex.
    pub subdomain: String,
    /// Networks allowed to update, as written at registration (brackets removed).
    pub allowfrom: Vec<String>,
}

/// The TXT values of one subdomain after a change, oldest first.
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

/// An open store.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite file.
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens the configured store and brings its schema up to date.
    pub async fn open(database: &Database) -> Result<Self, StoreError> {
        match database.engine {
            Engine::Sqlite => Ok(Self::Sqlite(sqlite::SqliteStore::open(&database.connection).await?)),
            Engine::Postgres => Err(StoreError::Unsupported(
                "database.engine = \"postgres\": the PostgreSQL store is not built yet; use \"sqlite\""
                    .into(),
            )),
        }
    }

    /// Stores a new account with no TXT values.
    pub async fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.insert_account(account.clone()).await,
        }
    }

    /// Finds an account by username.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        match self {
            Self::Sqlite(s) => s.account(username.to_owned()).await,
        }
    }

    /// Adds a TXT value, keeps only the newest `keep`, and returns what remains.
    pub async fn update_txt(
        &self,
        subdomain: &str,
        value: &str,
        keep: usize,
    ) -> Result<TxtValues, StoreError> {
        match self {
            Self::Sqlite(s) => s.update_txt(subdomain.to_owned(), value.to_owned(), keep).await,
        }
    }

    /// Every subdomain with its newest `keep` values, for loading the zone.
    pub async fn zone_contents(&self, keep: usize) -> Result<Vec<TxtValues>, StoreError> {
        match self {
            Self::Sqlite(s) => s.zone_contents(keep).await,
        }
    }

    /// The signing key for `algorithm`, if one was made.
    pub async fn dnssec_key(&self, algorithm: u8) -> Result<Option<StoredKey>, StoreError> {
        match self {
            Self::Sqlite(s) => s.dnssec_key(algorithm).await,
        }
    }

    /// Stores `pkcs8` as the key for `algorithm` unless one exists (so that instances starting
    /// together agree on one key: each then reads back whichever was stored first).
    pub async fn add_dnssec_key_if_none(
        &self,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.add_dnssec_key_if_none(algorithm, pkcs8).await,
        }
    }

    /// Flushes and closes (checkpoints the SQLite WAL).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
        }
    }
}
