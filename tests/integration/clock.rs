//! One time for what instances share (`src/zone_sync/clock.rs`), with a real wrong clock: a server
//! run under libfaketime (Debian package `faketime`) beside a correct one on one PostgreSQL
//! database, a signing epoch in the future written into the database by hand, and an SQLite
//! server restarted with its clock gone back.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;
use crate::pg;

/// libfaketime's multi-threaded library, as Debian installs it.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Type RRSIG.
const RRSIG: u16 = 46;

/// Seconds a validator (and this test) allows a signature's inception to be ahead of its clock.
const MARGIN: i64 = 60;

/// The environment that runs the server with its wall clock moved by `offset` (`+8d`, `-8d`);
/// timers (the monotonic clock) stay true.
fn faketime(offset: &str) -> [(&'static str, &str); 3] {
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} is missing: apt-get install faketime (scripts/test installs it)"
    );
    [("LD_PRELOAD", FAKETIME_LIB), ("FAKETIME", offset), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")]
}

/// The test's own (true) clock.
fn real_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Signed with short lifetimes (3 days, renewed with 1 day left), so that a clock 8 days ahead
/// finds every signature due; metrics on.
fn signed(config: &str) -> String {
    let config = with_keys(
        config,
        "dnssec",
        "enabled = true\nalgorithm = \"ecdsap256sha256\"\nsignature_validity = 259200\nrefresh = 86400",
    );
    with_keys(&config, "metrics", "listen = \"127.0.0.1:0\"")
}

/// A query with EDNS and the DO bit, so a signed server adds its RRSIGs.
fn query_do(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = query(name, qtype, Some(1232));
    let flags = q.len() - 4; // the OPT's flags, before its empty RDLENGTH
    q[flags] = 0x80;
    q
}

/// The (inception, expiration) of every RRSIG answering `name`/`qtype` with DO.
fn validity(server: &TestServer, name: &str, qtype: u16) -> Vec<(i64, i64)> {
    let reply = Message::decode(&server.udp_exchange(&query_do(name, qtype)).expect("a reply"));
    let field = |r: &[u8], at: usize| i64::from(u32::from_be_bytes(r[at..at + 4].try_into().unwrap()));
    reply
        .answers
        .iter()
        .filter(|r| r.rtype == RRSIG)
        .map(|r| (field(&r.rdata, 12), field(&r.rdata, 8)))
        .collect()
}

/// Panics unless every RRSIG `server` gives for the apex's SOA and DNSKEY and for `name`'s TXT
/// is valid by the true clock now: begun (within the margin) and not expired.
fn assert_valid_now(server: &TestServer, who: &str, name: &str) {
    for (owner, qtype) in [(DOMAIN, t::SOA), (DOMAIN, 48), (name, t::TXT)] {
        let windows = validity(server, owner, qtype);
        assert!(!windows.is_empty(), "{who}: no RRSIG for {owner} type {qtype}");
        let now = real_now();
        for (inception, expiration) in windows {
            assert!(
                inception <= now + MARGIN,
                "{who} serves an RRSIG over {owner} type {qtype} whose inception is {} s in the future",
                inception - now
            );
            assert!(expiration > now, "{who} serves an expired RRSIG over {owner} type {qtype}");
        }
    }
}

/// The signing epoch the PostgreSQL database at `url` holds.
fn stored_epoch(url: &str) -> i64 {
    pg::psql(url, "SELECT epoch FROM zone_version WHERE id = 1").trim().parse().expect("an epoch")
}

/// One sample of a scrape of `server`'s metrics.
fn sample(server: &TestServer, key: &str) -> Option<f64> {
    let text = crate::metrics::scrape(crate::metrics::metrics_addr(server));
    crate::metrics::samples(&text).get(key).copied()
}

#[test]
fn an_instance_whose_clock_is_8_days_ahead_neither_moves_the_epoch_nor_purges_for_the_others() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_with(&dir_a, &signed(&postgres_config(&dir_a.0, &url)));
    let epoch = stored_epoch(&url);
    // A fresh value, set through the correct instance: 8 days old by the wrong clock, beyond the
    // default TXT retention (7 days).
    let account = a.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    let value = txt_value(1);
    assert_eq!(a.update(&account, &value).status, 200);
    let b = TestServer::try_start_env(&dir_b, &signed(&postgres_config(&dir_b.0, &url)), &faketime("+8d"))
        .unwrap_or_else(|log| panic!("the instance 8 days ahead did not start:\n{}", log.join("\n")));
    // Its start ran the purge and checked the signatures (at once, in tasks of their own).
    assert!(
        pg::eventually(Duration::from_secs(10), || {
            let log = b.log_text();
            log.contains("retention purge skipped") || log.contains("retention: removed")
        }),
        "the instance 8 days ahead ran no purge:\n{}",
        b.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.ask(&name, t::TXT).txts(), vec![value.clone()], "the fresh value was purged");
    assert_eq!(b.ask(&name, t::TXT).txts(), vec![value.clone()]);
    assert_eq!(stored_epoch(&url), epoch, "the signing epoch moved");
    assert_valid_now(&a, "the correct instance", &name);
    assert_valid_now(&b, "the instance 8 days ahead", &name);
    // It says why: in its log, in /ready, in its metrics.
    let log = b.log_text();
    assert!(log.contains("ahead of the database's time") && log.contains("max_clock_skew"), "{log}");
    assert!(log.contains("retention purge skipped"), "{log}");
    let ready = b.http("GET", "/ready", &[], b"");
    assert_eq!(ready.status, 503, "{}", ready.body_text());
    let body = ready.json();
    assert_eq!(body["error"], "clock_skew", "{body}");
    assert!(body["skew_seconds"].as_i64().unwrap() > 8 * 86_400 - MARGIN, "{body}");
    let skew = sample(&b, "acme_delegate_clock_skew_seconds").expect("the skew is exported");
    assert!(skew > (8 * 86_400 - MARGIN) as f64, "{skew}");
    assert_eq!(sample(&b, "acme_delegate_clock_refusals_total{what=\"purge\"}"), Some(1.0));
    // The correct instance is ready and sees no skew.
    assert_eq!(a.http("GET", "/ready", &[], b"").status, 200);
    assert!(sample(&a, "acme_delegate_clock_skew_seconds").expect("exported").abs() <= MARGIN as f64);
}

#[test]
fn a_signing_epoch_in_the_future_is_refused_and_replaced_at_once() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_with(&dir_a, &signed(&postgres_config(&dir_a.0, &url)));
    let b = TestServer::start_with(&dir_b, &signed(&postgres_config(&dir_b.0, &url)));
    let account = a.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(a.update(&account, &txt_value(2)).status, 200);
    // As an instance with a wrong clock (or a hand) would record it: a new version whose log
    // holds the epoch, announced to the instances.
    let future = real_now() + 8 * 86_400;
    let future = future - future % 3600;
    let version = pg::psql(
        &url,
        &format!(
            "WITH v AS (UPDATE zone_version SET version = version + 1, epoch = {future} WHERE id = 1 \
             RETURNING version) INSERT INTO zone_log (version, name, txt, at) \
             SELECT version, '*sign', '[\"{future}\"]', {now} FROM v RETURNING version",
            now = real_now()
        ),
    );
    pg::psql(&url, &format!("SELECT pg_notify('acme_delegate', '{}:*sign')", version.trim()));
    // Neither instance ever serves the future, and one of them records a correct epoch at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        assert_valid_now(&a, "instance a", &name);
        assert_valid_now(&b, "instance b", &name);
        std::thread::sleep(Duration::from_millis(100));
    }
    let epoch = stored_epoch(&url);
    assert!(epoch <= real_now(), "the epoch in the future was not replaced: {} s ahead", epoch - real_now());
    for (who, server) in [("a", &a), ("b", &b)] {
        assert!(server.log_text().contains("refused the signing epoch"), "{who}: {}", server.log_text());
        // The replacement applied: the TXT set is signed from the new epoch.
        assert!(
            pg::eventually(Duration::from_secs(3), || validity(server, &name, t::TXT)
                .iter()
                .all(|&(inception, _)| inception == epoch - 3600)),
            "{who} does not sign with the replacement epoch {epoch}: {:?}",
            validity(server, &name, t::TXT)
        );
        assert_eq!(server.http("GET", "/ready", &[], b"").status, 200, "{who}");
    }
}

#[test]
fn an_sqlite_server_restarted_with_its_clock_back_keeps_its_epoch_and_says_so() {
    let dir = TempDir::new();
    let config = signed(&base_config(&dir.0));
    let mut first = TestServer::start_with(&dir, &config);
    let account = first.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(first.update(&account, &txt_value(3)).status, 200);
    let before = validity(&first, &name, t::TXT);
    // The start's signature check and purge record the store's time (polled, so that the
    // old binary, which records none, runs the rest of the test too).
    let db = dir.join("acme-delegate.db");
    let recorded = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT clock FROM zone_version", [], |r| r.get::<_, i64>(0)).is_ok_and(|t| t > 0)
    };
    pg::eventually(Duration::from_secs(5), recorded);
    first.signal("TERM");
    assert!(first.wait(Duration::from_secs(10)).is_some(), "the server did not stop");
    drop(first);
    let second = TestServer::try_start_env(&dir, &config, &faketime("-8d"))
        .unwrap_or_else(|log| panic!("the server with its clock back did not start:\n{}", log.join("\n")));
    std::thread::sleep(Duration::from_millis(1500));
    // The same signatures, still valid by the true clock: the epoch did not follow the clock back.
    assert_eq!(validity(&second, &name, t::TXT), before);
    assert_valid_now(&second, "the server with its clock back", &name);
    let log = second.log_text();
    assert!(log.contains("behind the database's time") && log.contains("max_clock_skew"), "{log}");
    let ready = second.http("GET", "/ready", &[], b"");
    assert_eq!(ready.status, 503, "{}", ready.body_text());
    assert!(ready.json()["skew_seconds"].as_i64().unwrap() < -(8 * 86_400 - MARGIN), "{}", ready.body_text());
}
