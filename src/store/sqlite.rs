//! The SQLite store: one file, WAL journal, schema migrations at open.
//!
//! Design note: SQLite allows one writer at a time, so the store holds one connection behind a
//! mutex and runs every statement on the blocking thread pool, off the async workers. WAL mode
//! lets the file be read by tools while we write; `synchronous = FULL` makes each committed
//! transaction reach the disk before we answer, so an update answered with 200 survives a
//! crash of the process or the machine.
//!
//! Migrations are an ordered list of SQL scripts; `PRAGMA user_version` records how many have
//! run. A database that holds acme-dns's tables and none of ours is refused with a pointer to
//! the import, rather than silently started empty beside them.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use tokio::sync::mpsc;

use super::{
    Account, AccountRecord, AccountSummary, AuditEntry, Change, PurgeRules, Purged, StoreError, StoredKey,
    TxtValues,
};
use crate::privacy::Secret;

/// Schema migrations, in order; index + 1 is the version each one reaches.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE accounts (
        username   TEXT PRIMARY KEY,
        key_hash   BLOB NOT NULL,
        subdomain  TEXT NOT NULL UNIQUE,
        allowfrom  TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL
    );
    CREATE TABLE txt (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        subdomain  TEXT NOT NULL REFERENCES accounts(subdomain) ON DELETE CASCADE,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX txt_by_subdomain ON txt (subdomain, seq);
",
    "
    CREATE TABLE dnssec_keys (
        id          INTEGER PRIMARY KEY,
        algorithm   INTEGER NOT NULL,
        private_key BLOB NOT NULL,
        created_at  INTEGER NOT NULL
    );
",
    "
    ALTER TABLE accounts ADD COLUMN bcrypt_hash TEXT;
",
    "
    ALTER TABLE accounts ADD COLUMN last_used INTEGER;
    CREATE TABLE audit (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        username TEXT,
        action   TEXT NOT NULL,
        outcome  TEXT NOT NULL,
        source   TEXT NOT NULL
    );
    CREATE INDEX audit_by_user ON audit (username);
    CREATE INDEX audit_by_time ON audit (at);
",
    "
    CREATE TABLE own_challenge (
        token      TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
",
];

/// A SQLite-backed store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The one connection; SQLite serialises writers anyway.
    conn: Arc<Mutex<Connection>>,
}

/// Maps a rusqlite error to ours.
fn backend(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, ref msg) = error
        && e.code == ErrorCode::ConstraintViolation
    {
        return StoreError::Duplicate(msg.clone().unwrap_or_default());
    }
    StoreError::Backend(error.to_string())
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Whether a table exists.
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}

/// Sets pragmas and runs pending migrations.
fn prepare(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let open_error = |e: rusqlite::Error| StoreError::Open { target: path.to_owned(), reason: e.to_string() };
    // Refuse another program's database before changing anything in it: journal_mode is
    // written into the file, so it must come after this check.
    if has_table(conn, "records").map_err(backend)? && !has_table(conn, "accounts").map_err(backend)? {
        return Err(StoreError::ForeignSchema(format!(
            "{path} is an acme-dns database; acme-delegate keeps its own schema. Import it into a new file with \
             `acme-delegate import-acme-dns {path}` and point database.connection at that file"
        )));
    }
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_error)?;
    // Erasure must erase: deleted rows are overwritten, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON").map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_error)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_error)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { found: version, known });
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(script).map_err(backend)?;
        tx.pragma_update(None, "user_version", index as i64 + 1).map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!("database schema migrated to version {}", index + 1);
    }
    Ok(())
}

/// Reads the newest `keep` values of one subdomain, oldest first.
fn values_of(conn: &Connection, subdomain: &str, keep: usize) -> rusqlite::Result<TxtValues> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, value FROM txt WHERE subdomain = ?1 ORDER BY seq DESC LIMIT ?2")?;
    let mut rows: Vec<(i64, String)> = stmt
        .query_map(params![subdomain, keep as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(TxtValues {
        subdomain: subdomain.to_owned(),
        seq: rows.last().map_or(0, |(seq, _)| *seq as u64),
        values: rows.into_iter().map(|(_, v)| v).collect(),
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the file at `path` and migrates it.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = Path::new(&path).parent()
                && !dir.as_os_str().is_empty()
                && !dir.exists()
            {
                return Err(StoreError::Open {
                    target: path.clone(),
                    reason: format!("directory {} does not exist", dir.display()),
                });
            }
            let mut conn = Connection::open(&path)
                .map_err(|e| StoreError::Open { target: path.clone(), reason: e.to_string() })?;
            prepare(&mut conn, &path)?;
            Ok(Self { conn: Arc::new(Mutex::new(conn)) })
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    /// See [`super::Store::insert_account`].
    pub async fn insert_account(&self, account: Account) -> Result<(), StoreError> {
        self.with(move |conn| {
            let allowfrom = serde_json::to_string(&account.allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
            conn.prepare_cached(
                "INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![account.username, account.key_hash, account.subdomain, allowfrom, now()]))
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::import_account`].
    pub async fn import_account(&self, account: Account) -> Result<bool, StoreError> {
        self.with(move |conn| {
            let allowfrom =
                serde_json::to_string(&account.allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO accounts (username, key_hash, bcrypt_hash, subdomain, allowfrom, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        account.username,
                        account.key_hash,
                        account.bcrypt_hash,
                        account.subdomain,
                        allowfrom,
                        now()
                    ])
                })
                .map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
    }

    /// See [`super::Store::upgrade_key`].
    pub async fn upgrade_key(&self, username: String, key_hash: Vec<u8>) -> Result<(), StoreError> {
        self.set_key_where(username, key_hash, " AND bcrypt_hash IS NOT NULL").await
    }

    /// See [`super::Store::set_key`].
    pub async fn set_key(&self, username: String, key_hash: Vec<u8>) -> Result<(), StoreError> {
        self.set_key_where(username, key_hash, "").await
    }

    /// Sets the key hash and clears the bcrypt hash of `username`, under an extra condition.
    async fn set_key_where(
        &self,
        username: String,
        key_hash: Vec<u8>,
        condition: &'static str,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            let sql = format!(
                "UPDATE accounts SET key_hash = ?2, bcrypt_hash = NULL WHERE username = ?1{condition}"
            );
            conn.execute(&sql, params![username, key_hash]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::txt_of`].
    pub async fn txt_of(&self, subdomain: String, keep: usize) -> Result<Option<TxtValues>, StoreError> {
        self.with(move |conn| {
            let exists: bool = conn
                .query_row("SELECT count(*) FROM accounts WHERE subdomain = ?1", [&subdomain], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(backend)?
                > 0;
            if !exists {
                return Ok(None);
            }
            values_of(conn, &subdomain, keep).map(Some).map_err(backend)
        })
        .await
    }

    /// See [`super::Store::ping`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend)).await
    }

    /// See [`super::Store::account`].
    pub async fn account(&self, username: String) -> Result<Option<Account>, StoreError> {
        self.with(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT username, key_hash, subdomain, allowfrom, bcrypt_hash FROM accounts WHERE username = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&username], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    })
                    .optional()
                })
                .map_err(backend)?;
            let Some((username, key_hash, subdomain, allowfrom, bcrypt_hash)) = row else { return Ok(None) };
            let allowfrom: Vec<String> = serde_json::from_str(&allowfrom).map_err(|e| {
                StoreError::Backend(format!("allowfrom of {username} is not a JSON list: {e}"))
            })?;
            Ok(Some(Account { username, key_hash, bcrypt_hash, subdomain, allowfrom }))
        })
        .await
    }

    /// See [`super::Store::update_txt`].
    pub async fn update_txt(
        &self,
        subdomain: String,
        value: String,
        keep: usize,
    ) -> Result<TxtValues, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            // A value sent again (a client's retry) moves to the newest place instead of being
            // kept twice: an RRset has no duplicate records (RFC 2181 5), and a retried B must
            // not push out the A that the other name of the same certificate still needs.
            tx.prepare_cached("DELETE FROM txt WHERE subdomain = ?1 AND value = ?2")
                .and_then(|mut s| s.execute(params![subdomain, value]))
                .map_err(backend)?;
            tx.prepare_cached("INSERT INTO txt (subdomain, value, updated_at) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![subdomain, value, now()]))
                .map_err(backend)?;
            tx.prepare_cached(
                "DELETE FROM txt WHERE subdomain = ?1 AND seq NOT IN \
                 (SELECT seq FROM txt WHERE subdomain = ?1 ORDER BY seq DESC LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![subdomain, keep as i64]))
            .map_err(backend)?;
            tx.prepare_cached("UPDATE accounts SET last_used = ?2 WHERE subdomain = ?1")
                .and_then(|mut s| s.execute(params![subdomain, now()]))
                .map_err(backend)?;
            let values = values_of(&tx, &subdomain, keep).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(values)
        })
        .await
    }

    /// See [`super::Store::zone_contents`].
    pub async fn zone_contents(&self, keep: usize) -> Result<Vec<TxtValues>, StoreError> {
        self.with(move |conn| {
            let subdomains: Vec<String> = conn
                .prepare("SELECT subdomain FROM accounts")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(backend)?;
            subdomains.iter().map(|sub| values_of(conn, sub, keep).map_err(backend)).collect()
        })
        .await
    }

    /// See [`super::Store::put_own_challenge`].
    pub async fn put_own_challenge(
        &self,
        token: String,
        value: Option<String>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            match value {
                Some(value) => conn.execute(
                    "INSERT OR REPLACE INTO own_challenge (token, value, expires_at) VALUES (?1, ?2, ?3)",
                    params![token, value, expires_at],
                ),
                None => conn.execute("DELETE FROM own_challenge WHERE token = ?1", [token]),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::own_challenges`].
    pub async fn own_challenges(&self) -> Result<Vec<String>, StoreError> {
        self.with(move |conn| {
            conn.prepare("SELECT value FROM own_challenge WHERE expires_at > ?1 ORDER BY token")
                .and_then(|mut s| s.query_map([now()], |r| r.get(0))?.collect())
                .map_err(backend)
        })
        .await
    }

    /// See [`super::Store::dnssec_key`].
    pub async fn dnssec_key(&self, algorithm: u8) -> Result<Option<StoredKey>, StoreError> {
        self.with(move |conn| {
            conn.query_row(
                "SELECT private_key, created_at FROM dnssec_keys WHERE algorithm = ?1 ORDER BY id LIMIT 1",
                [i64::from(algorithm)],
                |r| Ok(StoredKey { algorithm, pkcs8: Secret::new(r.get(0)?), created_at: r.get(1)? }),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    /// See [`super::Store::add_dnssec_key_if_none`].
    pub async fn add_dnssec_key_if_none(
        &self,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO dnssec_keys (algorithm, private_key, created_at) SELECT ?1, ?2, ?3 \
                 WHERE NOT EXISTS (SELECT 1 FROM dnssec_keys WHERE algorithm = ?1)",
                params![i64::from(algorithm), pkcs8.expose(), now()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::record_audit`].
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit (at, username, action, outcome, source) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![entry.at, entry.username, entry.action, entry.outcome, entry.source])
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::account_record`].
    pub async fn account_record(
        &self,
        username: String,
        keep: usize,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let Some(account) = self.account(username.clone()).await? else { return Ok(None) };
        self.with(move |conn| {
            let (created_at, last_used) = conn
                .query_row(
                    "SELECT created_at, last_used FROM accounts WHERE username = ?1",
                    [&username],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
                )
                .map_err(backend)?;
            let txt = conn
                .prepare("SELECT value, updated_at FROM txt WHERE subdomain = ?1 ORDER BY seq DESC LIMIT ?2")
                .and_then(|mut s| {
                    s.query_map(params![account.subdomain, keep as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(backend)?;
            let audit = conn
                .prepare(
                    "SELECT at, username, action, outcome, source FROM audit WHERE username = ?1 ORDER BY id",
                )
                .and_then(|mut s| {
                    s.query_map([&username], |r| {
                        Ok(AuditEntry {
                            at: r.get(0)?,
                            username: r.get(1)?,
                            action: r.get(2)?,
                            outcome: r.get(3)?,
                            source: r.get(4)?,
                        })
                    })?
                    .collect()
                })
                .map_err(backend)?;
            Ok(Some(AccountRecord { account, created_at, last_used, txt, audit }))
        })
        .await
    }

    /// See [`super::Store::list_accounts`].
    pub async fn list_accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        self.with(|conn| {
            conn.prepare("SELECT username, subdomain, created_at, last_used FROM accounts ORDER BY created_at, username")
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok(AccountSummary {
                            username: r.get(0)?,
                            subdomain: r.get(1)?,
                            created_at: r.get(2)?,
                            last_used: r.get(3)?,
                        })
                    })?
                    .collect()
                })
                .map_err(backend)
        })
        .await
    }

    /// See [`super::Store::set_allowfrom`].
    pub async fn set_allowfrom(&self, username: String, allowfrom: Vec<String>) -> Result<(), StoreError> {
        self.with(move |conn| {
            let json = serde_json::to_string(&allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
            conn.execute("UPDATE accounts SET allowfrom = ?2 WHERE username = ?1", params![username, json])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// See [`super::Store::delete_account`].
    pub async fn delete_account(&self, username: String) -> Result<Option<String>, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let subdomain: Option<String> = tx
                .query_row("SELECT subdomain FROM accounts WHERE username = ?1", [&username], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            tx.execute("DELETE FROM txt WHERE subdomain = ?1", [&subdomain]).map_err(backend)?;
            tx.execute("DELETE FROM accounts WHERE username = ?1", [&username]).map_err(backend)?;
            tx.execute("DELETE FROM audit WHERE username = ?1", [&username]).map_err(backend)?;
            tx.commit().map_err(backend)?;
            // The WAL still holds the old pages until a checkpoint; fold it in and empty it.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(backend)?;
            Ok(subdomain)
        })
        .await
    }

    /// See [`super::Store::purge`].
    pub async fn purge(&self, rules: PurgeRules) -> Result<Purged, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let audit =
                tx.execute("DELETE FROM audit WHERE at < ?1", [rules.audit_before]).map_err(backend)?;
            let stale: Vec<String> = tx
                .prepare("SELECT DISTINCT subdomain FROM txt WHERE updated_at < ?1")
                .and_then(|mut s| s.query_map([rules.txt_before], |r| r.get(0))?.collect())
                .map_err(backend)?;
            tx.execute("DELETE FROM txt WHERE updated_at < ?1", [rules.txt_before]).map_err(backend)?;
            let mut expired = Vec::new();
            if let Some(before) = rules.unused_before {
                expired = tx
                    .prepare(
                        "SELECT username, subdomain FROM accounts WHERE COALESCE(last_used, created_at) < ?1",
                    )
                    .and_then(|mut s| {
                        s.query_map([before], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                            .collect()
                    })
                    .map_err(backend)?;
                for (username, subdomain) in &expired {
                    tx.execute("DELETE FROM txt WHERE subdomain = ?1", [subdomain]).map_err(backend)?;
                    tx.execute("DELETE FROM accounts WHERE username = ?1", [username]).map_err(backend)?;
                    tx.execute("DELETE FROM audit WHERE username = ?1", [username]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)?;
            if audit > 0 || !stale.is_empty() || !expired.is_empty() {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(backend)?;
            }
            Ok(Purged {
                audit_entries: audit,
                txt_cleared: stale,
                accounts_expired: expired.into_iter().map(|(_, s)| s).collect(),
            })
        })
        .await
    }

    /// See [`super::Store::subscribe`]: notices writes by other processes (the operator's
    /// `account delete`, an import) through `PRAGMA data_version`, which changes only when
    /// another connection commits, and asks for a resync.
    pub fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(16);
        let store = self.clone();
        tokio::spawn(async move {
            let version = || {
                store.with(|conn| {
                    conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)).map_err(backend)
                })
            };
            let Ok(mut last) = version().await else { return };
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if tx.is_closed() {
                    return;
                }
                match version().await {
                    Ok(current) if current != last => {
                        last = current;
                        if tx.send(Change::Resync).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        rx
    }

    /// See [`super::Store::close`].
    pub async fn close(&self) {
        let result =
            self.with(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(backend)).await;
        if let Err(error) = result {
            tracing::warn!("closing the database: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u8) -> Account {
        Account {
            username: format!("user-{n}"),
            key_hash: vec![n; 32],
            bcrypt_hash: None,
            subdomain: format!("sub-{n}"),
            allowfrom: vec!["10.0.0.0/8".into()],
        }
    }

    /// A directory of this test process named after `test`, and a database path in it that
    /// does not exist yet.
    fn fresh_file(test: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("acme-delegate-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        let path = path.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[tokio::test]
    async fn a_late_bcrypt_upgrade_does_not_undo_a_rotation() {
        let (dir, path) = fresh_file("rotate");
        let store = SqliteStore::open(&path).await.unwrap();
        let imported = Account { key_hash: Vec::new(), bcrypt_hash: Some("$2a$10$x".into()), ..account(2) };
        assert!(store.import_account(imported).await.unwrap());
        // The rotation lands first; the bcrypt check of a request that began before it ends later.
        store.set_key("user-2".into(), vec![7; 32]).await.unwrap();
        store.upgrade_key("user-2".into(), vec![1; 32]).await.unwrap();
        let now = store.account("user-2".into()).await.unwrap().unwrap();
        assert_eq!((now.key_hash, now.bcrypt_hash), (vec![7; 32], None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn keeps_the_newest_values_in_order() {
        let (dir, path) = fresh_file("store");
        let store = SqliteStore::open(&path).await.unwrap();
        store.insert_account(account(1)).await.unwrap();
        assert!(matches!(store.insert_account(account(1)).await, Err(StoreError::Duplicate(_))));
        assert_eq!(store.account("user-1".into()).await.unwrap(), Some(account(1)));
        assert_eq!(store.account("nobody".into()).await.unwrap(), None);
        for value in ["a", "b", "c", "d"] {
            store.update_txt("sub-1".into(), value.into(), 2).await.unwrap();
        }
        let all = store.zone_contents(2).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].values, vec!["c".to_owned(), "d".to_owned()]);
        drop(store);
        // Reopening runs no migration twice.
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.zone_contents(3).await.unwrap()[0].values.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
