//! `acme-delegate client` as a domain owner meets it: an API over HTTPS with a self-signed
//! certificate (made by openssl, as curl users make theirs), the credentials of a user who is
//! not root (the client really runs as `nobody`, through util-linux's `setpriv`), and `client
//! check` through a real resolver (unbound) that holds a record where the CNAME must go, or
//! drops the optional `_validation-persist` query.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::e2e::{client, client_check, client_register, client_update, register, server_config, text};
use crate::harness::*;

/// The user ID the unprivileged client runs as (`nobody` on Debian).
const NOBODY: u32 = 65534;
/// libfaketime's multi-threaded library, as Debian installs it.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE), for `subject_alt_name`,
/// valid two days from now; returns (certificate, key).
fn self_signed(dir: &Path, name: &str, subject_alt_name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-addext"])
        .arg(format!("subjectAltName={subject_alt_name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let x509 = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "basicConstraints", "-in"])
        .arg(&cert)
        .output();
    assert!(
        String::from_utf8_lossy(&x509.unwrap().stdout).contains("CA:TRUE"),
        "openssl makes a CA certificate"
    );
    (cert, key)
}

#[test]
fn client_trusts_a_self_signed_certificate_given_with_ca_file() {
    let dir = TempDir::new();
    let (cert, key) = self_signed(&dir.0, "api", "IP:127.0.0.1");
    let port = free_port(&["127.0.0.1"]);
    let config = with_tls_cert(&server_config(&dir.0, &["127.0.0.1"], port, false), &key, &cert);
    let server = TestServer::start_with(&dir, &config);
    let storage = dir.join("client.json");
    let storage_arg = storage.to_str().unwrap();
    let url = format!("https://127.0.0.1:{}", server.api.port());
    let advice = "is not trusted: pass --ca-file FILE with its CA or the certificate itself";

    // Not trusted without --ca-file: the message says what to do.
    let out = client_register(&url, "self.example.test", storage_arg, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "TLS with 127.0.0.1:{}: the server's certificate {advice}",
            server.api.port()
        )),
        "{}",
        text(&out)
    );
    assert!(!storage.exists());

    // The certificate itself in --ca-file: pinned, accepted (register, then update through the
    // environment variable).
    let cert_arg = cert.to_str().unwrap();
    let out = client_register(&url, "self.example.test", storage_arg, &["--ca-file", cert_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let value = txt_value(11);
    let env = [("ACME_DELEGATE_CLIENT_CA_FILE", cert_arg)];
    let out = client_update(storage_arg, "self.example.test", &value, &[], &env);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&storage).unwrap()).unwrap();
    let fulldomain = json["self.example.test"]["fulldomain"].as_str().unwrap();
    assert_eq!(server.ask(fulldomain, t::TXT).txts(), vec![value.clone()]);

    // Another self-signed certificate in the file is no key to this server.
    let (other, _) = self_signed(&dir.0, "other", "IP:127.0.0.1");
    let out =
        client_update(storage_arg, "self.example.test", &value, &["--ca-file", other.to_str().unwrap()], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(advice) && text(&out).contains(other.to_str().unwrap()), "{}", text(&out));

    // Pinned, but the URL names a host the certificate does not (it names only 127.0.0.1).
    let by_name = format!("https://localhost:{}", server.api.port());
    let out = client_update(
        storage_arg,
        "self.example.test",
        &value,
        &["--server", &by_name, "--ca-file", cert_arg],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("is not valid for the host in the URL"), "{}", text(&out));

    // Pinned, but expired: the client three days ahead (libfaketime) refuses it.
    assert!(Path::new(FAKETIME_LIB).exists(), "{FAKETIME_LIB} is missing: apt-get install faketime");
    let later = [("LD_PRELOAD", FAKETIME_LIB), ("FAKETIME", "+3d"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    let out = client_update(storage_arg, "self.example.test", &value, &["--ca-file", cert_arg], &later);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("has expired"), "{}", text(&out));
}

/// Runs `command` with stdout and stderr captured; killed after 60 s.
fn output_within(command: &mut Command) -> Output {
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runs");
    let pipe = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let status = wait_or_kill(&mut child, Duration::from_secs(60)).expect("done within 60 s");
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// `acme-delegate client ARGS` run as `nobody` with this `HOME` and `XDG_CONFIG_HOME`.
fn client_as_nobody(args: &[&str], home: &Path, xdg_config_home: Option<&Path>) -> Output {
    let mut command = Command::new("setpriv");
    command
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(binary())
        .arg("client")
        .args(args)
        .env_remove("ACME_DELEGATE_CLIENT_STORAGE")
        .env("HOME", home);
    match xdg_config_home {
        Some(dir) => command.env("XDG_CONFIG_HOME", dir),
        None => command.env_remove("XDG_CONFIG_HOME"),
    };
    output_within(&mut command)
}

/// Asserts that `file` exists, belongs to `nobody` and is private (0600 in a 0700 directory).
fn assert_private_to_nobody(file: &Path) {
    let meta = std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (NOBODY, 0o600), "{}", file.display());
    let dir = std::fs::metadata(file.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.permissions().mode() & 0o777), (NOBODY, 0o700));
}

#[test]
fn a_user_who_is_not_root_keeps_the_credentials_in_their_config_directory() {
    let dir = TempDir::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port(&["127.0.0.1"]);
    let server = TestServer::start_with(&dir, &server_config(&dir.0, &["127.0.0.1"], port, false));
    let url = format!("http://{}", server.api);
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();

    // With XDG_CONFIG_HOME set: the file goes below it.
    let xdg = home.join("cfg");
    let out =
        client_as_nobody(&["register", "--server", &url, "--domain", "xdg.example.test"], &home, Some(&xdg));
    assert!(out.status.success(), "{}", text(&out));
    let file = xdg.join("acme-delegate/client.json");
    assert!(text(&out).contains(&format!("credentials saved in {}", file.display())), "{}", text(&out));
    assert_private_to_nobody(&file);

    // Without it: ~/.config, and the next command finds the account there by itself.
    let out = client_as_nobody(&["register", "--server", &url, "--domain", "home.example.test"], &home, None);
    assert!(out.status.success(), "{}", text(&out));
    let file = home.join(".config/acme-delegate/client.json");
    assert_private_to_nobody(&file);
    let value = txt_value(12);
    let out = client_as_nobody(&["update", "--domain", "home.example.test", "--txt", &value], &home, None);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let fulldomain = json["home.example.test"]["fulldomain"].as_str().unwrap();
    assert_eq!(server.ask(fulldomain, t::TXT).txts(), vec![value]);

    // --help says where the default is, for root and for anyone else.
    let help = client(&["register", "--help"], &[]);
    let help = text(&help);
    assert!(
        help.contains("/etc/acme-delegate/client.json")
            && help.contains("$XDG_CONFIG_HOME/acme-delegate/client.json"),
        "{help}"
    );
}

/// unbound as the domain owner's resolver: an `example.test` zone with `records` (zone-file
/// lines), our zone by a stub, and the extra server options `more`.
fn resolver(dir: &Path, dns_port: u16, records: &[String], more: &str) -> Unbound {
    let mut zone = String::from(
        "$ORIGIN example.test.\n\
         @ 3600 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 5\n\
         @ 3600 IN NS ns.example.test.\n\
         ns 3600 IN A 127.0.0.1\n",
    );
    for record in records {
        zone.push_str(record);
        zone.push('\n');
    }
    std::fs::write(dir.join("example.test.zone"), zone).unwrap();
    let options = format!(
        r#"    qname-minimisation: no
    module-config: "iterator"
    # unbound answers .test itself (RFC 6761) unless told not to.
    local-zone: "test." nodefault
{more}auth-zone:
    name: "example.test"
    zonefile: "{dir}/example.test.zone"
    for-downstream: no
    for-upstream: yes
    fallback-enabled: no
"#,
        dir = dir.display(),
    );
    Unbound::start(dir, dns_port, &options, ("ns.example.test", t::A))
}

#[test]
fn check_names_the_record_where_the_cname_must_go() {
    let dir = TempDir::new();
    let port = free_port(&["127.0.0.1"]);
    let server = TestServer::start_with(&dir, &server_config(&dir.0, &["127.0.0.1"], port, false));
    let storage = dir.join("client.json");
    register(&server, &storage, "blocked.example.test");
    // A TXT left from a manual DNS-01, where the CNAME must go.
    let leftover = "_acme-challenge.blocked.example.test. 60 IN TXT \"left-from-a-manual-run\"".to_owned();
    let resolver = resolver(&dir.0, port, &[leftover], "");
    let ns1 = format!("127.0.0.1:{port}");
    let out = client_check(
        storage.to_str().unwrap(),
        "blocked.example.test",
        &resolver.addr(),
        &["--nameserver", &ns1],
    );
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(
            "a TXT record exists at _acme-challenge.blocked.example.test, where the CNAME must go: delete it"
        ),
        "{said}"
    );
    assert!(said.contains("_acme-challenge.blocked.example.test. TXT \"left-from-a-manual-run\""), "{said}");
}

#[test]
fn an_unanswered_persist_lookup_is_a_warning_not_a_failure() {
    let dir = TempDir::new();
    let port = free_port(&["127.0.0.1"]);
    let server = TestServer::start_with(&dir, &server_config(&dir.0, &["127.0.0.1"], port, false));
    let storage = dir.join("client.json");
    let target = register(&server, &storage, "quiet.example.test");
    // The delegation is right; the resolver drops every query for _validation-persist.
    let cname = format!("_acme-challenge.quiet.example.test. 60 IN CNAME {target}");
    let drop = "    local-zone: \"_validation-persist.quiet.example.test.\" deny\n";
    let resolver = resolver(&dir.0, port, &[cname], drop);
    let ns1 = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = client_check(
        storage.to_str().unwrap(),
        "quiet.example.test",
        &resolver.addr(),
        &["--nameserver", &ns1, "--timeout", "1"],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ok: the stored fulldomain") && said.contains("agree"), "{said}");
    assert!(said.contains("_validation-persist.quiet.example.test.  WARNING: not checked"), "{said}");
    assert!(said.contains("no answer"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}
