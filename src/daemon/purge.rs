//! The retention purge's loop: removes what is past retention, at the interval the privacy
//! settings in force give.
//!
//! Design note: the settings come from the reloader (a SIGHUP may change the retention or the
//! interval), so each round reads them anew, and a reload starts a round at once. The cuts are
//! the store's time (see [`purge`]).

use tokio::sync::watch;

use crate::privacy::Privacy;
use crate::store::PurgeRules;
use crate::zone_sync::{SyncError, ZoneSync};

/// Runs the purge now and then every `purge_interval` of the settings in force, until
/// `shutdown` changes; a change of the settings runs it again at once.
pub(super) async fn run(
    sync: ZoneSync,
    mut privacy_rx: watch::Receiver<Privacy>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // The settings in force now: a reload may have changed them since the last run.
        let privacy = privacy_rx.borrow().clone();
        if let Err(error) = purge(&sync, &privacy).await {
            tracing::warn!("retention purge failed (retried later): {error}");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(privacy.purge_interval)) => {}
            // A reload: run with the new retention now, and wait the new interval.
            _ = privacy_rx.changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Removes what is past retention, and stops serving what was removed.
///
/// Safe with several instances on one database: each deletion is idempotent, and the other
/// instances hear of the changes through the change feed. The cuts are taken from the store's
/// time, and an instance whose clock is off runs none (`zone_sync::clock`): it would delete what
/// is fresh for every instance, or keep what is due.
async fn purge(sync: &ZoneSync, privacy: &Privacy) -> Result<(), SyncError> {
    let (time, skew) = sync.shared_time(true).await?;
    if let Some(skew) = skew {
        crate::metrics::counters::clock_refusal("purge");
        tracing::warn!("retention purge skipped: {skew}");
        return Ok(());
    }
    let now = time.now;
    let age = |seconds: u64| now.saturating_sub(i64::try_from(seconds).unwrap_or(i64::MAX));
    let rules = PurgeRules {
        now,
        audit_before: age(privacy.audit_retention),
        txt_before: age(privacy.txt_retention),
        unused_before: privacy.account_expiry.map(age),
    };
    let purged = sync.purge(rules).await?;
    if purged.audit_entries + purged.txt_cleared.len() + purged.accounts_expired.len() > 0 {
        tracing::info!(
            "retention: removed {} audit entries, cleared old TXT values of {} subdomains, deleted {} unused accounts",
            purged.audit_entries,
            purged.txt_cleared.len(),
            purged.accounts_expired.len()
        );
    }
    if !purged.persist_expired.is_empty() {
        let accounts = purged.persist_expired.len();
        tracing::info!(
            "retention: removed dns-persist-01 records past their persistUntil from {accounts} accounts"
        );
    }
    Ok(())
}
