//! Starting and stopping: signals, taken ports, crashes, bad configurations, the command line.
//!
//! Most tests run the real binary to completion with [`run_binary`] and look at its exit status
//! and everything it printed; the ones that need a running server use the harness's
//! [`TestServer`].

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::*;

/// How a run of the binary ended.
struct Exited {
    /// Its exit status; `None` if it was still running at the limit (and was killed).
    status: Option<ExitStatus>,
    /// Standard output and standard error, interleaved by line.
    output: String,
    /// How long it ran.
    took: Duration,
}

/// Spawns the binary with `args` in `dir` (without `ACME_DELEGATE_CONFIG`), its output logged.
fn spawn_binary(dir: &TempDir, args: &[&str]) -> (Child, Log, [JoinHandle<()>; 2]) {
    spawn_logged(Command::new(binary()).args(args).current_dir(&dir.0).env_remove("ACME_DELEGATE_CONFIG"))
}

/// Runs the binary with `args` in `dir` until it exits, at most `limit` (then kills it).
fn run_binary(dir: &TempDir, args: &[&str], limit: Duration) -> Exited {
    let start = Instant::now();
    let (mut child, output, pumps) = spawn_binary(dir, args);
    let status = wait_or_kill(&mut child, limit);
    let took = start.elapsed();
    for pump in pumps {
        let _ = pump.join();
    }
    let output = output.lock().unwrap().join("\n");
    Exited { status, output, took }
}

/// Writes `config` as `config.cfg` in `dir` and returns its path as text.
fn write_config(dir: &TempDir, config: &str) -> String {
    let path: PathBuf = dir.join("config.cfg");
    std::fs::write(&path, config).expect("write config");
    path.display().to_string()
}

/// Asserts the run failed (non-zero exit, not killed at the limit) and printed `named`.
fn assert_failed_naming(run: &Exited, what: &str, named: &str) {
    let status =
        run.status.unwrap_or_else(|| panic!("{what}: still running after {:?}\n{}", run.took, run.output));
    assert!(!status.success(), "{what}: exited 0\n{}", run.output);
    assert!(run.output.contains(named), "{what}: output does not name {named:?}:\n{}", run.output);
}

/// Asserts a configuration is refused by the server and by `check-config`, both naming `key`.
fn assert_config_refused(config: &str, key: &str) {
    let dir = TempDir::new();
    let path = write_config(&dir, config);
    let run = run_binary(&dir, &["-c", &path], Duration::from_secs(10));
    assert_failed_naming(&run, "server", key);
    assert!(run.took < Duration::from_secs(5), "took {:?} to refuse", run.took);
    let check = run_binary(&dir, &["check-config", "-c", &path], Duration::from_secs(10));
    assert_failed_naming(&check, "check-config", key);
}

/// A server process started by hand (for command lines other than the harness's).
struct Running {
    /// The process.
    child: Child,
    /// What it printed so far, line by line.
    output: Log,
}

impl Running {
    /// Starts the binary with `args` in `dir` and waits until it is ready; returns it with its
    /// API address.
    fn start(dir: &TempDir, args: &[&str]) -> (Self, SocketAddr) {
        let (child, output, _) = spawn_binary(dir, args);
        let mut running = Self { child, output };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = running.output.lock().unwrap().join("\n");
            if text.contains("ready: serving zone") {
                let marker = "API listening on http://";
                let at = text.find(marker).unwrap_or_else(|| panic!("{args:?}: no API address:\n{text}"));
                let addr = text[at + marker.len()..].split_whitespace().next().unwrap().parse().unwrap();
                return (running, addr);
            }
            let exited = running.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{args:?} did not start ({exited:?}):\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and returns the exit status (waiting at most 10 s).
    fn terminate(mut self) -> Option<ExitStatus> {
        terminate(&mut self.child, Duration::from_secs(10))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_and_reap(&mut self.child);
        }
    }
}

/// Reads `child`'s stdout until it has printed `marker` (or 10 s have passed, or it closed its
/// stdout), then sends it SIGTERM; returns what it read.
fn stdout_until_then_terminate(child: &mut Child, marker: &str) -> String {
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    while Instant::now() < deadline && !out.contains(marker) {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        out.push_str(&line);
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    out
}

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
        ("tls = \"none\"", "tls = \"letsencrpyt\"", "api.tls"),
        (
            "tls = \"none\"",
            "tls = \"letsencrypt\"\nacme_directory = \"http://ca.test/dir\"",
            "api.acme_directory",
        ),
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
    // Unknown keys are refused by name (checkconfig.rs has the rest: --lenient, unknown_keys).
    std::fs::write(dir.join("config.cfg"), with_keys(&base, "general", "colour = \"blue\"")).unwrap();
    let out =
        Command::new(binary()).args(["check-config", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key general.colour"));
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
    let out = stdout_until_then_terminate(&mut child, "ready: serving zone");
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
    let out = stdout_until_then_terminate(&mut child, "dig @");
    let _ = child.wait();
    assert!(out.contains("listening for DNS over UDP on 127.0.0.1:5053"), "{out}");
    assert!(out.contains("API listening on http://127.0.0.1:8053"), "{out}");
    assert!(out.contains("curl -s -X POST http://127.0.0.1:8053/register"), "{out}");
    assert!(dir.join("acme-delegate.db").exists());
}

// ---- signals ----

/// Sends `signal` to a fresh server and asserts a clean, prompt exit that the log explains.
fn exits_cleanly_on(signal: &str) {
    let (mut server, _dir) = TestServer::start();
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
    let start = Instant::now();
    server.signal(signal);
    let status =
        server.wait(Duration::from_secs(10)).unwrap_or_else(|| panic!("still running after SIG{signal}"));
    let took = start.elapsed();
    assert!(status.success(), "SIG{signal}: {status:?}\n{}", server.log_text());
    assert!(took < Duration::from_secs(3), "SIG{signal}: took {took:?}");
    assert!(server.log_text().contains(&format!("SIG{signal} received")), "{}", server.log_text());
}

#[test]
fn sigterm_exits_zero_promptly() {
    exits_cleanly_on("TERM");
}

#[test]
fn sigint_exits_zero_promptly() {
    exits_cleanly_on("INT");
}

#[test]
fn sigterm_exits_promptly_with_idle_connections_open() {
    let (mut server, _dir) = TestServer::start();
    // A client that connected and said nothing yet, one that finished a request and keeps the
    // connection alive, and an idle DNS-over-TCP connection.
    let _silent_api = TcpStream::connect(server.api).unwrap();
    let mut keep_alive = TcpStream::connect(server.api).unwrap();
    std::io::Write::write_all(&mut keep_alive, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    keep_alive.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut head = [0u8; 12];
    keep_alive.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let _silent_dns = TcpStream::connect(server.tcp).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(15)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "idle connections held shutdown for {:?}",
        start.elapsed()
    );
}

// ---- ports in use ----

/// Asserts that a second server on `config` (in `dir`) exits non-zero within 5 s naming `named`,
/// and that the `first` server is unharmed.
fn assert_second_server_refused(first: &TestServer, dir: &TempDir, config: &str, named: &str) {
    let run = run_binary(dir, &["-c", &write_config(dir, config)], Duration::from_secs(10));
    assert_failed_naming(&run, "second server", named);
    assert!(run.took < Duration::from_secs(5), "took {:?} to give up", run.took);
    assert_eq!(first.http("GET", "/health", &[], b"").status, 200);
}

#[test]
fn a_taken_dns_port_exits_non_zero_naming_the_address() {
    let (first, _first_dir) = TestServer::start();
    let dir = TempDir::new();
    let taken = first.udp.to_string();
    let config = base_config(&dir.0).replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{taken}\""));
    assert!(config.contains(&taken));
    assert_second_server_refused(&first, &dir, &config, &taken);
}

#[test]
fn a_taken_api_port_exits_non_zero_naming_the_address() {
    let (first, _first_dir) = TestServer::start();
    let dir = TempDir::new();
    let port = first.api.port();
    let config = base_config(&dir.0).replace("port = \"0\"", &format!("port = \"{port}\""));
    assert_second_server_refused(&first, &dir, &config, &format!("127.0.0.1:{port}"));
}

// ---- crash safety ----

#[test]
fn acknowledged_updates_survive_kill_9() {
    let (mut server, dir) = TestServer::start();
    let account = server.register();
    let fulldomain = account["fulldomain"].as_str().unwrap().to_owned();
    let (first, second) = (txt_value(901), txt_value(902));
    assert_eq!(server.update(&account, &first).status, 200);
    assert_eq!(server.update(&account, &second).status, 200);
    server.signal("KILL");
    let status = server.wait(Duration::from_secs(5)).expect("dies on SIGKILL");
    assert!(!status.success());
    drop(server);
    // Same directory, same config (port 0: new ports).
    let again = TestServer::start_with(&dir, &base_config(&dir.0));
    assert_eq!(again.ask(&fulldomain, t::TXT).txts(), vec![first, second.clone()]);
    // The account survived too.
    let third = txt_value(903);
    assert_eq!(again.update(&account, &third).status, 200);
    assert_eq!(again.ask(&fulldomain, t::TXT).txts(), vec![second, third]);
}

// ---- bad configurations ----

#[test]
fn unknown_database_engine_is_refused_naming_database_engine() {
    let dir = TempDir::new();
    let config = base_config(&dir.0).replace("engine = \"sqlite3\"", "engine = \"mysql\"");
    assert!(config.contains("mysql"));
    assert_config_refused(&config, "database.engine");
}

#[test]
fn a_bad_static_record_is_refused_naming_general_records() {
    let dir = TempDir::new();
    let good = format!("\"ns1.{DOMAIN}. A 192.0.2.2\"");
    let base = base_config(&dir.0);
    assert!(base.contains(&good));
    for bad in [format!("\"ns1.{DOMAIN}. A 999.0.2.2\""), "\"this is not a record\"".to_owned()] {
        assert_config_refused(&base.replace(&good, &bad), "general.records");
    }
}

#[test]
fn a_missing_general_domain_is_refused_naming_it() {
    let dir = TempDir::new();
    let line = format!("domain = \"{DOMAIN}\"\n");
    let base = base_config(&dir.0);
    assert!(base.contains(&line));
    assert_config_refused(&base.replace(&line, ""), "general.domain");
}

#[test]
fn check_config_accepts_the_base_config() {
    let dir = TempDir::new();
    let path = write_config(&dir, &base_config(&dir.0));
    let run = run_binary(&dir, &["check-config", "-c", &path], Duration::from_secs(10));
    assert_eq!(run.status.map(|s| s.success()), Some(true), "{}", run.output);
    assert!(run.output.contains("OK"), "{}", run.output);
    // It checks; it does not serve.
    assert!(!run.output.contains("ready: serving zone"), "{}", run.output);
}

#[test]
fn help_exits_zero_and_mentions_check_config() {
    let dir = TempDir::new();
    let run = run_binary(&dir, &["--help"], Duration::from_secs(10));
    assert_eq!(run.status.map(|s| s.success()), Some(true), "{}", run.output);
    assert!(run.output.contains("check-config"), "{}", run.output);
    assert!(run.output.contains("-c, --config"), "{}", run.output);
}

// ---- acme-dns's command line ----

/// acme-dns is started as `acme-dns -c /etc/acme-dns/config.cfg`: the same line with this
/// binary's name must start the server (the harness's TestServer relies on it), and so must
/// the explicit `serve -c FILE` and the long `--config FILE`.
#[test]
fn acme_dns_command_line_starts_the_server() {
    for form in [&["-c"][..], &["serve", "-c"], &["--config"], &["serve", "--config"]] {
        let dir = TempDir::new();
        let path = write_config(&dir, &base_config(&dir.0));
        let mut args = form.to_vec();
        args.push(&path);
        let (running, api) = Running::start(&dir, &args);
        assert_eq!(http(api, "GET", "/health", &[], b"").status, 200, "{args:?}");
        assert_eq!(http(api, "POST", "/register", &[], b"").status, 201, "{args:?}");
        let status = running.terminate();
        assert_eq!(status.map(|s| s.success()), Some(true), "{args:?}: {status:?}");
    }
}

// ---- an acme-dns database ----

/// Creates an acme-dns (v1) database at `path` with one account and its two TXT rows.
fn make_acme_dns_database(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS acmedns(Name TEXT, Value TEXT);
         INSERT INTO acmedns (Name, Value) VALUES ('db_version', '1');
         CREATE TABLE IF NOT EXISTS records(
             Username TEXT UNIQUE NOT NULL PRIMARY KEY,
             Password TEXT UNIQUE NOT NULL,
             Subdomain TEXT UNIQUE NOT NULL,
             AllowFrom TEXT);
         CREATE TABLE IF NOT EXISTS txt(
             Subdomain TEXT NOT NULL,
             Value TEXT NOT NULL DEFAULT '',
             LastUpdate INT);
         INSERT INTO records VALUES ('c36f50e8-4632-44f0-83fe-e070fef28a10',
             '$2a$10$mrtC8gWWzCuT7Kzi9M5n9.k4Q9F06yCvy8YlCoJVUyDZrYMvHyL/e',
             'a097455b-52cc-4569-90c8-7a4b97c6eba8', '[]');
         INSERT INTO txt VALUES ('a097455b-52cc-4569-90c8-7a4b97c6eba8', '', 0);
         INSERT INTO txt VALUES ('a097455b-52cc-4569-90c8-7a4b97c6eba8', '', 0);",
    )
    .unwrap();
}

#[test]
fn an_acme_dns_database_as_connection_is_refused_pointing_to_import() {
    let dir = TempDir::new();
    let db = dir.join("acme-dns.db");
    make_acme_dns_database(&db);
    let config = base_config(&dir.0)
        .replace(&dir.join("acme-delegate.db").display().to_string(), &db.display().to_string());
    assert!(config.contains("acme-dns.db"));
    let run = run_binary(&dir, &["-c", &write_config(&dir, &config)], Duration::from_secs(10));
    assert_failed_naming(&run, "server on an acme-dns database", "import-acme-dns");
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    // Nothing of ours was created in it, and its data is intact.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["acmedns", "records", "txt"]);
    let rows: i64 = conn.query_row("SELECT count(*) FROM txt", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2);
}

#[test]
fn an_acme_dns_database_is_not_modified_by_the_refusal() {
    let dir = TempDir::new();
    let db = dir.join("acme-dns.db");
    make_acme_dns_database(&db);
    let before = std::fs::read(&db).unwrap();
    let config = base_config(&dir.0)
        .replace(&dir.join("acme-delegate.db").display().to_string(), &db.display().to_string());
    let run = run_binary(&dir, &["-c", &write_config(&dir, &config)], Duration::from_secs(10));
    assert_failed_naming(&run, "server on an acme-dns database", "import-acme-dns");
    let after = std::fs::read(&db).unwrap();
    let mode: String =
        rusqlite::Connection::open(&db).unwrap().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete", "the refused start changed the acme-dns database's journal mode");
    assert!(before == after, "the refused start changed the acme-dns database file");
}
