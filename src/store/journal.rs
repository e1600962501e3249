//! The IXFR journal kept in the store: one row per serial step of the zone, so that a restart
//! or another instance can answer a secondary's IXFR incrementally.
//!
//! Design note: every instance on one store serves the same zone at each serial, so a step
//! computed by any of them is valid for all; writers race freely (`ON CONFLICT DO NOTHING` on
//! the serial the step reaches) and a lost row only means a full transfer later. The store
//! keeps the rows opaque (the zone layer encodes them) and knows nothing of the chain: a reader
//! takes the newest rows and follows `serial_from` back itself. Rows are ordered by `id`, not
//! by serial, because serials wrap; pruning keeps the newest rows by `id`, in one statement.

use super::common::{Conn, Value, count};
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Store, StoreError};

/// One stored step of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    /// The serial before the step.
    pub from: u32,
    /// The serial after it.
    pub to: u32,
    /// The step, encoded by the zone layer.
    pub data: Vec<u8>,
}

/// A serial as the column holds it.
fn serial_value(serial: u32) -> Value {
    i64::from(serial).into()
}

/// A serial read back; a value out of range (a row written by something else) is `None`.
fn serial_of(value: i64) -> Option<u32> {
    u32::try_from(value).ok()
}

/// See [`Store::put_journal_step`].
async fn put(c: &impl Conn, row: &JournalRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO zone_journal (serial_to, serial_from, data) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
        &[serial_value(row.to), serial_value(row.from), row.data.as_slice().into()],
    )
    .await
    .map(drop)
}

/// See [`Store::journal_rows`].
async fn newest(c: &impl Conn, limit: usize) -> Result<Vec<JournalRow>, StoreError> {
    let rows = c
        .query(
            "SELECT serial_from, serial_to, data FROM zone_journal ORDER BY id DESC LIMIT $1",
            &[count(limit)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let (Some(from), Some(to)) = (serial_of(row.int(0)?), serial_of(row.int(1)?)) {
            out.push(JournalRow { from, to, data: row.bytes(2)? });
        }
    }
    Ok(out)
}

/// See [`Store::prune_journal`].
async fn prune(c: &impl Conn, keep: usize) -> Result<u64, StoreError> {
    // The id of the newest row beyond `keep`, and everything up to it; no such row, no delete.
    c.execute(
        "DELETE FROM zone_journal WHERE id <= \
         (SELECT id FROM zone_journal ORDER BY id DESC LIMIT 1 OFFSET $1)",
        &[count(keep)],
    )
    .await
}

impl Store {
    /// Keeps one journal step; a step already kept for the same serial (another instance's,
    /// identical) is left as it is.
    pub async fn put_journal_step(&self, row: JournalRow) -> Result<(), StoreError> {
        run!(self, c => put(c, &row))
    }

    /// The newest `limit` journal steps, newest first (not necessarily one chain).
    pub async fn journal_rows(&self, limit: usize) -> Result<Vec<JournalRow>, StoreError> {
        read!(self, c => newest(c, limit))
    }

    /// Drops all but the newest `keep` journal steps; returns how many went.
    pub async fn prune_journal(&self, keep: usize) -> Result<u64, StoreError> {
        run!(self, c => prune(c, keep))
    }
}
