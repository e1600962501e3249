//! Test harness: starts the real `acme-delegate` binary on port 0 and talks to it over real
//! sockets (UDP, TCP, HTTP/1.1), with a small DNS message builder of its own; answers are read
//! by hickory-proto, the tests' oracle (`Message::decode` is a view of its parse), so that the
//! tests do not trust the code under test to read its own answers.

#![allow(dead_code, reason = "helpers are shared by several test modules")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

/// The zone every test server serves.
pub const DOMAIN: &str = "auth.example.org";

/// A fresh directory under the system temp dir, removed by [`TempDir`]'s drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a unique directory.
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("acme-delegate-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Path of a file inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The base configuration: loopback, port 0 everywhere, SQLite in `dir`.
pub fn base_config(dir: &Path) -> String {
    let records = [
        format!("{DOMAIN}. A 192.0.2.1"),
        format!("{DOMAIN}. NS ns1.{DOMAIN}."),
        format!("ns1.{DOMAIN}. A 192.0.2.2"),
        format!("{DOMAIN}. TXT \"Hello World, Mixed Case\""),
    ];
    config_with(dir, "\"127.0.0.1:0\"", &records)
}

/// A configuration: DNS on `listen` (a TOML value), these zone `records`, SQLite in `dir`, API on
/// 127.0.0.1 port 0 without TLS.
pub fn config_with(dir: &Path, listen: &str, records: &[String]) -> String {
    let records: String = records.iter().map(|r| format!("    \"{}\",\n", r.replace('"', "\\\""))).collect();
    format!(
        r#"[general]
listen = {listen}
protocol = "both"
domain = "{DOMAIN}"
nsname = "ns1.{DOMAIN}"
nsadmin = "admin.example.org"
records = [
{records}]

[database]
engine = "sqlite3"
connection = "{db}"

[api]
ip = "127.0.0.1"
port = "0"
tls = "none"

[logconfig]
loglevel = "info"
logtype = "stdout"
logformat = "text"
"#,
        db = dir.join("acme-delegate.db").display()
    )
}

/// The base configuration with the store on the PostgreSQL database `url` instead of SQLite.
pub fn postgres_config(dir: &Path, url: &str) -> String {
    let sqlite = format!("connection = \"{}\"", dir.join("acme-delegate.db").display());
    base_config(dir)
        .replace("engine = \"sqlite3\"", "engine = \"postgres\"")
        .replace(&sqlite, &format!("connection = \"{url}\""))
}

/// `config` with the API on HTTPS (`tls = "cert"`) from these key and certificate files.
pub fn with_tls_cert(config: &str, key: &Path, cert: &Path) -> String {
    config.replace(
        "tls = \"none\"",
        &format!(
            "tls = \"cert\"\ntls_cert_privkey = \"{}\"\ntls_cert_fullchain = \"{}\"",
            key.display(),
            cert.display()
        ),
    )
}

/// Appends `extra` lines into `[section]` of a config text (creating the section if absent).
pub fn with_keys(config: &str, section: &str, extra: &str) -> String {
    let header = format!("[{section}]\n");
    match config.find(&header) {
        Some(at) => {
            let insert = at + header.len();
            format!("{}{}\n{}", &config[..insert], extra, &config[insert..])
        }
        None => format!("{config}\n{header}{extra}\n"),
    }
}

/// Lines a process printed (stdout and stderr), filled as it prints them.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A running server process.
pub struct TestServer {
    /// The process.
    child: Option<Child>,
    /// Everything it printed so far (stdout and stderr).
    pub log: Log,
    /// First DNS UDP address.
    pub udp: SocketAddr,
    /// First DNS TCP address.
    pub tcp: SocketAddr,
    /// All DNS UDP addresses.
    pub udp_all: Vec<SocketAddr>,
    /// All DNS TCP addresses.
    pub tcp_all: Vec<SocketAddr>,
    /// API address.
    pub api: SocketAddr,
    /// Its directory (config and database).
    pub dir: PathBuf,
}

/// Path of the binary under test.
///
/// `ACME_DELEGATE_TEST_BIN` overrides it, to run today's tests against another build (say,
/// the one before a fix, to see a regression test fail there).
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("ACME_DELEGATE_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_acme-delegate").to_owned())
    })
}

/// Spawns a thread that copies lines of `reader` into `log`.
fn pump(reader: impl Read + Send + 'static, log: Log) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line);
        }
    })
}

/// Spawns `command` with stdin closed, collecting the lines of its stdout and stderr into one log
/// (the threads doing so end with the process).
pub fn spawn_logged(command: &mut Command) -> (Child, Log, [JoinHandle<()>; 2]) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let log = Arc::new(Mutex::new(Vec::new()));
    let pumps = [
        pump(child.stdout.take().unwrap(), Arc::clone(&log)),
        pump(child.stderr.take().unwrap(), Arc::clone(&log)),
    ];
    (child, log, pumps)
}

/// Waits up to `limit` for `child` to exit; `None` if it is still running then.
pub fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills `child` and reaps it.
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits up to `limit` for `child` to exit; if it has not, kills it (status `None`).
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = wait_at_most(child, limit);
    if status.is_none() {
        kill_and_reap(child);
    }
    status
}

/// Sends SIGTERM to `child` and waits up to `limit` for it to exit.
pub fn terminate(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    wait_at_most(child, limit)
}

/// Stops `child`: SIGTERM, then SIGKILL if it has not exited within `grace`.
pub fn stop(child: &mut Child, grace: Duration) {
    if terminate(child, grace).is_none() {
        kill_and_reap(child);
    }
}

/// A helper process (resolver, CA) stopped with [`stop`] when the guard goes.
pub struct Guard {
    /// The process.
    pub child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(3));
    }
}

/// Extracts the address after `marker` on a log line.
fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.trim_start_matches("http://").trim_start_matches("https://").parse().ok()
}

impl TestServer {
    /// Starts the server with the base config in a new directory.
    pub fn start() -> (Self, TempDir) {
        let dir = TempDir::new();
        let server = Self::start_with(&dir, &base_config(&dir.0));
        (server, dir)
    }

    /// Starts the server with `keys` added to `[section]` of the base config, in a new directory.
    pub fn start_with_keys(section: &str, keys: &str) -> (Self, TempDir) {
        let dir = TempDir::new();
        let server = Self::start_with(&dir, &with_keys(&base_config(&dir.0), section, keys));
        (server, dir)
    }

    /// Starts the server with `config` written into `dir`; panics if it does not become ready.
    pub fn start_with(dir: &TempDir, config: &str) -> Self {
        match Self::try_start(dir, config) {
            Ok(server) => server,
            Err(log) => panic!("server did not start:\n{}", log.join("\n")),
        }
    }

    /// Starts the server; on failure returns everything it printed.
    pub fn try_start(dir: &TempDir, config: &str) -> Result<Self, Vec<String>> {
        Self::try_start_env(dir, config, &[])
    }

    /// [`Self::try_start`] with `env` added to the server's environment (say, libfaketime's).
    #[allow(clippy::zombie_processes, reason = "the child is kept in the returned server and reaped on drop")]
    pub fn try_start_env(dir: &TempDir, config: &str, env: &[(&str, &str)]) -> Result<Self, Vec<String>> {
        let path = dir.join("config.cfg");
        std::fs::write(&path, config).expect("write config");
        let mut command = Command::new(binary());
        command.arg("-c").arg(&path).current_dir(&dir.0).envs(env.iter().copied());
        let (mut child, log, _) = spawn_logged(&mut command);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = log.lock().unwrap().clone();
            if lines.iter().any(|l| l.contains("ready: serving zone")) {
                let udp_all: Vec<SocketAddr> =
                    lines.iter().filter_map(|l| addr_after(l, "listening for DNS over UDP on ")).collect();
                let tcp_all: Vec<SocketAddr> =
                    lines.iter().filter_map(|l| addr_after(l, "listening for DNS over TCP on ")).collect();
                let api = lines.iter().find_map(|l| addr_after(l, "API listening on "));
                let (Some(&udp), Some(api)) = (udp_all.first(), api) else { return Err(lines) };
                return Ok(Self {
                    child: Some(child),
                    log,
                    udp,
                    tcp: tcp_all.first().copied().unwrap_or(udp),
                    udp_all,
                    tcp_all,
                    api,
                    dir: dir.0.clone(),
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(log.lock().unwrap().clone());
            }
            if Instant::now() > deadline {
                kill_and_reap(&mut child);
                return Err(log.lock().unwrap().clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_at_most(self.child.as_mut()?, limit);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Everything logged so far, joined.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends one UDP datagram to the first address and waits up to 2 s for a reply.
    pub fn udp_exchange(&self, packet: &[u8]) -> Option<Vec<u8>> {
        udp_exchange(self.udp, packet)
    }

    /// Sends one message over a new TCP connection to the first TCP address and reads one reply.
    pub fn tcp_exchange(&self, packet: &[u8]) -> Option<Vec<u8>> {
        tcp_exchange(self.tcp, packet)
    }

    /// Sends a query over UDP and decodes the reply (panics on silence).
    pub fn ask(&self, name: &str, qtype: u16) -> Message {
        let reply = self.udp_exchange(&query(name, qtype, None)).expect("a UDP reply");
        Message::decode(&reply)
    }

    /// An HTTP/1.1 request to the API; returns status, lower-cased headers and body.
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http(self.api, method, path, headers, body)
    }

    /// Registers an account with an empty body and returns the JSON.
    pub fn register(&self) -> serde_json::Value {
        let r = self.http("POST", "/register", &[], b"");
        assert_eq!(r.status, 201, "register: {}", r.body_text());
        serde_json::from_slice(&r.body).expect("register JSON")
    }

    /// Updates the TXT of an account as returned by [`Self::register`].
    pub fn update(&self, account: &serde_json::Value, txt: &str) -> HttpResponse {
        let body = serde_json::json!({"subdomain": account["subdomain"], "txt": txt}).to_string();
        self.http("POST", "/update", &auth(account), body.as_bytes())
    }
}

/// The credential headers of an account as returned by [`TestServer::register`].
pub fn auth(account: &serde_json::Value) -> [(&str, &str); 2] {
    [
        ("X-Api-User", account["username"].as_str().unwrap()),
        ("X-Api-Key", account["password"].as_str().unwrap()),
    ]
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            stop(child, Duration::from_secs(5));
        }
    }
}

/// One UDP exchange with `addr`.
pub fn udp_exchange(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let bind = if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(packet, addr).ok()?;
    let mut buf = vec![0u8; 65_535];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// One exchange over a new TCP connection to `addr`.
pub fn tcp_exchange(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).ok()?;
    read_frame(&mut stream)
}

/// Reads one length-prefixed DNS message from a TCP stream.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).ok()?;
    Some(reply)
}

/// A port free for UDP and TCP on every one of `hosts` (released for the caller to bind).
pub fn free_port(hosts: &[&str]) -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind((hosts[0], 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let free = hosts.iter().all(|h| {
            let udp = UdpSocket::bind((*h, port));
            let tcp = TcpListener::bind((*h, port));
            udp.is_ok() && tcp.is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no free port");
}

/// An unbound resolver on 127.0.0.1 in front of the server under test; stopped when dropped.
pub struct Unbound {
    /// The process.
    _guard: Guard,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Unbound {
    /// Starts unbound in `dir` with the `server:` options every test shares, then `more` (options
    /// and clauses), then a stub zone sending our zone to 127.0.0.1:`dns_port`; waits until it
    /// answers `probe` (name, type).
    pub fn start(dir: &Path, dns_port: u16, more: &str, probe: (&str, u16)) -> Self {
        Self::start_stubs(dir, &[dns_port], more, probe)
    }

    /// Like [`Unbound::start`], with our zone's stub listing every port of `dns_ports` on
    /// 127.0.0.1 (several servers for the zone, as a delegation with several NS names them).
    pub fn start_stubs(dir: &Path, dns_ports: &[u16], more: &str, probe: (&str, u16)) -> Self {
        let port = free_port(&["127.0.0.1"]);
        let stubs: String = dns_ports.iter().map(|p| format!("    stub-addr: 127.0.0.1@{p}\n")).collect();
        let config = format!(
            r#"server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: "{dir}/unbound.log"
    verbosity: 1
    val-log-level: 2
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
{more}stub-zone:
    name: "{DOMAIN}"
{stubs}"#,
            dir = dir.display(),
        );
        std::fs::write(dir.join("unbound.conf"), config).unwrap();
        let child = Command::new("unbound")
            .arg("-c")
            .arg(dir.join("unbound.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound runs (Debian package unbound)");
        let resolver = Self { _guard: Guard { child }, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if resolver.resolve(probe.0, probe.1).is_some() {
                return resolver;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "unbound did not come up: {}",
            std::fs::read_to_string(dir.join("unbound.log")).unwrap_or_default()
        );
    }

    /// Its address.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A recursive query with RD and AD set (AD: tell me whether it validated); the decoded reply.
    pub fn resolve(&self, name: &str, qtype: u16) -> Option<Message> {
        let mut q = query(name, qtype, Some(1232));
        q[2] = 0x01; // RD
        q[3] = 0x20; // AD
        udp_exchange(self.addr().parse().unwrap(), &q).map(|r| Message::decode(&r))
    }
}

/// A plain HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (panics if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body_text()))
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
///
/// No Content-Type is added: tests set exactly the headers a client would.
pub fn http(to: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    http_from(None, to, method, path, headers, body)
}

/// Like [`http`], from a chosen local source address (e.g. a distinctive `127.x.y.z`).
pub fn http_from(
    source: Option<&str>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
    if let Some(source) = source {
        let from: SocketAddr = format!("{source}:0").parse().expect("a source IPv4 address");
        socket.bind(&from.into()).expect("bind the source address");
    }
    socket.connect(&addr.into()).expect("connect API");
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).expect("send request");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_http(&raw)
}

/// Parses a raw HTTP/1.1 response (Content-Length or close-delimited; chunked is decoded).
pub fn parse_http(raw: &[u8]) -> HttpResponse {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = body.as_slice();
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 4 + size..];
        }
        body = out;
    }
    HttpResponse { status, headers, body }
}

/// Record type numbers used by tests.
pub mod t {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const RRSIG: u16 = 46;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Wire form of a dotted name.
pub fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A query with ID 0x4242, RD clear; `edns` adds an OPT with that UDP size (DO clear).
pub fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = vec![0x42, 0x42, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    m.extend(name_wire(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    m
}

/// One decoded resource record: a view of what hickory-proto parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner, dotted, as on the wire (case kept), with final dot.
    pub owner: String,
    /// Type.
    pub rtype: u16,
    /// Class (or UDP size for OPT, at least 512 as hickory-proto reads it).
    pub class: u16,
    /// TTL (or extended flags for OPT).
    pub ttl: u32,
    /// The record data in the canonical form of RFC 4034 §6.2: names in it uncompressed, and
    /// lower-case in the types that section lists (the bytes on the wire for every other type).
    pub rdata: Vec<u8>,
}

impl Record {
    /// TXT rdata as its character strings joined.
    pub fn txt(&self) -> String {
        let mut out = String::new();
        let mut pos = 0;
        while pos < self.rdata.len() {
            let len = usize::from(self.rdata[pos]);
            out.push_str(&String::from_utf8_lossy(&self.rdata[pos + 1..pos + 1 + len]));
            pos += 1 + len;
        }
        out
    }

    /// The view of a record hickory-proto parsed.
    fn parsed(record: &hickory_proto::rr::Record) -> Self {
        let mut rdata = Vec::new();
        let mut encoder = BinEncoder::new(&mut rdata);
        encoder.set_canonical_form(true);
        record.data.emit(&mut encoder).expect("hickory-proto encodes what it parsed");
        Self {
            owner: record.name.to_ascii(),
            rtype: u16::from(record.record_type()),
            class: u16::from(record.dns_class),
            ttl: record.ttl,
            rdata,
        }
    }
}

/// A decoded DNS message: a view of what hickory-proto parsed, the tests' oracle.
#[derive(Clone, Debug)]
pub struct Message {
    /// ID.
    pub id: u16,
    /// Flag bits (second and third header bytes; the Z bit, which hickory-proto drops, clear).
    pub flags: u16,
    /// Header rcode (low 4 bits).
    pub rcode: u8,
    /// Question name as on the wire, dotted.
    pub qname: Option<String>,
    /// Answer records.
    pub answers: Vec<Record>,
    /// Authority records.
    pub authority: Vec<Record>,
    /// Additional records: the OPT and then the TSIG record (which hickory-proto keeps apart)
    /// at the end, after the others.
    pub additional: Vec<Record>,
}

/// The header's flag bits from what hickory-proto read of them.
fn flag_bits(header: &hickory_proto::op::Metadata) -> u16 {
    let bit = |on: bool, bit: u16| if on { bit } else { 0 };
    bit(header.message_type == hickory_proto::op::MessageType::Response, 0x8000)
        | u16::from(u8::from(header.op_code)) << 11
        | bit(header.authoritative, 0x0400)
        | bit(header.truncation, 0x0200)
        | bit(header.recursion_desired, 0x0100)
        | bit(header.recursion_available, 0x0080)
        | bit(header.authentic_data, 0x0020)
        | bit(header.checking_disabled, 0x0010)
        | u16::from(header.response_code.low())
}

impl Message {
    /// Decodes a reply with hickory-proto, as strictly as it reads a whole message (one OPT,
    /// TSIG last, no record without data outside UPDATE, no bytes after the last record); panics
    /// on what it refuses (our server must never send that).
    pub fn decode(msg: &[u8]) -> Self {
        let mut decoder = BinDecoder::new(msg);
        let parsed = hickory_proto::op::Message::read(&mut decoder)
            .unwrap_or_else(|e| panic!("hickory-proto cannot parse a reply ({e}): {msg:02x?}"));
        assert!(decoder.is_empty(), "trailing bytes in a reply: {msg:02x?}");
        let view = |records: &[hickory_proto::rr::Record]| records.iter().map(Record::parsed).collect();
        let mut additional: Vec<Record> = view(&parsed.additionals);
        additional.extend(parsed.edns.as_ref().map(|edns| Record::parsed(&edns.into())));
        additional.extend(parsed.signature.clone().map(|tsig| Record::parsed(&tsig.into_record_of_rdata())));
        Self {
            id: parsed.metadata.id,
            flags: flag_bits(&parsed.metadata),
            rcode: parsed.metadata.response_code.low(),
            qname: parsed.queries.last().map(|q| q.name().to_ascii()),
            answers: view(&parsed.answers),
            authority: view(&parsed.authorities),
            additional,
        }
    }

    /// AA bit.
    pub fn aa(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// TC bit.
    pub fn tc(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// RA bit.
    pub fn ra(&self) -> bool {
        self.flags & 0x0080 != 0
    }

    /// AD bit.
    pub fn ad(&self) -> bool {
        self.flags & 0x0020 != 0
    }

    /// The OPT record, if any.
    pub fn opt(&self) -> Option<&Record> {
        self.additional.iter().find(|r| r.rtype == t::OPT)
    }

    /// TXT strings of the answer, in order.
    pub fn txts(&self) -> Vec<String> {
        self.answers.iter().filter(|r| r.rtype == t::TXT).map(Record::txt).collect()
    }
}

/// Rcode numbers.
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
}

/// A valid 43-character TXT value derived from `seed`.
pub fn txt_value(seed: u32) -> String {
    let base = format!("{seed:08}");
    let mut out = String::new();
    while out.len() < 43 {
        out.push_str(&base);
        out.push('_');
    }
    out.truncate(43);
    out
}

/// The Python virtual environment of the tests that need PyPI tools (certbot and its
/// acme-dns plugin, DNSViz, schemathesis): made or refreshed by `scripts/e2e-venv` once per
/// test process, so that tests running at once never build it side by side.
pub fn python_venv() -> PathBuf {
    static READY: Mutex<bool> = Mutex::new(false);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os("ACME_DELEGATE_E2E_VENV")
        .map_or_else(|| root.join("target/e2e-venv"), |v| root.join(PathBuf::from(v)));
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        let out = Command::new(root.join("scripts/e2e-venv")).output().expect("scripts/e2e-venv runs");
        assert!(
            out.status.success(),
            "scripts/e2e-venv failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        *ready = true;
    }
    venv
}
