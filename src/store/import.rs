//! Taking over an acme-dns database (`acme-delegate import-acme-dns <source>`).
//!
//! Design note: acme-dns keeps accounts in `records` (username, bcrypt hash of the key,
//! subdomain, allowfrom as a JSON list) and two rows per subdomain in `txt`. The import copies
//! accounts with their bcrypt hash (which the API verifies once and then replaces with our
//! SHA-256 hash) and the non-empty TXT values in update order. It is idempotent: an account
//! already present (same username or subdomain) is skipped, with its values, so running it
//! again changes nothing. The source is only read.
//!
//! Scale (a million accounts): the source is streamed, never held whole. A reader yields each
//! account with its values already attached, in batches of [`BATCH`] accounts over a bounded
//! channel, while the writer commits the previous batch: one transaction per batch
//! ([`super::Store::import_batch`], which runs [`write_batch`]), so the cost of a commit (an
//! fsync) is paid per ten thousand accounts, not per row, and memory holds a few batches. The
//! accounts and the values are written with multi-row statements of [`ROWS`] rows. To attach
//! values without an index on the source (acme-dns's `txt` has none, and the source is
//! read-only), the SQLite reader merges two streams sorted by subdomain (SQLite's sorter spills
//! to temporary files, so memory stays bounded); PostgreSQL joins on its side and the reader
//! fetches the result through a portal, a batch at a time. The result is exactly that of adding
//! each value with `Store::update_txt` in order: a repeated value moves to the newest place,
//! only the newest `keep` are kept, an account with values counts as used now. Each batch takes
//! one zone version and logs every new name with its values under it (`log_batch`), so running
//! instances apply the batch as one change, announced once when it commits.
//!
//! In SQLite acme-dns stores the hash as a BLOB (Go `[]byte`), in PostgreSQL as TEXT; both are
//! accepted.

use std::collections::HashSet;

use tokio::sync::mpsc;

use super::common::{Conn, Value, multi_row_insert, now};
use super::version::Edits;
use super::{Account, Store, StoreError};

/// Accounts per transaction: large enough that the commit's fsync is noise, small enough that a
/// batch is a few megabytes and a running instance hears of the first accounts early.
pub const BATCH: usize = 10_000;

/// Rows per multi-row statement: 7 parameters each stays far below SQLite's 32766 and
/// PostgreSQL's 65535 parameters per statement.
const ROWS: usize = 500;

/// Batches read ahead of the writer.
const AHEAD: usize = 2;

/// One acme-dns account with its TXT values (oldest first).
#[derive(Debug)]
pub struct Source {
    /// The account.
    pub account: Account,
    /// Non-empty values, in update order.
    pub values: Vec<String>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Accounts found in the source.
    pub found: usize,
    /// Accounts copied.
    pub imported: usize,
    /// Accounts already present, left as they are.
    pub skipped: usize,
    /// TXT values copied.
    pub values: usize,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, other: Self) {
        self.found += other.found;
        self.imported += other.imported;
        self.skipped += other.skipped;
        self.values += other.values;
    }
}

/// Turns a stored hash (BLOB or TEXT) into text.
#[cfg(feature = "sqlite")]
fn hash_text(value: rusqlite::types::Value) -> Option<String> {
    match value {
        rusqlite::types::Value::Text(s) => Some(s),
        rusqlite::types::Value::Blob(b) => String::from_utf8(b).ok(),
        _ => None,
    }
}

/// Builds an account from acme-dns's columns.
fn account(username: String, hash: String, subdomain: String, allowfrom: Option<String>) -> Account {
    let allowfrom: Vec<String> = allowfrom.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or_default();
    Account {
        username: username.to_ascii_lowercase(),
        key_hash: Vec::new(),
        bcrypt_hash: Some(hash),
        subdomain: subdomain.to_ascii_lowercase(),
        allowfrom: allowfrom.into_iter().filter(|a| !a.is_empty()).collect(),
    }
}

/// Collects sources into batches and hands each full one to the writer.
struct Batcher {
    /// The batch being filled.
    batch: Vec<Source>,
    /// Where full batches go.
    tx: mpsc::Sender<Vec<Source>>,
}

/// The writer stopped (it failed and will report why): the reader just ends.
#[cfg(feature = "sqlite")]
struct WriterGone;

impl Batcher {
    /// A batcher sending to `tx`.
    fn new(tx: mpsc::Sender<Vec<Source>>) -> Self {
        Self { batch: Vec::with_capacity(BATCH), tx }
    }

    /// Adds one source from a blocking thread, sending the batch when full.
    #[cfg(feature = "sqlite")]
    fn push_blocking(&mut self, source: Source) -> Result<(), WriterGone> {
        self.batch.push(source);
        if self.batch.len() >= BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.tx.blocking_send(full).map_err(|_| WriterGone)?;
        }
        Ok(())
    }

    /// Sends what is left from a blocking thread.
    #[cfg(feature = "sqlite")]
    fn finish_blocking(self) -> Result<(), WriterGone> {
        if self.batch.is_empty() { Ok(()) } else { self.tx.blocking_send(self.batch).map_err(|_| WriterGone) }
    }
}

/// Reads an acme-dns SQLite file into `batcher`: accounts and values, each sorted by subdomain
/// (ASCII case folded, as the old importer matched them), merged.
#[cfg(feature = "sqlite")]
fn read_sqlite(path: &str, mut batcher: Batcher) -> Result<(), StoreError> {
    let open = |e: rusqlite::Error| StoreError::Open { target: path.to_owned(), reason: e.to_string() };
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(open)?;
    let mut accounts = conn
        .prepare(
            "SELECT Username, Password, Subdomain, AllowFrom FROM records \
             ORDER BY Subdomain COLLATE NOCASE, rowid",
        )
        .map_err(open)?;
    let mut accounts = accounts.query([]).map_err(open)?;
    let mut values = conn
        .prepare(
            "SELECT Subdomain, Value FROM txt WHERE Value <> '' \
             ORDER BY Subdomain COLLATE NOCASE, LastUpdate, rowid",
        )
        .map_err(open)?;
    let mut values = values.query([]).map_err(open)?;
    // The next value not yet given to an account: (lower-case subdomain, value).
    let mut next_value = || -> Result<Option<(String, String)>, StoreError> {
        let Some(row) = values.next().map_err(open)? else { return Ok(None) };
        Ok(Some((row.get::<_, String>(0).map_err(open)?.to_ascii_lowercase(), row.get(1).map_err(open)?)))
    };
    let mut pending = next_value()?;
    while let Some(row) = accounts.next().map_err(open)? {
        let hash = row.get::<_, rusqlite::types::Value>(1).map_err(open)?;
        let account = account(
            row.get(0).map_err(open)?,
            String::new(),
            row.get(2).map_err(open)?,
            row.get(3).map_err(open)?,
        );
        // Values of subdomains without an account come first in the order: skipped.
        while pending.as_ref().is_some_and(|(s, _)| *s < account.subdomain) {
            pending = next_value()?;
        }
        let mut source = Source { account, values: Vec::new() };
        while let Some((_, value)) = pending.take_if(|(s, _)| *s == source.account.subdomain) {
            source.values.push(value);
            pending = next_value()?;
        }
        // An unreadable hash: the account cannot be used; the old importer skipped it too.
        let Some(hash) = hash_text(hash) else { continue };
        source.account.bcrypt_hash = Some(hash);
        if batcher.push_blocking(source).is_err() {
            return Ok(());
        }
    }
    let _ = batcher.finish_blocking();
    Ok(())
}

/// Reads an acme-dns PostgreSQL database into `batcher`: the database joins accounts to their
/// values, and a portal hands the rows over a batch at a time.
#[cfg(feature = "postgres")]
async fn read_postgres(url: &str, mut batcher: Batcher) -> Result<(), StoreError> {
    let target = super::redact(url);
    // The server's own message ("column t.rowid does not exist"), not the driver's "db error".
    let open = |e: tokio_postgres::Error| StoreError::Open {
        target: target.clone(),
        reason: e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned()),
    };
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(open)?;
    let driver = tokio::spawn(connection);
    // A portal lives in a transaction; this one only reads.
    let tx = client.transaction().await.map_err(open)?;
    let portal = tx
        .bind(
            "SELECT r.username, r.password, r.subdomain, r.allowfrom, t.value FROM records r \
             LEFT JOIN txt t ON lower(t.subdomain) = lower(r.subdomain) AND t.value <> '' \
             ORDER BY r.username, t.lastupdate, t.rowid",
            &[],
        )
        .await
        .map_err(open)?;
    let mut current: Option<(String, Source)> = None;
    loop {
        let rows = tx.query_portal(&portal, BATCH as i32).await.map_err(open)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let username: String = row.get(0);
            if current.as_ref().is_none_or(|(u, _)| *u != username) {
                if let Some((_, done)) = current.take() {
                    batcher.batch.push(done);
                }
                let source = Source {
                    account: account(username.clone(), row.get(1), row.get(2), row.get(3)),
                    values: Vec::new(),
                };
                current = Some((username, source));
            }
            if let (Some(value), Some((_, source))) = (row.get::<_, Option<String>>(4), current.as_mut()) {
                source.values.push(value);
            }
        }
        if batcher.batch.len() >= BATCH {
            let full = std::mem::replace(&mut batcher.batch, Vec::with_capacity(BATCH));
            if batcher.tx.send(full).await.is_err() {
                break;
            }
        }
    }
    batcher.batch.extend(current.map(|(_, source)| source));
    if !batcher.batch.is_empty() {
        let _ = batcher.tx.send(batcher.batch).await;
    }
    drop(tx);
    driver.abort();
    Ok(())
}

/// Without the `sqlite` feature an acme-dns SQLite file cannot be read.
#[cfg(not(feature = "sqlite"))]
fn read_sqlite(path: &str, _: Batcher) -> Result<(), StoreError> {
    Err(super::not_built(path, "sqlite"))
}

/// Without the `postgres` feature an acme-dns PostgreSQL database cannot be read.
#[cfg(not(feature = "postgres"))]
async fn read_postgres(url: &str, _: Batcher) -> Result<(), StoreError> {
    Err(super::not_built(&super::redact(url), "postgres"))
}

/// The values an account ends up with after adding each of `values` in order through
/// `Store::update_txt`: a value sent again moves to the newest place, the newest `keep` stay.
fn kept(values: &[String], keep: usize) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(values.len());
    for value in values {
        out.retain(|v| *v != value);
        out.push(value);
    }
    out.drain(..out.len().saturating_sub(keep));
    out
}

impl Store {
    /// Stores an imported account unless its username or subdomain exists; returns whether it
    /// was inserted (a batch of one).
    pub async fn import_account(&self, account: &Account) -> Result<bool, StoreError> {
        let source = Source { account: account.clone(), values: Vec::new() };
        Ok(self.import_batch(vec![source], 0).await?.imported == 1)
    }
}

/// Takes one zone version for the whole batch and logs every new name under it with the values
/// it now has, in multi-row statements, so running instances apply the batch as one change
/// (one notification; a round trip per name made a million-account import wait on the
/// network most of its time).
async fn log_batch(c: &impl Conn, new: &[&Source], keep: usize) -> Result<(), StoreError> {
    let Some((first, rest)) = new.split_first() else { return Ok(()) };
    let owned = |s: &Source| kept(&s.values, keep).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let mut edits = Edits::default();
    let version = edits.log(c, &first.account.subdomain, Some(&owned(first))).await?;
    let (at, version) = (now(), i64::try_from(version).unwrap_or(i64::MAX));
    for chunk in rest.chunks(ROWS) {
        let sql = multi_row_insert("zone_log", "version, name, txt, at", 4, chunk.len());
        let mut params = Vec::with_capacity(chunk.len() * 4);
        for source in chunk {
            let txt =
                serde_json::to_string(&owned(source)).map_err(|e| StoreError::Backend(e.to_string()))?;
            params.extend([version.into(), (&source.account.subdomain).into(), txt.into(), at.into()]);
        }
        c.execute(&sql, &params).await?;
    }
    edits.finish(c, "import").await.map(drop)
}

/// Writes one batch in the caller's transaction (see [`super::Store::import_batch`]): the
/// accounts not yet present, then their values; tells running instances of each new name.
pub(super) async fn write_batch(c: &impl Conn, batch: &[Source], keep: usize) -> Result<Report, StoreError> {
    let at = now();
    let mut report = Report { found: batch.len(), ..Report::default() };
    // Usernames the database took; each is claimed by the first source of that name below.
    let mut inserted: HashSet<String> = HashSet::with_capacity(batch.len());
    for chunk in batch.chunks(ROWS) {
        let mut sql = multi_row_insert(
            "accounts",
            "username, key_hash, bcrypt_hash, subdomain, allowfrom, created_at, last_used",
            7,
            chunk.len(),
        );
        // Present already (or twice in the source): skipped, as one `import_account` would.
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING username");
        let mut params = Vec::with_capacity(chunk.len() * 7);
        for source in chunk {
            let a = &source.account;
            let allowfrom =
                serde_json::to_string(&a.allowfrom).map_err(|e| StoreError::Backend(e.to_string()))?;
            // `update_txt` marks an account with values as used; one without stays unused.
            let used = if source.values.is_empty() { Value::Null } else { at.into() };
            params.extend([
                (&a.username).into(),
                a.key_hash.as_slice().into(),
                a.bcrypt_hash.as_ref().into(),
                (&a.subdomain).into(),
                allowfrom.into(),
                at.into(),
                used,
            ]);
        }
        for row in c.query(&sql, &params).await? {
            inserted.insert(
                row.0
                    .into_iter()
                    .next()
                    .and_then(|v| match v {
                        Value::Text(s) => Some(s),
                        _ => None,
                    })
                    .ok_or_else(|| StoreError::Backend("import: no username returned".into()))?,
            );
        }
    }
    // A source skipped for a name present twice (in other case) gets none of the values.
    let new: Vec<&Source> = batch.iter().filter(|s| inserted.remove(&s.account.username)).collect();
    report.imported = new.len();
    report.skipped = batch.len() - new.len();
    // Values in source order, so each account's sequence numbers rise in its update order.
    let rows: Vec<(&str, &str)> = new
        .iter()
        .flat_map(|s| kept(&s.values, keep).into_iter().map(|v| (s.account.subdomain.as_str(), v)))
        .collect();
    report.values = rows.len();
    for chunk in rows.chunks(ROWS) {
        let sql = multi_row_insert("txt", "subdomain, value, updated_at", 3, chunk.len());
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|&(subdomain, value)| [subdomain.into(), value.into(), at.into()])
            .collect();
        c.execute(&sql, &params).await?;
    }
    // Running instances learn of each new name at once, also of one without values (it must
    // answer NODATA, not NXDOMAIN); delivered when the batch commits.
    log_batch(c, &new, keep).await?;
    Ok(report)
}

/// Imports the acme-dns database at `source` (a file path or a `postgres://` URL) into `store`,
/// calling `progress` with the running totals after each committed batch.
pub async fn import_acme_dns(
    store: &Store,
    source: &str,
    keep: usize,
    progress: &mut (dyn FnMut(&Report) + Send),
) -> Result<Report, StoreError> {
    let (tx, mut rx) = mpsc::channel(AHEAD);
    let batcher = Batcher::new(tx);
    let reader = if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        let url = source.to_owned();
        tokio::spawn(async move { read_postgres(&url, batcher).await })
    } else {
        let path = source.to_owned();
        if !std::path::Path::new(&path).exists() {
            return Err(StoreError::Open { target: path, reason: "no such file".into() });
        }
        // The reader blocks on SQLite; it runs beside the writer, on its own thread.
        tokio::task::spawn_blocking(move || read_sqlite(&path, batcher))
    };
    let mut report = Report::default();
    let written = async {
        while let Some(batch) = rx.recv().await {
            report += store.import_batch(batch, keep).await?;
            progress(&report);
        }
        Ok::<_, StoreError>(())
    }
    .await;
    // A failed writer drops the channel, which ends the reader; its own error comes first.
    drop(rx);
    reader.await.map_err(|e| StoreError::Backend(e.to_string()))??;
    written?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_values_match_update_txt() {
        let values: Vec<String> = ["a", "b", "a", "c"].iter().map(|&v| v.to_owned()).collect();
        assert_eq!(kept(&values, 2), ["a", "c"]);
        assert_eq!(kept(&values, 5), ["b", "a", "c"]);
        assert!(kept(&[], 2).is_empty());
    }

    #[test]
    fn multi_row_statements_number_every_parameter() {
        assert_eq!(multi_row_insert("t", "a, b", 2, 2), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
    }
}
