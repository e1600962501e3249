//! NOTIFY (RFC 1996): telling each configured secondary that the zone changed.
//!
//! Design note: one task per secondary, each watching the zone's serial through a
//! `tokio::sync::watch` channel. A watch channel keeps only the newest value, which is exactly
//! the coalescing wanted: however many updates land while a NOTIFY is outstanding, the
//! secondary gets one more NOTIFY afterwards, with the newest serial, never one per update. A
//! NOTIFY that is not acknowledged (no answer, an error rcode, an answer whose TSIG does not
//! verify) is sent again after 1 s, then 2, 4… up to [`MAX_BACKOFF`], until the secondary
//! answers; each retry carries the serial current at that moment, and a new serial ends the
//! wait at once and starts the back-off again from 1 s. Every task also notifies once
//! at start, so secondaries learn at once of a primary that restarted with a new serial.
//!
//! Messages are signed with the `[transfer]` key when one is configured (NSD and Knot reject
//! unsigned NOTIFY when their ACL names a key) and the answer's TSIG is checked. NOTIFY goes
//! over UDP even to secondaries that transfer over TLS (`xot`): RFC 9103 encrypts transfers,
//! not NOTIFY, which carries only the zone's name and serial, and BIND and NSD take it on UDP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::journal;
use super::stats::{DnsStats, NotifyOutcome, Secondary};
use super::transfers::Transfers;
use super::tsig::{self, TsigKey};
use super::zone::Zone;

/// Longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one attempt waits for the answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Opcode NOTIFY.
const OPCODE_NOTIFY: u8 = 4;

/// Why a NOTIFY was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    /// Sending or receiving failed (e.g. the port is closed).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())]
    Timeout,
    /// The secondary answered with an error.
    #[error("answered with rcode {0}")]
    Rcode(u8),
    /// The answer's TSIG is missing or wrong.
    #[error("{0}")]
    Tsig(#[from] tsig::AnswerError),
    /// The NOTIFY could not be signed (its TSIG record does not fit the message).
    #[error("cannot sign the NOTIFY: {0}")]
    Sign(#[from] super::wire::TooLong),
}

impl NotifyError {
    /// The outcome this failure is counted as.
    fn outcome(&self) -> NotifyOutcome {
        match self {
            Self::Io(_) => NotifyOutcome::Unreachable,
            Self::Timeout => NotifyOutcome::Timeout,
            Self::Rcode(_) => NotifyOutcome::ErrorRcode,
            Self::Tsig(_) | Self::Sign(_) => NotifyOutcome::BadTsig,
        }
    }
}

/// Starts one NOTIFY task per configured secondary; they end when `shutdown` changes. With
/// `stats`, each task records what its secondary acknowledged there.
pub(crate) fn spawn(
    transfers: &Transfers,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
    stats: Option<&DnsStats>,
) {
    spawn_to(transfers, &transfers.settings().notify, tasks, shutdown, stats);
}

/// Starts one NOTIFY task for each of `targets` (the daemon's reload starts a new set when
/// `transfer.notify` changes, after ending the old one through its `shutdown`).
pub(crate) fn spawn_to(
    transfers: &Transfers,
    targets: &[SocketAddr],
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
    stats: Option<&DnsStats>,
) {
    let serials = transfers.zone().serial_watch();
    for &target in targets {
        let zone = Arc::clone(transfers.zone());
        let key = transfers.settings().key.clone();
        let serials = serials.clone();
        let shutdown = shutdown.clone();
        let secondary = stats.map(|s| s.secondary(u64::from(super::zone::unix_now())));
        tasks.spawn(notify_secondary(zone, target, key, serials, shutdown, secondary));
    }
}

/// Notifies `target` of every serial change until shutdown.
async fn notify_secondary(
    zone: Arc<Zone>,
    target: SocketAddr,
    key: Option<Arc<TsigKey>>,
    mut serials: watch::Receiver<u32>,
    mut shutdown: watch::Receiver<bool>,
    secondary: Option<Arc<Secondary>>,
) {
    loop {
        let mut backoff = Duration::from_secs(1);
        let mut failures = 0u32;
        loop {
            // Mark the serial seen before sending: a change after this point wakes us again.
            serials.borrow_and_update();
            let result = notify_once(&zone, target, key.as_deref()).await;
            if let Some(secondary) = &secondary {
                secondary.notified(
                    result.as_ref().map_or_else(NotifyError::outcome, |_| NotifyOutcome::Acknowledged),
                );
            }
            match result {
                Ok(serial) => {
                    if let Some(secondary) = &secondary {
                        secondary.acknowledged(serial, zone.serial());
                    }
                    if failures > 0 {
                        tracing::info!(
                            "NOTIFY for serial {serial} acknowledged by {target} after {failures} retries"
                        );
                    } else {
                        tracing::debug!("NOTIFY for serial {serial} acknowledged by {target}");
                    }
                    break;
                }
                Err(error) => {
                    failures += 1;
                    // The first failures are common (a secondary restarting); say so once.
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!("NOTIFY to {target} not acknowledged ({error}); retrying");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(MAX_BACKOFF),
                // A new serial is news for the secondary: it is told at once, whatever back-off
                // an earlier serial was in (as BIND and Knot do), so a secondary that comes back
                // hears of the next change without waiting up to a minute.
                changed = serials.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    backoff = Duration::from_secs(1);
                }
                _ = shutdown.changed() => return,
            }
        }
        tokio::select! {
            changed = serials.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        if let Some(secondary) = &secondary {
            secondary.zone_changed(u64::from(super::zone::unix_now()));
        }
    }
}

/// Builds the NOTIFY message for the zone at its current SOA: the zone's SOA question and the
/// SOA itself in the answer section, as RFC 1996 section 3.7 allows, so the secondary can
/// compare serials without asking.
fn notify_message(zone: &Zone, id: u16) -> (u32, Vec<u8>) {
    let (serial, soa) = zone.soa_record();
    let id = id.to_be_bytes();
    // Opcode NOTIFY, AA set.
    let mut msg = vec![id[0], id[1], OPCODE_NOTIFY << 3 | 0x04, 0, 0, 1, 0, 1, 0, 0, 0, 0];
    msg.extend_from_slice(zone.apex_wire());
    msg.extend_from_slice(&super::wire::rtype::SOA.to_be_bytes());
    msg.extend_from_slice(&super::wire::CLASS_IN.to_be_bytes());
    for (_, tail) in journal::records(&soa) {
        msg.extend_from_slice(&[0xC0, 12]); // the owner is the question's name
        msg.extend_from_slice(tail);
    }
    (serial, msg)
}

/// A UDP socket connected to `target` and a random message ID: one question to a peer (a
/// NOTIFY here, an SOA query in `propagation`), answered on that socket alone.
pub(super) async fn peer_socket(target: SocketAddr) -> std::io::Result<(UdpSocket, u16)> {
    let local: SocketAddr =
        if target.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    let mut id = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| std::io::Error::other("no randomness for the message ID"))?;
    Ok((socket, u16::from_be_bytes(id)))
}

/// Waits until `deadline` for the answer to message `id` on `socket` (QR set, and `also`
/// holds for it) and returns its length in `buf`; `None` when the deadline passes. Anything
/// else arriving on the socket is ignored.
pub(super) async fn answer_to(
    socket: &UdpSocket,
    id: u16,
    deadline: tokio::time::Instant,
    buf: &mut [u8],
    also: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Option<usize>> {
    loop {
        let len = match tokio::time::timeout_at(deadline, socket.recv(buf)).await {
            Ok(result) => result?,
            Err(_) => return Ok(None),
        };
        let answer = &buf[..len];
        if len >= 12 && answer[..2] == id.to_be_bytes() && answer[2] & 0x80 != 0 && also(answer) {
            return Ok(Some(len));
        }
    }
}

/// Sends one NOTIFY to `target` and waits for its acknowledgement; returns the serial sent.
pub(crate) async fn notify_once(
    zone: &Zone,
    target: SocketAddr,
    key: Option<&TsigKey>,
) -> Result<u32, NotifyError> {
    let (socket, id) = peer_socket(target).await?;
    let (serial, mut msg) = notify_message(zone, id);
    let mac = key.map(|key| tsig::sign_request(key, &mut msg, tsig::now())).transpose()?;
    socket.send(&msg).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT;
    let is_notify = |answer: &[u8]| (answer[2] >> 3) & 0x0F == OPCODE_NOTIFY;
    let Some(len) = answer_to(&socket, id, deadline, &mut buf, is_notify).await? else {
        return Err(NotifyError::Timeout);
    };
    let answer = &buf[..len];
    let rcode = answer[3] & 0x0F;
    if let (Some(key), Some(mac)) = (key, &mac) {
        tsig::verify_answer(key, mac, answer)?;
    }
    if rcode != 0 {
        return Err(NotifyError::Rcode(rcode));
    }
    Ok(serial)
}
