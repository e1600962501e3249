//! A zone like the daemon's (the test zone, signed or not, transfers open) and the checks of
//! what a secondary receives from it: every AXFR and IXFR message, as `serve_tcp` writes it.
//!
//! Design note: the transfer is taken through `dns::xfr::serve_tcp` itself, writing into a
//! `Vec` (tokio's `AsyncWrite`), so the framing, the message splitting and the name
//! compression are all under test, not only the zone's snapshot. A transfer must: end
//! (`Outcome::Sent`), frame every message, give messages that the strict walker of
//! `check.rs` and hickory-proto both read, begin and end with the current SOA, carry every
//! record of the zone's walk (`Zone::walk`, taken apart from the transfer) once; and an IXFR's
//! differences, applied to what the zone served at the older serial, must give what it serves
//! now. This file is part of the stable in-repository fuzzer and of the cargo-fuzz crate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use acme_delegate::config::Config;
use acme_delegate::dns::dnssec::SigningKey;
use acme_delegate::dns::journal::{self, Limits};
use acme_delegate::dns::transfers::{IxfrPlan, Transfers};
use acme_delegate::dns::xfr::{AllowList, LogPolicy, Outcome, TransferSettings, Transport, serve_tcp};
use acme_delegate::dns::xfr_gate::TransferLimits;
use acme_delegate::dns::zone::{Signer, Zone};
use acme_delegate::privacy::IpPolicy;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

/// The test configuration, read once.
fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = format!(
            "{}\n[dnssec]\nenabled = true\n",
            crate::harness::base_config(std::path::Path::new("/nonexistent"))
        );
        Config::from_text(&text, "fuzz").expect("the fuzz config is valid")
    })
}

/// The signing key in PKCS#8, generated once (every zone of the process signs with it).
fn pkcs8() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    let algorithm = config().dnssec.as_ref().expect("dnssec is on").algorithm;
    KEY.get_or_init(|| SigningKey::generate(algorithm).expect("a key"))
}

/// Transfers open to every address, without a key (the TSIG side is `dns_transfer`'s).
pub fn transfer_settings() -> TransferSettings {
    TransferSettings {
        allow: AllowList::new(vec!["0.0.0.0/0".parse().expect("a network")]),
        notify: Vec::new(),
        key: None,
        client_ip: LogPolicy::new(IpPolicy::None),
        wait: None,
        limits: TransferLimits { total: 16, per_network: 16 },
        gate: Default::default(),
    }
}

/// A new test zone, signed (ECDSA P-256, NSEC3) or not, keeping a journal.
pub fn zone(signed: bool) -> Arc<Zone> {
    let config = config();
    let signer = signed.then(|| {
        let d = config.dnssec.as_ref().expect("dnssec is on");
        let key = SigningKey::from_pkcs8(d.algorithm, pkcs8()).expect("the key reads back");
        Signer { key, validity: d.validity, refresh: d.refresh }
    });
    let zone = Zone::new(&config.dns.zone, signer).expect("the fuzz zone builds");
    zone.keep_journal(Limits::default());
    Arc::new(zone)
}

/// Transfers of `zone` open to every address (it keeps its journal).
fn transfers(zone: &Arc<Zone>) -> Arc<Transfers> {
    Arc::new(Transfers::new(Arc::clone(zone), transfer_settings(), Limits::default()))
}

/// The runtime `serve_tcp` runs on (one thread, and its blocking pool for the snapshot).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
    })
}

/// A transfer request for the apex: AXFR, or IXFR from `serial` (the client's SOA in the
/// authority section, with root names: only its serial matters).
fn request(zone: &Zone, ixfr_from: Option<u32>) -> Vec<u8> {
    let mut msg = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, u8::from(ixfr_from.is_some()), 0, 0];
    msg.extend_from_slice(zone.apex_wire());
    let qtype: u16 = if ixfr_from.is_some() { 251 } else { 252 };
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&[0, 1]);
    if let Some(serial) = ixfr_from {
        msg.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        msg.extend_from_slice(&serial.to_be_bytes());
        msg.extend_from_slice(&[0; 16]);
    }
    msg
}

/// Runs one transfer through `serve_tcp`; returns the outcome and the framed stream.
fn transfer(zone: &Arc<Zone>, msg: &[u8]) -> (Outcome, Vec<u8>) {
    let transfers = transfers(zone);
    let peer: SocketAddr = "127.0.0.1:5300".parse().expect("an address");
    let mut stream = Vec::new();
    let outcome = runtime().block_on(serve_tcp(
        &transfers,
        msg,
        peer,
        Transport::Tcp { transfers: true },
        &mut stream,
        Duration::from_secs(5),
    ));
    (outcome, stream)
}

/// Splits a TCP stream into its messages; panics on a frame that runs past the end.
fn frames(stream: &[u8]) -> Vec<&[u8]> {
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "a frame's length is cut");
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(rest.len() >= 2 + len, "a frame of {len} bytes runs past the stream");
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

/// What a secondary received: every answer record in order, parsed.
pub struct Received {
    /// The records, in order across the messages.
    pub records: Vec<hickory_proto::rr::Record>,
    /// How many messages.
    pub messages: usize,
}

/// Takes a transfer and checks every message; panics with the reason when one is wrong.
fn receive(zone: &Arc<Zone>, ixfr_from: Option<u32>) -> Received {
    let query = request(zone, ixfr_from);
    let (outcome, stream) = transfer(zone, &query);
    let what = if ixfr_from.is_some() { "IXFR" } else { "AXFR" };
    assert_eq!(outcome, Outcome::Sent, "the {what} did not end (stream of {} bytes)", stream.len());
    let messages = frames(&stream);
    assert!(!messages.is_empty(), "the {what} sent no message");
    let mut records = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let counts = super::check::walk(msg).unwrap_or_else(|e| panic!("{what} message {i}: malformed: {e}"));
        assert_eq!(msg[..2], query[..2], "{what} message {i}: the ID is not the query's");
        let parsed = Message::from_vec(msg).unwrap_or_else(|e| {
            panic!("{what} message {i} of {}: hickory-proto cannot parse it: {e}", msg.len())
        });
        assert_eq!(parsed.metadata.response_code, ResponseCode::NoError, "{what} message {i}: rcode");
        assert_eq!(parsed.answers.len(), usize::from(counts[1]), "{what} message {i}: answer count");
        records.extend(parsed.answers);
    }
    let serial = zone.serial();
    let soa_serial = |r: &hickory_proto::rr::Record| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    };
    let first = records.first().and_then(soa_serial);
    let last = records.last().and_then(soa_serial);
    assert_eq!(first, Some(serial), "the {what} does not begin with the current SOA");
    assert_eq!(last, Some(serial), "the {what} does not end with the current SOA");
    Received { records, messages: messages.len() }
}

/// Flat records (owner and tail, as the zone keeps them) as a multiset.
pub type Records = BTreeMap<Vec<u8>, usize>;

/// The multiset of the flat records in `flat`.
fn multiset(flat: &[u8], into: &mut Records) {
    for (owner, tail) in journal::records(flat) {
        *into.entry([owner, tail].concat()).or_default() += 1;
    }
}

/// Checks an AXFR of the zone against a walk of it; returns the walk's records (without the
/// SOA) for later IXFR checks, and what the secondary received.
pub fn check_axfr(zone: &Arc<Zone>) -> (Records, Received) {
    let received = receive(zone, None);
    let mut walk = zone.walk();
    assert_eq!(walk.serial, zone.serial(), "the walk's serial");
    let mut records = Records::new();
    multiset(&walk.head, &mut records);
    let mut chunk = Vec::new();
    while zone.walk_next(&mut walk, &mut chunk).expect("the zone did not change under the walk") {
        multiset(&chunk, &mut records);
    }
    // The types, as a multiset: what the secondary got against what the walk holds.
    let mut want: BTreeMap<u16, usize> = BTreeMap::new();
    for (record, copies) in &records {
        let (_, tail) = journal::records(record).next().expect("one flat record");
        *want.entry(u16::from_be_bytes([tail[0], tail[1]])).or_default() += copies;
    }
    *want.entry(6).or_default() += 2;
    let mut got: BTreeMap<u16, usize> = BTreeMap::new();
    for record in &received.records {
        *got.entry(u16::from(record.record_type())).or_default() += 1;
    }
    assert_eq!(got, want, "the AXFR's records by type are not the walk's and two SOAs");
    (records, received)
}

/// Checks IXFR from `old_serial`, at which the zone served `old`, to now (`new`): the plan's
/// differences chain from the old serial to the current one and turn `old` into `new`; and
/// the messages `serve_tcp` writes for it pass the checks of every transfer.
pub fn check_ixfr(zone: &Arc<Zone>, old_serial: u32, old: &Records, new: &Records) {
    let serial = zone.serial();
    match transfers(zone).ixfr_plan(old_serial) {
        IxfrPlan::UpToDate { .. } => {
            assert!(
                serial.wrapping_sub(old_serial) as i32 <= 0,
                "IXFR from {old_serial} (now {serial}): up to date"
            )
        }
        IxfrPlan::Full => {}
        IxfrPlan::Incremental { changes, .. } => {
            let mut at = old_serial;
            let mut records = old.clone();
            for change in &changes {
                assert_eq!(change.from, at, "the IXFR's steps do not chain");
                for (owner, tail) in journal::records(&change.deleted) {
                    let key = [owner, tail].concat();
                    let n = records.get_mut(&key).unwrap_or_else(|| {
                        panic!(
                            "IXFR {}→{} deletes a record not served at {}",
                            change.from, change.to, change.from
                        )
                    });
                    *n -= 1;
                    if *n == 0 {
                        records.remove(&key);
                    }
                }
                multiset(&change.added, &mut records);
                at = change.to;
            }
            assert_eq!(at, serial, "the IXFR's steps end before the current serial");
            assert!(
                records == *new,
                "IXFR from {old_serial}: the differences applied do not give the zone at {serial}"
            );
        }
    }
    receive(zone, Some(old_serial));
}
