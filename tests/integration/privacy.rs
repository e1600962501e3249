//! Privacy by design against the real server: what is recorded of a client, the account
//! holder's rights, retention, registration control and rate limits, the operator's tools.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// All bytes of the SQLite database files in `dir`.
fn database_bytes(dir: &TempDir) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(&format!("acme-delegate.db{suffix}"))) {
            all.extend(bytes);
        }
    }
    all
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Runs the binary with the test's config; returns stdout (asserting success).
fn cli(dir: &TempDir, args: &[&str]) -> String {
    let out = Command::new(binary()).args(args).arg("-c").arg(dir.join("config.cfg")).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_client_address_is_kept_only_as_its_network() {
    let (server, dir) = TestServer::start();
    let src = "127.3.4.5";
    let r = http_from(Some(src), server.api, "POST", "/register", &[], b"");
    assert_eq!(r.status, 201);
    let account = r.json();
    let body = serde_json::json!({"subdomain": account["subdomain"], "txt": txt_value(1)}).to_string();
    assert_eq!(
        http_from(Some(src), server.api, "POST", "/update", &auth(&account), body.as_bytes()).status,
        200
    );
    let wrong = [("X-Api-User", account["username"].as_str().unwrap()), ("X-Api-Key", &*"k".repeat(40))];
    assert_eq!(http_from(Some(src), server.api, "POST", "/update", &wrong, body.as_bytes()).status, 401);
    assert_eq!(http_from(Some(src), server.api, "GET", "/account", &auth(&account), b"").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log_text();
    let db = database_bytes(&dir);
    assert!(!log.contains(src), "full address in the log:\n{log}");
    assert!(!contains(&db, src), "full address in the database files");
    assert!(log.contains("127.3.4.0/24"), "{log}");
    assert!(contains(&db, "127.3.4.0/24"), "the truncated network is what the audit trail keeps");
}

#[test]
fn full_addresses_are_recorded_only_when_configured() {
    let (server, _dir) = TestServer::start_with_keys("privacy", "client_ip = \"full\"");
    assert_eq!(http_from(Some("127.3.4.5"), server.api, "POST", "/register", &[], b"").status, 201);
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.log_text().contains("127.3.4.5"));
}

#[test]
fn access_rectification_rotation_and_erasure() {
    let (server, dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(3);
    assert_eq!(server.update(&account, &value).status, 200);

    // Access and portability: everything, including the audit trail and retention settings.
    let r = server.http("GET", "/account", &auth(&account), b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let export = r.json();
    assert_eq!(export["subdomain"], account["subdomain"]);
    assert_eq!(export["txt"][0]["value"], value.as_str());
    let actions: Vec<&str> =
        export["audit"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["register", "update", "account_read"], "{export}");
    assert_eq!(export["retention"]["audit_seconds"], 30 * 86_400);
    assert_eq!(export["retention"]["client_ip"], "truncated");
    // Without the right key: nothing.
    let mut wrong = account.clone();
    wrong["password"] = serde_json::json!("x".repeat(40));
    assert_eq!(server.http("GET", "/account", &auth(&wrong), b"").status, 401);

    // Rectification: allowfrom replaced (and enforced; a bad network is refused).
    let r = server.http("PATCH", "/account", &auth(&account), br#"{"allowfrom": ["bogus"]}"#);
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_allowfrom_cidr")));
    let r = server.http("PATCH", "/account", &auth(&account), br#"{"allowfrom": ["10.0.0.0/8"]}"#);
    assert_eq!((r.status, r.json()["allowfrom"][0].as_str()), (200, Some("10.0.0.0/8")));
    assert_eq!(server.update(&account, &txt_value(4)).status, 401);
    // Now locked out from 127.0.0.1 by its own choice; a second account for the rest.
    let account = server.register();
    assert_eq!(server.update(&account, &value).status, 200);

    // Rotation: a new key; the old one is dead at once.
    let r = server.http("POST", "/account/rotate", &auth(&account), b"");
    assert_eq!(r.status, 200);
    let rotated = r.json();
    assert_eq!(rotated["username"], account["username"]);
    assert_ne!(rotated["password"], account["password"]);
    assert_eq!(server.update(&account, &txt_value(5)).status, 401);
    assert_eq!(server.update(&rotated, &txt_value(5)).status, 200);

    // Erasure: the name stops answering and nothing about the account remains on disk.
    let full = rotated["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(server.ask(&full, t::TXT).rcode, rcode::NOERROR);
    let r = server.http("DELETE", "/account", &auth(&rotated), b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(server.ask(&full, t::TXT).rcode, rcode::NXDOMAIN);
    assert_eq!(server.update(&rotated, &txt_value(6)).status, 401);
    let db = database_bytes(&dir);
    for needle in
        [rotated["username"].as_str().unwrap(), rotated["subdomain"].as_str().unwrap(), &txt_value(5)]
    {
        assert!(!contains(&db, needle), "{needle} is still in the database files after erasure");
    }
    // While the first account, not erased, is still there (so the search can find things).
    assert!(contains(&db, server_first_username(&dir).as_str()));
}

/// The username of the oldest account, from the operator's list.
fn server_first_username(dir: &TempDir) -> String {
    let list = cli(dir, &["account", "list"]);
    list.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("an account").to_owned()
}

#[test]
fn audit_entries_and_txt_values_expire() {
    let keys = "audit_retention = \"2s\"\ntxt_retention = \"2s\"\npurge_interval = 1";
    let (server, dir) = TestServer::start_with_keys("privacy", keys);
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    let full = account["fulldomain"].as_str().unwrap();
    assert_eq!(server.ask(full, t::TXT).txts().len(), 1);
    assert!(crate::pg::eventually(Duration::from_secs(6), || server.ask(full, t::TXT).answers.is_empty()));
    // The name still exists (NODATA): only the value expired.
    assert_eq!(server.ask(full, t::TXT).rcode, rcode::NOERROR);
    let export = cli(&dir, &["account", "export", account["username"].as_str().unwrap()]);
    let export: serde_json::Value = serde_json::from_str(&export).unwrap();
    assert_eq!(export["txt"].as_array().unwrap().len(), 0, "{export}");
    assert_eq!(export["audit"].as_array().unwrap().len(), 0, "{export}");
    assert!(server.log_text().contains("retention: removed"));
}

#[test]
fn unused_accounts_expire_when_configured() {
    let (server, _dir) =
        TestServer::start_with_keys("privacy", "account_expiry = \"2s\"\npurge_interval = 1");
    let account = server.register();
    let full = account["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(server.ask(&full, t::TXT).rcode, rcode::NOERROR);
    assert!(
        crate::pg::eventually(Duration::from_secs(6), || server.ask(&full, t::TXT).rcode == rcode::NXDOMAIN)
    );
    assert_eq!(server.update(&account, &txt_value(1)).status, 401);
}

#[test]
fn registration_modes() {
    // token
    let token = "a-long-registration-token-123";
    let keys = format!("registration = \"token\"\nregistration_token = \"{token}\"");
    let (server, _dir) = TestServer::start_with_keys("api", &keys);
    let r = server.http("POST", "/register", &[], b"");
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("registration_token_invalid")));
    let r = server.http("POST", "/register", &[("Authorization", "Bearer wrong-token-wrong-token")], b"");
    assert_eq!(r.status, 401);
    let bearer = format!("Bearer {token}");
    let r = server.http("POST", "/register", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 201, "{}", r.body_text());
    drop(server);
    // closed (our name) and disable_registration (acme-dns's) alike
    for keys in ["registration = \"closed\"", "disable_registration = true"] {
        let (server, _dir) = TestServer::start_with_keys("api", keys);
        let r = server.http("POST", "/register", &[], b"");
        assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("registration_disabled")), "{keys}");
    }
    // open is the default
    let (server, _dir) = TestServer::start();
    assert_eq!(server.http("POST", "/register", &[], b"").status, 201);
    // a token too short is refused at start, naming the key
    let dir = TempDir::new();
    let config =
        with_keys(&base_config(&dir.0), "api", "registration = \"token\"\nregistration_token = \"short\"");
    let log = TestServer::try_start(&dir, &config).err().expect("refused");
    assert!(log.join("\n").contains("api.registration_token"), "{log:?}");
}

#[test]
fn rate_limits_answer_429_with_json() {
    let (server, _dir) =
        TestServer::start_with_keys("api", "register_rate_limit = 2\nauth_failure_limit = 3");
    let account = server.register();
    assert_eq!(server.http("POST", "/register", &[], b"").status, 201);
    let r = server.http("POST", "/register", &[], b"");
    assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("rate_limited")));
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok()));
    // Another network is not limited by this one's registrations.
    assert_eq!(http_from(Some("127.9.9.9"), server.api, "POST", "/register", &[], b"").status, 201);
    // Failed authentications: after 3 with this username, a wrong key for it is refused with
    // 429 from that network; the right key still passes (see hardening.rs).
    let mut wrong = account.clone();
    wrong["password"] = serde_json::json!("y".repeat(40));
    for _ in 0..3 {
        assert_eq!(server.update(&wrong, &txt_value(1)).status, 401);
    }
    let r = server.update(&wrong, &txt_value(1));
    assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("rate_limited")));
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
}

#[test]
fn operator_tools_and_the_record_of_processing() {
    let (server, dir) = TestServer::start();
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(8)).status, 200);
    let username = account["username"].as_str().unwrap();
    let list = cli(&dir, &["account", "list"]);
    assert!(list.contains(username) && list.contains("1 accounts"), "{list}");
    let show = cli(&dir, &["account", "show", username]);
    assert!(show.contains(&txt_value(8)) && show.contains("register"), "{show}");
    let export: serde_json::Value =
        serde_json::from_str(&cli(&dir, &["account", "export", username])).unwrap();
    assert_eq!(export["username"], username);
    let deleted = cli(&dir, &["account", "delete", username]);
    assert!(deleted.contains("deleted account"), "{deleted}");
    // The running server notices the operator's change and stops answering for the name.
    let full = account["fulldomain"].as_str().unwrap().to_owned();
    assert!(
        crate::pg::eventually(Duration::from_secs(5), || server.ask(&full, t::TXT).rcode == rcode::NXDOMAIN)
    );

    let md = cli(&dir, &["privacy", "report"]);
    assert!(md.starts_with("# Record of processing activities"), "{md}");
    assert!(md.contains("30 days, then purged") && md.contains("/24"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&cli(&dir, &["privacy", "report", "--format", "json"])).unwrap();
    assert!(json["categories"].as_array().unwrap().len() >= 5);
    // The record follows the configuration.
    let config = with_keys(&base_config(&dir.0), "privacy", "client_ip = \"none\"\naudit_retention = \"7d\"");
    std::fs::write(dir.join("config.cfg"), config).unwrap();
    let md = cli(&dir, &["privacy", "report"]);
    assert!(md.contains("not recorded at all") && md.contains("7 days, then purged"), "{md}");
}
