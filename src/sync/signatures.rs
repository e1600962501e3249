//! Zone sync for signatures: the store keeps every signature the zone makes, and a starting
//! instance reuses them instead of signing its whole zone again.
//!
//! Design note: signing a million names takes minutes of CPU (two signatures a name: its TXT
//! set and its NSEC3 link); reading them back takes seconds. Signatures are deterministic, so
//! any instance's signature for an input is every instance's (`store::signatures` explains the
//! table, `dns::zone::memo` the zone's side). The zone collects what it signs; a task here
//! writes it to the store every few seconds and when the daemon stops, and removes the rows of
//! an epoch the zone has left. Of several signatures of one set (a name updated many times
//! since the last write) only the newest is written, and it replaces the set's row in the
//! store: the table keeps about one row per set, not one per update. Nothing here is on the path of an update: a signature not kept
//! yet when the process dies is made again at the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::SyncError;
use super::ZoneSync;
use crate::dns::zone::NewSignature;
use crate::store::StoreError;

/// Kept signatures read per store call at start.
const PAGE: usize = 100_000;
/// Signatures written per store call (one transaction each).
const WRITE_BATCH: usize = 10_000;
/// How often new signatures are written to the store.
const KEEP_EVERY: Duration = Duration::from_secs(2);

impl ZoneSync {
    /// Gives the zone every signature the store keeps for the store's signing epoch; returns
    /// how many. They only save work: on a failure the zone signs what it was not given.
    pub(super) async fn remember_kept_signatures(&self) -> usize {
        match self.read_kept_signatures().await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!("could not read the kept signatures (signing instead): {error}");
                0
            }
        }
    }

    /// See [`Self::remember_kept_signatures`].
    async fn read_kept_signatures(&self) -> Result<usize, StoreError> {
        let epoch = self.store.zone_version().await?.epoch;
        // Room for all at once: growing a map of millions doubles it (and its memory) repeatedly.
        let expected = self.store.kept_signature_count(epoch).await?;
        self.zone.expect_signatures(usize::try_from(expected).unwrap_or(0));
        let (mut after, mut total) = (0, 0);
        loop {
            let page = self.store.kept_signatures(epoch, after, PAGE).await?;
            total += page.rows.len();
            after = page.next;
            self.zone.remember_signatures(page.rows);
            if !page.full {
                break;
            }
        }
        Ok(total)
    }

    /// Writes the signatures the zone made since the last call to the store, each under the
    /// signing epoch it was made at, then (once the zone's epoch moved) removes the rows of
    /// earlier epochs; returns how many it wrote. A failed write puts the unwritten ones back
    /// for the next call; a failed removal only warns (it costs disk, not signatures).
    pub(super) async fn keep_new_signatures(&self, pruned_for: &mut Option<u32>) -> Result<usize, SyncError> {
        let zone = Arc::clone(&self.zone);
        // Sorting millions of them (after a new epoch) is CPU work: off the async workers.
        let fresh = tokio::task::spawn_blocking(move || newest_per_set(zone.take_new_signatures()))
            .await
            .map_err(SyncError::task("sorting the new signatures"))?;
        let count = fresh.len();
        let mut rest = fresh.as_slice();
        while let Some(&NewSignature { epoch, .. }) = rest.first() {
            let same = rest.iter().take(WRITE_BATCH).take_while(|s| s.epoch == epoch).count();
            let rows = rest[..same].iter().map(|s| (s.slot, s.digest, s.signature)).collect();
            if let Err(error) = self.store.keep_signatures(epoch, rows).await {
                // Lost rows cost a signature at the next start; these are tried next time.
                self.zone.requeue_new_signatures(rest.iter().copied());
                return Err(error.into());
            }
            rest = &rest[same..];
        }
        let epoch = self.zone.epoch();
        if *pruned_for != Some(epoch) {
            match self.prune_before(epoch).await {
                Ok(0) => {}
                Ok(gone) => tracing::info!("removed {gone} kept signatures of earlier signing epochs"),
                Err(error) => tracing::warn!("could not remove kept signatures of earlier epochs: {error}"),
            }
            *pruned_for = Some(epoch);
        }
        Ok(count)
    }

    /// Removes every kept signature of an epoch before `epoch`, a batch at a time.
    async fn prune_before(&self, epoch: u32) -> Result<u64, StoreError> {
        let mut gone = 0;
        loop {
            let batch = self.store.prune_signatures(epoch, WRITE_BATCH).await?;
            gone += batch;
            if batch < WRITE_BATCH as u64 {
                return Ok(gone);
            }
        }
    }

    /// Keeps the zone's new signatures in the store until `shutdown` changes, then once more.
    pub async fn keep_signatures(self, mut shutdown: watch::Receiver<bool>) {
        let mut pruned_for = None;
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(KEEP_EVERY) => false,
                _ = shutdown.changed() => true,
            };
            match self.keep_new_signatures(&mut pruned_for).await {
                Ok(0) => {}
                // A bulk of them (a load, a new epoch) is worth a line; single updates are not.
                Ok(count) if count >= WRITE_BATCH => {
                    tracing::info!("kept {count} new signatures in the database")
                }
                Ok(count) => tracing::debug!("kept {count} new signatures in the database"),
                Err(error) => tracing::warn!("could not keep new signatures in the database: {error}"),
            }
            if stopping {
                return;
            }
        }
    }
}

/// The signatures to write of those taken from the zone (in the order they were made): the
/// newest of each set only (the older ones sign data no longer served), in epoch and digest
/// order, which the unique index on the digest takes fastest.
fn newest_per_set(mut taken: Vec<NewSignature>) -> Vec<NewSignature> {
    let mut seen = std::collections::HashSet::with_capacity(taken.len());
    // From the newest back, the first of each slot is its newest.
    taken.reverse();
    taken.retain(|s| seen.insert(s.slot));
    taken.sort_unstable_by_key(|s| (s.epoch, s.digest));
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_signature_of_a_set_is_written() {
        let new =
            |epoch: u32, slot: u64, n: u8| NewSignature { epoch, slot, digest: [n; 32], signature: [n; 64] };
        let taken = vec![new(1, 7, 9), new(1, 8, 3), new(1, 7, 5), new(2, 7, 1), new(1, 9, 4)];
        let kept = newest_per_set(taken);
        assert_eq!(kept, [new(1, 8, 3), new(1, 9, 4), new(2, 7, 1)]);
    }
}
