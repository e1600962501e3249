//! `check-config` and `serve` agree on a file: unknown sections and keys are refused by both
//! (unless `--lenient` or `unknown_keys = "warn"`), an acme-dns `config.cfg` passes as written,
//! the files the configuration names must be there for the service's user; and the commands
//! say which configuration they run on.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::*;

/// Runs the binary with `args` in `dir`, without `ACME_DELEGATE_CONFIG` from the environment.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("ACME_DELEGATE_CONFIG")
        .env_remove("ACME_DELEGATE_USER")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// `check-config -c config.cfg` (plus `more` arguments) on `config` written into `dir`.
fn check(dir: &TempDir, config: &str, more: &[&str]) -> Output {
    std::fs::write(dir.join("config.cfg"), config).unwrap();
    let path = dir.join("config.cfg");
    let mut args = vec!["check-config", "-c", path.to_str().unwrap()];
    args.extend_from_slice(more);
    run(&dir.0, &args, &[])
}

/// Standard output and error of a finished command, for messages.
fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_mistyped_section_is_refused_by_check_config_and_serve_naming_the_ways_out() {
    let dir = TempDir::new();
    let config = format!("{}\n[dnsec]\nenabled = true\n", base_config(&dir.0));
    let out = check(&dir, &config, &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "check-config passed [dnsec]:\n{stdout}");
    for needle in
        ["unknown section [dnsec]", "did you mean [dnssec]?", "unknown_keys = \"warn\"", "--lenient"]
    {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
    // serve refuses the same file, with the same words.
    let log = TestServer::try_start(&dir, &config).err().expect("serve started with [dnsec]").join("\n");
    assert!(log.contains("unknown section [dnsec]") && log.contains("--lenient"), "{log}");

    // A mistyped key is named even when another error stops the file first.
    let both = with_keys(&base_config(&dir.0), "api", "hsts_enable = true")
        .replace("engine = \"sqlite3\"", "engine = \"mysql\"");
    let out = check(&dir, &format!("{both}\n[dnsec]\nenabled = true\n"), &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    for needle in ["database.engine", "unknown key api.hsts_enable", "api.hsts_enabled?", "[dnsec]"] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
}

#[test]
fn lenient_and_unknown_keys_warn_pass_with_a_warning() {
    let dir = TempDir::new();
    let config =
        format!("{}\n[dnsec]\nenabled = true\n", with_keys(&base_config(&dir.0), "general", "colour = 1"));
    for lenient in [["--lenient", "check-config"], ["check-config", "--lenient"]] {
        let path = dir.join("config.cfg");
        std::fs::write(&path, &config).unwrap();
        let out = run(&dir.0, &[lenient[0], lenient[1], "-c", path.to_str().unwrap()], &[]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{lenient:?}: {stderr}");
        assert!(stdout.contains("warning: unknown section [dnsec]"), "{stdout}");
        assert!(stdout.contains("warning: unknown key general.colour"), "{stdout}");
    }
    let warn = with_keys(&config, "general", "unknown_keys = \"warn\"");
    let out = check(&dir, &warn, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("warning: unknown section [dnsec]"), "{stdout}");
    // serve starts on it, and logs the warning.
    let server = TestServer::start_with(&dir, &warn);
    assert!(server.log_text().contains("unknown section [dnsec]"), "{}", server.log_text());
}

#[test]
fn an_acme_dns_config_passes_strict_mode_as_written() {
    // Every key of acme-dns v1.1's and v2's config.cfg, as they ship them; only the paths point
    // into the test's directory (its database's directory must exist).
    let dir = TempDir::new();
    let db = dir.join("acme-dns.db");
    let config = format!(
        r#"[general]
listen = "127.0.0.1:0"
protocol = "both"
domain = "auth.example.org"
nsname = "auth.example.org"
nsadmin = "admin.example.org"
records = [
    "auth.example.org. A 198.51.100.1",
    "auth.example.org. NS auth.example.org.",
]
debug = false

[database]
engine = "sqlite3"
connection = "{db}"

[api]
ip = "127.0.0.1"
disable_registration = false
port = "0"
tls = "none"
tls_cert_privkey = "/etc/tls/example.org/privkey.pem"
tls_cert_fullchain = "/etc/tls/example.org/fullchain.pem"
acme_cache_dir = "api-certs"
notification_email = ""
corsorigins = [
    "*"
]
use_header = false
header_name = "X-Forwarded-For"
api_domain = ""
autocert_port = "80"
hsts_enabled = false
hsts_max_age = 31536000
hsts_include_subdomains = false
hsts_preload = false

[logconfig]
loglevel = "debug"
logtype = "stdout"
logfile = "./acme-dns.log"
logformat = "text"
"#,
        db = db.display()
    );
    let out = check(&dir, &config, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("warning"), "{stdout}");
    TestServer::start_with(&dir, &config);
    // A development version's allow_registration_from is known too: accepted, and the warning
    // says that it is not applied and what is.
    let config = config
        .replace("use_header = false", "use_header = false\nallow_registration_from = [\"10.0.0.0/8\"]");
    let out = check(&dir, &config, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("warning: api.allow_registration_from is not supported"), "{stdout}");
    assert!(!stdout.contains("unknown"), "{stdout}");
}

#[test]
fn files_the_configuration_names_must_be_there_for_the_service_user() {
    let dir = TempDir::new();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let config = with_tls_cert(&base_config(&dir.0), &key, &cert);
    // Missing: check-config fails, as serve would, naming the key and the file.
    let out = check(&dir, &config, &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "check-config passed a missing certificate:\n{stdout}");
    assert!(
        stderr.contains(&format!("api.tls_cert_fullchain: {} does not exist", cert.display())),
        "{stderr}"
    );
    // Present and readable: it passes, and the summary names every section in force.
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success());
    let out = check(&dir, &config, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for section in
        ["zone ", "DNS on ", "API on https://", "TLS: certificate", "store: ", "logs: ", "DNSSEC: off"]
    {
        assert!(stdout.contains(section), "{section} missing from:\n{stdout}");
    }
    for section in ["transfers: off", "metrics: off", "privacy: "] {
        assert!(stdout.contains(section), "{section} missing from:\n{stdout}");
    }
    // A key that is not a certificate's stops check-config as it stops serve.
    std::fs::write(&cert, "not a certificate").unwrap();
    let out = check(&dir, &config, &[]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("api.tls_cert_fullchain"), "{}", text(&out).1);
    // As root, the files are checked as the service's user: a key only root may read fails.
    if is_root() && Command::new("id").arg("nobody").output().is_ok_and(|o| o.status.success()) {
        made_readable_only_by_root(&dir, &key);
        let path = dir.join("config.cfg");
        let out =
            run(&dir.0, &["check-config", "-c", path.to_str().unwrap()], &[("ACME_DELEGATE_USER", "nobody")]);
        let stderr = text(&out).1;
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("{} is not readable by user nobody", key.display())), "{stderr}");
    }
}

/// Whether the tests run as root.
fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes `dir` open to everyone and `file` in it readable by root only.
fn made_readable_only_by_root(dir: &TempDir, file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn store_commands_on_the_demo_configuration_say_so() {
    let dir = TempDir::new();
    let out = run(&dir.0, &["account", "list"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("0 accounts"), "{stdout}");
    let database = std::fs::canonicalize(&dir.0).unwrap().join("acme-delegate.db");
    assert!(stderr.contains("using the demo configuration"), "{stderr}");
    assert!(stderr.contains(&database.display().to_string()), "{database:?} not in {stderr}");
    // With -c, nothing of the kind.
    std::fs::write(dir.join("config.cfg"), base_config(&dir.0)).unwrap();
    let path = dir.join("config.cfg");
    let out = run(&dir.0, &["account", "list", "-c", path.to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert!(!text(&out).1.contains("demo"), "{}", text(&out).1);
}

#[test]
fn the_first_log_line_names_version_commit_and_configuration() {
    let (server, dir) = TestServer::start();
    let first = server.log.lock().unwrap().first().cloned().unwrap_or_default();
    assert!(first.contains(&format!("acme-delegate {}", env!("CARGO_PKG_VERSION"))), "{first}");
    if let Some(commit) = option_env!("ACME_DELEGATE_COMMIT") {
        assert!(first.contains(&format!("(git {commit})")), "{first}");
    }
    assert!(first.contains(&format!("configuration {}", dir.join("config.cfg").display())), "{first}");
}

#[test]
fn an_acme_dns_database_is_refused_with_the_complete_import_command() {
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
    let command = format!(
        "acme-delegate import-acme-dns {} -c {}",
        dir.join("acme-delegate.db").display(),
        dir.join("config.cfg").display()
    );
    let log = TestServer::try_start(&dir, &base_config(&dir.0)).err().expect("refused").join("\n");
    assert!(log.contains(&command), "{command} not in:\n{log}");
    let path = dir.join("config.cfg");
    let out = run(&dir.0, &["account", "list", "-c", path.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains(&command), "{}", text(&out).1);
}
