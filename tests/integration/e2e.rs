//! End to end: real certificates from a real ACME CA through real ACME clients, all on loopback.
//!
//! - Pebble (Debian `pebble`, Let's Encrypt's test CA; its own TLS certificate made here with
//!   openssl; `PEBBLE_VA_ALWAYS_VALID` never set, `PEBBLE_VA_NOSLEEP=1` only skips its random
//!   waits) validates DNS-01 through `-dnsserver`, pointed at
//! - unbound (Debian), a recursive resolver holding an `example.test` zone with the domain
//!   owners' `_acme-challenge` CNAMEs (an `auth-zone` for upstream: unbound answers `local-data`
//!   CNAMEs without following them) and a stub zone sending `auth.example.org` to
//! - our server, started by the harness, and
//! - certbot 5.8.0 from PyPI (a virtual environment made by `scripts/e2e-venv`), once with our
//!   `client hook` and once with the third-party `certbot-dns-acmedns` 0.1.0 plugin.
//!
//! A wrong value served, and a wrong DNSSEC trust anchor in the validating resolver, must make
//! issuance fail: the suite can fail. Every process has a guard that stops it; every wait has a
//! deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// How long one certbot run may take.
const CERTBOT_LIMIT: Duration = Duration::from_secs(150);

/// Runs a command with a deadline; kills it when the deadline passes (status `None`).
fn run_bounded(
    command: &mut Command,
    limit: Duration,
    dir: &Path,
    name: &str,
) -> (Option<ExitStatus>, String) {
    let out_path = dir.join(format!("{name}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
    let status = wait_or_kill(&mut child, limit);
    (status, std::fs::read_to_string(&out_path).unwrap_or_default())
}

/// Runs `acme-delegate client …` with a deadline (killed after 60 s).
pub(crate) fn client(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command.arg("client").args(args).env_remove("ACME_DELEGATE_CLIENT_STORAGE").stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("client runs");
    let pipe = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let status = wait_at_most(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().unwrap()
    });
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// stdout and stderr of an output, joined.
pub(crate) fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `client register` of `domain` with the API at `url` into `storage`, then `extra` arguments.
pub(crate) fn client_register(url: &str, domain: &str, storage: &str, extra: &[&str]) -> Output {
    client(
        &[&["register", "--server", url, "--domain", domain, "--storage", storage][..], extra].concat(),
        &[],
    )
}

/// `client update` of `domain`'s value to `txt` from `storage`, then `extra` arguments, with `env`.
pub(crate) fn client_update(
    storage: &str,
    domain: &str,
    txt: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    client(&[&["update", "--storage", storage, "--domain", domain, "--txt", txt][..], extra].concat(), env)
}

/// `client check` of `domain` from `storage` through the resolver at `resolver`, then `extra`.
pub(crate) fn client_check(storage: &str, domain: &str, resolver: &str, extra: &[&str]) -> Output {
    client(
        &[&["check", "--storage", storage, "--domain", domain, "--resolver", resolver][..], extra].concat(),
        &[],
    )
}

/// Our server's configuration: DNS on the same `port` at every address of `listen`, two NS
/// (ns1 → 127.0.0.1, ns2 → 127.0.0.2), SQLite in `dir`, API on a free port, DNSSEC if asked.
pub(crate) fn server_config(dir: &Path, listen: &[&str], port: u16, dnssec: bool) -> String {
    let listen: Vec<String> = listen.iter().map(|a| format!("\"{a}:{port}\"")).collect();
    let records = [
        format!("{DOMAIN}. NS ns1.{DOMAIN}."),
        format!("{DOMAIN}. NS ns2.{DOMAIN}."),
        format!("ns1.{DOMAIN}. A 127.0.0.1"),
        format!("ns2.{DOMAIN}. A 127.0.0.2"),
    ];
    let mut config = config_with(dir, &format!("[{}]", listen.join(", ")), &records);
    if dnssec {
        config.push_str("\n[dnssec]\nenabled = true\n");
    }
    config
}

/// Starts our server on both loopback addresses (same port).
fn start_server(dir: &TempDir, dnssec: bool) -> (TestServer, u16) {
    let port = free_port(&["127.0.0.1", "127.0.0.2"]);
    let server =
        TestServer::start_with(dir, &server_config(&dir.0, &["127.0.0.1", "127.0.0.2"], port, dnssec));
    (server, port)
}

/// `client register` for `domain` into `storage`; returns the CNAME target it printed.
pub(crate) fn register(server: &TestServer, storage: &Path, domain: &str) -> String {
    let url = format!("http://{}", server.api);
    let out = client_register(&url, domain, storage.to_str().unwrap(), &[]);
    assert!(out.status.success(), "register {domain}: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("_acme-challenge.{domain}. CNAME ")))
        .unwrap_or_else(|| panic!("no CNAME line: {stdout}"));
    let target = line.rsplit(' ').next().unwrap().to_owned();
    assert!(target.ends_with(&format!(".{DOMAIN}.")), "{line}");
    assert!(stdout.contains(&format!("{domain}. CAA 0 issue ")), "{stdout}");
    target
}

/// The TXT values our server serves for `fulldomain`.
fn served(server: &TestServer, fulldomain: &str) -> Vec<String> {
    server.ask(fulldomain, t::TXT).txts()
}

/// unbound as the CA's resolver: `example.test` with the given CNAMEs, a stub zone for our
/// zone, and (with `anchor`) DNSSEC validation with that trust anchor.
fn unbound(dir: &Path, dns_port: u16, cnames: &[(String, String)], anchor: Option<&str>) -> Unbound {
    let mut zone = String::from(
        "$ORIGIN example.test.\n\
         @ 3600 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 5\n\
         @ 3600 IN NS ns.example.test.\n\
         ns 3600 IN A 127.0.0.1\n",
    );
    for (name, target) in cnames {
        zone.push_str(&format!("{name}. 60 IN CNAME {target}\n"));
    }
    std::fs::write(dir.join("example.test.zone"), zone).unwrap();
    let validation = match anchor {
        Some(line) => {
            std::fs::write(dir.join("anchor.key"), format!("{line}\n")).unwrap();
            format!(
                "    module-config: \"validator iterator\"\n    trust-anchor-file: \"{}\"\n    val-permissive-mode: no\n",
                dir.join("anchor.key").display()
            )
        }
        None => "    module-config: \"iterator\"\n".to_owned(),
    };
    let more = format!(
        r#"    qname-minimisation: no
    prefetch: no
    # unbound answers .test itself (RFC 6761) unless told not to.
    local-zone: "test." nodefault
{validation}auth-zone:
    name: "example.test"
    zonefile: "{dir}/example.test.zone"
    for-downstream: no
    for-upstream: yes
    fallback-enabled: no
"#,
        dir = dir.display(),
    );
    Unbound::start(dir, dns_port, &more, ("ns.example.test", t::A))
}

/// unbound (no DNSSEC) with `domain`'s `_acme-challenge` CNAME to `target`, and Pebble validating
/// through it.
fn resolver_and_ca(dir: &Path, dns_port: u16, domain: &str, target: &str) -> (Unbound, Pebble) {
    let resolver = unbound(dir, dns_port, &[(format!("_acme-challenge.{domain}"), target.to_owned())], None);
    let pebble = Pebble::start(dir, &resolver.addr());
    (resolver, pebble)
}

/// A running Pebble.
struct Pebble {
    /// The process.
    _guard: Guard,
    /// ACME directory URL.
    directory: String,
    /// Management port (roots, intermediates).
    management: u16,
    /// The CA of Pebble's own TLS certificate (what certbot must trust).
    tls_ca: PathBuf,
    /// Its log.
    log: PathBuf,
}

/// A certificate for 127.0.0.1 and localhost issued by a throwaway CA, made with openssl;
/// returns (CA certificate, server certificate, server key).
fn make_tls_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let path = |ext: &str| dir.join(format!("{name}-{ext}"));
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl runs (Debian package openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (ca, ca_key, csr, cert, key, ext) =
        (path("ca.crt"), path("ca.key"), path("csr"), path("crt"), path("key"), path("ext"));
    let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let ca_subject = format!("/CN={name} test CA");
    openssl(
        &[
            &["req", "-x509"][..],
            &curve,
            &["-days", "2", "-subj", &ca_subject, "-keyout", &s(&ca_key), "-out", &s(&ca)],
        ]
        .concat(),
    );
    openssl(
        &[&["req", "-new"][..], &curve, &["-subj", "/CN=localhost", "-keyout", &s(&key), "-out", &s(&csr)]]
            .concat(),
    );
    std::fs::write(
        &ext,
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    (ca, cert, key)
}

impl Pebble {
    /// Starts Pebble validating through the resolver at `resolver`.
    fn start(dir: &Path, resolver: &str) -> Self {
        let (ca, cert, key) = make_tls_cert(dir, "pebble");
        let [port, management, http, tls] = std::array::from_fn(|_| free_port(&["127.0.0.1"]));
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = dir.join("pebble.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", resolver])
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("pebble runs (Debian package pebble)");
        let pebble = Self {
            _guard: Guard { child },
            directory: format!("https://127.0.0.1:{port}/dir"),
            management,
            tls_ca: ca,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if pebble.log_text().contains("ACME directory available")
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return pebble;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pebble did not come up: {}", pebble.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pebble's root certificate (it makes a new one at every start), written to `dir`.
    fn root(&self, dir: &Path) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&self.tls_ca)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .expect("curl runs");
        assert!(out.status.success() && out.stdout.starts_with(b"-----BEGIN CERTIFICATE-----"), "{out:?}");
        let path = dir.join("pebble-root.pem");
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

/// certbot in the Python virtual environment of the tests.
fn certbot_path() -> PathBuf {
    python_venv().join("bin/certbot")
}

/// One certbot run's result.
struct Issued {
    /// Exit status (None: killed at the deadline).
    status: Option<ExitStatus>,
    /// Everything it printed.
    output: String,
    /// `live/<name>` of its config dir.
    live: PathBuf,
    /// Its log directory.
    logs: PathBuf,
}

impl Issued {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// certbot's own log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.logs.join("letsencrypt.log")).unwrap_or_default()
    }
}

/// Runs `certbot certonly` against Pebble for `domains` with `args` choosing the authenticator.
fn certbot(dir: &Path, pebble: &Pebble, name: &str, domains: &[&str], args: &[&str]) -> Issued {
    let base = dir.join(format!("certbot-{name}"));
    std::fs::create_dir_all(&base).unwrap();
    let mut command = Command::new(certbot_path());
    command
        .args(["certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email"])
        .args(["--server", &pebble.directory, "--preferred-challenges", "dns", "--cert-name", name])
        .args(["--key-type", "ecdsa", "--max-log-backups", "0", "-v"])
        .arg("--config-dir")
        .arg(base.join("config"))
        .arg("--work-dir")
        .arg(base.join("work"))
        .arg("--logs-dir")
        .arg(base.join("logs"))
        .args(args)
        .env("REQUESTS_CA_BUNDLE", &pebble.tls_ca)
        .env("XDG_CONFIG_HOME", base.join("xdg"))
        .env_remove("ACME_DELEGATE_CLIENT_STORAGE");
    for d in domains {
        command.args(["-d", d]);
    }
    let (status, output) = run_bounded(&mut command, CERTBOT_LIMIT, dir, &format!("certbot-{name}"));
    Issued { status, output, live: base.join("config/live").join(name), logs: base.join("logs") }
}

/// [`certbot`] with the manual authenticator and `hook` as its `--manual-auth-hook`.
fn certbot_with_hook(dir: &Path, pebble: &Pebble, name: &str, domains: &[&str], hook: &str) -> Issued {
    certbot(dir, pebble, name, domains, &["--manual", "--manual-auth-hook", hook])
}

/// Asserts certbot got a certificate for exactly `names`, chained to Pebble's root (written to `dir`).
fn assert_issued(issued: &Issued, pebble: &Pebble, dir: &Path, names: &[&str]) {
    assert!(issued.ok(), "certbot failed:\n{}\n{}\n{}", issued.output, issued.log(), pebble.log_text());
    verify_certificate(issued, &pebble.root(dir), names);
}

/// Asserts certbot finished without a certificate (`why`: what must have stopped it); returns
/// its output and log.
fn assert_not_issued(issued: &Issued, why: &str) -> String {
    assert!(issued.status.is_some(), "certbot hung:\n{}", issued.output);
    assert!(!issued.ok(), "issuance must fail {why}:\n{}", issued.output);
    assert!(!issued.live.join("cert.pem").exists());
    format!("{}\n{}", issued.output, issued.log())
}

/// The `--manual-auth-hook` for our `client hook`.
fn our_hook(storage: &Path) -> String {
    format!("{} client hook --storage {}", binary(), storage.display())
}

/// Checks the issued certificate: exactly these SANs, and a chain up to Pebble's root.
fn verify_certificate(issued: &Issued, root: &Path, names: &[&str]) {
    let cert = issued.live.join("cert.pem");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl runs");
    let sans = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut found: Vec<&str> = sans
        .lines()
        .skip(1)
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().trim_start_matches("DNS:"))
        .filter(|s| !s.is_empty())
        .collect();
    found.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(found, want, "SANs of {}: {sans}", cert.display());
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(issued.live.join("chain.pem"))
        .arg(&cert)
        .output()
        .expect("openssl runs");
    let said = text(&out);
    assert!(out.status.success() && said.contains(": OK"), "chain does not verify: {said}");
    // fullchain.pem is the certificate followed by the chain.
    let full = std::fs::read_to_string(issued.live.join("fullchain.pem")).unwrap();
    let parts = [
        std::fs::read_to_string(&cert).unwrap(),
        std::fs::read_to_string(issued.live.join("chain.pem")).unwrap(),
    ];
    assert_eq!(full, parts.concat());
}

#[test]
fn certbot_with_our_hook_gets_a_name_and_its_wildcard() {
    let dir = TempDir::new();
    let (server, dns_port) = start_server(&dir, false);
    let storage = dir.join("client.json");
    let target = register(&server, &storage, "hook.example.test");
    let (resolver, pebble) = resolver_and_ca(&dir.0, dns_port, "hook.example.test", &target);

    let issued = certbot_with_hook(
        &dir.0,
        &pebble,
        "hook",
        &["hook.example.test", "*.hook.example.test"],
        &our_hook(&storage),
    );
    assert_issued(&issued, &pebble, &dir.0, &["hook.example.test", "*.hook.example.test"]);
    // Both challenges' values were served at once.
    let values = served(&server, target.trim_end_matches('.'));
    assert_eq!(values.len(), 2, "{values:?}");

    // `client check` through the same resolver: the CNAME is right and both nameservers (the
    // zone's NS set, found by the check) serve the same two values.
    let storage_arg = storage.to_str().unwrap();
    let port = dns_port.to_string();
    let check = |extra: &[&str]| client_check(storage_arg, "hook.example.test", &resolver.addr(), extra);
    let out = check(&["--ns-port", &port]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ok: the stored fulldomain"), "{said}");
    for ns in ["ns1.auth.example.org.", "ns2.auth.example.org."] {
        let row =
            said.lines().find(|l| l.starts_with(ns)).unwrap_or_else(|| panic!("no row for {ns}: {said}"));
        assert!(row.contains("NOERROR AA") && row.ends_with("ok"), "{row}");
        assert!(values.iter().all(|v| row.contains(v.as_str())), "{row}");
    }
    // An expected value that is not served fails the check, naming it.
    let missing = txt_value(99);
    let out = check(&["--ns-port", &port, "--txt", &missing]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&format!("FAIL: missing {missing}")), "{}", text(&out));
}

#[test]
fn certbot_dns_acmedns_plugin_works_unchanged() {
    let dir = TempDir::new();
    let (server, dns_port) = start_server(&dir, false);
    // Our client's storage file is the plugin's registration file: the same shared format.
    let registrations = dir.join("registrations.json");
    let target = register(&server, &registrations, "plugin.example.test");
    let (_resolver, pebble) = resolver_and_ca(&dir.0, dns_port, "plugin.example.test", &target);
    // An API URL ending in "/": the plugin then posts to //update.
    let ini = dir.join("acmedns.ini");
    std::fs::write(
        &ini,
        format!(
            "dns_acmedns_api_url = http://{}/\ndns_acmedns_registration_file = {}\n",
            server.api,
            registrations.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o600)).unwrap();

    let issued = certbot(
        &dir.0,
        &pebble,
        "plugin",
        &["plugin.example.test", "*.plugin.example.test"],
        &[
            "-a",
            "dns-acmedns",
            "--dns-acmedns-credentials",
            ini.to_str().unwrap(),
            "--dns-acmedns-propagation-seconds",
            "1",
        ],
    );
    assert_issued(&issued, &pebble, &dir.0, &["plugin.example.test", "*.plugin.example.test"]);
    assert_eq!(served(&server, target.trim_end_matches('.')).len(), 2);
    assert!(issued.log().contains("//update"), "the plugin posted to //update: {}", issued.log());
}

#[test]
fn a_wrong_value_served_makes_issuance_fail() {
    let dir = TempDir::new();
    let (server, dns_port) = start_server(&dir, false);
    let storage = dir.join("client.json");
    let target = register(&server, &storage, "wrong.example.test");
    let (_resolver, pebble) = resolver_and_ca(&dir.0, dns_port, "wrong.example.test", &target);
    // A hook that succeeds but sets a value unrelated to the challenge.
    let wrong = txt_value(4242);
    let hook = format!(
        "{} client update --storage {} --domain wrong.example.test --txt {wrong}",
        binary(),
        storage.display()
    );
    let issued = certbot_with_hook(&dir.0, &pebble, "wrong", &["wrong.example.test"], &hook);
    let said = assert_not_issued(&issued, "with a wrong value");
    assert!(said.contains("Correct value not found for DNS challenge"), "{said}");
    // The hook did run: the wrong value is what the server serves.
    assert_eq!(served(&server, target.trim_end_matches('.')), vec![wrong]);

    // The same setup with the right hook issues: the failure came from the value alone. (First
    // let the resolver's cached answer, TTL 1 s counted in whole seconds, run out.)
    std::thread::sleep(Duration::from_millis(2500));
    let issued = certbot_with_hook(&dir.0, &pebble, "right", &["wrong.example.test"], &our_hook(&storage));
    assert!(issued.ok(), "certbot failed:\n{}\n{}", issued.output, issued.log());
}

/// The DNSKEY trust-anchor line `dnssec ds` prints for a configuration.
fn trust_anchor(config: &Path) -> String {
    let out = Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(config).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.contains(" DNSKEY 257 3 "))
        .expect("a DNSKEY line")
        .to_owned()
}

#[test]
fn dnssec_validating_resolver_issues_with_our_anchor_and_refuses_a_wrong_one() {
    let dir = TempDir::new();
    let (server, dns_port) = start_server(&dir, true);
    let anchor = trust_anchor(&dir.join("config.cfg"));
    // Another key for the same zone: a second configuration with its own database.
    let other = TempDir::new();
    std::fs::write(other.join("config.cfg"), server_config(&other.0, &["127.0.0.1"], 9, true)).unwrap();
    let wrong_anchor = trust_anchor(&other.join("config.cfg"));
    assert_ne!(anchor, wrong_anchor);

    let storage = dir.join("client.json");
    let target = register(&server, &storage, "signed.example.test");
    let cnames = [("_acme-challenge.signed.example.test".to_owned(), target.clone())];

    // Good anchor: answers validate (AD) and the certificate is issued.
    let good_dir = TempDir::new();
    let resolver = unbound(&good_dir.0, dns_port, &cnames, Some(&anchor));
    let soa = resolver.resolve(DOMAIN, t::SOA).expect("a reply");
    assert!(soa.rcode == rcode::NOERROR && soa.ad(), "not validated: {soa:?}");
    let pebble = Pebble::start(&good_dir.0, &resolver.addr());
    let hook = our_hook(&storage);
    let issued = certbot_with_hook(&good_dir.0, &pebble, "signed", &["signed.example.test"], &hook);
    assert_issued(&issued, &pebble, &good_dir.0, &["signed.example.test"]);
    drop(pebble);
    drop(resolver);

    // Wrong anchor: the resolver answers SERVFAIL and the CA cannot validate.
    let bad_dir = TempDir::new();
    let resolver = unbound(&bad_dir.0, dns_port, &cnames, Some(&wrong_anchor));
    let txt = resolver.resolve(target.trim_end_matches('.'), t::TXT).expect("a reply");
    assert_eq!(txt.rcode, 2, "SERVFAIL expected with a wrong anchor: {txt:?}");
    let pebble = Pebble::start(&bad_dir.0, &resolver.addr());
    let issued = certbot_with_hook(&bad_dir.0, &pebble, "signed", &["signed.example.test"], &hook);
    let said = assert_not_issued(&issued, "behind a wrong trust anchor");
    assert!(
        // Pebble's words for rcode 2 (SERVFAIL), as certbot relays them.
        said.contains("returned an unsuccessful response") && said.contains("x02'"),
        "{said}"
    );
}

#[test]
fn check_shows_a_nameserver_that_disagrees() {
    // ns1 (127.0.0.1) is our server; ns2 (127.0.0.2, same port) is another instance with its own
    // database that has never heard of the account.
    let dir = TempDir::new();
    let port = free_port(&["127.0.0.1", "127.0.0.2"]);
    let server = TestServer::start_with(&dir, &server_config(&dir.0, &["127.0.0.1"], port, false));
    let other_dir = TempDir::new();
    let _other =
        TestServer::start_with(&other_dir, &server_config(&other_dir.0, &["127.0.0.2"], port, false));
    let storage = dir.join("client.json");
    let target = register(&server, &storage, "split.example.test");
    let value = txt_value(7);
    let storage_arg = storage.to_str().unwrap();
    let out = client_update(storage_arg, "split.example.test", &value, &[], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let resolver = unbound(&dir.0, port, &[("_acme-challenge.split.example.test".into(), target)], None);

    let check = |extra: &[&str]| client_check(storage_arg, "split.example.test", &resolver.addr(), extra);
    let port_arg = port.to_string();
    let out = check(&["--ns-port", &port_arg]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    let row = |ns: &str| {
        said.lines().find(|l| l.starts_with(ns)).unwrap_or_else(|| panic!("no {ns}: {said}")).to_owned()
    };
    assert!(row("ns1.").contains(&value) && row("ns1.").ends_with("ok"), "{said}");
    assert!(row("ns2.").contains("NXDOMAIN") && row("ns2.").contains("FAIL"), "{said}");
    assert!(said.contains("1 of 2 nameserver address(es) failed"), "{said}");
    // Each row shows the serial that server gives, so a lagging secondary is visible.
    for (ns, server) in [("ns1.", &server), ("ns2.", &_other)] {
        let soa = server.ask(DOMAIN, t::SOA);
        let rdata = &soa.answers.iter().find(|r| r.rtype == t::SOA).expect("an SOA").rdata;
        let serial = u32::from_be_bytes(rdata[rdata.len() - 20..rdata.len() - 16].try_into().unwrap());
        assert!(row(ns).contains(&format!(" {serial} ")), "{ns} serial {serial}: {said}");
    }

    // Asking only ns1 (by address) passes.
    let ns1 = format!("127.0.0.1:{port}");
    let out = check(&["--nameserver", &ns1, "--txt", &value]);
    assert!(out.status.success(), "{}", text(&out));
    // A CNAME that points elsewhere is caught, with the fix.
    let out = check(&["--nameserver", &ns1]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&storage).unwrap()).unwrap();
    let mut edited = json.clone();
    edited["split.example.test"]["fulldomain"] = serde_json::json!(format!("other.{DOMAIN}"));
    std::fs::write(&storage, edited.to_string()).unwrap();
    let out = check(&["--nameserver", &ns1]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("fix: _acme-challenge.split.example.test. CNAME other.{DOMAIN}.")),
        "{said}"
    );
}

#[test]
fn client_failures_are_clear_and_non_zero() {
    let dir = TempDir::new();
    let (server, _) = start_server(&dir, false);
    let storage = dir.join("client.json");
    let storage_arg = storage.to_str().unwrap();
    let url = format!("http://{}", server.api);
    let value = txt_value(1);

    // The hook outside certbot.
    let out = client(&["hook", "--storage", storage_arg], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("CERTBOT_DOMAIN is not set"), "{}", text(&out));
    // A domain never registered.
    let out = client(
        &["hook", "--storage", storage_arg],
        &[("CERTBOT_DOMAIN", "none.example.test"), ("CERTBOT_VALIDATION", &value)],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("no account for none.example.test"), "{}", text(&out));
    // A bad CIDR is refused before anything is sent; nothing is stored.
    let out = client_register(&url, "a.example.test", storage_arg, &["--allowfrom", "10.0.0.0"]);
    assert!(!out.status.success() && text(&out).contains("--allowfrom"), "{}", text(&out));
    assert!(!storage.exists());

    // Registered with allowfrom; the hook strips "*." and case; the server echoes the value.
    let out = client_register(&url, "A.Example.Test", storage_arg, &["--allowfrom", "127.0.0.0/8,::1/128"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&storage).unwrap()).unwrap();
    let account = &json["a.example.test"];
    assert_eq!(account["allowfrom"], serde_json::json!(["127.0.0.0/8", "::1/128"]));
    assert_eq!(account["server_url"], url.as_str());
    let out = client(
        &["hook", "--storage", storage_arg],
        &[("CERTBOT_DOMAIN", "*.a.example.test"), ("CERTBOT_VALIDATION", &value)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(served(&server, account["fulldomain"].as_str().unwrap()), vec![value.clone()]);
    // Registering again needs --force.
    let out = client_register(&url, "a.example.test", storage_arg, &[]);
    assert!(!out.status.success() && text(&out).contains("--force"), "{}", text(&out));

    // A wrong key: 401, said plainly.
    let mut broken = json.clone();
    broken["a.example.test"]["password"] = serde_json::json!("x".repeat(40));
    std::fs::write(&storage, broken.to_string()).unwrap();
    let out = client_update(storage_arg, "a.example.test", &value, &[], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("refused the update") && text(&out).contains("401"), "{}", text(&out));
    // A value that is not a DNS-01 value is refused before sending.
    let out = client_update(storage_arg, "a.example.test", "short", &[], &[]);
    assert!(!out.status.success() && text(&out).contains("not a DNS-01 value"), "{}", text(&out));
    // A server that is not there.
    std::fs::write(&storage, json.to_string()).unwrap();
    let closed = format!("http://127.0.0.1:{}", free_port(&["127.0.0.1"]));
    let out = client_update(storage_arg, "a.example.test", &value, &["--server", &closed], &[]);
    assert!(!out.status.success() && text(&out).contains("cannot connect"), "{}", text(&out));
}

#[test]
fn client_speaks_https_to_an_api_with_a_private_ca() {
    let dir = TempDir::new();
    let (ca, cert, key) = make_tls_cert(&dir.0, "api");
    let port = free_port(&["127.0.0.1"]);
    let config = with_tls_cert(&server_config(&dir.0, &["127.0.0.1"], port, false), &key, &cert);
    let server = TestServer::start_with(&dir, &config);
    let storage = dir.join("client.json");
    let storage_arg = storage.to_str().unwrap();
    let url = format!("https://localhost:{}", server.api.port());
    // Not trusted by the system's store: refused, with a TLS message.
    let out = client_register(&url, "tls.example.test", storage_arg, &[]);
    assert!(!out.status.success() && text(&out).contains("TLS"), "{}", text(&out));
    // With --ca-file (or its environment variable) it works, by name and by IP address.
    let cert_arg = ca.to_str().unwrap();
    let out = client_register(&url, "tls.example.test", storage_arg, &["--ca-file", cert_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let value = txt_value(3);
    let ip_url = format!("https://127.0.0.1:{}", server.api.port());
    let env = [("ACME_DELEGATE_CLIENT_CA_FILE", cert_arg)];
    let out = client_update(storage_arg, "tls.example.test", &value, &["--server", &ip_url], &env);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&storage).unwrap()).unwrap();
    assert_eq!(served(&server, json["tls.example.test"]["fulldomain"].as_str().unwrap()), vec![value]);
}

/// Polls the server's log until it contains `text` (or the deadline passes).
fn wait_for_log(server: &TestServer, text: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if server.log_text().contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `GET /health` over HTTPS by the API's name, trusting only `root`; returns curl's output.
fn health_over_https(server: &TestServer, root: &Path) -> Output {
    let port = server.api.port();
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{DOMAIN}:{port}:127.0.0.1")])
        .arg(format!("https://{DOMAIN}:{port}/health"))
        .output()
        .expect("curl runs")
}

#[test]
fn the_api_gets_its_own_certificate_answering_the_dns_challenge_itself() {
    let dir = TempDir::new();
    // Pebble validates against our server directly, so our DNS port is chosen first.
    let dns_port = free_port(&["127.0.0.1"]);
    let pebble = Pebble::start(&dir.0, &format!("127.0.0.1:{dns_port}"));
    let cache = dir.join("api-certs");
    let config = base_config(&dir.0)
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{dns_port}\""));
    let acme = format!(
        "tls = \"letsencrypt\"\nacme_directory = \"{}\"\nacme_ca_file = \"{}\"\nacme_cache_dir = \"{}\"\n\
         notification_email = \"ops@example.org\"",
        pebble.directory,
        pebble.tls_ca.display(),
        cache.display()
    );
    let config = config.replace("tls = \"none\"", &acme);
    let server = TestServer::start_with(&dir, &config);
    assert!(
        wait_for_log(&server, "API certificate for auth.example.org obtained", Duration::from_secs(90)),
        "no certificate:\n{}\n{}",
        server.log_text(),
        pebble.log_text()
    );
    let root = pebble.root(&dir.0);
    let out = health_over_https(&server, &root);
    assert_eq!(text(&out), "200", "{out:?}");
    // The challenge is gone from the zone once the order is done.
    let challenge = server.ask(&format!("_acme-challenge.{DOMAIN}"), t::TXT);
    assert_eq!(challenge.rcode, rcode::NXDOMAIN);
    // Key and certificate are kept for the owner only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["auth.example.org.key", "auth.example.org.crt"] {
        let mode = std::fs::metadata(cache.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    drop(server);

    // A restart serves the cached certificate without asking the CA again.
    let server = TestServer::start_with(&dir, &config);
    assert!(wait_for_log(&server, "loaded from", Duration::from_secs(10)), "{}", server.log_text());
    assert_eq!(text(&health_over_https(&server, &root)), "200");
    assert!(!server.log_text().contains("obtaining a certificate"), "{}", server.log_text());
    // A wrong root is refused: the check can fail.
    let wrong = health_over_https(&server, &pebble.tls_ca);
    assert_ne!(text(&wrong), "200", "{wrong:?}");
    drop(server);

    // A key that does not belong to the cached certificate (a crash between the two writes)
    // is not served: a new certificate is ordered.
    let (_, _, other_key) = make_tls_cert(&dir.0, "other");
    std::fs::copy(other_key, cache.join("auth.example.org.key")).unwrap();
    let server = TestServer::start_with(&dir, &config);
    assert!(
        wait_for_log(&server, "API certificate for auth.example.org obtained", Duration::from_secs(90)),
        "{}",
        server.log_text()
    );
    assert!(server.log_text().contains("do not match"), "{}", server.log_text());
    assert_eq!(text(&health_over_https(&server, &root)), "200");
}

#[cfg(feature = "postgres")]
#[test]
fn the_api_certificate_challenge_is_answered_by_every_instance_on_the_database() {
    let url = crate::pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let on_postgres = |dir: &TempDir, dns_port: u16| {
        let sqlite = format!("connection = \"{}\"", dir.join("acme-delegate.db").display());
        base_config(&dir.0)
            .replace("engine = \"sqlite3\"", "engine = \"postgres\"")
            .replace(&sqlite, &format!("connection = \"{url}\""))
            .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{dns_port}\""))
    };
    // B only serves DNS, and it is the only server Pebble asks.
    let port_b = free_port(&["127.0.0.1"]);
    let b = TestServer::start_with(&dir_b, &on_postgres(&dir_b, port_b));
    let pebble = Pebble::start(&dir_a.0, &format!("127.0.0.1:{port_b}"));
    // A orders the certificate: its challenge must reach B through the database.
    let acme = format!(
        "tls = \"letsencrypt\"\nacme_directory = \"{}\"\nacme_ca_file = \"{}\"\nacme_cache_dir = \"{}\"",
        pebble.directory,
        pebble.tls_ca.display(),
        dir_a.join("api-certs").display()
    );
    let config_a = on_postgres(&dir_a, free_port(&["127.0.0.1"])).replace("tls = \"none\"", &acme);
    let a = TestServer::start_with(&dir_a, &config_a);
    assert!(
        wait_for_log(&a, "API certificate for auth.example.org obtained", Duration::from_secs(90)),
        "no certificate:\n{}\n{}\n{}",
        a.log_text(),
        b.log_text(),
        pebble.log_text()
    );
    assert_eq!(text(&health_over_https(&a, &pebble.root(&dir_a.0))), "200");
    // Withdrawn everywhere once the order is done.
    let gone = || b.ask(&format!("_acme-challenge.{DOMAIN}"), t::TXT).rcode == rcode::NXDOMAIN;
    assert!(crate::pg::eventually(Duration::from_secs(3), gone), "B still serves the challenge");
}
