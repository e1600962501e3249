//! The raw layer: the file as written, one struct per section and one field per key.
//!
//! Design note: the list of keys the server knows is these structs, and nothing else. Each
//! section is declared once with [`section!`], which makes the serde struct (one
//! `Option<Value>` per key; keys not declared land in `unknown`, to be named to the caller),
//! the section's list of keys (for the sample-file test) and one accessor per key that carries
//! the key's full name into error messages. The validated layer (`build.rs`) can only read a
//! key through its accessor, so a key cannot be read without being known, nor known without
//! being declared here (and a declared key that nothing reads is dead code, which the compiler
//! reports, unless it is marked as accepted for compatibility). Every key acme-dns itself reads
//! is declared, so its `config.cfg` is known as written; what is still unknown (a typo such as
//! `[dnsec]`) is listed by name, and the caller refuses it or warns (`general.unknown_keys`).
//!
//! Values stay TOML values here because acme-dns's files are loose about types (`port = "443"`
//! as a string, `listen` as a string or a list); [`Entry`] turns them into typed values with
//! errors that name the key and say what is wrong.

use toml::{Table, Value};

use super::{ConfigError, key_error, quoted};

/// Lower-cases every key of a table, recursively; two keys that differ only in case collide.
///
/// acme-dns's TOML library matches keys case-insensitively, so `Domain = ...` must work here.
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

/// One key's value as written, with its full name for messages.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry<'a> {
    /// `section.key`.
    pub(super) key: &'static str,
    /// The value, when the key is present.
    pub(super) value: Option<&'a Value>,
}

impl Entry<'_> {
    /// A string value.
    pub(super) fn string(&self) -> Result<Option<String>, ConfigError> {
        match self.value {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(key_error(self.key, format!("expected a string, found {}", other.type_str()))),
        }
    }

    /// A mandatory, non-empty string.
    pub(super) fn required(&self) -> Result<String, ConfigError> {
        match self.string()? {
            Some(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(_) => Err(key_error(self.key, "must not be empty")),
            None => Err(key_error(self.key, "missing (this key is mandatory)")),
        }
    }

    /// A boolean, default false.
    pub(super) fn boolean(&self) -> Result<bool, ConfigError> {
        match self.value {
            None => Ok(false),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => {
                Err(key_error(self.key, format!("expected true or false, found {}", other.type_str())))
            }
        }
    }

    /// An integer within `range`, or `default`. Strings of digits are accepted too.
    pub(super) fn integer(
        &self,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let value = match self.value {
            None => return Ok(default),
            Some(Value::Integer(i)) => *i,
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| key_error(self.key, format!("expected a number, found {}", quoted(s))))?,
            Some(other) => {
                return Err(key_error(self.key, format!("expected a number, found {}", other.type_str())));
            }
        };
        if !range.contains(&value) {
            return Err(key_error(
                self.key,
                format!("{value} is out of range ({} to {})", range.start(), range.end()),
            ));
        }
        Ok(value)
    }

    /// A duration in seconds: a number, or a string like `"30d"`, `"12h"`, `"15m"`, `"90s"`.
    pub(super) fn duration(&self, default: u64) -> Result<u64, ConfigError> {
        let bad = |text: &str| {
            key_error(self.key, format!("{} is not a duration such as 30d, 12h, 15m or 90s", quoted(text)))
        };
        match self.value {
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
    pub(super) fn strings(&self) -> Result<Vec<String>, ConfigError> {
        match self.value {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => {
                        Err(key_error(self.key, format!("expected strings, found {}", other.type_str())))
                    }
                })
                .collect(),
            Some(other) => {
                Err(key_error(self.key, format!("expected a list of strings, found {}", other.type_str())))
            }
        }
    }
}

/// Declares a section: the serde struct, its name, its keys, and an accessor per key.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $name:ident = $section:literal {
            $($(#[$key_meta:meta])* $key:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, serde::Deserialize)]
        pub(super) struct $name {
            $($(#[$key_meta])* $key: Option<Value>,)*
            /// Keys not declared above, each named to the caller.
            #[serde(flatten)]
            unknown: Table,
        }

        impl $name {
            /// The section's name in the file.
            pub(super) const NAME: &'static str = $section;
            /// Every key the section knows.
            pub(super) const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            $(
                $(#[$key_meta])*
                pub(super) fn $key(&self) -> Entry<'_> {
                    Entry { key: concat!($section, ".", stringify!($key)), value: self.$key.as_ref() }
                }
            )*
        }
    };
}

section! {
    /// `[general]` (acme-dns): DNS listeners and the zone.
    General = "general" {
        /// DNS listen address or addresses.
        listen,
        /// UDP and/or TCP, IPv4 and/or IPv6.
        protocol,
        /// The zone's apex (mandatory).
        domain,
        /// SOA MNAME.
        nsname,
        /// SOA RNAME.
        nsadmin,
        /// Static records, one zone-file line each.
        records,
        /// acme-dns's CORS debug switch.
        #[allow(dead_code, reason = "accepted for acme-dns compatibility and unused")]
        debug,
        /// How far this instance's clock may be from the database's (ours).
        max_clock_skew,
        /// `error` (default) or `warn`: what an unknown section or key is (ours).
        unknown_keys,
    }
}

section! {
    /// `[database]` (acme-dns): the store.
    Database = "database" {
        /// `sqlite3`, `sqlite` or `postgres`.
        engine,
        /// File path or `postgres://` URL.
        connection,
    }
}

section! {
    /// `[api]` (acme-dns, plus our keys): the HTTP API.
    Api = "api" {
        /// Listen address.
        ip,
        /// Listen port.
        port,
        /// `true` closes registration.
        disable_registration,
        /// `none`, `cert`, `letsencrypt`, `letsencryptstaging`.
        tls,
        /// PEM key for `tls = "cert"`.
        tls_cert_privkey,
        /// PEM chain for `tls = "cert"`.
        tls_cert_fullchain,
        /// Where ACME state is kept.
        acme_cache_dir,
        /// Contact for the CA.
        notification_email,
        /// Another CA's directory URL (ours).
        acme_directory,
        /// PEM root to trust for the directory (ours).
        acme_ca_file,
        /// CORS origins.
        corsorigins,
        /// Take the client address from a proxy header.
        use_header,
        /// That header's name.
        header_name,
        /// acme-dns's separate API host name (its autocert); the API uses `general.domain`.
        #[allow(dead_code, reason = "accepted for acme-dns compatibility and unused")]
        api_domain,
        /// acme-dns's HTTP-01 port for its autocert; we use DNS-01.
        #[allow(dead_code, reason = "accepted for acme-dns compatibility and unused")]
        autocert_port,
        /// A development version of acme-dns's networks allowed to register; not supported here
        /// (warned about when set: `registration` is the way).
        allow_registration_from,
        /// acme-dns v2's HSTS switch.
        hsts_enabled,
        /// HSTS max-age.
        hsts_max_age,
        /// HSTS includeSubDomains.
        hsts_include_subdomains,
        /// HSTS preload.
        hsts_preload,
        /// Networks whose proxy header is believed (ours).
        trusted_proxies,
        /// `open`, `token`, `closed` (ours).
        registration,
        /// Bearer token for `registration = "token"` (ours).
        registration_token,
        /// Registrations per network per hour (ours).
        register_rate_limit,
        /// Failed authentications per network per 10 minutes (ours).
        auth_failure_limit,
        /// Updates per account per minute (ours).
        update_rate_limit,
        /// Largest request body (ours).
        body_limit,
        /// Time limit for a request (ours).
        request_timeout,
        /// Time limit for the headers (ours).
        header_timeout,
    }
}

section! {
    /// `[logconfig]` (acme-dns): logging.
    Logconfig = "logconfig" {
        /// Most verbose level.
        loglevel,
        /// `stdout`, `stderr` or `file`.
        logtype,
        /// The file for `logtype = "file"`.
        logfile,
        /// `text` or `json`.
        logformat,
    }
}

section! {
    /// `[dnssec]` (ours): online signing.
    Dnssec = "dnssec" {
        /// Signing on or off.
        enabled,
        /// Signing algorithm.
        algorithm,
        /// Seconds a signature is valid.
        signature_validity,
        /// Renew signatures with less than this left.
        refresh,
    }
}

section! {
    /// `[privacy]` (ours): minimisation and retention.
    Privacy = "privacy" {
        /// `truncated`, `full` or `none`.
        client_ip,
        /// `pseudonym` or `full`: how logs name a subdomain.
        log_subdomain,
        /// The file holding the pseudonyms' secret.
        log_subdomain_key,
        /// How long the audit trail is kept.
        audit_retention,
        /// How long TXT values are kept.
        txt_retention,
        /// Unused accounts are deleted after this.
        account_expiry,
        /// How often the purge runs.
        purge_interval,
    }
}

section! {
    /// `[dns]` (ours): DNS details.
    Dns = "dns" {
        /// TXT values kept per subdomain.
        txt_values,
        /// TTL of the TXT answers.
        txt_ttl,
        /// TTL of the dns-persist-01 records.
        persist_ttl,
        /// Negative-caching TTL.
        negative_ttl,
        /// TTL of the SOA.
        soa_ttl,
        /// TTL of static records written without one.
        default_ttl,
        /// EDNS UDP payload size.
        edns_udp_size,
        /// Name server identifier (RFC 5001).
        nsid,
        /// TCP idle timeout.
        tcp_idle_timeout,
        /// TCP connections at most.
        tcp_max_connections,
        /// TCP connections at most per client network.
        tcp_max_connections_per_network,
        /// Deadline for a TCP connection's first message.
        tcp_first_message_timeout,
        /// UDP worker threads per address.
        udp_workers,
        /// Response rate limit.
        rate_limit,
        /// Every how many limited answers one is sent truncated.
        rate_limit_slip,
    }
}

section! {
    /// `[transfer]` (ours): zone transfers to secondaries, NOTIFY and their TSIG key.
    Transfer = "transfer" {
        /// Networks that may AXFR/IXFR.
        allow_transfer,
        /// Secondaries told of every change.
        notify,
        /// The TSIG key's name; when set, transfers and NOTIFY need the key.
        tsig_name,
        /// `hmac-sha256` or `hmac-sha512`.
        tsig_algorithm,
        /// The key's secret, base64.
        tsig_secret,
        /// `none` or `all`: whether `POST /update` waits for the secondaries.
        wait_for_secondaries,
        /// How long it waits at most, in seconds.
        wait_timeout,
        /// Transfers at once, in all.
        max_transfers,
        /// Transfers at once per client network.
        max_transfers_per_network,
    }
}

impl Transfer {
    /// Whether the file sets none of the section's keys (then transfers stay off).
    pub(super) fn is_empty(&self) -> bool {
        [
            &self.allow_transfer,
            &self.notify,
            &self.tsig_name,
            &self.tsig_algorithm,
            &self.tsig_secret,
            &self.wait_for_secondaries,
            &self.wait_timeout,
            &self.max_transfers,
            &self.max_transfers_per_network,
        ]
        .iter()
        .all(|v| v.is_none())
    }
}

section! {
    /// `[metrics]` (ours): the Prometheus exporter.
    Metrics = "metrics" {
        /// `address:port` of `GET /metrics`; absent: no exporter.
        listen,
    }
}

/// Declares the file: one field per section, the list of sections and how each is read.
macro_rules! file {
    ($($field:ident: $section:ident,)*) => {
        /// The whole file as written, sections absent from it left empty.
        #[derive(Debug, Default)]
        pub(super) struct File {
            $(
                #[doc = concat!("`[", stringify!($field), "]`.")]
                pub(super) $field: $section,
            )*
        }

        impl File {
            /// Every section and its keys: the keys the server knows.
            pub(super) const SECTIONS: &'static [(&'static str, &'static [&'static str])] =
                &[$(($section::NAME, $section::KEYS)),*];

            /// Reads one section's table into its field, adding its unknown keys (`section.key`)
            /// to `unknown`; false for a section we do not know.
            fn read_section(&mut self, name: &str, table: Table, unknown: &mut Vec<String>)
                -> Result<bool, ConfigError>
            {
                match name {
                    $(
                        $section::NAME => {
                            let section: $section = Value::Table(table)
                                .try_into()
                                .map_err(|e: toml::de::Error| key_error(name, e.message().to_owned()))?;
                            unknown.extend(section.unknown.keys().map(|key| format!("key {name}.{key}")));
                            self.$field = section;
                            Ok(true)
                        }
                    )*
                    _ => Ok(false),
                }
            }
        }
    };
}

file! {
    general: General,
    database: Database,
    api: Api,
    logconfig: Logconfig,
    dnssec: Dnssec,
    privacy: Privacy,
    dns: Dns,
    transfer: Transfer,
    metrics: Metrics,
}

/// A syntax error as reported: the position and the character there, not the parser's own
/// display, which quotes the whole line (and `-c` may point at a password file by mistake).
fn syntax_error(text: &str, origin: &str, error: &toml::de::Error) -> ConfigError {
    let start = error.span().map_or(text.len(), |span| span.start).min(text.len());
    // A span from the parser falls on character boundaries; `get` keeps a bad one harmless.
    let before = text.get(..start).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let end = error.span().map_or(start, |span| span.end.max(start));
    let near = text.get(start..end).unwrap_or("").split('\n').next().unwrap_or("");
    ConfigError::Syntax {
        path: origin.to_owned(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        near: if near.is_empty() {
            "at the end of the line".to_owned()
        } else {
            format!("at {}", quoted(near))
        },
        message: error.message().lines().collect::<Vec<_>>().join("; "),
    }
}

impl File {
    /// Parses configuration text (`origin` names it in messages), adding every section and key
    /// we do not know to `unknown` (`section [name]`, `key section.name`), all of them even when
    /// the file has another error: a typo is often the cause of that error.
    pub(super) fn parse(text: &str, origin: &str, unknown: &mut Vec<String>) -> Result<Self, ConfigError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| syntax_error(text, origin, &e))?;
        let mut file = Self::default();
        let mut first_error = None;
        for (name, value) in lowercase_keys(table, "")? {
            let known = match value {
                Value::Table(table) => match file.read_section(&name, table, unknown) {
                    Ok(known) => known,
                    Err(error) => {
                        first_error.get_or_insert(error);
                        true
                    }
                },
                _ if Self::SECTIONS.iter().any(|(known, _)| *known == name) => {
                    first_error.get_or_insert(key_error(&name, "expected a [section]"));
                    true
                }
                _ => false,
            };
            if !known {
                unknown.push(format!("section [{name}]"));
            }
        }
        first_error.map_or(Ok(file), Err)
    }
}
