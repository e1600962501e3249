//! A change made by a command while no server runs, kept as IXFR steps all the same.
//!
//! Design note: a running server keeps the step of each version it commits in the store
//! (`journal.rs`), and a start seeds its journal with them. A command that changes what DNS
//! serves with no server running (`import-acme-dns`) left no step, so the next transfer to
//! every secondary was the whole zone. Such a command now does what a server would have done.
//! Before its change it loads the zone the store's version serves exactly as a start does (the
//! same key set, the signatures kept in the store, the same epoch; but it renews nothing,
//! which would be a change of its own); after it, it catches that zone up with the log, one
//! commit per version, and stores each commit's difference. Every instance serves the same
//! zone at each serial (signatures are deterministic), so the steps are the ones a server would
//! have stored, and the chain goes on from the last step a server kept. The signatures made
//! on the way are kept too, so the next start reads them instead of signing.
//!
//! Cost: the load is a start's (at a million names about 10 s and 800 MB signed with the kept
//! signatures, 3 s unsigned), once per command. So the command does this only with
//! `[transfer]` on (only then does a server keep steps), and no catch-up is made when the
//! change logged more names than the zone held before it: that IXFR would be larger than the
//! zone, which a secondary is sent instead (a first import into an empty store, say).
//!
//! Erasures are left as they are: they empty the stored journal on purpose (a step holds the
//! records it removed). A catch-up that meets one forgets the steps before it, as a server's
//! does; and one committed by a server running beside the command while the steps were being
//! stored empties the journal again once they are.

use super::{SyncError, ZoneSync, journal};

/// What [`ZoneSync::keep_offline_change`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Nothing changed what DNS serves.
    Nothing,
    /// The change logged more names than the zone held: no step (see the module note).
    LargerThanZone {
        /// Names the change logged.
        logged: u64,
        /// Names the zone held before it.
        names: usize,
    },
    /// The steps from serial `from` to serial `to`.
    Steps {
        /// The serial before the change.
        from: u32,
        /// The serial after it.
        to: u32,
        /// Steps stored.
        stored: usize,
        /// Steps that could not be stored (or were too large for the journal).
        lost: usize,
    },
}

impl ZoneSync {
    /// Before a command's change: loads the zone the store's version serves, as a start does
    /// but renewing no signature.
    pub(crate) async fn load_before_change(&self) -> Result<(), SyncError> {
        self.load(false).await.map(drop)
    }

    /// After a command's change: applies what the store logged since the load to the zone,
    /// stores the steps (and the signatures made) and waits until they are stored.
    pub(crate) async fn keep_offline_change(&self) -> Result<Kept, SyncError> {
        let (loaded, from) = {
            let applied = self.applied.lock().await;
            (applied.version, applied.serial_of(applied.version))
        };
        let logged = self.store.zone_log_rows_since(loaded).await?;
        let names = self.zone.subdomain_count();
        if logged == 0 {
            return Ok(Kept::Nothing);
        }
        if logged > names as u64 {
            return Ok(Kept::LargerThanZone { logged, names });
        }
        self.catch_up(None).await?;
        let tally = self.journal_flushed().await;
        if self.zone.is_signed() {
            // Kept for the next start; removing other epochs' rows is the servers' work.
            self.keep_new_signatures(&mut Some(self.zone.epoch())).await?;
        }
        let reached = self.applied.lock().await.version;
        let since = self.store.zone_log_since(reached).await?;
        if since.iter().any(journal::erases) {
            self.store.prune_journal(0).await?;
        }
        let to = self.zone.serial();
        Ok(Kept::Steps { from, to, stored: tally.stored, lost: tally.lost })
    }
}
