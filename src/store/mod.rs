//! Persistent storage of accounts, TXT values, dns-persist-01 records and DNSSEC keys.
//!
//! Design note: the store is the durable truth; the DNS side never reads it while answering.
//! The API writes through the store first and then tells the in-memory zone, so an update that
//! was answered with 200 is both on disk and being served. At start the daemon loads every
//! subdomain's values into the zone with [`Store::zone_contents`]. With PostgreSQL, several
//! instances share the database and each follows the others' writes through
//! [`Store::subscribe`] (LISTEN/NOTIFY, and a full resync after every reconnect).
//!
//! The store contract (`common.rs`): each engine provides a connection that runs a statement,
//! a migration script, a notification and a lock (`common::Conn`); every operation, the row
//! mapping, keep-N, the purge rules and the one list of migrations (`schema.rs`) are written
//! once on top of it. [`Store`] is an enum over the engines rather than a trait object: the set
//! of engines is closed (SQLite, PostgreSQL, each behind its cargo feature), the methods are
//! async, and an enum keeps dispatch plain without boxing futures. Each method opens a
//! connection or transaction on its engine and runs the shared operation there (the macros
//! `run!` and `atomic!`).
//!
//! Every write that changes what DNS serves moves the zone version and logs it (`version.rs`).
//! TXT values carry a sequence number from the store, strictly increasing per database, so the
//! order of updates is exact even for many updates within one second (acme-dns orders by a
//! seconds timestamp and loses values), and so the zone can ignore a late, older write.

mod common;
mod error;
mod export;
pub mod import;
pub mod import_check;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod schema;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub mod version;
pub(crate) use common::redact;
pub use error::StoreError;
pub(crate) use version::{LogEntry, StoreTime, ZoneSnapshot, ZoneVersion};

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("acme-delegate needs a store: enable the `sqlite` or the `postgres` feature (or both)");

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::config::{Database, Engine};
use crate::privacy::Secret;
use import::{Report, Source};

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
    /// `register`, `update`, `account_read`, `account_update`, `rotate`, `delete`,
    /// `persist_set`, `persist_replace`, `persist_delete`.
    pub action: String,
    /// `ok`, or why it failed (`bad_credentials`, `not_allowed_from`, …).
    pub outcome: String,
    /// The client's address as the privacy setting allows (by default a /24 or /48 network).
    pub source: String,
    /// How many identical uses this entry stands for (1 when written; see `audit.rs`).
    pub count: i64,
    /// The newest of them (`at` is the first), seconds since the epoch.
    pub last_at: i64,
}

impl AuditEntry {
    /// One use of a credential, now or at `at`.
    pub fn new(at: i64, username: Option<String>, action: &str, outcome: &str, source: String) -> Self {
        Self {
            at,
            username,
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            source,
            count: 1,
            last_at: at,
        }
    }
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
    /// Its dns-persist-01 records, by issuer.
    pub persist: Vec<PersistEntry>,
}

/// A stored dns-persist-01 record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistEntry {
    /// The checked fields.
    pub record: crate::dns_persist::Record,
    /// The TXT value served for it.
    pub(crate) value: String,
    /// When it was set (seconds since the epoch).
    pub set_at: i64,
}

/// A line of the operator's account list.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccountSummary {
    /// Username.
    pub username: String,
    /// Subdomain.
    pub subdomain: String,
    /// Registered at.
    pub(crate) created_at: i64,
    /// Last successful update.
    pub last_used: Option<i64>,
}

/// What the retention task removes: everything older than these times (seconds since epoch).
#[derive(Clone, Copy, Debug)]
pub struct PurgeRules {
    /// The store's time the cuts were taken from (dns-persist-01 records past it expire).
    pub now: i64,
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
    /// Subdomains of accounts whose dns-persist-01 records passed their `persistUntil`.
    pub persist_expired: Vec<String>,
}

/// A change made by some instance, from the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A write committed zone version `version`: apply the log up to it.
    Version {
        /// The new version.
        version: u64,
        /// What it changed, for logs: a subdomain, or a word for a bulk change.
        hint: String,
    },
    /// The feed was (re)connected, or another process wrote: changes may have been missed;
    /// apply whatever the log holds beyond what the zone has.
    Resync,
}

/// An open store.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite file.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::PostgresStore>),
}

/// Tables an erasure touched, as bits: PostgreSQL rewrites them later (see `postgres.rs`).
mod erased {
    /// `accounts` (and with it `txt`, `audit` and `persist`).
    pub(super) const ACCOUNTS: u8 = 1;
    /// `txt`.
    pub(super) const TXT: u8 = 2;
    /// `audit`.
    pub(super) const AUDIT: u8 = 4;
    /// `persist` (dns-persist-01 records: their account URIs).
    pub(super) const PERSIST: u8 = 8;
}

// The macros first (`run!`, `atomic!`), then the modules that use them.
#[macro_use]
mod calls;
mod audit;
mod dns_persist;
mod journal;
pub(crate) mod keys;
pub mod lag;
mod signatures;
pub use dns_persist::PutOutcome;
pub use journal::JournalRow;

impl Store {
    /// Opens the configured store and brings its schema up to date.
    pub async fn open(database: &Database) -> Result<Self, StoreError> {
        match database.engine {
            #[cfg(feature = "sqlite")]
            Engine::Sqlite => Ok(Self::Sqlite(sqlite::SqliteStore::open(&database.connection).await?)),
            #[cfg(not(feature = "sqlite"))]
            Engine::Sqlite => Err(not_built(&database.connection, "sqlite")),
            #[cfg(feature = "postgres")]
            Engine::Postgres => {
                Ok(Self::Postgres(Box::new(postgres::PostgresStore::open(&database.connection).await?)))
            }
            #[cfg(not(feature = "postgres"))]
            Engine::Postgres => Err(not_built(&redact(&database.connection), "postgres")),
        }
    }

    /// Stores a new account with no TXT values.
    pub async fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        let account = account.clone();
        atomic!(self, c => common::insert_account(c, &account, false)).map(drop)
    }

    /// Imports a batch of acme-dns accounts with their values under one zone version (see [`import`]).
    pub async fn import_batch(&self, batch: Vec<Source>, keep: usize) -> Result<Report, StoreError> {
        atomic!(self, c => import::write_batch(c, &batch, keep))
    }

    /// Finds an account by username.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let username = username.to_owned();
        read!(self, c => common::account(c, &username))
    }

    /// Replaces an imported account's bcrypt hash by the SHA-256 of its key, only while the
    /// bcrypt hash is still there: a slow check that ends after a rotation must not bring the
    /// old key back.
    pub async fn upgrade_key(&self, username: &str, key_hash: Vec<u8>) -> Result<(), StoreError> {
        let username = username.to_owned();
        run!(self, c => common::set_key(c, &username, &key_hash, true))
    }

    /// Sets an account's key hash (a rotation); any imported bcrypt hash goes with the old key.
    pub async fn set_key(&self, username: &str, key_hash: Vec<u8>) -> Result<(), StoreError> {
        let username = username.to_owned();
        run!(self, c => common::set_key(c, &username, &key_hash, false))
    }

    /// Adds a TXT value, keeps only the newest `keep`, and returns what remains.
    pub async fn update_txt(
        &self,
        subdomain: &str,
        value: &str,
        keep: usize,
    ) -> Result<TxtValues, StoreError> {
        let (subdomain, value) = (subdomain.to_owned(), value.to_owned());
        atomic!(self, c => common::update_txt(c, &subdomain, &value, keep))
    }

    /// The newest `keep` values of one subdomain, or `None` if it is not registered.
    pub async fn txt_of(&self, subdomain: &str, keep: usize) -> Result<Option<TxtValues>, StoreError> {
        let subdomain = subdomain.to_owned();
        read!(self, c => common::txt_of(c, &subdomain, keep))
    }

    /// Every subdomain with its newest `keep` values, read in pages (one consistent state of the
    /// store: [`Self::zone_snapshot`]).
    pub async fn zone_contents(&self, keep: usize) -> Result<Vec<TxtValues>, StoreError> {
        read!(self, c => version::zone_contents(c, keep))
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
        let (token, value) = (token.to_owned(), value.map(str::to_owned));
        atomic!(self, c => common::put_own_challenge(c, &token, value.as_deref(), expires_at))
    }

    /// The zone version, serial base and signing epoch.
    pub async fn zone_version(&self) -> Result<ZoneVersion, StoreError> {
        read!(self, c => version::zone_version(c))
    }

    /// What each version after `after` changed, in version order.
    pub async fn zone_log_since(&self, after: u64) -> Result<Vec<LogEntry>, StoreError> {
        read!(self, c => version::log_since(c, after))
    }

    /// How many names the versions after `after` changed, as the log counts them.
    pub(crate) async fn zone_log_rows_since(&self, after: u64) -> Result<u64, StoreError> {
        read!(self, c => version::log_rows_since(c, after))
    }

    /// When the first change after version `after` was made, if the log still holds one.
    pub(crate) async fn first_change_after(&self, after: u64) -> Result<Option<i64>, StoreError> {
        read!(self, c => version::first_change_after(c, after))
    }

    /// The version and everything DNS serves, read in one consistent snapshot (a resync).
    pub async fn zone_snapshot(&self, keep: usize) -> Result<ZoneSnapshot, StoreError> {
        atomic!(self, c => version::snapshot(c, keep))
    }

    /// Records signing epoch `epoch` as a new version unless the epoch moved from `seen`.
    pub(crate) async fn new_signing_epoch(&self, seen: u32, epoch: u32) -> Result<Option<u64>, StoreError> {
        atomic!(self, c => version::new_epoch(c, seen, epoch))
    }

    /// The API's own ACME challenge values currently published.
    pub async fn own_challenges(&self) -> Result<Vec<String>, StoreError> {
        read!(self, c => common::own_challenges(c))
    }

    /// The signing key for `algorithm`, if one was made.
    pub async fn dnssec_key(&self, algorithm: u8) -> Result<Option<StoredKey>, StoreError> {
        read!(self, c => common::dnssec_key(c, algorithm))
    }

    /// Stores `pkcs8` as the key for `algorithm` unless one exists (so that instances starting
    /// together agree on one key: each then reads back whichever was stored first).
    pub async fn add_dnssec_key_if_none(
        &self,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<(), StoreError> {
        atomic!(self, c => common::add_dnssec_key_if_none(c, algorithm, &pkcs8))
    }

    /// Everything held about an account, or `None`.
    pub async fn account_record(
        &self,
        username: &str,
        keep: usize,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let username = username.to_owned();
        read!(self, c => async {
            let mut record = common::account_record(c, &username, keep).await?;
            if let Some(record) = &mut record {
                record.persist = dns_persist::records(c, &record.account.subdomain).await?;
            }
            Ok(record)
        })
    }

    /// Up to `limit` accounts by username after `after` (a page: walks the primary key).
    pub async fn accounts_page(&self, after: &str, limit: usize) -> Result<Vec<AccountSummary>, StoreError> {
        let after = after.to_owned();
        read!(self, c => common::list_accounts(c, &after, limit))
    }

    /// Replaces an account's `allowfrom`.
    pub async fn set_allowfrom(&self, username: &str, allowfrom: Vec<String>) -> Result<(), StoreError> {
        let username = username.to_owned();
        run!(self, c => common::set_allowfrom(c, &username, &allowfrom))
    }

    /// Erases an account, its TXT values and audit entries; returns its subdomain if it existed.
    pub async fn delete_account(&self, username: &str) -> Result<Option<String>, StoreError> {
        let username = username.to_owned();
        let subdomain = atomic!(self, c => common::delete_account(c, &username))?;
        self.erased(erased::ACCOUNTS | erased::TXT | erased::AUDIT).await?;
        Ok(subdomain)
    }

    /// Removes what is past retention.
    pub async fn purge(&self, rules: PurgeRules) -> Result<Purged, StoreError> {
        let purged = atomic!(self, limit = PURGE_DEADLINE, c => common::purge(c, rules))?;
        let mut tables = 0;
        if !purged.accounts_expired.is_empty() {
            tables |= erased::ACCOUNTS | erased::TXT | erased::AUDIT;
        }
        if !purged.txt_cleared.is_empty() {
            tables |= erased::TXT;
        }
        if purged.audit_entries > 0 {
            tables |= erased::AUDIT;
        }
        if !purged.persist_expired.is_empty() {
            tables |= erased::PERSIST;
        }
        if tables != 0 {
            self.erased(tables).await?;
        }
        // The purge task is where PostgreSQL's pages are cleaned of everything erased since its
        // last run, by a request or by this purge (never per request: see `postgres.rs`).
        self.clean_erased().await?;
        Ok(purged)
    }

    /// Removes erased data from PostgreSQL's table files (see `postgres.rs`); nothing to do on
    /// SQLite, which overwrites at once. The purge task calls it; so does a one-off process
    /// (the operator's `account delete`) that erased something and has no purge task.
    pub(crate) async fn clean_erased(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.vacuum().await,
        }
    }

    /// After an erasure committed in `tables` ([`erased`] bits): SQLite drops its copies of the
    /// old rows from its WAL at once; PostgreSQL notes the tables for the purge task's rewrite.
    /// The IXFR journal's steps hold the records they changed, the erased ones among them: all
    /// go first (a restart then sends the next transfer whole).
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    async fn erased(&self, tables: u8) -> Result<(), StoreError> {
        self.prune_journal(0).await?;
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => store.erased().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => {
                store.erased(tables);
                Ok(())
            }
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        read!(self, c => common::ping(c))
    }

    /// Checks that the store can serve requests (for the readiness endpoint): the database
    /// answers, and, once a write failed for lack of space, a small write commits again. Until
    /// then the store is not ready, though it reads: every update would fail. On SQLite the
    /// file system must also have room beside the database (`SqliteStore::check_room`); on
    /// PostgreSQL the write only shows that one row could be written, and if space is still
    /// short, the next failing write marks the store again.
    pub(crate) async fn ready(&self) -> Result<(), StoreError> {
        self.ping().await?;
        if self.out_of_space().load(Ordering::Relaxed) {
            match self {
                #[cfg(feature = "sqlite")]
                Self::Sqlite(store) => self.observe(store.check_room().await)?,
                // Its disk is not ours to look at: the probe write is the test there.
                #[cfg(feature = "postgres")]
                Self::Postgres(_) => {}
            }
            atomic!(self, c => version::probe_write(c))?;
            self.out_of_space().store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Passes a call's outcome on, noting a write refused for lack of space for [`Self::ready`].
    fn observe<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(outcome, Err(StoreError::Full(_))) {
            self.out_of_space().store(true, Ordering::Relaxed);
        }
        outcome
    }

    /// Whether a write failed for lack of space since the last successful probe.
    fn out_of_space(&self) -> &AtomicBool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => &store.out_of_space,
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => &store.out_of_space,
        }
    }

    /// The store's time and signing epoch; with `record`, the time is recorded (see [`version::time`]).
    pub(crate) async fn time(&self, record: bool) -> Result<StoreTime, StoreError> {
        if record {
            atomic!(self, c => version::time(c, true))
        } else {
            run!(self, c => version::time(c, false))
        }
    }

    /// Follows changes made by other processes: other instances (PostgreSQL's LISTEN/NOTIFY)
    /// or the operator's commands (both engines). Sends [`Change`]s until the receiver is
    /// dropped.
    pub fn subscribe(&self) -> mpsc::Receiver<Change> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => store.subscribe(),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.subscribe(),
        }
    }

    /// Flushes and closes (checkpoints the SQLite WAL).
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => store.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.close(),
        }
    }
}

/// The error for a database of an engine this build left out.
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn not_built(target: &str, engine: &str) -> StoreError {
    StoreError::Open {
        target: target.to_owned(),
        reason: format!("this build has no {engine} support (it was built without the `{engine}` feature)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact("/var/lib/acme-delegate/db"), "/var/lib/acme-delegate/db");
    }
}
