//! Issues 12 and 19 (hardening): each test replays one attack of an adversarial run against the
//! real server over real sockets, with small limits in the config so that the attack stays cheap.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::*;

/// A TCP connection to `to` from the local address `source` (a distinctive `127.x.y.z`).
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).expect("bind the source address");
    socket.connect_timeout(&to.into(), Duration::from_secs(3)).expect("connect");
    socket.into()
}

/// Reads a whole HTTP response (the server closes after it: `Connection: close`).
fn read_response(stream: &mut TcpStream) -> HttpResponse {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_http(&raw)
}

/// Whether the server has already sent something on `stream` (without waiting).
fn has_answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let answered = matches!(stream.peek(&mut byte), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    answered
}

/// An `/update` from `source` with these credentials for `subdomain`.
fn update_from(source: &str, api: SocketAddr, user: &str, key: &str, subdomain: &str) -> HttpResponse {
    let body = serde_json::json!({"subdomain": subdomain, "txt": txt_value(3)}).to_string();
    http_from(
        Some(source),
        api,
        "POST",
        "/update",
        &[("X-Api-User", user), ("X-Api-Key", key)],
        body.as_bytes(),
    )
}

/// Item 1: many connections from one address each send the headers of `/register`, wait until
/// all of them are past the point where the limit used to be checked, then send the body.
/// No more than the limit may be created, however the requests interleave.
#[test]
fn r12_registration_limit_holds_under_concurrency() {
    let (server, _dir) = TestServer::start_with_keys("api", "register_rate_limit = 3");
    let head = format!(
        "POST /register HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
        server.api
    );
    let mut streams: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = connect_from("127.8.1.1", server.api);
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let mut statuses = Vec::new();
    for stream in &mut streams {
        // A request refused before its body is answered at once; send no body after that.
        if !has_answered(stream) {
            let _ = stream.write_all(b"{}");
        }
        statuses.push(read_response(stream).status);
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((created, limited), (3, 37), "{statuses:?}");
    // Requests that failed before the write gave their place back; these did not, so the
    // network stays limited, and another network is not.
    assert_eq!(http_from(Some("127.8.1.2"), server.api, "POST", "/register", &[], b"{}").status, 429);
    assert_eq!(http_from(Some("127.8.2.1"), server.api, "POST", "/register", &[], b"{}").status, 201);
}

/// Item 2: 30 bad `/update` requests from one address, then a correct one from another address
/// of the same /24 (as behind a proxy, where all clients share one address): the correct one
/// passes, while guessing the key of the account under attack stays refused.
#[test]
fn r12_failures_of_others_do_not_refuse_correct_credentials() {
    let (server, _dir) = TestServer::start_with_keys("api", "auth_failure_limit = 3");
    let victim = server.register();
    let target = server.register();
    let field = |a: &serde_json::Value, k: &str| a[k].as_str().unwrap().to_owned();
    let wrong_key = "y".repeat(40);
    for i in 0..30 {
        let (user, key) = match i % 3 {
            // A wrong key for an account the attacker knows the username of,
            0 => (field(&target, "username"), wrong_key.clone()),
            // made-up credentials,
            1 => (format!("00000000-0000-4000-8000-{i:012}"), wrong_key.clone()),
            // and a broken client's garbage.
            _ => ("nobody".to_owned(), "short".to_owned()),
        };
        let r = update_from("127.7.7.66", server.api, &user, &key, &field(&target, "subdomain"));
        assert!([401, 429].contains(&r.status), "{}", r.body_text());
    }
    let r = update_from(
        "127.7.7.10",
        server.api,
        &field(&victim, "username"),
        &field(&victim, "password"),
        &field(&victim, "subdomain"),
    );
    assert_eq!(r.status, 200, "correct credentials refused: {}", r.body_text());
    // Guessing stays slow: the attacked account's key cannot be tried from that network now.
    let r = update_from("127.7.7.66", server.api, &field(&target, "username"), &wrong_key, "x");
    assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("rate_limited")));
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)));
}

/// Issue 19, item 5: 30 bad `/update` requests naming the victim's own username from one
/// address, then the victim's correct request from another address of the same /24 (as behind
/// a proxy): the correct key is served, while wrong keys for that username stay refused.
#[test]
fn r19_failures_with_the_victims_username_do_not_refuse_its_correct_key() {
    let (server, _dir) = TestServer::start_with_keys("api", "auth_failure_limit = 3");
    let victim = server.register();
    let field = |k: &str| victim[k].as_str().unwrap().to_owned();
    let (user, key, subdomain) = (field("username"), field("password"), field("subdomain"));
    let wrong_key = "y".repeat(40);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(update_from("127.7.8.2", server.api, &user, &wrong_key, &subdomain).status);
    }
    assert_eq!(statuses, [[401; 3].as_slice(), [429; 27].as_slice()].concat(), "{statuses:?}");
    let r = update_from("127.7.8.3", server.api, &user, &key, &subdomain);
    assert_eq!(r.status, 200, "correct credentials refused: {}", r.body_text());
    // Wrong keys for that username and a malformed key stay refused from that network, and are
    // not audited one by one.
    for (source, key) in
        [("127.7.8.2", wrong_key.as_str()), ("127.7.8.3", wrong_key.as_str()), ("127.7.8.2", "short")]
    {
        let r = update_from(source, server.api, &user, key, &subdomain);
        assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("rate_limited")), "{source} {key}");
        assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s > 0)));
    }
    // The right key still passes afterwards: nothing the attacker does shuts it out.
    assert_eq!(update_from("127.7.8.2", server.api, &user, &key, &subdomain).status, 200);
    let export = server.http("GET", "/account", &auth(&victim), b"").json();
    let failures: i64 = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "bad_key")
        .map(|e| e["count"].as_i64().unwrap())
        .sum();
    assert_eq!(failures, 3, "only the failures before the limit are audited: {export}");
}

/// Issue 19, item 5, the exception: an acme-dns account still holding its bcrypt hash is not
/// checked while its username is throttled from a network (each check costs tens of
/// milliseconds of CPU), so its correct key is refused there until its first use from
/// elsewhere has replaced the hash; from then on the correct key passes there too.
#[test]
fn r19_a_throttled_bcrypt_key_is_not_checked_until_rehashed() {
    let dir = TempDir::new();
    let source = dir.join("acme-dns.db");
    let (user, key, subdomain) = crate::stores::acme_dns_sqlite(&source);
    let config = with_keys(&base_config(&dir.0), "api", "auth_failure_limit = 3");
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    assert!(crate::stores::import(&dir, source.to_str().unwrap()).contains("1 imported"));
    let server = TestServer::start_with(&dir, &config);
    let wrong_key = "y".repeat(40);
    for _ in 0..3 {
        assert_eq!(update_from("127.7.9.2", server.api, &user, &wrong_key, &subdomain).status, 401);
    }
    assert_eq!(update_from("127.7.9.3", server.api, &user, &key, &subdomain).status, 429);
    assert!(!server.log_text().contains("rehashed"), "checked while throttled: {}", server.log_text());
    assert_eq!(update_from("127.7.10.2", server.api, &user, &key, &subdomain).status, 200);
    assert!(server.log_text().contains("rehashed with SHA-256"), "{}", server.log_text());
    assert_eq!(update_from("127.7.9.3", server.api, &user, &key, &subdomain).status, 200);
    assert_eq!(update_from("127.7.9.3", server.api, &user, &wrong_key, &subdomain).status, 429);
}

/// Item 5: one account sends updates as fast as it can; past `update_rate_limit` per minute
/// they are refused with 429 JSON and Retry-After, and other accounts are not affected.
#[test]
fn r12_one_account_cannot_update_without_bound() {
    let (server, _dir) = TestServer::start_with_keys("api", "update_rate_limit = 5");
    let flooder = server.register();
    let other = server.register();
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(server.update(&flooder, &txt_value(i)).status);
    }
    assert_eq!(statuses, [[200; 5].as_slice(), [429; 7].as_slice()].concat(), "{statuses:?}");
    let r = server.update(&flooder, &txt_value(99));
    assert_eq!((r.status, r.json()["error"].as_str()), (429, Some("rate_limited")));
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s))));
    assert_eq!(server.update(&other, &txt_value(1)).status, 200);
    // The refused updates left no audit rows: the account's own export counts five (folded
    // into one entry with a count, see r12_audit_rows_of_one_account_are_bounded).
    let export = server.http("GET", "/account", &auth(&flooder), b"").json();
    let updates: i64 = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "update")
        .map(|e| e["count"].as_i64().unwrap())
        .sum();
    assert_eq!(updates, 5, "{export}");
}

/// The `subdomain=` field of a log line.
fn subdomain_field(line: &str) -> String {
    let rest = &line[line.find("subdomain=").expect("a subdomain field") + "subdomain=".len()..];
    rest.split_whitespace().next().unwrap_or("").to_owned()
}

/// The `subdomain=` field of the `n`th (from 1) log line containing `event`.
fn logged_subdomain(server: &TestServer, event: &str, n: usize) -> String {
    // The server's output reaches the test through a pipe read by another thread: a line the
    // server wrote before answering may arrive here a moment after the answer.
    let count = || server.log_text().lines().filter(|l| l.contains(event)).count();
    crate::pg::eventually(Duration::from_secs(3), || count() >= n);
    let log = server.log_text();
    let line = log
        .lines()
        .filter(|l| l.contains(event))
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no {event:?} #{n} in {log}"));
    subdomain_field(line)
}

/// Item 7: an account is registered, updated and erased; the logs must not name its subdomain
/// afterwards. By default they hold a keyed pseudonym, the same across restarts (the secret is
/// kept in a file beside the database); `log_subdomain = "full"` logs the name.
#[test]
fn r12_logs_do_not_keep_an_erased_subdomain() {
    let dir = TempDir::new();
    let config = base_config(&dir.0);
    let server = TestServer::start_with(&dir, &config);
    let erased = server.register();
    let kept = server.register();
    assert_eq!(server.update(&erased, &txt_value(1)).status, 200);
    assert_eq!(server.http("DELETE", "/account", &auth(&erased), b"").status, 200);
    let subdomain = erased["subdomain"].as_str().unwrap().to_owned();
    let log = server.log_text();
    assert!(!log.to_ascii_lowercase().contains(&subdomain), "the subdomain is in the log:\n{log}");
    let pseudonym = logged_subdomain(&server, "TXT updated", 1);
    assert!(
        pseudonym.len() == 13
            && pseudonym.starts_with('~')
            && pseudonym[1..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{pseudonym:?}"
    );
    // The same account gets the same pseudonym after a restart: the secret is kept.
    assert_eq!(server.update(&kept, &txt_value(2)).status, 200);
    let before = logged_subdomain(&server, "TXT updated", 2);
    drop(server);
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(server.update(&kept, &txt_value(3)).status, 200);
    assert_eq!(logged_subdomain(&server, "TXT updated", 1), before, "the pseudonym changed with a restart");
    assert!(!server.log_text().contains(kept["subdomain"].as_str().unwrap()));
    drop(server);
    // The operator may choose the name itself.
    let (server, _dir) = TestServer::start_with_keys("privacy", "log_subdomain = \"full\"");
    let account = server.register();
    assert_eq!(logged_subdomain(&server, "account registered", 1), account["subdomain"].as_str().unwrap());
}

/// One DNS exchange on an open TCP stream, waiting at most `limit` for the answer.
fn tcp_ask(stream: &mut TcpStream, packet: &[u8], limit: Duration) -> Option<Message> {
    stream.set_read_timeout(Some(limit)).ok()?;
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).ok()?;
    read_frame(stream).map(|reply| Message::decode(&reply))
}

/// Whether the server closes `stream` within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// `count` connections from `source` that send nothing (`None`) or these bytes, kept open.
fn hold_connections(source: &str, to: SocketAddr, count: usize, send: Option<&[u8]>) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = connect_from(source, to);
            if let Some(bytes) = send {
                stream.write_all(bytes).unwrap();
            }
            stream
        })
        .collect()
}

/// Item 3: one address holds every TCP slot with idle and one-byte connections (its per-network
/// cap is the whole table, and the first-message deadline is long, so nothing but taking over
/// an idle slot can help); a query from another network is answered within 2 s.
#[test]
fn r12_tcp_query_is_answered_while_one_address_holds_every_slot() {
    let dir = TempDir::new();
    let keys = "tcp_max_connections = 8\ntcp_max_connections_per_network = 8\n\
                tcp_first_message_timeout = 30\ntcp_idle_timeout = 30";
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dns", keys));
    let mut hogs = hold_connections("127.0.0.2", server.tcp, 8, None);
    hogs.extend(hold_connections("127.0.0.2", server.tcp, 8, Some(&[0])));
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let mut stream = connect_from("127.0.1.2", server.tcp);
    let answer = tcp_ask(&mut stream, &query(DOMAIN, t::SOA, None), Duration::from_secs(2));
    assert!(answer.is_some_and(|m| m.rcode == rcode::NOERROR), "no answer within 2 s");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(hogs);
}

/// Item 3: a network at its cap pushes out only its own connections, and a connection that
/// sends one byte is closed after `tcp_first_message_timeout`.
#[test]
fn r12_tcp_per_network_cap_and_first_message_deadline() {
    let dir = TempDir::new();
    let keys = "tcp_max_connections = 8\ntcp_max_connections_per_network = 2\n\
                tcp_first_message_timeout = 1\ntcp_idle_timeout = 30";
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "dns", keys));
    let soa = query(DOMAIN, t::SOA, None);
    // The attacker's network fills what it can, then a resolver on another network connects
    // and asks twice on each of its connections, with more of the attack in between.
    let mut hogs = hold_connections("127.0.0.2", server.tcp, 10, Some(&[0]));
    let mut resolver = hold_connections("127.0.1.2", server.tcp, 2, None);
    for stream in &mut resolver {
        assert!(tcp_ask(stream, &soa, Duration::from_secs(2)).is_some(), "first query unanswered");
    }
    hogs.extend(hold_connections("127.0.0.3", server.tcp, 10, None));
    for stream in &mut resolver {
        assert!(tcp_ask(stream, &soa, Duration::from_secs(2)).is_some(), "second query unanswered");
    }
    // The last one-byte connection never completes its first message: closed after ~1 s.
    let mut late = connect_from("127.0.2.2", server.tcp);
    late.write_all(&[0]).unwrap();
    let started = std::time::Instant::now();
    assert!(closed_within(&mut late, Duration::from_secs(3)), "still open after 3 s");
    assert!(started.elapsed() >= Duration::from_millis(500), "closed before its deadline");
    drop(hogs);
}

/// Issue 19, item 6: `-c` naming a symbolic link to a password file. The error gives the
/// position and at most the token there, never the line (the hash is not printed), and a
/// value quoted in a key's error is cut short. Both for `check-config` and for `serve`.
#[test]
fn r19_config_errors_quote_no_line_of_the_file() {
    let dir = TempDir::new();
    let hash = "$6$rounds=5000$Qx7vN2pLsaltsalt$SecretHashAbcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
    let shadow = dir.join("shadow");
    std::fs::write(&shadow, format!("root:{hash}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"))
        .unwrap();
    let link = dir.join("config.cfg");
    std::os::unix::fs::symlink(&shadow, &link).unwrap();
    let long_value = format!("sqlite3-{}", "v".repeat(80));
    let wrong_engine = dir.join("engine.cfg");
    let config = base_config(&dir.0).replace("engine = \"sqlite3\"", &format!("engine = \"{long_value}\""));
    assert!(config.contains(&long_value), "the test config names the engine");
    std::fs::write(&wrong_engine, config).unwrap();
    for command in ["check-config", "serve"] {
        let run = |path: &std::path::Path| {
            let out = std::process::Command::new(binary()).args([command, "-c"]).arg(path).output().unwrap();
            assert!(!out.status.success(), "{command} accepted {}", path.display());
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
        };
        let error = run(&link);
        assert!(error.contains("line 1, column 5"), "{command}: {error}");
        for secret in [&hash[..12], "SecretHash", "19000"] {
            assert!(!error.contains(secret), "{command} printed {secret:?} of the file: {error}");
        }
        let error = run(&wrong_engine);
        assert!(error.contains("database.engine") && error.contains("sqlite3-vvv"), "{command}: {error}");
        assert!(!error.contains(&long_value[..41]), "{command} quoted the whole value: {error}");
    }
}
