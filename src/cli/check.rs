//! `check-config`: what `serve` would refuse in the configuration, said before it runs.
//!
//! Design note: the file is read by the same reader as `serve` (an unknown section or key is
//! refused, or warned about with `--lenient` or `unknown_keys = "warn"`, the same way in both),
//! so a file that passes here is one the server starts with. Then the files the configuration
//! names are checked as the server will use them: those it reads (the API's certificate and
//! key, parsed too as the start parses them; the ACME client's CA file) must exist and be
//! readable, and those it writes (the log file, the SQLite database, the ACME cache, the
//! pseudonyms' key when it is yet to be made) must be writable or creatable in their
//! directory. Root reads everything, so when this runs as root the checks are made as the user
//! the packaged unit runs as (`acme-delegate`, or `$ACME_DELEGATE_USER` for a unit changed to
//! another): a child process takes on that user's ids and asks the kernel (`sys::access`), which
//! counts mode bits, groups, ACLs and every directory on the way. As the unit's `ExecStartPre`
//! it runs as that user already, inside the unit's sandbox, and checks as itself. Last comes a
//! summary of every section in force, so an operator sees what a typo would have left off.

use std::path::{Path, PathBuf};

use crate::config::{Config, Engine, LogTarget, Tls};
use crate::privacy::pseudonym::SubdomainPolicy;
use crate::sys::access::{self, READ, SEARCH, UserIds, WRITE};

/// The user the packaged unit runs as (`User=` in `packaging/acme-delegate.service`).
pub(super) const SERVICE_USER: &str = "acme-delegate";

/// How the server uses a path the configuration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    /// Reads it: it must exist and be readable.
    Read,
    /// Reads it if it exists, else creates it (the pseudonyms' key).
    ReadOrCreate,
    /// Reads and writes it, or creates it (the log file, the SQLite database).
    Write,
    /// A directory it keeps files in, made if missing (the ACME cache).
    Directory,
}

/// A path the configuration names, by the key that names it.
#[derive(Debug)]
struct Named {
    /// `section.key`.
    key: &'static str,
    /// The path as written.
    path: PathBuf,
    /// What the server does with it.
    usage: Use,
}

/// Every path the configuration makes the server read or write.
fn named_paths(config: &Config) -> Vec<Named> {
    let mut named = Vec::new();
    let mut add = |key, path: &Path, usage| named.push(Named { key, path: path.to_owned(), usage });
    match &config.api.tls {
        Tls::None => {}
        Tls::Cert { privkey, fullchain } => {
            add("api.tls_cert_fullchain", fullchain, Use::Read);
            add("api.tls_cert_privkey", privkey, Use::Read);
        }
        Tls::Acme { cache_dir, ca_file, .. } => {
            add("api.acme_cache_dir", cache_dir, Use::Directory);
            if let Some(ca_file) = ca_file {
                add("api.acme_ca_file", ca_file, Use::Read);
            }
        }
    }
    if let Some(tls) = &config.transfer_tls {
        add("transfer.tls_cert_fullchain", &tls.fullchain, Use::Read);
        add("transfer.tls_cert_privkey", &tls.privkey, Use::Read);
        if let Some(ca) = &tls.client_ca {
            add("transfer.tls_client_ca", ca, Use::Read);
        }
    }
    if let SubdomainPolicy::Pseudonym { key_file: Some(path) } = &config.privacy.log_subdomain {
        add("privacy.log_subdomain_key", path, Use::ReadOrCreate);
    }
    if let LogTarget::File(path) = &config.log.target {
        add("logconfig.logfile", path, Use::Write);
    }
    let connection = &config.database.connection;
    // SQLite's in-memory and URI forms name no plain file to check.
    if config.database.engine == Engine::Sqlite
        && !connection.starts_with(':')
        && !connection.starts_with("file:")
    {
        add("database.connection", Path::new(connection), Use::Write);
    }
    named
}

/// The directory a path is made in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Who the files are checked as: the service's user when this runs as root and that user
/// exists, else this process; with the words that say so.
fn checker() -> (Option<UserIds>, String) {
    if !access::is_root() {
        return (None, "as this process's user".to_owned());
    }
    let name = std::env::var("ACME_DELEGATE_USER").unwrap_or_else(|_| SERVICE_USER.to_owned());
    match access::lookup_user(&name) {
        Ok(Some(user)) => (Some(user), format!("as user {name}, whom the service runs as")),
        Ok(None) => (None, format!("as root (there is no user {name} here to check as)")),
        Err(error) => (None, format!("as root (user {name} could not be looked up: {error})")),
    }
}

/// What is wrong with one path, from the kernel's answers for it and for its directory.
fn problem(
    named: &Named,
    who: &str,
    itself: &std::io::Result<()>,
    directory: &std::io::Result<()>,
) -> Option<String> {
    use std::io::ErrorKind::{NotFound, PermissionDenied, ReadOnlyFilesystem};
    let path = named.path.display();
    let dir = directory_of(&named.path).display();
    let missing = matches!(itself, Err(e) if e.kind() == NotFound);
    let reason = match (named.usage, itself, directory) {
        (_, Ok(()), _) => return None,
        (Use::Read, Err(e), _) if e.kind() == NotFound => "does not exist".to_owned(),
        (_, Err(_), Ok(())) if missing => return None,
        (_, Err(_), Err(e)) if missing && e.kind() == NotFound => {
            format!("cannot be made: its directory {dir} does not exist")
        }
        (_, Err(_), Err(e)) if missing && e.kind() == ReadOnlyFilesystem => {
            format!("cannot be made: {dir} is on a read-only file system")
        }
        (_, Err(_), Err(e)) if missing && e.kind() == PermissionDenied => {
            format!("does not exist and cannot be made {who}, who may not write in {dir}")
        }
        (_, Err(_), Err(e)) if missing => format!("cannot be made {who}: {dir}: {e}"),
        (Use::Read | Use::ReadOrCreate, Err(e), _) if e.kind() == PermissionDenied => {
            format!("is not readable {who}")
        }
        (_, Err(e), _) if e.kind() == PermissionDenied => format!("is not writable {who}"),
        (_, Err(e), _) => format!("{e}"),
    };
    Some(format!("{}: {path} {reason}", named.key))
}

/// Checks every named path as the service will use it; the problems found, and who the
/// checks were made as.
fn check_paths(config: &Config) -> (Vec<String>, String) {
    let named = named_paths(config);
    let (user, as_whom) = checker();
    let who = user.as_ref().map_or_else(|| "by this process".to_owned(), |u| format!("by user {}", u.name));
    let mut checks = Vec::new();
    for n in &named {
        let mode = match n.usage {
            Use::Read | Use::ReadOrCreate => READ,
            Use::Write => READ | WRITE,
            Use::Directory => READ | WRITE | SEARCH,
        };
        checks.push((n.path.as_path(), mode));
        checks.push((directory_of(&n.path), WRITE | SEARCH));
    }
    let answers = match access::access_as(user.as_ref(), &checks) {
        Ok(answers) => answers,
        Err(error) => return (vec![format!("the files could not be checked {who}: {error}")], as_whom),
    };
    let mut problems: Vec<String> = named
        .iter()
        .zip(answers.chunks_exact(2))
        .filter_map(|(n, pair)| problem(n, &who, &pair[0], &pair[1]))
        .collect();
    // The certificate is also read as the start reads it: a bad PEM or a key that does not fit
    // stops `serve`, so it stops this too.
    if let Tls::Cert { privkey, fullchain } = &config.api.tls
        && problems.iter().all(|p| !p.starts_with("api.tls_cert_"))
        && let Err(error) = crate::daemon::reload::check_cert_files("api", fullchain, privkey)
    {
        problems.push(error);
    }
    if let Some(tls) = &config.transfer_tls
        && problems.iter().all(|p| !p.starts_with("transfer.tls_"))
        && let Err(error) = crate::daemon::xot::check_files(tls)
    {
        problems.push(error);
    }
    (problems, format!("{} files named, checked {as_whom}", named.len()))
}

/// A number of seconds as a person would say it.
fn span(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The summary: one line per section in force, or saying it is off.
fn summary(config: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    let zone = &config.dns.zone;
    lines.push(format!(
        "zone {} with {} static records (SOA serial follows changes)",
        zone.apex,
        zone.records.len()
    ));
    let transports = config.dns.transports;
    let over = match (transports.udp, transports.tcp) {
        (true, true) => "UDP and TCP",
        (true, false) => "UDP",
        _ => "TCP",
    };
    for addr in &config.dns.listen {
        lines.push(format!("DNS on {addr} ({over})"));
    }
    let scheme = if config.api.tls == Tls::None { "http" } else { "https" };
    lines.push(format!(
        "API on {scheme}://{}, registration {}",
        config.api.listen,
        config.api.registration.name()
    ));
    lines.push(match &config.api.tls {
        Tls::None => "TLS: off (plain HTTP)".to_owned(),
        Tls::Cert { privkey, fullchain } => {
            format!("TLS: certificate {}, key {}", fullchain.display(), privkey.display())
        }
        Tls::Acme { directory, cache_dir, .. } => {
            format!("TLS: by ACME from {directory}, kept in {}", cache_dir.display())
        }
    });
    let engine = format!("{:?}", config.database.engine).to_ascii_lowercase();
    lines.push(format!("store: {engine} {}", crate::store::redact(&config.database.connection)));
    let log = &config.log;
    let target = match &log.target {
        LogTarget::Stdout => "stdout".to_owned(),
        LogTarget::Stderr => "stderr".to_owned(),
        LogTarget::File(path) => format!("file {}", path.display()),
    };
    let format = if log.json { "JSON" } else { "text" };
    lines.push(format!("logs: {} and above, {format}, to {target}", log.level.as_str().to_ascii_lowercase()));
    lines.push(match &config.dnssec {
        None => "DNSSEC: off".to_owned(),
        Some(d) => format!(
            "DNSSEC: on, {}, signatures valid {}, renewed {} before they expire; DNSKEY TTL {}, \
             CDS {:?}, rollovers {} and wait for {}",
            d.algorithm.name(),
            span(d.validity.into()),
            span(d.refresh.into()),
            span(d.policy.dnskey_ttl.into()),
            d.policy.cds,
            match d.policy.key_lifetime {
                0 => "only on command".to_owned(),
                age => format!("also at a key age of {}", span(age)),
            },
            if d.policy.parent.is_empty() {
                "`dnssec ds-seen`".to_owned()
            } else {
                format!("{} parent server(s)", d.policy.parent.len())
            }
        ),
    });
    lines.push(match &config.transfer {
        None => "transfers: off (AXFR and IXFR refused, no NOTIFY)".to_owned(),
        Some(t) => format!(
            "transfers: on, {} networks may transfer, {} secondaries notified, {}{}",
            t.allow.networks().len(),
            t.notify.len(),
            t.key.as_ref().map_or("no TSIG key".to_owned(), |k| format!("TSIG key {}", k.name())),
            t.wait.map_or(String::new(), |w| format!(", updates wait up to {} for them", span(w.as_secs())))
        ),
    });
    if let Some(tls) = &config.transfer_tls {
        let listen: Vec<String> = tls.listen.iter().map(ToString::to_string).collect();
        lines.push(format!(
            "transfers over TLS (XoT) on {}, certificate {}{}; over clear TCP: {}",
            listen.join(", "),
            tls.fullchain.display(),
            tls.client_ca
                .as_ref()
                .map_or(String::new(), |ca| format!(", client certificates from {}", ca.display())),
            if tls.clear_transfers { "served" } else { "refused" }
        ));
    }
    lines.push(match &config.metrics {
        None => "metrics: off".to_owned(),
        Some(m) => format!("metrics: on http://{}/metrics", m.listen),
    });
    let p = &config.privacy;
    let subdomains = match &p.log_subdomain {
        SubdomainPolicy::Full => "in full".to_owned(),
        SubdomainPolicy::Pseudonym { key_file: Some(path) } => {
            format!("as pseudonyms (key {})", path.display())
        }
        SubdomainPolicy::Pseudonym { key_file: None } => {
            "as pseudonyms (a new key at every start)".to_owned()
        }
    };
    lines.push(format!(
        "privacy: client addresses {}, subdomains in logs {subdomains}, audit kept {}, TXT values kept {}, \
         unused accounts {}",
        p.client_ip.name(),
        span(p.audit_retention),
        span(p.txt_retention),
        p.account_expiry.map_or("kept".to_owned(), |e| format!("deleted after {}", span(e)))
    ));
    lines
}

/// Runs `check-config` on a configuration already read (and so already free of unknown keys,
/// or with them as warnings).
pub(super) fn run(config: &Config) -> Result<(), String> {
    for warning in &config.warnings {
        println!("warning: {warning}");
    }
    let origin = config
        .source
        .as_ref()
        .map_or("the demo configuration (no -c FILE)".into(), |p| p.display().to_string());
    let (problems, checked) = check_paths(config);
    if !problems.is_empty() {
        return Err(format!("configuration error: {origin}:\n  {}", problems.join("\n  ")));
    }
    println!("{origin}: OK");
    for line in summary(config).iter().chain([&checked]) {
        println!("  {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The directories the packaged unit may write in: its `StateDirectory=` and
    /// `LogsDirectory=` (the rest of the file system is read-only there, `ProtectSystem=strict`).
    fn unit_writable() -> Vec<String> {
        let unit = include_str!("../../packaging/acme-delegate.service");
        let dir = |key: &str, base: &str| {
            unit.lines().find_map(|l| l.strip_prefix(key)).map(|name| format!("{base}/{}/", name.trim()))
        };
        [dir("StateDirectory=", "/var/lib"), dir("LogsDirectory=", "/var/log")]
            .into_iter()
            .flatten()
            .collect()
    }

    #[test]
    fn the_sample_writes_only_where_the_packaged_unit_may() {
        let writable = unit_writable();
        assert_eq!(writable, ["/var/lib/acme-delegate/", "/var/log/acme-delegate/"]);
        let sample = include_str!("../../config.sample.cfg");
        // Keys whose path the server writes, set or shown commented out in the sample.
        for key in ["logfile", "connection", "log_subdomain_key"] {
            let paths: Vec<&str> = sample
                .lines()
                .map(|l| l.trim_start_matches('#').trim())
                .filter_map(|l| l.strip_prefix(key)?.trim().strip_prefix('=')?.trim().strip_prefix("\"/"))
                .collect();
            assert!(!paths.is_empty(), "{key} with an absolute path is not in the sample");
            for path in paths {
                let path = format!("/{}", path.trim_end_matches('"'));
                assert!(
                    writable.iter().any(|dir| path.starts_with(dir)),
                    "{key} = {path} is not writable under the unit"
                );
            }
        }
    }
}
