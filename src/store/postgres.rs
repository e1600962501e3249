//! The PostgreSQL engine: a pooled connection set, advisory locks, and a LISTEN/NOTIFY change
//! feed.
//!
//! Design note: several instances share one database, each with its own in-memory zone. Every
//! write that changes what DNS serves sends `NOTIFY acme_delegate, '<subdomain>'` inside its
//! transaction, so the notification is delivered exactly when the change is committed. Each
//! instance keeps one extra connection that LISTENs; after every (re)connect it first asks for a
//! full resync, so nothing missed while disconnected stays stale.
//!
//! Availability: the pool creates connections lazily and bounds every wait, so when the
//! database goes away API calls fail fast with `StoreError::Unavailable` (the API answers
//! 503) while DNS keeps answering from memory; when it comes back, the next request simply
//! gets a fresh connection and the feed reconnects by itself.
//!
//! Everything the engines share is in `common.rs` and runs here through `Conn` for `Pg`
//! (a pooled client or a transaction on one). What is left here is what only PostgreSQL does:
//! the pool, typed parameters, advisory locks, NOTIFY and LISTEN, and the schema version in
//! the `acme_delegate_schema` table, which databases made before the shared numbering hold in
//! their own (see `shared_version`).
//!
//! Deadlines: a frozen database (a stopped process, a stalled network) must not hang a request.
//! Every call runs under [`CALL_DEADLINE`] (`deadline` and `settle`, used by the `run!` and
//! `atomic!` macros of `mod.rs`); a connection whose call ran out of time is taken out of the
//! pool rather than handed to the next request. The server also aborts statements itself after
//! [`STATEMENT_TIMEOUT`] (a lock held by someone else, a slow plan), and TCP keepalives close
//! connections to a host that went away. Waiting for a pooled connection or making one is
//! bounded by `WAIT`. The change feed probes its connection with the same deadline.
//!
//! Erasure: PostgreSQL never overwrites a row in place; a DELETE (or an UPDATE meant to blank
//! the values first) leaves the old tuple on its page, and a plain VACUUM marks its space free
//! without clearing it. So after an erasure (`DELETE /account`, the operator's delete, expiry,
//! TXT values past retention) the store only notes which tables held the data, and the next
//! run of the purge task rewrites them with `VACUUM FULL` (new files; the old ones are
//! truncated at once and unlinked at the next checkpoint). That costs a brief exclusive lock on
//! `accounts`, `txt` and the zone log, once per purge run and only after an erasure, never per request; it
//! gives up after `lock_timeout` rather than queue every request behind a long transaction,
//! and is retried on the next run. The audit trail, written all the time and large, gets a
//! plain VACUUM: its freed space is reused by the next entries. What stays (WAL segments,
//! backups) is stated in the README and the Art. 30 report.
//!
//! Connections are plain TCP or a Unix socket (`sslmode=require` is refused with a clear
//! message): the database is expected on the same host or a private network.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, NoTls};

use super::common::{Conn, Lock, Row, Value};
use super::schema::ColumnTypes;
use super::{Change, StoreError, redact};

/// The notification channel.
const CHANNEL: &str = "acme_delegate";

/// How long a request waits for a pooled connection, or for a new one to be made.
const WAIT: Duration = Duration::from_secs(3);

/// How long one store call (all its statements, a transaction's commit included) may take
/// before the request gets `StoreError::Unavailable` (the API answers 503).
pub(super) const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// The server-side `statement_timeout`, below the call deadline so that a slow statement is
/// ended by the server (which then frees its locks) rather than abandoned by us.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(4);
/// The deadline of the retention purge, which may delete a large backlog in one transaction.
pub(super) const PURGE_DEADLINE: Duration = Duration::from_secs(120);

/// A PostgreSQL-backed store.
#[derive(Clone)]
pub struct PostgresStore {
    /// Connection pool for requests.
    pool: Pool,
    /// Connection settings, for the feed's own connection.
    config: tokio_postgres::Config,
    /// Tables that held erased data since their last rewrite (`super::erased` bits).
    erased: Arc<AtomicU8>,
    /// Whether a write failed for lack of space (see `super::Store::ready`).
    pub(super) out_of_space: Arc<AtomicBool>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password; show only where it points.
        f.debug_struct("PostgresStore").field("hosts", &self.config.get_hosts()).finish()
    }
}

/// Maps a driver error. Connection-level failures (class 08, the server ending or refusing
/// the session: 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, a
/// closed or reset connection) are `Disconnected`, which a call may retry (see `calls.rs`); a
/// full disk (53100) is `Full`; the server's other shortages (class 53: memory, connection
/// slots) and our statement_timeout are `Unavailable`; the rest is `Backend`.
pub(super) fn error(error: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let Some(db) = error.as_db_error() else {
        // No answer from the server: the connection broke (I/O), was closed, or never opened.
        let lost =
            error.is_closed() || std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
        crate::metrics::counters::store_error("unavailable");
        return if lost {
            StoreError::Disconnected(error.to_string())
        } else {
            StoreError::Unavailable(error.to_string())
        };
    };
    let code = db.code();
    let message = db.message().to_owned();
    if code == &SqlState::UNIQUE_VIOLATION {
        return StoreError::Duplicate(message);
    }
    if code == &SqlState::DISK_FULL {
        crate::metrics::counters::store_error("full");
        return StoreError::Full(message);
    }
    let class = code.code().get(..2).unwrap_or_default();
    if class == "08"
        || [&SqlState::ADMIN_SHUTDOWN, &SqlState::CRASH_SHUTDOWN, &SqlState::CANNOT_CONNECT_NOW]
            .contains(&code)
    {
        crate::metrics::counters::store_error("unavailable");
        return StoreError::Disconnected(message);
    }
    // Our statement_timeout fired (the database is too slow to serve now), or the server is
    // short of something other than disk.
    if class == "53" || code == &SqlState::QUERY_CANCELED {
        crate::metrics::counters::store_error("unavailable");
        return StoreError::Unavailable(message);
    }
    crate::metrics::counters::store_error("backend");
    StoreError::Postgres { message, source: error }
}

/// Maps a pool error: a connection that could not be made is the driver's error; waiting too
/// long for a free one is `Unavailable`.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => self::error(e),
        other => {
            crate::metrics::counters::store_error("unavailable");
            StoreError::Unavailable(other.to_string())
        }
    }
}

/// How long a call waits before its one retry after a lost connection: a restarting server
/// refuses connections for a moment, and an instant retry would mostly meet the same refusal.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Whether a call's outcome is a lost connection, which `calls.rs` may retry.
pub(super) fn retryable<T>(outcome: &Result<T, StoreError>) -> bool {
    matches!(outcome, Err(StoreError::Disconnected(_)))
}

/// What is left of a call's deadline `limit` that began at `start` (zero when it is spent: the
/// attempt then fails at once as out of time).
pub(super) fn remaining(limit: Duration, start: tokio::time::Instant) -> Duration {
    limit.saturating_sub(start.elapsed())
}

/// Waits [`RETRY_PAUSE`] before a retry.
pub(super) async fn pause() {
    tokio::time::sleep(RETRY_PAUSE).await;
}

/// The shared schema version of a database whose `acme_delegate_schema` row says `version`,
/// `shared` telling whether the shared numbering wrote it.
///
/// Before the shared list, PostgreSQL counted its own steps: its 1 made SQLite's 1 to 3 at once
/// (accounts with `bcrypt_hash`, TXT values, DNSSEC keys), 2 was SQLite's 4 (last use, audit)
/// and 3 was SQLite's 5 (own challenge). Column order aside, the result is the same schema.
pub(super) fn shared_version(version: i64, shared: bool) -> i64 {
    match (shared, version) {
        (true, v) | (false, v @ ..=0) => v,
        (false, v) => v + 2,
    }
}

/// Runs one store call under `limit`; running out of time is `StoreError::Unavailable`.
pub(super) async fn deadline<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        crate::metrics::counters::store_error("unavailable");
        Err(StoreError::Unavailable(format!("no answer from the database within {} s", limit.as_secs())))
    })
}

/// The statement that lets a transaction with a deadline of `limit` run statements that long,
/// when that is longer than the server-side default (the server must not end it first).
pub(super) fn longer_statements(limit: Duration) -> Option<String> {
    let statements = limit.saturating_sub(CALL_DEADLINE - STATEMENT_TIMEOUT);
    (limit > CALL_DEADLINE).then(|| format!("SET LOCAL statement_timeout = {}", statements.as_millis()))
}

/// Gives a connection back after a call: to the pool when the call went through, to nobody
/// when the connection failed or hung (its replies may still be on their way; a frozen server
/// would hang the next request on it too).
pub(super) fn settle<T>(client: deadpool_postgres::Client, outcome: &Result<T, StoreError>) {
    if matches!(outcome, Err(StoreError::Unavailable(_) | StoreError::Disconnected(_))) {
        drop(deadpool_postgres::Object::take(client));
    }
}

/// One of our connections: a pooled client, or a transaction on one.
pub(super) struct Pg<'a, C>(pub &'a C);

/// Our value as a parameter of the type the statement expects.
fn param(value: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let narrow = |v: i64| StoreError::Backend(format!("{v} does not fit a {ty} parameter"));
    Ok(match (value, ty) {
        (Value::Int(v), &Type::INT2) => Box::new(i16::try_from(*v).map_err(|_| narrow(*v))?),
        (Value::Int(v), &Type::INT4) => Box::new(i32::try_from(*v).map_err(|_| narrow(*v))?),
        (Value::Int(v), _) => Box::new(*v),
        (Value::Text(v), _) => Box::new(v.clone()),
        (Value::Bytes(v), _) => Box::new(v.clone()),
        // A NULL is typed too.
        (Value::Null, &Type::INT2) => Box::new(None::<i16>),
        (Value::Null, &Type::INT4) => Box::new(None::<i32>),
        (Value::Null, &Type::INT8) => Box::new(None::<i64>),
        (Value::Null, &Type::BYTEA) => Box::new(None::<Vec<u8>>),
        (Value::Null, _) => Box::new(None::<String>),
    })
}

/// Our value from column `index` of `row`.
fn value(row: &tokio_postgres::Row, index: usize) -> Result<Value, StoreError> {
    let ty = row.columns()[index].type_();
    let v = match *ty {
        Type::INT2 => row.try_get::<_, Option<i16>>(index).map(|v| v.map(|v| Value::Int(v.into()))),
        Type::INT4 => row.try_get::<_, Option<i32>>(index).map(|v| v.map(|v| Value::Int(v.into()))),
        Type::INT8 => row.try_get::<_, Option<i64>>(index).map(|v| v.map(Value::Int)),
        Type::BOOL => row.try_get::<_, Option<bool>>(index).map(|v| v.map(|v| Value::Int(v.into()))),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index).map(|v| v.map(Value::Bytes)),
        _ => row.try_get::<_, Option<String>>(index).map(|v| v.map(Value::Text)),
    };
    Ok(v.map_err(self::error)?.unwrap_or(Value::Null))
}

impl<C: GenericClient + Sync> Pg<'_, C> {
    /// Prepares `sql` (cached per connection) and types `params` as it expects them.
    async fn prepare(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<(tokio_postgres::Statement, Vec<Box<dyn ToSql + Sync + Send>>), StoreError> {
        let statement = self.0.prepare_cached(sql).await.map_err(error)?;
        let params =
            params.iter().zip(statement.params()).map(|(v, ty)| param(v, ty)).collect::<Result<_, _>>()?;
        Ok((statement, params))
    }
}

/// The parameters as the driver takes them.
fn refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

impl<C: GenericClient + Sync> Conn for Pg<'_, C> {
    const TYPES: ColumnTypes = ColumnTypes {
        int: "BIGINT",
        bytes: "BYTEA",
        seq: "BIGSERIAL PRIMARY KEY",
        id: "BIGSERIAL PRIMARY KEY",
    };
    const HOST_CLOCK: bool = false;

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let (statement, params) = self.prepare(sql, params).await?;
        self.0.execute(&statement, &refs(&params)).await.map_err(error)
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let (statement, params) = self.prepare(sql, params).await?;
        let rows = self.0.query(&statement, &refs(&params)).await.map_err(error)?;
        rows.iter().map(|r| (0..r.len()).map(|i| value(r, i)).collect::<Result<_, _>>().map(Row)).collect()
    }

    async fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.0.batch_execute(sql).await.map_err(error)
    }

    async fn notify(&self, change: &Change) -> Result<(), StoreError> {
        let payload = match change {
            Change::Version { version, hint } => format!("{version}:{hint}"),
            // Only a feed that reconnects says so; nobody sends it.
            Change::Resync => return Ok(()),
        };
        self.0.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await.map_err(error)?;
        Ok(())
    }

    async fn snapshot(&self) -> Result<(), StoreError> {
        self.0.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(error)
    }

    async fn lock(&self, lock: Lock) -> Result<(), StoreError> {
        // Any constants identify our locks; the ones older versions took, so that old and new
        // instances exclude each other too. Held until the transaction ends.
        let key: i64 = match lock {
            Lock::Schema => 7_305_429_031,
            Lock::DnssecKey => 7_305_429_032,
        };
        self.0.execute("SELECT pg_advisory_xact_lock($1)", &[&key]).await.map_err(error)?;
        Ok(())
    }

    async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let sql = "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                   WHERE table_schema = current_schema() AND table_name = $1)";
        Ok(self.0.query_one(sql, &[&name]).await.map_err(error)?.get(0))
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        // `shared` marks a version written in the shared numbering; older versions of this
        // program read `version` only, and refuse a number above theirs.
        self.0
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS acme_delegate_schema (version BIGINT NOT NULL);
                 ALTER TABLE acme_delegate_schema ADD COLUMN IF NOT EXISTS shared BOOLEAN NOT NULL DEFAULT false",
            )
            .await
            .map_err(error)?;
        let row =
            self.0.query_opt("SELECT version, shared FROM acme_delegate_schema", &[]).await.map_err(error)?;
        let Some((version, shared)) = row.map(|r| (r.get(0), r.get(1))) else { return Ok(0) };
        let version = shared_version(version, shared);
        if !shared {
            // Rewritten in the shared numbering (in the migration's transaction), so that the
            // older program that wrote it refuses the database from now on.
            self.set_schema_version(version).await?;
        }
        Ok(version)
    }

    async fn set_schema_version(&self, version: i64) -> Result<(), StoreError> {
        self.0.execute("DELETE FROM acme_delegate_schema", &[]).await.map_err(error)?;
        let sql = "INSERT INTO acme_delegate_schema (version, shared) VALUES ($1, true)";
        self.0.execute(sql, &[&version]).await.map_err(error)?;
        Ok(())
    }

    async fn clock(&self) -> Result<i64, StoreError> {
        // The server's clock now, not the transaction's start (`now()`): a transaction may
        // have waited for a lock.
        let sql = "SELECT CAST(floor(extract(epoch FROM clock_timestamp())) AS BIGINT)";
        let row = self.0.query_one(sql, &[]).await.map_err(error)?;
        row.try_get::<_, i64>(0).map_err(error)
    }
}

impl PostgresStore {
    /// Connects, checks the schema and migrates it.
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
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
        // Ours first: options given in the URL come later and win.
        let options = config.get_options().unwrap_or_default();
        let options = format!("-c statement_timeout={} {options}", STATEMENT_TIMEOUT.as_millis());
        config.options(options.trim_end());
        // A peer that vanished (host down, network cut) is noticed within about half a minute
        // rather than the kernel's two hours; writes unacknowledged for as long fail too.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(30));
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
        let store = Self { pool, config, erased: Arc::default(), out_of_space: Arc::default() };
        let mut client = store.pool.get().await.map_err(|e| open_error(e.to_string()))?;
        let tx = client.transaction().await.map_err(error)?;
        // A migration on a large table may rightly take longer than a request's statement.
        tx.batch_execute("SET LOCAL statement_timeout = 0").await.map_err(error)?;
        super::schema::migrate(&Pg(&tx), &target).await?;
        tx.commit().await.map_err(error)?;
        Ok(store)
    }

    /// A pooled connection.
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// See [`super::Store::subscribe`]: a task that LISTENs, reconnecting as needed.
    pub(super) fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(1024);
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match listen(&config, &tx).await {
                    Ok(()) => return, // the receiver is gone: the server is stopping
                    Err(reason) => {
                        crate::metrics::counters::feed_reconnected();
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

    /// Notes that an erasure committed in `tables`, for the purge task's next [`Self::vacuum`].
    pub(super) fn erased(&self, tables: u8) {
        self.erased.fetch_or(tables, Ordering::Relaxed);
    }

    /// Rewrites or vacuums the tables that held erased data (see the design note), on a
    /// connection of its own: VACUUM runs outside any transaction and longer than a request.
    pub(super) async fn vacuum(&self) -> Result<(), StoreError> {
        let tables = self.erased.swap(0, Ordering::Relaxed);
        if tables == 0 {
            return Ok(());
        }
        let mut statements = vec!["SET lock_timeout = '2s'", "SET statement_timeout = '100s'"];
        // The zone log holds subdomains and TXT values too (`version.rs`), and so do the IXFR
        // journal's steps (`journal.rs`): rewritten with them.
        if tables & super::erased::ACCOUNTS != 0 {
            statements.push("VACUUM FULL accounts, txt, persist, zone_log, zone_journal");
        } else {
            if tables & super::erased::TXT != 0 {
                statements.push("VACUUM FULL txt, zone_log, zone_journal");
            }
            if tables & super::erased::PERSIST != 0 {
                statements.push("VACUUM FULL persist, zone_log, zone_journal");
            }
        }
        if tables & super::erased::AUDIT != 0 {
            statements.push("VACUUM audit");
        }
        let run = async {
            let (client, connection) = self.config.connect(NoTls).await.map_err(error)?;
            let driver = tokio::spawn(connection);
            // One at a time: several in one message form an implicit transaction, and VACUUM
            // refuses to run in one.
            let mut out = Ok(());
            for statement in &statements {
                out = client.batch_execute(statement).await.map_err(error);
                if out.is_err() {
                    break;
                }
            }
            drop(client);
            let _ = driver.await;
            out
        };
        let out = deadline(PURGE_DEADLINE, run).await;
        if out.is_err() {
            // Not done (a lock held too long, the database away): the next run tries again.
            self.erased.fetch_or(tables, Ordering::Relaxed);
        }
        out
    }

    /// See [`super::Store::close`].
    pub(super) fn close(&self) {
        self.pool.close();
    }
}

/// One LISTEN session: connects, asks for a resync, forwards notifications until the
/// connection fails (`Err`) or the receiver goes away (`Ok`).
async fn listen(config: &tokio_postgres::Config, tx: &mpsc::Sender<Change>) -> Result<(), String> {
    // connect_timeout covers the TCP connect only; a frozen server accepts and never answers.
    let connecting = tokio::time::timeout(CALL_DEADLINE, config.connect(NoTls));
    let (client, mut connection) = connecting
        .await
        .map_err(|_| "no answer within the deadline".to_owned())?
        .map_err(|e| e.to_string())?;
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
                        let change = parse_payload(&payload);
                        if tx.send(change).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err("connection closed".to_owned()),
                },
                // PostgreSQL may not tell a silently dropped peer for a long time: probe.
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    // Bounded: a frozen server would hold the feed here forever; reconnecting
                    // (with its resync) is what recovers once the server runs again.
                    let probe = tokio::time::timeout(CALL_DEADLINE, client.simple_query("SELECT 1"));
                    probe.await.map_err(|_| "probe unanswered".to_owned())?.map_err(|e| e.to_string())?;
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// A notification's change: `<version>:<what>`; anything else (an older instance's payload)
/// asks to catch up from the log.
fn parse_payload(payload: &str) -> Change {
    payload
        .split_once(':')
        .and_then(|(v, hint)| Some(Change::Version { version: v.parse().ok()?, hint: hint.to_owned() }))
        .unwrap_or(Change::Resync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_the_version() {
        let change = parse_payload("12:d420c923-bbd7-4056-ab64-c3ca54c9b3cf");
        assert_eq!(
            change,
            Change::Version { version: 12, hint: "d420c923-bbd7-4056-ab64-c3ca54c9b3cf".into() }
        );
        assert_eq!(parse_payload("d420c923-bbd7-4056-ab64-c3ca54c9b3cf"), Change::Resync);
    }

    #[test]
    fn old_versions_map_onto_the_shared_numbering() {
        let old: Vec<i64> = (0..=3).map(|v| shared_version(v, false)).collect();
        assert_eq!(old, [0, 3, 4, 5]);
        assert_eq!(shared_version(5, true), 5);
        assert_eq!(shared_version(7, true), 7);
    }
}
