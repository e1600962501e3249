//! The PostgreSQL store: a pooled connection set, migrations, and a LISTEN/NOTIFY change feed.
//!
//! Design note: several instances share one database, each with its own in-memory zone. Every
//! write that changes what DNS serves sends `NOTIFY acme_delegate, '<subdomain>'` inside its
//! transaction, so the notification is delivered exactly when the change is committed. Each
//! instance keeps one extra connection that LISTENs; after every (re)connect it first asks for a
//! full resync, so nothing missed while disconnected stays stale.
//!
//! Availability: the pool creates connections lazily and bounds every wait, so when the
//! database goes away API calls fail fast with [`StoreError::Unavailable`] (the API answers
//! 503) while DNS keeps answering from memory; when it comes back, the next request simply
//! gets a fresh connection and the feed reconnects by itself.
//!
//! Connections are plain TCP or a Unix socket (`sslmode=require` is refused with a clear
//! message): the database is expected on the same host or a private network.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{
    Account, AccountRecord, AccountSummary, AuditEntry, Change, PurgeRules, Purged, StoreError, StoredKey,
    TxtValues,
};
use crate::privacy::Secret;

/// The notification channel.
const CHANNEL: &str = "acme_delegate";
/// The payload that announces a change of the API's own ACME challenge (never a subdomain:
/// those are UUIDs).
const OWN_CHALLENGE: &str = "*own-challenge";

/// How long a request waits for a pooled connection, or for a new one to be made.
const WAIT: Duration = Duration::from_secs(3);

/// Schema migrations, in order; index + 1 is the version each one reaches.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE accounts (
        username    TEXT PRIMARY KEY,
        key_hash    BYTEA NOT NULL,
        bcrypt_hash TEXT,
        subdomain   TEXT NOT NULL UNIQUE,
        allowfrom   TEXT NOT NULL DEFAULT '[]',
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE txt (
        seq        BIGSERIAL PRIMARY KEY,
        subdomain  TEXT NOT NULL REFERENCES accounts(subdomain) ON DELETE CASCADE,
        value      TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX txt_by_subdomain ON txt (subdomain, seq);
    CREATE TABLE dnssec_keys (
        id          BIGSERIAL PRIMARY KEY,
        algorithm   INTEGER NOT NULL,
        private_key BYTEA NOT NULL,
        created_at  BIGINT NOT NULL
    );
",
    "
    ALTER TABLE accounts ADD COLUMN last_used BIGINT;
    CREATE TABLE audit (
        id       BIGSERIAL PRIMARY KEY,
        at       BIGINT NOT NULL,
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
        expires_at BIGINT NOT NULL
    );
",
];

/// A PostgreSQL-backed store.
#[derive(Clone)]
pub struct PostgresStore {
    /// Connection pool for requests.
    pool: Pool,
    /// Connection settings, for the feed's own connection.
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password; show only where it points.
        f.debug_struct("PostgresStore").field("hosts", &self.config.get_hosts()).finish()
    }
}

/// Maps a driver error: connection-level failures are "unavailable", the rest "backend".
fn db_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            return StoreError::Duplicate(db.message().to_owned());
        }
        return StoreError::Backend(db.message().to_owned());
    }
    StoreError::Unavailable(error.to_string())
}

/// Maps a pool error.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => db_error(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl PostgresStore {
    /// Connects, checks the schema and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let target = redact(url);
        let open_error = |reason: String| StoreError::Open { target: target.clone(), reason };
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| open_error(e.to_string()))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(open_error(
                "sslmode=require is not supported: connect over a Unix socket or a private network".into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(WAIT);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let store = Self { pool, config };
        let mut client = store.pool.get().await.map_err(|e| open_error(e.to_string()))?;
        store.migrate(&mut client, url).await?;
        Ok(store)
    }

    /// Runs pending migrations under an advisory lock, so instances starting together agree.
    async fn migrate(&self, client: &mut deadpool_postgres::Client, url: &str) -> Result<(), StoreError> {
        let tx = client.transaction().await.map_err(db_error)?;
        // Any constant identifies our lock; it is held until the transaction ends.
        tx.execute("SELECT pg_advisory_xact_lock(7305429031)", &[]).await.map_err(db_error)?;
        let table_exists = |rows: &[tokio_postgres::Row]| rows.first().is_some_and(|r| r.get::<_, bool>(0));
        let q = "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_name = $1)";
        let has_records = table_exists(&tx.query(q, &[&"records"]).await.map_err(db_error)?);
        let has_accounts = table_exists(&tx.query(q, &[&"accounts"]).await.map_err(db_error)?);
        if has_records && !has_accounts {
            return Err(StoreError::ForeignSchema(format!(
                "{} is an acme-dns database; acme-delegate keeps its own schema. Import it into another database \
                 with `acme-delegate import-acme-dns {}` and point database.connection there",
                redact(url),
                redact(url)
            )));
        }
        tx.batch_execute("CREATE TABLE IF NOT EXISTS acme_delegate_schema (version BIGINT NOT NULL)")
            .await
            .map_err(db_error)?;
        let version: i64 = tx
            .query_opt("SELECT version FROM acme_delegate_schema", &[])
            .await
            .map_err(db_error)?
            .map_or(0, |r| r.get(0));
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { found: version, known });
        }
        for (index, script) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(script).await.map_err(db_error)?;
            tracing::info!("database schema migrated to version {}", index + 1);
        }
        tx.execute("DELETE FROM acme_delegate_schema", &[]).await.map_err(db_error)?;
        tx.execute("INSERT INTO acme_delegate_schema (version) VALUES ($1)", &[&known])
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// See [`super::Store::insert_account`].
    pub async fn insert_account(&self, account: Account) -> Result<(), StoreError> {
        let client = self.client().await?;
        let allowfrom =
            serde_json::to_string(&account.allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
        client
            .execute(
                "WITH ins AS (INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING subdomain) SELECT pg_notify($6, subdomain) FROM ins",
                &[&account.username, &account.key_hash, &account.subdomain, &allowfrom, &now(), &CHANNEL],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// See [`super::Store::import_account`].
    pub async fn import_account(&self, account: Account) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let allowfrom =
            serde_json::to_string(&account.allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
        let n = client
            .execute(
                // Running instances learn of the new name at once, as for a registration: an
                // imported account without values must answer NODATA there, not NXDOMAIN.
                "WITH ins AS (INSERT INTO accounts \
                 (username, key_hash, bcrypt_hash, subdomain, allowfrom, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING subdomain) \
                 SELECT pg_notify($7, subdomain) FROM ins",
                &[
                    &account.username,
                    &account.key_hash,
                    &account.bcrypt_hash,
                    &account.subdomain,
                    &allowfrom,
                    &now(),
                    &CHANNEL,
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(n == 1)
    }

    /// See [`super::Store::account`].
    pub async fn account(&self, username: String) -> Result<Option<Account>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT username, key_hash, bcrypt_hash, subdomain, allowfrom FROM accounts WHERE username = $1",
                &[&username],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let allowfrom: String = row.get(4);
        let allowfrom: Vec<String> = serde_json::from_str(&allowfrom)
            .map_err(|e| StoreError::Backend(format!("allowfrom of {username} is not a JSON list: {e}")))?;
        Ok(Some(Account {
            username: row.get(0),
            key_hash: row.get(1),
            bcrypt_hash: row.get(2),
            subdomain: row.get(3),
            allowfrom,
        }))
    }

    /// See [`super::Store::put_own_challenge`].
    pub async fn put_own_challenge(
        &self,
        token: String,
        value: Option<String>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        match value {
            Some(value) => {
                tx.execute(
                    "INSERT INTO own_challenge (token, value, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (token) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
                    &[&token, &value, &expires_at],
                )
                .await
            }
            None => tx.execute("DELETE FROM own_challenge WHERE token = $1", &[&token]).await,
        }
        .map_err(db_error)?;
        // The other instances serve the zone too: the CA may ask any of them.
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &OWN_CHALLENGE]).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    /// See [`super::Store::own_challenges`].
    pub async fn own_challenges(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT value FROM own_challenge WHERE expires_at > $1 ORDER BY token", &[&now()])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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
        let client = self.client().await?;
        let sql =
            format!("UPDATE accounts SET key_hash = $2, bcrypt_hash = NULL WHERE username = $1{condition}");
        client.execute(&sql, &[&username, &key_hash]).await.map_err(db_error)?;
        Ok(())
    }

    /// Reads the newest `keep` values of one subdomain, oldest first.
    async fn values_of(
        client: &impl deadpool_postgres::GenericClient,
        subdomain: &str,
        keep: usize,
    ) -> Result<TxtValues, StoreError> {
        let rows = client
            .query(
                "SELECT seq, value FROM txt WHERE subdomain = $1 ORDER BY seq DESC LIMIT $2",
                &[&subdomain, &(keep as i64)],
            )
            .await
            .map_err(db_error)?;
        let mut pairs: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        pairs.reverse();
        Ok(TxtValues {
            subdomain: subdomain.to_owned(),
            seq: pairs.last().map_or(0, |(seq, _)| *seq as u64),
            values: pairs.into_iter().map(|(_, v)| v).collect(),
        })
    }

    /// See [`super::Store::update_txt`].
    pub async fn update_txt(
        &self,
        subdomain: String,
        value: String,
        keep: usize,
    ) -> Result<TxtValues, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        // A value sent again moves to the newest place instead of being kept twice (see the
        // SQLite store for why).
        tx.execute("DELETE FROM txt WHERE subdomain = $1 AND value = $2", &[&subdomain, &value])
            .await
            .map_err(db_error)?;
        tx.execute(
            "INSERT INTO txt (subdomain, value, updated_at) VALUES ($1, $2, $3)",
            &[&subdomain, &value, &now()],
        )
        .await
        .map_err(db_error)?;
        tx.execute(
            "DELETE FROM txt WHERE subdomain = $1 AND seq NOT IN \
             (SELECT seq FROM txt WHERE subdomain = $1 ORDER BY seq DESC LIMIT $2)",
            &[&subdomain, &(keep as i64)],
        )
        .await
        .map_err(db_error)?;
        tx.execute("UPDATE accounts SET last_used = $2 WHERE subdomain = $1", &[&subdomain, &now()])
            .await
            .map_err(db_error)?;
        let values = Self::values_of(&tx, &subdomain, keep).await?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &subdomain]).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(values)
    }

    /// See [`super::Store::txt_of`].
    pub async fn txt_of(&self, subdomain: String, keep: usize) -> Result<Option<TxtValues>, StoreError> {
        let client = self.client().await?;
        let exists = client
            .query_opt("SELECT 1 FROM accounts WHERE subdomain = $1", &[&subdomain])
            .await
            .map_err(db_error)?
            .is_some();
        if !exists {
            return Ok(None);
        }
        Self::values_of(&client, &subdomain, keep).await.map(Some)
    }

    /// See [`super::Store::zone_contents`].
    pub async fn zone_contents(&self, keep: usize) -> Result<Vec<TxtValues>, StoreError> {
        let client = self.client().await?;
        // One query for all: the newest `keep` values of each subdomain, ranked in SQL.
        let rows = client
            .query(
                "SELECT a.subdomain, t.seq, t.value FROM accounts a LEFT JOIN LATERAL \
                 (SELECT seq, value FROM txt WHERE txt.subdomain = a.subdomain ORDER BY seq DESC LIMIT $1) t \
                 ON true ORDER BY a.subdomain, t.seq",
                &[&(keep as i64)],
            )
            .await
            .map_err(db_error)?;
        let mut out: Vec<TxtValues> = Vec::new();
        for row in rows {
            let subdomain: String = row.get(0);
            if out.last().is_none_or(|last| last.subdomain != subdomain) {
                out.push(TxtValues { subdomain: subdomain.clone(), seq: 0, values: Vec::new() });
            }
            if let (Some(seq), Some(value)) = (row.get::<_, Option<i64>>(1), row.get::<_, Option<String>>(2))
                && let Some(last) = out.last_mut()
            {
                last.seq = seq as u64;
                last.values.push(value);
            }
        }
        Ok(out)
    }

    /// See [`super::Store::dnssec_key`].
    pub async fn dnssec_key(&self, algorithm: u8) -> Result<Option<StoredKey>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT private_key, created_at FROM dnssec_keys WHERE algorithm = $1 ORDER BY id LIMIT 1",
                &[&i32::from(algorithm)],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|r| StoredKey { algorithm, pkcs8: Secret::new(r.get(0)), created_at: r.get(1) }))
    }

    /// See [`super::Store::add_dnssec_key_if_none`].
    pub async fn add_dnssec_key_if_none(
        &self,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        // Serialise instances that start together, so exactly one key is made.
        tx.execute("SELECT pg_advisory_xact_lock(7305429032)", &[]).await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO dnssec_keys (algorithm, private_key, created_at) SELECT $1, $2, $3 \
             WHERE NOT EXISTS (SELECT 1 FROM dnssec_keys WHERE algorithm = $1)",
            &[&i32::from(algorithm), pkcs8.expose(), &now()],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// See [`super::Store::record_audit`].
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO audit (at, username, action, outcome, source) VALUES ($1, $2, $3, $4, $5)",
                &[&entry.at, &entry.username, &entry.action, &entry.outcome, &entry.source],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// See [`super::Store::account_record`].
    pub async fn account_record(
        &self,
        username: String,
        keep: usize,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let Some(account) = self.account(username.clone()).await? else { return Ok(None) };
        let client = self.client().await?;
        let row = client
            .query_one("SELECT created_at, last_used FROM accounts WHERE username = $1", &[&username])
            .await
            .map_err(db_error)?;
        let txt = client
            .query(
                "SELECT value, updated_at FROM txt WHERE subdomain = $1 ORDER BY seq DESC LIMIT $2",
                &[&account.subdomain, &(keep as i64)],
            )
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let audit = client
            .query(
                "SELECT at, username, action, outcome, source FROM audit WHERE username = $1 ORDER BY id",
                &[&username],
            )
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| AuditEntry {
                at: r.get(0),
                username: r.get(1),
                action: r.get(2),
                outcome: r.get(3),
                source: r.get(4),
            })
            .collect();
        Ok(Some(AccountRecord { account, created_at: row.get(0), last_used: row.get(1), txt, audit }))
    }

    /// See [`super::Store::list_accounts`].
    pub async fn list_accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT username, subdomain, created_at, last_used FROM accounts ORDER BY created_at, username", &[])
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| AccountSummary {
                username: r.get(0),
                subdomain: r.get(1),
                created_at: r.get(2),
                last_used: r.get(3),
            })
            .collect())
    }

    /// See [`super::Store::set_allowfrom`].
    pub async fn set_allowfrom(&self, username: String, allowfrom: Vec<String>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let json = serde_json::to_string(&allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
        client
            .execute("UPDATE accounts SET allowfrom = $2 WHERE username = $1", &[&username, &json])
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// See [`super::Store::delete_account`].
    pub async fn delete_account(&self, username: String) -> Result<Option<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let subdomain: Option<String> = tx
            .query_opt("DELETE FROM accounts WHERE username = $1 RETURNING subdomain", &[&username])
            .await
            .map_err(db_error)?
            .map(|r| r.get(0));
        tx.execute("DELETE FROM audit WHERE username = $1", &[&username]).await.map_err(db_error)?;
        if let Some(subdomain) = &subdomain {
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, subdomain]).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(subdomain)
    }

    /// See [`super::Store::purge`].
    pub async fn purge(&self, rules: PurgeRules) -> Result<Purged, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_error)?;
        let audit =
            tx.execute("DELETE FROM audit WHERE at < $1", &[&rules.audit_before]).await.map_err(db_error)?;
        let stale: Vec<String> = tx
            .query("DELETE FROM txt WHERE updated_at < $1 RETURNING subdomain", &[&rules.txt_before])
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut expired: Vec<(String, String)> = Vec::new();
        if let Some(before) = rules.unused_before {
            expired = tx
                .query(
                    "DELETE FROM accounts WHERE COALESCE(last_used, created_at) < $1 RETURNING username, subdomain",
                    &[&before],
                )
                .await
                .map_err(db_error)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for (username, _) in &expired {
                tx.execute("DELETE FROM audit WHERE username = $1", &[username]).await.map_err(db_error)?;
            }
        }
        let mut changed: Vec<String> = stale.clone();
        changed.extend(expired.iter().map(|(_, s)| s.clone()));
        changed.sort();
        changed.dedup();
        for subdomain in &changed {
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, subdomain]).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        let mut txt_cleared = stale;
        txt_cleared.sort();
        txt_cleared.dedup();
        Ok(Purged {
            audit_entries: audit as usize,
            txt_cleared,
            accounts_expired: expired.into_iter().map(|(_, s)| s).collect(),
        })
    }

    /// See [`super::Store::ping`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(db_error)?;
        Ok(())
    }

    /// See [`super::Store::subscribe`]: a task that LISTENs, reconnecting as needed.
    pub fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(1024);
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match listen(&config, &tx).await {
                    Ok(()) => return, // the receiver is gone: the server is stopping
                    Err(reason) => {
                        tracing::warn!(
                            "change feed lost ({reason}); reconnecting in {} ms",
                            backoff.as_millis()
                        );
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        rx
    }

    /// See [`super::Store::close`].
    pub async fn close(&self) {
        self.pool.close();
    }
}

/// One LISTEN session: connects, asks for a resync, forwards notifications until the
/// connection fails (`Err`) or the receiver goes away (`Ok`).
async fn listen(config: &tokio_postgres::Config, tx: &mpsc::Sender<Change>) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (notes_tx, mut notes_rx) = mpsc::unbounded_channel::<Result<String, String>>();
    // The connection object must be polled for the client to work; it also yields the
    // notifications.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notes_tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = notes_tx.send(Err(e.to_string()));
                    return;
                }
                None => {
                    let _ = notes_tx.send(Err("connection closed".into()));
                    return;
                }
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(|e| e.to_string())?;
        tracing::info!("following changes from other instances (LISTEN {CHANNEL})");
        if tx.send(Change::Resync).await.is_err() {
            return Ok(());
        }
        loop {
            tokio::select! {
                note = notes_rx.recv() => match note {
                    Some(Ok(payload)) => {
                        let change =
                            if payload == OWN_CHALLENGE { Change::OwnChallenge } else { Change::Subdomain(payload) };
                        if tx.send(change).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err("connection closed".to_owned()),
                },
                // PostgreSQL may not tell a silently dropped peer for a long time: probe.
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
