//! The IXFR steps of a change the command line makes while no server runs.
//!
//! Design note: of the commands that write to the store, one changes what DNS serves without
//! erasing anything: `import-acme-dns` (a version per batch of accounts). It loads the zone
//! before its change and keeps the steps after it (`zone_sync::offline`), so that a server started
//! next answers every secondary's IXFR with them instead of the whole zone. `account delete`
//! is an erasure and empties the stored journal on purpose; `dnssec rollover` and `ds-seen`
//! only record a request or a fact, and the running server takes the step (a version whose
//! step it stores itself); the other commands only read. Only with `[transfer]` on, where a
//! server keeps steps too. A failure here never fails the command: the change is in the
//! store, and it only costs a full transfer at the next start, which is said on stderr.

use crate::config::Config;
use crate::store::Store;
use crate::zone_sync::ZoneSync;
use crate::zone_sync::offline::Kept;

/// Before a change: the zone of `config` loaded at the store's version, with `[transfer]` on
/// (`None` without, or when it could not be loaded, which is said on stderr).
pub(super) async fn before_change(config: &Config, store: &Store) -> Option<ZoneSync> {
    config.transfer.as_ref()?;
    let loaded = async {
        let sync = crate::daemon::open_zone(config, store).await.map_err(|e| e.to_string())?.sync;
        sync.load_before_change().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(sync)
    };
    match loaded.await {
        Ok(sync) => Some(sync),
        Err(error) => {
            eprintln!(
                "acme-delegate: could not load the zone to keep this change's IXFR steps ({error}): \
                 secondaries behind it get the whole zone from the next server start"
            );
            None
        }
    }
}

/// After the change: keeps its steps in the store; returns the line that says what was kept,
/// if anything changed (a failure is said on stderr).
pub(super) async fn after_change(loaded: Option<ZoneSync>) -> Option<String> {
    let kept = match loaded?.keep_offline_change().await {
        Ok(kept) => kept,
        Err(error) => {
            eprintln!(
                "acme-delegate: could not keep this change's IXFR steps ({error}): secondaries \
                 behind it get the whole zone from the next server start"
            );
            return None;
        }
    };
    match kept {
        Kept::Nothing => None,
        Kept::LargerThanZone { logged, names } => Some(format!(
            "Zone transfers: {logged} names changed, more than the {names} the zone held, so no IXFR \
             steps are kept: secondaries get the whole zone from the next server start."
        )),
        Kept::Steps { from, to, stored, lost } => {
            if lost > 0 {
                eprintln!(
                    "acme-delegate: {lost} IXFR steps of this change could not be kept: secondaries \
                     behind them get the whole zone from the next server start"
                );
            }
            Some(format!(
                "Zone transfers: IXFR steps kept: {stored}, serial {from} to {to}; a server started next \
                 sends this change to secondaries incrementally."
            ))
        }
    }
}
