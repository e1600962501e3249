//! Zone transfers over TLS (XoT, RFC 9103) to real secondaries from Debian: BIND 9.18 and NSD
//! 4.6, TSIG-keyed, each checking our certificate against a CA made here (rcgen). Also: clear
//! transfers turned off, a certificate the secondary must refuse, mutual TLS, the ALPN token,
//! the certificate read again on SIGHUP, and the keys' errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use tokio_rustls::rustls;

use crate::harness::*;
use crate::xfr::{SECRET, Secondary, soa_serial, transfer_section, txts_at, within};

/// The name the primary's certificate is for, and the secondaries expect.
fn primary_name() -> String {
    format!("ns1.{DOMAIN}")
}

/// A test CA, its certificate written to `<dir>/<name>-ca.pem`.
struct Ca {
    /// The CA's certificate and key.
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate file.
    pem: PathBuf,
    /// Where it writes what it issues.
    dir: PathBuf,
}

impl Ca {
    /// A new CA called `name`.
    fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("test CA {name}"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Self { issuer, pem, dir: dir.to_owned() }
    }

    /// Issues a certificate for `names` (DNS names or IP addresses) for servers, or clients
    /// with `client`; writes `<stem>.pem` and `<stem>.key`, and returns their paths.
    fn issue(&self, stem: &str, names: &[String], client: bool) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(names.to_vec()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0].clone());
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) =
            (self.dir.join(format!("{stem}.pem")), self.dir.join(format!("{stem}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// `[transfer]` lines for TLS on `port` with this certificate, and more `extra` lines.
fn tls_keys(port: u16, (cert, key): &(PathBuf, PathBuf), extra: &str) -> String {
    format!(
        "tls_listen = \"127.0.0.1:{port}\"\ntls_cert_fullchain = \"{}\"\ntls_cert_privkey = \"{}\"\n{extra}",
        cert.display(),
        key.display()
    )
}

/// A primary with TSIG-keyed transfers, NOTIFY to `notify`, and the TLS keys `tls`.
fn primary(dir: &TempDir, notify: &[u16], tls: &str) -> TestServer {
    let transfer = format!("{}\n{tls}", transfer_section("\"127.0.0.1/32\"", notify));
    let config = with_keys(&base_config(&dir.0), "transfer", &transfer);
    TestServer::start_with(dir, &with_keys(&config, "api", "register_rate_limit = 0"))
}

/// BIND as a secondary of the TLS listener on `tls_port`, trusting `ca` for `hostname`.
fn bind_tls(dir: &Path, port: u16, tls_port: u16, ca: &Path, hostname: &str) -> Secondary {
    let d = dir.display();
    let config = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  \
         listen-on-v6 {{ none; }};\n  recursion no;\n  notify no;\n  dnssec-validation no;\n}};\n\
         controls {{ }};\n\
         key \"transfer-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
         tls to-primary {{ ca-file \"{}\"; remote-hostname \"{hostname}\"; }};\n\
         logging {{ channel file {{ file \"{d}/named.log\"; severity debug 1; print-time yes; }};\n  \
         category default {{ file; }};\n  category xfer-in {{ file; }};\n  category notify {{ file; }};\n}};\n\
         zone \"{DOMAIN}\" {{\n  type secondary;\n  file \"{d}/{DOMAIN}.zone\";\n  \
         primaries {{ 127.0.0.1 port {tls_port} key transfer-key tls to-primary; }};\n  \
         allow-notify {{ key transfer-key; }};\n}};\n",
        ca.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("named.conf"), config).unwrap();
    let argv = vec!["named".into(), "-f".into(), "-4".into(), "-c".into(), format!("{d}/named.conf")];
    Secondary::spawn(argv, ([127, 0, 0, 1], port).into(), dir.join("named.log"))
}

/// NSD as a secondary of the TLS listener on `tls_port`, trusting `ca` for `hostname`, with a
/// client certificate when `client` is given (mutual TLS).
fn nsd_tls(
    dir: &Path,
    port: u16,
    tls_port: u16,
    (ca, hostname): (&Path, &str),
    client: Option<&(PathBuf, PathBuf)>,
) -> Secondary {
    let d = dir.display();
    let client = client.map_or(String::new(), |(cert, key)| {
        format!("  client-cert: \"{}\"\n  client-key: \"{}\"\n", cert.display(), key.display())
    });
    let config = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  zonesdir: \"{d}\"\n  \
         database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         logfile: \"{d}/nsd.log\"\n  verbosity: 2\n  tls-cert-bundle: \"{}\"\n\
         remote-control:\n  control-enable: no\n\
         key:\n  name: \"transfer-key\"\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\n\
         tls-auth:\n  name: \"primary-tls\"\n  auth-domain-name: \"{hostname}\"\n{client}\
         zone:\n  name: \"{DOMAIN}\"\n  zonefile: \"{d}/{DOMAIN}.zone\"\n  \
         request-xfr: 127.0.0.1@{tls_port} transfer-key primary-tls\n  allow-notify: 127.0.0.1 transfer-key\n",
        ca.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("nsd.conf"), config).unwrap();
    let argv = vec!["nsd".into(), "-d".into(), "-c".into(), format!("{d}/nsd.conf")];
    Secondary::spawn(argv, ([127, 0, 0, 1], port).into(), dir.join("nsd.log"))
}

/// The primary's SOA serial.
fn serial_of(server: &TestServer) -> u32 {
    soa_serial(&server.ask(DOMAIN, 6)).expect("the primary's SOA")
}

/// How many lines of the primary's log contain `text`.
fn lines_with(server: &TestServer, text: &str) -> usize {
    server.log.lock().unwrap().iter().filter(|l| l.contains(text)).count()
}

/// dig (9.18) over TLS to `port`: `args` then the question; returns its output (stdout and
/// stderr).
fn dig_tls(port: u16, args: &[String], question: &[&str]) -> String {
    let out = Command::new("dig")
        .arg("+tls")
        .args(args)
        .args(["+time=3", "+tries=1", "-p", &port.to_string(), "@127.0.0.1"])
        .args(question)
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A TLS connection to `port` by a rustls client that trusts `ca` for the primary's name,
/// offers `alpn` and speaks only `versions`; with a receive buffer of `rcvbuf` bytes if given.
fn tls_client(
    port: u16,
    ca: &Path,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
    rcvbuf: Option<usize>,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let name = rustls_pki_types::ServerName::try_from(primary_name()).unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    let socket: std::net::TcpStream = socket.into();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    rustls::StreamOwned::new(connection, socket)
}

/// Sends one framed DNS message.
fn write_frame(tls: &mut impl std::io::Write, msg: &[u8]) -> std::io::Result<()> {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    tls.write_all(&framed)
}

/// Reads one framed DNS message.
fn read_tls_frame(tls: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    tls.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tls.read_exact(&mut msg)?;
    Ok(msg)
}

/// Asks for the zone's SOA over TLS to `port` (see [`tls_client`]); the answer, or what went
/// wrong.
fn soa_over_tls(
    port: u16,
    ca: &Path,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Message, String> {
    let mut tls = tls_client(port, ca, alpn, versions, None);
    write_frame(&mut tls, &query(DOMAIN, 6, None)).map_err(|e| format!("write: {e}"))?;
    read_tls_frame(&mut tls).map(|m| Message::decode(&m)).map_err(|e| format!("read: {e}"))
}

/// The TSIG key as dig takes it.
fn tsig_arg() -> String {
    format!("hmac-sha256:transfer-key:{SECRET}")
}

#[test]
fn xot_bind_and_nsd_transfer_over_tls_only_axfr_then_ixfr() {
    let dir = TempDir::new();
    let ca = Ca::new(&dir.0, "good");
    let cert = ca.issue("primary", &[primary_name(), "127.0.0.1".into()], false);
    let [bind_port, nsd_port, tls_port] = [0; 3].map(|_| free_port(&["127.0.0.1"]));
    let server = primary(&dir, &[bind_port, nsd_port], &tls_keys(tls_port, &cert, "clear_transfers = false"));
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    let serial = serial_of(&server);
    let named = bind_tls(&dir.join("bind"), bind_port, tls_port, &ca.pem, &primary_name());
    let nsd = nsd_tls(&dir.join("nsd"), nsd_port, tls_port, (&ca.pem, &primary_name()), None);
    for secondary in [&named, &nsd] {
        let took = within(Duration::from_secs(15), || secondary.serial() == Some(serial));
        assert!(
            took.is_some(),
            "{:?} gets serial {serial} over TLS:\n{}\n{}",
            secondary.addr,
            secondary.log_text(),
            server.log_text()
        );
    }
    // Both asked over TLS, and nothing went out in clear: our own lines say how each transfer travelled.
    assert!(lines_with(&server, " over TLS to ") >= 2, "{}", server.log_text());
    assert_eq!(lines_with(&server, "XFR to "), 0, "a transfer in clear:\n{}", server.log_text());

    // An update reaches both by IXFR, over TLS (NOTIFY over UDP starts it).
    let name = format!("{}.{DOMAIN}", account["subdomain"].as_str().unwrap());
    assert_eq!(server.update(&account, &txt_value(2)).status, 200);
    let serial = serial_of(&server);
    for secondary in [&named, &nsd] {
        let took = within(Duration::from_secs(10), || secondary.serial() == Some(serial));
        assert!(took.is_some(), "{:?} follows to {serial}:\n{}", secondary.addr, secondary.log_text());
        assert_eq!(txts_at(secondary.addr, &name), txts_at(server.udp, &name));
    }
    let incremental = server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| {
            l.contains("IXFR over TLS to ") && l.contains(&format!("incremental from serial {}", serial - 1))
        })
        .count();
    assert!(incremental >= 2, "both secondaries took the change by IXFR over TLS:\n{}", server.log_text());
    // BIND's own log names the TLS transport; NSD's does not, but with clear transfers refused
    // it could not have had the zone any other way.
    let session = format!("TLS client session created for 127.0.0.1#{tls_port}");
    assert!(named.log_text().contains(&session), "BIND's log:\n{}", named.log_text());

    // Over clear TCP the same signed AXFR is refused; queries there still work.
    let out = Command::new("dig")
        .args(["-y", &tsig_arg(), "-p", &server.tcp.port().to_string(), "@127.0.0.1", DOMAIN, "AXFR"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Transfer failed") && !text.contains("\tSOA\t"), "{text}");
    assert!(server.log_text().contains("refused: over clear TCP"), "{}", server.log_text());
    let soa = tcp_exchange(server.tcp, &query(DOMAIN, 6, None)).map(|m| Message::decode(&m));
    assert!(soa.as_ref().and_then(soa_serial).is_some(), "SOA over TCP");
}

#[test]
fn xot_a_wrong_certificate_is_refused_by_bind_and_nsd() {
    let dir = TempDir::new();
    let ca = Ca::new(&dir.0, "good");
    let other = Ca::new(&dir.0, "other");
    let cert = ca.issue("primary", &[primary_name(), "127.0.0.1".into()], false);
    let [bind_port, nsd_port, tls_port] = [0; 3].map(|_| free_port(&["127.0.0.1"]));
    let server = primary(&dir, &[bind_port, nsd_port], &tls_keys(tls_port, &cert, ""));
    // BIND trusts another CA; NSD trusts ours but expects another name.
    let named = bind_tls(&dir.join("bind"), bind_port, tls_port, &other.pem, &primary_name());
    let nsd = nsd_tls(&dir.join("nsd"), nsd_port, tls_port, (&ca.pem, &format!("ns2.{DOMAIN}")), None);
    // Each tried, and said why it would not go on: BIND does not trust the CA, NSD finds
    // another name than it expects.
    let bind_refused = "Transfer status: TLS peer certificate verification failed";
    let nsd_refused = "TLS verify failed - (62) depth: 0 error: hostname mismatch";
    let took = within(Duration::from_secs(15), || {
        named.log_text().contains(bind_refused) && nsd.log_text().contains(nsd_refused)
    });
    assert!(took.is_some(), "BIND:\n{}\nNSD:\n{}", named.log_text(), nsd.log_text());
    // Our side logs the failed handshake too (the first of the network; the rest are summed).
    let ours = "TLS connection from 127.0.0.0/24 refused: the handshake failed (";
    assert!(server.log_text().contains(ours), "{}", server.log_text());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(named.serial(), None, "BIND must not have the zone:\n{}", named.log_text());
    assert_eq!(nsd.serial(), None, "NSD must not have the zone:\n{}", nsd.log_text());
    assert_eq!(lines_with(&server, "XFR over TLS to "), 0, "{}", server.log_text());
}

#[test]
fn xot_mutual_tls_serves_nsd_with_a_client_certificate_and_refuses_one_without() {
    let dir = TempDir::new();
    let ca = Ca::new(&dir.0, "good");
    let clients = Ca::new(&dir.0, "clients");
    let cert = ca.issue("primary", &[primary_name(), "127.0.0.1".into()], false);
    let client = clients.issue("secondary", &[format!("ns2.{DOMAIN}")], true);
    let stranger = Ca::new(&dir.0, "stranger").issue("stranger", &[format!("ns3.{DOMAIN}")], true);
    let [nsd_port, tls_port] = [0; 2].map(|_| free_port(&["127.0.0.1"]));
    let extra = format!("tls_client_ca = \"{}\"", clients.pem.display());
    let server = primary(&dir, &[nsd_port], &tls_keys(tls_port, &cert, &extra));
    let serial = serial_of(&server);
    let nsd = nsd_tls(&dir.join("nsd"), nsd_port, tls_port, (&ca.pem, &primary_name()), Some(&client));
    let took = within(Duration::from_secs(15), || nsd.serial() == Some(serial));
    assert!(took.is_some(), "NSD with its client certificate:\n{}\n{}", nsd.log_text(), server.log_text());
    assert!(lines_with(&server, "XFR over TLS to ") >= 1, "{}", server.log_text());
    // Without a client certificate, or with one from another CA: no answer at all.
    let trust = [format!("+tls-ca={}", ca.pem.display()), format!("+tls-hostname={}", primary_name())];
    let none = dig_tls(tls_port, &trust, &[DOMAIN, "SOA"]);
    assert!(!none.contains("NOERROR"), "{none}");
    let ours = within(Duration::from_secs(2), || {
        server.log_text().contains("TLS connection from 127.0.0.0/24 refused: the handshake failed")
    });
    assert!(ours.is_some(), "{}", server.log_text());
    let mut with_stranger = trust.to_vec();
    with_stranger.push(format!("+tls-certfile={}", stranger.0.display()));
    with_stranger.push(format!("+tls-keyfile={}", stranger.1.display()));
    let refused = dig_tls(tls_port, &with_stranger, &[DOMAIN, "SOA"]);
    assert!(!refused.contains("NOERROR"), "{refused}");
    let mut with_client = trust.to_vec();
    with_client.push(format!("+tls-certfile={}", client.0.display()));
    with_client.push(format!("+tls-keyfile={}", client.1.display()));
    let answered = dig_tls(tls_port, &with_client, &[DOMAIN, "SOA"]);
    assert!(answered.contains("NOERROR"), "{answered}");
}

#[test]
fn xot_needs_alpn_dot_and_reloads_its_certificate_on_sighup() {
    let dir = TempDir::new();
    let ca = Ca::new(&dir.0, "good");
    let cert = ca.issue("primary", &[primary_name()], false);
    let tls_port = free_port(&["127.0.0.1"]);
    let server = primary(&dir, &[], &tls_keys(tls_port, &cert, ""));
    let trust = |name: &str| vec![format!("+tls-ca={}", ca.pem.display()), format!("+tls-hostname={name}")];
    let signed = ["-y".to_owned(), tsig_arg()];
    let axfr = dig_tls(tls_port, &[trust(&primary_name()), signed.to_vec()].concat(), &[DOMAIN, "AXFR"]);
    assert!(axfr.contains("\tSOA\t") && !axfr.contains("failed"), "{axfr}");
    // Another ALPN token than "dot" is refused at the handshake (RFC 9103 section 7.1).
    let openssl = |alpn: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{tls_port}"), "-alpn", alpn])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    assert!(openssl("h2").contains("no application protocol"), "{}", openssl("h2"));
    let ours = "refused: the handshake failed (peer doesn't support any known protocol)";
    assert!(server.log_text().contains(ours), "{}", server.log_text());
    assert!(openssl("dot").contains("ALPN protocol: dot"), "{}", openssl("dot"));
    // A client that offers no ALPN has not selected "dot" either: closed without an answer.
    // TLS 1.2 is not offered (RFC 9103 section 7.2 asks for 1.3 or later).
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let answer = soa_over_tls(tls_port, &ca.pem, &[b"dot"], tls13);
    assert!(answer.as_ref().is_ok_and(|m| soa_serial(m).is_some()), "{:?}", answer.err());
    let no_alpn = soa_over_tls(tls_port, &ca.pem, &[], tls13);
    assert!(no_alpn.is_err(), "answered without ALPN");
    let tls12 = soa_over_tls(tls_port, &ca.pem, &[b"dot"], &[&rustls::version::TLS12]);
    assert!(tls12.is_err(), "answered over TLS 1.2");

    // A renewal writes a certificate for another name into the same files; SIGHUP serves it.
    let renewed = ca.issue("renewed", &[format!("ns9.{DOMAIN}")], false);
    std::fs::copy(&renewed.0, &cert.0).unwrap();
    std::fs::copy(&renewed.1, &cert.1).unwrap();
    server.signal("HUP");
    let reloaded =
        within(Duration::from_secs(5), || server.log_text().contains("transfer TLS certificate files"));
    assert!(reloaded.is_some(), "{}", server.log_text());
    let new_name = dig_tls(tls_port, &trust(&format!("ns9.{DOMAIN}")), &[DOMAIN, "SOA"]);
    assert!(new_name.contains("NOERROR"), "{new_name}");
    let old_name = dig_tls(tls_port, &trust(&primary_name()), &[DOMAIN, "SOA"]);
    assert!(!old_name.contains("NOERROR"), "{old_name}");
}

#[test]
fn xot_bad_keys_and_files_are_refused_naming_the_key() {
    let dir = TempDir::new();
    let ca = Ca::new(&dir.0, "good");
    let cert = ca.issue("primary", &[primary_name()], false);
    let missing = (dir.join("missing.pem"), cert.1.clone());
    let port = free_port(&["127.0.0.1"]);
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let cases = [
        (tls_keys(port, &missing, ""), "transfer.tls_cert_fullchain"),
        (tls_keys(port, &(cert.0.clone(), not_pem.clone()), ""), "transfer.tls_cert_privkey"),
        (
            tls_keys(port, &cert, &format!("tls_client_ca = \"{}\"", not_pem.display())),
            "transfer.tls_client_ca",
        ),
        ("clear_transfers = false".to_owned(), "transfer.clear_transfers"),
        (format!("tls_cert_fullchain = \"{}\"", cert.0.display()), "transfer.tls_listen"),
    ];
    for (lines, key) in cases {
        let config = with_keys(
            &base_config(&dir.0),
            "transfer",
            &format!("{}\n{lines}", transfer_section("\"127.0.0.1/32\"", &[])),
        );
        let path = dir.join("bad.cfg");
        std::fs::write(&path, &config).unwrap();
        let out = Command::new(binary()).args(["check-config", "-c"]).arg(&path).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains(key), "check-config, {key}: {text}");
        let log = TestServer::try_start(&dir, &config).err().expect("must not start");
        assert!(log.join("\n").contains(key), "serve, {key}: {log:?}");
    }
}

#[test]
fn xot_a_slow_reader_gets_the_end_of_a_large_zone() {
    let dir = TempDir::new();
    let ca = Ca::new(&dir.0, "good");
    let cert = ca.issue("primary", &[primary_name()], false);
    // 120 TXT records of 60,000 bytes: 7 MB, one message each, more than loopback's socket
    // buffers hold, so the server's writes over TLS wait for the reader many times.
    let big: Vec<String> =
        (0..120).map(|i| format!("big{i}.{DOMAIN}. TXT \"{}\"", "x".repeat(60_000))).collect();
    let tls_port = free_port(&["127.0.0.1"]);
    let config = config_with(&dir.0, "\"127.0.0.1:0\"", &big);
    let transfer = format!("allow_transfer = [\"127.0.0.1/32\"]\n{}", tls_keys(tls_port, &cert, ""));
    let server = TestServer::start_with(&dir, &with_keys(&config, "transfer", &transfer));
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let mut tls = tls_client(tls_port, &ca.pem, &[b"dot"], tls13, Some(16 * 1024));
    write_frame(&mut tls, &query(DOMAIN, 252, None)).unwrap();
    let (mut soas, mut txts) = (0, 0);
    while soas < 2 {
        // A slow secondary: a message, then a pause.
        std::thread::sleep(Duration::from_millis(10));
        let msg = match read_tls_frame(&mut tls) {
            Ok(msg) => Message::decode(&msg),
            Err(e) => panic!("after {txts} TXT records and {soas} SOA: {e}\n{}", server.log_text()),
        };
        soas += msg.answers.iter().filter(|r| r.rtype == 6).count();
        txts += msg.answers.iter().filter(|r| r.rtype == 16 && r.rdata.len() > 50_000).count();
    }
    assert_eq!(txts, 120, "{}", server.log_text());
}
