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
//! them go in one statement when the epoch moves.

use super::common::{Conn, Value, count, multi_row_insert};
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Store, StoreError};

/// A kept signature: the memo digest and the signature bytes.
pub type KeptSignature = ([u8; 32], [u8; 64]);

/// Rows per multi-row statement: 3 parameters each, well under either engine's limit.
const ROWS: usize = 1000;

/// See [`Store::keep_signatures`].
async fn keep(c: &impl Conn, epoch: u32, rows: &[KeptSignature]) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS) {
        let mut sql = multi_row_insert("signatures", "digest, epoch, signature", 3, chunk.len());
        sql.push_str(" ON CONFLICT DO NOTHING");
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|(digest, signature)| {
                [digest.as_slice().into(), i64::from(epoch).into(), signature.as_slice().into()]
            })
            .collect();
        c.execute(&sql, &params).await?;
    }
    Ok(())
}

/// See [`Store::kept_signatures`].
async fn page(
    c: &impl Conn,
    epoch: u32,
    after: &[u8],
    limit: usize,
) -> Result<Vec<KeptSignature>, StoreError> {
    let rows = c
        .query(
            "SELECT digest, signature FROM signatures WHERE epoch = $1 AND digest > $2 ORDER BY digest LIMIT $3",
            &[i64::from(epoch).into(), after.into(), count(limit)],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (digest, signature) = (row.bytes(0)?, row.bytes(1)?);
        // A row of another shape (a future algorithm) is skipped, not an error: it is a memo.
        if let (Ok(digest), Ok(signature)) = (digest.try_into(), signature.try_into()) {
            out.push((digest, signature));
        }
    }
    Ok(out)
}

/// See [`Store::prune_signatures`].
async fn prune(c: &impl Conn, epoch: u32) -> Result<u64, StoreError> {
    c.execute("DELETE FROM signatures WHERE epoch <> $1", &[i64::from(epoch).into()]).await
}

impl Store {
    /// Keeps signatures made for signing epoch `epoch` (rows present already are left as they
    /// are: the same digest always has the same signature).
    pub async fn keep_signatures(&self, epoch: u32, rows: Vec<KeptSignature>) -> Result<(), StoreError> {
        atomic!(self, c => keep(c, epoch, &rows))
    }

    /// Up to `limit` kept signatures of epoch `epoch` with digests after `after`, in digest
    /// order (page through with the last digest returned; start with an empty one).
    pub async fn kept_signatures(
        &self,
        epoch: u32,
        after: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<KeptSignature>, StoreError> {
        run!(self, c => page(c, epoch, &after, limit))
    }

    /// Removes the kept signatures of every epoch but `epoch`; returns how many went.
    pub async fn prune_signatures(&self, epoch: u32) -> Result<u64, StoreError> {
        run!(self, c => prune(c, epoch))
    }
}
