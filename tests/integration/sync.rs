//! The one writer (`src/zone_sync.rs`) seen from outside: a committed update reaches DNS even when
//! its client hangs up, and an instance that hears its own write again from PostgreSQL's
//! change feed neither re-signs it nor moves the serial.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::harness::*;
use crate::pg;

/// The TXT values DNS serves for an account.
fn served(server: &TestServer, account: &serde_json::Value) -> Vec<String> {
    server.ask(account["fulldomain"].as_str().unwrap(), t::TXT).txts()
}

/// Type RRSIG.
const RRSIG: u16 = 46;

/// A query with EDNS and the DO bit, so a signed server adds its RRSIGs.
fn query_do(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = query(name, qtype, Some(1232));
    let flags = q.len() - 4; // the OPT's flags, before its empty RDLENGTH
    q[flags] = 0x80;
    q
}

/// The RRSIG records answering `name`/`qtype` with DO, as raw rdata.
fn signatures(server: &TestServer, name: &str, qtype: u16) -> Vec<Vec<u8>> {
    let reply = Message::decode(&server.udp_exchange(&query_do(name, qtype)).expect("a reply"));
    reply.answers.iter().filter(|r| r.rtype == RRSIG).map(|r| r.rdata.clone()).collect()
}

/// The SOA serial a server gives.
fn serial(server: &TestServer) -> u32 {
    let reply = server.ask(DOMAIN, t::SOA);
    let soa = reply.answers.iter().find(|r| r.rtype == t::SOA).expect("an SOA");
    let at = soa.rdata.len() - 20;
    u32::from_be_bytes(soa.rdata[at..at + 4].try_into().unwrap())
}

#[test]
fn an_update_whose_client_hangs_up_is_still_served() {
    let (server, dir) = TestServer::start();
    let account = server.register();
    // Hold SQLite's write lock from another connection: the server's update waits in the store
    // (its busy timeout is 5 s) while the client gives up, then commits once the lock goes.
    let db = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let value = txt_value(7);
    let body = serde_json::json!({ "subdomain": account["subdomain"], "txt": value }).to_string();
    let mut request =
        format!("POST /update HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", server.api, body.len());
    for (name, header) in auth(&account) {
        request.push_str(&format!("{name}: {header}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut stream = TcpStream::connect(server.api).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The client hangs up while its update waits for the lock.
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    std::thread::sleep(Duration::from_millis(500));
    assert!(served(&server, &account).is_empty(), "served before the store could commit it");
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    // Committed in the store, so it must be served without a restart or resync.
    assert!(
        pg::eventually(Duration::from_secs(3), || served(&server, &account) == vec![value.clone()]),
        "the committed update is not served: {:?}",
        served(&server, &account)
    );
}

#[test]
fn an_instance_signs_each_update_once_on_postgres() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let config = |dir: &TempDir| {
        let base = postgres_config(&dir.0, &url);
        // Signatures are deterministic (the same bytes at every instance), so a second signing
        // does not show in them: each instance's count of signatures made does.
        let config = with_keys(&base, "dnssec", "enabled = true\nalgorithm = \"ecdsap256sha256\"");
        with_keys(&config, "metrics", "listen = \"127.0.0.1:0\"")
    };
    let made = |server: &TestServer| {
        let text = crate::metrics::scrape(crate::metrics::metrics_addr(server));
        crate::metrics::samples(&text)["acme_delegate_dnssec_signatures_total{how=\"made\"}"]
    };
    let a = TestServer::start_with(&dir_a, &config(&dir_a));
    let b = TestServer::start_with(&dir_b, &config(&dir_b));
    let account = a.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    // The registration's version applied everywhere before counting.
    assert!(pg::eventually(Duration::from_secs(3), || serial(&b) == serial(&a)));
    std::thread::sleep(Duration::from_millis(700));
    for round in 0..3 {
        let value = txt_value(100 + round);
        let (made_a, made_b) = (made(&a), made(&b));
        assert_eq!(a.update(&account, &value).status, 200);
        // What the writer serves as soon as it answered.
        let (signed_a, serial_a) = (signatures(&a, &name, t::TXT), serial(&a));
        assert_eq!(signed_a.len(), 1, "one RRSIG over the TXT set");
        // The other instance hears of it from the feed; so does the writer, at the same time.
        assert!(pg::eventually(Duration::from_secs(3), || served(&b, &account).contains(&value)));
        let (signed_b, serial_b) = (signatures(&b, &name, t::TXT), serial(&b));
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(
            signatures(&a, &name, t::TXT),
            signed_a,
            "round {round}: the writer signed its update again"
        );
        assert_eq!(serial(&a), serial_a, "round {round}: the writer's serial moved without a change");
        assert_eq!(
            signatures(&b, &name, t::TXT),
            signed_b,
            "round {round}: the reader signed the update twice"
        );
        assert_eq!(serial(&b), serial_b, "round {round}: the reader's serial moved without a change");
        // The TXT set and the SOA; in the first round also the name's NSEC3 link (its types
        // changed from none to TXT). Applying the update twice would sign them twice.
        let expected = if round == 0 { 3.0 } else { 2.0 };
        assert_eq!(made(&a) - made_a, expected, "round {round}: signatures made by the writer");
        assert_eq!(made(&b) - made_b, expected, "round {round}: signatures made by the reader");
    }
}

#[test]
fn a_read_only_command_leaves_the_serial_alone() {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dnssec", "enabled = true"));
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    let before = serial(&server);
    for args in [&["account", "list"][..], &["dnssec", "ds"][..]] {
        let out = std::process::Command::new(binary())
            .args(args)
            .arg("-c")
            .arg(dir.join("config.cfg"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The SQLite change feed looks once a second.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(serial(&server), before, "the serial moved although no data changed");
    assert!(!server.log_text().contains("resynchronised"), "{}", server.log_text());
}
