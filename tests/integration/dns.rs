//! DNS behaviour against the real server over UDP and TCP: the answers DESIGN.md promises,
//! the places where acme-dns is wrong and we are not, and malformed input.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use crate::harness::*;

/// Sends raw bytes over UDP; returns the reply, if any, within 2 s.
fn raw(server: &TestServer, packet: &[u8]) -> Option<Vec<u8>> {
    server.udp_exchange(packet)
}

/// Sends a query and decodes the reply.
fn ask_udp(server: &TestServer, packet: &[u8]) -> Message {
    Message::decode(&raw(server, packet).expect("a reply"))
}

/// The SOA serial in a reply's answer or authority section.
fn serial(m: &Message) -> u32 {
    let soa = m.answers.iter().chain(&m.authority).find(|r| r.rtype == t::SOA).expect("SOA");
    // MNAME and RNAME are uncompressed names in our SOA; skip them.
    let mut pos = 0;
    for _ in 0..2 {
        while soa.rdata[pos] != 0 {
            pos += 1 + usize::from(soa.rdata[pos]);
        }
        pos += 1;
    }
    u32::from_be_bytes(soa.rdata[pos..pos + 4].try_into().unwrap())
}

#[test]
fn apex_soa_is_authoritative() {
    let (server, _dir) = TestServer::start();
    let reply = server.ask(DOMAIN, t::SOA);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.aa());
    assert_eq!(reply.answers.len(), 1);
}

#[test]
fn registered_name_without_value_is_nodata_not_nxdomain() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let full = account["fulldomain"].as_str().unwrap();
    for qtype in [t::TXT, t::A, t::AAAA] {
        let m = server.ask(full, qtype);
        assert_eq!((m.rcode, m.aa(), m.answers.len()), (rcode::NOERROR, true, 0), "{qtype}");
        assert_eq!(m.authority.len(), 1);
        assert_eq!(m.authority[0].rtype, t::SOA);
        // Negative TTL: min(SOA TTL, SOA minimum), 30 s by default.
        assert_eq!(m.authority[0].ttl, 30);
    }
    // A name below a registered one does not exist.
    assert_eq!(server.ask(&format!("x.{full}"), t::TXT).rcode, rcode::NXDOMAIN);
    let m = server.ask(&format!("nope.{DOMAIN}"), t::TXT);
    assert_eq!((m.rcode, m.aa(), m.authority.len()), (rcode::NXDOMAIN, true, 1));
}

#[test]
fn names_outside_the_zone_are_refused() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    let sub = account["subdomain"].as_str().unwrap();
    for name in [format!("{sub}.evil.com"), sub.to_owned(), "example.org".to_owned(), "org".to_owned()] {
        let m = server.ask(&name, t::TXT);
        assert_eq!((m.rcode, m.aa(), m.answers.len()), (rcode::REFUSED, false, 0), "{name}");
    }
}

#[test]
fn static_data_keeps_its_case_and_queries_echo_theirs() {
    let (server, _dir) = TestServer::start();
    let m = server.ask(DOMAIN, t::TXT);
    assert_eq!(m.txts(), vec!["Hello World, Mixed Case".to_owned()]);
    // 0x20: question and answer owner exactly as asked.
    let asked = "AuTh.ExAmPlE.oRg";
    let m = server.ask(asked, t::A);
    assert_eq!(m.qname.as_deref(), Some("AuTh.ExAmPlE.oRg."));
    assert_eq!(m.answers[0].owner, "AuTh.ExAmPlE.oRg.");
    assert_eq!(m.answers[0].rdata, vec![192, 0, 2, 1]);
    assert!(m.aa() && !m.ra());
}

#[test]
fn header_bits_id_and_rd_are_echoed() {
    let (server, _dir) = TestServer::start();
    let mut q = query(DOMAIN, t::NS, None);
    q[0] = 0xBE;
    q[1] = 0xEF;
    q[2] = 0x01; // RD
    let m = ask_udp(&server, &q);
    assert_eq!(m.id, 0xBEEF);
    assert_eq!(m.flags & 0x8000, 0x8000, "QR");
    assert_eq!(m.flags & 0x0100, 0x0100, "RD copied");
    assert!(!m.ra(), "never RA: not a resolver");
}

#[test]
fn newest_values_are_served_in_update_order() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let full = account["fulldomain"].as_str().unwrap();
    let values: Vec<String> = (1..=4).map(txt_value).collect();
    let before = serial(&server.ask(DOMAIN, t::SOA));
    for value in &values {
        assert_eq!(server.update(&account, value).status, 200);
    }
    // Four updates within a second (acme-dns loses the third): the 3rd and 4th, in order.
    let m = server.ask(full, t::TXT);
    assert_eq!(m.txts(), values[2..].to_vec());
    assert!(m.answers.iter().all(|r| r.ttl == 1));
    // The SOA serial moved with the zone.
    assert_ne!(serial(&server.ask(DOMAIN, t::SOA)), before);
}

#[test]
fn negative_ttl_is_configurable() {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dns", "negative_ttl = 5"));
    let m = server.ask(&format!("nope.{DOMAIN}"), t::A);
    assert_eq!(m.authority[0].ttl, 5);
    assert_eq!(server.ask(DOMAIN, t::SOA).answers[0].ttl, 3600);
}

#[test]
fn edns_buffer_truncation_and_tcp_fallback() {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dns", "txt_values = 20"));
    let account = server.register();
    let full = account["fulldomain"].as_str().unwrap().to_owned();
    let values: Vec<String> = (1..=20).map(txt_value).collect();
    for value in &values {
        assert_eq!(server.update(&account, value).status, 200);
    }
    // Without EDNS: 512 bytes at most, so TC and no answers.
    let small = raw(&server, &query(&full, t::TXT, None)).unwrap();
    assert!(small.len() <= 512);
    let m = Message::decode(&small);
    assert!(m.tc() && m.answers.is_empty() && m.opt().is_none(), "{m:?}");
    // With EDNS 1232: fits. Our OPT says 1232, not acme-dns's fixed 512.
    let m = ask_udp(&server, &query(&full, t::TXT, Some(1232)));
    assert!(!m.tc());
    assert_eq!(m.txts(), values);
    assert_eq!(m.opt().unwrap().class, 1232);
    // A client asking for 4096 still gets at most our 1232.
    let m = ask_udp(&server, &query(&full, t::TXT, Some(4096)));
    assert_eq!(m.opt().unwrap().class, 1232);
    // Over TCP: everything, in update order.
    let m = Message::decode(&server.tcp_exchange(&query(&full, t::TXT, None)).unwrap());
    assert!(!m.tc());
    assert_eq!(m.txts(), values);
}

#[test]
fn edns_version_and_do_bit() {
    let (server, _dir) = TestServer::start();
    // No OPT in, no OPT out.
    assert!(server.ask(DOMAIN, t::SOA).opt().is_none());
    // DO echoed.
    let mut q = query(DOMAIN, t::SOA, Some(1232));
    let ttl_at = q.len() - 6;
    q[ttl_at + 2] = 0x80;
    let m = ask_udp(&server, &q);
    assert_eq!(m.opt().unwrap().ttl & 0x8000, 0x8000);
    // Version 1: BADVERS (extended rcode 1, header rcode 0), no answer.
    let mut q = query(DOMAIN, t::SOA, Some(1232));
    q[ttl_at + 1] = 1;
    let m = ask_udp(&server, &q);
    assert_eq!(m.rcode, 0);
    assert_eq!(m.opt().unwrap().ttl >> 24, 1, "extended rcode BADVERS");
    assert!(m.answers.is_empty());
}

#[test]
fn any_is_minimal_and_transfers_and_other_classes_are_refused() {
    let (server, _dir) = TestServer::start();
    let m = server.ask(DOMAIN, t::ANY);
    assert_eq!((m.rcode, m.answers.len()), (rcode::NOERROR, 1), "RFC 8482: one RRset");
    assert_eq!(server.ask(DOMAIN, t::AXFR).rcode, rcode::REFUSED);
    let mut q = query(DOMAIN, t::TXT, None);
    let len = q.len();
    q[len - 1] = 3; // class CH
    assert_eq!(ask_udp(&server, &q).rcode, rcode::REFUSED);
}

#[test]
fn malformed_packets_get_formerr_and_the_server_survives() {
    let (server, _dir) = TestServer::start();
    let good = query(DOMAIN, t::SOA, None);
    let formerr = |packet: &[u8], what: &str| {
        let reply = raw(&server, packet).unwrap_or_else(|| panic!("{what}: no reply"));
        assert_eq!(reply[3] & 0x0F, rcode::FORMERR, "{what}");
        assert_eq!(&reply[..2], &packet[..2], "{what}: ID echoed");
        assert_eq!(reply[2] & 0x80, 0x80, "{what}: QR");
    };
    formerr(&good[..5], "truncated header");
    formerr(&good[..good.len() - 2], "truncated question");
    let mut bad_len = good.clone();
    bad_len[12] = 60; // first label claims 60 bytes
    formerr(&bad_len, "label length past the end");
    for label_type in [0x40u8, 0x80] {
        let mut p = good.clone();
        p[12] = label_type | 3;
        formerr(&p, "reserved label type");
    }
    let mut ptr_loop = good[..12].to_vec();
    ptr_loop.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1]); // pointer to itself
    formerr(&ptr_loop, "compression loop in the question");
    let mut qd0 = good.clone();
    qd0[5] = 0;
    formerr(&qd0, "QDCOUNT 0");
    let mut qd2 = good.clone();
    qd2[5] = 2;
    formerr(&qd2, "QDCOUNT 2 with one question");
    let mut two = good.clone();
    two[5] = 2;
    two.extend_from_slice(&good[12..]);
    formerr(&two, "QDCOUNT 2 with two questions");
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    formerr(&trailing, "trailing garbage");
    let mut forward = good.clone();
    forward[11] = 1; // ARCOUNT 1: a record whose owner points forward
    let at = forward.len() as u8;
    forward.extend_from_slice(&[0xC0, at + 4, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    formerr(&forward, "forward compression pointer");
    // Responses and scraps get silence (never answer a response: no loops).
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(raw(&server, &response).is_none(), "a response must not be answered");
    assert!(raw(&server, &[0x42]).is_none(), "one byte gets silence");
    // Still serving.
    assert_eq!(server.ask(DOMAIN, t::SOA).rcode, rcode::NOERROR);
}

#[test]
fn opcodes_other_than_query_are_notimp() {
    let (server, _dir) = TestServer::start();
    for opcode in [1u8, 2, 4, 5] {
        let mut q = query(DOMAIN, t::SOA, None);
        q[2] = opcode << 3;
        let reply = raw(&server, &q).expect("a reply");
        assert_eq!(reply[3] & 0x0F, rcode::NOTIMP, "opcode {opcode}");
        assert_eq!((reply[2] >> 3) & 0x0F, opcode, "opcode echoed");
    }
}

#[test]
fn tcp_serves_several_queries_per_connection() {
    let (server, _dir) = TestServer::start();
    let mut stream = TcpStream::connect(server.tcp).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut batch = Vec::new();
    for (i, qtype) in [t::SOA, t::NS, t::A].iter().enumerate() {
        let mut q = query(DOMAIN, *qtype, None);
        q[1] = i as u8;
        batch.extend_from_slice(&(q.len() as u16).to_be_bytes());
        batch.extend_from_slice(&q);
    }
    stream.write_all(&batch).unwrap(); // pipelined
    for i in 0..3u8 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).unwrap();
        let m = Message::decode(&reply);
        assert_eq!((m.id & 0xFF) as u8, i);
        assert_eq!((m.rcode, m.answers.len()), (rcode::NOERROR, 1));
    }
}

#[test]
fn several_listen_addresses_and_ipv6() {
    let dir = TempDir::new();
    let ipv6 = UdpSocket::bind("[::1]:0").is_ok();
    let listen = if ipv6 {
        "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\", \"[::1]:0\"]"
    } else {
        eprintln!("no IPv6 loopback here: testing two IPv4 addresses only");
        "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]"
    };
    let config = base_config(&dir.0).replace("listen = \"127.0.0.1:0\"", listen);
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(server.udp_all.len(), if ipv6 { 3 } else { 2 });
    for addr in &server.udp_all {
        let reply =
            udp_exchange(*addr, &query(DOMAIN, t::SOA, None)).unwrap_or_else(|| panic!("{addr} silent"));
        assert_eq!(Message::decode(&reply).rcode, rcode::NOERROR, "{addr}");
    }
    if ipv6 {
        assert!(server.udp_all.iter().any(|a| a.is_ipv6()));
    }
}
