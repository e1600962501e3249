//! The HTTP API against the real server: acme-dns's contract and its clients' quirks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Asserts an error response: status, exact JSON body, JSON content type.
fn assert_error(r: &HttpResponse, status: u16, word: &str) {
    assert_eq!(r.status, status, "{}", r.body_text());
    assert_eq!(r.body_text(), format!("{{\"error\": \"{word}\"}}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// Whether `s` is a lower-case UUID version 4.
fn is_uuid_v4(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
        && &s[14..15] == "4"
}

#[test]
fn register_update_and_serve() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(1);
    let r = server.update(&account, &value);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text(), format!("{{\"txt\": \"{value}\"}}"));
    let reply = server.ask(account["fulldomain"].as_str().unwrap(), t::TXT);
    assert_eq!(reply.txts(), vec![value]);
}

#[test]
fn register_response_has_acme_dns_shape() {
    let (server, _dir) = TestServer::start();
    let r = server.http("POST", "/register", &[], b"");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.body_text();
    assert!(!text.contains('\n') && text.starts_with('{') && text.ends_with('}'), "one line: {text}");
    // Keys in acme-dns's order (acme.sh parses the text with sed).
    let order: Vec<usize> =
        ["\"username\"", "\"password\"", "\"fulldomain\"", "\"subdomain\"", "\"allowfrom\""]
            .iter()
            .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} missing: {text}")))
            .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let j = r.json();
    let username = j["username"].as_str().unwrap();
    let subdomain = j["subdomain"].as_str().unwrap();
    assert!(is_uuid_v4(username) && is_uuid_v4(subdomain), "{j}");
    let password = j["password"].as_str().unwrap();
    assert_eq!(password.len(), 40);
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(j["fulldomain"], format!("{subdomain}.{DOMAIN}"));
    assert_eq!(j["allowfrom"], serde_json::json!([]));
}

#[test]
fn register_bodies_clients_send() {
    let (server, _dir) = TestServer::start();
    let ok = |headers: &[(&str, &str)], body: &[u8]| {
        let r = server.http("POST", "/register", headers, body);
        assert_eq!(r.status, 201, "{headers:?} {:?}: {}", String::from_utf8_lossy(body), r.body_text());
        r.json()
    };
    ok(&[], b""); // acme.sh, acme-dns-certbot: no body, no Content-Type
    ok(&[("Content-Type", "application/json")], b""); // empty body with JSON type
    ok(&[("Content-Type", "application/json")], b"{}"); // Posh-ACME
    ok(&[], b"null");
    ok(&[("Content-Type", "application/x-www-form-urlencoded")], br#"{"allowfrom": ["10.0.0.0/8"]}"#);
    let j = ok(&[], br#"{"allowfrom": ["192.168.100.1/24", "[::1]/64"]}"#);
    assert_eq!(j["allowfrom"], serde_json::json!(["192.168.100.1/24", "::1/64"]));
    let j = ok(&[], br#"{"AllowFrom": ["10.0.0.0/8"]}"#); // goacmedns v0.1.1
    assert_eq!(j["allowfrom"], serde_json::json!(["10.0.0.0/8"]));
    let j = ok(&[], br#"{"ALLOWFROM": ["10.0.0.0/8"]}"#);
    assert_eq!(j["allowfrom"], serde_json::json!(["10.0.0.0/8"]));
    let j = ok(&[], br#"{"allowfrom": [""]}"#); // old acme-dns-client: no restriction
    assert_eq!(j["allowfrom"], serde_json::json!([]));
    assert_error(
        &server.http("POST", "/register", &[], br#"{"allowfrom": ["10.0.0.1"]}"#),
        400,
        "invalid_allowfrom_cidr",
    );
    assert_error(
        &server.http("POST", "/register", &[], br#"{"allowfrom": ["bogus"]}"#),
        400,
        "invalid_allowfrom_cidr",
    );
    assert_error(&server.http("POST", "/register", &[], b"allowfrom=1"), 400, "malformed_json_payload");
    assert_error(
        &server.http("POST", "/register", &[], br#"{"allowfrom": "10.0.0.0/8"}"#),
        400,
        "malformed_json_payload",
    );
}

#[test]
fn update_bodies_clients_send() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let user = account["username"].as_str().unwrap();
    let key = account["password"].as_str().unwrap();
    let sub = account["subdomain"].as_str().unwrap();
    let auth = [("X-Api-User", user), ("X-Api-Key", key)];
    let send = |path: &str, extra: &[(&str, &str)], body: String| {
        let mut headers = auth.to_vec();
        headers.extend_from_slice(extra);
        server.http("POST", path, &headers, body.as_bytes())
    };
    let v = txt_value(10);
    // goacmedns v0.1.1: capitalised keys.
    let r = send("/update", &[], format!(r#"{{"SubDomain": "{sub}", "Txt": "{v}"}}"#));
    assert_eq!(r.status, 200);
    // acme.sh: JSON with curl's form Content-Type; it greps the value in quotes.
    let v = txt_value(11);
    let r = send(
        "/update",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(r#"{{"subdomain": "{sub}", "txt": "{v}"}}"#),
    );
    assert!(r.status == 200 && r.body_text().contains(&format!("\"{v}\"")));
    // certbot-dns-acmedns with a trailing slash in its URL posts to //update.
    for path in ["//update", "/update/"] {
        let r = send(
            path,
            &[("Content-Type", "application/json")],
            format!(r#"{{"subdomain": "{sub}", "txt": "{v}"}}"#),
        );
        assert_eq!(r.status, 200, "{path}");
    }
    // Other UUID forms of the user name authenticate, as in acme-dns.
    let compact = user.replace('-', "");
    for form in [user.to_uppercase(), compact, format!("{{{user}}}"), format!("urn:uuid:{user}")] {
        let headers = [("X-Api-User", form.as_str()), ("X-Api-Key", key)];
        let body = format!(r#"{{"subdomain": "{sub}", "txt": "{v}"}}"#);
        assert_eq!(server.http("POST", "/update", &headers, body.as_bytes()).status, 200, "{form}");
    }
}

#[test]
fn update_failures() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let other = server.register();
    let user = account["username"].as_str().unwrap();
    let key = account["password"].as_str().unwrap();
    let body = serde_json::json!({"subdomain": account["subdomain"], "txt": txt_value(1)}).to_string();
    let post =
        |headers: &[(&str, &str)], body: &str| server.http("POST", "/update", headers, body.as_bytes());
    let wrong_key = "A".repeat(40);
    let unknown = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    for headers in [
        vec![],
        vec![("X-Api-User", user)],
        vec![("X-Api-User", "not-a-uuid"), ("X-Api-Key", key)],
        vec![("X-Api-User", user), ("X-Api-Key", &key[..39])],
        vec![("X-Api-User", user), ("X-Api-Key", wrong_key.as_str())],
        vec![("X-Api-User", unknown), ("X-Api-Key", key)],
    ] {
        assert_error(&post(&headers, &body), 401, "forbidden");
    }
    let auth = [("X-Api-User", user), ("X-Api-Key", key)];
    // The other account's subdomain with these credentials.
    let theirs = serde_json::json!({"subdomain": other["subdomain"], "txt": txt_value(1)}).to_string();
    assert_error(&post(&auth, &theirs), 401, "forbidden");
    for txt in [txt_value(1)[..42].to_owned(), format!("{}!", &txt_value(1)[..42]), String::new()] {
        let b = serde_json::json!({"subdomain": account["subdomain"], "txt": txt}).to_string();
        assert_error(&post(&auth, &b), 400, "bad_txt");
    }
    assert_error(&post(&auth, "not json"), 400, "malformed_json_payload");
}

#[test]
fn health_unknown_paths_and_wrong_methods() {
    let (server, _dir) = TestServer::start();
    let r = server.http("GET", "/health", &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_error(&server.http("GET", "/nope", &[], b""), 404, "not_found");
    assert_error(&server.http("GET", "/update", &[], b""), 405, "method_not_allowed");
    assert_error(&server.http("PUT", "/register", &[], b""), 405, "method_not_allowed");
    let r = server.http("GET", "/ready", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
}

#[test]
fn allowfrom_is_checked_against_the_socket_address() {
    let (server, _dir) = TestServer::start();
    let register = |body: &[u8]| server.http("POST", "/register", &[], body).json();
    let elsewhere = register(br#"{"allowfrom": ["10.0.0.0/8"]}"#);
    assert_error(&server.update(&elsewhere, &txt_value(1)), 401, "forbidden");
    // X-Forwarded-For is ignored without use_header.
    let body = serde_json::json!({"subdomain": elsewhere["subdomain"], "txt": txt_value(1)}).to_string();
    let headers = [
        ("X-Api-User", elsewhere["username"].as_str().unwrap()),
        ("X-Api-Key", elsewhere["password"].as_str().unwrap()),
        ("X-Forwarded-For", "10.1.2.3"),
    ];
    assert_eq!(server.http("POST", "/update", &headers, body.as_bytes()).status, 401);
    let here = register(br#"{"allowfrom": ["127.0.0.0/8"]}"#);
    assert_eq!(server.update(&here, &txt_value(1)).status, 200);
}

/// Posts an update for `account` with an X-Forwarded-For value.
fn update_via_proxy(server: &TestServer, account: &serde_json::Value, xff: &str) -> u16 {
    let body = serde_json::json!({"subdomain": account["subdomain"], "txt": txt_value(2)}).to_string();
    let headers = [
        ("X-Api-User", account["username"].as_str().unwrap()),
        ("X-Api-Key", account["password"].as_str().unwrap()),
        ("X-Forwarded-For", xff),
    ];
    server.http("POST", "/update", &headers, body.as_bytes()).status
}

#[test]
fn proxy_header_is_believed_only_from_trusted_proxies() {
    let dir = TempDir::new();
    let keys = "use_header = true\nheader_name = \"X-Forwarded-For\"";
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "api", keys));
    let account = server.http("POST", "/register", &[], br#"{"allowfrom": ["192.0.2.0/24"]}"#).json();
    // Loopback is trusted by default: the header's client counts.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7"), 200);
    // The right-most untrusted address counts: a client cannot prepend its way in.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7, 198.51.100.9"), 401);
    // Our own proxies on the right are skipped.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7, 127.0.0.1"), 200);
    drop(server);

    let dir = TempDir::new();
    let keys = format!("{keys}\ntrusted_proxies = [\"10.0.0.0/8\"]");
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "api", &keys));
    let account = server.http("POST", "/register", &[], br#"{"allowfrom": ["192.0.2.0/24"]}"#).json();
    // 127.0.0.1 is not a trusted proxy now: the header is ignored, the socket address counts.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7"), 401);
}

#[test]
fn oversized_bodies_and_slow_clients() {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "api", "request_timeout = 1"));
    let big = vec![b' '; 100 * 1024];
    assert_error(&server.http("POST", "/register", &[], &big), 413, "body_too_large");
    // Headers promise a body that never comes.
    let mut stream = TcpStream::connect(server.api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    stream.write_all(b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{").unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(start.elapsed() < Duration::from_secs(5), "slow body held for {:?}", start.elapsed());
    if !raw.is_empty() {
        assert_eq!(parse_http(&raw).status, 408);
    }
    // Headers that never finish: dropped after the header timeout (5 s by default is too long
    // for a test; the server is still healthy meanwhile).
    let mut slow = TcpStream::connect(server.api).unwrap();
    slow.write_all(b"POST /register HTTP/1.1\r\n").unwrap();
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
}

#[test]
fn keys_are_stored_hashed() {
    let (server, dir) = TestServer::start();
    let account = server.register();
    let password = account["password"].as_str().unwrap();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        bytes.extend(std::fs::read(dir.join(&format!("acme-delegate.db{suffix}"))).unwrap_or_default());
    }
    assert!(
        bytes.windows(password.len()).all(|w| w != password.as_bytes()),
        "the key is in the database files"
    );
    assert!(!server.log_text().contains(password), "the key is in the log");
}

#[test]
fn cors_preflight_allows_the_api_headers() {
    let (server, _dir) = TestServer::start();
    let r = server.http(
        "OPTIONS",
        "/update",
        &[
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-api-user, x-api-key, content-type"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-headers").is_some_and(|h| h.contains("x-api-key")));
    let r = server.http("GET", "/health", &[("Origin", "https://example.com")], b"");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}
