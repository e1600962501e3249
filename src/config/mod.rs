//! Configuration: acme-dns's `config.cfg` read unchanged, plus our own keys in the same file.
//!
//! Design note: the file is parsed once, at start, into an immutable [`Config`] of ready-made
//! values (socket addresses, networks, durations); nothing downstream re-parses text. Keys are
//! matched case-insensitively, as acme-dns's TOML library does. Unknown keys do not stop the
//! server (an acme-dns config may carry keys we do not use) but each one is named in a warning.
//! A missing mandatory key or an invalid value stops it, with a [`ConfigError`] that names the
//! key and says what is wrong.
//!
//! Our additions live in a `[dns]` section and a few extra `[api]` keys, all optional, with
//! defaults documented in `config.sample.cfg`. Without any file the server runs on
//! [`EMBEDDED_DEFAULT`], a demo set-up on loopback ports for trying it out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::cidr::Cidr;
use crate::dns::dnssec::Algorithm;
use crate::dns::server::{ServerOptions, Transports};
use crate::dns::zone::ZoneSettings;
use crate::privacy::pseudonym::SubdomainPolicy;
use crate::privacy::{IpPolicy, Privacy, Secret};

/// The configuration used when no file is given: SQLite in the working directory, DNS and API
/// on unprivileged loopback ports, and a sample zone.
pub const EMBEDDED_DEFAULT: &str = include_str!("embedded.cfg");

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
    /// The file is not valid TOML.
    #[error("{path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
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
#[derive(Clone, Debug)]
pub struct Database {
    /// Which engine.
    pub engine: Engine,
    /// File path or `postgres://` URL.
    pub connection: String,
}

/// Who may register accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Anyone (acme-dns's behaviour).
    Open,
    /// Whoever presents this bearer token.
    Token(Secret<String>),
    /// Nobody (acme-dns's `disable_registration = true`).
    Closed,
}

impl Registration {
    /// The mode's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Token(_) => "token",
            Self::Closed => "closed",
        }
    }
}

/// How the API serves TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
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
#[derive(Clone, Debug)]
pub struct Api {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Who may register (`registration`; `disable_registration = true` means closed).
    pub registration: Registration,
    /// Registrations per client network per hour; 0 turns the limit off.
    pub register_rate_limit: u32,
    /// Failed authentications per client network and username per 10 minutes; 0 turns the limit off.
    pub auth_failure_limit: u32,
    /// Updates per account per minute; 0 turns the limit off.
    pub update_rate_limit: u32,
    /// TLS mode.
    pub tls: Tls,
    /// `use_header`: take the client address from a proxy header.
    pub use_header: bool,
    /// `header_name`, e.g. `X-Forwarded-For`.
    pub header_name: String,
    /// Networks whose proxy header is believed (ours: `trusted_proxies`).
    pub trusted_proxies: Vec<Cidr>,
    /// Largest request body in bytes (ours: `body_limit`).
    pub body_limit: usize,
    /// Time limit for a whole request once its headers are in (ours: `request_timeout`).
    pub request_timeout: Duration,
    /// Time limit for receiving the request headers (ours: `header_timeout`).
    pub header_timeout: Duration,
    /// CORS origins allowed (`corsorigins`); empty means all.
    pub cors_origins: Vec<String>,
    /// HSTS header value when enabled.
    pub hsts: Option<String>,
}

/// Where logs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (acme-dns's `stdout`).
    Stdout,
    /// Standard error.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
}

/// `[logconfig]`.
#[derive(Clone, Debug)]
pub struct Log {
    /// Most verbose level logged.
    pub level: tracing::Level,
    /// Destination.
    pub target: LogTarget,
    /// JSON lines instead of text.
    pub json: bool,
}

/// `[general]` and `[dns]`: everything the DNS side needs.
#[derive(Clone, Debug)]
pub struct Dns {
    /// Listen addresses.
    pub listen: Vec<SocketAddr>,
    /// UDP and/or TCP.
    pub transports: Transports,
    /// The zone.
    pub zone: ZoneSettings,
    /// Listener limits.
    pub server: ServerOptions,
    /// How many TXT values per subdomain are kept and served (ours: `txt_values`).
    pub txt_values: usize,
}

/// `[dnssec]`, when `enabled = true`.
#[derive(Clone, Copy, Debug)]
pub struct Dnssec {
    /// Signing algorithm.
    pub algorithm: Algorithm,
    /// Seconds a signature is valid.
    pub validity: u32,
    /// Signatures with less than this many seconds left are renewed.
    pub refresh: u32,
}

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    /// DNS settings.
    pub dns: Dns,
    /// Store settings.
    pub database: Database,
    /// API settings.
    pub api: Api,
    /// Log settings.
    pub log: Log,
    /// DNSSEC signing, when enabled.
    pub dnssec: Option<Dnssec>,
    /// Minimisation and retention.
    pub privacy: Privacy,
    /// Non-fatal findings (unknown keys, ignored settings), logged once logging is up.
    pub warnings: Vec<String>,
}

/// Every key we know, by section; anything else is reported as unknown.
const KNOWN: &[(&str, &[&str])] = &[
    ("general", &["listen", "protocol", "domain", "nsname", "nsadmin", "records", "debug"]),
    ("database", &["engine", "connection"]),
    (
        "api",
        &[
            "ip",
            "port",
            "disable_registration",
            "tls",
            "tls_cert_privkey",
            "tls_cert_fullchain",
            "acme_cache_dir",
            "notification_email",
            "acme_directory",
            "acme_ca_file",
            "corsorigins",
            "use_header",
            "header_name",
            "api_domain",
            "autocert_port",
            "hsts_enabled",
            "hsts_max_age",
            "hsts_include_subdomains",
            "hsts_preload",
            "trusted_proxies",
            "registration",
            "registration_token",
            "register_rate_limit",
            "auth_failure_limit",
            "update_rate_limit",
            "body_limit",
            "request_timeout",
            "header_timeout",
        ],
    ),
    ("logconfig", &["loglevel", "logtype", "logfile", "logformat"]),
    ("dnssec", &["enabled", "algorithm", "signature_validity", "refresh"]),
    (
        "privacy",
        &[
            "client_ip",
            "log_subdomain",
            "log_subdomain_key",
            "audit_retention",
            "txt_retention",
            "account_expiry",
            "purge_interval",
        ],
    ),
    (
        "dns",
        &[
            "txt_values",
            "txt_ttl",
            "negative_ttl",
            "soa_ttl",
            "default_ttl",
            "edns_udp_size",
            "tcp_idle_timeout",
            "tcp_first_message_timeout",
            "tcp_max_connections",
            "tcp_max_connections_per_network",
            "udp_workers",
            "rate_limit",
            "rate_limit_slip",
        ],
    ),
];

/// Lower-cases every key of a table, recursively; two keys that differ only in case collide.
fn lowercase_keys(table: Table, path: &str) -> Result<Table, ConfigError> {
    let mut out = Table::new();
    for (key, value) in table {
        let lower = key.to_ascii_lowercase();
        let full = if path.is_empty() { lower.clone() } else { format!("{path}.{lower}") };
        let value = match value {
            Value::Table(inner) => Value::Table(lowercase_keys(inner, &full)?),
            other => other,
        };
        if out.insert(lower, value).is_some() {
            return Err(key_error(&full, "given twice (keys are case-insensitive)"));
        }
    }
    Ok(out)
}

/// Typed access to one section, with errors that name `section.key`.
struct Section<'a> {
    /// Section name.
    name: &'static str,
    /// Its table (empty when the section is absent).
    table: Option<&'a Table>,
}

impl Section<'_> {
    /// `section.key` for messages.
    fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    /// The raw value, if present.
    fn value(&self, key: &str) -> Option<&Value> {
        self.table.and_then(|t| t.get(key))
    }

    /// A string value.
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(key_error(&self.key(key), format!("expected a string, found {}", other.type_str())))
            }
        }
    }

    /// A mandatory, non-empty string.
    fn required(&self, key: &str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(_) => Err(key_error(&self.key(key), "must not be empty")),
            None => Err(key_error(&self.key(key), "missing (this key is mandatory)")),
        }
    }

    /// A boolean, default false.
    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match self.value(key) {
            None => Ok(false),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => {
                Err(key_error(&self.key(key), format!("expected true or false, found {}", other.type_str())))
            }
        }
    }

    /// An integer within `range`, or `default`. Strings of digits are accepted too.
    fn integer(
        &self,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let value = match self.value(key) {
            None => return Ok(default),
            Some(Value::Integer(i)) => *i,
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| key_error(&self.key(key), format!("expected a number, found {s:?}")))?,
            Some(other) => {
                return Err(key_error(
                    &self.key(key),
                    format!("expected a number, found {}", other.type_str()),
                ));
            }
        };
        if !range.contains(&value) {
            return Err(key_error(
                &self.key(key),
                format!("{value} is out of range ({} to {})", range.start(), range.end()),
            ));
        }
        Ok(value)
    }

    /// A duration in seconds: a number, or a string like `"30d"`, `"12h"`, `"15m"`, `"90s"`.
    fn duration(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        let bad = |text: &str| {
            key_error(&self.key(key), format!("{text:?} is not a duration such as 30d, 12h, 15m or 90s"))
        };
        match self.value(key) {
            None => Ok(default),
            Some(Value::Integer(i)) if *i >= 0 => Ok(*i as u64),
            Some(Value::String(s)) => {
                let t = s.trim();
                let (number, unit) =
                    t.find(|c: char| !c.is_ascii_digit()).map_or((t, ""), |at| t.split_at(at));
                let n: u64 = number.parse().map_err(|_| bad(t))?;
                let factor = match unit.trim() {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => return Err(bad(t)),
                };
                n.checked_mul(factor).ok_or_else(|| bad(t))
            }
            Some(other) => Err(bad(&other.to_string())),
        }
    }

    /// A list of strings; a single string counts as a list of one.
    fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.value(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(key_error(
                        &self.key(key),
                        format!("expected strings, found {}", other.type_str()),
                    )),
                })
                .collect(),
            Some(other) => Err(key_error(
                &self.key(key),
                format!("expected a list of strings, found {}", other.type_str()),
            )),
        }
    }
}

/// Parses one DNS listen entry: `host:port`, `[v6]:port` or `:port` (all interfaces).
fn listen_addrs(entry: &str, key: &str, family: Option<bool>) -> Result<Vec<SocketAddr>, ConfigError> {
    let entry = entry.trim();
    if let Some(port) = entry.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| key_error(key, format!("bad port in {entry:?}")))?;
        let mut out = Vec::new();
        if family != Some(false) {
            out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
        }
        if family != Some(true) {
            out.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
        }
        return Ok(out);
    }
    let addr: SocketAddr = entry.parse().map_err(|_| {
        key_error(
            key,
            format!("{entry:?} is not host:port (IPv6 in brackets: \"[::1]:53\"; all interfaces: \":53\")"),
        )
    })?;
    match family {
        Some(true) if !addr.is_ipv4() => {
            Err(key_error(key, format!("{entry:?} is IPv6 but the protocol is IPv4-only")))
        }
        Some(false) if !addr.is_ipv6() => {
            Err(key_error(key, format!("{entry:?} is IPv4 but the protocol is IPv6-only")))
        }
        _ => Ok(vec![addr]),
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Self::from_text(&text, &path.display().to_string())?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// The embedded demo configuration.
    pub fn embedded() -> Self {
        Self::from_text(EMBEDDED_DEFAULT, "embedded default")
            .expect("the embedded default configuration is valid")
    }

    /// Parses configuration text; `origin` names it in messages.
    pub fn from_text(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        let table = lowercase_keys(table, "")?;
        let mut warnings = Vec::new();
        for (section, value) in &table {
            let Some((_, keys)) = KNOWN.iter().find(|(name, _)| name == section) else {
                warnings.push(format!("unknown section [{section}] in {origin} is ignored"));
                continue;
            };
            let Value::Table(inner) = value else {
                return Err(key_error(section, "expected a [section]"));
            };
            for key in inner.keys().filter(|k| !keys.contains(&k.as_str())) {
                warnings.push(format!("unknown key {section}.{key} in {origin} is ignored"));
            }
        }
        let section = |name: &'static str| Section { name, table: table.get(name).and_then(Value::as_table) };
        let general = section("general");
        let database = section("database");
        let api = section("api");
        let logconfig = section("logconfig");
        let dns = section("dns");

        let dns = Self::dns(&general, &dns, &mut warnings)?;
        let database = Self::database(&database, &mut warnings)?;
        let api = Self::api(&api, &mut warnings)?;
        let log = Self::log(&logconfig)?;
        let dnssec = Self::dnssec(&section("dnssec"))?;
        let privacy = Self::privacy(&section("privacy"), &database, &mut warnings)?;
        Ok(Self { source: None, dns, database, api, log, dnssec, privacy, warnings })
    }

    /// Builds the DNS settings from `[general]` and `[dns]`.
    fn dns(general: &Section<'_>, dns: &Section<'_>, warnings: &mut Vec<String>) -> Result<Dns, ConfigError> {
        let protocol = general.string("protocol")?.unwrap_or_else(|| "both".into()).to_ascii_lowercase();
        let (udp, tcp, family) = match protocol.as_str() {
            "both" => (true, true, None),
            "both4" => (true, true, Some(true)),
            "both6" => (true, true, Some(false)),
            "udp" => (true, false, None),
            "udp4" => (true, false, Some(true)),
            "udp6" => (true, false, Some(false)),
            "tcp" => (false, true, None),
            "tcp4" => (false, true, Some(true)),
            "tcp6" => (false, true, Some(false)),
            other => {
                return Err(key_error(
                    "general.protocol",
                    format!("{other:?} is not one of both, both4, both6, udp, udp4, udp6, tcp, tcp4, tcp6"),
                ));
            }
        };
        let mut listen = Vec::new();
        let entries = general.strings("listen")?;
        if entries.is_empty() {
            warnings.push(
                "general.listen is not set: listening on port 53 of all interfaces, as acme-dns does".into(),
            );
        }
        for entry in if entries.is_empty() { vec![":53".to_owned()] } else { entries } {
            listen.extend(listen_addrs(&entry, "general.listen", family)?);
        }
        listen.dedup();

        let domain = general.required("domain")?.trim_end_matches('.').to_ascii_lowercase();
        let nsname = general.string("nsname")?.filter(|s| !s.is_empty()).unwrap_or_else(|| domain.clone());
        let nsadmin = general
            .string("nsadmin")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("hostmaster.{domain}"));
        let records = general.strings("records")?;
        let ttl = |key: &str, default: i64| -> Result<u32, ConfigError> {
            Ok(dns.integer(key, default, 0..=2_147_483_647)? as u32)
        };
        let zone = ZoneSettings {
            apex: domain,
            nsname: nsname.trim_end_matches('.').to_owned(),
            nsadmin: nsadmin.trim_end_matches('.').to_owned(),
            records,
            soa_ttl: ttl("soa_ttl", 3600)?,
            negative_ttl: ttl("negative_ttl", 30)?,
            txt_ttl: ttl("txt_ttl", 1)?,
            default_ttl: ttl("default_ttl", 3600)?,
            udp_size: dns.integer("edns_udp_size", 1232, 512..=4096)? as u16,
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as i64;
        let server = ServerOptions {
            tcp_idle_timeout: Duration::from_secs(dns.integer("tcp_idle_timeout", 10, 1..=3600)? as u64),
            tcp_first_message_timeout: Duration::from_secs(dns.integer(
                "tcp_first_message_timeout",
                2,
                1..=3600,
            )? as u64),
            tcp_max_connections: dns.integer("tcp_max_connections", 256, 1..=65_536)? as usize,
            tcp_max_connections_per_network: dns.integer("tcp_max_connections_per_network", 32, 1..=65_536)?
                as usize,
            udp_workers: dns.integer("udp_workers", cores, 1..=256)? as usize,
            rate_limit: dns.integer("rate_limit", 200, 0..=1_000_000)? as u32,
            rate_limit_slip: dns.integer("rate_limit_slip", 2, 0..=100)? as u32,
        };
        let txt_values = dns.integer("txt_values", 2, 1..=100)? as usize;
        Ok(Dns { listen, transports: Transports { udp, tcp }, zone, server, txt_values })
    }

    /// Builds `[database]`.
    fn database(database: &Section<'_>, warnings: &mut Vec<String>) -> Result<Database, ConfigError> {
        let engine = match database.required("engine")?.to_ascii_lowercase().as_str() {
            "sqlite3" | "sqlite" => Engine::Sqlite,
            "postgres" | "postgresql" => Engine::Postgres,
            other => {
                return Err(key_error(
                    "database.engine",
                    format!("{other:?} is not one of sqlite3, sqlite, postgres"),
                ));
            }
        };
        let connection = database.required("connection")?;
        if engine == Engine::Sqlite && connection.starts_with("postgres") {
            warnings.push("database.connection looks like a PostgreSQL URL but the engine is SQLite".into());
        }
        Ok(Database { engine, connection })
    }

    /// Builds `[api]`.
    fn api(api: &Section<'_>, warnings: &mut Vec<String>) -> Result<Api, ConfigError> {
        let tls_text = api.string("tls")?.unwrap_or_default().to_ascii_lowercase();
        let tls = match tls_text.as_str() {
            "" | "none" => Tls::None,
            "cert" => Tls::Cert {
                privkey: api.required("tls_cert_privkey")?.into(),
                fullchain: api.required("tls_cert_fullchain")?.into(),
            },
            "letsencrypt" | "letsencryptstaging" => {
                let default = if tls_text == "letsencrypt" {
                    "https://acme-v02.api.letsencrypt.org/directory"
                } else {
                    "https://acme-staging-v02.api.letsencrypt.org/directory"
                };
                let directory = api.string("acme_directory")?.filter(|d| !d.is_empty());
                let directory = directory.unwrap_or_else(|| default.to_owned());
                if !directory.starts_with("https://") {
                    return Err(key_error(
                        "api.acme_directory",
                        format!("{directory:?} is not an https:// URL"),
                    ));
                }
                let cache_dir = api.string("acme_cache_dir")?.filter(|d| !d.is_empty());
                Tls::Acme {
                    directory,
                    cache_dir: cache_dir.unwrap_or_else(|| "api-certs".into()).into(),
                    email: api.string("notification_email")?.filter(|e| !e.is_empty()),
                    ca_file: api.string("acme_ca_file")?.filter(|f| !f.is_empty()).map(PathBuf::from),
                }
            }
            other => {
                return Err(key_error(
                    "api.tls",
                    format!("{other:?} is not one of none, cert, letsencrypt, letsencryptstaging"),
                ));
            }
        };
        let default_port = if tls == Tls::None { 80 } else { 443 };
        let port = api.integer("port", default_port, 0..=65_535)? as u16;
        let ip_text = api.string("ip")?.unwrap_or_default();
        let ip_trimmed = ip_text.trim().trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = if ip_trimmed.is_empty() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            ip_trimmed
                .parse()
                .map_err(|_| key_error("api.ip", format!("{ip_text:?} is not an IP address")))?
        };
        let use_header = api.boolean("use_header")?;
        let header_name = api.string("header_name")?.unwrap_or_default();
        if use_header && header_name.trim().is_empty() {
            return Err(key_error(
                "api.header_name",
                "must be set when api.use_header = true (e.g. \"X-Forwarded-For\")",
            ));
        }
        let mut trusted_proxies = Vec::new();
        let proxies = api.strings("trusted_proxies")?;
        if use_header && proxies.is_empty() {
            warnings.push(
                "api.use_header is on but api.trusted_proxies is not set: trusting the header only from loopback \
                 (127.0.0.0/8, ::1/128)"
                    .into(),
            );
        }
        let proxies = if proxies.is_empty() { vec!["127.0.0.0/8".into(), "::1/128".into()] } else { proxies };
        for text in proxies {
            trusted_proxies.push(
                text.parse()
                    .map_err(|e: crate::cidr::CidrError| key_error("api.trusted_proxies", e.to_string()))?,
            );
        }
        let hsts = if api.boolean("hsts_enabled")? {
            let mut max_age = api.integer("hsts_max_age", 31_536_000, i64::MIN..=i64::MAX)?;
            if max_age <= 0 {
                max_age = 31_536_000;
            }
            let mut value = format!("max-age={max_age}");
            if api.boolean("hsts_include_subdomains")? {
                value.push_str("; includeSubDomains");
            }
            if api.boolean("hsts_preload")? {
                value.push_str("; preload");
            }
            Some(value)
        } else {
            None
        };
        let registration = if api.boolean("disable_registration")? {
            Registration::Closed
        } else {
            match api.string("registration")?.unwrap_or_default().to_ascii_lowercase().as_str() {
                "" | "open" => Registration::Open,
                "closed" => Registration::Closed,
                "token" => {
                    let token = api.required("registration_token")?;
                    if token.len() < 16 {
                        return Err(key_error("api.registration_token", "must be at least 16 characters"));
                    }
                    Registration::Token(Secret::new(token))
                }
                other => {
                    return Err(key_error(
                        "api.registration",
                        format!("{other:?} is not one of open, token, closed"),
                    ));
                }
            }
        };
        Ok(Api {
            listen: SocketAddr::new(ip, port),
            registration,
            register_rate_limit: api.integer("register_rate_limit", 20, 0..=1_000_000)? as u32,
            auth_failure_limit: api.integer("auth_failure_limit", 30, 0..=1_000_000)? as u32,
            update_rate_limit: api.integer("update_rate_limit", 60, 0..=1_000_000)? as u32,
            tls,
            use_header,
            header_name: header_name.trim().to_owned(),
            trusted_proxies,
            body_limit: api.integer("body_limit", 16 * 1024, 256..=1_048_576)? as usize,
            request_timeout: Duration::from_secs(api.integer("request_timeout", 10, 1..=600)? as u64),
            header_timeout: Duration::from_secs(api.integer("header_timeout", 5, 1..=600)? as u64),
            cors_origins: api.strings("corsorigins")?,
            hsts,
        })
    }

    /// Builds `[privacy]`; the pseudonym secret's file defaults to one beside the SQLite
    /// database (a directory the server can write and the operator keeps).
    fn privacy(
        section: &Section<'_>,
        database: &Database,
        warnings: &mut Vec<String>,
    ) -> Result<Privacy, ConfigError> {
        let defaults = Privacy::default();
        let client_ip = match section.string("client_ip")?.unwrap_or_default().to_ascii_lowercase().as_str() {
            "" | "truncated" => IpPolicy::Truncated,
            "full" => IpPolicy::Full,
            "none" => IpPolicy::None,
            other => {
                return Err(key_error(
                    "privacy.client_ip",
                    format!("{other:?} is not one of truncated, full, none"),
                ));
            }
        };
        let log_subdomain =
            match section.string("log_subdomain")?.unwrap_or_default().to_ascii_lowercase().as_str() {
                "" | "pseudonym" => {
                    let configured = section.string("log_subdomain_key")?.filter(|p| !p.trim().is_empty());
                    let key_file = configured.map(|p| PathBuf::from(p.trim())).or_else(|| {
                        (database.engine == Engine::Sqlite)
                            .then(|| Path::new(&database.connection).with_file_name("log-subdomain.key"))
                    });
                    if key_file.is_none() {
                        warnings.push(
                            "privacy.log_subdomain_key is not set: the pseudonyms of subdomains in the logs \
                             will change at every start and differ between instances"
                                .into(),
                        );
                    }
                    SubdomainPolicy::Pseudonym { key_file }
                }
                "full" => SubdomainPolicy::Full,
                other => {
                    return Err(key_error(
                        "privacy.log_subdomain",
                        format!("{other:?} is not one of pseudonym, full"),
                    ));
                }
            };
        let expiry = section.duration("account_expiry", 0)?;
        Ok(Privacy {
            client_ip,
            log_subdomain,
            audit_retention: section.duration("audit_retention", defaults.audit_retention)?,
            txt_retention: section.duration("txt_retention", defaults.txt_retention)?,
            account_expiry: (expiry > 0).then_some(expiry),
            purge_interval: section.duration("purge_interval", defaults.purge_interval)?.max(1),
        })
    }

    /// Builds `[dnssec]`.
    fn dnssec(section: &Section<'_>) -> Result<Option<Dnssec>, ConfigError> {
        if !section.boolean("enabled")? {
            return Ok(None);
        }
        let algorithm = match section.value("algorithm") {
            None => Algorithm::EcdsaP256Sha256,
            Some(Value::Integer(13)) => Algorithm::EcdsaP256Sha256,
            Some(Value::Integer(15)) => Algorithm::Ed25519,
            Some(Value::String(s))
                if ["ecdsap256sha256", "ecdsa", "13"].contains(&s.to_ascii_lowercase().as_str()) =>
            {
                Algorithm::EcdsaP256Sha256
            }
            Some(Value::String(s)) if ["ed25519", "15"].contains(&s.to_ascii_lowercase().as_str()) => {
                Algorithm::Ed25519
            }
            Some(other) => {
                return Err(key_error(
                    "dnssec.algorithm",
                    format!("{other} is not one of \"ecdsap256sha256\" (13) or \"ed25519\" (15)"),
                ));
            }
        };
        let validity = section.integer("signature_validity", 14 * 86_400, 10..=365 * 86_400)? as u32;
        let refresh = section.integer("refresh", 7 * 86_400, 5..=364 * 86_400)? as u32;
        if refresh >= validity {
            return Err(key_error(
                "dnssec.refresh",
                format!("{refresh} must be shorter than dnssec.signature_validity ({validity})"),
            ));
        }
        Ok(Some(Dnssec { algorithm, validity, refresh }))
    }

    /// Builds `[logconfig]`.
    fn log(logconfig: &Section<'_>) -> Result<Log, ConfigError> {
        let level_text = logconfig.string("loglevel")?.unwrap_or_else(|| "info".into()).to_ascii_lowercase();
        let level = match level_text.as_str() {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "" | "info" => tracing::Level::INFO,
            "warn" | "warning" => tracing::Level::WARN,
            "error" => tracing::Level::ERROR,
            other => {
                return Err(key_error(
                    "logconfig.loglevel",
                    format!("{other:?} is not one of debug, info, warning, error"),
                ));
            }
        };
        let target = match logconfig.string("logtype")?.unwrap_or_default().to_ascii_lowercase().as_str() {
            "" | "stdout" => LogTarget::Stdout,
            "stderr" => LogTarget::Stderr,
            "file" => LogTarget::File(
                logconfig
                    .string("logfile")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| key_error("logconfig.logfile", "must be set when logtype = \"file\""))?
                    .into(),
            ),
            other => {
                return Err(key_error(
                    "logconfig.logtype",
                    format!("{other:?} is not one of stdout, stderr, file"),
                ));
            }
        };
        let json = match logconfig.string("logformat")?.unwrap_or_default().to_ascii_lowercase().as_str() {
            "json" => true,
            "" | "text" => false,
            other => {
                return Err(key_error("logconfig.logformat", format!("{other:?} is not one of text, json")));
            }
        };
        Ok(Log { level, target, json })
    }
}

#[cfg(test)]
mod tests {
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
    fn keys_are_case_insensitive_and_unknown_keys_warn() {
        let text = ACME_DNS_SAMPLE
            .replace("domain =", "Domain =")
            .replace("debug = false", "debug = false\nfancy = 1");
        let config = Config::from_text(&text, "test").unwrap();
        assert_eq!(config.warnings, vec!["unknown key general.fancy in test is ignored".to_owned()]);
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
    fn subdomains_in_logs() {
        let config = Config::from_text(ACME_DNS_SAMPLE, "test").unwrap();
        let beside_db = Some(PathBuf::from("/var/lib/acme-dns/log-subdomain.key"));
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

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded();
        assert!(config.dns.listen.iter().all(|a| a.ip().is_loopback()));
        assert!(config.api.listen.ip().is_loopback());
    }
}
