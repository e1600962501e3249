//! Asking secondaries which serial they serve: for acknowledging an update only once every
//! notified secondary has it (`[transfer] wait_for_secondaries = "all"`), and for the client's
//! `check` report.
//!
//! Design note: the one question that tells whether a secondary caught up is its SOA serial,
//! asked the way any resolver would (a plain SOA query over UDP, no TSIG: secondaries answer
//! it to everyone). Serials compare in RFC 1982 arithmetic, so a secondary ahead of the serial
//! waited for (another update landed meanwhile) counts as caught up. Each secondary is polled
//! on its own task until it serves the serial or the deadline passes; the caller gets how long
//! each took (the lag the server records), and which did not in time, to name in its warning.

use std::net::SocketAddr;
use std::time::Duration;

use super::notify;
use super::wire::{self, CLASS_IN, rtype};

/// How long one SOA query waits for its answer before it is sent again.
const ATTEMPT: Duration = Duration::from_millis(500);
/// The pause between two polls of a secondary that is still behind.
const POLL: Duration = Duration::from_millis(50);

/// Why a secondary's serial could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SerialError {
    /// Sending or receiving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("no answer")]
    Timeout,
    /// The answer has an error rcode, or no SOA for the zone.
    #[error("no SOA in the answer (rcode {0})")]
    NoSoa(u8),
    /// The answer has an error rcode, or cannot be read.
    #[error("no usable answer (rcode {0})")]
    Rcode(u8),
}

/// Whether serial `have` is at or past `want` (RFC 1982).
pub(crate) fn serial_reached(have: u32, want: u32) -> bool {
    want.wrapping_sub(have) as i32 <= 0
}

/// An SOA query for `apex` (wire form) with message ID `id`.
fn soa_query(apex: &[u8], id: u16) -> Vec<u8> {
    query(apex, rtype::SOA, id)
}

/// A query for `qtype` at `name` (wire form) with message ID `id`, no recursion asked.
fn query(name: &[u8], qtype: u16, id: u16) -> Vec<u8> {
    let id = id.to_be_bytes();
    let mut msg = vec![id[0], id[1], 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(name);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    msg
}

/// The serial of the first SOA record in the answer section of `msg`, if any (the message
/// must walk cleanly to its end).
pub(crate) fn answer_serial(msg: &[u8]) -> Option<u32> {
    let [_, answers, ..] = wire::counts(msg).ok()?;
    let records = wire::records(msg).ok()?;
    let soa = records.iter().take(usize::from(answers)).find(|r| r.rtype == rtype::SOA)?;
    // MNAME, RNAME, then the serial.
    let at = wire::skip_name(msg, wire::skip_name(msg, soa.data.start).ok()?).ok()?;
    (at + 4 <= soa.data.end).then(|| wire::u32_at(msg, at)).flatten()
}

/// The rdata of every record of type `qtype` in the answer section of `msg` (the message must
/// walk cleanly to its end).
pub(crate) fn answer_rdatas(msg: &[u8], qtype: u16) -> Option<Vec<Vec<u8>>> {
    let [_, answers, ..] = wire::counts(msg).ok()?;
    let records = wire::records(msg).ok()?;
    Some(
        records
            .iter()
            .take(usize::from(answers))
            .filter(|r| r.rtype == qtype)
            .map(|r| msg[r.data.clone()].to_vec())
            .collect(),
    )
}

/// Asks a server of the parent zone, `target`, once for the DS set of `apex` (wire form), as
/// a rollover checks that the parent names the new key; waits at most `limit`. An empty set
/// is an answer (the parent holds no DS).
pub(crate) async fn ds_set(
    apex: &[u8],
    target: SocketAddr,
    limit: Duration,
) -> Result<Vec<Vec<u8>>, SerialError> {
    const DS: u16 = 43;
    let (socket, id) = notify::peer_socket(target).await?;
    socket.send(&query(apex, DS, id)).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    let Some(len) = notify::answer_to(&socket, id, deadline, &mut buf, |_| true).await? else {
        return Err(SerialError::Timeout);
    };
    let answer = &buf[..len];
    let rcode = answer[3] & 0x0F;
    match answer_rdatas(answer, DS) {
        Some(set) if rcode == 0 => Ok(set),
        _ => Err(SerialError::Rcode(rcode)),
    }
}

/// Asks `target` once for the SOA of `apex` (wire form); waits at most `limit`.
pub(crate) async fn soa_serial(apex: &[u8], target: SocketAddr, limit: Duration) -> Result<u32, SerialError> {
    let (socket, id) = notify::peer_socket(target).await?;
    socket.send(&soa_query(apex, id)).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    let Some(len) = notify::answer_to(&socket, id, deadline, &mut buf, |_| true).await? else {
        return Err(SerialError::Timeout);
    };
    let answer = &buf[..len];
    let rcode = answer[3] & 0x0F;
    match answer_serial(answer) {
        Some(serial) if rcode == 0 => Ok(serial),
        _ => Err(SerialError::NoSoa(rcode)),
    }
}

/// Waits until every one of `secondaries` serves `serial` (or later) for `apex`, or until
/// `timeout`; returns each secondary with how long it took to serve it (`None`: not in time),
/// in address order.
pub(crate) async fn wait_for_serial(
    apex: &[u8],
    secondaries: &[SocketAddr],
    serial: u32,
    timeout: Duration,
) -> Vec<(SocketAddr, Option<Duration>)> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut waits = tokio::task::JoinSet::new();
    for &target in secondaries {
        let apex = apex.to_vec();
        waits.spawn(async move {
            let caught_up = async {
                loop {
                    if let Ok(have) = soa_serial(&apex, target, ATTEMPT).await
                        && serial_reached(have, serial)
                    {
                        return started.elapsed();
                    }
                    tokio::time::sleep(POLL).await;
                }
            };
            (target, tokio::time::timeout_at(deadline, caught_up).await.ok())
        });
    }
    let mut times = Vec::with_capacity(secondaries.len());
    while let Some(done) = waits.join_next().await {
        if let Ok(time) = done {
            times.push(time);
        }
    }
    times.sort();
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_in_rfc_1982_arithmetic() {
        assert!(serial_reached(5, 5) && serial_reached(6, 5) && !serial_reached(4, 5));
        assert!(serial_reached(2, u32::MAX), "past the wrap");
        assert!(!serial_reached(u32::MAX, 2));
    }

    #[test]
    fn the_serial_is_read_through_compressed_names() {
        let apex = b"\x04auth\x07example\x00";
        let mut msg = soa_query(apex, 7);
        msg[2] = 0x84;
        msg[7] = 1; // one answer
        msg.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 28]);
        msg.extend_from_slice(&[3, b'n', b's', b'1', 0xC0, 12, 0xC0, 12]);
        msg.extend_from_slice(&[0, 0, 0, 42]);
        msg.extend_from_slice(&[0; 16]);
        assert_eq!(answer_serial(&msg), Some(42));
        assert_eq!(answer_serial(&msg[..msg.len() - 18]), None, "cut short");
        assert_eq!(answer_serial(&soa_query(apex, 1)), None);
    }
}
