//! The validated layer: each section of the raw file turned into ready-made values.
//!
//! Design note: every value is parsed here, once, into the type its user needs (socket
//! addresses, networks, durations, parsed static records), with the default that applies when
//! the key is absent. An invalid value is a [`ConfigError`] naming the key; what the zone
//! would refuse (a bad or conflicting static record) is refused here too, so nothing later
//! fails on configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Value;

use super::defaults;
use super::raw::{self, Entry};
use super::{
    Api, ConfigError, Database, Dns, Dnssec, Engine, Log, LogTarget, Registration, Tls, key_error, quoted,
};
use crate::dns::dnssec::{Algorithm, CdsPolicy, KeyPolicy};
use crate::dns::records::{name_to_wire, parse_record};
use crate::dns::server::{ServerOptions, Transports};
use crate::dns::zone::{ZoneError, ZoneSettings};
use crate::privacy::pseudonym::SubdomainPolicy;
use crate::privacy::{IpPolicy, Privacy, Secret};

/// Parses one DNS listen entry: `host:port`, `[v6]:port` or `:port` (all interfaces).
pub(super) fn listen_addrs(
    entry: &str,
    key: &str,
    family: Option<bool>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let entry = entry.trim();
    if let Some(port) = entry.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| key_error(key, format!("bad port in {}", quoted(entry))))?;
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
            format!(
                "{} is not host:port (IPv6 in brackets: \"[::1]:53\"; all interfaces: \":53\")",
                quoted(entry)
            ),
        )
    })?;
    match family {
        Some(true) if !addr.is_ipv4() => {
            Err(key_error(key, format!("{} is IPv6 but the protocol is IPv4-only", quoted(entry))))
        }
        Some(false) if !addr.is_ipv6() => {
            Err(key_error(key, format!("{} is IPv4 but the protocol is IPv6-only", quoted(entry))))
        }
        _ => Ok(vec![addr]),
    }
}

/// Builds the DNS settings from `[general]` and `[dns]`.
pub(super) fn dns(
    general: &raw::General,
    dns: &raw::Dns,
    warnings: &mut Vec<String>,
) -> Result<Dns, ConfigError> {
    let protocol =
        general.protocol().string()?.unwrap_or_else(|| defaults::PROTOCOL.into()).to_ascii_lowercase();
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
                format!(
                    "{} is not one of both, both4, both6, udp, udp4, udp6, tcp, tcp4, tcp6",
                    quoted(other)
                ),
            ));
        }
    };
    let mut listen = Vec::new();
    let entries = general.listen().strings()?;
    if entries.is_empty() {
        warnings.push(
            "general.listen is not set: listening on port 53 of all interfaces, as acme-dns does".into(),
        );
    }
    for entry in if entries.is_empty() { vec![defaults::LISTEN.to_owned()] } else { entries } {
        listen.extend(listen_addrs(&entry, "general.listen", family)?);
    }
    listen.dedup();

    let domain = general.domain().required()?.trim_end_matches('.').to_ascii_lowercase();
    let nsname = general.nsname().string()?.filter(|s| !s.is_empty()).unwrap_or_else(|| domain.clone());
    let nsadmin = general
        .nsadmin()
        .string()?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("hostmaster.{domain}"));
    let ttl = |entry: Entry<'_>, default: i64| -> Result<u32, ConfigError> {
        Ok(entry.integer(default, 0..=2_147_483_647)? as u32)
    };
    let default_ttl = ttl(dns.default_ttl(), defaults::DEFAULT_TTL.into())?;
    let apex = name_to_wire(&domain).map_err(|e| key_error("general.domain", e.to_string()))?;
    let mut records = Vec::new();
    for (index, line) in general.records().strings()?.iter().enumerate() {
        let record = parse_record(line, &apex.to_ascii_lowercase(), default_ttl).map_err(|source| {
            key_error("general.records", format!("record {index} ({}): {source}", quoted(line)))
        })?;
        records.push(record);
    }
    let zone = ZoneSettings {
        apex: domain,
        nsname: nsname.trim_end_matches('.').to_owned(),
        nsadmin: nsadmin.trim_end_matches('.').to_owned(),
        records,
        soa_ttl: ttl(dns.soa_ttl(), defaults::SOA_TTL.into())?,
        negative_ttl: ttl(dns.negative_ttl(), defaults::NEGATIVE_TTL.into())?,
        txt_ttl: ttl(dns.txt_ttl(), defaults::TXT_TTL.into())?,
        persist_ttl: ttl(dns.persist_ttl(), defaults::PERSIST_TTL.into())?,
        default_ttl,
        udp_size: dns.edns_udp_size().integer(defaults::EDNS_UDP_SIZE.into(), 512..=4096)? as u16,
        nsid: nsid(dns.nsid())?,
    };
    // What the zone would refuse is refused here, before anything is bound or opened.
    zone.check().map_err(|e| match e {
        ZoneError::Name { field, source } => key_error(&format!("general.{field}"), source.to_string()),
        ZoneError::Conflict(reason) => key_error("general.records", reason),
    })?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as i64;
    let server = ServerOptions {
        tcp_idle_timeout: Duration::from_secs(
            dns.tcp_idle_timeout().integer(defaults::TCP_IDLE_TIMEOUT as i64, 1..=3600)? as u64,
        ),
        tcp_first_message_timeout: Duration::from_secs(
            dns.tcp_first_message_timeout().integer(defaults::TCP_FIRST_MESSAGE_TIMEOUT as i64, 1..=3600)?
                as u64,
        ),
        tcp_max_connections: dns
            .tcp_max_connections()
            .integer(defaults::TCP_MAX_CONNECTIONS as i64, 1..=65_536)? as usize,
        tcp_max_connections_per_network: dns
            .tcp_max_connections_per_network()
            .integer(defaults::TCP_MAX_CONNECTIONS_PER_NETWORK as i64, 1..=65_536)?
            as usize,
        udp_workers: dns.udp_workers().integer(cores, 1..=256)? as usize,
        rate_limit: dns.rate_limit().integer(defaults::RATE_LIMIT.into(), 0..=1_000_000)? as u32,
        rate_limit_slip: dns.rate_limit_slip().integer(defaults::RATE_LIMIT_SLIP.into(), 0..=100)? as u32,
    };
    let txt_values = dns.txt_values().integer(defaults::TXT_VALUES as i64, 1..=100)? as usize;
    Ok(Dns { listen, transports: Transports { udp, tcp }, zone, server, txt_values })
}

/// `dns.nsid`: the name server identifier (RFC 5001) as its bytes; empty or absent is off.
fn nsid(entry: Entry<'_>) -> Result<Option<Vec<u8>>, ConfigError> {
    match entry.string()? {
        Some(id) if id.len() > 255 => Err(key_error(entry.key, "longer than 255 bytes")),
        Some(id) if !id.is_empty() => Ok(Some(id.into_bytes())),
        _ => Ok(None),
    }
}

/// Builds `[database]`.
pub(super) fn database(
    database: &raw::Database,
    warnings: &mut Vec<String>,
) -> Result<Database, ConfigError> {
    let engine = match database.engine().required()?.to_ascii_lowercase().as_str() {
        "sqlite3" | "sqlite" => Engine::Sqlite,
        "postgres" | "postgresql" => Engine::Postgres,
        other => {
            return Err(key_error(
                "database.engine",
                format!("{} is not one of sqlite3, sqlite, postgres", quoted(other)),
            ));
        }
    };
    // Refused here, so that check-config and the start both say so before anything runs.
    let (name, built) = match engine {
        Engine::Sqlite => ("sqlite", cfg!(feature = "sqlite")),
        Engine::Postgres => ("postgres", cfg!(feature = "postgres")),
    };
    if !built {
        let reason = format!("this build has no {name} support (it was built without the `{name}` feature)");
        return Err(key_error("database.engine", reason));
    }
    let connection = database.connection().required()?;
    if engine == Engine::Sqlite && connection.starts_with("postgres") {
        warnings.push("database.connection looks like a PostgreSQL URL but the engine is SQLite".into());
    }
    Ok(Database { engine, connection })
}

/// Builds `[api]`.
pub(super) fn api(api: &raw::Api, warnings: &mut Vec<String>) -> Result<Api, ConfigError> {
    let tls_text = api.tls().string()?.unwrap_or_default().to_ascii_lowercase();
    let tls = match tls_text.as_str() {
        "" | "none" => Tls::None,
        "cert" => Tls::Cert {
            privkey: api.tls_cert_privkey().required()?.into(),
            fullchain: api.tls_cert_fullchain().required()?.into(),
        },
        "letsencrypt" | "letsencryptstaging" => {
            let default =
                if tls_text == "letsencrypt" { defaults::LETSENCRYPT } else { defaults::LETSENCRYPT_STAGING };
            let directory = api.acme_directory().string()?.filter(|d| !d.is_empty());
            let directory = directory.unwrap_or_else(|| default.to_owned());
            if !directory.starts_with("https://") {
                return Err(key_error(
                    "api.acme_directory",
                    format!("{} is not an https:// URL", quoted(&directory)),
                ));
            }
            let cache_dir = api.acme_cache_dir().string()?.filter(|d| !d.is_empty());
            Tls::Acme {
                directory,
                cache_dir: cache_dir.unwrap_or_else(|| defaults::ACME_CACHE_DIR.into()).into(),
                email: api.notification_email().string()?.filter(|e| !e.is_empty()),
                ca_file: api.acme_ca_file().string()?.filter(|f| !f.is_empty()).map(PathBuf::from),
            }
        }
        other => {
            return Err(key_error(
                "api.tls",
                format!("{} is not one of none, cert, letsencrypt, letsencryptstaging", quoted(other)),
            ));
        }
    };
    let default_port = if tls == Tls::None { defaults::API_PORT_HTTP } else { defaults::API_PORT_HTTPS };
    let port = api.port().integer(default_port.into(), 0..=65_535)? as u16;
    let ip_text = api.ip().string()?.unwrap_or_default();
    let ip_trimmed = ip_text.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if ip_trimmed.is_empty() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        ip_trimmed
            .parse()
            .map_err(|_| key_error("api.ip", format!("{} is not an IP address", quoted(&ip_text))))?
    };
    let use_header = api.use_header().boolean()?;
    let header_name = api.header_name().string()?.unwrap_or_default();
    if use_header && header_name.trim().is_empty() {
        return Err(key_error(
            "api.header_name",
            "must be set when api.use_header = true (e.g. \"X-Forwarded-For\")",
        ));
    }
    let mut trusted_proxies = Vec::new();
    let proxies = api.trusted_proxies().strings()?;
    if use_header && proxies.is_empty() {
        warnings.push(
            "api.use_header is on but api.trusted_proxies is not set: trusting the header only from loopback \
             (127.0.0.0/8, ::1/128)"
                .into(),
        );
    }
    let proxies =
        if proxies.is_empty() { defaults::TRUSTED_PROXIES.map(String::from).to_vec() } else { proxies };
    for text in proxies {
        trusted_proxies.push(
            text.parse()
                .map_err(|e: crate::cidr::CidrError| key_error("api.trusted_proxies", e.to_string()))?,
        );
    }
    let hsts = if api.hsts_enabled().boolean()? {
        let mut max_age = api.hsts_max_age().integer(defaults::HSTS_MAX_AGE, i64::MIN..=i64::MAX)?;
        if max_age <= 0 {
            max_age = defaults::HSTS_MAX_AGE;
        }
        let mut value = format!("max-age={max_age}");
        if api.hsts_include_subdomains().boolean()? {
            value.push_str("; includeSubDomains");
        }
        if api.hsts_preload().boolean()? {
            value.push_str("; preload");
        }
        Some(value)
    } else {
        None
    };
    let registration = if api.disable_registration().boolean()? {
        Registration::Closed
    } else {
        match api.registration().string()?.unwrap_or_default().to_ascii_lowercase().as_str() {
            "" | "open" => Registration::Open,
            "closed" => Registration::Closed,
            "token" => {
                let token = api.registration_token().required()?;
                if token.len() < 16 {
                    return Err(key_error("api.registration_token", "must be at least 16 characters"));
                }
                Registration::Token(Secret::new(token))
            }
            other => {
                return Err(key_error(
                    "api.registration",
                    format!("{} is not one of open, token, closed", quoted(other)),
                ));
            }
        }
    };
    if !api.allow_registration_from().strings()?.is_empty() {
        // A development version of acme-dns had it; refusing the file would break such a
        // set-up, and ignoring it silently would open registration wider than it says.
        warnings.push(format!(
            "api.allow_registration_from is not supported and is ignored: registration is {} from every \
             network; limit it with api.registration = \"token\" or \"closed\" instead",
            registration.name()
        ));
    }
    Ok(Api {
        listen: SocketAddr::new(ip, port),
        registration,
        register_rate_limit: api
            .register_rate_limit()
            .integer(defaults::REGISTER_RATE_LIMIT.into(), 0..=1_000_000)?
            as u32,
        auth_failure_limit: api
            .auth_failure_limit()
            .integer(defaults::AUTH_FAILURE_LIMIT.into(), 0..=1_000_000)? as u32,
        update_rate_limit: api
            .update_rate_limit()
            .integer(defaults::UPDATE_RATE_LIMIT.into(), 0..=1_000_000)? as u32,
        tls,
        use_header,
        header_name: header_name.trim().to_owned(),
        trusted_proxies,
        body_limit: api.body_limit().integer(defaults::BODY_LIMIT as i64, 256..=1_048_576)? as usize,
        request_timeout: Duration::from_secs(
            api.request_timeout().integer(defaults::REQUEST_TIMEOUT as i64, 1..=600)? as u64,
        ),
        header_timeout: Duration::from_secs(
            api.header_timeout().integer(defaults::HEADER_TIMEOUT as i64, 1..=600)? as u64,
        ),
        cors_origins: api.corsorigins().strings()?,
        hsts,
    })
}

/// Builds `[privacy]`; the pseudonym secret's file defaults to one beside the SQLite
/// database (a directory the server can write and the operator keeps).
pub(super) fn privacy(
    section: &raw::Privacy,
    database: &Database,
    warnings: &mut Vec<String>,
) -> Result<Privacy, ConfigError> {
    let defaults = Privacy::default();
    let client_ip = match section.client_ip().string()?.unwrap_or_default().to_ascii_lowercase().as_str() {
        "" | "truncated" => IpPolicy::Truncated,
        "full" => IpPolicy::Full,
        "none" => IpPolicy::None,
        other => {
            return Err(key_error(
                "privacy.client_ip",
                format!("{} is not one of truncated, full, none", quoted(other)),
            ));
        }
    };
    let log_subdomain =
        match section.log_subdomain().string()?.unwrap_or_default().to_ascii_lowercase().as_str() {
            "" | "pseudonym" => {
                let configured = section.log_subdomain_key().string()?.filter(|p| !p.trim().is_empty());
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
                    format!("{} is not one of pseudonym, full", quoted(other)),
                ));
            }
        };
    let expiry = section.account_expiry().duration(0)?;
    Ok(Privacy {
        client_ip,
        log_subdomain,
        audit_retention: section.audit_retention().duration(defaults.audit_retention)?,
        txt_retention: section.txt_retention().duration(defaults.txt_retention)?,
        account_expiry: (expiry > 0).then_some(expiry),
        purge_interval: section.purge_interval().duration(defaults.purge_interval)?.max(1),
    })
}

/// Builds `[dnssec]`.
pub(super) fn dnssec(section: &raw::Dnssec) -> Result<Option<Dnssec>, ConfigError> {
    if !section.enabled().boolean()? {
        return Ok(None);
    }
    let algorithm = match section.algorithm().value {
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
    let validity =
        section.signature_validity().integer(defaults::SIGNATURE_VALIDITY.into(), 10..=365 * 86_400)? as u32;
    let refresh = section.refresh().integer(defaults::SIGNATURE_REFRESH.into(), 5..=364 * 86_400)? as u32;
    if refresh >= validity {
        return Err(key_error(
            "dnssec.refresh",
            format!("{refresh} must be shorter than dnssec.signature_validity ({validity})"),
        ));
    }
    let cds = match section.cds().string()?.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("always") => CdsPolicy::Always,
        Some("rollover") => CdsPolicy::Rollover,
        Some("never") => CdsPolicy::Never,
        Some(other) => {
            return Err(key_error(
                "dnssec.cds",
                format!("{} is not always, rollover or never", quoted(other)),
            ));
        }
    };
    let parent = section
        .parent()
        .strings()?
        .iter()
        .map(|text| {
            text.trim()
                .parse::<std::net::SocketAddr>()
                .map_err(|_| key_error("dnssec.parent", format!("{} is not an address:port", quoted(text))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let seconds = |value: u64, key: &'static str| {
        u32::try_from(value).map_err(|_| key_error(key, format!("{value} s is longer than 136 years")))
    };
    let policy = KeyPolicy {
        algorithm,
        cds,
        parent,
        parent_ds_ttl: seconds(section.parent_ds_ttl().duration(86_400)?, "dnssec.parent_ds_ttl")?,
        key_lifetime: section.key_lifetime().duration(0)?,
        dnskey_ttl: seconds(section.dnskey_ttl().duration(3600)?, "dnssec.dnskey_ttl")?,
        propagation_delay: seconds(section.propagation_delay().duration(300)?, "dnssec.propagation_delay")?,
    };
    Ok(Some(Dnssec { algorithm, validity, refresh, policy }))
}

/// Builds `[logconfig]`.
pub(super) fn log(logconfig: &raw::Logconfig) -> Result<Log, ConfigError> {
    let level_text =
        logconfig.loglevel().string()?.unwrap_or_else(|| defaults::LOG_LEVEL.into()).to_ascii_lowercase();
    let level = match level_text.as_str() {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "" | "info" => tracing::Level::INFO,
        "warn" | "warning" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        other => {
            return Err(key_error(
                "logconfig.loglevel",
                format!("{} is not one of debug, info, warning, error", quoted(other)),
            ));
        }
    };
    let target = match logconfig.logtype().string()?.unwrap_or_default().to_ascii_lowercase().as_str() {
        "" | "stdout" => LogTarget::Stdout,
        "stderr" => LogTarget::Stderr,
        "file" => LogTarget::File(
            logconfig
                .logfile()
                .string()?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| key_error("logconfig.logfile", "must be set when logtype = \"file\""))?
                .into(),
        ),
        other => {
            return Err(key_error(
                "logconfig.logtype",
                format!("{} is not one of stdout, stderr, file", quoted(other)),
            ));
        }
    };
    let json = match logconfig.logformat().string()?.unwrap_or_default().to_ascii_lowercase().as_str() {
        "json" => true,
        "" | "text" => false,
        other => {
            return Err(key_error(
                "logconfig.logformat",
                format!("{} is not one of text, json", quoted(other)),
            ));
        }
    };
    Ok(Log { level, target, json })
}
