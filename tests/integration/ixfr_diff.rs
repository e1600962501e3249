//! The IXFR journal against the zone itself (issue 20): after random writes of every kind (TXT
//! values set and replaced, dns-persist-01 records set and removed, accounts registered and
//! erased, and new signing epochs, which re-sign every set) on a signed zone, the differences
//! an IXFR from serial A sends, applied to the AXFR taken at A, give exactly the AXFR at the
//! current serial B. The messages are decoded with hickory-proto, the tests' oracle, not with
//! the code under test.
//!
//! The writes come from a fixed seed and are bounded; the signing epoch moves on its own every
//! few seconds (signatures valid 12 s, renewed with 8 s left), between the writes and during the
//! transfers, so a check whose IXFR and AXFR end at different serials is taken again.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use hickory_proto::op::Message as Parsed;
use hickory_proto::rr::{RData, Record as Rr};
use serde_json::{Value, json};

use crate::harness::*;

/// Records as text (hickory-proto's presentation), counted: a multiset.
type Records = BTreeMap<String, usize>;

/// A primary, signed with short-lived signatures, transfers open to loopback without a key.
fn primary(dir: &TempDir) -> TestServer {
    let config =
        with_keys(&base_config(&dir.0), "dnssec", "enabled = true\nsignature_validity = 12\nrefresh = 8");
    let config = with_keys(&config, "api", "register_rate_limit = 0\nupdate_rate_limit = 0");
    let config = with_keys(
        &config,
        "transfer",
        "allow_transfer = [\"127.0.0.1/32\"]\nwait_for_secondaries = \"none\"",
    );
    TestServer::start_with(dir, &config)
}

/// An AXFR (no `serial`) or IXFR from `serial` for the test zone.
fn request(serial: Option<u32>) -> Vec<u8> {
    let mut msg = vec![0x51, 0x7a, 0, 0, 0, 1, 0, 0, 0, u8::from(serial.is_some()), 0, 0];
    msg.extend(name_wire(DOMAIN));
    msg.extend_from_slice(&(if serial.is_some() { 251u16 } else { 252 }).to_be_bytes());
    msg.extend_from_slice(&[0, 1]);
    if let Some(serial) = serial {
        // The client's SOA in the authority section: only its serial matters.
        msg.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        msg.extend_from_slice(&serial.to_be_bytes());
        msg.extend_from_slice(&[0; 16]);
    }
    msg
}

/// The SOA serial of a record, if it is an SOA.
fn soa_serial(record: &Rr) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// Every answer record of a transfer, in order, to the closing SOA.
fn transfer(server: &TestServer, serial: Option<u32>) -> Vec<Rr> {
    let mut stream = TcpStream::connect(server.tcp).expect("TCP connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let msg = request(serial);
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&msg);
    std::io::Write::write_all(&mut stream, &framed).unwrap();
    let mut records: Vec<Rr> = Vec::new();
    loop {
        let frame = read_frame(&mut stream).expect("the transfer goes on to its closing SOA");
        let parsed = Parsed::from_vec(&frame).expect("hickory-proto reads every message");
        assert_eq!(u16::from(parsed.metadata.response_code), 0, "rcode of a transfer message");
        records.extend(parsed.answers);
        let last = records.first().and_then(soa_serial);
        // The SOA of the newest serial opens and closes every answer; an incremental one holds
        // it once more, opening the last step's additions; an answer that is current, only once.
        let incremental = records.get(1).and_then(soa_serial).is_some_and(|s| Some(s) != last);
        let seen = records.iter().filter(|r| soa_serial(r).is_some() && soa_serial(r) == last).count();
        if seen == if incremental { 3 } else { 2 }
            || (records.len() == 1 && serial.is_some() && last == serial)
        {
            return records;
        }
    }
}

/// The zone by AXFR: its serial and its records (the SOA once).
fn axfr(server: &TestServer) -> (u32, Records) {
    let records = transfer(server, None);
    let serial = soa_serial(&records[0]).expect("an AXFR begins with the SOA");
    let mut set = Records::new();
    for record in &records[..records.len() - 1] {
        *set.entry(record.to_string()).or_default() += 1;
    }
    (serial, set)
}

/// IXFR from `old_serial` applied to `old`, the zone at that serial (RFC 1995 section 4: each
/// step is the old SOA, the deletions, the new SOA, the additions): the serial it ends at and
/// the records, with every deletion checked to exist and every addition to be new.
fn apply_ixfr(server: &TestServer, old_serial: u32, old: &Records) -> (u32, Records, usize) {
    let records = transfer(server, Some(old_serial));
    let last = soa_serial(&records[0]).expect("an IXFR begins with the SOA");
    let mut zone = old.clone();
    if records.len() == 1 {
        return (last, zone, 0);
    }
    assert_eq!(
        soa_serial(&records[1]),
        Some(old_serial),
        "the IXFR from {old_serial} to {last} is not incremental (the whole zone was sent)"
    );
    let (mut steps, mut i, end) = (0, 1, records.len() - 1);
    let delete = |zone: &mut Records, record: &Rr, from: u32| {
        let key = record.to_string();
        let count = zone.get_mut(&key).unwrap_or_else(|| {
            panic!("a step from {from} deletes {key}, which the zone at {from} does not hold")
        });
        *count -= 1;
        if *count == 0 {
            zone.remove(&key);
        }
    };
    let add = |zone: &mut Records, record: &Rr, to: u32| {
        let count = zone.entry(record.to_string()).or_default();
        assert_eq!(*count, 0, "the step to {to} adds {record}, which the zone holds already");
        *count += 1;
    };
    while i < end {
        // The old SOA and the deletions, to the new SOA.
        let from = soa_serial(&records[i]).expect("a step begins with its old SOA");
        delete(&mut zone, &records[i], from);
        i += 1;
        while i < end && soa_serial(&records[i]).is_none() {
            delete(&mut zone, &records[i], from);
            i += 1;
        }
        assert!(i < end, "the step from {from} ends without its new SOA");
        // The new SOA and the additions, to the next step or the closing SOA.
        let to = soa_serial(&records[i]).unwrap_or(0);
        add(&mut zone, &records[i], to);
        i += 1;
        while i < end && soa_serial(&records[i]).is_none() {
            add(&mut zone, &records[i], to);
            i += 1;
        }
        steps += 1;
    }
    (last, zone, steps)
}

/// A small xorshift generator: the writes are the same on every run.
struct Rng(u64);

impl Rng {
    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One random write through the API; returns its kind.
fn write(server: &TestServer, rng: &mut Rng, accounts: &mut Vec<Value>, n: u32) -> &'static str {
    let kind = if accounts.len() < 2 { 0 } else { rng.below(6) };
    if kind == 0 {
        accounts.push(server.register());
        return "register";
    }
    let at = rng.below(accounts.len());
    let account = &accounts[at];
    let (what, status) = match kind {
        1 | 2 => ("txt", server.update(account, &txt_value(n)).status),
        3 => {
            let issuer = ["ca.example", "letsencrypt.org"][rng.below(2)];
            let body = json!({ "issuer": issuer, "accounturi": format!("https://ca.example/acct/{n}") });
            ("persist", server.http("POST", "/persist", &auth(account), body.to_string().as_bytes()).status)
        }
        4 => {
            let body = json!({ "issuer": "ca.example" }).to_string();
            let status = server.http("DELETE", "/persist", &auth(account), body.as_bytes()).status;
            // Nothing to delete is an answer too.
            ("persist delete", if status == 404 { 200 } else { status })
        }
        _ => {
            let status = server.http("DELETE", "/account", &auth(account), b"").status;
            accounts.remove(at);
            ("erasure", status)
        }
    };
    assert_eq!(status, 200, "{what}");
    what
}

#[test]
fn ixfr_differences_applied_to_an_older_axfr_give_the_newer_one() {
    let dir = TempDir::new();
    let server = primary(&dir);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accounts = Vec::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    // Zones seen, by serial: each later check takes an IXFR from the last few of them.
    let mut seen: Vec<(u32, Records)> = vec![axfr(&server)];
    let mut n = 0;
    let (mut checks, mut steps_applied) = (0, 0);
    for _batch in 0..8 {
        for _ in 0..1 + rng.below(5) {
            n += 1;
            *kinds.entry(write(&server, &mut rng, &mut accounts, n)).or_default() += 1;
        }
        for (old_serial, old) in seen.iter().rev().take(3) {
            // The epoch may move between the IXFR and the AXFR: then both are taken again.
            let mut tries = 0;
            loop {
                let (ixfr_serial, replayed, steps) = apply_ixfr(&server, *old_serial, old);
                let (serial, zone) = axfr(&server);
                if serial != ixfr_serial {
                    tries += 1;
                    assert!(tries < 10, "the zone never held still for an IXFR and an AXFR");
                    continue;
                }
                assert!(
                    replayed == zone,
                    "IXFR {old_serial}→{serial} applied to the AXFR at {old_serial} is not the AXFR at \
                     {serial}:\nonly replayed: {:?}\nonly in the AXFR: {:?}",
                    replayed.keys().filter(|k| !zone.contains_key(*k)).collect::<Vec<_>>(),
                    zone.keys().filter(|k| !replayed.contains_key(*k)).collect::<Vec<_>>(),
                );
                checks += 1;
                steps_applied += steps;
                break;
            }
        }
        seen.push(axfr(&server));
        std::thread::sleep(Duration::from_millis(700));
    }
    let log = server.log_text();
    assert!(log.contains("signatures renewed"), "no new signing epoch during the test:\n{log}");
    for kind in ["register", "txt", "persist", "erasure"] {
        assert!(kinds.contains_key(kind), "no write of kind {kind}: {kinds:?}");
    }
    assert!(steps_applied > checks, "{steps_applied} steps in {checks} checks");
    println!("writes {kinds:?}; {checks} checks, {steps_applied} IXFR steps applied");
}
