//! Reload without restart (SIGHUP): run-time settings change, queries and API connections go on
//! through it, settings that need a restart are named and kept, a bad file changes nothing, and
//! new certificate files are served from the next handshake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Waits until the server has logged `marker` `count` times (at most 10 s).
fn wait_for_log(server: &TestServer, marker: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_text().matches(marker).count() < count {
        assert!(Instant::now() < deadline, "no {marker:?} in the log:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `config` over the server's file and sends SIGHUP; waits for the `n`-th reload's outcome.
fn reload_with(server: &TestServer, dir: &TempDir, config: &str, marker: &str, n: usize) {
    std::fs::write(dir.join("config.cfg"), config).unwrap();
    server.signal("HUP");
    wait_for_log(server, marker, n);
}

/// One request on an open keep-alive connection; returns the status line.
fn keep_alive_health(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection was closed");
        response.push(byte[0]);
    }
    String::from_utf8_lossy(&response).lines().next().unwrap_or("").to_owned()
}

#[test]
fn sighup_applies_run_time_settings_without_dropping_a_query_or_a_connection() {
    let dir = TempDir::new();
    // No response rate limit: the stream of queries below all comes from one address.
    let config = with_keys(&base_config(&dir.0), "dns", "rate_limit = 0");
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(server.http("POST", "/register", &[], b"").status, 201);
    let mut connection = TcpStream::connect(server.api).unwrap();
    connection.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(keep_alive_health(&mut connection).contains("200"));

    // Queries, one after another, all through the reloads.
    let stop = Arc::new(AtomicBool::new(false));
    let asker = {
        let (stop, udp) = (Arc::clone(&stop), server.udp);
        std::thread::spawn(move || {
            let (mut sent, mut answered) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                sent += 1;
                answered += u32::from(udp_exchange(udp, &query(DOMAIN, 6, None)).is_some());
            }
            (sent, answered)
        })
    };
    std::thread::sleep(Duration::from_millis(200));

    // Registration closed (run time), a new DNS address and database (restart only).
    let changed = with_keys(&config, "api", "registration = \"closed\"")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"")
        .replace("acme-delegate.db", "elsewhere.db");
    reload_with(&server, &dir, &changed, "reloaded:", 1);
    let log = server.log_text();
    assert!(log.contains("reloaded: api.registration"), "{log}");
    assert!(log.contains("general.listen changed and needs a restart; the running value stays"), "{log}");
    assert!(log.contains("[database] changed and needs a restart"), "{log}");
    let refused = server.http("POST", "/register", &[], b"");
    assert_eq!(refused.status, 404, "{}", refused.body_text());
    assert!(refused.body_text().contains("registration_disabled"));
    // The connection opened before the reload is still served; DNS still on the old address.
    assert!(keep_alive_health(&mut connection).contains("200"));
    assert_eq!(server.ask(DOMAIN, 6).rcode, 0);

    // A bad file (an invalid value beside a change) is refused, naming the key; nothing changes.
    let bad = with_keys(&config, "api", "update_rate_limit = \"often\"");
    reload_with(&server, &dir, &bad, "reload refused", 1);
    assert!(server.log_text().contains("update_rate_limit"), "{}", server.log_text());
    assert_eq!(server.http("POST", "/register", &[], b"").status, 404, "the old settings stay");

    // Back to the first file: registration opens again.
    reload_with(&server, &dir, &config, "reloaded:", 2);
    assert_eq!(server.http("POST", "/register", &[], b"").status, 201);

    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (sent, answered) = asker.join().unwrap();
    assert!(sent > 50, "only {sent} queries sent");
    assert_eq!(answered, sent, "{} of {sent} queries unanswered during the reloads", sent - answered);
}

/// Makes a self-signed certificate for `localhost` into `key` and `cert`.
fn certificate(dir: &TempDir, key: &str, cert: &str) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join(key))
        .arg("-out")
        .arg(dir.join(cert))
        .output()
        .expect("openssl runs");
    assert!(status.status.success());
}

/// Whether curl, trusting only `ca`, completes GET /health over HTTPS.
fn https_trusts(server: &TestServer, ca: &std::path::Path) -> bool {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", server.api.port()))
        .arg(format!("https://localhost:{}/health", server.api.port()))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout) == "200"
}

#[test]
fn sighup_serves_new_certificate_files_and_keeps_the_old_on_a_bad_one() {
    let dir = TempDir::new();
    certificate(&dir, "key.pem", "cert.pem");
    certificate(&dir, "key2.pem", "cert2.pem");
    std::fs::copy(dir.join("cert.pem"), dir.join("first.pem")).unwrap();
    let config = with_tls_cert(&base_config(&dir.0), &dir.join("key.pem"), &dir.join("cert.pem"));
    let server = TestServer::start_with(&dir, &config);
    assert!(https_trusts(&server, &dir.join("first.pem")));

    // A renewal: the files are replaced in place, then SIGHUP.
    std::fs::copy(dir.join("key2.pem"), dir.join("key.pem")).unwrap();
    std::fs::copy(dir.join("cert2.pem"), dir.join("cert.pem")).unwrap();
    reload_with(&server, &dir, &config, "reloaded:", 1);
    assert!(server.log_text().contains("api TLS certificate files"), "{}", server.log_text());
    assert!(https_trusts(&server, &dir.join("cert2.pem")), "the new certificate is served");
    assert!(!https_trusts(&server, &dir.join("first.pem")), "the old certificate is gone");

    // A key that does not fit the certificate: refused, naming the key; the new one stays.
    std::fs::copy(dir.join("first.pem"), dir.join("cert.pem")).unwrap();
    reload_with(&server, &dir, &config, "reload refused", 1);
    assert!(server.log_text().contains("api.tls_cert_privkey"), "{}", server.log_text());
    assert!(https_trusts(&server, &dir.join("cert2.pem")));
}

/// Whether `socket` receives a NOTIFY within 3 s; acknowledges it, as a secondary does, so that
/// the server does not send it again.
fn notified(socket: &std::net::UdpSocket) -> bool {
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf)
            && n > 3
            && (buf[2] >> 3) & 0x0F == 4
        {
            buf[2] |= 0x80; // QR: the same message back is the acknowledgement (RFC 1996 4.7)
            socket.send_to(&buf[..n], from).unwrap();
            return true;
        }
    }
    false
}

/// The rcode of an AXFR asked over TCP from 127.0.0.1.
fn axfr_rcode(server: &TestServer) -> u8 {
    let reply = server.tcp_exchange(&query(DOMAIN, 252, None)).expect("an AXFR reply");
    Message::decode(&reply).rcode
}

#[test]
fn sighup_changes_transfer_networks_and_notify_targets() {
    let dir = TempDir::new();
    let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let second = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let section = |allow: &str, target: &std::net::UdpSocket| {
        format!(
            "allow_transfer = [\"{allow}\"]\nnotify = [\"{}\"]\nwait_for_secondaries = \"none\"",
            target.local_addr().unwrap()
        )
    };
    let config = with_keys(&base_config(&dir.0), "transfer", &section("192.0.2.0/24", &first));
    let server = TestServer::start_with(&dir, &config);
    assert!(notified(&first), "the first target is notified at start");
    assert_eq!(axfr_rcode(&server), 5, "127.0.0.1 is not allowed yet: REFUSED");

    let changed = with_keys(&base_config(&dir.0), "transfer", &section("127.0.0.1/32", &second));
    reload_with(&server, &dir, &changed, "reloaded:", 1);
    let log = server.log_text();
    assert!(log.contains("transfer.allow_transfer") && log.contains("transfer.notify"), "{log}");
    assert_eq!(axfr_rcode(&server), 0, "127.0.0.1 may transfer after the reload");
    assert!(notified(&second), "the new target is notified once its task starts");

    // A change of the zone is told to the new target only.
    while notified(&first) {}
    let account = server.register();
    assert_eq!(server.update(&account, "LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM").status, 200);
    assert!(notified(&second), "the new target hears of the update");
    assert!(!notified(&first), "the old target is no longer notified");
}

/// The `[transfer]` section of the issue 19 tests: transfers from 127.0.0.1 with a TSIG key.
fn signed_transfers(secret: &str) -> String {
    format!("allow_transfer = [\"127.0.0.1/32\"]\ntsig_name = \"xfr\"\ntsig_secret = \"{secret}\"")
}

/// A TSIG secret of 24 bytes.
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMQ==";

/// Issue 19, item 6: reloads compare values, not their redacted text. A new TSIG secret alone
/// is named as needing a restart, once, not again at a reload that changes nothing; a secret
/// put back is named as needing none.
#[test]
fn sighup_names_a_new_tsig_secret_once() {
    let dir = TempDir::new();
    let config = with_keys(&base_config(&dir.0), "transfer", &signed_transfers(SECRET));
    let server = TestServer::start_with(&dir, &config);
    let restart = "transfer.tsig_name/tsig_algorithm/tsig_secret changed and needs a restart";
    let new_key = with_keys(&base_config(&dir.0), "transfer", &signed_transfers(&SECRET.replace("MQ", "Mg")));
    reload_with(&server, &dir, &new_key, "reloaded:", 1);
    assert!(server.log_text().contains(restart), "{}", server.log_text());
    reload_with(&server, &dir, &new_key, "reloaded:", 2);
    assert_eq!(server.log_text().matches(restart).count(), 1, "{}", server.log_text());
    reload_with(&server, &dir, &config, "reloaded:", 3);
    let back = "transfer.tsig_name/tsig_algorithm/tsig_secret is back to the running value";
    assert!(server.log_text().contains(back), "{}", server.log_text());
    assert_eq!(server.log_text().matches("needs a restart").count(), 1, "{}", server.log_text());
}

/// Issue 19, item 6: a new `[privacy] client_ip` alone is applied, to the transfer logs too,
/// and is not reported as needing a restart, then or at a later reload that changes nothing.
#[test]
fn sighup_applies_client_ip_to_transfer_logs_without_a_restart() {
    let dir = TempDir::new();
    let config = with_keys(&base_config(&dir.0), "transfer", &signed_transfers(SECRET));
    let server = TestServer::start_with(&dir, &config);
    // An unsigned AXFR is refused, and logged with the client's network as configured.
    assert_eq!(axfr_rcode(&server), 5, "REFUSED without the key");
    wait_for_log(&server, "AXFR from 127.0.0.0/24 refused", 1);
    let full = with_keys(&config, "privacy", "client_ip = \"full\"");
    reload_with(&server, &dir, &full, "reloaded:", 1);
    assert!(server.log_text().contains("reloaded: privacy retention and client_ip"), "{}", server.log_text());
    reload_with(&server, &dir, &full, "reloaded:", 2);
    assert!(server.log_text().contains("reloaded: nothing changed"), "{}", server.log_text());
    assert!(!server.log_text().contains("needs a restart"), "{}", server.log_text());
    // From another network: its first refusal is logged at once (the rest of a minute are
    // summed per network, so a second one from 127.0.0.0/24 would wait for the summary).
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.1.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&server.tcp.into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = query(DOMAIN, 252, None);
    std::io::Write::write_all(&mut stream, &[&(q.len() as u16).to_be_bytes()[..], &q].concat()).unwrap();
    let reply = read_frame(&mut stream).expect("an AXFR reply");
    assert_eq!(Message::decode(&reply).rcode, 5);
    wait_for_log(&server, "AXFR from 127.0.1.1 refused", 1);
}
