//! The store contract, and everything the engines share, written once.
//!
//! Design note: the engines differ in how they talk to the database, not in what they store. So
//! the contract is small: an engine provides a connection (`Conn`) that runs one statement with
//! parameters, runs a migration script, sends a change notification, takes a lock that spans
//! instances, and reads and writes the schema version. Everything else lives here, once: every
//! statement, the row mapping, keeping the newest N TXT values, the `allowfrom` encoding, the
//! clock and the purge rules (the one list of migrations is in `schema.rs`). `Store` (in
//! `mod.rs`) opens a connection or a transaction on the engine and runs one of these
//! operations there.
//!
//! Statements are written in one dialect that both engines accept: `$1`-style placeholders (the
//! SQLite engine turns them into `?1`), `ON CONFLICT`, `RETURNING` (SQLite 3.35; we bundle a
//! newer one). Values cross the contract as `Value`: the four kinds our schema uses.
//!
//! What stays in the engines: SQLite runs on one connection under a mutex on the blocking pool
//! and learns of other processes' writes by polling; PostgreSQL uses a pool, advisory locks and
//! LISTEN/NOTIFY. An operation here never waits on anything but its `Conn`, which is what lets
//! the SQLite engine drive it to completion on a blocking thread (see `sqlite::ready`).

use super::schema::ColumnTypes;
use super::version::{self, Edits};
use super::{
    Account, AccountRecord, AccountSummary, AuditEntry, Change, PurgeRules, Purged, StoreError, StoredKey,
    TxtValues,
};
use crate::privacy::Secret;

/// A value bound to a statement or read from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// Any integer column (SQLite INTEGER; PostgreSQL SMALLINT, INTEGER, BIGINT, BOOLEAN).
    Int(i64),
    /// TEXT.
    Text(String),
    /// BLOB / BYTEA.
    Bytes(Vec<u8>),
}

impl Value {
    /// The kind's name, for errors (never the value: it may be a key).
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Int(_) => "an integer",
            Self::Text(_) => "text",
            Self::Bytes(_) => "bytes",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(v.to_vec())
    }
}

impl<T: Into<Self>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// The count or limit `n` as a parameter.
pub(super) fn count(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// One result row.
#[derive(Debug)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    /// The column at `index`, or an error naming what was expected.
    fn column(&self, index: usize) -> Result<&Value, StoreError> {
        self.0.get(index).ok_or_else(|| StoreError::Backend(format!("result has no column {index}")))
    }

    /// A mismatch error for column `index`.
    fn mismatch(&self, index: usize, expected: &str) -> StoreError {
        let found = self.0.get(index).map_or("nothing", Value::kind);
        StoreError::Backend(format!("column {index}: expected {expected}, found {found}"))
    }

    /// An integer column that may be NULL.
    pub(super) fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.column(index)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            _ => Err(self.mismatch(index, "an integer")),
        }
    }

    /// An integer column.
    pub(super) fn int(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_int(index)?.ok_or_else(|| self.mismatch(index, "an integer"))
    }

    /// A text column that may be NULL.
    pub(super) fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        match self.column(index)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            _ => Err(self.mismatch(index, "text")),
        }
    }

    /// A text column.
    pub(super) fn text(&self, index: usize) -> Result<String, StoreError> {
        self.opt_text(index)?.ok_or_else(|| self.mismatch(index, "text"))
    }

    /// A bytes column.
    pub(super) fn bytes(&self, index: usize) -> Result<Vec<u8>, StoreError> {
        match self.column(index)? {
            Value::Bytes(v) => Ok(v.clone()),
            _ => Err(self.mismatch(index, "bytes")),
        }
    }
}

/// A lock that serialises the transactions of every instance holding it, until they end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Reading and migrating the schema: instances starting together migrate once.
    Schema,
    /// Making the DNSSEC key: instances starting together store exactly one.
    DnssecKey,
}

/// What each engine provides: one connection, or a transaction on one.
///
/// Statements use `$1`-style placeholders. A notification sent inside a transaction must be
/// delivered only if it commits.
#[allow(async_fn_in_trait, reason = "used inside the crate only, with concrete engines")]
pub(crate) trait Conn {
    /// The engine's column types for the migrations.
    const TYPES: ColumnTypes;
    /// Whether [`Conn::clock`] is the host's own, with nothing to check it against: the store
    /// then keeps its time from going back itself (see `version::time`).
    const HOST_CLOCK: bool;
    /// Runs one statement; returns how many rows it changed.
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs one statement; returns its rows.
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs a script of statements without parameters (a migration).
    async fn batch(&self, sql: &str) -> Result<(), StoreError>;
    /// Tells other instances what changed (a no-op where there is no change feed).
    async fn notify(&self, change: &Change) -> Result<(), StoreError>;
    /// Makes the rest of this transaction read one consistent snapshot (call it first; a no-op
    /// where a transaction already excludes every writer).
    async fn snapshot(&self) -> Result<(), StoreError>;
    /// Takes `lock` until the transaction ends (a no-op where transactions already exclude
    /// each other).
    async fn lock(&self, lock: Lock) -> Result<(), StoreError>;
    /// Whether a table of this name exists.
    async fn has_table(&self, name: &str) -> Result<bool, StoreError>;
    /// The schema version recorded, in the shared numbering (0 for a new database).
    async fn schema_version(&self) -> Result<i64, StoreError>;
    /// Records the schema version.
    async fn set_schema_version(&self, version: i64) -> Result<(), StoreError>;
    /// The database's own clock, seconds since the epoch: PostgreSQL's server clock, which every
    /// instance shares; on SQLite, this process's clock (the file has no clock of its own).
    async fn clock(&self) -> Result<i64, StoreError>;
}

/// `INSERT INTO {table} ({columns}) VALUES ($1, …), (…)…` for `rows` rows of `width` columns.
pub(super) fn multi_row_insert(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..width {
            let sep = if column == 0 { "" } else { ", " };
            sql.push_str(&format!("{sep}${}", row * width + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Seconds since the epoch.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `allowfrom` as stored: a JSON list of strings, as acme-dns keeps it.
fn encode_allowfrom(allowfrom: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(allowfrom).map_err(StoreError::json("allowfrom"))
}

/// Reads a stored `allowfrom` of `username`.
fn decode_allowfrom(username: &str, stored: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(stored)
        .map_err(StoreError::json(format!("allowfrom of {username} is not a JSON list")))
}

/// The columns [`account_from`] reads, in its order.
const ACCOUNT_COLUMNS: &str = "username, key_hash, bcrypt_hash, subdomain, allowfrom";

/// An account from a row of [`ACCOUNT_COLUMNS`].
fn account_from(row: &Row) -> Result<Account, StoreError> {
    let username = row.text(0)?;
    let allowfrom = decode_allowfrom(&username, &row.text(4)?)?;
    Ok(Account {
        key_hash: row.bytes(1)?,
        bcrypt_hash: row.opt_text(2)?,
        subdomain: row.text(3)?,
        allowfrom,
        username,
    })
}

/// An audit entry from a row of `at, username, action, outcome, source, occurrences, last_at`.
fn audit_from(row: &Row) -> Result<AuditEntry, StoreError> {
    let at = row.int(0)?;
    Ok(AuditEntry {
        at,
        count: row.int(5)?,
        last_at: row.opt_int(6)?.unwrap_or(at),
        username: row.opt_text(1)?,
        action: row.text(2)?,
        outcome: row.text(3)?,
        source: row.text(4)?,
    })
}

/// Keeps the newest `keep` of `(seq, value)` pairs given oldest first: the one rule for how
/// many TXT values a name serves.
pub(super) fn newest(subdomain: String, mut pairs: Vec<(i64, String)>, keep: usize) -> TxtValues {
    pairs.drain(..pairs.len().saturating_sub(keep));
    TxtValues {
        subdomain,
        seq: pairs.last().map_or(0, |(seq, _)| *seq as u64),
        values: pairs.into_iter().map(|(_, v)| v).collect(),
    }
}

/// The newest `keep` values of one subdomain, oldest first.
async fn values_of(c: &impl Conn, subdomain: &str, keep: usize) -> Result<TxtValues, StoreError> {
    let rows = c
        .query(
            "SELECT seq, value FROM txt WHERE subdomain = $1 ORDER BY seq DESC LIMIT $2",
            &[subdomain.into(), count(keep)],
        )
        .await?;
    let mut pairs =
        rows.iter().map(|r| Ok((r.int(0)?, r.text(1)?))).collect::<Result<Vec<_>, StoreError>>()?;
    pairs.reverse();
    Ok(newest(subdomain.to_owned(), pairs, keep))
}

/// See [`super::Store::insert_account`] and [`super::Store::import_account`]: an import skips an
/// account whose username or subdomain exists, a registration fails with
/// [`StoreError::Duplicate`]. Returns whether it was inserted.
pub(super) async fn insert_account(
    c: &impl Conn,
    account: &Account,
    import: bool,
) -> Result<bool, StoreError> {
    let skip = if import { " ON CONFLICT DO NOTHING" } else { "" };
    let sql = format!(
        "INSERT INTO accounts (username, key_hash, bcrypt_hash, subdomain, allowfrom, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6){skip}"
    );
    let params = [
        (&account.username).into(),
        account.key_hash.as_slice().into(),
        account.bcrypt_hash.as_ref().into(),
        (&account.subdomain).into(),
        encode_allowfrom(&account.allowfrom)?.into(),
        now().into(),
    ];
    let inserted = c.execute(&sql, &params).await? == 1;
    if inserted {
        // A new version: the name must answer NODATA at every instance, not NXDOMAIN, also for
        // an imported account without values.
        let mut edits = Edits::default();
        edits.log(c, &account.subdomain, Some(&[])).await?;
        edits.finish(c, &account.subdomain).await?;
    }
    Ok(inserted)
}

/// See [`super::Store::account`].
pub(super) async fn account(c: &impl Conn, username: &str) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = $1");
    c.query(&sql, &[username.into()]).await?.first().map(account_from).transpose()
}

/// See [`super::Store::upgrade_key`] (`only_bcrypt`) and [`super::Store::set_key`].
pub(super) async fn set_key(
    c: &impl Conn,
    username: &str,
    key_hash: &[u8],
    only_bcrypt: bool,
) -> Result<(), StoreError> {
    let condition = if only_bcrypt { " AND bcrypt_hash IS NOT NULL" } else { "" };
    let sql = format!("UPDATE accounts SET key_hash = $2, bcrypt_hash = NULL WHERE username = $1{condition}");
    c.execute(&sql, &[username.into(), key_hash.into()]).await?;
    Ok(())
}

/// See [`super::Store::update_txt`].
pub(super) async fn update_txt(
    c: &impl Conn,
    subdomain: &str,
    value: &str,
    keep: usize,
) -> Result<TxtValues, StoreError> {
    let (sub, val): (Value, Value) = (subdomain.into(), value.into());
    // A value sent again (a client's retry) moves to the newest place instead of being kept
    // twice: an RRset has no duplicate records (RFC 2181 5), and a retried B must not push out
    // the A that the other name of the same certificate still needs.
    c.execute("DELETE FROM txt WHERE subdomain = $1 AND value = $2", &[sub.clone(), val.clone()]).await?;
    c.execute(
        "INSERT INTO txt (subdomain, value, updated_at) VALUES ($1, $2, $3)",
        &[sub.clone(), val, now().into()],
    )
    .await?;
    c.execute(
        "DELETE FROM txt WHERE subdomain = $1 AND seq NOT IN \
         (SELECT seq FROM txt WHERE subdomain = $1 ORDER BY seq DESC LIMIT $2)",
        &[sub.clone(), count(keep)],
    )
    .await?;
    c.execute("UPDATE accounts SET last_used = $2 WHERE subdomain = $1", &[sub, now().into()]).await?;
    let values = values_of(c, subdomain, keep).await?;
    let mut edits = Edits::default();
    edits.log(c, subdomain, Some(&values.values)).await?;
    edits.finish(c, subdomain).await?;
    Ok(values)
}

/// See [`super::Store::txt_of`].
pub(super) async fn txt_of(
    c: &impl Conn,
    subdomain: &str,
    keep: usize,
) -> Result<Option<TxtValues>, StoreError> {
    if c.query("SELECT 1 FROM accounts WHERE subdomain = $1", &[subdomain.into()]).await?.is_empty() {
        return Ok(None);
    }
    values_of(c, subdomain, keep).await.map(Some)
}

/// See [`super::Store::put_own_challenge`].
pub(super) async fn put_own_challenge(
    c: &impl Conn,
    token: &str,
    value: Option<&str>,
    expires_at: i64,
) -> Result<(), StoreError> {
    match value {
        Some(value) => {
            c.execute(
                "INSERT INTO own_challenge (token, value, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                &[token.into(), value.into(), expires_at.into()],
            )
            .await?
        }
        None => c.execute("DELETE FROM own_challenge WHERE token = $1", &[token.into()]).await?,
    };
    // The other instances serve the zone too: the CA may ask any of them.
    let values = own_challenges(c).await?;
    let mut edits = Edits::default();
    edits.log(c, version::OWN_CHALLENGE, Some(&values)).await?;
    edits.finish(c, version::OWN_CHALLENGE).await.map(drop)
}

/// See [`super::Store::own_challenges`].
pub(super) async fn own_challenges(c: &impl Conn) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query("SELECT value FROM own_challenge WHERE expires_at > $1 ORDER BY token", &[now().into()])
        .await?;
    rows.iter().map(|r| r.text(0)).collect()
}

/// See [`super::Store::dnssec_key`].
pub(super) async fn dnssec_key(c: &impl Conn, algorithm: u8) -> Result<Option<StoredKey>, StoreError> {
    let rows = c
        .query(
            "SELECT private_key, created_at FROM dnssec_keys WHERE algorithm = $1 ORDER BY id LIMIT 1",
            &[i64::from(algorithm).into()],
        )
        .await?;
    rows.first()
        .map(|r| Ok(StoredKey { algorithm, pkcs8: Secret::new(r.bytes(0)?), created_at: r.int(1)? }))
        .transpose()
}

/// See [`super::Store::add_dnssec_key_if_none`].
pub(super) async fn add_dnssec_key_if_none(
    c: &impl Conn,
    algorithm: u8,
    pkcs8: &Secret<Vec<u8>>,
) -> Result<(), StoreError> {
    // Instances starting together would each see no key and store their own.
    c.lock(Lock::DnssecKey).await?;
    c.execute(
        "INSERT INTO dnssec_keys (algorithm, private_key, created_at) SELECT $1, $2, $3 \
         WHERE NOT EXISTS (SELECT 1 FROM dnssec_keys WHERE algorithm = $1)",
        &[i64::from(algorithm).into(), pkcs8.expose().as_slice().into(), now().into()],
    )
    .await?;
    Ok(())
}

/// See [`super::Store::account_record`].
pub(super) async fn account_record(
    c: &impl Conn,
    username: &str,
    keep: usize,
) -> Result<Option<AccountRecord>, StoreError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS}, created_at, last_used FROM accounts WHERE username = $1");
    let Some(row) = c.query(&sql, &[username.into()]).await?.into_iter().next() else { return Ok(None) };
    let account = account_from(&row)?;
    let txt = c
        .query(
            "SELECT value, updated_at FROM txt WHERE subdomain = $1 ORDER BY seq DESC LIMIT $2",
            &[(&account.subdomain).into(), count(keep)],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.int(1)?)))
        .collect::<Result<_, StoreError>>()?;
    let audit = c
        .query(
            "SELECT at, username, action, outcome, source, occurrences, last_at FROM audit \
             WHERE username = $1 ORDER BY id",
            &[username.into()],
        )
        .await?
        .iter()
        .map(audit_from)
        .collect::<Result<_, _>>()?;
    let (created_at, last_used) = (row.int(5)?, row.opt_int(6)?);
    Ok(Some(AccountRecord { account, created_at, last_used, txt, audit, persist: Vec::new() }))
}

/// See [`super::Store::accounts_page`].
pub(super) async fn list_accounts(
    c: &impl Conn,
    after: &str,
    limit: usize,
) -> Result<Vec<AccountSummary>, StoreError> {
    c.query(
        "SELECT username, subdomain, created_at, last_used FROM accounts WHERE username > $1 \
         ORDER BY username LIMIT $2",
        &[after.into(), count(limit)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(AccountSummary {
            username: r.text(0)?,
            subdomain: r.text(1)?,
            created_at: r.int(2)?,
            last_used: r.opt_int(3)?,
        })
    })
    .collect()
}

/// See [`super::Store::set_allowfrom`].
pub(super) async fn set_allowfrom(
    c: &impl Conn,
    username: &str,
    allowfrom: &[String],
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE accounts SET allowfrom = $2 WHERE username = $1",
        &[username.into(), encode_allowfrom(allowfrom)?.into()],
    )
    .await?;
    Ok(())
}

/// Deletes the accounts that `condition` (on `accounts`, with parameter `$1`) selects, with their
/// TXT values and audit entries, logging each removal in `edits`; returns their subdomains.
async fn delete_accounts(
    c: &impl Conn,
    condition: &str,
    param: Value,
    edits: &mut Edits,
) -> Result<Vec<String>, StoreError> {
    // Explicitly, not by ON DELETE CASCADE: erasure must not hang on a pragma being set.
    let sql =
        format!("DELETE FROM txt WHERE subdomain IN (SELECT subdomain FROM accounts WHERE {condition})");
    c.execute(&sql, std::slice::from_ref(&param)).await?;
    super::dns_persist::delete_of_accounts(c, condition, &param).await?;
    let sql = format!("DELETE FROM accounts WHERE {condition} RETURNING username, subdomain");
    let deleted = c.query(&sql, &[param]).await?;
    let mut subdomains = Vec::with_capacity(deleted.len());
    for row in &deleted {
        c.execute("DELETE FROM audit WHERE username = $1", &[row.text(0)?.into()]).await?;
        let subdomain = row.text(1)?;
        version::log_erasure(edits, c, &subdomain).await?;
        subdomains.push(subdomain);
    }
    subdomains.sort();
    Ok(subdomains)
}

/// See [`super::Store::delete_account`].
pub(super) async fn delete_account(c: &impl Conn, username: &str) -> Result<Option<String>, StoreError> {
    let mut edits = Edits::default();
    let subdomain = delete_accounts(c, "username = $1", username.into(), &mut edits).await?.pop();
    edits.finish(c, "erasure").await?;
    // Audit entries of a failed use may name a username that has no account (any more).
    c.execute("DELETE FROM audit WHERE username = $1", &[username.into()]).await?;
    Ok(subdomain)
}

/// See [`super::Store::purge`].
///
/// Both lists are sorted and name each subdomain once; a subdomain whose values were old and
/// whose account was unused is in both.
pub(super) async fn purge(c: &impl Conn, rules: PurgeRules) -> Result<Purged, StoreError> {
    let audit_entries = c.execute("DELETE FROM audit WHERE at < $1", &[rules.audit_before.into()]).await?;
    let mut txt_cleared = c
        .query("DELETE FROM txt WHERE updated_at < $1 RETURNING subdomain", &[rules.txt_before.into()])
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>, _>>()?;
    txt_cleared.sort();
    txt_cleared.dedup();
    // One version for all that the purge changes.
    let mut edits = Edits::default();
    // Past persistUntil first: an account whose only records just expired is unused again.
    let persist_expired = super::dns_persist::purge_expired(c, rules.now, &mut edits).await?;
    let unused = "COALESCE(last_used, created_at) < $1 \
                  AND NOT EXISTS (SELECT 1 FROM persist p WHERE p.subdomain = accounts.subdomain)";
    let accounts_expired = match rules.unused_before {
        Some(before) => delete_accounts(c, unused, before.into(), &mut edits).await?,
        None => Vec::new(),
    };
    // An expired account's subdomain was logged with its deletion. Every value left is newer
    // than the cut and within keep-N (updates trim to it), hence no limit here.
    for subdomain in txt_cleared.iter().filter(|s| accounts_expired.binary_search(s).is_err()) {
        let left = values_of(c, subdomain, usize::MAX).await?;
        edits.log(c, subdomain, Some(&left.values)).await?;
    }
    edits.finish(c, "purge").await?;
    version::prune(c, rules.txt_before).await?;
    Ok(Purged {
        audit_entries: usize::try_from(audit_entries).unwrap_or(usize::MAX),
        txt_cleared,
        accounts_expired,
        persist_expired,
    })
}

/// See [`super::Store::ping`].
pub(super) async fn ping(c: &impl Conn) -> Result<(), StoreError> {
    c.query("SELECT 1", &[]).await.map(drop)
}

/// A database URL without its password, for messages (a file path is returned as it is).
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_values_oldest_first() {
        let pairs = vec![(1, "a".to_owned()), (4, "b".to_owned()), (9, "c".to_owned())];
        let kept = newest("s".into(), pairs.clone(), 2);
        assert_eq!((kept.seq, kept.values), (9, vec!["b".to_owned(), "c".to_owned()]));
        assert_eq!(newest("s".into(), pairs, 5).values.len(), 3);
        assert_eq!(newest("s".into(), Vec::new(), 2).seq, 0);
    }

    #[test]
    fn row_errors_name_the_kind_not_the_value() {
        let row = Row(vec![Value::Bytes(b"secret".to_vec())]);
        let error = row.text(0).unwrap_err().to_string();
        assert!(error.contains("expected text, found bytes") && !error.contains("secret"), "{error}");
        assert!(row.int(3).is_err());
    }
}
