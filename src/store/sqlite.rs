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

use super::{Account, StoreError, StoredKey, TxtValues};
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
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_error)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_error)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { found: version, known });
    }
    if version == 0
        && has_table(conn, "records").map_err(backend)?
        && !has_table(conn, "accounts").map_err(backend)?
    {
        return Err(StoreError::ForeignSchema(format!(
            "{path} is an acme-dns database; acme-delegate keeps its own schema. Import it into a new file with \
             `acme-delegate import-acme-dns {path}` and point database.connection at that file"
        )));
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
        self.with(move |conn| {
            conn.execute(
                "UPDATE accounts SET key_hash = ?2, bcrypt_hash = NULL WHERE username = ?1",
                params![username, key_hash],
            )
            .map_err(backend)?;
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
            tx.prepare_cached("INSERT INTO txt (subdomain, value, updated_at) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![subdomain, value, now()]))
                .map_err(backend)?;
            tx.prepare_cached(
                "DELETE FROM txt WHERE subdomain = ?1 AND seq NOT IN \
                 (SELECT seq FROM txt WHERE subdomain = ?1 ORDER BY seq DESC LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![subdomain, keep as i64]))
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

    #[tokio::test]
    async fn keeps_the_newest_values_in_order() {
        let dir = std::env::temp_dir().join(format!("acme-delegate-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
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
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(store.zone_contents(3).await.unwrap()[0].values.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
