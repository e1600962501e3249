//! One bad row cannot break the fleet (issue 19, item 1): an acme-dns import of every kind of
//! row the server cannot serve, into a running SQLite instance and into two running PostgreSQL
//! instances, and the same rows written into the store by an operator's SQL. Before the fix, a
//! TXT value over 65,535 octets made every instance panic when it applied the import (and every
//! SQLite start fail the same way), a value of about 62 KB stopped every AXFR after its first
//! message, and subdomains that are not one DNS label went out as malformed wire.

use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::*;
use crate::pg;
use crate::xfr::{SECRET, transfer_section};

/// The account every bad row is compared with: imported, served, its key usable.
const USER: &str = "2b5a5c0d-3c2f-4c1e-9b6e-1f2e3d4c5b6a";
/// Its subdomain.
const SUB: &str = "8c6e4f3a-1b2d-4e5f-8a9b-0c1d2e3f4a5b";
/// A second good account, which comes with two values too long to serve.
const USER2: &str = "3b5a5c0d-3c2f-4c1e-9b6e-1f2e3d4c5b6a";
/// Its subdomain.
const SUB2: &str = "9c6e4f3a-1b2d-4e5f-8a9b-0c1d2e3f4a5b";

/// A bcrypt-shaped hash that no key matches (row `n`; acme-dns's hashes are unique).
fn fake_hash(n: usize) -> String {
    format!("$2a$10${n:053}")
}

/// A UUID username for row `n`.
fn uuid(n: usize) -> String {
    format!("{n:08x}-aaaa-4bbb-8ccc-dddddddddddd")
}

/// One acme-dns row: username, subdomain, allowfrom, values.
type SourceRow = (String, String, String, Vec<String>);

/// The rows of the bad source, in rowid order (1-based), and what the import must say of each
/// (`None`: imported whole).
fn rows() -> Vec<(SourceRow, Option<&'static str>)> {
    let row = |user: &str, sub: &str, values: Vec<String>| {
        (user.to_owned(), sub.to_owned(), "[]".to_owned(), values)
    };
    vec![
        (row(USER, SUB, vec![txt_value(1)]), None),
        (
            row(USER2, SUB2, vec!["x".repeat(70_000), "y".repeat(62_000), txt_value(2)]),
            Some("imported without"),
        ),
        (row(&uuid(3), &"a".repeat(64), vec![]), Some("64 octets")),
        (row(&uuid(4), &"b".repeat(300), vec![txt_value(4)]), Some("300 octets")),
        (row(&uuid(5), "a.b.c", vec![]), Some("letters, digits")),
        (row(&uuid(6), "..", vec![]), Some("letters, digits")),
        (row(&uuid(7), "x\0y", vec![]), Some("letters, digits")),
        (row(&uuid(8), "*", vec![txt_value(8)]), Some("letters, digits")),
        (row(&uuid(9), "_acme-challenge", vec![txt_value(9)]), Some("letters, digits")),
        (row(&uuid(10), &format!("persist-{SUB}"), vec![]), Some("serves itself")),
        (row(&uuid(11), "ns1", vec![txt_value(11)]), Some("serves itself")),
        (
            row(&USER.to_uppercase(), "c6e4f3a1-1b2d-4e5f-8a9b-0c1d2e3f4a5b", vec![]),
            Some("differs only in case"),
        ),
        (row("admin", "d6e4f3a1-1b2d-4e5f-8a9b-0c1d2e3f4a5b", vec![]), Some("not a UUID")),
        (
            (uuid(14), "e6e4f3a1-1b2d-4e5f-8a9b-0c1d2e3f4a5b".into(), "[\"10.0.0.0/33\"]".into(), vec![]),
            Some("not a network"),
        ),
        (row(&uuid(15), &SUB.to_uppercase(), vec![]), Some("differs only in case")),
    ]
}

/// Writes the bad source as an acme-dns SQLite file; returns the key of the first account.
fn bad_source(path: &std::path::Path) -> String {
    let key = "Ab3_-efghijklmnopqrstuvwxyz0123456789ABC".to_owned();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
             Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);",
    )
    .unwrap();
    for (n, ((user, sub, allowfrom, values), _)) in rows().into_iter().enumerate() {
        let hash = if n == 0 {
            bcrypt::hash_with_result(&key, 10).unwrap().format_for_version(bcrypt::Version::TwoA)
        } else {
            fake_hash(n)
        };
        conn.execute(
            "INSERT INTO records VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![user, hash, sub, allowfrom],
        )
        .unwrap();
        for (i, value) in values.iter().enumerate() {
            conn.execute(
                "INSERT INTO txt VALUES (?1, ?2, ?3)",
                rusqlite::params![sub, value, 1_700_000_000 + i],
            )
            .unwrap();
        }
    }
    key
}

/// Runs `import-acme-dns` (with `extra` arguments) against the config in `dir`.
fn import(dir: &TempDir, source: &str, extra: &[&str]) -> Output {
    Command::new(binary())
        .args(["import-acme-dns", source])
        .args(extra)
        .arg("-c")
        .arg(dir.join("config.cfg"))
        .output()
        .unwrap()
}

/// Checks that the import's report names every bad row by its position with its reason, and
/// the good one not at all.
fn assert_reported(stderr: &str) {
    for (n, (_, expected)) in rows().into_iter().enumerate() {
        let row = format!("row {} (username", n + 1);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&row)).collect();
        match expected {
            None => assert!(lines.is_empty(), "row {} reported: {lines:?}", n + 1),
            Some(reason) => {
                assert!(lines.iter().any(|l| l.contains(reason)), "row {}: no {reason:?} in\n{stderr}", n + 1)
            }
        }
    }
    // No line quotes more than a short part of a value.
    assert!(stderr.lines().all(|l| l.len() < 400), "{stderr}");
}

/// The zone by AXFR through dig (TSIG): one record a line; panics unless the transfer ended
/// with the closing SOA.
fn axfr(server: &TestServer) -> Vec<String> {
    let out = Command::new("dig")
        .args(["-p", &server.tcp.port().to_string(), &format!("@{}", server.tcp.ip())])
        .args(["-y", &format!("hmac-sha256:transfer-key:{SECRET}"), DOMAIN, "AXFR"])
        .args(["+noall", "+answer", "+nocomments", "+tries=1", "+time=5"])
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';') && !l.contains("\tTSIG\t"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let soas = lines.iter().filter(|l| l.contains(" SOA ")).count();
    assert_eq!(soas, 2, "an AXFR that ends with its SOA:\n{text}");
    lines
}

/// What every server must still do after the bad rows: answer, serve the good accounts (the
/// second without its bad values), transfer the whole zone, name no bad row.
fn assert_serves(server: &TestServer) {
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
    assert!(
        pg::eventually(Duration::from_secs(5), || server.ask(&format!("{SUB}.{DOMAIN}"), t::TXT).txts()
            == [txt_value(1)]),
        "the good account is not served"
    );
    assert_eq!(server.ask(&format!("{SUB2}.{DOMAIN}"), t::TXT).txts(), [txt_value(2)]);
    for bad in ["a.b.c", "*", "ns1", "_acme-challenge"] {
        let answer = server.ask(&format!("{bad}.{DOMAIN}"), t::TXT);
        assert!(answer.txts().is_empty(), "{bad}: {:?}", answer.txts());
    }
    let zone = axfr(server);
    assert!(zone.iter().any(|l| l.starts_with(&format!("{SUB2}.{DOMAIN}."))), "{zone:?}");
    assert!(zone.iter().all(|l| l.len() < 300), "a value too long was transferred");
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
}

/// The config of an instance in `dir` on `backend`'s store, with TSIG-keyed transfers.
fn config(dir: &TempDir, url: Option<&str>) -> String {
    let base = match url {
        None => base_config(&dir.0),
        Some(url) => postgres_config(&dir.0, url),
    };
    with_keys(&base, "transfer", &transfer_section("\"127.0.0.1/32\"", &[]))
}

#[test]
fn bad_acme_dns_rows_are_reported_and_left_out_on_sqlite() {
    let dir = TempDir::new();
    let config = config(&dir, None);
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    let source = dir.join("acme-dns.db");
    let key = bad_source(&source);
    let source = source.to_str().unwrap();

    // --strict first: nothing is written, and every bad row is named.
    let strict = import(&dir, source, &["--strict"]);
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success(), "--strict imported a source with bad rows");
    assert_reported(&stderr);
    assert!(stderr.contains("with --strict nothing was imported"), "{stderr}");

    let mut server = TestServer::start_with(&dir, &config);
    assert_eq!(server.ask(&format!("{SUB}.{DOMAIN}"), t::TXT).rcode, rcode::NXDOMAIN, "--strict wrote");
    // Into the running instance: the good rows go in and are served, the bad ones are reported.
    let out = import(&dir, source, &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_reported(&stderr);
    assert!(stdout.contains("15 accounts found, 2 imported"), "{stdout}");
    assert!(stdout.contains("13 accounts and 2 TXT values failed their checks"), "{stdout}");
    assert_serves(&server);
    // The imported key works.
    let account = serde_json::json!({"username": USER, "password": key, "subdomain": SUB});
    assert_eq!(server.update(&account, &txt_value(7)).status, 200);
    // And every later start works too (before: each one panicked on the same row).
    server.signal("TERM");
    server.wait(Duration::from_secs(10)).expect("the server stops");
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(server.ask(&format!("{SUB}.{DOMAIN}"), t::TXT).txts(), [txt_value(1), txt_value(7)]);
    assert_eq!(server.ask(&format!("{SUB2}.{DOMAIN}"), t::TXT).txts(), [txt_value(2)]);
    axfr(&server);
}

#[test]
fn bad_rows_written_by_sql_are_left_out_logged_and_counted() {
    let dir = TempDir::new();
    let metrics = free_port(&["127.0.0.1"]);
    let config = with_keys(&config(&dir, None), "metrics", &format!("listen = \"127.0.0.1:{metrics}\""));
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    let source = dir.join("acme-dns.db");
    bad_source(&source);
    let out = import(&dir, source.to_str().unwrap(), &[]);
    assert!(out.status.success());
    // What no writer of ours makes: an operator's SQL edits, straight into the store.
    let store = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
    store
        .execute_batch(&format!(
            "INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at)
                 VALUES ('{}', x'00', 'a.b.c', '[]', 1700000000),
                        ('{}', x'00', 'ns1', '[]', 1700000000);
             INSERT INTO txt (subdomain, value, updated_at) VALUES ('{SUB2}', '{}', 1800000000);",
            uuid(20),
            uuid(21),
            "z".repeat(70_000),
        ))
        .unwrap();
    drop(store);
    let server = TestServer::start_with(&dir, &config);
    assert_serves(&server);
    let log = server.log_text();
    assert!(log.contains("cannot be served and is left out of the zone"), "{log}");
    assert!(log.contains("a.b.c") && log.contains("ns1"), "{log}");
    let scrape =
        http(format!("127.0.0.1:{metrics}").parse().unwrap(), "GET", "/metrics", &[], b"").body_text();
    let refused = scrape
        .lines()
        .find_map(|l| l.strip_prefix("acme_delegate_zone_rows_refused_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 3), "{scrape}");
}

#[cfg(feature = "postgres")]
#[test]
fn bad_acme_dns_rows_do_not_stop_two_running_postgres_instances() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let (config_a, config_b) = (config(&dir_a, Some(&url)), config(&dir_b, Some(&url)));
    std::fs::write(dir_a.join("config.cfg"), &config_a).unwrap();
    let a = TestServer::start_with(&dir_a, &config_a);
    let b = TestServer::start_with(&dir_b, &config_b);
    let source = dir_a.join("acme-dns.db");
    bad_source(&source);
    let out = import(&dir_a, source.to_str().unwrap(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_reported(&String::from_utf8_lossy(&out.stderr));
    for server in [&a, &b] {
        assert_serves(server);
    }
    // Both still take writes and serve them at the same serial.
    let account = a.register();
    assert_eq!(a.update(&account, &txt_value(5)).status, 200);
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    assert!(pg::eventually(Duration::from_secs(5), || b.ask(&name, t::TXT).txts() == [txt_value(5)]));
    assert_eq!(a.ask(DOMAIN, t::SOA).answers, b.ask(DOMAIN, t::SOA).answers);
}
