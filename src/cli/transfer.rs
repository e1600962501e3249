//! `acme-delegate transfer status`: where each secondary stands, asked now.
//!
//! Design note: the command needs no running server. It reads the zone's version and the time
//! of each change from the store, and asks every secondary in `[transfer] notify` for its SOA
//! serial the way `wait_for_secondaries` does (a plain SOA query over UDP). A secondary behind
//! is reported by how many changes it lacks and since when it has lacked the first of them,
//! which is the lag a CA asking that server would see. Serials compare in RFC 1982 arithmetic.

use std::time::Duration;

use clap::Subcommand;

use crate::config::Config;
use crate::dns::propagation::{serial_reached, soa_serial};

/// `transfer` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum TransferAction {
    /// Ask every secondary in `[transfer] notify` for its SOA serial now, and print the zone's
    /// serial and, for each secondary, whether it is up to date or how many changes it lacks and
    /// for how long. Exits 1 when any secondary is behind or does not answer.
    Status,
}

/// How long each secondary gets to answer.
const ASK_LIMIT: Duration = Duration::from_secs(2);

/// Prints the zone's serial and each notified secondary's: up to date, behind (by how many
/// changes and for how long), or not answering. Fails (exit 1) when any secondary is behind
/// or silent, so it serves as a monitoring check.
pub(super) fn status(config: &Config) -> Result<(), String> {
    let Some(transfer) = &config.transfer else {
        return Err("[transfer] is not configured: this server has no secondaries".into());
    };
    let apex = config.dns.zone.apex.trim_end_matches('.').to_ascii_lowercase();
    let apex_wire = crate::dns::records::name_to_wire(&apex).map_err(|e| e.to_string())?;
    let notify = transfer.notify.clone();
    super::block_on(async move {
        let store = super::open_store(config).await?;
        let version = store.zone_version().await.map_err(|e| e.to_string())?;
        let serial = version.serial();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        println!("zone {apex}: serial {serial} (store version {})", version.version);
        if notify.is_empty() {
            println!("no secondaries in [transfer] notify");
            return Ok(());
        }
        let mut asks = tokio::task::JoinSet::new();
        for (index, target) in notify.iter().copied().enumerate() {
            let apex_wire = apex_wire.clone();
            asks.spawn(async move { (index, target, soa_serial(&apex_wire, target, ASK_LIMIT).await) });
        }
        let mut answers = Vec::new();
        while let Some(done) = asks.join_next().await {
            answers.push(done.map_err(|e| e.to_string())?);
        }
        answers.sort_by_key(|(index, ..)| *index);
        let mut trouble = 0;
        for (_, target, answer) in answers {
            let line = match answer {
                Ok(have) if serial_reached(have, serial) => format!("serial {have}, up to date"),
                Ok(have) => {
                    trouble += 1;
                    let missing = serial.wrapping_sub(have);
                    let behind_version = version.version.saturating_sub(u64::from(missing));
                    let since = store.first_change_after(behind_version).await.map_err(|e| e.to_string())?;
                    match since {
                        Some(at) => format!(
                            "serial {have}, {missing} changes behind, missing changes for {} s",
                            now.saturating_sub(at).max(0)
                        ),
                        None => format!("serial {have}, {missing} changes behind"),
                    }
                }
                Err(error) => {
                    trouble += 1;
                    format!("no serial: {error}")
                }
            };
            println!("{target}: {line}");
        }
        if trouble > 0 {
            return Err(format!("{trouble} of {} secondaries behind or not answering", notify.len()));
        }
        Ok(())
    })
}
