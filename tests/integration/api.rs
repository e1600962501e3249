//! The HTTP API against the real server: acme-dns's contract and its clients' quirks.
//!
//! Each row of the compatibility contract (DESIGN.md section 3, ACME-DNS.md section 1) and each
//! client quirk (CLIENTS.md) has a test of its own, so that a failure names the row it breaks.
//! Every test starts its own server: rate limits and accounts never leak between tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::*;

/// Asserts an error response: status, exact JSON body, JSON content type.
fn assert_error(r: &HttpResponse, status: u16, word: &str) {
    assert_eq!(r.status, status, "{}", r.body_text());
    assert_eq!(r.body_text(), format!("{{\"error\": \"{word}\"}}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// Asserts an error response of some 4xx/5xx status whose body is a JSON object with a string
/// `error`, sent as `application/json`; returns the error word.
fn assert_json_error(r: &HttpResponse, what: &str) -> String {
    assert!(r.status >= 400, "{what}: status {} ({})", r.status, r.body_text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}: {r:?}");
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {:?}", r.body_text()));
    let word = body["error"].as_str().unwrap_or_else(|| panic!("{what}: no \"error\" string in {body}"));
    assert!(!word.is_empty(), "{what}: empty error word");
    word.to_owned()
}

/// Whether `s` is a lower-case UUID version 4 (RFC 4122 variant).
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
        && "89ab".contains(&s[19..20])
}

/// POSTs `body` to `/register` with exactly `headers`.
fn register_raw(server: &TestServer, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    server.http("POST", "/register", headers, body)
}

/// Asserts everything acme-dns's clients rely on in a successful `/register` response, with
/// `allowfrom` as expected, and returns the parsed body.
fn assert_registration(r: &HttpResponse, allowfrom: Value) -> Value {
    assert_eq!(r.status, 201, "register: {}", r.body_text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.body_text();
    // acme.sh reads the body with a sed expression anchored at `^{` and `}$` on one line.
    assert!(!text.contains(['\n', '\r']), "not one line: {text:?}");
    assert!(text.starts_with('{') && text.ends_with('}'), "{text:?}");
    // Keys in acme-dns's order, each once.
    let keys = ["username", "password", "fulldomain", "subdomain", "allowfrom"];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            let quoted = format!("\"{k}\"");
            assert_eq!(text.matches(&quoted).count(), 1, "{k} once: {text}");
            text.find(&quoted).unwrap()
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "key order: {text}");
    let j = r.json();
    let object = j.as_object().expect("an object");
    assert_eq!(object.len(), keys.len(), "exactly the five keys: {text}");
    let username = j["username"].as_str().expect("username string");
    let subdomain = j["subdomain"].as_str().expect("subdomain string");
    assert!(is_uuid_v4(username), "username {username:?}");
    assert!(is_uuid_v4(subdomain), "subdomain {subdomain:?}");
    assert_ne!(username, subdomain);
    let password = j["password"].as_str().expect("password string");
    assert_eq!(password.len(), 40, "{password:?}");
    assert!(password.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{password:?}");
    let fulldomain = j["fulldomain"].as_str().expect("fulldomain string");
    assert_eq!(fulldomain, format!("{subdomain}.{DOMAIN}"));
    assert_eq!(fulldomain, fulldomain.to_ascii_lowercase());
    assert!(!fulldomain.ends_with('.'), "{fulldomain}");
    assert_eq!(j["allowfrom"], allowfrom, "{text}");
    j
}

/// The `X-Api-User` and `X-Api-Key` of an account.
fn creds(account: &Value) -> (&str, &str) {
    (account["username"].as_str().unwrap(), account["password"].as_str().unwrap())
}

/// POSTs `body` to `path` with the account's credentials and `extra` headers.
fn post_as(
    server: &TestServer,
    account: &Value,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let (user, key) = creds(account);
    let mut headers = vec![("X-Api-User", user), ("X-Api-Key", key)];
    headers.extend_from_slice(extra);
    server.http("POST", path, &headers, body.as_bytes())
}

/// The usual update body for an account.
fn update_body(account: &Value, txt: &str) -> String {
    json!({"subdomain": account["subdomain"], "txt": txt}).to_string()
}

/// The TXT values DNS serves for an account, in answer order.
fn served(server: &TestServer, account: &Value) -> Vec<String> {
    server.ask(account["fulldomain"].as_str().unwrap(), t::TXT).txts()
}

/// Asserts a successful update response for `txt`.
fn assert_updated(r: &HttpResponse, txt: &str) {
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.body_text(), format!("{{\"txt\": \"{txt}\"}}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

/// Starts a server with extra `[api]` keys.
fn start_with_api_keys(keys: &str) -> (TestServer, TempDir) {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "api", keys));
    (server, dir)
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
    // The self-service routes use PATCH and DELETE: a browser must be allowed to send them.
    let methods = r.header("access-control-allow-methods").unwrap_or_default().to_owned();
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.split(", ").any(|m| m == method), "{method} not in {methods:?}");
    }
    let r = server.http("GET", "/health", &[("Origin", "https://example.com")], b"");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

// ---- /register: the compatibility contract, one row per test ----

#[test]
fn contract_register_with_empty_body() {
    let (server, _dir) = TestServer::start();
    assert_registration(&register_raw(&server, &[], b""), json!([]));
}

#[test]
fn contract_register_with_empty_object() {
    let (server, _dir) = TestServer::start();
    assert_registration(&register_raw(&server, &[], b"{}"), json!([]));
}

#[test]
fn contract_register_with_null() {
    let (server, _dir) = TestServer::start();
    assert_registration(&register_raw(&server, &[], b"null"), json!([]));
}

#[test]
fn contract_register_echoes_allowfrom_as_written_minus_brackets() {
    let (server, _dir) = TestServer::start();
    let r = register_raw(&server, &[], br#"{"allowfrom": ["192.168.100.1/24", "[::1]/64"]}"#);
    // Not normalised to 192.168.100.0/24: acme-dns echoes the text.
    assert_registration(&r, json!(["192.168.100.1/24", "::1/64"]));
}

#[test]
fn contract_register_keys_are_case_insensitive() {
    let (server, _dir) = TestServer::start();
    let account = assert_registration(
        &register_raw(&server, &[], br#"{"ALLOWFROM": ["10.0.0.0/8"]}"#),
        json!(["10.0.0.0/8"]),
    );
    // Stored, not only echoed: an update from 127.0.0.1 is outside 10/8.
    assert_error(&server.update(&account, &txt_value(1)), 401, "forbidden");
    assert_registration(
        &register_raw(&server, &[], br#"{"AllowFrom": ["10.0.0.0/8"]}"#),
        json!(["10.0.0.0/8"]),
    );
}

#[test]
fn contract_register_allowfrom_empty_string_means_no_restriction() {
    let (server, _dir) = TestServer::start();
    let account = assert_registration(&register_raw(&server, &[], br#"{"allowfrom": [""]}"#), json!([]));
    assert_updated(&server.update(&account, &txt_value(2)), &txt_value(2));
}

#[test]
fn contract_register_invalid_cidr() {
    let (server, _dir) = TestServer::start();
    for body in [
        &br#"{"allowfrom": ["not-a-network"]}"#[..],
        br#"{"allowfrom": ["10.0.0.1"]}"#, // a bare address is not a CIDR in acme-dns
        br#"{"allowfrom": ["10.0.0.0/33"]}"#,
        br#"{"allowfrom": ["10.0.0.0/8", "bogus/8"]}"#,
    ] {
        assert_error(&register_raw(&server, &[], body), 400, "invalid_allowfrom_cidr");
    }
}

#[test]
fn contract_register_non_json() {
    let (server, _dir) = TestServer::start();
    for body in [&b"allowfrom=10.0.0.0/8"[..], b"{", b"[]", b"\"text\"", br#"{"allowfrom": "10.0.0.0/8"}"#] {
        let r = register_raw(&server, &[], body);
        assert_error(&r, 400, "malformed_json_payload");
    }
}

#[test]
fn contract_fulldomain_is_lowercase_without_trailing_dot_whatever_the_config_says() {
    let dir = TempDir::new();
    let config = base_config(&dir.0).replace(
        &format!("domain = \"{DOMAIN}\""),
        &format!("domain = \"{}.\"", DOMAIN.to_ascii_uppercase()),
    );
    let server = TestServer::start_with(&dir, &config);
    assert_registration(&register_raw(&server, &[], b""), json!([]));
}

// ---- client quirks (CLIENTS.md) ----

#[test]
fn quirk_goacmedns_v011_update_with_capitalised_keys() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(3);
    let body = format!(r#"{{"SubDomain": "{}", "Txt": "{value}"}}"#, account["subdomain"].as_str().unwrap());
    let r = post_as(&server, &account, "/update", &[("Content-Type", "application/json")], &body);
    assert_updated(&r, &value);
    assert_eq!(served(&server, &account), vec![value]);
}

#[test]
fn quirk_register_empty_body_with_json_content_type() {
    let (server, _dir) = TestServer::start();
    let r = register_raw(&server, &[("Content-Type", "application/json")], b"");
    assert_registration(&r, json!([]));
}

#[test]
fn quirk_register_without_content_type() {
    // acme-dns-certbot-joohoi posts json.dumps(...) without a Content-Type.
    let (server, _dir) = TestServer::start();
    let r = register_raw(&server, &[], br#"{"allowfrom": ["127.0.0.0/8"]}"#);
    assert_registration(&r, json!(["127.0.0.0/8"]));
}

#[test]
fn quirk_acme_sh_register_form_content_type_with_json_body() {
    let (server, _dir) = TestServer::start();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_registration(&register_raw(&server, &form, b""), json!([]));
    let r = register_raw(&server, &form, br#"{"allowfrom": ["127.0.0.0/8"]}"#);
    assert_registration(&r, json!(["127.0.0.0/8"]));
}

#[test]
fn quirk_acme_sh_update_form_content_type_with_json_body() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(4);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = post_as(&server, &account, "/update", &form, &update_body(&account, &value));
    assert_updated(&r, &value);
    assert_eq!(served(&server, &account), vec![value]);
}

#[test]
fn quirk_acme_sh_finds_the_txt_value_in_double_quotes() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(5);
    let r = server.update(&account, &value);
    assert_eq!(r.status, 200);
    // dns_acmedns.sh: `grep "\"$txtvalue\""` on the response.
    assert!(r.body_text().contains(&format!("\"{value}\"")), "{}", r.body_text());
    assert_eq!(r.json(), json!({"txt": value}));
}

#[test]
fn quirk_certbot_dns_acmedns_posts_to_double_slash_update() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(6);
    let json_type = [("Content-Type", "application/json")];
    assert_updated(
        &post_as(&server, &account, "//update", &json_type, &update_body(&account, &value)),
        &value,
    );
    assert_eq!(served(&server, &account), vec![value]);
}

#[test]
fn quirk_update_with_trailing_slash() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(7);
    assert_updated(&post_as(&server, &account, "/update/", &[], &update_body(&account, &value)), &value);
    assert_eq!(served(&server, &account), vec![value]);
    // The same base URL used for registration.
    assert_registration(&register_raw(&server, &[], b""), json!([]));
    assert_registration(&server.http("POST", "//register", &[], b""), json!([]));
}

// ---- /update failures ----

/// Starts a server with one account, and checks after `f` that its TXT was never set.
fn with_account_unchanged(f: impl FnOnce(&TestServer, &Value)) {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    f(&server, &account);
    assert!(served(&server, &account).is_empty(), "a refused update changed the TXT");
}

#[test]
fn update_without_credentials_is_forbidden() {
    with_account_unchanged(|server, account| {
        let (user, key) = creds(account);
        let body = update_body(account, &txt_value(1));
        for headers in [vec![], vec![("X-Api-User", user)], vec![("X-Api-Key", key)]] {
            let r = server.http("POST", "/update", &headers, body.as_bytes());
            assert_error(&r, 401, "forbidden");
        }
    });
}

#[test]
fn update_with_a_user_that_is_not_a_uuid_is_forbidden() {
    with_account_unchanged(|server, account| {
        let (user, key) = creds(account);
        let body = update_body(account, &txt_value(1));
        for bad in ["not-a-uuid", &user[..35], &format!("{user}0"), &user.replace('-', "_"), ""] {
            let r =
                server.http("POST", "/update", &[("X-Api-User", bad), ("X-Api-Key", key)], body.as_bytes());
            assert_error(&r, 401, "forbidden");
        }
    });
}

#[test]
fn update_with_a_key_of_wrong_length_is_forbidden() {
    with_account_unchanged(|server, account| {
        let (user, key) = creds(account);
        let body = update_body(account, &txt_value(1));
        for bad in [&key[..39], &format!("{key}A"), ""] {
            let r =
                server.http("POST", "/update", &[("X-Api-User", user), ("X-Api-Key", bad)], body.as_bytes());
            assert_error(&r, 401, "forbidden");
        }
    });
}

#[test]
fn update_with_a_wrong_key_is_forbidden() {
    with_account_unchanged(|server, account| {
        let (user, key) = creds(account);
        let body = update_body(account, &txt_value(1));
        // One character changed, and a key with a character outside the alphabet.
        let last = if key.ends_with('A') { "B" } else { "A" };
        let changed = format!("{}{last}", &key[..39]);
        let outside = format!("{}!", &key[..39]);
        for bad in [changed.as_str(), outside.as_str()] {
            let r =
                server.http("POST", "/update", &[("X-Api-User", user), ("X-Api-Key", bad)], body.as_bytes());
            assert_error(&r, 401, "forbidden");
        }
    });
}

#[test]
fn update_of_an_unknown_user_is_forbidden() {
    with_account_unchanged(|server, account| {
        let (_, key) = creds(account);
        let body = update_body(account, &txt_value(1));
        let unknown = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        let r =
            server.http("POST", "/update", &[("X-Api-User", unknown), ("X-Api-Key", key)], body.as_bytes());
        assert_error(&r, 401, "forbidden");
    });
}

#[test]
fn update_of_another_accounts_subdomain_is_forbidden() {
    with_account_unchanged(|server, victim| {
        let attacker = server.register();
        let body = update_body(victim, &txt_value(1));
        assert_error(&post_as(server, &attacker, "/update", &[], &body), 401, "forbidden");
        // Nor did the attempt set the attacker's own TXT.
        assert!(served(server, &attacker).is_empty());
    });
}

#[test]
fn update_with_a_txt_of_42_characters_is_bad_txt() {
    with_account_unchanged(|server, account| {
        let short = &txt_value(1)[..42];
        assert_error(&post_as(server, account, "/update", &[], &update_body(account, short)), 400, "bad_txt");
        let long = format!("{}A", txt_value(1));
        assert_error(&post_as(server, account, "/update", &[], &update_body(account, &long)), 400, "bad_txt");
    });
}

#[test]
fn update_with_a_bad_character_in_txt_is_bad_txt() {
    with_account_unchanged(|server, account| {
        for bad_char in ['!', '=', '+', '/', ' ', '.', '"'] {
            let txt = format!("{}{bad_char}", &txt_value(1)[..42]);
            let r = post_as(server, account, "/update", &[], &update_body(account, &txt));
            assert_error(&r, 400, "bad_txt");
        }
    });
}

#[test]
fn update_accepts_the_other_uuid_forms_of_the_user() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let (user, key) = creds(&account);
    let forms = [
        user.to_ascii_uppercase(),
        user.replace('-', ""),
        format!("{{{user}}}"),
        format!("urn:uuid:{user}"),
        format!("URN:UUID:{}", user.to_ascii_uppercase()),
    ];
    for (i, form) in forms.iter().enumerate() {
        let value = txt_value(20 + i as u32);
        let r = server.http(
            "POST",
            "/update",
            &[("X-Api-User", form), ("X-Api-Key", key)],
            update_body(&account, &value).as_bytes(),
        );
        assert_updated(&r, &value);
    }
}

// ---- /health, unknown paths, wrong methods ----

#[test]
fn health_is_200_with_an_empty_body() {
    let (server, _dir) = TestServer::start();
    let r = server.http("GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "{:?}", r.body_text());
    assert_eq!(r.header("content-length"), Some("0"));
}

#[test]
fn unknown_path_is_404_with_a_json_error() {
    let (server, _dir) = TestServer::start();
    for (method, path) in [("GET", "/nope"), ("POST", "/registerx"), ("GET", "/"), ("POST", "/update/x")] {
        let r = server.http(method, path, &[], b"");
        assert_eq!(r.status, 404, "{method} {path}");
        assert_json_error(&r, &format!("{method} {path}"));
    }
}

#[test]
fn wrong_method_is_405_with_a_json_error() {
    let (server, _dir) = TestServer::start();
    for (method, path) in [("GET", "/update"), ("GET", "/register"), ("PUT", "/update"), ("POST", "/health")]
    {
        let r = server.http(method, path, &[], b"");
        assert_eq!(r.status, 405, "{method} {path}");
        assert_json_error(&r, &format!("{method} {path}"));
    }
}

#[test]
fn every_error_body_is_json() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let (user, _) = creds(&account);
    let big = vec![b'{'; 100 * 1024];
    let cases: Vec<(&str, HttpResponse)> = vec![
        ("404", server.http("GET", "/missing", &[], b"")),
        ("405", server.http("DELETE", "/register", &[], b"")),
        ("400 cidr", register_raw(&server, &[], br#"{"allowfrom": ["x"]}"#)),
        ("400 json", register_raw(&server, &[], b"}")),
        ("401", server.http("POST", "/update", &[("X-Api-User", user)], b"{}")),
        ("400 txt", post_as(&server, &account, "/update", &[], &update_body(&account, "short"))),
        ("413", register_raw(&server, &[], &big)),
    ];
    for (what, r) in &cases {
        assert_json_error(r, what);
    }
}

// ---- allowfrom against the socket address ----

#[test]
fn allowfrom_elsewhere_refuses_an_update_from_loopback() {
    let (server, _dir) = TestServer::start();
    let account = assert_registration(
        &register_raw(&server, &[], br#"{"allowfrom": ["10.0.0.0/8"]}"#),
        json!(["10.0.0.0/8"]),
    );
    assert_error(&server.update(&account, &txt_value(1)), 401, "forbidden");
    // Without use_header a forwarded-for header changes nothing.
    let r = post_as(
        &server,
        &account,
        "/update",
        &[("X-Forwarded-For", "10.1.2.3")],
        &update_body(&account, &txt_value(1)),
    );
    assert_error(&r, 401, "forbidden");
    assert!(served(&server, &account).is_empty());
}

#[test]
fn allowfrom_loopback_accepts_an_update_from_loopback() {
    let (server, _dir) = TestServer::start();
    let account = assert_registration(
        &register_raw(&server, &[], br#"{"allowfrom": ["127.0.0.0/8"]}"#),
        json!(["127.0.0.0/8"]),
    );
    assert_updated(&server.update(&account, &txt_value(1)), &txt_value(1));
}

// ---- proxy header ----

/// `[api]` keys of a server behind a proxy that sets X-Forwarded-For.
const PROXY_KEYS: &str = "use_header = true\nheader_name = \"X-Forwarded-For\"";

/// Registers an account allowed from 192.0.2.0/24 only.
fn register_documentation_net(server: &TestServer) -> Value {
    let r = register_raw(server, &[], br#"{"allowfrom": ["192.0.2.0/24"]}"#);
    assert_registration(&r, json!(["192.0.2.0/24"]))
}

#[test]
fn proxy_header_from_a_trusted_proxy_names_the_client() {
    let (server, _dir) = start_with_api_keys(PROXY_KEYS);
    let account = register_documentation_net(&server);
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7"), 200);
    assert_eq!(served(&server, &account), vec![txt_value(2)]);
}

#[test]
fn proxy_header_right_most_untrusted_address_counts() {
    let (server, _dir) = start_with_api_keys(PROXY_KEYS);
    let account = register_documentation_net(&server);
    // The client prepended an allowed address; the proxy appended the real one.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7, 198.51.100.9"), 401);
    // Two header lines: the last one's right-most entry still counts.
    let body = update_body(&account, &txt_value(2));
    let r = post_as(
        &server,
        &account,
        "/update",
        &[("X-Forwarded-For", "192.0.2.7"), ("X-Forwarded-For", "198.51.100.9")],
        &body,
    );
    assert_error(&r, 401, "forbidden");
    // No header at all: the socket address (127.0.0.1) counts.
    assert_error(&server.update(&account, &txt_value(2)), 401, "forbidden");
    assert!(served(&server, &account).is_empty());
}

#[test]
fn proxy_header_entries_that_are_not_addresses_cannot_hide_the_real_client() {
    let (server, _dir) = start_with_api_keys(PROXY_KEYS);
    let account = register_documentation_net(&server);
    // The client wrote "192.0.2.7, junk"; the proxy appended the real address. Parsing from the
    // left and stopping at the junk would have let 192.0.2.7 count.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7, junk, 198.51.100.9"), 401);
    let body = update_body(&account, &txt_value(2));
    let r = post_as(
        &server,
        &account,
        "/update",
        &[("X-Forwarded-For", "192.0.2.7, junk"), ("X-Forwarded-For", "198.51.100.9")],
        &body,
    );
    assert_error(&r, 401, "forbidden");
    // Junk right of everything (a proxy that appended nothing usable): the socket address counts.
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7, junk"), 401);
    assert!(served(&server, &account).is_empty());
}

#[test]
fn proxy_header_bytes_that_are_not_text_cannot_hide_the_real_client() {
    let (server, _dir) = start_with_api_keys(PROXY_KEYS);
    // Allowed from the proxy's own network: if the header were dropped, the proxy would count.
    let account = assert_registration(
        &register_raw(&server, &[], br#"{"allowfrom": ["127.0.0.0/8"]}"#),
        json!(["127.0.0.0/8"]),
    );
    // The client sent a byte that is not text; the proxy appended the real address to the line.
    let body = update_body(&account, &txt_value(2));
    let mut request = format!(
        "POST /update HTTP/1.1\r\nHost: x\r\nX-Api-User: {}\r\nX-Api-Key: {}\r\nContent-Length: {}\r\n",
        account["username"].as_str().unwrap(),
        account["password"].as_str().unwrap(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(b"X-Forwarded-For: \xff, 198.51.100.9\r\nConnection: close\r\n\r\n");
    request.extend_from_slice(body.as_bytes());
    let mut stream = TcpStream::connect(server.api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&request).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(parse_http(&raw).status, 401, "{}", String::from_utf8_lossy(&raw));
    assert!(served(&server, &account).is_empty());
}

#[test]
fn proxy_header_from_an_untrusted_peer_is_ignored() {
    let (server, _dir) = start_with_api_keys(&format!("{PROXY_KEYS}\ntrusted_proxies = [\"10.0.0.0/8\"]"));
    let account = register_documentation_net(&server);
    assert_eq!(update_via_proxy(&server, &account, "192.0.2.7"), 401);
    // …and the socket address is what counts: loopback accounts may update.
    let here = assert_registration(
        &register_raw(&server, &[], br#"{"allowfrom": ["127.0.0.0/8"]}"#),
        json!(["127.0.0.0/8"]),
    );
    assert_eq!(update_via_proxy(&server, &here, "192.0.2.7"), 200);
}

// ---- registration switched off ----

#[test]
fn disable_registration_refuses_register_and_keeps_health() {
    let (server, _dir) = start_with_api_keys("disable_registration = true");
    for (headers, body) in [
        (&[][..], &b""[..]),
        (&[("Content-Type", "application/json")][..], &br#"{"allowfrom": ["127.0.0.0/8"]}"#[..]),
    ] {
        let r = register_raw(&server, headers, body);
        assert!((400..500).contains(&r.status), "register allowed: {} {}", r.status, r.body_text());
        assert_json_error(&r, "disabled registration");
        assert!(!r.body_text().contains("password"));
    }
    let r = server.http("GET", "/health", &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    // /update still answers (no account exists, so: forbidden).
    let r = server.http(
        "POST",
        "/update",
        &[("X-Api-User", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"), ("X-Api-Key", &"A".repeat(40))],
        update_body(&json!({"subdomain": "x"}), &txt_value(1)).as_bytes(),
    );
    assert_error(&r, 401, "forbidden");
}

// ---- limits ----

#[test]
fn body_too_large_is_413_with_a_json_error() {
    let (server, _dir) = TestServer::start();
    let big = vec![b' '; 100 * 1024];
    assert_error(&register_raw(&server, &[], &big), 413, "body_too_large");
    let account = server.register();
    let mut padded = update_body(&account, &txt_value(1)).into_bytes();
    padded.extend(std::iter::repeat_n(b' ', 100 * 1024));
    let (user, key) = creds(&account);
    let r = server.http("POST", "/update", &[("X-Api-User", user), ("X-Api-Key", key)], &padded);
    assert_error(&r, 413, "body_too_large");
    assert!(served(&server, &account).is_empty());
}

/// Sends a request head promising 100 bytes of body and one byte of it, then waits; returns
/// what came back and how long it took.
fn send_half_a_body(api: SocketAddr, path: &str) -> (Vec<u8>, Duration) {
    let mut stream = TcpStream::connect(api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let start = Instant::now();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    (raw, start.elapsed())
}

#[test]
fn slow_body_is_cut_off_within_request_timeout() {
    let (server, _dir) = start_with_api_keys("request_timeout = 1");
    let threads: Vec<_> = ["/register", "/update"]
        .into_iter()
        .map(|path| {
            let api = server.api;
            std::thread::spawn(move || {
                let (raw, elapsed) = send_half_a_body(api, path);
                (path, raw, elapsed)
            })
        })
        .collect();
    for thread in threads {
        let (path, raw, elapsed) = thread.join().unwrap();
        assert!(elapsed < Duration::from_secs(5), "{path}: slow body held for {elapsed:?}");
        if !raw.is_empty() {
            let r = parse_http(&raw);
            assert_eq!(r.status, 408, "{path}: {}", r.body_text());
            assert_json_error(&r, path);
        }
    }
    // The server is fine afterwards.
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
}

// ---- storage ----

#[test]
fn credentials_are_stored_hashed() {
    let (server, dir) = TestServer::start();
    let account = server.register();
    assert_updated(&server.update(&account, &txt_value(1)), &txt_value(1));
    let (user, key) = creds(&account);
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        bytes.extend(std::fs::read(dir.join(&format!("acme-delegate.db{suffix}"))).unwrap_or_default());
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The files read are the ones holding the account.
    assert!(contains(user), "the username is in neither file: wrong path?");
    assert!(!contains(key), "the API key is stored in clear");
    assert!(!server.log_text().contains(key), "the API key is in the log");
}

#[test]
fn txt_order_is_kept_for_updates_within_one_second() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    // Start just after a second boundary, so that the four updates share one second (the case
    // where acme-dns loses the third value).
    let into_second = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1_010 - into_second)));
    let start = Instant::now();
    let values: Vec<String> = (1..=4).map(|i| txt_value(100 + i)).collect();
    for value in &values {
        assert_updated(&server.update(&account, value), value);
    }
    let took = start.elapsed();
    assert_eq!(served(&server, &account), values[2..].to_vec(), "updates took {took:?}");
    assert!(took < Duration::from_millis(950), "updates too slow to share a second: {took:?}");
}

#[test]
fn txt_values_setting_keeps_that_many_in_order() {
    let dir = TempDir::new();
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dns", "txt_values = 3"));
    let account = server.register();
    let values: Vec<String> = (1..=5).map(|i| txt_value(200 + i)).collect();
    for value in &values {
        assert_updated(&server.update(&account, value), value);
    }
    assert_eq!(served(&server, &account), values[2..].to_vec());
}

/// Issue 15, item 6: a plain OPTIONS (no CORS preflight headers) gets 200 and the route's
/// methods in `Allow`, and `OPTIONS *` gets 200, as acme-dns answers (RFC 9110 section 9.3.7).
#[test]
fn options_requests_get_the_allowed_methods() {
    let (server, _dir) = TestServer::start();
    for (path, method) in
        [("/update", "POST"), ("/register", "POST"), ("/health", "GET"), ("/account", "PATCH")]
    {
        let r = server.http("OPTIONS", path, &[], b"");
        assert_eq!(r.status, 200, "OPTIONS {path}: {}", r.body_text());
        let allow = r.header("allow").unwrap_or_default();
        assert!(allow.contains(method) && allow.contains("OPTIONS"), "OPTIONS {path}: Allow {allow:?}");
    }
    let r = server.http("OPTIONS", "*", &[], b"");
    assert_eq!(r.status, 200, "OPTIONS *: {}", r.body_text());
    let allow = r.header("allow").unwrap_or_default();
    assert!(["GET", "POST", "PATCH", "DELETE", "OPTIONS"].iter().all(|m| allow.contains(m)), "{allow:?}");
    // No such route: still 404; a real CORS preflight is still answered as one.
    assert_error(&server.http("OPTIONS", "/nope", &[], b""), 404, "not_found");
    let preflight = [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")];
    let r = server.http("OPTIONS", "/update", &preflight, b"");
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
}

/// Issue 15, item 7: percent-encoded unreserved characters are the same path (RFC 3986
/// section 6.2.2.2), as acme-dns serves them; reserved ones (`%2F`) are not decoded.
#[test]
fn percent_encoded_unreserved_characters_are_the_same_path() {
    let (server, _dir) = TestServer::start();
    let r = server.http("POST", "/%72egister", &[], b"");
    assert_eq!(r.status, 201, "{}", r.body_text());
    let account = r.json();
    let value = txt_value(300);
    assert_updated(&post_as(&server, &account, "/%75pdate", &[], &update_body(&account, &value)), &value);
    let value = txt_value(301);
    assert_updated(
        &post_as(&server, &account, "//%75%70%64%61%74%65/", &[], &update_body(&account, &value)),
        &value,
    );
    assert_eq!(served(&server, &account), vec![txt_value(300), value]);
    assert_eq!(server.http("GET", "/h%65alth", &[], b"").status, 200);
    assert_error(
        &post_as(&server, &account, "/%2Fupdate", &[], &update_body(&account, "x")),
        404,
        "not_found",
    );
}
