//! Differential test: every answer the server sends for a corpus of queries is read by an
//! independent, widely used DNS library (`hickory-proto`) exactly as by our test decoder.
//!
//! Our server writes its own wire format and the harness reads it with its own decoder; both
//! written here, they could share a misreading. hickory-proto is the oracle: it must parse
//! every answer, strictly, and agree on the header, the question, every record's owner, type,
//! class and TTL, and on the record data itself (in the canonical form of RFC 4034 §6.2, so
//! name compression does not matter).

use hickory_proto::op::Message as Oracle;
use hickory_proto::rr::Record as OracleRecord;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

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

/// Checks one reply against the oracle; `what` names the query in failures. Returns how many
/// records' data it compared byte for byte.
fn agree(reply: &[u8], what: &str) -> usize {
    let mut compared = 0;
    let ours = Message::decode(reply);
    let oracle =
        Oracle::from_vec(reply).unwrap_or_else(|e| panic!("{what}: hickory cannot parse the answer: {e}"));
    assert_eq!(oracle.metadata.id, ours.id, "{what}: id");
    assert_eq!(u8::from(oracle.metadata.authoritative), u8::from(ours.aa()), "{what}: AA");
    assert_eq!(oracle.metadata.truncation, ours.tc(), "{what}: TC");
    assert_eq!(u16::from(oracle.metadata.response_code) & 0x0F, u16::from(ours.rcode), "{what}: rcode");
    let oracle_qname = oracle.queries.first().map(|q| q.name().to_ascii());
    assert_eq!(oracle_qname, ours.qname, "{what}: question");
    // hickory takes the OPT out of the additional section into `edns`.
    let ours_additional: Vec<&Record> = ours.additional.iter().filter(|r| r.rtype != t::OPT).collect();
    assert_eq!(oracle.edns.is_some(), ours.opt().is_some(), "{what}: OPT");
    let sections = [
        ("answer", oracle.answers.iter().collect::<Vec<_>>(), ours.answers.iter().collect::<Vec<_>>()),
        ("authority", oracle.authorities.iter().collect(), ours.authority.iter().collect()),
        ("additional", oracle.additionals.iter().collect(), ours_additional),
    ];
    for (section, theirs, mine) in sections {
        assert_eq!(theirs.len(), mine.len(), "{what}: {section} count");
        for (o, m) in theirs.iter().zip(&mine) {
            let at = format!("{what}: {section} {} type {}", m.owner, m.rtype);
            assert_eq!(o.name.to_ascii(), m.owner, "{at}: owner");
            assert_eq!(u16::from(o.record_type()), m.rtype, "{at}: type");
            assert_eq!(u16::from(o.dns_class), m.class, "{at}: class");
            assert_eq!(o.ttl, m.ttl, "{at}: TTL");
            if !NAME_TYPES.contains(&m.rtype) {
                assert_eq!(oracle_rdata(o), m.rdata, "{at}: record data");
                compared += 1;
            }
        }
    }
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
