//! One time for what the instances share, and this instance's clock compared with it.
//!
//! Design note: what every instance on one database shares (the signing epoch, which sets the
//! validity of every signature; the purge, which deletes TXT values and accounts for all of
//! them) takes its time from the store (`store::version::time`: PostgreSQL's clock; on SQLite
//! the host's, never going back), not from the clock of whichever instance happens to act. Each time it reads
//! that time, an instance compares its own clock with it. Beyond `[general] max_clock_skew`,
//! its clock is wrong (or the database's is) and it refuses the shared decisions until they
//! agree again: it records no signing epoch and runs no purge, and says so in its log (when
//! the difference appears and at each refusal), in `/ready` (503 `clock_skew`) and in the
//! metrics. It goes on serving and applying what the others record.
//!
//! An epoch ahead of the store's time (recorded by an instance of an older version with a
//! wrong clock, or by hand) is refused by every reader: its signatures would begin in the
//! future and validators would reject the zone until then. The zone keeps signing with the
//! epoch it had, and an instance whose clock agrees with the store records a correct epoch at
//! once (`ZoneSync::refresh_signatures`), which every instance then applies: the zone recovers
//! in seconds instead of waiting out the difference.
//!
//! On PostgreSQL every instance checks the server's clock with its own: a wrong server clock
//! makes them all refuse until it is set right, and then they agree again by themselves. On
//! SQLite the host's clock is the only one, so the store's time never goes back: a host whose
//! clock went back finds itself behind the store's and refuses. Where the newest time recorded
//! is itself wrong (the clock ran ahead and was set right), the operator clears it (README,
//! "Clocks").

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

use crate::store::StoreTime;

/// This instance's clock differs from the store's by more than the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    /// This instance's clock minus the store's, in seconds.
    pub seconds: i64,
    /// `[general] max_clock_skew`, in seconds.
    pub bound: u64,
}

impl std::fmt::Display for Skew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let way = if self.seconds > 0 { "ahead of" } else { "behind" };
        write!(
            f,
            "this instance's clock is {} s {way} the database's time (more than [general] max_clock_skew, {} s)",
            self.seconds.unsigned_abs(),
            self.bound
        )
    }
}

/// What this instance knows of its clock and of the store's epoch; shared by the clones of
/// `ZoneSync`.
#[derive(Debug)]
pub(crate) struct Clock {
    /// `[general] max_clock_skew`, in seconds.
    bound: u64,
    /// Own clock minus the store's at the last comparison.
    skew: AtomicI64,
    /// Whether the last comparison found the difference beyond the bound (for the log: it says
    /// so when this changes).
    skewed: AtomicBool,
    /// The epoch in the future last refused (0: none since a good one was applied).
    refused: AtomicU32,
}

impl Clock {
    /// No comparison yet; `bound` is `[general] max_clock_skew`.
    pub(crate) fn new(bound: u64) -> Self {
        Self { bound, skew: AtomicI64::new(0), skewed: AtomicBool::new(false), refused: AtomicU32::new(0) }
    }

    /// Compares `own` (this instance's clock) with the store's time; `Some` when they differ by
    /// more than the bound. Logs when that changes, and keeps the difference for the metrics.
    pub(crate) fn compare(&self, own: i64, store: &StoreTime) -> Option<Skew> {
        let seconds = own.saturating_sub(store.now);
        self.skew.store(seconds, Ordering::Relaxed);
        crate::metrics::counters::clock_skew(seconds);
        let skew = (seconds.unsigned_abs() > self.bound).then_some(Skew { seconds, bound: self.bound });
        let was = self.skewed.swap(skew.is_some(), Ordering::Relaxed);
        match skew {
            Some(skew) if !was => tracing::error!(
                "{skew}: this instance records no signing epoch and runs no retention purge until \
                 the clocks agree (fix this host's or the database's time)"
            ),
            None if was => tracing::info!(
                "this instance's clock agrees with the database's again ({seconds} s apart): it records \
                 signing epochs and runs the retention purge again"
            ),
            _ => {}
        }
        skew
    }

    /// The difference found by the last comparison, when beyond the bound.
    pub(crate) fn skew(&self) -> Option<Skew> {
        let seconds = self.skew.load(Ordering::Relaxed);
        self.skewed.load(Ordering::Relaxed).then_some(Skew { seconds, bound: self.bound })
    }

    /// Whether `epoch` lies ahead of the store's time `now` (by more than the bound, which
    /// allows for an instance of an older version whose clock is a little ahead).
    pub(crate) fn in_future(&self, epoch: u32, now: i64) -> bool {
        i64::from(epoch) > now.saturating_add(i64::try_from(self.bound).unwrap_or(i64::MAX))
    }

    /// Records that `epoch`, ahead of the store's time `now`, was refused; logs the first
    /// refusal of each such epoch.
    pub(crate) fn refuse(&self, epoch: u32, now: i64) {
        crate::metrics::counters::clock_refusal("apply_epoch");
        if self.refused.swap(epoch, Ordering::Relaxed) != epoch {
            tracing::error!(
                "refused the signing epoch {epoch} recorded in the database: it is {} s ahead of the \
                 database's time, so its signatures would begin in the future; signing on with the \
                 epoch held, and recording a correct one",
                i64::from(epoch) - now
            );
        }
    }

    /// Records that a good epoch was applied.
    pub(crate) fn accepted(&self) {
        self.refused.store(0, Ordering::Relaxed);
    }

    /// The epoch in the future refused last, unless a good one was applied since.
    pub(crate) fn refused(&self) -> Option<u32> {
        Some(self.refused.load(Ordering::Relaxed)).filter(|&e| e != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_beyond_the_bound_either_way_is_a_skew() {
        let clock = Clock::new(60);
        let store = StoreTime { now: 1_000_000, epoch: 0 };
        assert_eq!(clock.compare(1_000_060, &store), None);
        assert_eq!(clock.compare(999_940, &store), None);
        assert_eq!(clock.compare(1_000_061, &store), Some(Skew { seconds: 61, bound: 60 }));
        assert_eq!(clock.skew(), Some(Skew { seconds: 61, bound: 60 }));
        assert!(clock.compare(999_000, &store).unwrap().to_string().contains("1000 s behind"));
        assert_eq!(clock.compare(1_000_000, &store), None);
        assert_eq!(clock.skew(), None);
    }

    #[test]
    fn an_epoch_is_in_the_future_only_beyond_the_bound() {
        let clock = Clock::new(60);
        assert!(!clock.in_future(1_000_060, 1_000_000));
        assert!(clock.in_future(1_000_061, 1_000_000));
        clock.refuse(1_000_061, 1_000_000);
        assert_eq!(clock.refused(), Some(1_000_061));
        clock.accepted();
        assert_eq!(clock.refused(), None);
    }
}
