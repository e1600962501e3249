//! Signatures kept for reuse: a signed zone of a million names loads in seconds instead of
//! signing for minutes.
//!
//! Design note: the zone's signatures are deterministic, so each is a function of the key and
//! the bytes it signs, named by a digest of both (`dns::dnssec::SigningKey::memo_digest`).
//! This table is a memo of that function, shared by every instance: whoever signs a set writes
//! the signature here; a starting instance reads the rows of the current signing epoch and
//! signs only what none matches. A row is never wrong for its digest, so writers race freely
//! (`ON CONFLICT DO NOTHING`) and a lost row costs one signature at the next start. Rows of other
//! epochs match nothing (the validity window is part of what is signed); the epoch column lets
//! them go when the epoch moves, ten thousand rows a statement.
//!
//! Superseded rows: every row names the set it signs (`slot`: its owner and type, hashed by
//! the zone), and a new signature of a set removes the rows of that set with another digest,
//! in the statement before its insert. A name updated 50 times a second would otherwise add 30
//! million rows a week until the epoch moved; so the table holds about one row per signed set,
//! plus a bounded tail: the sets of names removed since the epoch began, rows of older versions
//! (kept before slots existed: no slot) and, with several instances, a row an instance behind
//! the others wrote after they had superseded it (it goes when that instance supersedes it
//! too). A lagging instance may also remove the newest row of a set: one signature made again
//! at a start, as with any lost row.

use super::common::{Conn, Value, count, multi_row_insert};
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Store, StoreError};

/// A kept signature: the memo digest and the signature bytes.
pub(super) type KeptSignature = ([u8; 32], [u8; 64]);

/// A signature to keep: the set it signs (the zone's slot), the memo digest, the signature.
pub(super) type SignatureToKeep = (u64, [u8; 32], [u8; 64]);

/// Rows per multi-row statement: 4 parameters each, well under either engine's limit.
const ROWS: usize = 1000;

/// See [`Store::keep_signatures`].
async fn keep(c: &impl Conn, epoch: u32, rows: &[SignatureToKeep]) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS) {
        supersede(c, chunk).await?;
        let mut sql = multi_row_insert("signatures", "slot, digest, epoch, signature", 4, chunk.len());
        sql.push_str(" ON CONFLICT DO NOTHING");
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|(slot, digest, signature)| {
                [
                    slot_value(*slot),
                    digest.as_slice().into(),
                    i64::from(epoch).into(),
                    signature.as_slice().into(),
                ]
            })
            .collect();
        c.execute(&sql, &params).await?;
    }
    Ok(())
}

/// Removes the rows that `rows` supersede: those of the same sets with another digest. The
/// rows hold one digest per slot (`keep_signatures` says so), and a digest belongs to one
/// slot (it covers the owner and type), so one statement for all of them is exact.
async fn supersede(c: &impl Conn, rows: &[SignatureToKeep]) -> Result<(), StoreError> {
    let list =
        |from: usize| (from..from + rows.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "DELETE FROM signatures WHERE slot IN ({}) AND digest NOT IN ({})",
        list(1),
        list(rows.len() + 1)
    );
    let params: Vec<Value> = rows
        .iter()
        .map(|&(slot, _, _)| slot_value(slot))
        .chain(rows.iter().map(|(_, digest, _)| digest.as_slice().into()))
        .collect();
    c.execute(&sql, &params).await.map(drop)
}

/// A slot as the column holds it: the same 64 bits, signed (both engines' integers are).
fn slot_value(slot: u64) -> Value {
    i64::from_ne_bytes(slot.to_ne_bytes()).into()
}

/// A page of kept signatures and where the next one starts (see [`Store::kept_signatures`]).
#[derive(Debug, Default)]
pub struct SignaturePage {
    /// The signatures.
    pub rows: Vec<KeptSignature>,
    /// The cursor for the next page: the last row's id (the one given when the page is empty).
    pub next: i64,
    /// Whether the page was full (more may follow).
    pub full: bool,
}

/// See [`Store::kept_signatures`].
async fn page(c: &impl Conn, epoch: u32, after: i64, limit: usize) -> Result<SignaturePage, StoreError> {
    // In id order: SQLite's rowid order, the table's own, so a page is a range read rather
    // than a lookup per row (a digest-ordered read was four times slower at a million rows).
    // Ids of concurrent writers may commit out of order and a page may step over a row then:
    // a memo can miss a row (one signature made again), nothing more.
    let rows = c
        .query(
            "SELECT id, digest, signature FROM signatures WHERE epoch = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[i64::from(epoch).into(), after.into(), count(limit)],
        )
        .await?;
    let full = rows.len() == limit;
    let mut page = SignaturePage { rows: Vec::with_capacity(rows.len()), next: after, full };
    for row in rows {
        page.next = row.int(0)?;
        // A row of another shape (a future algorithm) is skipped, not an error: it is a memo.
        if let (Ok(digest), Ok(signature)) = (row.bytes(1)?.try_into(), row.bytes(2)?.try_into()) {
            page.rows.push((digest, signature));
        }
    }
    Ok(page)
}

/// See [`Store::kept_signature_count`].
async fn count_of(c: &impl Conn, epoch: u32) -> Result<u64, StoreError> {
    let rows =
        c.query("SELECT count(*) FROM signatures WHERE epoch = $1", &[i64::from(epoch).into()]).await?;
    let n = rows.first().map(|row| row.int(0)).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// See [`Store::prune_signatures`].
async fn prune(c: &impl Conn, epoch: u32, limit: usize) -> Result<u64, StoreError> {
    c.execute(
        "DELETE FROM signatures WHERE id IN (SELECT id FROM signatures WHERE epoch < $1 LIMIT $2)",
        &[i64::from(epoch).into(), count(limit)],
    )
    .await
}

impl Store {
    /// Keeps signatures made for signing epoch `epoch` (rows present already are left as they
    /// are: the same digest always has the same signature), each replacing the kept rows of
    /// its set (slot) with another digest. `rows` holds at most one signature per slot: the
    /// newest.
    pub async fn keep_signatures(&self, epoch: u32, rows: Vec<SignatureToKeep>) -> Result<(), StoreError> {
        atomic!(self, c => keep(c, epoch, &rows))
    }

    /// Up to `limit` kept signatures of epoch `epoch` after cursor `after` (start with 0, go
    /// on with the page's `next` while it is `full`).
    pub async fn kept_signatures(
        &self,
        epoch: u32,
        after: i64,
        limit: usize,
    ) -> Result<SignaturePage, StoreError> {
        read!(self, c => page(c, epoch, after, limit))
    }

    /// How many signatures of epoch `epoch` are kept (to make room for them at once).
    pub async fn kept_signature_count(&self, epoch: u32) -> Result<u64, StoreError> {
        read!(self, c => count_of(c, epoch))
    }

    /// Removes up to `limit` kept signatures of epochs before `epoch` (epochs only move
    /// forward; a later one's rows may be another instance's, ahead of this one); returns how many
    /// went (call again while it returns `limit`: a million rows in one statement would hold
    /// SQLite's writer, or outlast PostgreSQL's statement deadline).
    pub async fn prune_signatures(&self, epoch: u32, limit: usize) -> Result<u64, StoreError> {
        run!(self, c => prune(c, epoch, limit))
    }
}
