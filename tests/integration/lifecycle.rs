//! Starting and stopping: signals, taken ports, bad configurations, the command line.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn sigterm_exits_cleanly() {
    let (mut server, _dir) = TestServer::start();
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(server.log_text().contains("SIGTERM received"));
}

#[test]
fn sigint_exits_cleanly() {
    let (mut server, _dir) = TestServer::start();
    server.signal("INT");
    let status = server.wait(Duration::from_secs(10)).expect("exits after SIGINT");
    assert!(status.success(), "{status:?}");
}

/// Starts a second server whose config has `from` replaced by `to`; returns its output, and
/// asserts it exited non-zero within a few seconds.
fn second_server_fails(first: &TestServer, from: &str, to: &str) -> String {
    let _ = first;
    let dir = TempDir::new();
    let config = base_config(&dir.0).replace(from, to);
    let start = Instant::now();
    let log = TestServer::try_start(&dir, &config).err().expect("the second server must not start");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?} to give up", start.elapsed());
    log.join("\n")
}

#[test]
fn a_taken_port_stops_the_server_naming_the_address() {
    let (first, _dir) = TestServer::start();
    let dns = first.udp.to_string();
    let log = second_server_fails(&first, "listen = \"127.0.0.1:0\"", &format!("listen = \"{dns}\""));
    assert!(log.contains(&format!("cannot listen for DNS over UDP on {dns}")), "{log}");
    let port = first.api.port().to_string();
    let log = second_server_fails(&first, "port = \"0\"", &format!("port = \"{port}\""));
    assert!(log.contains(&format!("cannot listen for the API on 127.0.0.1:{port}")), "{log}");
}

#[test]
fn bad_configurations_are_refused_naming_the_key() {
    let dir = TempDir::new();
    let base = base_config(&dir.0);
    let cases = [
        ("engine = \"sqlite3\"", "engine = \"mysql\"", "database.engine"),
        (&format!("domain = \"{DOMAIN}\""), "", "general.domain"),
        ("protocol = \"both\"", "protocol = \"sctp\"", "general.protocol"),
        ("loglevel = \"info\"", "loglevel = \"chatty\"", "logconfig.loglevel"),
        ("tls = \"none\"", "tls = \"letsencrypt\"", "api.tls"),
        (&format!("\"ns1.{DOMAIN}. A 192.0.2.2\""), &format!("\"ns1.{DOMAIN}. A 999.0.2.2\""), "record"),
        (&format!("\"ns1.{DOMAIN}. A 192.0.2.2\""), "\"www.example.com. A 192.0.2.2\"", "outside the zone"),
    ];
    for (from, to, named) in cases {
        assert!(base.contains(from), "test setup: {from}");
        let config = base.replace(from, to);
        let log = TestServer::try_start(&dir, &config).err().unwrap_or_else(|| panic!("started with {to}"));
        assert!(log.join("\n").contains(named), "{to}: {log:?}");
        // check-config says the same and fails.
        let out =
            Command::new(binary()).args(["check-config", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
        assert!(!out.status.success(), "check-config accepted {to}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(named), "{to}");
    }
    // Unknown keys are warned about, by name, and do not stop it.
    std::fs::write(dir.join("config.cfg"), with_keys(&base, "general", "colour = \"blue\"")).unwrap();
    let out =
        Command::new(binary()).args(["check-config", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown key general.colour"));
}

#[test]
fn acme_dns_command_line_and_help() {
    // `-c FILE` alone (acme-dns's form) runs the server: that is how TestServer starts it.
    // `serve -c FILE` does the same.
    let dir = TempDir::new();
    std::fs::write(dir.join("config.cfg"), base_config(&dir.0)).unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "-c"])
        .arg(dir.join("config.cfg"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    while Instant::now() < deadline && !out.contains("ready: serving zone") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        out.push_str(&line);
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(out.contains("ready: serving zone"), "{out}");
    assert!(status.success());

    let help = Command::new(binary()).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["serve", "check-config", "import-acme-dns", "dnssec", "account", "privacy", "-c, --config"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[test]
fn acme_dns_database_is_refused_with_the_import_command() {
    let dir = TempDir::new();
    let conn = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE acmedns(Name TEXT, Value TEXT);
         CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
             Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);",
    )
    .unwrap();
    drop(conn);
    let log = TestServer::try_start(&dir, &base_config(&dir.0)).err().expect("refused");
    assert!(log.join("\n").contains("import-acme-dns"), "{log:?}");
}

#[test]
fn without_a_config_the_demo_runs_on_loopback() {
    let dir = TempDir::new();
    // The embedded default uses fixed ports; skip quietly if something else holds them.
    if std::net::UdpSocket::bind("127.0.0.1:5053").is_err()
        || std::net::TcpListener::bind("127.0.0.1:8053").is_err()
    {
        eprintln!("demo ports taken here; skipping");
        return;
    }
    let mut child = Command::new(binary())
        .current_dir(&dir.0)
        .env_remove("ACME_DELEGATE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !out.contains("dig @") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        out.push_str(&line);
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(out.contains("listening for DNS over UDP on 127.0.0.1:5053"), "{out}");
    assert!(out.contains("API listening on http://127.0.0.1:8053"), "{out}");
    assert!(out.contains("curl -s -X POST http://127.0.0.1:8053/register"), "{out}");
    assert!(dir.join("acme-delegate.db").exists());
}
