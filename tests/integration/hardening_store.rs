//! Issue 12, the store's part: a frozen PostgreSQL gets deadlines (item 4), erasure leaves
//! nothing in PostgreSQL's table files (item 6), and the audit trail of one account cannot grow
//! faster than a bound (item 5). Items 4 and 6 run on a throwaway cluster of their own: one is
//! frozen with SIGSTOP, the other's files are read, and neither may touch a shared server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::pg::{self, Cluster};

/// A server on a fresh database of `cluster`, with extra `[privacy]` keys.
fn start_on(cluster: &Cluster, privacy: &str) -> (TestServer, TempDir) {
    let dir = TempDir::new();
    let url = pg::fresh_database_on(&cluster.url());
    let sqlite = format!("connection = \"{}\"", dir.join("acme-delegate.db").display());
    let config = base_config(&dir.0)
        .replace("engine = \"sqlite3\"", "engine = \"postgres\"")
        .replace(&sqlite, &format!("connection = \"{url}\""));
    let config = with_keys(&config, "privacy", privacy);
    let server = TestServer::start_with(&dir, &config);
    (server, dir)
}

/// One request that may hang: the status and body, or `None` when nothing came within `limit`;
/// also how long it took.
fn request_within(
    api: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> (Option<(u16, String)>, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(api).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let elapsed = start.elapsed();
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return (None, elapsed);
    }
    let response = parse_http(&raw);
    (Some((response.status, response.body_text())), elapsed)
}

/// Item 4: with every process of the database stopped, `/ready` and `/update` answer 503 (JSON)
/// within a few seconds, and both work again by themselves once the database runs again.
#[test]
fn r12_frozen_postgres_answers_503_quickly_and_recovers() {
    let cluster = Cluster::start();
    let (server, _dir) = start_on(&cluster, "");
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    assert_eq!(server.http("GET", "/ready", &[], b"").status, 200);
    let update_body = |n: u32| serde_json::json!({"subdomain": account["subdomain"], "txt": txt_value(n)});

    cluster.signal_all("STOP");
    let limit = Duration::from_secs(15);
    let (ready, took) = request_within(server.api, "GET", "/ready", &[], b"", limit);
    assert_eq!(ready.map(|r| r.0), Some(503), "GET /ready with the database frozen ({took:?})");
    assert!(took < Duration::from_secs(9), "GET /ready took {took:?}");
    for n in 2..5 {
        let body = update_body(n).to_string();
        let (update, took) =
            request_within(server.api, "POST", "/update", &auth(&account), body.as_bytes(), limit);
        let (status, text) = update.unwrap_or_else(|| panic!("/update {n} hung for {took:?}"));
        assert_eq!(status, 503, "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|j| j["error"].is_string()));
        assert!(took < Duration::from_secs(9), "/update took {took:?}");
    }
    // DNS never waits for the database.
    assert_eq!(server.ask(account["fulldomain"].as_str().unwrap(), t::TXT).txts(), [txt_value(1)]);

    cluster.signal_all("CONT");
    let recovered = pg::eventually(Duration::from_secs(20), || {
        request_within(server.api, "GET", "/ready", &[], b"", limit).0.is_some_and(|r| r.0 == 200)
    });
    assert!(recovered, "/ready did not recover:\n{}", server.log_text());
    assert_eq!(server.update(&account, &txt_value(9)).status, 200);
    let served = server.ask(account["fulldomain"].as_str().unwrap(), t::TXT).txts();
    assert!(served.contains(&txt_value(9)), "{served:?}");
}

/// Every relation file (tables, indexes, TOAST) of the database `url` on `cluster`, read after
/// a checkpoint so that what is in shared buffers is on disk too.
fn relation_bytes(cluster: &Cluster, url: &str) -> Vec<(String, Vec<u8>)> {
    pg::psql(url, "CHECKPOINT");
    let paths = pg::psql(
        url,
        "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'i', 't') \
         AND pg_relation_filepath(c.oid) IS NOT NULL",
    );
    let mut files = Vec::new();
    for path in paths.lines().filter(|l| !l.is_empty()) {
        // Segments past 1 GB are `<path>.1`, `.2`…; test tables are far smaller.
        let bytes = std::fs::read(cluster.data_dir().join(path)).unwrap_or_default();
        files.push((path.to_owned(), bytes));
    }
    files
}

/// Item 6: after `DELETE /account` and the purge task's next run, the account's subdomain and
/// TXT values are in none of the database's relation files.
#[test]
fn r12_postgres_erasure_leaves_no_data_in_table_files() {
    let cluster = Cluster::start();
    let (server, _dir) = start_on(&cluster, "purge_interval = 1");
    let url = server_database_url(&server);
    // Another account before and after, so the erased rows sit between live ones on their pages.
    let before = server.register();
    assert_eq!(server.update(&before, &txt_value(11)).status, 200);
    let victim = server.register();
    assert_eq!(server.update(&victim, &txt_value(12)).status, 200);
    assert_eq!(server.update(&victim, &txt_value(13)).status, 200);
    let r = server.http("DELETE", "/account", &auth(&victim), b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let needles = [victim["subdomain"].as_str().unwrap().to_owned(), txt_value(12), txt_value(13)];
    let mut left = Vec::new();
    let clean = pg::eventually(Duration::from_secs(20), || {
        left = relation_bytes(&cluster, &url)
            .into_iter()
            .flat_map(|(path, bytes)| {
                needles
                    .iter()
                    .filter(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
                    .map(|n| format!("{n} in {path}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        left.is_empty()
    });
    assert!(clean, "after erasure and purge: {left:?}\n{}", server.log_text());
    // The other account is untouched.
    assert_eq!(server.ask(before["fulldomain"].as_str().unwrap(), t::TXT).txts(), [txt_value(11)]);
}

/// The database URL a server was configured with.
fn server_database_url(server: &TestServer) -> String {
    let config = std::fs::read_to_string(server.dir.join("config.cfg")).unwrap();
    let line = config.lines().find(|l| l.starts_with("connection = \"postgres")).unwrap();
    line.trim_start_matches("connection = \"").trim_end_matches('"').to_owned()
}

/// Item 5: a thousand identical failures and a thousand updates of one account from one
/// network leave a few audit rows, each with its count, and the export shows the counts.
#[test]
fn r12_audit_rows_of_one_account_are_bounded() {
    let (server, dir) = TestServer::start_with_keys("api", "update_rate_limit = 0");
    let account = server.register();
    let bad_key = "x".repeat(40);
    let wrong = [("X-Api-User", account["username"].as_str().unwrap()), ("X-Api-Key", bad_key.as_str())];
    let body = serde_json::json!({"subdomain": account["subdomain"], "txt": txt_value(1)}).to_string();
    for _ in 0..1000 {
        assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    }
    for _ in 0..1000 {
        // From another network: the failures' limit then keeps out only that network's guesses.
        let status =
            http_from(Some("127.9.0.1"), server.api, "POST", "/update", &wrong, body.as_bytes()).status;
        assert!(status == 401 || status == 429, "{status}");
    }
    let r = server.http("GET", "/account", &auth(&account), b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let export = r.json();
    let audit = export["audit"].as_array().unwrap();
    assert!(audit.len() <= 6, "{} audit rows: {audit:?}", audit.len());
    let count = |outcome: &str| -> i64 {
        audit
            .iter()
            .filter(|e| e["action"] == "update" && e["outcome"] == outcome)
            .map(|e| e["count"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(count("ok"), 1000, "{audit:?}");
    assert!(count("bad_key") >= 1, "{audit:?}");
    drop(dir);
}
