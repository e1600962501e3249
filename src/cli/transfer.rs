//! `acme-delegate transfer status`: where each secondary stands, asked now.
//!
//! Design note: the command needs no running server. It reads the zone's version and the time
//! of each change from the store, and asks every secondary in `[transfer] notify` for its SOA
//! serial the way `wait_for_secondaries` does (a plain SOA query over UDP). A secondary behind
//! is reported by how many changes it lacks and since when it has lacked the first of them,
//! which is the lag a CA asking that server would see. Serials compare in RFC 1982 arithmetic.
//! Then the history: each secondary's lag over the last updates (up to 100), as the servers
//! recorded it while waiting for the secondaries (`store::lag`), its median and largest, and
//! the slowest secondary by the updates it missed within `wait_timeout`, then by its largest.

use std::time::Duration;

use clap::Subcommand;

use crate::config::Config;
use crate::dns::propagation::{serial_reached, soa_serial};
use crate::store::lag::Lag;

/// `transfer` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum TransferAction {
    /// Ask every secondary in `[transfer] notify` for its SOA serial now, and print the zone's
    /// serial and, for each secondary, whether it is up to date or how many changes it lacks and
    /// for how long; then each one's lag over the last updates (up to 100; recorded with
    /// wait_for_secondaries = "all"), p50 and max, and the slowest. Exits 1 when any secondary is
    /// behind or does not answer.
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
        let lags = store.lags().await.map_err(|e| e.to_string())?;
        history(&notify, &lags);
        if trouble > 0 {
            return Err(format!("{trouble} of {} secondaries behind or not answering", notify.len()));
        }
        Ok(())
    })
}

/// One secondary's lags over the updates recorded: the median and the largest (milliseconds;
/// `None`: at least half, or the largest, not within `wait_timeout`), and how many were not.
fn summary(millis: &[Option<u64>]) -> (Option<u64>, Option<u64>, usize) {
    // Not in time sorts after every time.
    let mut sorted: Vec<u64> = millis.iter().map(|m| m.unwrap_or(u64::MAX)).collect();
    sorted.sort_unstable();
    let real = |ms: u64| (ms != u64::MAX).then_some(ms);
    let median = sorted.get(sorted.len().saturating_sub(1) / 2).copied().and_then(real);
    let max = sorted.last().copied().and_then(real);
    (median, max, millis.iter().filter(|m| m.is_none()).count())
}

/// Prints, for each notified secondary, its lag over the last updates the servers recorded
/// (`wait_for_secondaries = "all"` records them), and names the slowest.
fn history(notify: &[std::net::SocketAddr], lags: &[Lag]) {
    let show = |ms: Option<u64>| ms.map_or_else(|| "over wait_timeout".to_owned(), |ms| format!("{ms} ms"));
    let mut slowest: Option<(String, (usize, u64))> = None;
    for target in notify {
        let name = target.to_string();
        let millis: Vec<Option<u64>> =
            lags.iter().filter(|l| l.secondary == name).map(|l| l.millis).collect();
        if millis.is_empty() {
            println!("{name}: no lag recorded (updates record it with wait_for_secondaries = \"all\")");
            continue;
        }
        let (median, max, missed) = summary(&millis);
        let late = if missed > 0 { format!(", {missed} not within wait_timeout") } else { String::new() };
        println!(
            "{name}: lag over the last {} updates: p50 {}, max {}{late}",
            millis.len(),
            show(median),
            show(max)
        );
        let rank = (missed, max.unwrap_or(u64::MAX));
        if slowest.as_ref().is_none_or(|(_, worst)| rank > *worst) {
            slowest = Some((name, rank));
        }
    }
    if let Some((name, _)) = slowest.filter(|_| notify.len() > 1) {
        println!("slowest over the last updates: {name}");
    }
}
