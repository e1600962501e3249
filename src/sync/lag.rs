//! Waiting for the secondaries after an update.
//!
//! Design note: with `[transfer] wait_for_secondaries = "all"` an update is answered once every
//! notified secondary serves it (or at `wait_timeout`), so that a CA asking any of them right
//! after the answer finds the value.

use super::ZoneSync;
use crate::dns::propagation;

impl ZoneSync {
    /// With `[transfer] wait_for_secondaries = "all"`: waits until every notified secondary
    /// serves the zone's serial (or a later one), or until the timeout, then warns naming the
    /// ones behind. The update is committed and served here either way: the wait only delays
    /// the answer, so that an ACME client that asks the CA at once does not race the transfer.
    pub(super) async fn wait_for_secondaries(&self) {
        let Some(settings) = self.transfers.as_ref().map(|t| t.settings()) else { return };
        let Some(timeout) = settings.wait else { return };
        let serial = self.zone.serial();
        let behind =
            propagation::wait_for_serial(self.zone.apex_wire(), &settings.notify, serial, timeout).await;
        if !behind.is_empty() {
            let behind: Vec<String> = behind.iter().map(ToString::to_string).collect();
            tracing::warn!(
                "answered the update after {} s without every secondary serving serial {serial}: {} behind",
                timeout.as_secs(),
                behind.join(", ")
            );
        }
    }
}
