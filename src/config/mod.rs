//! Configuration: acme-dns's `config.cfg` read unchanged, plus our own keys in the same file.
//!
//! Design note: the file is parsed once, at start, into an immutable [`Config`] of ready-made
//! values (socket addresses, networks, durations); nothing downstream re-parses text. Keys are
//! matched case-insensitively, as acme-dns's TOML library does. Every key acme-dns reads is
//! known, so an unknown section or key is most likely a typo (`[dnsec]` would leave DNSSEC off
//! without a word): it is refused by default, naming the likely meant name and both ways to
//! accept it (`[general] unknown_keys = "warn"`, or `--lenient` on the command line), which turn
//! it into a warning for files that carry keys meant for another program. Unknown names are
//! listed even beside another error of the file, since a typo is often its cause. A missing
//! mandatory key or an invalid value stops the start, with a [`ConfigError`] that names the key
//! and says what is wrong.
//!
//! Two layers: `raw` mirrors the file (one serde struct per section, one field per key: the
//! only list of known keys), `build` turns each raw section into the validated types defined
//! here, with the defaults named in `defaults`. Our additions live in `[dns]`,
//! `[dnssec]`, `[privacy]`, a few extra `[api]` keys and `[general] max_clock_skew`, all optional, with defaults documented
//! in `config.sample.cfg` (a test keeps its keys and the reader's the same). Without any file
//! the server runs on [`EMBEDDED_DEFAULT`], a demo set-up on loopback ports for trying it out.

mod build;
pub mod defaults;
pub(crate) mod docs;
mod metrics;
mod raw;
mod transfer;
mod xot;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cidr::Cidr;
use crate::dns::dnssec::Algorithm;
use crate::dns::server::{ServerOptions, Transports};
use crate::dns::zone::ZoneSettings;
use crate::privacy::{Privacy, Secret};
pub(crate) use metrics::Metrics;
pub(crate) use xot::TransferTls;

/// The configuration used when no file is given: SQLite in the working directory, DNS and API
/// on unprivileged loopback ports, and a sample zone.
pub(crate) const EMBEDDED_DEFAULT: &str = include_str!("embedded.cfg");

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML. Only the parser's message, the position and the character
    /// there are given, never the line: `-c` may name the wrong file (a password file, a key),
    /// and the message goes to the log.
    #[error("{path}: not valid TOML at line {line}, column {column} ({near}): {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The line of the error, from 1.
        line: usize,
        /// The column (in characters) of the error, from 1.
        column: usize,
        /// What the parser stopped at, quoted and cut short (see [`quoted`]).
        near: String,
        /// The parser's message, without the excerpt of the file.
        message: String,
    },
    /// A key is missing or has a bad value.
    #[error("{key}: {reason}")]
    Key {
        /// `section.key`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Sections or keys the reader does not know: refused (`unknown_keys = "error"`, the
    /// default), or named beside another error of the file.
    #[error("{}", unknown_report(.origin, .names, *.refused, .error.as_deref()))]
    Unknown {
        /// The file.
        origin: String,
        /// Each as `section [name]` or `key section.name`, and the name likely meant, if any.
        names: Vec<(String, Option<String>)>,
        /// Whether they are refused (else they are only warned about, beside `error`).
        refused: bool,
        /// Another error of the file, shown first.
        error: Option<Box<ConfigError>>,
    },
}

/// The ways out of a refused unknown name, as every such error names them.
pub(crate) const UNKNOWN_KEYS_HINT: &str = "unknown sections and keys are refused, so that a typo cannot leave a \
     setting silently off: correct the name; or, to keep keys meant for another program, set \
     unknown_keys = \"warn\" in [general], or run with --lenient (they are then warned about and ignored)";

/// The text of [`ConfigError::Unknown`]: the other error first, one line per unknown name,
/// then, when they are refused, the ways out.
fn unknown_report(
    origin: &str,
    names: &[(String, Option<String>)],
    refused: bool,
    error: Option<&ConfigError>,
) -> String {
    let mut lines: Vec<String> = error.map(ToString::to_string).into_iter().collect();
    for (name, meant) in names {
        let meant = meant.as_ref().map_or(String::new(), |m| format!(" (did you mean {m}?)"));
        lines.push(if refused {
            format!("unknown {name} in {origin}{meant}")
        } else {
            format!("warning: unknown {name} in {origin} is ignored{meant}")
        });
    }
    if refused {
        lines.push(UNKNOWN_KEYS_HINT.to_owned());
    }
    lines.join("\n")
}

/// Edits (insertions, deletions, substitutions) between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The known name closest to `name` among `known`, when it is a likely typo of it.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if name.chars().count() > 5 { 2 } else { 1 };
    known.map(|k| (edit_distance(name, k), k)).filter(|(d, _)| *d <= limit).min().map(|(_, k)| k)
}

/// The name likely meant by an unknown one as [`raw::File::parse`] gives it (`section [x]`,
/// `key s.k`): a known section or key one or two edits away, or the section a known key
/// belongs to.
fn meant(name: &str) -> Option<String> {
    let sections = raw::File::SECTIONS;
    if let Some(section) = name.strip_prefix("section [").and_then(|n| n.strip_suffix(']')) {
        closest(section, sections.iter().map(|(s, _)| *s)).map(|s| format!("[{s}]"))
    } else if let Some((section, key)) = name.strip_prefix("key ").and_then(|n| n.split_once('.')) {
        let keys = sections.iter().find(|(s, _)| *s == section).map_or(&[][..], |(_, keys)| *keys);
        closest(key, keys.iter().copied()).map(|k| format!("{section}.{k}")).or_else(|| {
            let home = sections.iter().find(|(_, keys)| keys.contains(&key));
            home.map(|(s, _)| format!("{key} in [{s}]"))
        })
    } else {
        None
    }
}

/// Characters of a value quoted in an error message at most.
const QUOTE_MAX: usize = 40;

/// A value as quoted in an error message: in quotes, escaped, and cut after [`QUOTE_MAX`]
/// characters, so that an error never carries more than a token of what the file holds.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// Shorthand for a key error.
fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key { key: key.to_owned(), reason: reason.into() }
}

/// Storage engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// SQLite file (`sqlite3` or `sqlite` in acme-dns configs).
    Sqlite,
    /// PostgreSQL (`postgres`).
    Postgres,
}

/// `[database]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    /// Which engine.
    pub engine: Engine,
    /// File path or `postgres://` URL.
    pub connection: String,
}

/// Who may register accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// Anyone (acme-dns's behaviour).
    Open,
    /// Whoever presents this bearer token.
    Token(Secret<String>),
    /// Nobody (acme-dns's `disable_registration = true`).
    Closed,
}

impl Registration {
    /// The mode's name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Token(_) => "token",
            Self::Closed => "closed",
        }
    }
}

/// How the API serves TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tls {
    /// Plain HTTP (`none`, or empty).
    None,
    /// Certificate and key files (`cert`).
    Cert {
        /// PEM private key.
        privkey: PathBuf,
        /// PEM certificate chain.
        fullchain: PathBuf,
    },
    /// A certificate for `general.domain` obtained by ACME with DNS-01 answered by our own
    /// zone (`letsencrypt`, `letsencryptstaging`), as acme-dns does.
    Acme {
        /// The ACME directory URL.
        directory: String,
        /// Where the account, certificate and key are kept (`acme_cache_dir`).
        cache_dir: PathBuf,
        /// Contact for the CA (`notification_email`), if any.
        email: Option<String>,
        /// A PEM root certificate to trust for the directory's HTTPS, beside the system's
        /// (`acme_ca_file`; for a private or test CA).
        ca_file: Option<PathBuf>,
    },
}

/// `[api]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Api {
    /// Where the API listens.
    pub(crate) listen: SocketAddr,
    /// Who may register (`registration`; `disable_registration = true` means closed).
    pub(crate) registration: Registration,
    /// Registrations per client network per hour; 0 turns the limit off.
    pub(crate) register_rate_limit: u32,
    /// Failed authentications per client network and username per 10 minutes; 0 turns the limit
    /// off.
    pub(crate) auth_failure_limit: u32,
    /// Updates per account per minute; 0 turns the limit off.
    pub(crate) update_rate_limit: u32,
    /// TLS mode.
    pub(crate) tls: Tls,
    /// `use_header`: take the client address from a proxy header.
    pub(crate) use_header: bool,
    /// `header_name`, e.g. `X-Forwarded-For`.
    pub(crate) header_name: String,
    /// Networks whose proxy header is believed (ours: `trusted_proxies`).
    pub(crate) trusted_proxies: Vec<Cidr>,
    /// Largest request body in bytes (ours: `body_limit`).
    pub(crate) body_limit: usize,
    /// Time limit for a whole request once its headers are in (ours: `request_timeout`).
    pub(crate) request_timeout: Duration,
    /// Time limit for receiving the request headers (ours: `header_timeout`).
    pub(crate) header_timeout: Duration,
    /// CORS origins allowed (`corsorigins`); empty means all.
    pub(crate) cors_origins: Vec<String>,
    /// HSTS header value when enabled.
    pub(crate) hsts: Option<String>,
}

/// Where logs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LogTarget {
    /// Standard output (acme-dns's `stdout`).
    Stdout,
    /// Standard error.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
}

/// `[logconfig]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Log {
    /// Most verbose level logged.
    pub(crate) level: tracing::Level,
    /// Destination.
    pub(crate) target: LogTarget,
    /// JSON lines instead of text.
    pub(crate) json: bool,
}

/// `[general]` and `[dns]`: everything the DNS side needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    /// Listen addresses.
    pub(crate) listen: Vec<SocketAddr>,
    /// UDP and/or TCP.
    pub(crate) transports: Transports,
    /// The zone.
    pub zone: ZoneSettings,
    /// Listener limits.
    pub(crate) server: ServerOptions,
    /// How many TXT values per subdomain are kept and served (ours: `txt_values`).
    pub(crate) txt_values: usize,
}

/// `[dnssec]`, when `enabled = true`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dnssec {
    /// Signing algorithm.
    pub algorithm: Algorithm,
    /// Seconds a signature is valid.
    pub validity: u32,
    /// Signatures with less than this many seconds left are renewed.
    pub refresh: u32,
    /// Keys and their rollovers.
    pub(crate) policy: crate::dns::dnssec::KeyPolicy,
}

/// The whole, validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from; `None` for the embedded default.
    pub(crate) source: Option<PathBuf>,
    /// DNS settings.
    pub dns: Dns,
    /// Store settings.
    pub(crate) database: Database,
    /// API settings.
    pub(crate) api: Api,
    /// Log settings.
    pub(crate) log: Log,
    /// DNSSEC signing, when enabled.
    pub dnssec: Option<Dnssec>,
    /// Minimisation and retention.
    pub(crate) privacy: Privacy,
    /// Zone transfers, NOTIFY and TSIG (`[transfer]`), when configured.
    pub transfer: Option<crate::dns::xfr::TransferSettings>,
    /// Zone transfers over TLS (`[transfer] tls_listen` and its certificate), when configured.
    pub(crate) transfer_tls: Option<TransferTls>,
    /// Seconds this instance's clock may differ from the database's before it refuses the
    /// shared decisions (`[general] max_clock_skew`, ours; see `zone_sync::clock`).
    pub(crate) max_clock_skew: u64,
    /// The Prometheus exporter (`[metrics]`), when configured.
    pub(crate) metrics: Option<Metrics>,
    /// Non-fatal findings (unknown keys, ignored settings), logged once logging is up.
    pub(crate) warnings: Vec<String>,
    /// Whether the command line said `--lenient` (unknown keys are warnings whatever the file
    /// says); kept so that a reload reads the file again the same way.
    pub(crate) lenient: bool,
}

impl Config {
    /// Reads and validates a configuration file; with `lenient` (`--lenient`), unknown keys
    /// are only warned about, otherwise they are refused (unless the file says `unknown_keys =
    /// "warn"`).
    pub(crate) fn from_file_with(path: &Path, lenient: bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Self::from_text_with(&text, &path.display().to_string(), lenient)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// The embedded demo configuration.
    pub(crate) fn embedded() -> Self {
        Self::from_text(EMBEDDED_DEFAULT, "embedded default")
            .expect("the embedded default configuration is valid")
    }

    /// Parses configuration text; `origin` names it in messages.
    pub fn from_text(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::from_text_with(text, origin, false)
    }

    /// [`Self::from_text`]; with `lenient` (`--lenient`), unknown keys are only warned about.
    pub(crate) fn from_text_with(text: &str, origin: &str, lenient: bool) -> Result<Self, ConfigError> {
        let mut unknown = Vec::new();
        let file = raw::File::parse(text, origin, &mut unknown);
        // Without the file's own word (it did not parse), the command line's decides.
        let mut refused = !lenient;
        let built = file.and_then(|file| {
            refused = !lenient && unknown_keys(&file.general)? == UnknownKeys::Error;
            Self::build(&file)
        });
        let names: Vec<(String, Option<String>)> = unknown
            .into_iter()
            .map(|name| {
                let likely = meant(&name);
                (name, likely)
            })
            .collect();
        let unknown = |error: Option<ConfigError>| ConfigError::Unknown {
            origin: origin.to_owned(),
            names: names.clone(),
            refused,
            error: error.map(Box::new),
        };
        match built {
            Err(error) if names.is_empty() => Err(error),
            Err(error) => Err(unknown(Some(error))),
            Ok(_) if refused && !names.is_empty() => Err(unknown(None)),
            Ok(mut config) => {
                let ignored = names.iter().map(|(name, meant)| {
                    let meant = meant.as_ref().map_or(String::new(), |m| format!(" (did you mean {m}?)"));
                    format!("unknown {name} in {origin} is ignored{meant}")
                });
                config.warnings.splice(0..0, ignored);
                config.lenient = lenient;
                Ok(config)
            }
        }
    }

    /// Builds the validated configuration from the file's sections.
    fn build(file: &raw::File) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let dns = build::dns(&file.general, &file.dns, &mut warnings)?;
        let database = build::database(&file.database, &mut warnings)?;
        let api = build::api(&file.api, &mut warnings)?;
        let log = build::log(&file.logconfig)?;
        let dnssec = build::dnssec(&file.dnssec)?;
        let privacy = build::privacy(&file.privacy, &database, &mut warnings)?;
        let transfer = transfer::parse(&file.transfer, privacy.client_ip, &mut warnings)?;
        let transfer_tls = xot::parse(&file.transfer)?;
        let metrics = metrics::parse(&file.metrics, &api)?;
        let max_clock_skew = file.general.max_clock_skew().duration(defaults::MAX_CLOCK_SKEW)?.max(1);
        Ok(Self {
            source: None,
            dns,
            database,
            api,
            log,
            dnssec,
            privacy,
            transfer,
            transfer_tls,
            metrics,
            max_clock_skew,
            warnings,
            lenient: false,
        })
    }
}

/// What an unknown section or key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnknownKeys {
    /// Refused (the default).
    Error,
    /// Warned about and ignored.
    Warn,
}

/// `general.unknown_keys`: `error` (default) or `warn`.
fn unknown_keys(general: &raw::General) -> Result<UnknownKeys, ConfigError> {
    match general.unknown_keys().string()?.unwrap_or_default().trim().to_ascii_lowercase().as_str() {
        "" | "error" => Ok(UnknownKeys::Error),
        "warn" | "warning" => Ok(UnknownKeys::Warn),
        other => {
            Err(key_error("general.unknown_keys", format!("{} is not one of error, warn", quoted(other))))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::build::listen_addrs;
    use super::*;

    const ACME_DNS_SAMPLE: &str = r#"
[general]
listen = "127.0.0.1:53"
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
connection = "/var/lib/acme-dns/acme-dns.db"

[api]
ip = "0.0.0.0"
disable_registration = false
port = "443"
tls = "cert"
tls_cert_privkey = "/etc/tls/key.pem"
tls_cert_fullchain = "/etc/tls/cert.pem"
acme_cache_dir = "api-certs"
notification_email = ""
corsorigins = ["*"]
use_header = false
header_name = "X-Forwarded-For"

[logconfig]
loglevel = "debug"
logtype = "stdout"
logformat = "text"
"#;

    #[test]
    fn max_clock_skew_is_a_duration_of_at_least_a_second() {
        assert_eq!(Config::from_text(ACME_DNS_SAMPLE, "test").unwrap().max_clock_skew, 60);
        let with = |value: &str| {
            let text =
                ACME_DNS_SAMPLE.replace("debug = false", &format!("debug = false\nmax_clock_skew = {value}"));
            Config::from_text(&text, "test")
        };
        assert_eq!(with("\"2m\"").unwrap().max_clock_skew, 120);
        assert_eq!(with("0").unwrap().max_clock_skew, 1);
        assert!(
            matches!(with("\"soon\""), Err(ConfigError::Key { key, .. }) if key == "general.max_clock_skew")
        );
    }

    #[test]
    fn reads_an_acme_dns_config() {
        let config = Config::from_text(ACME_DNS_SAMPLE, "test").unwrap();
        assert_eq!(config.dns.listen, vec!["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(config.dns.zone.apex, "auth.example.org");
        assert_eq!(config.database.engine, Engine::Sqlite);
        assert_eq!(config.api.listen, "0.0.0.0:443".parse().unwrap());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.dns.txt_values, 2);
    }

    #[test]
    fn keys_are_case_insensitive_and_unknown_keys_are_refused_unless_lenient() {
        let text = ACME_DNS_SAMPLE
            .replace("domain =", "Domain =")
            .replace("debug = false", "debug = false\nfancy = 1");
        let error = Config::from_text(&text, "test").unwrap_err().to_string();
        assert!(error.starts_with("unknown key general.fancy in test\n"), "{error}");
        assert!(error.contains("unknown_keys = \"warn\"") && error.contains("--lenient"), "{error}");
        let config = Config::from_text_with(&text, "test", true).unwrap();
        assert_eq!(config.warnings, vec!["unknown key general.fancy in test is ignored".to_owned()]);
        assert!(config.lenient);
        let warn = text.replace("debug = false", "debug = false\nunknown_keys = \"Warn\"");
        let config = Config::from_text(&warn, "test").unwrap();
        assert_eq!(config.warnings, vec!["unknown key general.fancy in test is ignored".to_owned()]);
        assert!(!config.lenient);
        let typo = format!("{warn}\n[Dnsec]\nenabled = true\n");
        let config = Config::from_text(&typo, "test").unwrap();
        assert!(
            config
                .warnings
                .contains(&"unknown section [dnsec] in test is ignored (did you mean [dnssec]?)".to_owned()),
            "{:?}",
            config.warnings
        );
        let bad = text.replace("debug = false", "debug = false\nunknown_keys = \"maybe\"");
        assert!(Config::from_text(&bad, "test").unwrap_err().to_string().contains("general.unknown_keys"));
        let text = format!("dnssec = 1\n{ACME_DNS_SAMPLE}");
        assert!(
            matches!(Config::from_text(&text, "test"), Err(ConfigError::Key { key, .. }) if key == "dnssec"),
            "a known section that is not a table"
        );
    }

    #[test]
    fn unknown_names_are_shown_beside_another_error_with_the_name_meant() {
        let text = ACME_DNS_SAMPLE
            .replace("engine = \"sqlite3\"", "engine = \"mysql\"")
            .replace("[api]", "[api]\ntxt_values = 3\nhsts_enable = true");
        let text = format!("{text}\n[dnsec]\nenabled = true\n");
        for lenient in [false, true] {
            let error = Config::from_text_with(&text, "f", lenient).unwrap_err().to_string();
            let lines: Vec<&str> = error.lines().collect();
            assert!(lines[0].starts_with("database.engine: "), "{error}");
            let warning = if lenient { "warning: " } else { "" };
            let ignored = if lenient { " is ignored" } else { "" };
            for name in [
                "section [dnsec] in f{ignored} (did you mean [dnssec]?)",
                "key api.txt_values in f{ignored} (did you mean txt_values in [dns]?)",
                "key api.hsts_enable in f{ignored} (did you mean api.hsts_enabled?)",
            ] {
                let line = format!("{warning}unknown {}", name.replace("{ignored}", ignored));
                assert!(lines.contains(&line.as_str()), "{line} in {error}");
            }
            assert_eq!(error.contains("--lenient"), !lenient, "{error}");
        }
    }

    #[test]
    fn every_key_acme_dns_reads_is_known() {
        // acme-dns v1.1 and v2 (pkg/acmedns/types.go), and a development version's
        // allow_registration_from: a config.cfg of theirs passes as written.
        let acme_dns = ACME_DNS_SAMPLE
            .replace(
                "[api]",
                "[api]\napi_domain = \"\"\nautocert_port = \"80\"\nhsts_enabled = false\nhsts_max_age = 31536000\n\
                 hsts_include_subdomains = false\nhsts_preload = false\nallow_registration_from = [\"192.0.2.0/24\"]",
            )
            .replace("[logconfig]", "[logconfig]\nlogfile = \"./acme-dns.log\"");
        let config = Config::from_text(&acme_dns, "acme-dns").unwrap();
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].starts_with("api.allow_registration_from is not supported"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("engine = \"sqlite3\"", "engine = \"mysql\"", "database.engine"),
            ("protocol = \"both\"", "protocol = \"quic\"", "general.protocol"),
            ("listen = \"127.0.0.1:53\"", "listen = \"localhost\"", "general.listen"),
            ("domain = \"auth.example.org\"", "", "general.domain"),
            ("loglevel = \"debug\"", "loglevel = \"loud\"", "logconfig.loglevel"),
            ("port = \"443\"", "port = \"99999\"", "api.port"),
        ];
        for (from, to, key) in cases {
            let text = ACME_DNS_SAMPLE.replace(from, to);
            match Config::from_text(&text, "test") {
                Err(ConfigError::Key { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: expected a key error, got {other:?}"),
            }
        }
    }

    #[test]
    fn records_are_parsed_once_and_a_bad_one_is_named() {
        let config = Config::from_text(ACME_DNS_SAMPLE, "test").unwrap();
        assert_eq!(config.dns.zone.records.len(), 2);
        assert_eq!(config.dns.zone.records[0].rdata, [198, 51, 100, 1]);
        let bad = [
            ("\"auth.example.org. A 198.51.100.1\"", "\"auth.example.org. A 999.51.100.1\"", "999.51.100.1"),
            ("\"auth.example.org. A 198.51.100.1\"", "\"www.example.com. A 192.0.2.1\"", "outside the zone"),
            ("\"auth.example.org. A 198.51.100.1\"", "\"auth.example.org. CNAME x.example.com.\"", "CNAME"),
        ];
        for (from, to, named) in bad {
            let text = ACME_DNS_SAMPLE.replace(from, to);
            match Config::from_text(&text, "test") {
                Err(e @ ConfigError::Key { .. }) => {
                    let message = e.to_string();
                    assert!(message.starts_with("general.records: "), "{message}");
                    assert!(message.contains(named), "{message}");
                }
                other => panic!("{to}: expected a key error, got {other:?}"),
            }
        }
    }

    #[test]
    fn dnssec_section() {
        let text = format!("{ACME_DNS_SAMPLE}\n[dnssec]\nenabled = true\nalgorithm = \"ed25519\"\n");
        let config = Config::from_text(&text, "test").unwrap();
        assert_eq!(config.dnssec.unwrap().algorithm, Algorithm::Ed25519);
        let text = format!("{ACME_DNS_SAMPLE}\n[dnssec]\nenabled = true\nrefresh = 2000000\n");
        assert!(
            matches!(Config::from_text(&text, "test"), Err(ConfigError::Key { key, .. }) if key == "dnssec.refresh")
        );
        assert!(Config::from_text(ACME_DNS_SAMPLE, "test").unwrap().dnssec.is_none());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen_addrs(":53", "k", None).unwrap().len(), 2);
        assert_eq!(listen_addrs("[::1]:53", "k", None).unwrap(), vec!["[::1]:53".parse().unwrap()]);
        assert!(listen_addrs("[::1]:53", "k", Some(true)).is_err());
    }

    #[test]
    fn sample_config_is_valid_and_complete() {
        let config = Config::from_text(include_str!("../../config.sample.cfg"), "sample").unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    /// The keys of `config.sample.cfg`, as `section.key`, lower case.
    ///
    /// Keys set in the file count, and so do commented-out ones (`# key = value` alone on its
    /// line, in a section opened by `[name]` or by `# [name]`): the sample shows optional keys that way, with their default, and an operator
    /// finds them by reading it. A comment line counts when it parses as TOML on its own, so
    /// prose never does; multi-line values (`records = [`) come from parsing the whole file.
    fn sample_keys(sample: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let file: toml::Table = sample.parse().expect("the sample is valid TOML");
        for (section, table) in &file {
            for key in table.as_table().expect("every top-level key is a section").keys() {
                keys.insert(format!("{section}.{key}").to_ascii_lowercase());
            }
        }
        let mut section = String::new();
        for line in sample.lines().map(str::trim) {
            // A commented-out section header (`# [transfer]`) opens an optional section.
            let header = line.strip_prefix('#').map_or(line, str::trim);
            if let Some(name) = header.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_ascii_lowercase();
            } else if let Some(comment) = line.strip_prefix('#')
                && let Ok(table) = comment.trim().parse::<toml::Table>()
            {
                keys.extend(table.keys().map(|key| format!("{section}.{key}").to_ascii_lowercase()));
            }
        }
        keys
    }

    #[test]
    fn sample_config_lists_exactly_the_keys_the_reader_knows() {
        let in_sample = sample_keys(include_str!("../../config.sample.cfg"));
        let known: BTreeSet<String> = raw::File::SECTIONS
            .iter()
            .flat_map(|(section, keys)| keys.iter().map(move |key| format!("{section}.{key}")))
            .collect();
        let undocumented: Vec<_> = known.difference(&in_sample).collect();
        let unknown: Vec<_> = in_sample.difference(&known).collect();
        assert!(undocumented.is_empty(), "known but not in config.sample.cfg: {undocumented:?}");
        assert!(unknown.is_empty(), "in config.sample.cfg but not known to the reader: {unknown:?}");
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded();
        assert!(config.dns.listen.iter().all(|a| a.ip().is_loopback()));
        assert!(config.api.listen.ip().is_loopback());
    }

    #[test]
    fn subdomains_in_logs() {
        use crate::privacy::pseudonym::SubdomainPolicy;
        let config = Config::from_text(ACME_DNS_SAMPLE, "test").unwrap();
        let beside_db = Some(std::path::PathBuf::from("/var/lib/acme-dns/log-subdomain.key"));
        assert_eq!(config.privacy.log_subdomain, SubdomainPolicy::Pseudonym { key_file: beside_db });
        let postgres = ACME_DNS_SAMPLE
            .replace("engine = \"sqlite3\"", "engine = \"postgres\"")
            .replace("/var/lib/acme-dns/acme-dns.db", "postgres://u@db/acme");
        let config = Config::from_text(&postgres, "test").unwrap();
        assert_eq!(config.privacy.log_subdomain, SubdomainPolicy::Pseudonym { key_file: None });
        assert!(
            config.warnings.iter().any(|w| w.contains("privacy.log_subdomain_key")),
            "{:?}",
            config.warnings
        );
        let full = format!("{ACME_DNS_SAMPLE}\n[privacy]\nlog_subdomain = \"Full\"\n");
        assert_eq!(Config::from_text(&full, "test").unwrap().privacy.log_subdomain, SubdomainPolicy::Full);
        let bad = format!("{ACME_DNS_SAMPLE}\n[privacy]\nlog_subdomain = \"hashed\"\n");
        assert!(
            matches!(Config::from_text(&bad, "test"), Err(ConfigError::Key { key, .. }) if key == "privacy.log_subdomain")
        );
    }

    #[test]
    fn errors_quote_a_token_at_most() {
        assert_eq!(quoted("short"), "\"short\"");
        let long = "é".repeat(50);
        assert_eq!(quoted(&long), format!("{:?}…", "é".repeat(QUOTE_MAX)));
        // The column counts characters, and the line itself is not in the message.
        let text = "[general]\nkey = 1\n  x = \"é\" é:$6$secrethash:1:2:::\n";
        match Config::from_text(text, "f") {
            Err(error @ ConfigError::Syntax { .. }) => {
                let shown = error.to_string();
                let ConfigError::Syntax { line, column, near, message, .. } = error else { unreachable!() };
                assert_eq!((line, column, near.as_str()), (3, 11, "at \"é\""), "{message}");
                assert!(!shown.contains("secrethash") && !shown.contains('\n'), "{shown}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}
