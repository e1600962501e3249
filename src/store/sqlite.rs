//! The SQLite engine: one file, WAL journal, one connection.
//!
//! Design note: SQLite allows one writer at a time, so the store holds one connection behind a
//! mutex and runs every statement on the blocking thread pool, off the async workers. WAL mode
//! lets the file be read by tools while we write; `synchronous = FULL` makes each committed
//! transaction reach the disk before we answer, so an update answered with 200 survives a crash
//! of the process or the machine. Transactions begin IMMEDIATE: they take the write lock at
//! once, so two processes (the server and the operator's CLI) never both read and then both
//! try to write, and no cross-process lock is needed beside them (`Conn::lock` is a no-op).
//!
//! Everything the engines share is in `common.rs` and runs here through `Conn` for
//! `rusqlite::Connection`; its futures never wait (every call is synchronous), so `ready`
//! completes them in place on the blocking thread. What is left here is what only SQLite does:
//! the pragmas, the version in `PRAGMA user_version`, the WAL checkpoint after an erasure, and
//! a change feed that polls `PRAGMA data_version` (there is no LISTEN).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use tokio::sync::mpsc;

use super::common::{Conn, Lock, Row, Value};
use super::schema::ColumnTypes;
use super::{Change, StoreError};

/// A SQLite-backed store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The one connection; SQLite serialises writers anyway.
    conn: Arc<Mutex<Connection>>,
    /// Whether a write failed for lack of space (see `super::Store::ready`).
    pub(super) out_of_space: Arc<AtomicBool>,
}

/// The free space `/ready` asks for beside the database after a write failed for lack of it:
/// several times what an update writes, so that an update after a ready answer finds room.
const ROOM: usize = 1 << 20;

/// Writes [`ROOM`] bytes to `path` and syncs them (tmpfs and most file systems allocate only
/// what is written, so a sparse `set_len` would prove nothing).
fn write_scratch(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(&vec![0u8; ROOM])?;
    file.sync_all()
}

/// Maps a rusqlite error to ours: a full disk (SQLITE_FULL) is `Full`, a lock another process
/// held beyond the busy timeout `Unavailable`, the rest `Backend`.
pub(super) fn error(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, ref msg) = error {
        match e.code {
            ErrorCode::ConstraintViolation => return StoreError::Duplicate(msg.clone().unwrap_or_default()),
            ErrorCode::DiskFull => {
                crate::metrics::counters::store_error("full");
                return StoreError::Full(error.to_string());
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                crate::metrics::counters::store_error("unavailable");
                return StoreError::Unavailable(error.to_string());
            }
            _ => {}
        }
    }
    crate::metrics::counters::store_error("backend");
    StoreError::Sqlite(error)
}

/// Completes a future of a shared operation on this engine, which never waits.
///
/// # Panics
///
/// If the future is pending: an operation in `common.rs` awaited something other than its
/// [`Conn`], which the contract rules out.
pub(super) fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("a SQLite store operation waited, but SQLite calls never suspend"),
    }
}

/// Begins a transaction that holds the write lock from its start.
pub(super) fn begin(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)
}

/// Statements are shared with PostgreSQL's `$1` placeholders; SQLite spells them `?1` (it
/// would read `$1` as a name, numbered by first appearance rather than by its digits).
fn dialect(sql: &str) -> String {
    sql.replace('$', "?")
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Int(v) => ValueRef::Integer(*v),
            Self::Text(v) => ValueRef::Text(v.as_bytes()),
            Self::Bytes(v) => ValueRef::Blob(v),
        }))
    }
}

/// Our value from a column.
fn value(v: ValueRef<'_>) -> Result<Value, StoreError> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => {
            Value::Text(String::from_utf8(t.to_vec()).map_err(|e| StoreError::Backend(e.to_string()))?)
        }
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
        ValueRef::Real(_) => return Err(StoreError::Backend("unexpected REAL column".into())),
    })
}

impl Conn for Connection {
    const TYPES: ColumnTypes = ColumnTypes {
        int: "INTEGER",
        bytes: "BLOB",
        // AUTOINCREMENT: without it SQLite may hand out the largest deleted rowid again.
        seq: "INTEGER PRIMARY KEY AUTOINCREMENT",
        id: "INTEGER PRIMARY KEY",
    };
    const HOST_CLOCK: bool = true;

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut statement = self.prepare_cached(&dialect(sql)).map_err(error)?;
        statement.execute(rusqlite::params_from_iter(params)).map(|n| n as u64).map_err(error)
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.prepare_cached(&dialect(sql)).map_err(error)?;
        let width = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            let values =
                (0..width).map(|i| value(row.get_ref(i).map_err(error)?)).collect::<Result<_, _>>()?;
            out.push(Row(values));
        }
        Ok(out)
    }

    async fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.execute_batch(sql).map_err(error)
    }

    async fn notify(&self, _: &Change) -> Result<(), StoreError> {
        // Other processes notice through `PRAGMA data_version` (see `subscribe`).
        Ok(())
    }

    async fn snapshot(&self) -> Result<(), StoreError> {
        // Transactions begin IMMEDIATE: no other writer commits while one runs.
        Ok(())
    }

    async fn lock(&self, _: Lock) -> Result<(), StoreError> {
        // Every transaction began IMMEDIATE and already excludes every other writer.
        Ok(())
    }

    async fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1";
        self.query_row(sql, [name], |r| r.get::<_, i64>(0)).map(|n| n > 0).map_err(error)
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        // Same numbers before and after the engines shared one list: nothing to map.
        self.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(error)
    }

    async fn set_schema_version(&self, version: i64) -> Result<(), StoreError> {
        self.pragma_update(None, "user_version", version).map_err(error)
    }

    async fn clock(&self) -> Result<i64, StoreError> {
        // The file has no clock: the host's is the only one (`version::time` keeps it from
        // going back).
        Ok(super::common::now())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the file at `path` and migrates it.
    pub(crate) async fn open(path: &str) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let open_error = |reason: String| StoreError::Open { target: path.clone(), reason };
            if let Some(dir) = Path::new(&path).parent()
                && !dir.as_os_str().is_empty()
                && !dir.exists()
            {
                return Err(open_error(format!("directory {} does not exist", dir.display())));
            }
            let mut conn = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
            // Settings of this connection only: nothing is written to the file yet.
            conn.pragma_update(None, "synchronous", "FULL").map_err(|e| open_error(e.to_string()))?;
            conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| open_error(e.to_string()))?;
            // Erasure must erase: deleted rows are overwritten, not left in free pages.
            conn.pragma_update(None, "secure_delete", "ON").map_err(|e| open_error(e.to_string()))?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| open_error(e.to_string()))?;
            let tx = begin(&mut conn)?;
            ready(super::schema::migrate(&*tx, &path))?;
            tx.commit().map_err(error)?;
            // Written into the file, so only once we know the file is ours (an acme-dns
            // database is refused above, untouched).
            conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| open_error(e.to_string()))?;
            Ok(Self { conn: Arc::new(Mutex::new(conn)), out_of_space: Arc::default() })
        })
        .await
        .map_err(StoreError::task("opening the SQLite database"))?
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(super) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut conn.lock().unwrap_or_else(PoisonError::into_inner)))
            .await
            .map_err(StoreError::task("an SQLite call"))?
    }

    /// Whether the file system holding the database has [`ROOM`] free, for `Store::ready`
    /// after a write failed for lack of space. A write that commits is not proof enough: a
    /// page may land in the space the WAL already holds while the next update needs more. So
    /// this writes that much beside the database, syncs it and removes it again (only while
    /// writes are failing, so it costs nothing otherwise). Space is `Full`; any other failure
    /// to write the scratch file (permissions) is left to the probe write that follows.
    pub(super) async fn check_room(&self) -> Result<(), StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let path = conn.lock().unwrap_or_else(PoisonError::into_inner).path().map(str::to_owned);
            let Some(path) = path.filter(|p| !p.is_empty()) else { return Ok(()) };
            let scratch = format!("{path}.room");
            let written = write_scratch(Path::new(&scratch));
            let _ = std::fs::remove_file(&scratch);
            match written {
                Err(e)
                    if e.kind() == std::io::ErrorKind::StorageFull
                        || e.raw_os_error() == Some(libc::EDQUOT) =>
                {
                    crate::metrics::counters::store_error("full");
                    Err(StoreError::Full(format!("less than {} KiB free beside the database", ROOM >> 10)))
                }
                Err(e) => {
                    tracing::debug!("could not write {scratch} to check for free space: {e}");
                    Ok(())
                }
                Ok(()) => Ok(()),
            }
        })
        .await
        .map_err(StoreError::task("checking the free space"))?
    }

    /// After an erasure: the WAL still holds the old pages until a checkpoint; fold it in and
    /// empty it.
    pub(super) async fn erased(&self) -> Result<(), StoreError> {
        self.with(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(error)).await
    }

    /// See [`super::Store::subscribe`]: notices writes by other processes (the operator's
    /// `account delete`, an import) through `PRAGMA data_version`, which changes only when
    /// another connection commits, and asks for a resync.
    pub(super) fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(16);
        let store = self.clone();
        tokio::spawn(async move {
            let version = || {
                store.with(|conn| {
                    conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)).map_err(error)
                })
            };
            let Ok(mut last) = version().await else { return };
            // A commit by another process between `subscribe` and the read above would go
            // unnoticed: look once now (catching up with the log is cheap when nothing is new).
            if tx.send(Change::Resync).await.is_err() {
                return;
            }
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
    pub(super) async fn close(&self) {
        if let Err(error) = self.erased().await {
            tracing::warn!("closing the database: {error}");
        }
    }
}
