//! Differential test: every answer the server sends for a corpus of queries is read by an
//! independent, widely used DNS library (`hickory-proto`), as strictly as it reads a whole
//! message, and each record's data survives its reading unchanged.
//!
//! Our server writes its own wire format; the harness reads answers with hickory-proto (see
//! `Message::decode`), so every test already has it read what it looks at. This test adds the
//! breadth (every kind of name, every type, with and without EDNS and DO, over UDP and TCP) and
//! one check of its own: the record data hickory-proto parsed, written back in canonical form,
//! is what the server sent (read from the wire at the record's end, where its length says it
//! starts), for every type whose data holds no compressible name.

use hickory_proto::op::{Header, Message as Oracle, Query};
use hickory_proto::rr::Record as OracleRecord;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use crate::harness::*;

/// Types that carry a domain name in their data, which our server may compress.
const NAME_TYPES: [u16; 4] = [t::NS, t::CNAME, t::SOA, t::MX];

/// A query with EDNS (this UDP size) and the DO bit.
fn query_do(name: &str, qtype: u16, size: u16) -> Vec<u8> {
    let mut q = query(name, qtype, Some(size));
    let flags = q.len() - 4;
    q[flags] = 0x80;
    q
}

/// The record data in canonical form as the oracle encodes it.
fn oracle_rdata(record: &OracleRecord) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = BinEncoder::new(&mut out);
    encoder.set_canonical_form(true);
    record.data.emit(&mut encoder).expect("the oracle re-encodes what it parsed");
    out
}

/// Checks one reply with the oracle; `what` names the query in failures. Returns how many
/// records' data it compared byte for byte with what was sent.
fn agree(reply: &[u8], what: &str) -> usize {
    // As a whole message, with the rules a whole message has (OPT once, TSIG last, ...).
    let whole =
        Oracle::from_vec(reply).unwrap_or_else(|e| panic!("{what}: hickory cannot parse the answer: {e}"));
    // Then record by record, to know where each one ends on the wire.
    let mut decoder = BinDecoder::new(reply);
    let header = Header::read(&mut decoder).unwrap_or_else(|e| panic!("{what}: header: {e}"));
    for _ in 0..header.counts.queries {
        Query::read(&mut decoder).unwrap_or_else(|e| panic!("{what}: question: {e}"));
    }
    let counts = [header.counts.answers, header.counts.authorities, header.counts.additionals];
    let total: usize = counts.iter().copied().map(usize::from).sum();
    let mut compared = 0;
    for i in 0..total {
        let record = OracleRecord::read(&mut decoder).unwrap_or_else(|e| panic!("{what}: record {i}: {e}"));
        let rtype = u16::from(record.record_type());
        if NAME_TYPES.contains(&rtype) {
            continue;
        }
        // The data ends where the record ends, and the two bytes before it give its length.
        let (data, end) = (oracle_rdata(&record), decoder.index());
        let start = end - data.len();
        let length = usize::from(u16::from_be_bytes([reply[start - 2], reply[start - 1]]));
        assert_eq!(length, data.len(), "{what}: record {i} type {rtype}: data length");
        assert_eq!(reply[start..end], data, "{what}: record {i} type {rtype}: data");
        compared += 1;
    }
    assert!(decoder.is_empty(), "{what}: bytes after the last record");
    let kept_apart = usize::from(whole.edns.is_some()) + usize::from(whole.signature.is_some());
    let records = whole.answers.len() + whole.authorities.len() + whole.additionals.len();
    assert_eq!(records + kept_apart, total, "{what}: records of the whole message");
    compared
}

/// The corpus: every kind of name the zone has, every type it serves or refuses, with and
/// without EDNS and DO, over UDP and TCP.
fn corpus(server: &TestServer, signed: bool) {
    let with_value = server.register();
    assert_eq!(server.update(&with_value, &txt_value(3)).status, 200);
    let without_value = server.register();
    let full = |a: &serde_json::Value| a["fulldomain"].as_str().unwrap().to_owned();
    let names = [
        DOMAIN.to_owned(),
        format!("ns1.{DOMAIN}"),
        full(&with_value),
        full(&without_value),
        format!("below.{}", full(&with_value)),
        format!("missing.{DOMAIN}"),
        format!("_acme-challenge.{DOMAIN}"),
        "example.com".to_owned(),
    ];
    // A, NS, CNAME, SOA, MX, TXT, AAAA, DS, RRSIG, NSEC3, DNSKEY, NSEC3PARAM, ANY, CAA.
    let types = [1u16, 2, 5, 6, 15, 16, 28, 43, 46, 50, 48, 51, 255, 257];
    let (mut checked, mut compared) = (0, 0);
    for name in &names {
        for &qtype in &types {
            let queries = [
                ("plain", query(name, qtype, None)),
                ("edns", query(name, qtype, Some(1232))),
                ("edns+do", query_do(name, qtype, 1232)),
                // The smallest size EDNS allows: big signed answers come back truncated.
                ("small", query_do(name, qtype, 512)),
            ];
            for (kind, q) in &queries {
                let what = format!("{name} type {qtype} {kind} (signed: {signed})");
                let udp = server.udp_exchange(q).unwrap_or_else(|| panic!("{what}: no UDP reply"));
                compared += agree(&udp, &format!("{what} over UDP"));
                if *kind == "edns+do" {
                    let tcp = server.tcp_exchange(q).unwrap_or_else(|| panic!("{what}: no TCP reply"));
                    compared += agree(&tcp, &format!("{what} over TCP"));
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, names.len() * types.len() * 4);
    // Not a vacuous pass: most answers carry records (with DNSSEC, signatures and proofs).
    assert!(compared > if signed { 600 } else { 20 }, "only {compared} records compared");
}

#[test]
fn answers_parse_identically_in_hickory_unsigned() {
    // Off: the corpus is a burst from one address, which the UDP rate limiter would cut.
    let (server, _dir) = TestServer::start_with_keys("dns", "rate_limit = 0");
    corpus(&server, false);
}

#[test]
fn answers_parse_identically_in_hickory_signed() {
    for algorithm in ["ecdsap256sha256", "ed25519"] {
        let dir = TempDir::new();
        let config = with_keys(
            &base_config(&dir.0),
            "dnssec",
            &format!("enabled = true\nalgorithm = \"{algorithm}\""),
        );
        let config = with_keys(&config, "dns", "rate_limit = 0");
        let server = TestServer::start_with(&dir, &config);
        corpus(&server, true);
    }
}
