//! Zone transfers to real secondaries from Debian (NSD and Knot) over loopback, TSIG-keyed,
//! plus the refusals a primary owes everyone else. The TSIG signing of the hand-made requests
//! is written here from RFC 8945 with `ring`, not taken from the code under test.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The test key's secret, as configured (base64) and as bytes.
pub(crate) const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The same 32 bytes, decoded.
const SECRET_BYTES: &[u8] = b"0123456789abcdef0123456789abcdef";

/// RR type numbers used here.
const SOA: u16 = 6;
const TXT: u16 = 16;
const IXFR: u16 = 251;
const AXFR: u16 = 252;
const TSIG: u16 = 250;

/// `[transfer]` lines: this key, these networks, NOTIFY to these ports on 127.0.0.1.
pub(crate) fn transfer_section(allow: &str, notify: &[u16]) -> String {
    let notify: Vec<String> = notify.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "allow_transfer = [{allow}]\nnotify = [{}]\nwait_for_secondaries = \"none\"\ntsig_name = \"transfer-key\"\n\
         tsig_algorithm = \"hmac-sha256\"\ntsig_secret = \"{SECRET}\"",
        notify.join(", ")
    )
}

/// A primary with transfers on (and DNSSEC when `signed`).
pub(crate) fn primary(dir: &TempDir, allow: &str, notify: &[u16], signed: bool) -> TestServer {
    let mut config = with_keys(&base_config(&dir.0), "transfer", &transfer_section(allow, notify));
    // Tests register dozens of accounts from one address.
    config = with_keys(&config, "api", "register_rate_limit = 0");
    if signed {
        config = with_keys(&config, "dnssec", "enabled = true");
    }
    TestServer::start_with(dir, &config)
}

/// A secondary process group (NSD forks; the whole group is stopped).
pub(crate) struct Secondary {
    /// The process (leader of its own group).
    child: Option<Child>,
    /// Where it answers.
    pub(crate) addr: SocketAddr,
    /// Its log file.
    log: std::path::PathBuf,
    /// The command line, to start it again.
    argv: Vec<String>,
}

impl Secondary {
    /// Starts `argv` in its own process group.
    pub(crate) fn spawn(argv: Vec<String>, addr: SocketAddr, log: std::path::PathBuf) -> Self {
        let mut s = Self { child: None, addr, log, argv };
        s.start();
        s
    }

    /// (Re)starts the process.
    pub(crate) fn start(&mut self) {
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs (Debian packages nsd, knot): {e}", self.argv[0]));
        self.child = Some(child);
    }

    /// Stops the whole process group and reaps the leader.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            if wait_at_most(&mut child, Duration::from_secs(5)).is_none() {
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                let _ = child.wait();
            }
        }
    }

    /// Its log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its answer to a UDP query, if any.
    fn ask(&self, name: &str, qtype: u16) -> Option<Message> {
        udp_exchange(self.addr, &query(name, qtype, None)).map(|m| Message::decode(&m))
    }

    /// The SOA serial it serves, if any.
    pub(crate) fn serial(&self) -> Option<u32> {
        soa_serial(&self.ask(DOMAIN, SOA)?)
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        self.stop();
    }
}

/// NSD as a TSIG-keyed secondary of `primary` on `port` (configuration from PEERS.md).
pub(crate) fn nsd(dir: &Path, port: u16, primary: SocketAddr) -> Secondary {
    nsd_with(dir, port, primary, "")
}

/// [`nsd`] with more `server:` lines (each ending in a newline).
pub(crate) fn nsd_with(dir: &Path, port: u16, primary: SocketAddr, server_lines: &str) -> Secondary {
    let d = dir.display();
    let config = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  zonesdir: \"{d}\"\n  \
         database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         logfile: \"{d}/nsd.log\"\n  verbosity: 2\n{server_lines}remote-control:\n  control-enable: no\n\
         key:\n  name: \"transfer-key\"\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\n\
         zone:\n  name: \"{DOMAIN}\"\n  zonefile: \"{d}/{DOMAIN}.zone\"\n  \
         request-xfr: {} transfer-key\n  allow-notify: 127.0.0.1 transfer-key\n",
        primary.to_string().replace(':', "@")
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("nsd.conf"), config).unwrap();
    let argv = vec!["nsd".into(), "-d".into(), "-c".into(), format!("{d}/nsd.conf")];
    Secondary::spawn(argv, ([127, 0, 0, 1], port).into(), dir.join("nsd.log"))
}

/// Knot as a TSIG-keyed secondary of `primary` on `port` (configuration from PEERS.md).
pub(crate) fn knot(dir: &Path, port: u16, primary: SocketAddr) -> Secondary {
    let d = dir.display();
    let config = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\nlog:\n  - target: \"{d}/knot.log\"\n    any: info\n\
         key:\n  - id: transfer-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         remote:\n  - id: primary\n    address: {}\n    key: transfer-key\n\
         acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    key: transfer-key\n    action: notify\n\
         database:\n    storage: \"{d}\"\n\
         zone:\n  - domain: {DOMAIN}\n    master: primary\n    acl: notify_from_primary\n    file: \"{d}/{DOMAIN}.zone\"\n",
        primary.to_string().replace(':', "@")
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("knot.conf"), config).unwrap();
    let argv = vec!["knotd".into(), "-c".into(), format!("{d}/knot.conf")];
    Secondary::spawn(argv, ([127, 0, 0, 1], port).into(), dir.join("knot.log"))
}

/// BIND as a TSIG-keyed secondary of `primary` on `port`. Its incoming transfers are logged at
/// debug level 3, the level at which BIND says how the primary answered an IXFR ("got
/// incremental response" or "got nonincremental response"); at info it logs both alike.
pub(crate) fn bind(dir: &Path, port: u16, primary: SocketAddr) -> Secondary {
    let d = dir.display();
    let config = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  \
         listen-on-v6 {{ none; }};\n  recursion no;\n  notify no;\n  dnssec-validation no;\n}};\n\
         controls {{ }};\n\
         key \"transfer-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
         logging {{ channel file {{ file \"{d}/named.log\"; severity info; print-time yes; }};\n  \
         channel xfer {{ file \"{d}/named.log\"; severity debug 3; print-time yes; }};\n  \
         category default {{ file; }};\n  category xfer-in {{ xfer; }};\n  category notify {{ file; }};\n}};\n\
         zone \"{DOMAIN}\" {{\n  type secondary;\n  file \"{d}/{DOMAIN}.zone\";\n  \
         primaries port {} {{ 127.0.0.1 key transfer-key; }};\n  allow-notify {{ key transfer-key; }};\n}};\n",
        primary.port()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("named.conf"), config).unwrap();
    let argv = vec!["named".into(), "-f".into(), "-4".into(), "-c".into(), format!("{d}/named.conf")];
    Secondary::spawn(argv, ([127, 0, 0, 1], port).into(), dir.join("named.log"))
}

/// The serial of the SOA in an answer.
pub(crate) fn soa_serial(msg: &Message) -> Option<u32> {
    let soa = msg.answers.iter().find(|r| r.rtype == SOA)?;
    let rdata = &soa.rdata;
    rdata.get(rdata.len() - 20..rdata.len() - 16).map(|b| u32::from_be_bytes(b.try_into().unwrap()))
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns the time it took.
pub(crate) fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The sorted TXT values `name` has at a server.
pub(crate) fn txts_at(addr: SocketAddr, name: &str) -> Option<Vec<String>> {
    let reply = Message::decode(&udp_exchange(addr, &query(name, TXT, None))?);
    let mut txts = reply.txts();
    txts.sort();
    Some(txts)
}

#[test]
fn xfr_nsd_knot_and_bind_follow_updates_by_ixfr_and_catch_up_after_a_restart() {
    let dir = TempDir::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port(&["127.0.0.1"])).collect();
    let server = primary(&dir, "\"127.0.0.1/32\", \"::1/128\"", &ports, false);
    let mut nsd = nsd(&dir.join("nsd"), ports[0], server.tcp);
    let knot = knot(&dir.join("knot"), ports[1], server.tcp);
    let named = bind(&dir.join("bind"), ports[2], server.tcp);
    let start_serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    for secondary in [&nsd, &knot, &named] {
        let loaded = within(Duration::from_secs(10), || secondary.serial() == Some(start_serial));
        assert!(loaded.is_some(), "first transfer to {}:\n{}", secondary.argv[0], secondary.log_text());
    }

    // A registration and an update: served by both within 2 s of the API's answer.
    let account = server.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    for secondary in [&nsd, &knot, &named] {
        let took =
            within(Duration::from_secs(2), || txts_at(secondary.addr, &name) == Some(vec![txt_value(1)]));
        assert!(took.is_some(), "{} serves the TXT:\n{}", secondary.argv[0], secondary.log_text());
    }
    // A second update travels as an incremental transfer (our log and Knot's say so).
    assert_eq!(server.update(&account, &txt_value(2)).status, 200);
    let both = vec![txt_value(1), txt_value(2)];
    for secondary in [&nsd, &knot, &named] {
        let took = within(Duration::from_secs(2), || txts_at(secondary.addr, &name).as_ref() == Some(&both));
        assert!(took.is_some(), "{} serves the second TXT", secondary.argv[0]);
    }
    assert!(
        server.log_text().matches("IXFR to 127.0.0.0/24 (TSIG transfer-key): incremental").count() >= 2,
        "{}",
        server.log_text()
    );
    assert!(knot.log_text().contains("IXFR, incoming"), "{}", knot.log_text());

    // 200 updates over 20 names; then every secondary serves what we serve.
    let accounts: Vec<serde_json::Value> = (0..20).map(|_| server.register()).collect();
    let started = Instant::now();
    for i in 0..200u32 {
        assert_eq!(server.update(&accounts[i as usize % 20], &txt_value(100 + i)).status, 200);
    }
    let updating = started.elapsed();
    let serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    for secondary in [&nsd, &knot, &named] {
        let took = within(Duration::from_secs(10), || secondary.serial() == Some(serial));
        assert!(took.is_some(), "{} reaches serial {serial}:\n{}", secondary.argv[0], secondary.log_text());
        for account in &accounts {
            let name = account["fulldomain"].as_str().unwrap();
            let ours = txts_at(server.udp, name).unwrap();
            assert_eq!(ours.len(), 2);
            assert_eq!(txts_at(secondary.addr, name).unwrap(), ours, "{} at {name}", secondary.argv[0]);
        }
    }
    eprintln!("200 updates in {updating:?}; every secondary current at serial {serial}");
    // Few transfers for many updates: NOTIFY is coalesced.
    let transfers = server.log_text().matches("IXFR to ").count();
    eprintln!("{transfers} IXFRs served for 202 updates to 3 secondaries");

    // NSD stopped during updates catches up after its restart.
    nsd.stop();
    for i in 0..30u32 {
        assert_eq!(server.update(&accounts[i as usize % 20], &txt_value(1000 + i)).status, 200);
    }
    let serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    nsd.start();
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(serial));
    assert!(took.is_some(), "NSD catches up to {serial}:\n{}", nsd.log_text());
    let name = accounts[29 % 20]["fulldomain"].as_str().unwrap();
    assert_eq!(txts_at(nsd.addr, name), txts_at(server.udp, name));
}

/// HMAC-SHA256 TSIG signing of a request, from RFC 8945 section 4.3.
fn sign(msg: &[u8], key_name: &str, secret: &[u8], time: u64) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut vars = name_wire(key_name);
    vars.extend_from_slice(&[0, 255, 0, 0, 0, 0]); // class ANY, TTL 0
    vars.extend(name_wire("hmac-sha256"));
    vars.extend_from_slice(&time.to_be_bytes()[2..]);
    vars.extend_from_slice(&300u16.to_be_bytes());
    vars.extend_from_slice(&[0, 0, 0, 0]); // error, other length
    let mac = ring::hmac::sign(&key, &[msg, &vars].concat());
    let mut out = msg.to_vec();
    out[11] += 1;
    out.extend(name_wire(key_name));
    out.extend_from_slice(&TSIG.to_be_bytes());
    out.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
    let mut rdata = name_wire("hmac-sha256");
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&300u16.to_be_bytes());
    rdata.extend_from_slice(&32u16.to_be_bytes());
    rdata.extend_from_slice(mac.as_ref());
    rdata.extend_from_slice(&msg[..2]);
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend(rdata);
    out
}

/// Now, in seconds.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The TSIG error of a reply (0 when its TSIG reports none), or `None` without TSIG.
fn tsig_error(reply: &Message) -> Option<u16> {
    let tsig = reply.additional.iter().find(|r| r.rtype == TSIG)?;
    let rdata = &tsig.rdata;
    let mut pos = 0;
    while rdata[pos] != 0 {
        pos += 1 + usize::from(rdata[pos]);
    }
    pos += 1 + 8;
    let mac_len = usize::from(u16::from_be_bytes([rdata[pos], rdata[pos + 1]]));
    pos += 2 + mac_len + 2;
    Some(u16::from_be_bytes([rdata[pos], rdata[pos + 1]]))
}

/// Sends a transfer request over TCP; returns the first reply message.
fn first_reply(addr: SocketAddr, msg: &[u8]) -> Message {
    Message::decode(&tcp_exchange(addr, msg).expect("a reply"))
}

/// An IXFR request carrying the client's SOA with `serial` in the authority section.
fn ixfr_query(serial: u32) -> Vec<u8> {
    let mut m = query(DOMAIN, IXFR, None);
    m[9] = 1;
    m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
    m.extend_from_slice(&serial.to_be_bytes());
    m.extend_from_slice(&[0; 16]);
    m
}

#[test]
fn xfr_refusals_never_carry_zone_data() {
    let dir = TempDir::new();
    let server = primary(&dir, "\"127.0.0.1/32\"", &[], false);
    let secret = SECRET_BYTES;
    let axfr = query(DOMAIN, AXFR, None);
    let no_data = |reply: &Message| reply.answers.is_empty();

    // The right key: the zone, signed (so the refusals below are refusals of something).
    let ok = first_reply(server.tcp, &sign(&axfr, "transfer-key", secret, now()));
    assert_eq!((ok.rcode, ok.answers.first().map(|r| r.rtype)), (rcode::NOERROR, Some(SOA)));
    assert_eq!(tsig_error(&ok), Some(0));
    // Unsigned, while a key is configured: REFUSED.
    let reply = first_reply(server.tcp, &axfr);
    assert_eq!((reply.rcode, no_data(&reply), tsig_error(&reply)), (rcode::REFUSED, true, None));
    // Wrong secret: NOTAUTH with BADSIG; unknown key name: BADKEY; a clock an hour off: BADTIME.
    let cases = [
        (sign(&axfr, "transfer-key", b"not the secret at all, not at all", now()), 16),
        (sign(&axfr, "other-key", secret, now()), 17),
        (sign(&axfr, "transfer-key", secret, now() - 3600), 18),
    ];
    for (request, error) in cases {
        for reply in
            [first_reply(server.tcp, &request), Message::decode(&server.udp_exchange(&request).unwrap())]
        {
            assert_eq!((reply.rcode, no_data(&reply), tsig_error(&reply)), (9, true, Some(error)));
        }
    }
    // `dig AXFR` without the key fails; with it, it gets the zone.
    let dig = |key: Option<&str>| {
        let mut command = Command::new("dig");
        if let Some(key) = key {
            command.args(["-y", key]);
        }
        let out = command
            .args(["-p", &server.tcp.port().to_string(), "@127.0.0.1", DOMAIN, "AXFR"])
            .output()
            .expect("dig runs (Debian package bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let refused = dig(None);
    assert!(refused.contains("Transfer failed") && !refused.contains("\tSOA\t"), "{refused}");
    let full = dig(Some(&format!("hmac-sha256:transfer-key:{SECRET}")));
    assert!(full.contains("\tSOA\t") && full.contains("XFR size"), "{full}");

    // Malformed: two questions, class CH, IXFR without its SOA: FORMERR.
    let mut two = query(DOMAIN, AXFR, None);
    two[5] = 2;
    two.extend_from_within(12..);
    let mut chaos = query(DOMAIN, AXFR, None);
    let at = chaos.len() - 1;
    chaos[at] = 3;
    for request in [two, chaos, query(DOMAIN, IXFR, None)] {
        let reply = Message::decode(
            &tcp_exchange(server.tcp, &sign(&request, "transfer-key", secret, now())).unwrap(),
        );
        assert_eq!((reply.rcode, no_data(&reply)), (rcode::FORMERR, true), "{request:?}");
    }

    // IXFR over UDP: the SOA alone, signed; over TCP from the current serial, the SOA alone.
    let serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    let reply = Message::decode(
        &server.udp_exchange(&sign(&ixfr_query(serial - 5), "transfer-key", secret, now())).unwrap(),
    );
    assert_eq!(
        (reply.rcode, reply.answers.len(), soa_serial(&reply), tsig_error(&reply)),
        (0, 1, Some(serial), Some(0))
    );
    let reply = first_reply(server.tcp, &sign(&ixfr_query(serial), "transfer-key", secret, now()));
    assert_eq!((reply.rcode, reply.answers.len()), (0, 1));

    // A network not allowed: REFUSED even with the key.
    let dir2 = TempDir::new();
    let elsewhere = primary(&dir2, "\"10.0.0.0/8\"", &[], false);
    let reply = first_reply(elsewhere.tcp, &sign(&axfr, "transfer-key", secret, now()));
    assert_eq!((reply.rcode, no_data(&reply), tsig_error(&reply)), (rcode::REFUSED, true, Some(0)));
    let logged = within(Duration::from_secs(2), || {
        elsewhere
            .log_text()
            .contains("AXFR from 127.0.0.0/24 refused: network not in transfer.allow_transfer")
    });
    assert!(logged.is_some(), "{}", elsewhere.log_text());
    assert!(
        !server.log_text().contains(SECRET) && !server.log_text().contains("127.0.0.1 "),
        "no secret, no address"
    );
}

#[test]
fn xfr_a_large_zone_streams_in_several_signed_messages() {
    let dir = TempDir::new();
    // Four static TXT records of 20,000 bytes: more than one 64 KiB message.
    let big: Vec<String> =
        (0..4).map(|i| format!("big{i}.{DOMAIN}. TXT \"{}\"", "x".repeat(20_000))).collect();
    let config = config_with(&dir.0, "\"127.0.0.1:0\"", &big);
    let config = with_keys(&config, "transfer", &transfer_section("\"127.0.0.1/32\"", &[]));
    let server = TestServer::start_with(&dir, &with_keys(&config, "dnssec", "enabled = true"));
    // dig checks every message's TSIG (RFC 8945 section 5.3.1) and counts them.
    let out = Command::new("dig")
        .args(["-y", &format!("hmac-sha256:transfer-key:{SECRET}"), "-p", &server.tcp.port().to_string()])
        .args(["@127.0.0.1", DOMAIN, "AXFR"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Transfer failed") && !text.contains("tsig"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("\tTXT\t")).count(), 4);
    let messages = text.lines().find(|l| l.contains("XFR size")).unwrap_or_default().to_owned();
    assert!(messages.contains("messages 2,") || messages.contains("messages 3,"), "{messages}");
}

#[test]
fn xfr_delv_validates_answers_from_the_nsd_secondary() {
    let dir = TempDir::new();
    let nsd_port = free_port(&["127.0.0.1"]);
    let server = primary(&dir, "\"127.0.0.1/32\"", &[nsd_port], true);
    let nsd = nsd(&dir.join("nsd"), nsd_port, server.tcp);
    let account = server.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(server.update(&account, &txt_value(7)).status, 200);
    let served = within(Duration::from_secs(5), || txts_at(nsd.addr, &name) == Some(vec![txt_value(7)]));
    assert!(served.is_some(), "{}", nsd.log_text());
    // The trust anchor from `dnssec ds`.
    let out =
        Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let dnskey = text.lines().find(|l| l.contains(" DNSKEY 257 3 13 ")).expect("DNSKEY line");
    let fields: Vec<&str> = dnskey.split_whitespace().collect();
    let anchor = dir.join("anchor.conf");
    std::fs::write(
        &anchor,
        format!("trust-anchors {{\n  \"{DOMAIN}.\" static-key 257 3 13 \"{}\";\n}};\n", fields[6..].join("")),
    )
    .unwrap();
    let cases = [
        (name.as_str(), "TXT", "fully validated"),
        (name.as_str(), "A", "negative response, fully validated"),
    ];
    let nope = format!("nope.{DOMAIN}");
    for (qname, qtype, expect) in
        cases.into_iter().chain([(nope.as_str(), "TXT", "negative response, fully validated")])
    {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &nsd_port.to_string(), "-a"])
            .arg(&anchor)
            .args([&format!("+root={DOMAIN}"), qname, qtype])
            .output()
            .expect("delv runs (Debian package bind9-dnsutils)");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(expect), "{qname} {qtype} from NSD:\n{text}");
    }
}

#[test]
fn xfr_check_config_names_bad_transfer_keys() {
    let dir = TempDir::new();
    let cases = [
        ("allow_transfer = [\"127.0.0.1/33\"]", "transfer.allow_transfer"),
        ("notify = [\"localhost\"]", "transfer.notify"),
        ("tsig_name = \"k\"\ntsig_secret = \"***\"", "transfer.tsig_secret"),
        (
            "tsig_name = \"k\"\ntsig_secret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\"\ntsig_algorithm = \"hmac-md5\"",
            "transfer.tsig_algorithm",
        ),
    ];
    for (lines, key) in cases {
        let path = dir.join("bad.cfg");
        std::fs::write(&path, with_keys(&base_config(&dir.0), "transfer", lines)).unwrap();
        let out = Command::new(binary()).args(["check-config", "-c"]).arg(&path).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains(key), "{lines}: {text}");
    }
    let path = dir.join("good.cfg");
    std::fs::write(
        &path,
        with_keys(&base_config(&dir.0), "transfer", &transfer_section("\"::1/128\"", &[53])),
    )
    .unwrap();
    let out = Command::new(binary()).args(["check-config", "-c"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A primary that acknowledges updates only once the secondaries on `notify` serve them, or
/// after `timeout` seconds: the default with secondaries (`wait_for_secondaries` unset).
fn waiting_primary(dir: &TempDir, notify: &[u16], timeout: u32) -> TestServer {
    let section = format!(
        "{}\nwait_timeout = {timeout}",
        transfer_section("\"127.0.0.1/32\"", notify).replace("wait_for_secondaries = \"none\"\n", "")
    );
    let config = with_keys(&base_config(&dir.0), "transfer", &section);
    TestServer::start_with(dir, &with_keys(&config, "api", "register_rate_limit = 0"))
}

#[test]
fn xfr_an_update_is_answered_once_nsd_and_knot_serve_it() {
    let dir = TempDir::new();
    let ports: Vec<u16> = (0..2).map(|_| free_port(&["127.0.0.1"])).collect();
    let server = waiting_primary(&dir, &ports, 10);
    let nsd = nsd(&dir.join("nsd"), ports[0], server.tcp);
    let knot = knot(&dir.join("knot"), ports[1], server.tcp);
    let start_serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    for secondary in [&nsd, &knot] {
        let loaded = within(Duration::from_secs(10), || secondary.serial() == Some(start_serial));
        assert!(loaded.is_some(), "first transfer to {}:\n{}", secondary.argv[0], secondary.log_text());
    }
    let account = server.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    for i in 0..5 {
        let started = Instant::now();
        assert_eq!(server.update(&account, &txt_value(i)).status, 200);
        let took = started.elapsed();
        // No polling: at the moment of the 200 both secondaries serve the value.
        let serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
        for secondary in [&nsd, &knot] {
            assert_eq!(secondary.serial(), Some(serial), "{} after {took:?}", secondary.argv[0]);
            let served = txts_at(secondary.addr, &name).unwrap();
            assert!(served.contains(&txt_value(i)), "{}: {served:?}", secondary.argv[0]);
        }
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    assert!(!server.log_text().contains("without every secondary"), "{}", server.log_text());
}

#[test]
fn xfr_an_update_waits_no_longer_than_the_timeout_for_a_dead_secondary() {
    let dir = TempDir::new();
    let dead = free_port(&["127.0.0.1"]);
    let server = waiting_primary(&dir, &[dead], 1);
    let account = server.register();
    let started = Instant::now();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
    assert!(server.log_text().contains(&format!("127.0.0.1:{dead} behind")), "{}", server.log_text());
    // Committed and served all along.
    assert_eq!(server.ask(account["fulldomain"].as_str().unwrap(), TXT).txts(), vec![txt_value(1)]);
}

#[test]
fn xfr_persistent_records_reach_the_nsd_secondary_signed() {
    // dns-persist-01 names (issue 11) are names like a subdomain's: journalled, transferred
    // incrementally, signed, with their NSEC3 link.
    let dir = TempDir::new();
    let nsd_port = free_port(&["127.0.0.1"]);
    let server = primary(&dir, "\"127.0.0.1/32\"", &[nsd_port], true);
    let nsd = nsd(&dir.join("nsd"), nsd_port, server.tcp);
    let account = server.register();
    // The first (full) transfer first: the record must then travel incrementally.
    let serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    assert!(within(Duration::from_secs(10), || nsd.serial() == Some(serial)).is_some(), "{}", nsd.log_text());
    let body = serde_json::json!({ "issuer": "ca.example", "accounturi": "https://ca.example/acct/1" });
    let r = server.http("POST", "/persist", &auth(&account), body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.body_text());
    let name = r.json()["persistdomain"].as_str().unwrap().to_owned();
    let value = r.json()["value"].as_str().unwrap().to_owned();
    let served = within(Duration::from_secs(5), || txts_at(nsd.addr, &name) == Some(vec![value.clone()]));
    assert!(served.is_some(), "{}", nsd.log_text());
    assert!(server.log_text().contains("incremental"), "{}", server.log_text());
    let out =
        Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let dnskey = text.lines().find(|l| l.contains(" DNSKEY 257 3 13 ")).expect("DNSKEY line");
    let fields: Vec<&str> = dnskey.split_whitespace().collect();
    let anchor = dir.join("anchor.conf");
    let anchor_text =
        format!("trust-anchors {{\n  \"{DOMAIN}.\" static-key 257 3 13 \"{}\";\n}};\n", fields[6..].join(""));
    std::fs::write(&anchor, anchor_text).unwrap();
    let delv = |qtype: &str| {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &nsd_port.to_string(), "-a"])
            .arg(&anchor)
            .args([&format!("+root={DOMAIN}"), &name, qtype])
            .output()
            .expect("delv runs");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let text = delv("TXT");
    assert!(text.contains("; fully validated") && text.contains(&value), "{text}");
    assert!(delv("A").contains("negative response, fully validated"));
    // Deleted: the secondary serves the name empty, and the denial validates.
    let body = serde_json::json!({ "issuer": "ca.example" }).to_string();
    assert_eq!(server.http("DELETE", "/persist", &auth(&account), body.as_bytes()).status, 200);
    let gone = within(Duration::from_secs(5), || txts_at(nsd.addr, &name) == Some(Vec::new()));
    assert!(gone.is_some(), "{}", nsd.log_text());
    // The denial validates at the primary and at NSD alike: the emptied name holds the marker
    // of a name without values (see `dns::zone`), which the transfer carries.
    for port in [server.udp.port(), nsd_port] {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &port.to_string(), "-a"])
            .arg(&anchor)
            .args([&format!("+root={DOMAIN}"), &name, "TXT"])
            .output()
            .expect("delv runs");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("negative response, fully validated"), "port {port}: {text}");
    }
}
