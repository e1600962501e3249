//! Waiting for the secondaries after an update, and keeping how long each took.
//!
//! Design note: with `[transfer] wait_for_secondaries = "all"` an update is answered once every
//! notified secondary serves it (or at `wait_timeout`), so the wait measures each secondary's
//! lag for that update, from this server serving it to the secondary serving it. The lags go
//! to the store (`store::lag`, the newest 100 per secondary) for `transfer status`, in a task
//! of its own after the wait: the update's answer never waits for that write, and a failed
//! write only leaves a gap in the history (logged at debug level).

use super::ZoneSync;
use crate::dns::propagation;
use crate::store::lag::Lag;

impl ZoneSync {
    /// With `[transfer] wait_for_secondaries = "all"`: waits until every notified secondary
    /// serves the zone's serial (or a later one), or until the timeout, then warns naming the
    /// ones behind, and keeps each one's lag. The update is committed and served here either
    /// way: the wait only delays the answer, so that an ACME client that asks the CA at once
    /// does not race the transfer.
    pub(super) async fn wait_for_secondaries(&self) {
        let Some(settings) = self.transfers.as_ref().map(|t| t.settings()) else { return };
        let Some(timeout) = settings.wait else { return };
        let serial = self.zone.serial();
        let times =
            propagation::wait_for_serial(self.zone.apex_wire(), &settings.notify, serial, timeout).await;
        let behind: Vec<String> =
            times.iter().filter(|(_, time)| time.is_none()).map(|(target, _)| target.to_string()).collect();
        if !behind.is_empty() {
            tracing::warn!(
                "answered the update after {} s without every secondary serving serial {serial}: {} behind",
                timeout.as_secs(),
                behind.join(", ")
            );
        }
        let lags = times
            .into_iter()
            .map(|(target, time)| Lag {
                secondary: target.to_string(),
                millis: time.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect();
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.record_lags(serial, lags).await {
                tracing::debug!("could not keep the secondaries' lag for serial {serial}: {error}");
            }
        });
    }
}
