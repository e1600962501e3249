//! Kept signatures (issue 13, goal 3): every signature the zone makes is kept in the store, and
//! a starting instance (a restart, or another instance on the same PostgreSQL) reuses them
//! instead of signing its zone again, serving the same bytes; rows of a left epoch go.

use std::time::Duration;

use crate::harness::*;
use crate::pg;
use crate::same_zone::signed_answer;

/// Accounts with a value in each test: a TXT set and an NSEC3 link each to keep.
const ACCOUNTS: u32 = 12;

/// A signed configuration on SQLite in `dir` (`extra` lines in `[dnssec]`).
fn signed_config(dir: &TempDir, extra: &str) -> String {
    let config = with_keys(&base_config(&dir.0), "dnssec", &format!("enabled = true\n{extra}"));
    with_keys(&config, "api", "register_rate_limit = 0")
}

/// Registers `ACCOUNTS` accounts with a value each; returns their names.
fn populate(server: &TestServer) -> Vec<String> {
    (0..ACCOUNTS)
        .map(|seed| {
            let account = server.register();
            assert_eq!(server.update(&account, &txt_value(seed)).status, 200);
            account["fulldomain"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// What a server answers, with DNSSEC, for each name (TXT) and for a name that does not exist.
fn answers(server: &TestServer, names: &[String]) -> Vec<Vec<(u16, Vec<u8>)>> {
    let mut out: Vec<_> = names.iter().map(|name| signed_answer(server, name, t::TXT)).collect();
    out.push(signed_answer(server, &format!("nothing-here.{DOMAIN}"), t::TXT));
    out
}

/// (reused, made) from the server's "signed zone loaded" line.
fn load_counts(server: &TestServer) -> (u64, u64) {
    let log = server.log_text();
    let line = log.lines().find(|l| l.contains("signed zone loaded")).unwrap_or_else(|| panic!("{log}"));
    let number_before = |marker: &str| -> u64 {
        let head = &line[..line.find(marker).unwrap_or_else(|| panic!("{line}"))];
        head.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    (number_before(" kept signatures reused"), number_before(" signatures made"))
}

/// Rows in the SQLite store's `signatures` table, and how many epochs they are of.
fn kept_rows(dir: &TempDir) -> (i64, i64) {
    let conn = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
    conn.query_row("SELECT count(*), count(DISTINCT epoch) FROM signatures", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

#[test]
fn a_restart_reuses_the_kept_signatures_and_serves_the_same_bytes() {
    let dir = TempDir::new();
    let config = signed_config(&dir, "");
    let mut server = TestServer::start_with(&dir, &config);
    assert_eq!(load_counts(&server).0, 0, "a new store keeps nothing yet");
    let names = populate(&server);
    let before = answers(&server, &names);
    // Stopped as an operator stops it: what is not kept yet is kept on the way out.
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", server.log_text());
    let (rows, epochs) = kept_rows(&dir);
    assert!(rows >= i64::from(2 * ACCOUNTS), "{rows} rows kept");
    assert_eq!(epochs, 1);

    let again = TestServer::start_with(&dir, &config);
    let (reused, made) = load_counts(&again);
    // Everything but the SOA (a new signature per serial, never kept) comes from the store.
    assert!(reused >= u64::from(2 * ACCOUNTS), "{}", again.log_text());
    assert!(made <= 2, "{made} signatures made at the restart: {}", again.log_text());
    assert_eq!(answers(&again, &names), before, "the restart serves other bytes");
}

#[test]
fn a_killed_instance_signs_what_was_not_kept_and_serves_the_same_bytes() {
    let dir = TempDir::new();
    let config = signed_config(&dir, "");
    let server = TestServer::start_with(&dir, &config);
    let mut names = populate(&server);
    // The last update is killed before the keeper's next round (it runs every 2 s) with a
    // good chance; either way the restart must serve exactly what was served.
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(99)).status, 200);
    names.push(account["fulldomain"].as_str().unwrap().to_owned());
    let before = answers(&server, &names);
    server.signal("KILL");
    drop(server);

    let again = TestServer::start_with(&dir, &config);
    let (reused, made) = load_counts(&again);
    assert!(reused + made >= u64::from(2 * ACCOUNTS), "{}", again.log_text());
    assert_eq!(answers(&again, &names), before, "the restart after kill -9 serves other bytes");
}

#[test]
fn a_new_epoch_replaces_the_kept_signatures() {
    let dir = TempDir::new();
    // Valid 12 s, renewed with 8 s left: a new epoch every few seconds.
    let server = TestServer::start_with(&dir, &signed_config(&dir, "signature_validity = 12\nrefresh = 8"));
    populate(&server);
    let epoch = |dir: &TempDir| -> i64 {
        let conn = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
        conn.query_row("SELECT epoch FROM zone_version", [], |r| r.get(0)).unwrap()
    };
    let first = epoch(&dir);
    assert!(pg::eventually(Duration::from_secs(15), || epoch(&dir) != first), "no new epoch");
    // Once the keeper has run after the move: only the new epoch's rows, and all of them.
    let settled = || {
        let (rows, epochs) = kept_rows(&dir);
        let conn = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
        let of_current: i64 = conn
            .query_row(
                "SELECT count(*) FROM signatures WHERE epoch = (SELECT epoch FROM zone_version)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        epochs == 1 && rows == of_current && rows >= i64::from(2 * ACCOUNTS)
    };
    assert!(pg::eventually(Duration::from_secs(10), settled), "rows: {:?}", kept_rows(&dir));
}

#[test]
fn a_second_instance_on_postgres_reuses_what_the_first_signed() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let config = |dir: &TempDir| {
        let config = with_keys(&postgres_config(&dir.0, &url), "dnssec", "enabled = true");
        with_keys(&config, "api", "register_rate_limit = 0")
    };
    let a = TestServer::start_with(&dir_a, &config(&dir_a));
    let names = populate(&a);
    let kept = || {
        pg::psql(&url, "SELECT count(*) FROM signatures").trim().parse::<u32>().unwrap_or(0) >= 2 * ACCOUNTS
    };
    assert!(pg::eventually(Duration::from_secs(10), kept), "the first instance keeps nothing");
    let b = TestServer::start_with(&dir_b, &config(&dir_b));
    let (reused, made) = load_counts(&b);
    assert!(reused >= u64::from(2 * ACCOUNTS), "{}", b.log_text());
    assert!(made <= 2, "{made} signatures made by the second instance: {}", b.log_text());
    assert_eq!(answers(&b, &names), answers(&a, &names), "the instances serve other bytes");
}

#[test]
fn a_store_that_cannot_give_its_kept_signatures_back_still_starts_signed() {
    let dir = TempDir::new();
    let config = signed_config(&dir, "");
    let mut server = TestServer::start_with(&dir, &config);
    let names = populate(&server);
    let before = answers(&server, &names);
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).is_some());
    // The table is gone (a damaged store, a hand-made mistake): the memo is only a saving.
    let conn = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
    conn.execute_batch("DROP TABLE signatures").unwrap();
    drop(conn);
    let again = TestServer::start_with(&dir, &config);
    assert!(again.log_text().contains("could not read the kept signatures"), "{}", again.log_text());
    let (reused, made) = load_counts(&again);
    assert_eq!(reused, 0);
    assert!(made >= u64::from(2 * ACCOUNTS), "{}", again.log_text());
    assert_eq!(answers(&again, &names), before, "signed anew, the same bytes");
}

#[test]
fn a_start_with_signatures_due_serves_at_once_and_renews_them_after() {
    let dir = TempDir::new();
    // Valid 8 h, renewed with all but a second of that left: due at every start (the store's
    // first epoch is the hour's start), yet valid for 7 h or more: served while renewed.
    let config = signed_config(&dir, "signature_validity = 28800\nrefresh = 28799");
    let server = TestServer::start_with(&dir, &config);
    let renewed = || server.log_text().contains("signatures renewed");
    assert!(pg::eventually(Duration::from_secs(10), renewed), "{}", server.log_text());
    let log = server.log_text();
    let (ready, renewal) =
        (log.find("ready: serving zone").unwrap(), log.find("signatures renewed").unwrap());
    assert!(ready < renewal, "renewed before serving: {log}");
}
