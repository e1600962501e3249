//! Zone transfers to secondaries: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP, IXFR over UDP,
//! and TSIG (RFC 8945) on every answer to a signed request.
//!
//! Design note: this module decides and writes; the zone only supplies data. A transfer
//! request is judged in a fixed order, each step with its own answer: a TSIG that does not
//! verify gets NOTAUTH with the TSIG error (and no data); a malformed transfer question
//! (class not IN, IXFR without the client's SOA in the authority section) FORMERR; another
//! zone NOTAUTH; a client outside `allow_transfer`, or one without the key when a key is
//! configured, REFUSED; and when as many transfers run as `max_transfers` (in all or for the
//! client's network) allow, REFUSED too ([`crate::dns::xfr_gate`]). Refusals are logged with the
//! client's network as the privacy setting allows, never the key's secret: the first of a
//! network at once, the rest summed into one line a minute.
//!
//! An accepted AXFR never copies the zone: it walks it ([`Zone::walk`]), a chunk of names at a
//! time under the read lock, and every AXFR at one serial shares the list of names to walk. So
//! a transfer holds a chunk and one message at a time, and thirty of them cost thirty messages,
//! not thirty zones. An IXFR takes its journal entries (shared) in one short read lock, and
//! the transfer service decides whether they or the whole zone are sent
//! ([`Transfers::ixfr_plan`]). Messages are at most [`MESSAGE_LIMIT`] bytes with name compression,
//! each signed when the request was, and each must be taken by the client within the TCP idle
//! timeout, or the transfer ends and frees its place: a stalled secondary holds it no longer
//! than an idle connection. The writing awaits the socket, so a slow secondary never costs a
//! thread, and UDP queries are not affected at all.
//!
//! Without `[transfer]` there is no [`Transfers`] and none of this runs: the zone answers AXFR
//! and IXFR with REFUSED.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::journal;
use super::rrl::Network;
use super::stats::TransferOutcome;
use super::transfers::{IxfrPlan, Transfers};
use super::tsig::{self, Check, ResponseSigner, TsigKey, Verified};
use super::wire::{self, CLASS_IN, Query, Rcode, Response, Section, parse_query, rtype};
pub use super::xfr_settings::{AllowList, LogPolicy, TransferSettings};
use super::zone::Zone;

/// Largest message of a transfer (before its TSIG record): below the 64 KiB TCP framing limit.
pub(crate) const MESSAGE_LIMIT: usize = 64_000;

/// How a transfer request came: over clear TCP (with whether transfers are served there,
/// `transfer.clear_transfers`) or over TLS (XoT, RFC 9103: [`super::xot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Clear TCP; `transfers: false` answers AXFR and IXFR REFUSED (only TLS serves them).
    Tcp {
        /// Whether AXFR and IXFR are served on clear TCP.
        transfers: bool,
    },
    /// TLS: the same requests, the same rules, inside the encrypted stream.
    Tls,
}

/// What [`serve_tcp`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a transfer request: answer it as a query.
    NotMine,
    /// Answered; read the next message.
    Sent,
    /// The connection failed or timed out: close it.
    Close,
}

/// Answers, when transfers are on, the queries that need more than the zone's answer: a
/// request with a TSIG record (verified, and its answer signed) and IXFR over UDP (the current
/// SOA alone, RFC 1995 section 2, so that the client asks again over TCP). Returns `false` for
/// everything else, which the zone answers as usual.
pub(crate) fn answer(transfers: &Transfers, query: &Query<'_>, limit: usize, out: &mut Vec<u8>) -> bool {
    let (zone, settings) = (transfers.zone(), transfers.settings());
    let is_ixfr = query.qtype == rtype::IXFR;
    if !is_ixfr && query.msg.get(10..12) == Some(&[0, 0]) {
        return false; // no additional records, so no TSIG: the usual case costs one compare
    }
    let now = tsig::now();
    let key = settings.key.as_deref();
    let verified = match tsig::verify_request(query.msg, key, now) {
        Ok(verified) => verified,
        Err(check) => {
            let what = refuse_tsig(query, u16::try_from(limit).unwrap_or(u16::MAX), check, key, now, out);
            tracing::info!("query of type {}: {what}", query.qtype);
            return true;
        }
    };
    if verified.is_none() && !is_ixfr {
        return false;
    }
    let reserve = key.map_or(0, tsig::record_len);
    if is_ixfr {
        let rcode = question_rcode(zone, query);
        let mut response = Response::new(out, query, 1232);
        response.set_authoritative(rcode == Rcode::NoError);
        response.set_rcode(rcode);
        if rcode == Rcode::NoError {
            let (_, soa) = zone.soa_record();
            for (owner, tail) in journal::records(&soa) {
                response.push(Section::Answer, wire::Owner::Name(owner), tail);
            }
        }
        response.finish(limit.saturating_sub(reserve));
    } else {
        zone.answer(query, limit.saturating_sub(reserve), out);
    }
    // The TSIG record's room was reserved above, so signing fits; were it not to, no answer
    // at all rather than an unsigned answer to a signed request.
    if let (Some(verified), Some(key)) = (verified, key)
        && ResponseSigner::new(key, &verified).sign(out, now).is_err()
    {
        out.clear();
    }
    true
}

/// Writes the answer to a request whose TSIG failed; returns what to log.
fn refuse_tsig(
    query: &Query<'_>,
    udp_size: u16,
    check: Check,
    key: Option<&TsigKey>,
    now: u64,
    out: &mut Vec<u8>,
) -> String {
    match check {
        Check::Malformed => {
            wire::error_reply(query.msg, Rcode::FormErr, udp_size, out);
            "malformed TSIG record, answered FORMERR".to_owned()
        }
        Check::Failed(failure, reply_key) => {
            tsig::failure_reply(query.msg, query.question_bytes(), &failure, &reply_key, key, now, out);
            format!("TSIG {}, answered NOTAUTH", failure.name())
        }
    }
}

/// NOERROR for a question about our zone in class IN; FORMERR for another class (transfers
/// exist only in IN here); REFUSED for another zone, as for any query outside ours.
fn question_rcode(zone: &Zone, query: &Query<'_>) -> Rcode {
    if query.qclass != CLASS_IN {
        return Rcode::FormErr;
    }
    let mut lower = [0u8; wire::MAX_NAME_LEN];
    let len = wire::lowercase_name(query.qname, &mut lower);
    if lower[..len] == *zone.apex_wire() { Rcode::NoError } else { Rcode::Refused }
}

/// The client's serial from the SOA in the authority section of an IXFR request.
fn ixfr_serial(msg: &[u8]) -> Option<u32> {
    let [_, answers, authority, _] = wire::counts(msg).ok()?;
    let records = wire::records(msg).ok()?;
    let authority = records.get(usize::from(answers)..usize::from(answers) + usize::from(authority))?;
    let soa = authority.iter().find(|r| r.rtype == rtype::SOA)?;
    // MNAME and RNAME, then the serial and four more 32-bit fields that end the data.
    let serial_at = wire::skip_name(msg, wire::skip_name(msg, soa.data.start).ok()?).ok()?;
    if serial_at + 20 != soa.data.end {
        return None;
    }
    wire::u32_at(msg, serial_at)
}

/// Handles `msg` on a TCP or TLS connection from `peer` if it is a transfer request (AXFR or
/// IXFR); writes the answer to `stream`.
pub async fn serve_tcp<S: AsyncWrite + Unpin>(
    transfers: &Arc<Transfers>,
    msg: &[u8],
    peer: SocketAddr,
    transport: Transport,
    stream: &mut S,
    idle: Duration,
) -> Outcome {
    let Ok(query) = parse_query(msg) else { return Outcome::NotMine };
    if query.qtype != rtype::AXFR && query.qtype != rtype::IXFR {
        return Outcome::NotMine;
    }
    let (zone, settings) = (transfers.zone(), transfers.settings());
    let axfr = query.qtype == rtype::AXFR;
    let kind = if axfr { "AXFR" } else { "IXFR" };
    let now = tsig::now();
    let key = settings.key.as_deref();
    let client = settings.client(peer);
    let network = Network::of(peer.ip());
    let mut out = Vec::new();
    let verified = match tsig::verify_request(msg, key, now) {
        Ok(verified) => verified,
        Err(check) => {
            let what = refuse_tsig(&query, zone.edns_udp_size(), check, key, now, &mut out);
            settings.gate.refused(network, &client, kind, &what);
            settings.gate.outcomes.count(axfr, TransferOutcome::Refused);
            return send(stream, &mut out, idle).await;
        }
    };
    let mut rcode = question_rcode(zone, &query);
    let client_serial = if query.qtype == rtype::IXFR && rcode == Rcode::NoError {
        let serial = ixfr_serial(msg);
        if serial.is_none() {
            rcode = Rcode::FormErr;
        }
        serial
    } else {
        None
    };
    let refusal = match rcode {
        Rcode::NoError if !settings.allows(peer) => Some("network not in transfer.allow_transfer"),
        Rcode::NoError if key.is_some() && verified.is_none() => Some("request not signed with the TSIG key"),
        Rcode::NoError if transport == (Transport::Tcp { transfers: false }) => {
            Some("over clear TCP, which transfer.clear_transfers = false refuses (ask over TLS)")
        }
        Rcode::NoError => None,
        Rcode::FormErr => Some("malformed request"),
        _ => Some("not our zone"),
    };
    // Admitted last: only a request that would be served takes a place.
    let permit = match refusal {
        None => settings.gate.admit(network, settings.limits),
        Some(_) => None,
    };
    let refusal = refusal.or_else(|| {
        permit
            .is_none()
            .then_some("too many transfers at once (transfer.max_transfers, max_transfers_per_network)")
    });
    if let Some(reason) = refusal {
        settings.gate.refused(network, &client, kind, reason);
        settings.gate.outcomes.count(axfr, TransferOutcome::Refused);
        let mut response = Response::new(&mut out, &query, 1232);
        response.set_rcode(if rcode == Rcode::NoError { Rcode::Refused } else { rcode });
        response.finish(MESSAGE_LIMIT);
        if let (Some(verified), Some(key)) = (&verified, key)
            && ResponseSigner::new(key, verified).sign(&mut out, now).is_err()
        {
            return Outcome::Close;
        }
        return send(stream, &mut out, idle).await;
    }
    let started = Instant::now();
    let plan = match client_serial {
        Some(serial) => {
            let transfers = Arc::clone(transfers);
            match tokio::task::spawn_blocking(move || transfers.ixfr_plan(serial)).await {
                Ok(plan) => plan,
                Err(_) => {
                    settings.gate.outcomes.count(axfr, TransferOutcome::CutShort);
                    return Outcome::Close;
                }
            }
        }
        None => IxfrPlan::Full,
    };
    let mut sender = Sender::new(&query, key, verified.as_ref(), stream, idle);
    let (outcome, what) = match &plan {
        IxfrPlan::UpToDate { soa } => {
            (sender.put(soa).await, format!("serial {} is current", client_serial.unwrap_or(0)))
        }
        IxfrPlan::Incremental { soa, changes } => {
            let mut outcome = sender.put(soa).await;
            for change in changes {
                for piece in [&change.old_soa, &change.deleted, &change.new_soa, &change.added] {
                    if outcome == Outcome::Sent {
                        outcome = sender.put(piece).await;
                    }
                }
            }
            if outcome == Outcome::Sent {
                outcome = sender.put(soa).await;
            }
            let to = changes.last().map_or(0, |c| c.to);
            let from = client_serial.unwrap_or(0);
            (outcome, format!("incremental from serial {from} to {to} in {} steps", changes.len()))
        }
        IxfrPlan::Full => {
            let (outcome, serial) = send_zone(zone, &mut sender).await;
            let how = match client_serial {
                Some(serial) => format!("full zone instead of a difference from serial {serial}"),
                None => "full zone".to_owned(),
            };
            let what = match serial {
                Ok(serial) => format!("{how} at serial {serial}"),
                Err(stale) => format!("{how} ended: {stale}"),
            };
            (outcome, what)
        }
    };
    let outcome = if outcome == Outcome::Sent { sender.flush().await } else { outcome };
    drop(permit);
    let signed =
        key.filter(|_| verified.is_some()).map_or(String::new(), |k| format!(" (TSIG {})", k.name()));
    let kind = if transport == Transport::Tls { format!("{kind} over TLS") } else { kind.to_owned() };
    let (records, messages) = (sender.records, sender.messages);
    let ms = started.elapsed().as_millis();
    let counted =
        if outcome == Outcome::Sent { TransferOutcome::Complete } else { TransferOutcome::CutShort };
    settings.gate.outcomes.count(axfr, counted);
    if outcome == Outcome::Sent {
        tracing::info!(
            "{kind} to {client}{signed}: {what}, {records} records in {messages} messages, {ms} ms"
        );
    } else {
        tracing::info!(
            "{kind} to {client}{signed} cut short: {what}; {records} records in {messages} messages sent in \
             {ms} ms (the client stopped reading, or left)"
        );
    }
    outcome
}

/// Sends the whole zone by a walk (the SOA, every record, the SOA); returns how the sending
/// went and the serial sent, or why the walk ended early (then the connection is closed).
async fn send_zone<S: AsyncWrite + Unpin>(
    zone: &Arc<Zone>,
    sender: &mut Sender<'_, '_, S>,
) -> (Outcome, Result<u32, super::zone::Stale>) {
    let started = {
        let zone = Arc::clone(zone);
        // The first walk at a serial lists its names: milliseconds for a large zone.
        tokio::task::spawn_blocking(move || zone.walk()).await
    };
    let Ok(mut walk) = started else { return (Outcome::Close, Err(super::zone::Stale)) };
    let head = std::mem::take(&mut walk.head);
    for piece in [&walk.soa, &head] {
        if sender.put(piece).await == Outcome::Close {
            return (Outcome::Close, Ok(walk.serial));
        }
    }
    drop(head);
    let mut chunk = Vec::new();
    loop {
        // On a blocking thread: a bulk change (a purge, a new signing epoch) may hold the write
        // lock for a while, and the async workers must not wait for it.
        let zone = Arc::clone(zone);
        let next = tokio::task::spawn_blocking(move || {
            let more = zone.walk_next(&mut walk, &mut chunk);
            (walk, chunk, more)
        });
        let more;
        (walk, chunk, more) = match next.await {
            Ok(next) => next,
            Err(_) => return (Outcome::Close, Err(super::zone::Stale)),
        };
        match more {
            Ok(true) => {}
            Ok(false) => break,
            Err(stale) => return (Outcome::Close, Err(stale)),
        }
        if sender.put(&chunk).await == Outcome::Close {
            return (Outcome::Close, Ok(walk.serial));
        }
    }
    (sender.put(&walk.soa).await, Ok(walk.serial))
}

/// Writes the records of a transfer into messages, signs and sends each when full.
struct Sender<'a, 'q, S> {
    /// The message being built.
    writer: Writer<'q>,
    /// Signs each message, when the request was signed.
    signer: Option<ResponseSigner<'a>>,
    /// The client's connection.
    stream: &'a mut S,
    /// How long a message may take to be taken by the client.
    idle: Duration,
    /// Messages sent.
    messages: usize,
    /// Records written.
    records: usize,
}

impl<'a, 'q, S: AsyncWrite + Unpin> Sender<'a, 'q, S> {
    /// A sender of the answer to `query`, signed with `key` when the request was `verified`.
    fn new(
        query: &Query<'q>,
        key: Option<&'a TsigKey>,
        verified: Option<&Verified>,
        stream: &'a mut S,
        idle: Duration,
    ) -> Self {
        Self {
            writer: Writer::new(query, MESSAGE_LIMIT - key.map_or(0, tsig::record_len)),
            signer: verified.zip(key).map(|(v, k)| ResponseSigner::new(k, v)),
            stream,
            idle,
            messages: 0,
            records: 0,
        }
    }

    /// Writes the flat records of `flat`, sending each message that fills up.
    async fn put(&mut self, flat: &[u8]) -> Outcome {
        for (owner, tail) in journal::records(flat) {
            if !self.writer.fits(owner, tail) {
                if self.flush().await == Outcome::Close {
                    return Outcome::Close;
                }
                // Let other connections and the API run between messages of a long transfer.
                tokio::task::yield_now().await;
            }
            self.writer.push(owner, tail);
            self.records += 1;
        }
        Outcome::Sent
    }

    /// Sends the message built so far.
    async fn flush(&mut self) -> Outcome {
        let mut msg = self.writer.finish();
        if let Some(signer) = &mut self.signer
            && signer.sign(&mut msg, tsig::now()).is_err()
        {
            return Outcome::Close;
        }
        self.messages += 1;
        send(&mut *self.stream, &mut msg, self.idle).await
    }
}

/// Writes one framed message with the idle timeout.
pub(super) async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &mut Vec<u8>,
    idle: Duration,
) -> Outcome {
    if wire::frame(msg).is_err() {
        return Outcome::Close;
    }
    // Flushed: over TLS, what the socket could not take at once stays in the TLS buffer until
    // then, and the end of a transfer would wait there for a next write that never comes
    // (on clear TCP it does nothing).
    let write = async {
        stream.write_all(msg).await?;
        stream.flush().await
    };
    match tokio::time::timeout(idle, write).await {
        Ok(Ok(())) => Outcome::Sent,
        _ => Outcome::Close,
    }
}

/// Builds the messages of a transfer one at a time, compressing names within each.
struct Writer<'q> {
    /// ID and flags of every message.
    header: [u8; 4],
    /// The question, echoed in the first message only (RFC 5936 section 2.2).
    question: &'q [u8],
    /// Whether the next message is the first.
    first: bool,
    /// The message being built.
    buf: Vec<u8>,
    /// Offsets of the names (and suffixes) already written in this message.
    names: HashMap<Vec<u8>, u16>,
    /// Records in this message.
    count: u16,
    /// Size limit.
    limit: usize,
}

impl<'q> Writer<'q> {
    /// A writer for the answer to `query`.
    fn new(query: &Query<'q>, limit: usize) -> Self {
        let id = query.id.to_be_bytes();
        let mut writer = Self {
            // QR and AA, opcode QUERY, RD copied; rcode NOERROR.
            header: [id[0], id[1], 0x84 | u8::from(query.rd), 0],
            question: &query.msg[wire::HEADER_LEN..wire::HEADER_LEN + query.qname.len() + 4],
            first: true,
            buf: Vec::with_capacity(limit + 512),
            names: HashMap::new(),
            count: 0,
            limit,
        };
        writer.start();
        writer
    }

    /// Starts a message.
    fn start(&mut self) {
        self.buf.clear();
        self.names.clear();
        self.count = 0;
        self.buf.extend_from_slice(&self.header);
        self.buf.extend_from_slice(&[0, u8::from(self.first), 0, 0, 0, 0, 0, 0]);
        if self.first {
            self.buf.extend_from_slice(self.question);
        }
    }

    /// Whether a record fits (counted uncompressed); an empty message takes any record.
    fn fits(&self, owner: &[u8], tail: &[u8]) -> bool {
        self.count == 0 || self.buf.len() + owner.len() + tail.len() <= self.limit
    }

    /// Writes `name` at the end of the message, as a pointer to an earlier copy of its longest
    /// known suffix where there is one.
    fn put_name(&mut self, name: &[u8]) {
        let mut pos = 0;
        while pos < name.len() && name[pos] != 0 {
            let suffix = &name[pos..];
            if let Some(&offset) = self.names.get(suffix) {
                self.buf.extend_from_slice(&(0xC000 | offset).to_be_bytes());
                return;
            }
            // A compression pointer holds 14 bits of offset.
            if let Ok(offset) = u16::try_from(self.buf.len())
                && offset < 0x3FFF
            {
                self.names.insert(suffix.to_vec(), offset);
            }
            let end = pos + 1 + usize::from(name[pos]);
            self.buf.extend_from_slice(&name[pos..end]);
            pos = end;
        }
        self.buf.push(0);
    }

    /// Appends a record; names in the rdata of the types RFC 3597 allows are compressed too.
    fn push(&mut self, owner: &[u8], tail: &[u8]) {
        self.put_name(owner);
        let rdata = &tail[10..];
        // Where names sit in the rdata: NS, CNAME, PTR hold one; MX a preference and one; SOA
        // two and five numbers. Other types (RRSIG's signer, SRV's target) must stay as is.
        let (names, rest): (usize, usize) = match journal::tail_type(tail) {
            rtype::NS | rtype::CNAME | rtype::PTR => (1, 0),
            rtype::SOA => (2, 0),
            rtype::MX => (1, 2),
            _ => (0, 0),
        };
        if names == 0 {
            self.buf.extend_from_slice(tail);
        } else {
            self.buf.extend_from_slice(&tail[..8]);
            let rdlength = wire::Open16::open(&mut self.buf);
            self.buf.extend_from_slice(&rdata[..rest]);
            let mut pos = rest;
            for _ in 0..names {
                // Names the zone wrote: uncompressed and well formed.
                let end = wire::skip_name(rdata, pos).unwrap_or(rdata.len());
                self.put_name(&rdata[pos..end]);
                pos = end;
            }
            self.buf.extend_from_slice(&rdata[pos..]);
            // Compressed data is never longer than the tail's, whose length fit. Were it
            // longer, the field is taken back out and the tail goes as it is; the names it
            // just offered as pointer targets then lie past the message's end, so they go too.
            if rdlength.close(&mut self.buf).is_err() {
                let end = self.buf.len();
                self.names.retain(|_, offset| usize::from(*offset) < end);
                self.buf.extend_from_slice(&tail[8..]);
            }
        }
        self.count += 1;
    }

    /// Finishes the message (counts in the header) and starts the next.
    fn finish(&mut self) -> Vec<u8> {
        self.buf[6..8].copy_from_slice(&self.count.to_be_bytes());
        let msg = std::mem::replace(&mut self.buf, Vec::with_capacity(self.limit + 512));
        self.first = false;
        self.start();
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x04auth\x07example\x03org\x00");
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn names_are_compressed_within_a_message() {
        let q = query(rtype::AXFR);
        let parsed = parse_query(&q).unwrap();
        let mut writer = Writer::new(&parsed, MESSAGE_LIMIT);
        let apex = b"\x04auth\x07example\x03org\x00";
        let mut ns = vec![0, 2, 0, 1, 0, 0, 0, 60, 0, 22];
        ns.extend_from_slice(b"\x03ns1\x04auth\x07example\x03org\x00");
        writer.push(apex, &ns);
        writer.push(b"\x03ns1\x04auth\x07example\x03org\x00", &[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let msg = writer.finish();
        // Question 22 bytes; apex owner written in full, NS target "ns1" + pointer, A owner a
        // pointer to the NS target.
        assert_eq!(msg.len(), 12 + 22 + 18 + 10 + 6 + 2 + 14);
        assert_eq!(&msg[6..8], &[0, 2]);
        let second = writer.finish();
        assert_eq!(&second[4..6], &[0, 0], "only the first message echoes the question");
    }

    #[test]
    fn ixfr_serial_is_read_from_the_authority_section() {
        let mut m = query(rtype::IXFR);
        m[9] = 1;
        m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 24, 0xC0, 12, 0xC0, 12]);
        m.extend_from_slice(&[0, 0, 0, 42, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        assert_eq!(ixfr_serial(&m), Some(42));
        assert_eq!(ixfr_serial(&query(rtype::IXFR)), None);
        m.truncate(m.len() - 1);
        assert_eq!(ixfr_serial(&m), None);
    }
}
