//! The same zone everywhere (issue 10, item 4): instances sharing one PostgreSQL serve the same
//! SOA serial and the same signatures, transfer the same records, keep their serial across a
//! restart, and feed one secondary that lists them all as primaries; an operator's command on
//! SQLite moves the serial as the store says.

use std::time::Duration;

use crate::harness::*;
use crate::pg;
use crate::xfr::{SECRET, Secondary, soa_serial, transfer_section, txts_at, within};

/// RR types used here.
const RRSIG: u16 = 46;

/// A query with EDNS and the DO bit.
pub(crate) fn query_do(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = query(name, qtype, Some(1232));
    let flags = q.len() - 4;
    q[flags] = 0x80;
    q
}

/// Every record of a DO answer (answer and authority sections) as (type, rdata), sorted.
pub(crate) fn signed_answer(server: &TestServer, name: &str, qtype: u16) -> Vec<(u16, Vec<u8>)> {
    let reply = Message::decode(&server.udp_exchange(&query_do(name, qtype)).expect("a reply"));
    let mut records: Vec<(u16, Vec<u8>)> =
        reply.answers.iter().chain(&reply.authority).map(|r| (r.rtype, r.rdata.clone())).collect();
    records.sort();
    records
}

/// The SOA serial a server gives.
fn serial(server: &TestServer) -> u32 {
    soa_serial(&server.ask(DOMAIN, t::SOA)).expect("an SOA")
}

/// The configuration of an instance on the PostgreSQL database `url`, signed with
/// `algorithm`, with transfers on (TSIG) and NOTIFY to `notify`.
fn pg_config(dir: &TempDir, url: &str, algorithm: &str, notify: &[u16]) -> String {
    pg_config_with(dir, url, &format!("algorithm = \"{algorithm}\""), notify)
}

/// Like [`pg_config`], with these `[dnssec]` lines besides `enabled`.
fn pg_config_with(dir: &TempDir, url: &str, dnssec: &str, notify: &[u16]) -> String {
    let base = postgres_config(&dir.0, url);
    let config = with_keys(&base, "dnssec", &format!("enabled = true\n{dnssec}"));
    let config = with_keys(&config, "api", "register_rate_limit = 0");
    with_keys(&config, "transfer", &transfer_section("\"127.0.0.1/32\"", notify))
}

/// The zone by AXFR (TSIG-keyed, through dig), one record a line, sorted: the order of names
/// in a transfer is free, the records are not.
pub(crate) fn axfr(server: &TestServer) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .args(["-p", &server.tcp.port().to_string(), &format!("@{}", server.tcp.ip())])
        .args(["-y", &format!("hmac-sha256:transfer-key:{SECRET}"), DOMAIN, "AXFR"])
        .args(["+noall", "+answer", "+nocomments"])
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    assert!(lines.len() > 10, "an AXFR from {}: {lines:?}", server.tcp);
    lines
}

/// The IXFR from `serial` (TSIG-keyed, through dig), one record a line, in the order sent.
pub(crate) fn ixfr(server: &TestServer, serial: u32) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .args(["-p", &server.tcp.port().to_string(), &format!("@{}", server.tcp.ip())])
        .args(["-y", &format!("hmac-sha256:transfer-key:{SECRET}"), DOMAIN, &format!("IXFR={serial}")])
        .args(["+noall", "+answer", "+nocomments"])
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Two instances on one database, updates through both, then the same bytes at both, also
/// after one restarts.
fn two_instances_serve_one_zone(algorithm: &str) {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let mut a = TestServer::start_with(&dir_a, &pg_config(&dir_a, &url, algorithm, &[]));
    let b = TestServer::start_with(&dir_b, &pg_config(&dir_b, &url, algorithm, &[]));
    assert_eq!(serial(&a), serial(&b), "the same serial before any change");
    let accounts: Vec<serde_json::Value> =
        (0..4).map(|i| if i % 2 == 0 { a.register() } else { b.register() }).collect();
    assert!(pg::eventually(Duration::from_secs(5), || serial(&a) == serial(&b)));
    let registered = serial(&a);
    for i in 0..12u32 {
        let via = if i % 3 == 0 { &b } else { &a };
        assert_eq!(via.update(&accounts[i as usize % 4], &txt_value(i)).status, 200);
    }
    let names: Vec<String> = accounts.iter().map(|a| a["fulldomain"].as_str().unwrap().to_owned()).collect();
    // The other instance applies the last version from the feed within moments.
    assert!(
        pg::eventually(Duration::from_secs(5), || serial(&a) == serial(&b)),
        "serials {} and {}",
        serial(&a),
        serial(&b)
    );
    let missing = format!("missing.{DOMAIN}");
    let compare = |a: &TestServer, b: &TestServer| {
        for (name, qtype) in names.iter().map(|n| (n.as_str(), t::TXT)).chain([
            (missing.as_str(), t::TXT),
            (names[0].as_str(), t::A),
            (DOMAIN, t::SOA),
            (DOMAIN, t::NS),
        ]) {
            let (at_a, at_b) = (signed_answer(a, name, qtype), signed_answer(b, name, qtype));
            assert!(at_a.iter().any(|(t, _)| *t == RRSIG), "{name}/{qtype} is signed: {at_a:?}");
            assert_eq!(at_a, at_b, "{algorithm}: {name}/{qtype} differs between the instances");
        }
        assert_eq!(axfr(a), axfr(b), "{algorithm}: the AXFRs differ");
    };
    compare(&a, &b);
    // The same journal: an IXFR from the serial after the registrations is the same, record for
    // record and in order, from either instance.
    let (from_a, from_b) = (ixfr(&a, registered), ixfr(&b, registered));
    let incremental =
        from_a.get(1).is_some_and(|l| l.contains(" SOA ") && l.contains(&format!(" {registered} ")));
    assert!(incremental, "an incremental answer (the old SOA second): {from_a:?}");
    assert_eq!(from_a, from_b, "{algorithm}: the IXFRs differ");
    let before = (serial(&a), signed_answer(&a, &names[1], t::TXT));
    // A restart reads the same version: the same serial, the same signatures.
    drop(a);
    a = TestServer::start_with(&dir_a, &pg_config(&dir_a, &url, algorithm, &[]));
    assert_eq!((serial(&a), signed_answer(&a, &names[1], t::TXT)), before, "{algorithm}: after a restart");
    compare(&a, &b);
    // And one more change, made through the restarted one.
    assert_eq!(a.update(&accounts[3], &txt_value(99)).status, 200);
    assert_eq!(serial(&a), before.0.wrapping_add(1), "one change, one serial step");
    assert!(pg::eventually(Duration::from_secs(5), || serial(&b) == serial(&a)));
    compare(&a, &b);
}

#[test]
fn same_zone_two_instances_serve_identical_bytes_with_ecdsa() {
    two_instances_serve_one_zone("ecdsap256sha256");
}

#[test]
fn same_zone_two_instances_serve_identical_bytes_with_ed25519() {
    two_instances_serve_one_zone("ed25519");
}

/// Knot as a TSIG-keyed secondary listing both `primaries` as masters.
fn knot_of_two(dir: &std::path::Path, port: u16, primaries: [std::net::SocketAddr; 2]) -> Secondary {
    let d = dir.display();
    let at = |p: std::net::SocketAddr| p.to_string().replace(':', "@");
    let config = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\nlog:\n  - target: \"{d}/knot.log\"\n    any: info\n\
         key:\n  - id: transfer-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         remote:\n  - id: a\n    address: {}\n    key: transfer-key\n  - id: b\n    address: {}\n    key: transfer-key\n\
         acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    key: transfer-key\n    action: notify\n\
         database:\n    storage: \"{d}\"\n\
         zone:\n  - domain: {DOMAIN}\n    master: [a, b]\n    acl: notify_from_primary\n    file: \"{d}/{DOMAIN}.zone\"\n",
        at(primaries[0]),
        at(primaries[1])
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("knot.conf"), config).unwrap();
    let argv = vec!["knotd".into(), "-c".into(), format!("{d}/knot.conf")];
    Secondary::spawn(argv, ([127, 0, 0, 1], port).into(), dir.join("knot.log"))
}

#[test]
fn same_zone_a_knot_secondary_of_two_instances_stays_correct_when_one_stops() {
    let url = pg::fresh_database();
    let knot_port = free_port(&["127.0.0.1"]);
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_with(&dir_a, &pg_config(&dir_a, &url, "ecdsap256sha256", &[knot_port]));
    let b = TestServer::start_with(&dir_b, &pg_config(&dir_b, &url, "ecdsap256sha256", &[knot_port]));
    let knot = knot_of_two(&dir_a.join("knot"), knot_port, [a.tcp, b.tcp]);
    let loaded = within(Duration::from_secs(10), || knot.serial() == Some(serial(&a)));
    assert!(loaded.is_some(), "first transfer:\n{}", knot.log_text());
    let accounts: Vec<serde_json::Value> = (0..3).map(|_| a.register()).collect();
    let name = |i: usize| accounts[i]["fulldomain"].as_str().unwrap().to_owned();
    // Updates through both: Knot follows whichever notifies, by IXFR from either.
    for i in 0..10u32 {
        let via = if i % 2 == 0 { &a } else { &b };
        assert_eq!(via.update(&accounts[i as usize % 3], &txt_value(i)).status, 200);
    }
    assert!(pg::eventually(Duration::from_secs(5), || serial(&a) == serial(&b)));
    let current = serial(&a);
    let caught_up = within(Duration::from_secs(10), || knot.serial() == Some(current));
    assert!(caught_up.is_some(), "Knot reaches {current}:\n{}", knot.log_text());
    for i in 0..3 {
        assert_eq!(txts_at(knot.addr, &name(i)), txts_at(a.udp, &name(i)), "{}", knot.log_text());
    }
    // One primary stops; updates go through the other, and Knot keeps up with it.
    drop(a);
    for i in 0..5u32 {
        assert_eq!(b.update(&accounts[i as usize % 3], &txt_value(100 + i)).status, 200);
    }
    let current = serial(&b);
    let caught_up = within(Duration::from_secs(15), || knot.serial() == Some(current));
    assert!(caught_up.is_some(), "Knot reaches {current} with one primary down:\n{}", knot.log_text());
    for i in 0..3 {
        assert_eq!(txts_at(knot.addr, &name(i)), txts_at(b.udp, &name(i)));
    }
    let log = knot.log_text();
    assert!(!log.contains("malformed") && !log.contains("failed to apply"), "{log}");
}

#[test]
fn same_zone_an_operator_command_on_sqlite_is_served_at_the_stores_serial() {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dnssec", "enabled = true"));
    let accounts = [server.register(), server.register()];
    assert_eq!(server.update(&accounts[0], &txt_value(1)).status, 200);
    let store_serial = || {
        let db = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
        let (version, base): (i64, i64) = db
            .query_row("SELECT version, serial_base FROM zone_version", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        (base as u32).wrapping_add(version as u32)
    };
    let before = serial(&server);
    assert_eq!(before, store_serial(), "the serial is the store's");
    let username = accounts[1]["username"].as_str().unwrap();
    let out = std::process::Command::new(binary())
        .args(["account", "delete", username, "-c"])
        .arg(dir.join("config.cfg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let name = accounts[1]["fulldomain"].as_str().unwrap();
    // The SQLite change feed looks once a second.
    assert!(pg::eventually(Duration::from_secs(5), || server.ask(name, t::TXT).rcode == rcode::NXDOMAIN));
    assert_eq!(serial(&server), before.wrapping_add(1), "one change, one step");
    assert_eq!(serial(&server), store_serial());
    assert!(!server.log_text().contains("resynchronised"), "followed the log: {}", server.log_text());
}

#[test]
fn same_zone_a_new_signing_epoch_is_recorded_once_and_applied_by_every_instance() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    // Signatures valid 12 s, renewed with 8 s left: a new epoch every few seconds.
    let config = |dir: &TempDir| pg_config_with(dir, &url, "signature_validity = 12\nrefresh = 8", &[]);
    let a = TestServer::start_with(&dir_a, &config(&dir_a));
    let b = TestServer::start_with(&dir_b, &config(&dir_b));
    let account = a.register();
    assert_eq!(a.update(&account, &txt_value(1)).status, 200);
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    let first = signed_answer(&a, &name, t::TXT);
    std::thread::sleep(Duration::from_secs(7));
    // Renewed, by one of them at a time, the same way at both.
    let same = || {
        serial(&a) == serial(&b)
            && signed_answer(&a, &name, t::TXT) == signed_answer(&b, &name, t::TXT)
            && signed_answer(&a, DOMAIN, t::SOA) == signed_answer(&b, DOMAIN, t::SOA)
    };
    assert!(pg::eventually(Duration::from_secs(3), same), "the instances disagree after a new epoch");
    assert_ne!(signed_answer(&a, &name, t::TXT), first, "the signatures were renewed");
    let recorded = |s: &TestServer| s.log_text().matches("recorded a new signing epoch").count();
    let applied = |s: &TestServer| s.log_text().matches("signatures renewed").count();
    assert!(recorded(&a) + recorded(&b) >= 1);
    // Each epoch recorded once: every instance applied each (and the one at start-up, if any).
    assert!(applied(&a) >= recorded(&a) + recorded(&b) - 1, "{}", a.log_text());
}
