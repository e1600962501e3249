//! One battery run against both stores (SQLite and a real PostgreSQL), plus what only
//! PostgreSQL does: several instances on one database, recovery after a database restart, and
//! taking over acme-dns databases with their bcrypt-hashed keys.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::pg;

/// Which store a battery test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// SQLite file in the test's directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL.
    Postgres,
}

/// The base config pointed at `backend` (for PostgreSQL, at `url` if given, else a fresh DB).
fn config_for(backend: Backend, dir: &TempDir, url: Option<&str>) -> String {
    match backend {
        Backend::Sqlite => base_config(&dir.0),
        Backend::Postgres => postgres_config(&dir.0, &url.map_or_else(pg::fresh_database, str::to_owned)),
    }
}

/// The TXT values DNS serves for an account.
fn served(server: &TestServer, account: &serde_json::Value) -> Vec<String> {
    server.ask(account["fulldomain"].as_str().unwrap(), t::TXT).txts()
}

fn register_update_serve(backend: Backend) {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &config_for(backend, &dir, None));
    let account = server.register();
    let empty = server.ask(account["fulldomain"].as_str().unwrap(), t::TXT);
    assert_eq!((empty.rcode, empty.answers.len(), empty.authority.len()), (rcode::NOERROR, 0, 1));
    let values: Vec<String> = (1..=4).map(txt_value).collect();
    for value in &values {
        assert_eq!(server.update(&account, value).status, 200);
    }
    // Four updates within a second: the last two, in order.
    assert_eq!(served(&server, &account), values[2..].to_vec());
    // A client retrying its last value does not push out the one before (a name and its
    // wildcard need both), and no record is served twice.
    assert_eq!(server.update(&account, &values[3]).status, 200);
    assert_eq!(served(&server, &account), values[2..].to_vec());
    // Sent again after another, a value moves to the newest place.
    assert_eq!(server.update(&account, &values[2]).status, 200);
    assert_eq!(served(&server, &account), vec![values[3].clone(), values[2].clone()]);
    let r = server.http("GET", "/ready", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
}

fn acknowledged_update_survives_kill_9(backend: Backend) {
    let dir = TempDir::new();
    let config = config_for(backend, &dir, None);
    let mut server = TestServer::start_with(&dir, &config);
    let account = server.register();
    let value = txt_value(7);
    assert_eq!(server.update(&account, &value).status, 200);
    server.signal("KILL");
    server.wait(Duration::from_secs(5)).expect("killed");
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(served(&server, &account), vec![value.clone()]);
    // And the credentials still work after the restart.
    assert_eq!(server.update(&account, &txt_value(8)).status, 200);
}

fn allowfrom_is_enforced(backend: Backend) {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &config_for(backend, &dir, None));
    let r = server.http("POST", "/register", &[], br#"{"allowfrom": ["10.0.0.0/8"]}"#);
    assert_eq!(r.status, 201);
    let account = r.json();
    assert_eq!(server.update(&account, &txt_value(1)).status, 401);
    let r = server.http("POST", "/register", &[], br#"{"allowfrom": ["127.0.0.0/8"]}"#);
    assert_eq!(server.update(&r.json(), &txt_value(1)).status, 200);
}

fn dnssec_key_is_kept_in_the_store(backend: Backend) {
    let dir = TempDir::new();
    let config = with_keys(&config_for(backend, &dir, None), "dnssec", "enabled = true");
    let ds = || {
        let out =
            Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let server = TestServer::start_with(&dir, &config);
    let before = ds();
    drop(server);
    let _server = TestServer::start_with(&dir, &config);
    assert_eq!(ds(), before, "the same key after a restart");
}

fn imported_acme_dns_account_updates(backend: Backend) {
    let dir = TempDir::new();
    let source = dir.join("acme-dns.db");
    let (username, password, subdomain) = acme_dns_sqlite(&source);
    let config = config_for(backend, &dir, None);
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    let report = import(&dir, source.to_str().unwrap());
    assert!(report.contains("1 accounts found, 1 imported, 0 already present"), "{report}");
    assert!(report.contains("1 TXT values copied"), "{report}");
    let again = import(&dir, source.to_str().unwrap());
    assert!(again.contains("0 imported, 1 already present"), "{again}");
    let server = TestServer::start_with(&dir, &config);
    let account = serde_json::json!({
        "username": username, "password": password, "subdomain": subdomain,
        "fulldomain": format!("{subdomain}.{DOMAIN}"),
    });
    // The old value is served, the old key works (bcrypt), and then keeps working (SHA-256).
    assert_eq!(served(&server, &account), vec![txt_value(99)]);
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    assert_eq!(server.update(&account, &txt_value(2)).status, 200);
    assert!(server.log_text().contains("rehashed with SHA-256"));
    let mut wrong = account.clone();
    wrong["password"] = serde_json::json!("x".repeat(40));
    assert_eq!(server.update(&wrong, &txt_value(3)).status, 401);
    assert_eq!(served(&server, &account), vec![txt_value(1), txt_value(2)]);
}

fn an_import_is_served_at_once_by_a_running_instance(backend: Backend) {
    let dir = TempDir::new();
    let config = config_for(backend, &dir, None);
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    let server = TestServer::start_with(&dir, &config);
    // An acme-dns account that never had a value: only its registration can tell the instance.
    let source = dir.join("acme-dns.db");
    let (_, _, subdomain) = acme_dns_sqlite(&source);
    rusqlite::Connection::open(&source).unwrap().execute("DELETE FROM txt", []).unwrap();
    let name = format!("{subdomain}.{DOMAIN}");
    assert_eq!(server.ask(&name, t::TXT).rcode, rcode::NXDOMAIN);
    let report = import(&dir, source.to_str().unwrap());
    assert!(report.contains("1 imported"), "{report}");
    // NODATA, not NXDOMAIN, without a restart.
    assert!(
        pg::eventually(Duration::from_secs(3), || server.ask(&name, t::TXT).rcode == rcode::NOERROR),
        "the running instance still answers NXDOMAIN for the imported name"
    );
}

/// Runs `import-acme-dns` with the test's config; returns its output.
pub(crate) fn import(dir: &TempDir, source: &str) -> String {
    let out = Command::new(binary())
        .args(["import-acme-dns", source, "-c"])
        .arg(dir.join("config.cfg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A bcrypt hash the way acme-dns makes it (`$2a$`, cost 10).
fn acme_dns_hash(password: &str) -> String {
    bcrypt::hash_with_result(password, 10).unwrap().format_for_version(bcrypt::Version::TwoA)
}

/// Builds an acme-dns SQLite database from its documented schema, with the hash as a BLOB
/// (as Go's `[]byte` binds it); returns (username, password, subdomain).
pub(crate) fn acme_dns_sqlite(path: &std::path::Path) -> (String, String, String) {
    let username = "2b5a5c0d-3c2f-4c1e-9b6e-1f2e3d4c5b6a".to_owned();
    let password = "Ab3_-efghijklmnopqrstuvwxyz0123456789ABC".to_owned();
    let subdomain = "8c6e4f3a-1b2d-4e5f-8a9b-0c1d2e3f4a5b".to_owned();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE acmedns(Name TEXT, Value TEXT);
         INSERT INTO acmedns VALUES ('db_version', '1');
         CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
             Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO records VALUES (?1, ?2, ?3, '[]')",
        rusqlite::params![username, acme_dns_hash(&password).into_bytes(), subdomain],
    )
    .unwrap();
    conn.execute("INSERT INTO txt VALUES (?1, ?2, 1700000000)", rusqlite::params![subdomain, txt_value(99)])
        .unwrap();
    conn.execute("INSERT INTO txt VALUES (?1, '', 0)", rusqlite::params![subdomain]).unwrap();
    let kind: String = conn.query_row("SELECT typeof(Password) FROM records", [], |r| r.get(0)).unwrap();
    assert_eq!(kind, "blob");
    (username, password, subdomain)
}

/// The same scenarios on SQLite and on PostgreSQL.
macro_rules! battery {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
        }
    };
}

battery!(
    register_update_serve,
    acknowledged_update_survives_kill_9,
    allowfrom_is_enforced,
    dnssec_key_is_kept_in_the_store,
    imported_acme_dns_account_updates,
    an_import_is_served_at_once_by_a_running_instance,
);

#[cfg(feature = "postgres")]
#[test]
fn two_instances_on_one_database_serve_each_others_updates() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let config = |dir: &TempDir| {
        with_keys(&config_for(Backend::Postgres, dir, Some(&url)), "dnssec", "enabled = true")
    };
    let a = TestServer::start_with(&dir_a, &config(&dir_a));
    let b = TestServer::start_with(&dir_b, &config(&dir_b));
    for (writer, reader) in [(&a, &b), (&b, &a)] {
        let account = writer.register();
        // Registered through one: the name exists (NODATA, not NXDOMAIN) on the other at once.
        assert!(pg::eventually(Duration::from_secs(2), || {
            reader.ask(account["fulldomain"].as_str().unwrap(), t::TXT).rcode == rcode::NOERROR
        }));
        let value = txt_value(42);
        assert_eq!(writer.update(&account, &value).status, 200);
        assert!(
            pg::eventually(Duration::from_secs(2), || served(reader, &account) == vec![value.clone()]),
            "update through one instance not served by the other"
        );
    }
    // Both sign with the one key in the database.
    let dnskey = |s: &TestServer| {
        let m = Message::decode(&s.udp_exchange(&query(DOMAIN, 48, Some(1232))).unwrap());
        m.answers.iter().find(|r| r.rtype == 48).map(|r| r.rdata.clone()).expect("DNSKEY")
    };
    assert_eq!(dnskey(&a), dnskey(&b));
}

#[cfg(feature = "postgres")]
#[test]
fn instances_recover_after_the_database_restarts() {
    // A cluster of its own: this test stops it.
    let cluster = pg::Cluster::start();
    let url = pg::fresh_database_on(&cluster.url());
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_with(&dir_a, &config_for(Backend::Postgres, &dir_a, Some(&url)));
    let b = TestServer::start_with(&dir_b, &config_for(Backend::Postgres, &dir_b, Some(&url)));
    let account = a.register();
    let first = txt_value(1);
    assert_eq!(a.update(&account, &first).status, 200);
    assert!(pg::eventually(Duration::from_secs(2), || served(&b, &account) == vec![first.clone()]));

    cluster.stop();
    // The API says so, in JSON; DNS keeps answering from memory.
    let r = a.update(&account, &txt_value(2));
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert_eq!(r.json()["error"], "store_unavailable");
    assert_eq!(a.http("GET", "/ready", &[], b"").status, 503);
    assert_eq!(served(&b, &account), vec![first.clone()]);

    cluster.restart();
    let second = txt_value(3);
    assert!(
        pg::eventually(Duration::from_secs(15), || a.update(&account, &second).status == 200),
        "the API did not recover:\n{}",
        a.log_text()
    );
    assert!(
        pg::eventually(Duration::from_secs(10), || served(&b, &account).last() == Some(&second)),
        "B still serves a stale value:\n{}",
        b.log_text()
    );
    assert_eq!(a.http("GET", "/ready", &[], b"").status, 200);
}

/// With PostgreSQL compiled in, the connection fails; without, the engine is refused. Either
/// way at start, and without printing the password.
#[test]
fn unreachable_database_refuses_to_start() {
    let dir = TempDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/nothing");
    let log = TestServer::try_start(&dir, &config_for(Backend::Postgres, &dir, Some(&url)))
        .err()
        .expect("no start");
    let text = log.join("\n");
    #[cfg(feature = "postgres")]
    assert!(text.contains("cannot open the database"), "{text}");
    #[cfg(not(feature = "postgres"))]
    assert!(text.contains("this build has no postgres support"), "{text}");
    assert!(!text.contains("secret"), "the password must not be printed: {text}");
}

#[cfg(feature = "postgres")]
#[test]
fn acme_dns_postgres_database_is_imported_and_refused_in_place() {
    let source = pg::fresh_database();
    let password = "Zz9_-efghijklmnopqrstuvwxyz0123456789ABC";
    let username = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let subdomain = "5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c";
    pg::psql(
        &source,
        &format!(
            "CREATE TABLE acmedns(Name TEXT, Value TEXT); INSERT INTO acmedns VALUES ('db_version', '1');
             CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
                 Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
             CREATE TABLE txt(rowid SERIAL, Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);
             INSERT INTO records VALUES ('{username}', '{}', '{subdomain}', '[\"127.0.0.0/8\"]');
             INSERT INTO txt (Subdomain, Value, LastUpdate) VALUES ('{subdomain}', '{}', 1700000001),
                 ('{subdomain}', '{}', 1700000002);",
            acme_dns_hash(password),
            txt_value(5),
            txt_value(6)
        ),
    );
    // Pointed at the acme-dns database directly: refuses, naming the import.
    let dir = TempDir::new();
    let log = TestServer::try_start(&dir, &config_for(Backend::Postgres, &dir, Some(&source)))
        .err()
        .expect("refused");
    assert!(log.join("\n").contains("import-acme-dns"), "{log:?}");
    // Imported into a database of our own: served, and the old key works.
    let dir = TempDir::new();
    let config = config_for(Backend::Postgres, &dir, None);
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    let report = import(&dir, &source);
    assert!(report.contains("1 imported") && report.contains("2 TXT values"), "{report}");
    let server = TestServer::start_with(&dir, &config);
    let account = serde_json::json!({
        "username": username, "password": password, "subdomain": subdomain,
        "fulldomain": format!("{subdomain}.{DOMAIN}"),
    });
    assert_eq!(served(&server, &account), vec![txt_value(5), txt_value(6)]);
    assert_eq!(server.update(&account, &txt_value(7)).status, 200);
    assert_eq!(served(&server, &account), vec![txt_value(6), txt_value(7)]);
}

#[cfg(feature = "postgres")]
#[test]
fn an_unreadable_acme_dns_postgres_database_is_named_with_the_servers_reason() {
    // Not acme-dns's schema: its `txt` table has no `rowid` (acme-dns makes one on PostgreSQL).
    let source = pg::fresh_database();
    pg::psql(
        &source,
        "CREATE TABLE records(Username TEXT, Password TEXT, Subdomain TEXT, AllowFrom TEXT);
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);",
    );
    let dir = TempDir::new();
    std::fs::write(dir.join("config.cfg"), config_for(Backend::Postgres, &dir, None)).unwrap();
    let out = Command::new(binary())
        .args(["import-acme-dns", &source, "-c"])
        .arg(dir.join("config.cfg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("rowid") && stderr.contains("does not exist"), "{stderr}");
}
