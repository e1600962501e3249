//! Persistent dns-persist-01 records: their statements and row mapping, on the store contract.
//!
//! Design note: a record belongs to an account (by its subdomain) and an issuer; posting the
//! same issuer again replaces it. What DNS serves for an account is all its records, as one
//! TXT RRset at the account's persist name (the zone names it, see `dns::zone::persist_label`),
//! ordered by issuer so every instance renders the same set. The served value is stored as
//! written (column `value`, since schema 12), so further parameters need no columns of their
//! own; a row from before has none and serves what its columns make.
//!
//! Order of writes: each change to an account's records takes the next value of the account's
//! own counter (`accounts.persist_seq`) in its transaction. The zone keeps the highest it has
//! applied, so a write that reaches the zone late never undoes a newer one, also a deletion
//! (which, unlike a TXT update, leaves no row to carry a sequence). Taking the counter first
//! also locks the account's row on PostgreSQL, so the count against [`MAX_RECORDS`] cannot be
//! passed by two requests at once. An account whose counter is 0 never used persistent
//! records and has no persist name in the zone; from its first record on, the name exists
//! (NODATA once empty) until the account goes: the same on every instance, as the zone must be.
//!
//! Lifetime: records do not age out with `txt_retention`; the purge removes those whose
//! `persistUntil` passed, and an account holding a live record is in use for `account_expiry`
//! (see `common::purge`). Erasure deletes them with the account. A deleted or replaced record
//! is erased data like any other (`erased::PERSIST`: SQLite's WAL is emptied, PostgreSQL's
//! table rewritten by the next purge run).
//!
//! [`MAX_RECORDS`]: crate::dns_persist::MAX_RECORDS

use super::common::{Conn, Row, now};
// The engines, by the names the `run!` and `atomic!` macros use.
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::version::{self, Edits};
use super::{PersistEntry, StoreError, TxtValues};
use crate::dns_persist::Record;

/// The columns [`record_from`] reads, in its order.
const COLUMNS: &str = "issuer, accounturi, wildcard, persist_until, set_at, value";

/// What [`put`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored: whether it replaced the issuer's earlier record, and what the account's
    /// persist name now serves.
    Stored {
        /// An earlier record of the same issuer was replaced.
        replaced: bool,
        /// The served set after the write.
        served: TxtValues,
    },
    /// Refused: the account holds the most records allowed, none of this issuer.
    Full,
    /// Refused: no account has this subdomain (it was deleted meanwhile).
    NoAccount,
}

/// A stored record and when it was set, from a row of [`COLUMNS`].
fn record_from(row: &Row) -> Result<PersistEntry, StoreError> {
    let stored = row.opt_text(5)?;
    let record = Record {
        issuer: row.text(0)?,
        accounturi: row.text(1)?,
        wildcard: row.int(2)? != 0,
        persist_until: row.opt_int(3)?,
        params: stored.as_deref().map(crate::dns_persist::params_of).unwrap_or_default(),
    };
    let value = stored.unwrap_or_else(|| record.value());
    Ok(PersistEntry { value, record, set_at: row.int(4)? })
}

/// The records of one account, by issuer.
pub(super) async fn records(c: &impl Conn, subdomain: &str) -> Result<Vec<PersistEntry>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM persist WHERE subdomain = $1 ORDER BY issuer");
    c.query(&sql, &[subdomain.into()]).await?.iter().map(record_from).collect()
}

/// What the account's persist name serves as of counter `seq`.
async fn served(c: &impl Conn, subdomain: &str, seq: i64) -> Result<TxtValues, StoreError> {
    let values = records(c, subdomain).await?.into_iter().map(|e| e.value).collect();
    Ok(TxtValues { subdomain: subdomain.to_owned(), seq: seq.max(0) as u64, values })
}

/// Takes the account's next persist counter (locking its row); `None` if there is no account.
async fn next_seq(c: &impl Conn, subdomain: &str) -> Result<Option<i64>, StoreError> {
    let rows = c
        .query(
            "UPDATE accounts SET persist_seq = persist_seq + 1 WHERE subdomain = $1 RETURNING persist_seq",
            &[subdomain.into()],
        )
        .await?;
    rows.first().map(|r| r.int(0)).transpose()
}

/// See [`super::Store::put_persist`].
pub(super) async fn put(
    c: &impl Conn,
    subdomain: &str,
    record: &Record,
    max: usize,
) -> Result<PutOutcome, StoreError> {
    let Some(seq) = next_seq(c, subdomain).await? else { return Ok(PutOutcome::NoAccount) };
    let others = c
        .query(
            "SELECT count(*) FROM persist WHERE subdomain = $1 AND issuer <> $2",
            &[subdomain.into(), (&record.issuer).into()],
        )
        .await?;
    let others = others.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
    if usize::try_from(others).unwrap_or(usize::MAX) >= max {
        // The counter moved without a change: a gap, which the zone does not mind.
        return Ok(PutOutcome::Full);
    }
    let replaced = c
        .execute(
            "DELETE FROM persist WHERE subdomain = $1 AND issuer = $2",
            &[subdomain.into(), (&record.issuer).into()],
        )
        .await?
        == 1;
    c.execute(
        "INSERT INTO persist (subdomain, issuer, accounturi, wildcard, persist_until, set_at, value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            subdomain.into(),
            (&record.issuer).into(),
            (&record.accounturi).into(),
            i64::from(record.wildcard).into(),
            record.persist_until.into(),
            now().into(),
            record.value().into(),
        ],
    )
    .await?;
    let served = served(c, subdomain, seq).await?;
    log(c, subdomain, Some(&served.values)).await?;
    Ok(PutOutcome::Stored { replaced, served })
}

/// See [`super::Store::delete_persist`]: `None` when the account holds no record of `issuer`.
pub(super) async fn delete(
    c: &impl Conn,
    subdomain: &str,
    issuer: &str,
) -> Result<Option<TxtValues>, StoreError> {
    let deleted = c
        .execute(
            "DELETE FROM persist WHERE subdomain = $1 AND issuer = $2",
            &[subdomain.into(), issuer.into()],
        )
        .await?;
    if deleted == 0 {
        return Ok(None);
    }
    let Some(seq) = next_seq(c, subdomain).await? else { return Ok(None) };
    let served = served(c, subdomain, seq).await?;
    log(c, subdomain, Some(&served.values)).await?;
    Ok(Some(served))
}

/// See [`super::Store::persist_of`]: `None` when the account is gone or never had a record.
pub(super) async fn served_of(c: &impl Conn, subdomain: &str) -> Result<Option<TxtValues>, StoreError> {
    let rows = c.query("SELECT persist_seq FROM accounts WHERE subdomain = $1", &[subdomain.into()]).await?;
    match rows.first().map(|r| r.int(0)).transpose()? {
        Some(seq) if seq > 0 => served(c, subdomain, seq).await.map(Some),
        _ => Ok(None),
    }
}

/// See [`super::Store::persist_contents`]: every account that ever had a record, with what its
/// persist name serves; one query, grouped here.
pub(super) async fn contents(c: &impl Conn) -> Result<Vec<TxtValues>, StoreError> {
    let sql = format!(
        "SELECT a.subdomain, a.persist_seq, {} FROM accounts a \
         LEFT JOIN persist p ON p.subdomain = a.subdomain WHERE a.persist_seq > 0 ORDER BY a.subdomain, p.issuer",
        COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ")
    );
    let mut out: Vec<TxtValues> = Vec::new();
    for row in c.query(&sql, &[]).await? {
        let subdomain = row.text(0)?;
        let seq = row.int(1)?.max(0) as u64;
        if out.last().is_none_or(|t| t.subdomain != subdomain) {
            out.push(TxtValues { subdomain: subdomain.clone(), seq, values: Vec::new() });
        }
        // A LEFT JOIN row without a record (issuer NULL) stands for an account whose records
        // were all deleted: its name stays, empty.
        if row.opt_text(2)?.is_some()
            && let Some(last) = out.last_mut()
        {
            last.values.push(record_from(&Row(row.0[2..].to_vec()))?.value);
        }
    }
    Ok(out)
}

/// A change of the persist name of `subdomain` as a zone version of its own (see
/// `version.rs`), announced on the change feed.
async fn log(c: &impl Conn, subdomain: &str, values: Option<&[String]>) -> Result<(), StoreError> {
    let mut edits = Edits::default();
    edits.log(c, &version::persist_name(subdomain), values).await?;
    edits.finish(c, subdomain).await.map(drop)
}

/// Removes the records whose `persistUntil` is not after `now`, logging the changed names in
/// `edits`; returns the subdomains whose served set changed, sorted, each once.
pub(super) async fn purge_expired(
    c: &impl Conn,
    now: i64,
    edits: &mut Edits,
) -> Result<Vec<String>, StoreError> {
    let mut subdomains = c
        .query(
            "DELETE FROM persist WHERE persist_until IS NOT NULL AND persist_until <= $1 RETURNING subdomain",
            &[now.into()],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>, _>>()?;
    subdomains.sort();
    subdomains.dedup();
    for subdomain in &subdomains {
        next_seq(c, subdomain).await?;
        let served = served_of(c, subdomain).await?;
        edits.log(c, &version::persist_name(subdomain), served.as_ref().map(|s| s.values.as_slice())).await?;
    }
    Ok(subdomains)
}

/// The erasure of the records of the accounts that `condition` (on `accounts`, parameter `$1`)
/// selects; called by `common::delete_accounts` before the accounts go.
pub(super) async fn delete_of_accounts(
    c: &impl Conn,
    condition: &str,
    param: &super::common::Value,
) -> Result<(), StoreError> {
    let sql =
        format!("DELETE FROM persist WHERE subdomain IN (SELECT subdomain FROM accounts WHERE {condition})");
    c.execute(&sql, std::slice::from_ref(param)).await.map(drop)
}

impl super::Store {
    /// Stores `record` for the account of `subdomain` (replacing its issuer's earlier record),
    /// unless the account holds `max` records of other issuers.
    pub async fn put_persist(
        &self,
        subdomain: &str,
        record: &Record,
        max: usize,
    ) -> Result<PutOutcome, StoreError> {
        let (subdomain, record) = (subdomain.to_owned(), record.clone());
        let outcome = atomic!(self, c => put(c, &subdomain, &record, max))?;
        if matches!(outcome, PutOutcome::Stored { replaced: true, .. }) {
            // The replaced record's account URI is erased data too.
            self.erased(super::erased::PERSIST).await?;
        }
        Ok(outcome)
    }

    /// Deletes the account's record of `issuer`; returns what its persist name then serves, or
    /// `None` if it held no such record.
    pub async fn delete_persist(
        &self,
        subdomain: &str,
        issuer: &str,
    ) -> Result<Option<TxtValues>, StoreError> {
        let (subdomain, issuer) = (subdomain.to_owned(), issuer.to_owned());
        let served = atomic!(self, c => delete(c, &subdomain, &issuer))?;
        if served.is_some() {
            self.erased(super::erased::PERSIST).await?;
        }
        Ok(served)
    }

    /// What the persist name of `subdomain`'s account serves, or `None` if it has none (the
    /// account is gone or never had a record).
    pub async fn persist_of(&self, subdomain: &str) -> Result<Option<TxtValues>, StoreError> {
        let subdomain = subdomain.to_owned();
        read!(self, c => served_of(c, &subdomain))
    }

    /// Every persist name with what it serves, for loading the zone (by account subdomain).
    pub async fn persist_contents(&self) -> Result<Vec<TxtValues>, StoreError> {
        read!(self, c => contents(c))
    }
}
