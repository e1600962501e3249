//! DNS behaviour against the real server over UDP and TCP.
//!
//! Every test starts its own server and talks to it with real packets, built and decoded by
//! the harness (never by the code under test). Expectations come from DESIGN.md sections 3
//! (where acme-delegate deliberately differs from acme-dns) and 4 (DNS behaviour).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Starts a server with the config `make_config` writes for its directory.
///
/// With port 0 the server lets the kernel pick the UDP port and then binds TCP to the same
/// number, which fails now and then when that TCP port is already in use (e.g. by the
/// ephemeral port of some client connection). That start-up race is the server's, not what
/// these tests are about, so such a start is retried in a fresh directory.
fn start_with(make_config: impl Fn(&TempDir) -> String) -> (TestServer, TempDir) {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let dir = TempDir::new();
        match TestServer::try_start(&dir, &make_config(&dir)) {
            Ok(server) => return (server, dir),
            Err(log) if attempt < ATTEMPTS && log.iter().any(|l| l.contains("Address already in use")) => {
                eprintln!("start-up port collision (attempt {attempt}), retrying: {}", log.join(" | "));
            }
            Err(log) => panic!("server did not start:\n{}", log.join("\n")),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Starts a server with the base config.
fn start() -> (TestServer, TempDir) {
    start_with(|dir| base_config(&dir.0))
}

/// Header flag bits (bytes 2 and 3 of the header as one u16).
mod flag {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
}

/// Opcode of a decoded message.
fn opcode(m: &Message) -> u16 {
    (m.flags >> 11) & 0x0F
}

/// A query with EDNS: UDP size, EDNS version and DO bit chosen.
fn edns_query(name: &str, qtype: u16, size: u16, version: u8, dnssec_ok: bool) -> Vec<u8> {
    let mut m = query(name, qtype, Some(size));
    let n = m.len();
    // OPT: owner(1) type(2) class(2) ext-rcode(1) version(1) flags(2) rdlen(2).
    m[n - 5] = version;
    if dnssec_ok {
        m[n - 4] |= 0x80;
    }
    m
}

/// `packet` with its ID replaced.
fn with_id(mut packet: Vec<u8>, id: u16) -> Vec<u8> {
    packet[..2].copy_from_slice(&id.to_be_bytes());
    packet
}

/// One UDP exchange that must get a reply, decoded.
fn udp_ask(addr: SocketAddr, packet: &[u8]) -> Message {
    let reply =
        udp_exchange(addr, packet).unwrap_or_else(|| panic!("no UDP reply from {addr} to {packet:02x?}"));
    Message::decode(&reply)
}

/// One TCP exchange with the server's first TCP address that must get a reply, decoded.
fn tcp_ask(server: &TestServer, packet: &[u8]) -> Message {
    Message::decode(&server.tcp_exchange(packet).expect("a TCP reply"))
}

/// Asserts that the server still answers a normal query correctly.
fn assert_serving(server: &TestServer) {
    let reply = udp_ask(server.udp, &with_id(query(DOMAIN, t::SOA, None), 0x5151));
    assert_eq!(reply.id, 0x5151);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.aa());
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].rtype, t::SOA);
    assert!(!server.log_text().contains("panicked"), "server log shows a panic:\n{}", server.log_text());
}

/// Asserts a bare FORMERR reply to a malformed message that carried `id`.
fn assert_formerr(server: &TestServer, packet: &[u8], id: u16) {
    let raw = server.udp_exchange(packet).unwrap_or_else(|| panic!("no reply to malformed {packet:02x?}"));
    assert!(raw.len() >= 12, "reply shorter than a header: {raw:02x?}");
    let reply = Message::decode(&raw);
    assert_eq!(reply.id, id, "ID echoed");
    assert_ne!(reply.flags & flag::QR, 0, "QR set");
    assert_eq!(reply.rcode, rcode::FORMERR, "rcode for {packet:02x?}");
    assert_eq!(opcode(&reply), 0);
    assert_eq!(reply.flags & (flag::AA | flag::TC | flag::RA), 0);
    assert!(reply.answers.is_empty() && reply.authority.is_empty() && reply.additional.is_empty());
}

/// Asserts that `packet` gets no reply over UDP, and that the server is alive afterwards.
///
/// The bad packet and then a good probe are sent from one socket; once the probe's reply is
/// in, we wait a little longer for a late reply to the bad packet. This proves silence is a
/// choice (the server did answer the probe) and costs well under the 2 s of `udp_exchange`.
fn assert_silent_udp(server: &TestServer, packet: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(packet, server.udp).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    socket.send_to(&with_id(query(DOMAIN, t::SOA, None), 0x7E57), server.udp).unwrap();
    let start = Instant::now();
    let mut deadline = start + Duration::from_secs(2);
    let mut got_probe = false;
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        socket.set_read_timeout(Some(deadline - Instant::now())).unwrap();
        let Ok((len, _)) = socket.recv_from(&mut buf) else { break };
        let reply = Message::decode(&buf[..len]);
        assert_eq!(reply.id, 0x7E57, "unexpected reply to {packet:02x?}: {reply:?}");
        assert_eq!(reply.rcode, rcode::NOERROR);
        got_probe = true;
        deadline = Instant::now() + Duration::from_millis(400);
    }
    assert!(got_probe, "the probe after {packet:02x?} got no answer: server dead?");
}

/// The five numbers of an SOA record (serial, refresh, retry, expire, minimum).
fn soa_fields(record: &Record) -> [u32; 5] {
    assert_eq!(record.rtype, t::SOA);
    let mut pos = 0;
    for _ in 0..2 {
        loop {
            let len = record.rdata[pos];
            if len & 0xC0 == 0xC0 {
                pos += 2;
                break;
            }
            pos += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
    }
    let rest = &record.rdata[pos..];
    assert_eq!(rest.len(), 20, "SOA rdata ends with five 32-bit fields");
    std::array::from_fn(|i| u32::from_be_bytes(rest[4 * i..4 * i + 4].try_into().unwrap()))
}

/// Registers an account; returns it and its full domain name.
fn register(server: &TestServer) -> (serde_json::Value, String) {
    let account = server.register();
    let fulldomain = account["fulldomain"].as_str().expect("fulldomain").to_owned();
    assert_eq!(fulldomain, format!("{}.{DOMAIN}", account["subdomain"].as_str().unwrap()));
    (account, fulldomain)
}

/// Updates an account's TXT and checks the API accepted it.
fn update_ok(server: &TestServer, account: &serde_json::Value, txt: &str) {
    let r = server.update(account, txt);
    assert_eq!(r.status, 200, "update: {}", r.body_text());
}

/// The current apex SOA serial.
fn serial(server: &TestServer) -> u32 {
    let reply = server.ask(DOMAIN, t::SOA);
    assert_eq!(reply.answers.len(), 1);
    soa_fields(&reply.answers[0])[0]
}

/// Asserts a NODATA answer: NOERROR, AA, no answers, exactly the zone SOA in authority.
fn assert_nodata(reply: &Message) {
    assert_eq!(reply.rcode, rcode::NOERROR, "{reply:?}");
    assert!(reply.aa(), "AA on NODATA");
    assert!(!reply.tc());
    assert!(reply.answers.is_empty(), "no answers: {:?}", reply.answers);
    assert_eq!(reply.authority.len(), 1, "{:?}", reply.authority);
    assert_eq!(reply.authority[0].rtype, t::SOA);
    assert_eq!(reply.authority[0].owner.to_ascii_lowercase(), format!("{DOMAIN}."));
}

/// Asserts a REFUSED answer: nothing in any section, not authoritative.
fn assert_refused(reply: &Message) {
    assert_eq!(reply.rcode, rcode::REFUSED, "{reply:?}");
    assert!(!reply.aa(), "no AA outside the zone");
    assert!(reply.answers.is_empty() && reply.authority.is_empty(), "{reply:?}");
}

/// The base config with `general.listen` replaced by `listen`.
fn config_with_listen(dir: &TempDir, listen: &str) -> String {
    let config = base_config(&dir.0);
    let old = "listen = \"127.0.0.1:0\"";
    assert!(config.contains(old), "base config changed its listen line");
    config.replacen(old, &format!("listen = {listen}"), 1)
}

/// Asserts an NXDOMAIN answer to `name`: AA, no answers, exactly one SOA in authority.
fn assert_nxdomain(reply: &Message, name: &str) {
    assert_eq!(reply.rcode, rcode::NXDOMAIN, "{name}");
    assert!(reply.aa(), "AA on NXDOMAIN: {name}");
    assert!(reply.answers.is_empty(), "exact names only: {name}");
    assert_eq!(reply.authority.len(), 1, "{name}");
    assert_eq!(reply.authority[0].rtype, t::SOA);
}

// ---------------------------------------------------------------------------------------------
// Apex and static data
// ---------------------------------------------------------------------------------------------

#[test]
fn apex_soa_is_authoritative() {
    let (server, _dir) = start();
    let reply = server.ask(DOMAIN, t::SOA);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.aa());
    assert_eq!(reply.answers.len(), 1);
}

#[test]
fn static_txt_data_keeps_its_case() {
    let (server, _dir) = start();
    let reply = server.ask(DOMAIN, t::TXT);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.aa());
    assert_eq!(reply.txts(), vec!["Hello World, Mixed Case".to_owned()]);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].ttl, 3600, "static records without a TTL get the default");
    // Static A at the apex as written.
    let reply = server.ask(DOMAIN, t::A);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].rdata, vec![192, 0, 2, 1]);
}

#[test]
fn unknown_name_in_zone_is_nxdomain_with_soa() {
    let (server, _dir) = start();
    let name = format!("no-such-name.{DOMAIN}");
    assert_nxdomain(&server.ask(&name, t::TXT), &name);
}

// ---------------------------------------------------------------------------------------------
// Registered names (DESIGN.md section 3 table)
// ---------------------------------------------------------------------------------------------

#[test]
fn registered_name_without_value_is_nodata_not_nxdomain() {
    let (server, _dir) = start();
    let (_account, fulldomain) = register(&server);
    let reply = server.ask(&fulldomain, t::TXT);
    assert_nodata(&reply);
    // Same over TCP.
    assert_nodata(&tcp_ask(&server, &query(&fulldomain, t::TXT, None)));
}

#[test]
fn registered_name_a_and_aaaa_are_nodata() {
    let (server, _dir) = start();
    let (account, fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(1));
    for qtype in [t::A, t::AAAA, t::MX] {
        let reply = server.ask(&fulldomain, qtype);
        assert_nodata(&reply);
    }
    // The TXT is there all along: the name exists.
    assert_eq!(server.ask(&fulldomain, t::TXT).txts(), vec![txt_value(1)]);
}

#[test]
fn registered_label_under_a_foreign_domain_is_refused() {
    let (server, _dir) = start();
    let (account, _fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(7));
    let sub = account["subdomain"].as_str().unwrap();
    let reply = server.ask(&format!("{sub}.evil.com"), t::TXT);
    assert_refused(&reply);
    assert!(reply.txts().is_empty(), "values must not leak to other zones");
}

#[test]
fn registered_label_under_other_names_is_refused() {
    let (server, _dir) = start();
    let (account, _fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(8));
    let sub = account["subdomain"].as_str().unwrap();
    // Bare label, the parent of the zone, a suffix trick, and a look-alike zone.
    for name in [
        sub.to_owned(),
        format!("{sub}.example.org"),
        format!("{sub}.{DOMAIN}.evil.com"),
        format!("{sub}.xauth.example.org"),
        "example.org".to_owned(),
        "org".to_owned(),
    ] {
        let reply = server.ask(&name, t::TXT);
        assert_refused(&reply);
    }
}

#[test]
fn names_below_a_registered_name_are_nxdomain() {
    let (server, _dir) = start();
    let (account, fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(9));
    for name in [format!("_acme-challenge.{fulldomain}"), format!("x.{fulldomain}")] {
        assert_nxdomain(&server.ask(&name, t::TXT), &name);
    }
}

// ---------------------------------------------------------------------------------------------
// TXT values
// ---------------------------------------------------------------------------------------------

#[test]
fn two_latest_values_are_served_in_update_order() {
    let (server, _dir) = start();
    let (account, fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(1));
    assert_eq!(server.ask(&fulldomain, t::TXT).txts(), vec![txt_value(1)]);
    update_ok(&server, &account, &txt_value(2));
    let reply = server.ask(&fulldomain, t::TXT);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.aa());
    assert_eq!(reply.txts(), vec![txt_value(1), txt_value(2)]);
    assert!(reply.answers.iter().all(|r| r.ttl == 1 && r.class == 1), "TXT TTL 1, class IN");
    assert!(reply.authority.is_empty());
    update_ok(&server, &account, &txt_value(3));
    assert_eq!(server.ask(&fulldomain, t::TXT).txts(), vec![txt_value(2), txt_value(3)]);
}

#[test]
fn four_quick_updates_serve_the_third_and_fourth_in_order() {
    let (server, _dir) = start();
    let (account, fulldomain) = register(&server);
    let start = Instant::now();
    for n in 1..=4 {
        update_ok(&server, &account, &txt_value(n));
    }
    eprintln!("four updates took {:?}", start.elapsed());
    let expected = vec![txt_value(3), txt_value(4)];
    assert_eq!(server.ask(&fulldomain, t::TXT).txts(), expected);
    assert_eq!(tcp_ask(&server, &query(&fulldomain, t::TXT, None)).txts(), expected);
}

#[test]
fn soa_serial_moves_with_updates() {
    let (server, _dir) = start();
    let (account, _fulldomain) = register(&server);
    let before = serial(&server);
    update_ok(&server, &account, &txt_value(1));
    let after = serial(&server);
    assert!(after.wrapping_sub(before) as i32 > 0, "serial {before} -> {after} must increase");
    update_ok(&server, &account, &txt_value(2));
    let again = serial(&server);
    assert!(again.wrapping_sub(after) as i32 > 0, "serial {after} -> {again} must increase");
    // Registration alone is a zone change too.
    register(&server);
    let registered = serial(&server);
    assert!(registered.wrapping_sub(again) as i32 > 0, "serial {again} -> {registered} must increase");
}

// ---------------------------------------------------------------------------------------------
// Negative TTL
// ---------------------------------------------------------------------------------------------

/// Checks SOA TTLs: `soa_ttl` in a positive answer, `negative` in NODATA and NXDOMAIN.
fn check_negative_ttl(server: &TestServer, negative: u32) {
    let soa = server.ask(DOMAIN, t::SOA);
    assert_eq!(soa.answers[0].ttl, 3600, "SOA TTL in a positive answer");
    assert_eq!(soa_fields(&soa.answers[0])[4], negative, "SOA MINIMUM is the negative TTL");
    let (_account, fulldomain) = register(server);
    let nodata = server.ask(&fulldomain, t::TXT);
    assert_nodata(&nodata);
    assert_eq!(nodata.authority[0].ttl, negative, "NODATA SOA TTL");
    let nodata_apex = server.ask(DOMAIN, t::MX);
    assert_nodata(&nodata_apex);
    assert_eq!(nodata_apex.authority[0].ttl, negative, "apex NODATA SOA TTL");
    let nx = server.ask(&format!("nope.{DOMAIN}"), t::A);
    assert_eq!(nx.rcode, rcode::NXDOMAIN);
    assert_eq!(nx.authority.len(), 1);
    assert_eq!(nx.authority[0].ttl, negative, "NXDOMAIN SOA TTL");
    assert_eq!(soa_fields(&nx.authority[0])[4], negative);
}

#[test]
fn negative_ttl_is_30_by_default() {
    let (server, _dir) = start();
    check_negative_ttl(&server, 30);
}

#[test]
fn negative_ttl_is_configurable() {
    let (server, _dir) = start_with(|dir| with_keys(&base_config(&dir.0), "dns", "negative_ttl = 5"));
    check_negative_ttl(&server, 5);
}

// ---------------------------------------------------------------------------------------------
// EDNS, truncation, TCP fallback
// ---------------------------------------------------------------------------------------------

#[test]
fn opt_advertises_1232_by_default() {
    let (server, _dir) = start();
    for asked in [512, 1232, 4096] {
        let reply = udp_ask(server.udp, &query(DOMAIN, t::SOA, Some(asked)));
        assert_eq!(reply.rcode, rcode::NOERROR);
        let opt = reply.opt().expect("OPT in the reply");
        assert_eq!(opt.owner, ".");
        assert_eq!(opt.class, 1232, "advertised UDP size when asked with {asked}");
        assert_eq!(opt.ttl, 0, "ext rcode 0, version 0, DO clear");
        assert!(opt.rdata.is_empty(), "no options");
        assert_eq!(reply.additional.len(), 1, "exactly one OPT");
    }
}

#[test]
fn no_opt_in_query_means_no_opt_in_reply() {
    let (server, _dir) = start();
    for reply in [server.ask(DOMAIN, t::SOA), server.ask(&format!("nope.{DOMAIN}"), t::A)] {
        assert!(reply.opt().is_none());
        assert!(reply.additional.is_empty());
    }
    assert!(tcp_ask(&server, &query(DOMAIN, t::SOA, None)).opt().is_none());
}

#[test]
fn edns_version_1_gets_badvers() {
    let (server, _dir) = start();
    let reply = udp_ask(server.udp, &edns_query(DOMAIN, t::SOA, 1232, 1, false));
    assert_eq!(reply.id, 0x4242);
    assert_eq!(reply.rcode, 0, "header carries the low 4 bits of BADVERS (16)");
    let opt = reply.opt().expect("OPT in a BADVERS reply");
    assert_eq!(opt.ttl >> 24, 1, "extended rcode high bits: 16 >> 4");
    assert_eq!((opt.ttl >> 16) & 0xFF, 0, "we speak version 0");
    assert!(reply.answers.is_empty() && reply.authority.is_empty());
    assert_eq!(reply.qname.as_deref(), Some(format!("{DOMAIN}.").as_str()));
}

#[test]
fn do_bit_is_echoed() {
    let (server, _dir) = start();
    let reply = udp_ask(server.udp, &edns_query(DOMAIN, t::SOA, 1232, 0, true));
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert_eq!(reply.answers.len(), 1);
    let opt = reply.opt().expect("OPT");
    assert_eq!(opt.ttl & 0x8000, 0x8000, "DO echoed");
    assert_eq!(opt.ttl & !0x8000, 0, "nothing else set");
    let reply = udp_ask(server.udp, &edns_query(DOMAIN, t::SOA, 1232, 0, false));
    assert_eq!(reply.opt().expect("OPT").ttl & 0x8000, 0, "DO not set when not asked");
}

/// A server with `txt_values = 20`, one account holding 20 values; returns its full domain.
fn server_with_twenty_values() -> (TestServer, TempDir, String) {
    let (server, dir) = start_with(|dir| with_keys(&base_config(&dir.0), "dns", "txt_values = 20"));
    let (account, fulldomain) = register(&server);
    for n in 1..=20 {
        update_ok(&server, &account, &txt_value(n));
    }
    (server, dir, fulldomain)
}

#[test]
fn answer_over_512_bytes_sets_tc_without_edns_and_tcp_has_all() {
    let (server, _dir, fulldomain) = server_with_twenty_values();
    let expected: Vec<String> = (1..=20).map(txt_value).collect();

    // UDP without EDNS: 20 TXT records do not fit 512 bytes.
    let raw = server.udp_exchange(&query(&fulldomain, t::TXT, None)).expect("UDP reply");
    assert!(raw.len() <= 512, "UDP reply without EDNS is {} bytes", raw.len());
    let reply = Message::decode(&raw);
    assert!(reply.tc(), "TC set");
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.answers.is_empty(), "truncated reply carries no partial answer");
    assert_eq!(reply.qname.as_deref(), Some(format!("{fulldomain}.").as_str()), "question kept");

    // EDNS with 512: still truncated, OPT kept.
    let raw = server.udp_exchange(&query(&fulldomain, t::TXT, Some(512))).expect("UDP reply");
    assert!(raw.len() <= 512);
    let reply = Message::decode(&raw);
    assert!(reply.tc());
    assert!(reply.answers.is_empty());
    assert_eq!(reply.opt().expect("OPT kept in a truncated reply").class, 1232);

    // TCP: everything, in update order.
    let reply = tcp_ask(&server, &query(&fulldomain, t::TXT, None));
    assert!(!reply.tc());
    assert!(reply.aa());
    assert_eq!(reply.txts(), expected);
}

#[test]
fn edns_1232_fits_twenty_values_over_udp() {
    let (server, _dir, fulldomain) = server_with_twenty_values();
    let expected: Vec<String> = (1..=20).map(txt_value).collect();
    let raw = server.udp_exchange(&query(&fulldomain, t::TXT, Some(1232))).expect("UDP reply");
    assert!(raw.len() > 512 && raw.len() <= 1232, "{} bytes", raw.len());
    let reply = Message::decode(&raw);
    assert!(!reply.tc());
    assert_eq!(reply.txts(), expected);
    assert_eq!(reply.opt().expect("OPT").class, 1232);
}

// ---------------------------------------------------------------------------------------------
// Malformed packets
// ---------------------------------------------------------------------------------------------

/// A normal query with ID `id` whose bytes are then changed by `edit`.
fn mangled(id: u16, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut m = with_id(query(&format!("abc.{DOMAIN}"), t::TXT, None), id);
    edit(&mut m);
    m
}

#[test]
fn truncated_header_gets_formerr_with_its_id() {
    let (server, _dir) = start();
    assert_formerr(&server, &[0xAB, 0xCD, 0x00, 0x00, 0x00], 0xABCD);
    assert_formerr(&server, &[0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00], 0x1234);
    // The RD bit of a short header is copied like in any reply.
    let reply = Message::decode(&server.udp_exchange(&[0x12, 0x35, 0x01, 0x00]).expect("reply"));
    assert_eq!(reply.rcode, rcode::FORMERR);
    assert_ne!(reply.flags & flag::RD, 0);
    assert_serving(&server);
}

#[test]
fn label_length_past_the_end_gets_formerr() {
    let (server, _dir) = start();
    // Header, QDCOUNT 1, then a label claiming 10 bytes with only 3 present.
    let mut m = vec![0x0B, 0xAD, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&[10, b'a', b'b', b'c']);
    assert_formerr(&server, &m, 0x0BAD);
    // A label length that swallows the rest of the question.
    assert_formerr(&server, &mangled(0x0BAE, |m| m[12] = 63), 0x0BAE);
    // Question cut off inside QTYPE/QCLASS.
    let full = with_id(query(DOMAIN, t::SOA, None), 0x0BB0);
    assert_formerr(&server, &full[..full.len() - 2], 0x0BB0);
    assert_formerr(&server, &full[..full.len() - 3], 0x0BB0);
    // Name cut off before its root label.
    let mut m = vec![0x0B, 0xAF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&[3, b'a', b'b', b'c']);
    assert_formerr(&server, &m, 0x0BAF);
    assert_serving(&server);
}

#[test]
fn reserved_label_types_get_formerr() {
    let (server, _dir) = start();
    assert_formerr(&server, &mangled(0x4040, |m| m[12] = 0x43), 0x4040);
    assert_formerr(&server, &mangled(0x8080, |m| m[12] = 0x83), 0x8080);
    assert_serving(&server);
}

#[test]
fn compression_pointer_in_question_gets_formerr() {
    let (server, _dir) = start();
    // A pointer to itself (offset 12): a loop.
    let mut m = vec![0xC0, 0xC0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 16, 0, 1];
    assert_formerr(&server, &m, 0xC0C0);
    // A pointer into the header.
    m[13] = 0;
    assert_formerr(&server, &m, 0xC0C0);
    // A label followed by a pointer back to it.
    let m = vec![0xC0, 0xC1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0xC0, 12, 0, 16, 0, 1];
    assert_formerr(&server, &m, 0xC0C1);
    // In an additional record, a pointer forward (past itself) is rejected too.
    let forward = mangled(0xC0C2, |m| {
        m[11] = 1;
        let at = m.len() as u8;
        m.extend_from_slice(&[0xC0, at + 4, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    });
    assert_formerr(&server, &forward, 0xC0C2);
    assert_serving(&server);
}

#[test]
fn question_count_zero_gets_formerr() {
    let (server, _dir) = start();
    assert_formerr(&server, &mangled(0x0000, |m| m[5] = 0), 0x0000);
    // Header only, QDCOUNT 0.
    assert_formerr(&server, &[0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0x0001);
    assert_serving(&server);
}

#[test]
fn question_count_two_gets_formerr() {
    let (server, _dir) = start();
    // QDCOUNT 2 with one question present.
    assert_formerr(&server, &mangled(0x0202, |m| m[5] = 2), 0x0202);
    // Two real questions.
    let second = mangled(0x0203, |m| {
        m[5] = 2;
        let question = m[12..].to_vec();
        m.extend_from_slice(&question);
    });
    assert_formerr(&server, &second, 0x0203);
    assert_serving(&server);
}

#[test]
fn trailing_garbage_gets_formerr() {
    let (server, _dir) = start();
    assert_formerr(&server, &mangled(0x7A11, |m| m.extend_from_slice(&[0xDE, 0xAD])), 0x7A11);
    assert_formerr(&server, &mangled(0x7A12, |m| m.push(0)), 0x7A12);
    // ARCOUNT 1 with no record behind it.
    assert_formerr(&server, &mangled(0x7A13, |m| m[11] = 1), 0x7A13);
    assert_serving(&server);
}

#[test]
fn response_bit_set_gets_no_reply() {
    let (server, _dir) = start();
    let mut m = query(DOMAIN, t::SOA, None);
    m[2] |= 0x80;
    assert_silent_udp(&server, &m);
    // Over TCP the connection is closed without a reply.
    let mut stream = TcpStream::connect(server.tcp).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut framed = (m.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&m);
    stream.write_all(&framed).unwrap();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("TCP reply to a response: {:02x?}", &buf[..n]),
        Err(e) => assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "expected the connection closed, got {e} after {:?}",
            start.elapsed()
        ),
    }
    assert_serving(&server);
}

#[test]
fn one_byte_packet_gets_no_reply() {
    let (server, _dir) = start();
    assert_silent_udp(&server, &[0x42]);
    assert_serving(&server);
}

#[test]
fn malformed_barrage_does_not_crash_the_server() {
    let (server, _dir) = start();
    let mut packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x42],
        vec![0xAB, 0xCD, 0x00, 0x00, 0x00],
        mangled(1, |m| m[12] = 63),
        mangled(2, |m| m[12] = 0x43),
        mangled(3, |m| m[12] = 0x83),
        vec![0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 16, 0, 1],
        mangled(5, |m| m[5] = 0),
        mangled(6, |m| m[5] = 2),
        mangled(7, |m| m.extend_from_slice(&[0xDE, 0xAD])),
        mangled(8, |m| m[2] |= 0x80),
        mangled(9, |m| m[7] = 0xFF),
        mangled(10, |m| m[11] = 0xFF),
        // An OPT with a truncated option and one with a non-root owner.
        {
            let mut m = query(DOMAIN, t::SOA, Some(1232));
            let n = m.len();
            m[n - 1] = 4;
            m.extend_from_slice(&[0, 10, 0, 9]);
            m
        },
        {
            let mut m = query(DOMAIN, t::SOA, Some(1232));
            let n = m.len();
            m[n - 11] = 1;
            m.insert(n - 10, 0);
            m.insert(n - 10, b'x');
            m
        },
        // Qtype OPT in the question.
        query(DOMAIN, t::OPT, None),
        // A name of 300 bytes.
        query(&["abcdefghij"; 30].join("."), t::A, None),
        vec![0xFF; 600],
    ];
    // Deterministic noise: a valid query with a few random bytes changed.
    let base = query(&format!("Some.Name.{DOMAIN}"), t::TXT, Some(1232));
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..400 {
        let mut noisy = base.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % noisy.len();
            noisy[at] = (state >> 32) as u8;
        }
        if state.is_multiple_of(7) {
            noisy.truncate((state >> 40) as usize % noisy.len());
        }
        packets.push(noisy);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, p) in packets.iter().enumerate() {
        socket.send_to(p, server.udp).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Every reply that comes back must be a well-formed message (decode panics otherwise).
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut replies = 0;
    while let Ok((len, _)) = socket.recv_from(&mut buf) {
        let reply = Message::decode(&buf[..len]);
        assert_ne!(reply.flags & flag::QR, 0);
        replies += 1;
    }
    assert!(replies > 0, "the barrage got no reply at all");
    // The same over TCP, one connection per packet.
    for p in packets.iter().take(20).filter(|p| !p.is_empty()) {
        if let Some(raw) = server.tcp_exchange(p) {
            Message::decode(&raw);
        }
    }
    assert_serving(&server);
    assert_eq!(tcp_ask(&server, &query(DOMAIN, t::SOA, None)).answers.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Opcodes
// ---------------------------------------------------------------------------------------------

/// Asserts that opcode `op` gets NOTIMP with ID and opcode echoed.
fn assert_notimp(op: u8) {
    let (server, _dir) = start();
    let id = 0x0F00 | u16::from(op);
    let mut m = with_id(query(DOMAIN, t::SOA, None), id);
    m[2] = (op << 3) | 0x01; // opcode, RD
    let reply = udp_ask(server.udp, &m);
    assert_eq!(reply.id, id);
    assert_eq!(reply.rcode, rcode::NOTIMP, "opcode {op}");
    assert_eq!(opcode(&reply), u16::from(op), "opcode echoed");
    assert_ne!(reply.flags & flag::QR, 0);
    assert_eq!(reply.flags & (flag::AA | flag::RA | flag::TC), 0);
    assert!(reply.answers.is_empty() && reply.authority.is_empty());
    let reply = tcp_ask(&server, &m);
    assert_eq!(reply.rcode, rcode::NOTIMP, "opcode {op} over TCP");
    assert_serving(&server);
}

#[test]
fn opcode_update_gets_notimp() {
    assert_notimp(5);
}

#[test]
fn opcode_notify_gets_notimp() {
    assert_notimp(4);
}

#[test]
fn opcode_iquery_gets_notimp() {
    assert_notimp(1);
}

#[test]
fn opcode_status_gets_notimp() {
    assert_notimp(2);
}

/// Issue 15, item 3: a message we do not serve that carries OPT gets its error reply with OPT
/// (RFC 6891 section 7); NOTIMP echoes the question. Without OPT, no OPT comes back.
#[test]
fn error_replies_to_edns_messages_carry_opt() {
    let (server, _dir) = start();
    for op in [5u8, 4, 15] {
        let mut m = with_id(query(DOMAIN, t::SOA, Some(1232)), 0x0E00 | u16::from(op));
        m[2] = op << 3;
        for reply in [udp_ask(server.udp, &m), tcp_ask(&server, &m)] {
            assert_eq!((reply.rcode, opcode(&reply)), (rcode::NOTIMP, u16::from(op)), "{reply:?}");
            assert_eq!(reply.qname.as_deref(), Some(format!("{DOMAIN}.").as_str()), "question echoed");
            assert_eq!(reply.additional.len(), 1, "{reply:?}");
            assert_eq!(reply.opt().map(|o| o.class), Some(1232), "our OPT in NOTIMP, opcode {op}");
        }
        let mut plain = with_id(query(DOMAIN, t::SOA, None), 0x0D00);
        plain[2] = op << 3;
        let reply = udp_ask(server.udp, &plain);
        assert_eq!(reply.rcode, rcode::NOTIMP);
        assert!(reply.qname.is_some() && reply.additional.is_empty(), "{reply:?}");
    }
    // No question, an OPT: FORMERR with OPT.
    let m = [0x0F, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0];
    let reply = udp_ask(server.udp, &m);
    assert_eq!((reply.id, reply.rcode), (0x0F01, rcode::FORMERR));
    assert!(reply.qname.is_none() && reply.answers.is_empty() && reply.authority.is_empty());
    let opt = reply.opt().expect("OPT in FORMERR to EDNS");
    assert_eq!(opt.ttl & 0x8000, 0x8000, "DO echoed");
    // Two OPT records are the malformation itself: FORMERR without OPT.
    let mut twice = with_id(query(DOMAIN, t::SOA, Some(1232)), 0x0F02);
    twice[11] = 2;
    twice.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
    assert_formerr(&server, &twice, 0x0F02);
    assert_serving(&server);
}

/// A query with EDNS (size 1232) whose OPT carries one option.
fn query_with_option(name: &str, qtype: u16, code: u16, data: &[u8]) -> Vec<u8> {
    let mut m = query(name, qtype, Some(1232));
    let n = m.len();
    m[n - 2..].copy_from_slice(&(4 + data.len() as u16).to_be_bytes());
    m.extend_from_slice(&code.to_be_bytes());
    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
    m.extend_from_slice(data);
    m
}

/// Issue 15, item 5: REFUSED answers say why in an Extended DNS Error (RFC 8914): 20, not
/// authoritative, for names outside the zone and other classes.
#[test]
fn refusals_carry_an_extended_dns_error() {
    let (server, _dir) = start();
    let mut chaos = query("version.bind", t::TXT, Some(1232));
    let class_at = 12 + name_wire("version.bind").len() + 2;
    chaos[class_at..class_at + 2].copy_from_slice(&3u16.to_be_bytes());
    for m in [query("example.com", t::A, Some(1232)), chaos] {
        let reply = udp_ask(server.udp, &m);
        assert_eq!(reply.rcode, rcode::REFUSED);
        assert_eq!(reply.opt().map(|o| o.rdata.clone()), Some(vec![0, 15, 0, 2, 0, 20]), "{reply:?}");
    }
    // Without EDNS there is nowhere to put it.
    let reply = udp_ask(server.udp, &query("example.com", t::A, None));
    assert!(reply.rcode == rcode::REFUSED && reply.additional.is_empty());
    // Answers that are not refusals carry none.
    assert_eq!(udp_ask(server.udp, &query(DOMAIN, t::SOA, Some(1232))).opt().map(|o| o.rdata.len()), Some(0));
}

/// Issue 15, item 5: `[dns] nsid` is sent to queries that carry an NSID option (RFC 5001),
/// and only to those.
#[test]
fn nsid_is_sent_when_configured_and_asked_for() {
    let (server, _dir) = start_with(|dir| with_keys(&base_config(&dir.0), "dns", "nsid = \"ns-test-1\""));
    let mut expected = vec![0, 3, 0, 9];
    expected.extend_from_slice(b"ns-test-1");
    for m in [query_with_option(DOMAIN, t::SOA, 3, &[]), query_with_option("nope.example.com", t::A, 3, &[])]
    {
        let reply = udp_ask(server.udp, &m);
        let opt = reply.opt().expect("OPT");
        assert!(opt.rdata.starts_with(&expected), "{reply:?}");
        assert_eq!(tcp_ask(&server, &m).opt().map(|o| o.rdata.starts_with(&expected)), Some(true));
    }
    // Another option (a cookie) does not ask for it.
    let reply = udp_ask(server.udp, &query_with_option(DOMAIN, t::SOA, 10, &[7; 8]));
    assert_eq!(reply.opt().map(|o| o.rdata.len()), Some(0));
    // Not configured: not sent.
    let (plain, _dir) = start();
    let reply = udp_ask(plain.udp, &query_with_option(DOMAIN, t::SOA, 3, &[]));
    assert_eq!(reply.opt().map(|o| o.rdata.len()), Some(0));
}

/// Issue 15, item 5: an answer for the apex NS carries the addresses of the name servers in the
/// zone in its additional section, as Knot's and BIND's do.
#[test]
fn apex_ns_answer_carries_in_zone_addresses() {
    let (server, _dir) = start();
    for reply in [server.ask(DOMAIN, t::NS), tcp_ask(&server, &query(DOMAIN, t::NS, Some(1232)))] {
        assert_eq!(reply.answers.len(), 1);
        let glue: Vec<&Record> = reply.additional.iter().filter(|r| r.rtype != t::OPT).collect();
        assert_eq!(glue.len(), 1, "{reply:?}");
        assert_eq!((glue[0].owner.as_str(), glue[0].rtype), (format!("ns1.{DOMAIN}.").as_str(), t::A));
        assert_eq!(glue[0].rdata, vec![192, 0, 2, 2]);
    }
    // Only there: the SOA answer has none.
    assert!(server.ask(DOMAIN, t::SOA).additional.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Header, case, meta queries
// ---------------------------------------------------------------------------------------------

#[test]
fn mixed_case_question_is_echoed_exactly() {
    let (server, _dir) = start();
    let asked = "AuTh.ExAmPlE.oRg";
    let reply = server.ask(asked, t::A);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert_eq!(reply.qname.as_deref(), Some("AuTh.ExAmPlE.oRg."));
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].owner, "AuTh.ExAmPlE.oRg.");

    let (account, fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(5));
    let mixed: String = fulldomain
        .chars()
        .enumerate()
        .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c })
        .collect();
    assert_ne!(mixed, fulldomain);
    let reply = server.ask(&mixed, t::TXT);
    assert_eq!(reply.qname.as_deref(), Some(format!("{mixed}.").as_str()));
    assert_eq!(reply.txts(), vec![txt_value(5)]);
    assert_eq!(reply.answers[0].owner, format!("{mixed}."));
    // Negative answers echo the question too; the SOA owner is a suffix of it.
    let reply = server.ask("NoPe.AUTH.example.ORG", t::A);
    assert_eq!(reply.rcode, rcode::NXDOMAIN);
    assert_eq!(reply.qname.as_deref(), Some("NoPe.AUTH.example.ORG."));
    assert_eq!(reply.authority[0].owner.to_ascii_lowercase(), format!("{DOMAIN}."));
}

#[test]
fn header_flags_aa_set_ra_clear_rd_copied_id_echoed() {
    let (server, _dir) = start();
    let (account, fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(6));
    let cases = [
        (DOMAIN.to_owned(), t::SOA, rcode::NOERROR),
        (fulldomain.clone(), t::TXT, rcode::NOERROR),
        (fulldomain.clone(), t::A, rcode::NOERROR),
        (format!("nope.{DOMAIN}"), t::A, rcode::NXDOMAIN),
    ];
    for (i, (name, qtype, expected)) in cases.iter().enumerate() {
        for rd in [false, true] {
            let id = 0xA000 + (i as u16) * 2 + u16::from(rd);
            let mut m = with_id(query(name, *qtype, None), id);
            if rd {
                m[2] |= 0x01;
            }
            for reply in [udp_ask(server.udp, &m), tcp_ask(&server, &m)] {
                assert_eq!(reply.id, id, "ID echoed");
                assert_eq!(reply.rcode, *expected, "{name}");
                assert_ne!(reply.flags & flag::QR, 0, "QR");
                assert_eq!(opcode(&reply), 0);
                assert_ne!(reply.flags & flag::AA, 0, "AA in zone: {name}");
                assert_eq!(reply.flags & flag::RA, 0, "RA never set");
                assert_eq!(reply.flags & flag::TC, 0);
                assert_eq!(reply.flags & flag::RD != 0, rd, "RD copied");
            }
        }
    }
    // RA is not set on REFUSED either, and RD is copied there too.
    let mut m = with_id(query("example.com", t::A, None), 0xBEEF);
    m[2] |= 0x01;
    let reply = udp_ask(server.udp, &m);
    assert_eq!(reply.id, 0xBEEF);
    assert_eq!(reply.rcode, rcode::REFUSED);
    assert_eq!(reply.flags & flag::RA, 0);
    assert_ne!(reply.flags & flag::RD, 0);
}

#[test]
fn any_at_apex_returns_one_rrset() {
    let (server, _dir) = start();
    for reply in [server.ask(DOMAIN, t::ANY), tcp_ask(&server, &query(DOMAIN, t::ANY, None))] {
        assert_eq!(reply.rcode, rcode::NOERROR);
        assert!(reply.aa());
        assert_eq!(reply.answers.len(), 1, "minimal ANY answer (RFC 8482): {:?}", reply.answers);
        assert!(reply.authority.is_empty() && reply.additional.is_empty());
    }
}

#[test]
fn axfr_is_refused() {
    let (server, _dir) = start();
    for reply in [server.ask(DOMAIN, t::AXFR), tcp_ask(&server, &query(DOMAIN, t::AXFR, None))] {
        assert_eq!(reply.rcode, rcode::REFUSED);
        assert!(reply.answers.is_empty() && reply.authority.is_empty());
        assert_eq!(reply.qname.as_deref(), Some(format!("{DOMAIN}.").as_str()));
    }
    // IXFR (251) too.
    assert_eq!(server.ask(DOMAIN, 251).rcode, rcode::REFUSED);
}

#[test]
fn class_ch_is_refused() {
    let (server, _dir) = start();
    let (account, fulldomain) = register(&server);
    update_ok(&server, &account, &txt_value(4));
    for name in [DOMAIN, fulldomain.as_str(), "version.bind"] {
        let mut m = query(name, t::TXT, None);
        let n = m.len();
        m[n - 2..].copy_from_slice(&3u16.to_be_bytes());
        let reply = udp_ask(server.udp, &m);
        assert_eq!(reply.rcode, rcode::REFUSED, "CH {name}");
        assert!(reply.answers.is_empty(), "no IN data for a CH query: {name}");
        assert!(!reply.aa());
    }
}

// ---------------------------------------------------------------------------------------------
// Transports and listen addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_pipelined_queries_are_all_answered() {
    let (server, _dir) = start();
    let queries = [
        with_id(query(DOMAIN, t::SOA, None), 1),
        with_id(query(DOMAIN, t::TXT, None), 2),
        with_id(query(&format!("nope.{DOMAIN}"), t::A, None), 3),
        with_id(query("example.com", t::A, None), 4),
        with_id(query(DOMAIN, t::NS, Some(1232)), 5),
    ];
    let mut stream = TcpStream::connect(server.tcp).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // All in one write, before reading anything.
    let mut framed = Vec::new();
    for q in &queries {
        framed.extend_from_slice(&(q.len() as u16).to_be_bytes());
        framed.extend_from_slice(q);
    }
    stream.write_all(&framed).unwrap();
    let mut replies: Vec<Message> = (0..queries.len())
        .map(|i| Message::decode(&read_frame(&mut stream).unwrap_or_else(|| panic!("reply {i}"))))
        .collect();
    replies.sort_by_key(|r| r.id);
    let ids: Vec<u16> = replies.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(replies[0].answers[0].rtype, t::SOA);
    assert_eq!(replies[1].txts(), vec!["Hello World, Mixed Case".to_owned()]);
    assert_eq!(replies[2].rcode, rcode::NXDOMAIN);
    assert_eq!(replies[3].rcode, rcode::REFUSED);
    assert_eq!(replies[4].answers[0].rtype, t::NS);
    assert!(replies[4].opt().is_some());
    // The connection stays usable for one more query.
    let q = with_id(query(DOMAIN, t::A, None), 6);
    stream.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    stream.write_all(&q).unwrap();
    let reply = Message::decode(&read_frame(&mut stream).expect("reply 6"));
    assert_eq!(reply.id, 6);
    assert_eq!(reply.answers[0].rdata, vec![192, 0, 2, 1]);
}

#[test]
fn ipv6_listen_address_answers() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping ipv6_listen_address_answers: cannot bind [::1] on this machine");
        return;
    }
    let (server, _dir) = start_with(|dir| config_with_listen(dir, r#"["127.0.0.1:0", "[::1]:0"]"#));
    assert_eq!(server.udp_all.len(), 2, "{:?}", server.udp_all);
    let v6 = *server.udp_all.iter().find(|a| a.is_ipv6()).expect("an IPv6 UDP address");
    let v4 = *server.udp_all.iter().find(|a| a.is_ipv4()).expect("an IPv4 UDP address");
    assert_eq!(v6.ip().to_string(), "::1");
    for addr in [v4, v6] {
        let reply = udp_ask(addr, &query(DOMAIN, t::SOA, None));
        assert_eq!(reply.rcode, rcode::NOERROR, "{addr}");
        assert!(reply.aa());
        assert_eq!(reply.answers.len(), 1);
    }
    let tcp_v6 = *server.tcp_all.iter().find(|a| a.is_ipv6()).expect("an IPv6 TCP address");
    let reply = Message::decode(&tcp_exchange(tcp_v6, &query(DOMAIN, t::TXT, None)).expect("TCP over IPv6"));
    assert_eq!(reply.txts(), vec!["Hello World, Mixed Case".to_owned()]);
}

#[test]
fn several_listen_addresses_all_answer() {
    let (server, _dir) = start_with(|dir| config_with_listen(dir, r#"["127.0.0.1:0", "127.0.0.2:0"]"#));
    let ips: Vec<String> = server.udp_all.iter().map(|a| a.ip().to_string()).collect();
    assert_eq!(ips, vec!["127.0.0.1", "127.0.0.2"]);
    let tcp = &server.tcp_all;
    assert_eq!(tcp.len(), 2, "{tcp:?}");
    for (i, addr) in server.udp_all.iter().chain(tcp).enumerate() {
        let id = 0x1000 + i as u16;
        let packet = with_id(query(DOMAIN, t::SOA, None), id);
        let reply = if i < server.udp_all.len() {
            udp_ask(*addr, &packet)
        } else {
            Message::decode(&tcp_exchange(*addr, &packet).unwrap_or_else(|| panic!("TCP {addr}")))
        };
        assert_eq!(reply.id, id, "{addr}");
        assert_eq!(reply.rcode, rcode::NOERROR, "{addr}");
        assert_eq!(reply.answers.len(), 1, "{addr}");
    }
}
