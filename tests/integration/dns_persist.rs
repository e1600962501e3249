//! dns-persist-01 records (issue 11) against the real server: the API contract row by row,
//! each limit and each bad input (with nothing stored), what DNS serves at the persist name,
//! erasure, and a second instance on PostgreSQL serving what the first one wrote.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::*;
use crate::pg;

/// Seconds since the epoch.
fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `POST /persist` with the account's credentials.
fn put(server: &TestServer, account: &Value, body: &Value) -> HttpResponse {
    server.http("POST", "/persist", &auth(account), body.to_string().as_bytes())
}

/// `DELETE /persist` of `issuer` with the account's credentials.
fn delete(server: &TestServer, account: &Value, issuer: &str) -> HttpResponse {
    server.http("DELETE", "/persist", &auth(account), json!({ "issuer": issuer }).to_string().as_bytes())
}

/// `GET /account` as JSON.
fn account_view(server: &TestServer, account: &Value) -> Value {
    let r = server.http("GET", "/account", &auth(account), b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    r.json()
}

/// The persist name of an account, from `GET /account`.
fn persist_domain(server: &TestServer, account: &Value) -> String {
    account_view(server, account)["persistdomain"].as_str().expect("persistdomain").to_owned()
}

/// The TXT records at `name` over TCP (ten long records do not fit a UDP answer).
fn served(server: &TestServer, name: &str) -> Message {
    Message::decode(&server.tcp_exchange(&query(name, t::TXT, Some(1232))).expect("a TCP reply"))
}

/// The character strings of a TXT rdata.
fn strings(rdata: &[u8]) -> Vec<Vec<u8>> {
    let (mut out, mut pos) = (Vec::new(), 0);
    while pos < rdata.len() {
        let len = usize::from(rdata[pos]);
        out.push(rdata[pos + 1..pos + 1 + len].to_vec());
        pos += 1 + len;
    }
    out
}

/// A request body for `issuer`.
fn body(issuer: &str) -> Value {
    json!({ "issuer": issuer, "accounturi": "https://ca.example/acct/123" })
}

#[test]
fn set_replace_list_and_delete() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let fulldomain = account["fulldomain"].as_str().unwrap().to_owned();
    let name = persist_domain(&server, &account);
    let subdomain = account["subdomain"].as_str().unwrap();
    assert_eq!(name, format!("persist-{subdomain}.{DOMAIN}"));
    assert_ne!(name, fulldomain);
    // Never used: the persist name does not exist yet.
    assert_eq!(server.ask(&name, t::TXT).rcode, rcode::NXDOMAIN);
    let until = now() + 86_400 * 365;
    let r = put(
        &server,
        &account,
        &json!({ "issuer": "letsencrypt.org", "accounturi": "https://ca.example/acct/123", "policy": "wildcard", "persistuntil": until }),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let value = format!(
        "letsencrypt.org; accounturi=https://ca.example/acct/123; policy=wildcard; persistUntil={until}"
    );
    assert_eq!(r.json(), json!({ "persistdomain": name, "value": value }));
    // Served at once at the persist name with its own TTL, never at the fulldomain.
    let reply = server.ask(&name, t::TXT);
    assert_eq!((reply.rcode, reply.txts()), (rcode::NOERROR, vec![value.clone()]));
    assert_eq!(reply.answers[0].ttl, 300, "persist_ttl's default");
    assert!(server.ask(&fulldomain, t::TXT).txts().is_empty());
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    assert_eq!(server.ask(&fulldomain, t::TXT).txts(), vec![txt_value(1)]);
    assert_eq!(server.ask(&name, t::TXT).txts(), vec![value.clone()], "dns-01 and persist never share a set");
    // The same issuer again replaces its record; another issuer adds one (served by issuer).
    let r = put(&server, &account, &body("letsencrypt.org"));
    let replaced = "letsencrypt.org; accounturi=https://ca.example/acct/123";
    assert_eq!(r.json()["value"], replaced);
    assert_eq!(put(&server, &account, &body("ca.example")).status, 200);
    let both = vec!["ca.example; accounturi=https://ca.example/acct/123".to_owned(), replaced.to_owned()];
    assert_eq!(server.ask(&name, t::TXT).txts(), both);
    // GET /account lists them; the audit trail has each set, replace and delete.
    let view = account_view(&server, &account);
    let listed: Vec<(&str, &str)> = view["persist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["issuer"].as_str().unwrap(), p["value"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("ca.example", both[0].as_str()), ("letsencrypt.org", replaced)]);
    assert!(view["persist"][0]["set_at"].as_i64().is_some_and(|t| t >= now() - 60));
    let r = delete(&server, &account, "letsencrypt.org");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json(), json!({ "persistdomain": name, "deleted": "letsencrypt.org" }));
    assert_eq!(server.ask(&name, t::TXT).txts(), vec![both[0].clone()]);
    // An unknown issuer: 404 with a JSON error.
    let r = delete(&server, &account, "letsencrypt.org");
    assert_eq!((r.status, r.json()), (404, json!({ "error": "persist_record_not_found" })));
    assert_eq!(delete(&server, &account, "ca.example").status, 200);
    // All gone: the name stays, empty (NODATA, not NXDOMAIN: resolvers may have cached it).
    let reply = server.ask(&name, t::TXT);
    assert_eq!((reply.rcode, reply.answers.len()), (rcode::NOERROR, 0));
    let actions: Vec<String> = account_view(&server, &account)["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("persist"))
        .map(|e| {
            format!("{} {} x{}", e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap(), e["count"])
        })
        .collect();
    // Identical uses within an hour are one entry with a count (the trail's folding).
    assert_eq!(
        actions,
        ["persist_set ok x2", "persist_replace ok x1", "persist_delete ok x2", "persist_delete not_found x1"]
    );
    // /register's answer is unchanged: five keys, no persist name.
    let fresh = server.register();
    assert_eq!(fresh.as_object().unwrap().len(), 5, "{fresh}");
}

#[test]
fn bad_input_is_named_and_nothing_is_stored() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let uri = "https://ca.example/acct/1";
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "accounturi": uri }), "issuer"),
        (json!({ "issuer": "", "accounturi": uri }), "issuer"),
        (json!({ "issuer": "LetsEncrypt.org", "accounturi": uri }), "issuer"),
        (json!({ "issuer": "letsencrypt.org.", "accounturi": uri }), "issuer"),
        (json!({ "issuer": "bücher.example", "accounturi": uri }), "issuer"),
        (json!({ "issuer": "a b.example", "accounturi": uri }), "issuer"),
        (json!({ "issuer": 7, "accounturi": uri }), "issuer"),
        (
            json!({ "issuer": format!("{}.example", vec!["a".repeat(63); 4].join(".")), "accounturi": uri }),
            "issuer",
        ),
        (json!({ "issuer": "ca.example" }), "accounturi"),
        (json!({ "issuer": "ca.example", "accounturi": "ca.example/acct/1" }), "accounturi"),
        (
            json!({ "issuer": "ca.example", "accounturi": "https://ca.example/a;policy=wildcard" }),
            "accounturi",
        ),
        (json!({ "issuer": "ca.example", "accounturi": "https://ca.example/a b" }), "accounturi"),
        (json!({ "issuer": "ca.example", "accounturi": "https://ca.example/a\u{7}" }), "accounturi"),
        (
            json!({ "issuer": "ca.example", "accounturi": format!("https://ca.example/{}", "a".repeat(500)) }),
            "accounturi",
        ),
        (json!({ "issuer": "ca.example", "accounturi": uri, "policy": "all" }), "policy"),
        (json!({ "issuer": "ca.example", "accounturi": uri, "policy": "Wildcard" }), "policy"),
        (json!({ "issuer": "ca.example", "accounturi": uri, "persistuntil": "1798761600" }), "persistuntil"),
        (json!({ "issuer": "ca.example", "accounturi": uri, "persistuntil": 1.5e9 }), "persistuntil"),
        (json!({ "issuer": "ca.example", "accounturi": uri, "persistuntil": now() - 1 }), "persistuntil"),
    ];
    for (request, field) in &cases {
        let r = put(&server, &account, request);
        assert_eq!(r.status, 400, "{request}: {}", r.body_text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let error = r.json();
        assert_eq!(error["error"], format!("bad_{field}"), "{request}: {error}");
        assert_eq!(error["field"], *field, "{request}: {error}");
        assert!(error["detail"].as_str().is_some_and(|d| d.starts_with(field)), "{error}");
    }
    // Nothing stored, nothing served.
    let view = account_view(&server, &account);
    assert_eq!(view["persist"], json!([]));
    assert_eq!(server.ask(view["persistdomain"].as_str().unwrap(), t::TXT).rcode, rcode::NXDOMAIN);
    // Malformed JSON and a bad issuer to delete are 400s too; bad credentials the usual 401.
    let r = server.http("POST", "/persist", &auth(&account), b"{");
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("malformed_json_payload")));
    let r = delete(&server, &account, "Not A Name");
    assert_eq!((r.status, r.json()["field"].clone()), (400, json!("issuer")));
    let mut wrong = account.clone();
    wrong["password"] = json!("x".repeat(40));
    assert_eq!(put(&server, &wrong, &body("ca.example")).status, 401);
    assert_eq!(delete(&server, &wrong, "ca.example").status, 401);
}

#[test]
fn further_parameters_are_served_as_given_and_kept_over_a_restart() {
    let (server, dir) = TestServer::start();
    let account = server.register();
    let name = persist_domain(&server, &account);
    let digest = "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw";
    let request = json!({
        "issuer": "ca.example", "accounturi": "acct:1", "policy": "wildcard",
        "params": { "accountdigest": digest },
    });
    let r = put(&server, &account, &request);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let value = format!("ca.example; accounturi=acct:1; policy=wildcard; accountdigest={digest}");
    assert_eq!(r.json()["value"], value);
    assert_eq!(server.ask(&name, t::TXT).txts(), vec![value.clone()]);
    assert_eq!(account_view(&server, &account)["persist"][0]["value"], value);
    // Loaded back from the store as written.
    drop(server);
    let server = TestServer::start_with(&dir, &base_config(&dir.0));
    assert_eq!(server.ask(&name, t::TXT).txts(), vec![value.clone()]);
    // Replacing the record without them drops them.
    assert_eq!(
        put(&server, &account, &json!({ "issuer": "ca.example", "accounturi": "acct:1" })).status,
        200
    );
    assert_eq!(server.ask(&name, t::TXT).txts(), vec!["ca.example; accounturi=acct:1".to_owned()]);
}

#[test]
fn bad_further_parameters_and_u_labels_are_named() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let with = |params: Value| json!({ "issuer": "ca.example", "accounturi": "acct:1", "params": params });
    let cases = [
        (with(json!({ "account-digest": "x" })), "params: account-digest:"),
        (with(json!({ "accountdigest": "a;policy=wildcard" })), "params: accountdigest:"),
        (with(json!({ "accountdigest": "a b" })), "params: accountdigest:"),
        (with(json!({ "accountdigest": 5 })), "params: accountdigest:"),
        (with(json!({ "accountdigest": "" })), "params: accountdigest:"),
        (with(json!({ "t": "v".repeat(129) })), "params: t:"),
        (with(json!({ "PersistUntil": "1" })), "params: PersistUntil:"),
        (with(json!({ "a": "1", "b": "1", "c": "1", "d": "1", "e": "1" })), "params: 5 parameters"),
        (with(json!(["accountdigest=x"])), "params: params:"),
        (with(json!({ "issuer": "bücher.example" })), "params: issuer: the value is non-ASCII"),
    ];
    for (request, detail) in &cases {
        let r = put(&server, &account, request);
        let error = r.json();
        assert_eq!(
            (r.status, &error["error"], &error["field"]),
            (400, &json!("bad_params"), &json!("params")),
            "{request}"
        );
        assert!(error["detail"].as_str().is_some_and(|d| d.starts_with(detail)), "{request}: {error}");
    }
    // A U-label issuer: told to give the punycode form, which is then accepted.
    let r = put(&server, &account, &json!({ "issuer": "bücher.example", "accounturi": "acct:1" }));
    assert_eq!((r.status, r.json()["field"].clone()), (400, json!("issuer")));
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("U-label") && detail.contains("punycode, xn--"), "{detail}");
    assert_eq!(
        put(&server, &account, &json!({ "issuer": "xn--bcher-kva.example", "accounturi": "acct:1" })).status,
        200
    );
    let view = account_view(&server, &account);
    assert_eq!(view["persist"].as_array().unwrap().len(), 1, "only the A-label record: {view}");
}

#[test]
fn limits_cannot_be_passed() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let name = persist_domain(&server, &account);
    // The longest values allowed: a 253-octet issuer, a 512-octet account URI and four
    // further parameters of 32-octet tags and 128-octet values.
    let params: serde_json::Map<String, Value> =
        (0..4).map(|i| (format!("{i}{}", "t".repeat(31)), json!("v".repeat(128)))).collect();
    let issuer = |n: usize| format!("{}.ca{n}{}", vec!["a".repeat(63); 3].join("."), "d".repeat(58));
    let uri = format!("https://ca.example/{}", "u".repeat(512 - "https://ca.example/".len()));
    for n in 0..10 {
        let request = json!({
            "issuer": issuer(n), "accounturi": uri, "policy": "wildcard", "persistuntil": now() + 3600, "params": params,
        });
        let r = put(&server, &account, &request);
        assert_eq!(r.status, 200, "record {n}: {}", r.body_text());
    }
    // An eleventh issuer is refused and changes nothing; replacing one of the ten is fine.
    let r = put(&server, &account, &json!({ "issuer": "eleventh.example", "accounturi": uri }));
    assert_eq!((r.status, r.json()), (409, json!({ "error": "too_many_persist_records" })));
    assert_eq!(
        put(&server, &account, &json!({ "issuer": issuer(3), "accounturi": "acct:short" })).status,
        200
    );
    // One past each length limit.
    assert_eq!((issuer(0).len(), uri.len()), (253, 512));
    let r = put(&server, &account, &json!({ "issuer": format!("b.{}", issuer(0)), "accounturi": uri }));
    assert_eq!((r.status, r.json()["detail"].clone()), (400, json!("issuer: longer than 253 octets")));
    let r = put(&server, &account, &json!({ "issuer": issuer(1), "accounturi": format!("{uri}u") }));
    assert_eq!((r.status, r.json()["field"].clone()), (400, json!("accounturi")));
    // Ten records served (over TCP: they do not fit one UDP answer), each value split into
    // strings of at most 255 octets that join to the value.
    let reply = served(&server, &name);
    assert_eq!(reply.answers.len(), 10);
    for record in &reply.answers {
        let parts = strings(&record.rdata);
        assert!(parts.len() >= 2 || record.txt().len() <= 255);
        assert!(
            parts.iter().all(|p| p.len() <= 255) && parts[..parts.len() - 1].iter().all(|p| p.len() == 255)
        );
    }
    assert!(reply.txts().iter().any(|v| v == &format!("{}; accounturi=acct:short", issuer(3))));
    let longest: Vec<String> = reply.txts().into_iter().filter(|v| v.ends_with(&"v".repeat(128))).collect();
    assert_eq!(longest.len(), 9, "the nine others carry their four further parameters");
    assert!(longest.iter().all(|v| v.len() > 1400), "{}", longest[0].len());
    let view = account_view(&server, &account);
    assert_eq!(view["persist"].as_array().unwrap().len(), 10);
    // UDP: truncated, so that the resolver retries over TCP.
    assert!(server.ask(&name, t::TXT).tc());
}

#[test]
fn erasure_removes_the_records_and_the_name() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let name = persist_domain(&server, &account);
    assert_eq!(put(&server, &account, &body("ca.example")).status, 200);
    // A persist name is not an account: /ready counts one subdomain.
    assert_eq!(server.http("GET", "/ready", &[], b"").json()["subdomains"], 1);
    let r = server.http("DELETE", "/account", &auth(&account), b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(server.ask(&name, t::TXT).rcode, rcode::NXDOMAIN);
}

#[test]
fn a_record_written_through_one_instance_is_served_by_another_on_postgres() {
    let url = pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let config = |dir: &TempDir| {
        let base = postgres_config(&dir.0, &url);
        with_keys(&base, "dnssec", "enabled = true")
    };
    let a = TestServer::start_with(&dir_a, &config(&dir_a));
    let b = TestServer::start_with(&dir_b, &config(&dir_b));
    let account = a.register();
    let name = persist_domain(&a, &account);
    // With a further parameter: the value PostgreSQL keeps is what B serves.
    let mut request = body("ca.example");
    request["params"] = json!({ "accountdigest": "sha-256/x" });
    assert_eq!(put(&a, &account, &request).status, 200);
    let want = vec!["ca.example; accounturi=https://ca.example/acct/123; accountdigest=sha-256/x".to_owned()];
    assert!(
        pg::eventually(Duration::from_secs(3), || b.ask(&name, t::TXT).txts() == want),
        "instance B does not serve A's record: {:?}",
        b.ask(&name, t::TXT)
    );
    // Deleting through B empties it on A.
    assert_eq!(delete(&b, &account, "ca.example").status, 200);
    assert!(pg::eventually(Duration::from_secs(3), || a.ask(&name, t::TXT).txts().is_empty()));
    // Erasure through A: gone on B.
    assert_eq!(put(&a, &account, &body("ca.example")).status, 200);
    assert_eq!(a.http("DELETE", "/account", &auth(&account), b"").status, 200);
    assert!(pg::eventually(Duration::from_secs(3), || b.ask(&name, t::TXT).rcode == rcode::NXDOMAIN));
}
