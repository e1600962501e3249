//! The IXFR journal across restarts: each step the zone commits is kept in the store too, and
//! a start seeds the zone's in-memory journal from it.
//!
//! Design note: every instance on one store serves the same zone at each serial (see the
//! module note of `zone_sync`), so a step computed here is valid for every instance, and one an
//! instance computed before a restart is valid after it: the zone a start loads at version V is
//! the zone served at V. Storing is not on an update's path: after the zone commit, in a task
//! of its own; a step that fails to be stored is logged and only means that a later restart,
//! or another instance, sends a full zone to a secondary that far behind. A command that
//! changes the zone while no server runs (`import-acme-dns`) stores its steps the same way
//! (`offline.rs`) and waits for them (`ZoneSync::journal_flushed`) before its process ends.
//!
//! Erased data: a step holds the records it removed and added, so an erasure (an account
//! deleted, a persist record replaced or deleted, the retention purge) empties the stored
//! journal in the store (`Store::erased`), and a version carrying an erasure or a persist
//! change is not kept; seeing one, this instance empties the journal again after storing what
//! it had in flight, as one task after another (`TURN`), so no step from before the erasure is
//! left behind by this instance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::ZoneSync;
use crate::dns::journal::{Change, Limits};
use crate::store::version::{ERASED, PERSIST};
use crate::store::{JournalRow, LogEntry, Store, StoreError};

/// Steps stored between two prunes of the store's journal.
const PRUNE_EVERY: u64 = 64;

/// Steps stored by this process, counted for pruning now and then.
static STORED: AtomicU64 = AtomicU64::new(0);

/// What one catch-up hands the storing task: the store, the journal's bounds, whether an
/// erasure came first, and the steps.
type Batch = (Store, Limits, bool, Vec<Arc<Change>>);

/// A job of the storing task.
#[derive(Debug)]
pub(super) enum Job {
    /// Steps to store.
    Steps(Batch),
    /// Report what this process stored so far, once every job handed over before is done.
    Flush(oneshot::Sender<Tally>),
}

/// What the storing task did since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Steps stored.
    pub(crate) stored: usize,
    /// Steps not stored: the store failed (logged), or a step too large for the journal.
    pub(crate) lost: usize,
}

/// The way to the one task that stores steps, made at first use (`ZoneSync::journal_out`).
pub(super) type Worker = Arc<OnceLock<mpsc::UnboundedSender<Job>>>;

/// The one task that stores steps, in the order catch-ups hand them over: a journal emptied
/// for an erasure stays free of the steps from before it.
async fn store_steps(mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut tally = Tally::default();
    while let Some(job) = jobs.recv().await {
        let (store, limits, forget, steps) = match job {
            Job::Steps(batch) => batch,
            Job::Flush(done) => {
                let _ = done.send(tally);
                continue;
            }
        };
        if forget && let Err(error) = store.prune_journal(0).await {
            tracing::warn!("could not empty the IXFR journal in the database after an erasure: {error}");
            tally.lost += steps.len();
            continue;
        }
        let count = steps.len();
        for (index, step) in steps.into_iter().enumerate() {
            // A step larger than the journal may hold would be dropped at once when read.
            let Some(data) = step.encode().filter(|_| step.size() <= limits.bytes) else {
                tally.lost += 1;
                continue;
            };
            let row = JournalRow { from: step.from, to: step.to, data };
            if let Err(error) = store.put_journal_step(row).await {
                tracing::warn!(
                    "could not keep the IXFR step to serial {} in the database ({error}): after a \
                     restart, a secondary that far behind gets the whole zone",
                    step.to
                );
                tally.lost += count - index;
                break;
            }
            tally.stored += 1;
            if STORED.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1
                && let Err(error) = store.prune_journal(limits.entries).await
            {
                tracing::warn!("could not prune the IXFR journal in the database: {error}");
            }
        }
    }
}

/// Whether a log entry erases data a stored step may hold (see the module note): an erased
/// account, or a persist record changed (a replaced or deleted one's account URI goes).
pub(super) fn erases(entry: &LogEntry) -> bool {
    entry.name.starts_with(ERASED) || entry.name.starts_with(PERSIST)
}

impl ZoneSync {
    /// Keeps `steps` (committed in this order) in the store, off the caller's path; nothing
    /// without zone transfers, whose journal alone reads them. With `forget` (an erasure came
    /// before these steps), the store's journal is emptied first.
    pub(super) fn keep_steps(&self, steps: Vec<Arc<Change>>, forget: bool) {
        let Some(limits) = self.transfers.as_ref().and_then(|_| self.zone.journal_limits()) else {
            return;
        };
        if steps.is_empty() && !forget {
            return;
        }
        // The worker ends only with the runtime; a step lost then costs a full transfer.
        let _ = self.journal_worker().send(Job::Steps((self.store.clone(), limits, forget, steps)));
    }

    /// The storing task, started at first use.
    fn journal_worker(&self) -> &mpsc::UnboundedSender<Job> {
        self.journal_out.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(store_steps(rx));
            tx
        })
    }

    /// Waits until every step handed to the storing task so far is stored (or lost), and says
    /// how many were, since the process started: a one-off command, whose runtime ends when it
    /// returns, calls it before it does.
    pub(super) async fn journal_flushed(&self) -> Tally {
        let (done, report) = oneshot::channel();
        let _ = self.journal_worker().send(Job::Flush(done));
        report.await.unwrap_or_default()
    }

    /// Puts the steps the store keeps that lead to the zone's journal (or serial) into it,
    /// oldest first; returns how many. Call it after the load, before transfers are served.
    pub async fn seed_journal(&self) -> Result<usize, StoreError> {
        let (Some(origin), Some(limits)) = (self.zone.journal_origin(), self.zone.journal_limits()) else {
            return Ok(0);
        };
        let rows = self.store.journal_rows(limits.entries).await?;
        let chain = chain_to(&rows, origin, limits.entries, limits.bytes);
        let (first, count) = (chain.first().map(|c| c.from), chain.len());
        let seeded = self.zone.seed_journal(chain);
        match first.filter(|_| seeded > 0) {
            Some(first) => {
                tracing::info!("IXFR journal: {seeded} steps from the database (serials {first} to {origin})")
            }
            None => tracing::info!(
                "IXFR journal: no steps from the database lead to serial {origin} ({count} found): \
                 secondaries behind it get the whole zone"
            ),
        }
        Ok(seeded)
    }
}

/// The chain of steps among `rows` that ends at serial `end`, oldest first, at most `entries`
/// steps and `bytes` bytes; it stops at a missing step or a row that does not decode.
fn chain_to(rows: &[JournalRow], end: u32, entries: usize, bytes: usize) -> Vec<Arc<Change>> {
    let by_end: std::collections::HashMap<u32, &JournalRow> = rows.iter().map(|r| (r.to, r)).collect();
    let (mut chain, mut size, mut at) = (Vec::new(), 0, end);
    while chain.len() < entries.min(rows.len()) {
        let Some(row) = by_end.get(&at) else { break };
        let Some(step) = Change::decode(&row.data).filter(|c| c.from == row.from && c.to == row.to) else {
            break;
        };
        size += step.size();
        if size > bytes {
            break;
        }
        at = step.from;
        chain.push(Arc::new(step));
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored step from `from` to `to` whose SOAs are TXT-shaped records (one each).
    fn row(from: u32, to: u32) -> JournalRow {
        let soa = b"\x00\x00\x10\x00\x01\x00\x00\x00\x01\x00\x01\x00".to_vec();
        let step = Change { from, to, old_soa: soa.clone(), deleted: vec![], new_soa: soa, added: vec![] };
        JournalRow { from, to, data: step.encode().unwrap() }
    }

    #[test]
    fn the_chain_ends_at_the_serial_and_stops_at_a_gap_or_a_bad_row() {
        let mut rows: Vec<JournalRow> =
            [(1, 2), (2, 3), (4, 5), (5, 6), (6, 7)].map(|(f, t)| row(f, t)).into();
        let serials = |chain: Vec<Arc<Change>>| chain.iter().map(|c| (c.from, c.to)).collect::<Vec<_>>();
        assert_eq!(serials(chain_to(&rows, 7, 10, 1 << 20)), [(4, 5), (5, 6), (6, 7)]);
        assert_eq!(serials(chain_to(&rows, 3, 10, 1 << 20)), [(1, 2), (2, 3)]);
        assert_eq!(serials(chain_to(&rows, 7, 2, 1 << 20)), [(5, 6), (6, 7)]);
        assert!(chain_to(&rows, 4, 10, 1 << 20).is_empty());
        rows[3].data.pop();
        assert_eq!(serials(chain_to(&rows, 7, 10, 1 << 20)), [(6, 7)]);
    }
}
