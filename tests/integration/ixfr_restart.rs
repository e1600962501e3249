//! IXFR across a restart of the primary (issue 22, item 2): the journal's steps are kept in the
//! store, so a primary started again on the same store answers a secondary that fell behind
//! while it was stopped with a difference, not the whole zone. NSD is the secondary.

use std::time::Duration;

use crate::harness::*;
use crate::xfr::{SECRET, nsd_with, soa_serial, transfer_section, txts_at, within};

/// RR type SOA.
const SOA: u16 = 6;

/// A primary's configuration: DNS on a fixed loopback port (NSD keeps asking it across the
/// restart), transfers to 127.0.0.1 with NOTIFY to `notify`.
pub(crate) fn fixed_primary_config(dir: &TempDir, dns_port: u16, notify: u16) -> String {
    as_primary(&base_config(&dir.0), dns_port, &[notify])
}

/// `base` (a configuration from the harness, on either store) as such a primary, with NOTIFY
/// to each of `notify` (none: an instance that only writes to the store, keeping its steps
/// there all the same).
pub(crate) fn as_primary(base: &str, dns_port: u16, notify: &[u16]) -> String {
    let config = base.replace("\"127.0.0.1:0\"", &format!("\"127.0.0.1:{dns_port}\""));
    let config = with_keys(&config, "transfer", &transfer_section("\"127.0.0.1/32\"", notify));
    with_keys(&config, "api", "register_rate_limit = 0")
}

/// Asks `server` for an IXFR from `serial` with `dig` (TSIG-signed, over TCP), as a secondary
/// that kept its zone would; the server's log then names what it sent.
fn ask_ixfr(server: &TestServer, serial: u32) {
    let out = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &server.tcp.port().to_string(), DOMAIN, &format!("IXFR={serial}")])
        .args(["-y", &format!("hmac-sha256:transfer-key:{SECRET}"), "+tcp", "+tries=1", "+time=5"])
        .output()
        .expect("dig (Debian package bind9-dnsutils)");
    assert!(out.status.success(), "dig IXFR: {}", String::from_utf8_lossy(&out.stdout));
}

/// Whether `server` answered an IXFR from `from` to `to` with a difference (checked for a few
/// seconds: the transfer's log line is written once its last message is sent, and a secondary
/// may hold the zone a moment before). NSD, when it could not keep its zone across its own stop
/// on a loaded machine, asks for an AXFR instead: `dig` asks the IXFR such a secondary would.
fn answered_incrementally(server: &TestServer, from: u32, to: u32) -> bool {
    let line = format!("incremental from serial {from} to {to}");
    if within(Duration::from_secs(3), || server.log_text().contains(&line)).is_some() {
        return true;
    }
    ask_ixfr(server, from);
    within(Duration::from_secs(5), || server.log_text().contains(&line)).is_some()
}

/// The serial a server serves.
fn serial_of(server: &TestServer) -> u32 {
    soa_serial(&server.ask(DOMAIN, SOA)).expect("the primary answers its SOA")
}

#[test]
fn ixfr_a_restarted_primary_answers_a_secondary_behind_it_incrementally() {
    let dir = TempDir::new();
    let (dns_port, nsd_port) = (free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let config = fixed_primary_config(&dir, dns_port, nsd_port);
    let mut server = TestServer::start_with(&dir, &config);
    // NSD writes its zone file every second, so that it keeps its serial across its own stop.
    let mut nsd = nsd_with(&dir.join("nsd"), nsd_port, server.tcp, "  zonefiles-write: 1\n");
    let accounts: Vec<serde_json::Value> = (0..3).map(|_| server.register()).collect();
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(server.update(account, &txt_value(i as u32)).status, 200);
    }
    let in_step = serial_of(&server);
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(in_step));
    assert!(took.is_some(), "NSD reaches serial {in_step}:\n{}", nsd.log_text());

    // NSD has written its zone file (at most a second after the transfer), then stops.
    std::thread::sleep(Duration::from_millis(2500));
    // NSD stops; three more updates; the primary stops (SIGTERM) and starts on the same store.
    nsd.stop();
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(server.update(account, &txt_value(10 + i as u32)).status, 200);
    }
    let newest = serial_of(&server);
    assert_ne!(newest, in_step);
    // The steps are kept after each commit, off the update's path: give them a moment.
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).is_some(), "the primary stops on SIGTERM");
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(serial_of(&server), newest, "the restarted primary serves the store's serial");

    // NSD asks for what it missed and gets it as a difference from its serial.
    nsd.start();
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(newest));
    assert!(took.is_some(), "NSD catches up to {newest}:\n{}", nsd.log_text());
    let name = accounts[2]["fulldomain"].as_str().unwrap();
    let value = txt_value(12);
    assert!(txts_at(nsd.addr, name).is_some_and(|t| t.contains(&value)));
    let incremental = answered_incrementally(&server, in_step, newest);
    let log = server.log_text();
    assert!(!log.contains("full zone instead"), "no full zone for NSD:\n{log}");
    assert!(incremental, "the restarted primary answers NSD's IXFR with a difference:\n{log}");
    assert!(log.contains("IXFR journal: 9 steps from the database"), "{log}");
}

/// Two instances on one PostgreSQL: while A (NSD's primary) is stopped, B makes the changes;
/// A, started again, answers NSD's IXFR with a difference computed by B.
#[test]
fn ixfr_a_primary_restarted_after_another_instance_changed_the_zone_answers_incrementally() {
    let url = crate::pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let (dns_port, nsd_port) = (free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let config_a = as_primary(&postgres_config(&dir_a.0, &url), dns_port, &[nsd_port]);
    let config_b = as_primary(&postgres_config(&dir_b.0, &url), free_port(&["127.0.0.1"]), &[]);
    let mut a = TestServer::start_with(&dir_a, &config_a);
    let b = TestServer::start_with(&dir_b, &config_b);
    let nsd = crate::xfr::nsd(&dir_a.join("nsd"), nsd_port, a.tcp);
    let accounts: Vec<serde_json::Value> = (0..3).map(|_| a.register()).collect();
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(a.update(account, &txt_value(i as u32)).status, 200);
    }
    let in_step = serial_of(&a);
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(in_step));
    assert!(took.is_some(), "NSD reaches serial {in_step}:\n{}", nsd.log_text());

    a.signal("TERM");
    assert!(a.wait(Duration::from_secs(10)).is_some(), "A stops on SIGTERM");
    assert!(within(Duration::from_secs(5), || serial_of(&b) == in_step).is_some());
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(b.update(account, &txt_value(20 + i as u32)).status, 200);
    }
    let newest = serial_of(&b);
    std::thread::sleep(Duration::from_millis(300));
    let a = TestServer::start_with(&dir_a, &config_a);
    assert_eq!(serial_of(&a), newest);
    // A's NOTIFY at its start brings NSD's IXFR.
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(newest));
    assert!(took.is_some(), "NSD catches up to {newest}:\n{}", nsd.log_text());
    let incremental = answered_incrementally(&a, in_step, newest);
    let log = a.log_text();
    assert!(!log.contains("full zone instead"), "no full zone for NSD:\n{log}");
    assert!(incremental, "A answers NSD's IXFR with B's difference:\n{log}");
}

/// The stored steps hold the records they changed: after `DELETE /account`, no step names the
/// account or its value, and the steps that come after it are kept again.
#[test]
fn ixfr_an_erasure_leaves_no_stored_step_with_the_erased_data() {
    let dir = TempDir::new();
    let config = fixed_primary_config(&dir, free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let server = TestServer::start_with(&dir, &config);
    let (gone, kept) = (server.register(), server.register());
    let label = gone["subdomain"].as_str().unwrap().to_owned();
    let value = txt_value(77);
    assert_eq!(server.update(&gone, &value).status, 200);
    assert_eq!(server.update(&kept, &txt_value(78)).status, 200);
    let db = dir.join("acme-delegate.db");
    let steps = |pattern: &str| {
        let sql =
            format!("SELECT count(*) FROM zone_journal WHERE instr(data, CAST('{pattern}' AS BLOB)) > 0;");
        let out = std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3 runs");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().expect("a count")
    };
    let stored = within(Duration::from_secs(5), || steps(&value) > 0 && steps(&label) > 0);
    assert!(stored.is_some(), "the steps are stored, the account's among them");
    assert_eq!(server.http("DELETE", "/account", &auth(&gone), b"").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!((steps(&value), steps(&label)), (0, 0), "no stored step holds the erased account");
    assert_eq!(server.update(&kept, &txt_value(79)).status, 200);
    let again = within(Duration::from_secs(5), || steps(&txt_value(79)) > 0);
    assert!(again.is_some(), "steps after the erasure are kept");
}
