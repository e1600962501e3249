//! Zone sync for signatures: the store keeps every signature the zone makes, and a starting
//! instance reuses them instead of signing its whole zone again; and the loop that renews them
//! before they expire.
//!
//! Design note: signing a million names takes minutes of CPU (two signatures a name: its TXT
//! set and its NSEC3 link); reading them back takes seconds. Signatures are deterministic, so
//! any instance's signature for an input is every instance's (`store::signatures` explains the
//! table, `dns::zone::memo` the zone's side). Each commit of the zone returns the signatures
//! it made, and every commit sync makes goes through [`ZoneSync::commit`], which queues them
//! ([`Unkept`]): no write path has a hook of its own to forget. A task here writes the queue to
//! the store every few seconds and when the daemon stops, and removes the rows of an epoch the
//! zone has left. Of several signatures of one set (a name updated many times
//! since the last write) only the newest is written, and it replaces the set's row in the
//! store: the table keeps about one row per set, not one per update. Nothing here is on the path of an update: a signature not kept
//! yet when the process dies is made again at the next start.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::SyncError;
use super::ZoneSync;
use crate::dns::zone::{Commit, NewSignature, Write};
use crate::store::StoreError;

/// Kept signatures read per store call at start.
const PAGE: usize = 100_000;
/// Signatures written per store call (one transaction each).
const WRITE_BATCH: usize = 10_000;
/// How often new signatures are written to the store.
const KEEP_EVERY: Duration = Duration::from_secs(2);
/// At most this many signatures wait for the store after a failed write (about 400 MB).
const REQUEUE_LIMIT: usize = 4 << 20;

/// The signatures the zone's commits made that the store does not keep yet; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(super) struct Unkept(Arc<Mutex<Vec<NewSignature>>>);

impl Unkept {
    /// Queues what a commit made.
    fn add(&self, signatures: Vec<NewSignature>) {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.is_empty() {
            // A load's millions, moved rather than copied.
            *queue = signatures;
        } else {
            queue.extend(signatures);
        }
    }

    /// Everything queued, in the order made.
    fn take(&self) -> Vec<NewSignature> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts signatures taken but not written back in the queue, as long as it holds fewer than
    /// `limit` ([`REQUEUE_LIMIT`]: the store has been failing for long; those left out are made
    /// again at the next start, no harm done).
    fn requeue(&self, signatures: impl IntoIterator<Item = NewSignature>, limit: usize) {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = limit.saturating_sub(queue.len());
        queue.extend(signatures.into_iter().take(room));
    }
}

impl ZoneSync {
    /// Commits `write` at `serial` and queues the signatures the commit made for the store.
    /// Every write of sync to the zone is committed here, so none of them is left unkept.
    /// Blocking for a large commit: call it where the write was begun.
    pub(super) fn commit(&self, write: Write<'_>, serial: u32) -> Commit {
        let mut commit = write.commit(serial);
        self.unkept.add(std::mem::take(&mut commit.signatures));
        commit
    }

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

    /// Writes the signatures the zone's commits made since the last call to the store, each under the
    /// signing epoch it was made at, then (once the zone's epoch moved) removes the rows of
    /// earlier epochs; returns how many it wrote. A failed write puts the unwritten ones back
    /// for the next call; a failed removal only warns (it costs disk, not signatures).
    pub(super) async fn keep_new_signatures(&self, pruned_for: &mut Option<u32>) -> Result<usize, SyncError> {
        let taken = self.unkept.take();
        // Sorting millions of them (after a new epoch) is CPU work: off the async workers.
        let fresh = tokio::task::spawn_blocking(move || newest_per_set(taken))
            .await
            .map_err(SyncError::task("sorting the new signatures"))?;
        let count = fresh.len();
        let mut rest = fresh.as_slice();
        while let Some(&NewSignature { epoch, .. }) = rest.first() {
            let same = rest.iter().take(WRITE_BATCH).take_while(|s| s.epoch == epoch).count();
            let rows = rest[..same].iter().map(|s| (s.slot, s.digest, s.signature)).collect();
            if let Err(error) = self.store.keep_signatures(epoch, rows).await {
                // Lost rows cost a signature at the next start; these are tried next time.
                self.unkept.requeue(rest.iter().copied(), REQUEUE_LIMIT);
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

impl ZoneSync {
    /// Renews the signatures when they near expiry (see [`Self::refresh_signatures`]): at once,
    /// then often enough that no signature gets within a quarter of the refresh window of
    /// expiring (`refresh` seconds), until `shutdown` changes.
    pub(crate) async fn renew_signatures(self, refresh: u32, mut shutdown: watch::Receiver<bool>) {
        let every = Duration::from_secs(u64::from((refresh / 4).clamp(1, 300)));
        loop {
            // At once first: a start may serve signatures that are due (see `ZoneSync::load`).
            // A new signing epoch is a store event: one instance records it, all apply it.
            match self.refresh_signatures().await {
                Ok(true) => tracing::info!("recorded a new signing epoch for every instance"),
                Ok(false) => {}
                Err(error) => tracing::warn!("could not renew the signatures (retried later): {error}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
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

    fn new(epoch: u32, slot: u64, n: u8) -> NewSignature {
        NewSignature { epoch, slot, digest: [n; 32], signature: [n; 64] }
    }

    #[test]
    fn taken_signatures_come_back_when_requeued_up_to_the_limit() {
        let unkept = Unkept::default();
        unkept.add(vec![new(1, 1, 1)]);
        unkept.add(vec![new(1, 2, 2)]);
        let taken = unkept.take();
        assert_eq!(taken, [new(1, 1, 1), new(1, 2, 2)]);
        assert!(unkept.take().is_empty(), "taken once");
        unkept.add(vec![new(1, 3, 3)]);
        unkept.requeue(taken.iter().copied(), 10);
        assert_eq!(unkept.take(), [new(1, 3, 3), new(1, 1, 1), new(1, 2, 2)]);
        // A queue at the limit takes no more back, one below it one more.
        unkept.add(vec![new(1, 4, 4); 2]);
        unkept.requeue(taken.iter().copied(), 2);
        assert_eq!(unkept.take().len(), 2);
        unkept.add(vec![new(1, 4, 4); 2]);
        unkept.requeue(taken, 3);
        assert_eq!(unkept.take().len(), 3);
    }

    #[test]
    fn only_the_newest_signature_of_a_set_is_written() {
        let taken = vec![new(1, 7, 9), new(1, 8, 3), new(1, 7, 5), new(2, 7, 1), new(1, 9, 4)];
        let kept = newest_per_set(taken);
        assert_eq!(kept, [new(1, 8, 3), new(1, 9, 4), new(2, 7, 1)]);
    }
}
