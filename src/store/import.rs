//! Taking over an acme-dns database (`acme-delegate import-acme-dns <source>`).
//!
//! Design note: acme-dns keeps accounts in `records` (username, bcrypt hash of the key,
//! subdomain, allowfrom as a JSON list) and two rows per subdomain in `txt`. The import copies
//! accounts with their bcrypt hash (which the API verifies once and then replaces with our
//! SHA-256 hash) and the non-empty TXT values in update order, each row checked first
//! (`import_check`: a row that fails is reported and left out; with `--strict` a first pass
//! checks them all and nothing is written if one fails). It is idempotent: an account already
//! present (same username or subdomain) is skipped, with its values, so running it again
//! changes nothing, and a run that stopped resumes. The source is only read.
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
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::common::{Conn, Value, multi_row_insert, now};
use super::import_check::{Checker, Rejection, Rejections, Row, SubdomainCheck};
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
    /// Accounts left out because a check failed (see `import_check`).
    pub refused: usize,
    /// Values left out of imported accounts because a check failed.
    pub refused_values: usize,
    /// The first [`LISTED`](super::import_check::LISTED) of those, each with its row and reason.
    pub rejections: Vec<Rejection>,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, other: Self) {
        self.found += other.found;
        self.imported += other.imported;
        self.skipped += other.skipped;
        self.values += other.values;
        self.refused += other.refused;
        self.refused_values += other.refused_values;
        self.rejections.extend(other.rejections);
    }
}

/// Why an import did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Nothing was committed: the source or the store could not be opened or read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Some batches were committed before the failure; they stay.
    #[error(
        "the import stopped after {} accounts were committed ({} read): {source}. What was committed \
         stays; running the same command again skips it and resumes",
        report.imported,
        report.found
    )]
    Stopped {
        /// What was committed.
        report: Report,
        /// Why it stopped.
        source: StoreError,
    },
    /// `--strict` and some rows failed their checks: nothing was imported.
    #[error(
        "{} accounts and {} values of the source fail the checks (listed above); with --strict nothing \
         was imported",
        report.refused,
        report.refused_values
    )]
    Refused {
        /// What the checking pass found.
        report: Report,
    },
}

impl ImportError {
    /// The report of what was done or found, when there is one.
    pub(crate) fn report(&self) -> Option<&Report> {
        match self {
            Self::Store(_) => None,
            Self::Stopped { report, .. } | Self::Refused { report } => Some(report),
        }
    }
}

/// How to import.
#[derive(Clone)]
pub struct Options {
    /// TXT values kept per subdomain (`[dns] txt_values`).
    pub keep: usize,
    /// Import nothing when any row fails its checks (a first pass reads the whole source).
    pub strict: bool,
    /// The zone's subdomain rule (it knows the names the configuration serves).
    pub subdomain: SubdomainCheck,
}

/// Turns a stored column into text: TEXT, or a BLOB of UTF-8 (acme-dns stores the hash as a
/// BLOB); anything else is `None`.
#[cfg(feature = "sqlite")]
fn hash_text(value: rusqlite::types::Value) -> Option<String> {
    match value {
        rusqlite::types::Value::Text(s) => Some(s),
        rusqlite::types::Value::Blob(b) => String::from_utf8(b).ok(),
        _ => None,
    }
}

/// Checks rows, collects the accounts that pass into batches and hands each full one to the
/// writer.
struct Batcher {
    /// The rules each row must pass.
    checker: Checker,
    /// The batch being filled.
    batch: Vec<Source>,
    /// Where full batches go.
    tx: mpsc::Sender<Vec<Source>>,
}

/// The writer stopped (it failed and will report why): the reader just ends.
#[cfg(feature = "sqlite")]
struct WriterGone;

impl Batcher {
    /// A batcher checking with `checker` and sending to `tx`.
    fn new(checker: Checker, tx: mpsc::Sender<Vec<Source>>) -> Self {
        Self { checker, batch: Vec::with_capacity(BATCH), tx }
    }

    /// Checks one row and adds its account, if it passes, from a blocking thread, sending the
    /// batch when full.
    #[cfg(feature = "sqlite")]
    fn push_blocking(&mut self, row: Row) -> Result<(), WriterGone> {
        let Some(source) = self.checker.check(row) else { return Ok(()) };
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
    // Past the opening statements, a failure is one of reading, not of opening.
    let read = |e: rusqlite::Error| StoreError::Backend(format!("reading the acme-dns database {path}: {e}"));
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(open)?;
    // Names that occur more than once in other case (a sort on SQLite's side, bounded memory).
    let repeated = |column: &str| -> Result<Vec<String>, StoreError> {
        let sql = format!("SELECT lower({column}) FROM records GROUP BY lower({column}) HAVING count(*) > 1");
        let mut statement = conn.prepare(&sql).map_err(open)?;
        let names = statement.query_map([], |row| row.get::<_, String>(0)).map_err(open)?;
        names.collect::<Result<_, _>>().map_err(read)
    };
    batcher.checker.set_duplicates(repeated("Username")?, repeated("Subdomain")?);
    let mut accounts = conn
        .prepare(
            "SELECT Username, Password, Subdomain, AllowFrom, rowid FROM records \
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
    // Any column as text: a row of another type is the checks' to refuse, not a read error.
    let text = |row: &rusqlite::Row<'_>, i: usize| -> Result<Option<String>, StoreError> {
        Ok(hash_text(row.get::<_, rusqlite::types::Value>(i).map_err(read)?))
    };
    // The next value not yet given to an account: (lower-case subdomain, value).
    let mut next_value = || -> Result<Option<(String, String)>, StoreError> {
        let Some(row) = values.next().map_err(read)? else { return Ok(None) };
        let (subdomain, value) = (text(row, 0)?.unwrap_or_default(), text(row, 1)?.unwrap_or_default());
        Ok(Some((subdomain.to_ascii_lowercase(), value)))
    };
    let mut pending = next_value()?;
    while let Some(row) = accounts.next().map_err(read)? {
        let mut row = Row {
            row: u64::try_from(row.get::<_, i64>(4).map_err(read)?).unwrap_or(0),
            username: text(row, 0)?.unwrap_or_default(),
            hash: text(row, 1)?,
            subdomain: text(row, 2)?.unwrap_or_default(),
            allowfrom: text(row, 3)?,
            values: Vec::new(),
        };
        let subdomain = row.subdomain.to_ascii_lowercase();
        // Values of subdomains without an account come first in the order: skipped.
        while pending.as_ref().is_some_and(|(s, _)| *s < subdomain) {
            pending = next_value()?;
        }
        while let Some((_, value)) = pending.take_if(|(s, _)| *s == subdomain) {
            row.values.push(value);
            pending = next_value()?;
        }
        if batcher.push_blocking(row).is_err() {
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
    let reason = |e: &tokio_postgres::Error| {
        e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())
    };
    let open = |e: tokio_postgres::Error| StoreError::Open { target: target.clone(), reason: reason(&e) };
    let read = |e: tokio_postgres::Error| {
        StoreError::Backend(format!("reading the acme-dns database {target}: {}", reason(&e)))
    };
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(open)?;
    let driver = tokio::spawn(connection);
    // Names that occur more than once in other case.
    let mut repeated = Vec::new();
    for column in ["username", "subdomain"] {
        let sql = format!("SELECT lower({column}) FROM records GROUP BY lower({column}) HAVING count(*) > 1");
        let rows = client.query(&sql, &[]).await.map_err(open)?;
        repeated.push(rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>());
    }
    let subdomains = repeated.pop().unwrap_or_default();
    batcher.checker.set_duplicates(repeated.pop().unwrap_or_default(), subdomains);
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
    let mut current: Option<Row> = None;
    let mut position = 0;
    loop {
        let rows = tx.query_portal(&portal, BATCH as i32).await.map_err(read)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let username: String = row.try_get(0).map_err(read)?;
            if current.as_ref().is_none_or(|c| c.username != username) {
                if let Some(done) = current.take()
                    && let Some(source) = batcher.checker.check(done)
                {
                    batcher.batch.push(source);
                }
                position += 1;
                current = Some(Row {
                    row: position,
                    username,
                    hash: row.try_get(1).map_err(read)?,
                    subdomain: row.try_get::<_, Option<String>>(2).map_err(read)?.unwrap_or_default(),
                    allowfrom: row.try_get(3).map_err(read)?,
                    values: Vec::new(),
                });
            }
            if let (Some(value), Some(current)) =
                (row.try_get::<_, Option<String>>(4).map_err(read)?, current.as_mut())
            {
                current.values.push(value);
            }
        }
        if batcher.batch.len() >= BATCH {
            let full = std::mem::replace(&mut batcher.batch, Vec::with_capacity(BATCH));
            if batcher.tx.send(full).await.is_err() {
                break;
            }
        }
    }
    if let Some(done) = current.take()
        && let Some(source) = batcher.checker.check(done)
    {
        batcher.batch.push(source);
    }
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
            let txt = serde_json::to_string(&owned(source)).map_err(StoreError::json("imported values"))?;
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
            let allowfrom = serde_json::to_string(&a.allowfrom).map_err(StoreError::json("allowfrom"))?;
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
/// calling `progress` with the running totals after each committed batch. With
/// [`Options::strict`], a first pass checks every row and nothing is written if one fails.
pub async fn import_acme_dns(
    store: &Store,
    source: &str,
    options: &Options,
    progress: &mut (dyn FnMut(&Report) + Send),
) -> Result<Report, ImportError> {
    if options.strict {
        let checked = pass(None, source, options, &mut |_| {}).await?;
        if checked.refused + checked.refused_values > 0 {
            return Err(ImportError::Refused { report: checked });
        }
    }
    pass(Some(store), source, options, progress).await
}

/// One pass over the source: every row checked, and the accounts that pass written to `store`
/// (none written without one).
async fn pass(
    store: Option<&Store>,
    source: &str,
    options: &Options,
    progress: &mut (dyn FnMut(&Report) + Send),
) -> Result<Report, ImportError> {
    let (tx, mut rx) = mpsc::channel(AHEAD);
    let rejections = Arc::new(Mutex::new(Rejections::default()));
    let batcher = Batcher::new(Checker::new(options.subdomain.clone(), rejections.clone()), tx);
    let reader = if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        let url = source.to_owned();
        tokio::spawn(async move { read_postgres(&url, batcher).await })
    } else {
        let path = source.to_owned();
        if !std::path::Path::new(&path).exists() {
            return Err(StoreError::Open { target: path, reason: "no such file".into() }.into());
        }
        // The reader blocks on SQLite; it runs beside the writer, on its own thread.
        tokio::task::spawn_blocking(move || read_sqlite(&path, batcher))
    };
    let mut report = Report::default();
    let written = async {
        while let Some(batch) = rx.recv().await {
            match store {
                Some(store) => report += store.import_batch(batch, options.keep).await?,
                None => report.found += batch.len(),
            }
            progress(&report);
        }
        Ok::<_, StoreError>(())
    }
    .await;
    // A failed writer drops the channel, which ends the reader; its own error comes first.
    drop(rx);
    let read = reader.await.map_err(StoreError::task("the import's reader"));
    {
        let rejections = rejections.lock().unwrap_or_else(PoisonError::into_inner);
        report.refused = rejections.accounts;
        report.refused_values = rejections.values;
        report.found += rejections.accounts;
        report.rejections = rejections.listed.clone();
    }
    match read.and_then(|read| read).and(written) {
        Ok(()) => Ok(report),
        Err(error) if report.imported + report.skipped == 0 => Err(error.into()),
        Err(source) => Err(ImportError::Stopped { report, source }),
    }
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
