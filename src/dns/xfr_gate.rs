//! Bounds on zone transfers: how many run at once, in all and per client network, and how
//! much the refused ones may write to the log.
//!
//! Design note: a transfer costs a connection, its messages in flight and the CPU that renders
//! them, for as long as the secondary takes to read them. The TCP listener's caps count
//! connections, not transfers, and never close a connection that is answering; so transfers
//! get caps of their own ([`TransferLimits`], `[transfer] max_transfers` and
//! `max_transfers_per_network`), taken when a transfer starts and given back when it ends
//! ([`Permit`]). Over a cap the request is answered REFUSED at once and counted. Networks are
//! those of the rate limiter and the TCP listener (IPv4 /24, IPv6 /56), so one host cannot
//! take every transfer by changing its address.
//!
//! A refused request used to write a log line each: a client sending refused requests in a
//! loop wrote tens of thousands of lines a minute. Now the first refusal of a network writes
//! its line as before, and the others within [`SUMMARY_WINDOW`] are counted by reason and
//! written as one summary line when the window ends (on the next refusal after it, or by
//! [`Gate::flush`], which the TCP listener calls every few seconds). At most [`MAX_WINDOWS`]
//! networks are tracked; refusals from more are summed into one line for the rest.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::rrl::Network;

/// How long the refusals of one network are summed before their summary line.
pub(crate) const SUMMARY_WINDOW: Duration = Duration::from_secs(60);

/// How often a refusal looks for ended windows at most.
const SWEEP: Duration = Duration::from_secs(1);

/// Networks whose refusals are tracked one by one; the rest are summed together.
pub(crate) const MAX_WINDOWS: usize = 1024;

/// Transfers allowed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferLimits {
    /// In all (`transfer.max_transfers`).
    pub total: usize,
    /// Per client network (`transfer.max_transfers_per_network`).
    pub per_network: usize,
}

/// The transfers running now.
#[derive(Debug, Default)]
struct Running {
    /// In all.
    total: usize,
    /// Per client network (networks with none are absent).
    per_network: HashMap<Network, usize>,
}

/// Refusals of one network within its window.
#[derive(Debug)]
struct Window {
    /// When its first refusal was logged.
    started: Instant,
    /// The network as logs may show it.
    client: String,
    /// Refusals since, not logged yet, by reason.
    counts: BTreeMap<String, u64>,
}

/// Refusals not logged yet.
#[derive(Debug, Default)]
struct Refusals {
    /// Per network.
    windows: HashMap<Network, Window>,
    /// Refusals from networks beyond [`MAX_WINDOWS`], by reason, since `overflow_since`.
    overflow: BTreeMap<String, u64>,
    /// When the first of `overflow` came.
    overflow_since: Option<Instant>,
    /// When ended windows were last looked for.
    swept: Option<Instant>,
}

/// Transfers running and refusals to log; shared by every clone of the transfer settings.
#[derive(Debug, Default)]
pub struct Gate {
    /// The transfers running now.
    running: Mutex<Running>,
    /// Requests refused because a cap was reached, since the start.
    refused_busy: AtomicU64,
    /// Transfer requests over TCP since the start, by kind and outcome (for the metrics).
    pub(crate) outcomes: super::stats::TransferCounts,
    /// Refusals not logged yet.
    refusals: Mutex<Refusals>,
}

/// The gate is what runs, not what is configured: settings compare equal whatever their gates
/// hold, so a reload compares only the configuration (`daemon::reload`).
impl PartialEq for Gate {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A running transfer's place under the caps; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    /// The gate it counts in.
    gate: Arc<Gate>,
    /// Its client's network.
    network: Network,
}

/// Locks `mutex`, even if a panicking holder poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The summary line of refusals counted by reason.
fn summary(counts: &BTreeMap<String, u64>) -> (u64, String) {
    let total = counts.values().sum();
    let reasons: Vec<String> = counts.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
    (total, reasons.join("; "))
}

impl Gate {
    /// A place for a transfer from `network`, or `None` (counted) when a cap is reached.
    pub(super) fn admit(self: &Arc<Self>, network: Network, limits: TransferLimits) -> Option<Permit> {
        let mut running = lock(&self.running);
        let own = running.per_network.get(&network).copied().unwrap_or(0);
        if running.total >= limits.total.max(1) || own >= limits.per_network.max(1) {
            drop(running);
            self.refused_busy.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        running.total += 1;
        *running.per_network.entry(network).or_insert(0) += 1;
        Some(Permit { gate: Arc::clone(self), network })
    }

    /// Transfers running now.
    pub(crate) fn running(&self) -> usize {
        lock(&self.running).total
    }

    /// Requests refused because a cap was reached, since the start.
    pub(crate) fn refused_busy(&self) -> u64 {
        self.refused_busy.load(Ordering::Relaxed)
    }

    /// Logs a refused request from `network` (shown as `client`): the first of its window at
    /// once, the others counted for the window's summary line.
    pub(super) fn refused(&self, network: Network, client: &str, kind: &str, reason: &str) {
        self.refused_at(Instant::now(), network, client, kind, reason);
    }

    /// [`Self::refused`] at `now`; returns the lines logged (for tests).
    fn refused_at(
        &self,
        now: Instant,
        network: Network,
        client: &str,
        kind: &str,
        reason: &str,
    ) -> Vec<String> {
        // Ended windows are looked for at most once a second, not on every refusal of a flood.
        let due = lock(&self.refusals).swept.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP);
        let mut lines = if due { self.flush_at(now) } else { Vec::new() };
        let mut refusals = lock(&self.refusals);
        if let Some(window) = refusals.windows.get_mut(&network) {
            *window.counts.entry(reason.to_owned()).or_insert(0) += 1;
        } else if refusals.windows.len() >= MAX_WINDOWS {
            refusals.overflow_since.get_or_insert(now);
            *refusals.overflow.entry(reason.to_owned()).or_insert(0) += 1;
        } else {
            let window = Window { started: now, client: client.to_owned(), counts: BTreeMap::new() };
            refusals.windows.insert(network, window);
            lines.push(format!("{kind} from {client} refused: {reason}"));
            tracing::info!("{kind} from {client} refused: {reason}");
        }
        lines
    }

    /// Writes the summary lines of the windows that ended, and forgets them.
    pub(crate) fn flush(&self) {
        self.flush_at(Instant::now());
    }

    /// [`Self::flush`] at `now`; returns the lines logged.
    fn flush_at(&self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        let mut refusals = lock(&self.refusals);
        refusals.swept = Some(now);
        let ended = |started: Instant| now.saturating_duration_since(started) >= SUMMARY_WINDOW;
        refusals.windows.retain(|_, window| {
            if !ended(window.started) {
                return true;
            }
            if !window.counts.is_empty() {
                let (total, reasons) = summary(&window.counts);
                let secs = now.saturating_duration_since(window.started).as_secs();
                let line = format!(
                    "{total} more transfer requests from {} refused in the last {secs} s ({reasons})",
                    window.client
                );
                tracing::info!("{line}");
                lines.push(line);
            }
            false
        });
        if let Some(since) = refusals.overflow_since.filter(|&s| ended(s)) {
            let (total, reasons) = summary(&refusals.overflow);
            let secs = now.saturating_duration_since(since).as_secs();
            let line = format!(
                "{total} transfer requests from more than {MAX_WINDOWS} other networks refused in the \
                 last {secs} s ({reasons})"
            );
            tracing::info!("{line}");
            lines.push(line);
            refusals.overflow.clear();
            refusals.overflow_since = None;
        }
        lines
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = lock(&self.gate.running);
        running.total = running.total.saturating_sub(1);
        if let Some(count) = running.per_network.get_mut(&self.network) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.per_network.remove(&self.network);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The network of a test address.
    fn net(ip: &str) -> Network {
        Network::of(ip.parse().unwrap())
    }

    #[test]
    fn caps_count_in_all_and_per_network() {
        let gate = Arc::new(Gate::default());
        let limits = TransferLimits { total: 3, per_network: 2 };
        let a = gate.admit(net("192.0.2.1"), limits).unwrap();
        let _b = gate.admit(net("192.0.2.2"), limits).unwrap();
        assert!(gate.admit(net("192.0.2.3"), limits).is_none(), "a network at its cap");
        let _c = gate.admit(net("198.51.100.1"), limits).unwrap();
        assert!(gate.admit(net("203.0.113.1"), limits).is_none(), "every transfer taken");
        drop(a);
        assert!(gate.admit(net("192.0.2.9"), limits).is_some(), "a finished transfer gives its place back");
        assert_eq!((gate.refused_busy(), gate.running()), (2, 2));
    }

    #[test]
    fn refusals_are_one_line_then_one_summary_per_window() {
        let gate = Gate::default();
        let start = Instant::now();
        let (a, b) = (net("192.0.2.1"), net("198.51.100.1"));
        let mut lines = Vec::new();
        for i in 0..1000u64 {
            let at = start + Duration::from_millis(i);
            let reason = if i % 2 == 0 { "network not allowed" } else { "not our zone" };
            lines.extend(gate.refused_at(at, a, "192.0.2.0/24", "AXFR", reason));
        }
        lines.extend(gate.refused_at(start, b, "198.51.100.0/24", "IXFR", "not our zone"));
        assert_eq!(
            lines,
            [
                "AXFR from 192.0.2.0/24 refused: network not allowed",
                "IXFR from 198.51.100.0/24 refused: not our zone"
            ]
        );
        let later = start + SUMMARY_WINDOW;
        assert_eq!(
            gate.flush_at(later),
            [
                "999 more transfer requests from 192.0.2.0/24 refused in the last 60 s (network not allowed: 499; \
              not our zone: 500)"
            ]
        );
        let again = gate.refused_at(later, a, "192.0.2.0/24", "AXFR", "not our zone");
        assert_eq!(again, ["AXFR from 192.0.2.0/24 refused: not our zone"], "a new window");
    }

    #[test]
    fn networks_beyond_the_table_are_summed_together() {
        let gate = Gate::default();
        let start = Instant::now();
        let mut logged = 0;
        for i in 0..MAX_WINDOWS as u32 + 10 {
            let ip = std::net::Ipv4Addr::from(0x0A00_0000 + (i << 8));
            logged += gate.refused_at(start, Network::of(ip.into()), "x", "AXFR", "r").len();
        }
        assert_eq!(logged, MAX_WINDOWS);
        let lines = gate.flush_at(start + SUMMARY_WINDOW);
        assert!(lines.iter().any(|l| l.starts_with("10 transfer requests from more than")), "{lines:?}");
    }
}
