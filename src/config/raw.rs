//! The raw layer: the file as written, one struct per section and one field per key.
//!
//! Design note: the list of keys the server knows is these structs, and nothing else. Each
//! section is declared once with [`section!`], which makes the serde struct (one
//! `Option<Value>` per key; keys not declared land in `unknown`, to be named to the caller),
//! the section's list of keys (for the sample-file test), one accessor per key that carries
//! the key's full name into error messages, and the section's reference: its doc comments and
//! each key's doc, type and default (`key: "type" = default,`), from which `generate` writes
//! the acme-delegate.conf(5) page (see `docs`). The validated layer (`build.rs`) can only read a
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

use super::docs::{self, duration, quote};
use super::{ConfigError, defaults, key_error, quoted};

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

/// `Some(value)`, or `None` when the optional macro fragment is absent.
macro_rules! some_or_none {
    () => {
        None
    };
    ($value:expr) => {
        Some($value)
    };
}

/// Declares a section: the serde struct, its name, its keys, an accessor per key, and its
/// reference (the docs, and each key's type and default, for `acme-delegate.conf(5)`).
macro_rules! section {
    (
        $(#[doc = $doc:literal])*
        $name:ident = $section:literal {
            $(
                $(#[doc = $key_doc:literal])*
                $(#[allow($($allow:tt)*)])*
                $key:ident $(: $kind:literal = $default:expr)?,
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Default, serde::Deserialize)]
        pub(super) struct $name {
            $($(#[doc = $key_doc])* $(#[allow($($allow)*)])* $key: Option<Value>,)*
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
                $(#[doc = $key_doc])*
                $(#[allow($($allow)*)])*
                pub(super) fn $key(&self) -> Entry<'_> {
                    Entry { key: concat!($section, ".", stringify!($key)), value: self.$key.as_ref() }
                }
            )*

            /// Whether the file sets none of the section's keys (an optional section is then off).
            #[allow(dead_code, reason = "only the optional sections ask")]
            pub(super) fn is_empty(&self) -> bool {
                [$(self.$key.is_none()),*].iter().all(|&none| none)
            }

            /// The section's doc, and each key's doc, type and default, as declared here.
            fn reference() -> docs::Section {
                docs::Section {
                    name: $section,
                    doc: concat!($($doc, "\n"),*),
                    keys: vec![$(docs::Key {
                        name: stringify!($key),
                        doc: concat!($($key_doc, "\n"),*),
                        kind: some_or_none!($($kind)?),
                        default: some_or_none!($($default.to_string())?),
                    }),*],
                }
            }
        }
    };
}

section! {
    /// `[general]` (acme-dns): DNS listeners and the zone.
    General = "general" {
        /// DNS listen address or addresses: `host:port`, `[v6]:port`, or `:port` for every
        /// interface.
        listen: "address or list of addresses"
            = format!("{} (port 53 of every interface, as acme-dns)", quote(defaults::LISTEN)),
        /// UDP and/or TCP, IPv4 and/or IPv6.
        protocol: "both, both4, both6, udp, udp4, udp6, tcp, tcp4 or tcp6" = quote(defaults::PROTOCOL),
        /// The zone's apex: the domain this server is authoritative for (mandatory).
        domain: "domain name" = "none (mandatory)",
        /// SOA MNAME: the primary name server's name.
        nsname: "domain name" = "the domain",
        /// SOA RNAME: the zone administrator's mailbox, written as a name.
        nsadmin: "domain name" = "hostmaster.<domain>",
        /// Static records, one zone-file line each: `owner [ttl] [IN] TYPE data` (A, AAAA,
        /// CNAME, NS, MX, TXT, CAA, SRV, PTR; no wildcards). A bad line stops the server.
        records: "list of strings" = "no records",
        /// acme-dns's CORS debug switch: accepted, and ignored.
        #[allow(dead_code, reason = "accepted for acme-dns compatibility and unused")]
        debug: "true or false" = "false",
        /// How far this instance's clock may be from the database's (ours). Beyond it, the
        /// instance records no DNSSEC signing epoch and runs no purge, and says so.
        max_clock_skew: "duration, at least 1 s" = duration(defaults::MAX_CLOCK_SKEW),
        /// What an unknown section or key is (ours): `error` stops the start and `check-config`,
        /// `warn` only names it (as `--lenient` does), for acme-dns files with foreign keys.
        unknown_keys: "error or warn" = quote("error"),
    }
}

section! {
    /// `[database]` (acme-dns): the store.
    Database = "database" {
        /// `sqlite3` and `sqlite` are the same; `postgres` lets several instances share one
        /// database.
        engine: "sqlite3, sqlite or postgres" = "none (mandatory)",
        /// SQLite file path (its directory must exist), or a `postgres://` URL.
        connection: "file path or postgres:// URL" = "none (mandatory)",
    }
}

section! {
    /// `[api]` (acme-dns, plus our keys): the HTTP API.
    Api = "api" {
        /// Listen address.
        ip: "IP address" = "\"\" (every interface, IPv4 and IPv6)",
        /// Listen port.
        port: "integer, 0 to 65535 (a string of digits too)" = format!(
            "{} with tls = \"none\", {} with TLS",
            defaults::API_PORT_HTTP,
            defaults::API_PORT_HTTPS
        ),
        /// `true` closes registration: `POST /register` answers 404.
        disable_registration: "true or false" = "false",
        /// `none`: plain HTTP. `cert`: HTTPS with the two PEM files below. `letsencrypt*`: the
        /// API gets and renews a certificate for `general.domain` by DNS-01 from its own zone.
        tls: "none, cert, letsencrypt or letsencryptstaging" = quote("none"),
        /// PEM private key for `tls = "cert"`.
        tls_cert_privkey: "file path" = "none (mandatory with tls = \"cert\")",
        /// PEM certificate chain for `tls = "cert"`.
        tls_cert_fullchain: "file path" = "none (mandatory with tls = \"cert\")",
        /// Where the ACME account, certificate and key are kept with `tls = "letsencrypt*"`
        /// (relative to the working directory).
        acme_cache_dir: "directory path" = quote(defaults::ACME_CACHE_DIR),
        /// Contact address given to the CA.
        notification_email: "e-mail address" = "none",
        /// Another ACME CA's directory URL (ours).
        acme_directory: "https:// URL" = "Let's Encrypt's, production or staging as tls says",
        /// PEM root certificate to trust for the CA's HTTPS instead of the system's (ours).
        acme_ca_file: "file path" = "none (the system's roots)",
        /// CORS origins allowed.
        corsorigins: "list of strings" = "every origin",
        /// Take the client address from a proxy header (for allowfrom and the logs).
        use_header: "true or false" = "false",
        /// That header's name, e.g. `X-Forwarded-For`.
        header_name: "HTTP header name" = "none (mandatory with use_header = true)",
        /// acme-dns's separate API host name (its autocert): accepted, and ignored; the API's
        /// certificate is for `general.domain`.
        #[allow(dead_code, reason = "accepted for acme-dns compatibility and unused")]
        api_domain: "string" = "none",
        /// acme-dns's HTTP-01 port for its autocert: accepted, and ignored (we use DNS-01).
        #[allow(dead_code, reason = "accepted for acme-dns compatibility and unused")]
        autocert_port: "string" = "none",
        /// A development version of acme-dns's networks allowed to register; not supported here
        /// (warned about when set: `registration` is the way).
        allow_registration_from: "list of networks" = "none (not supported: warned about)",
        /// acme-dns v2's HSTS switch: send Strict-Transport-Security.
        hsts_enabled: "true or false" = "false",
        /// HSTS max-age, in seconds (0 or less: the default).
        hsts_max_age: "integer" = defaults::HSTS_MAX_AGE,
        /// HSTS includeSubDomains.
        hsts_include_subdomains: "true or false" = "false",
        /// HSTS preload.
        hsts_preload: "true or false" = "false",
        /// Networks whose proxy header is believed (ours); the right-most address in it that
        /// is not a trusted proxy is the client.
        trusted_proxies: "list of networks (CIDR)"
            = format!("loopback only: {}", defaults::TRUSTED_PROXIES.join(", ")),
        /// Who may register (ours): `token` requires `Authorization: Bearer <registration_token>`.
        registration: "open, token or closed" = quote("open"),
        /// Bearer token for `registration = "token"` (ours).
        registration_token: "string of at least 16 characters"
            = "none (mandatory with registration = \"token\")",
        /// Registrations per client network (/24, /48) per hour (ours); 0 turns it off.
        register_rate_limit: "integer, 0 to 1000000" = defaults::REGISTER_RATE_LIMIT,
        /// Failed authentications per client network and username per 10 minutes (ours); 0
        /// turns it off.
        auth_failure_limit: "integer, 0 to 1000000" = defaults::AUTH_FAILURE_LIMIT,
        /// Updates per account per minute (ours); 0 turns it off.
        update_rate_limit: "integer, 0 to 1000000" = defaults::UPDATE_RATE_LIMIT,
        /// Largest request body, in bytes (ours).
        body_limit: "integer, 256 to 1048576" = defaults::BODY_LIMIT,
        /// Seconds allowed for a request's body (ours).
        request_timeout: "integer, 1 to 600" = defaults::REQUEST_TIMEOUT,
        /// Seconds allowed for a request's headers (ours).
        header_timeout: "integer, 1 to 600" = defaults::HEADER_TIMEOUT,
    }
}

section! {
    /// `[logconfig]` (acme-dns): logging.
    Logconfig = "logconfig" {
        /// Most verbose level logged.
        loglevel: "trace, debug, info, warning or error" = quote(defaults::LOG_LEVEL),
        /// Where the log goes.
        logtype: "stdout, stderr or file" = quote("stdout"),
        /// The file for `logtype = "file"`.
        logfile: "file path" = "none (mandatory with logtype = \"file\")",
        /// One line of text, or one JSON object, per event.
        logformat: "text or json" = quote("text"),
    }
}

section! {
    /// `[dnssec]` (ours): online signing, with a key made at first start and kept in the
    /// database, rolled by `dnssec rollover` or at `key_lifetime`; `dnssec ds` prints the DS.
    Dnssec = "dnssec" {
        /// Signing on or off.
        enabled: "true or false" = "false",
        /// Signing algorithm.
        algorithm: "ecdsap256sha256 (13) or ed25519 (15)" = quote("ecdsap256sha256"),
        /// Seconds a signature is valid.
        signature_validity: "integer, 10 to 31536000" = defaults::SIGNATURE_VALIDITY,
        /// Seconds before expiry a signature is renewed (< `signature_validity`).
        refresh: "integer, 5 to 31449600" = defaults::SIGNATURE_REFRESH,
        /// CDS and CDNSKEY for the key(s) the parent should hold: always, in rollovers, never.
        cds: "always, rollover or never" = quote("always"),
        /// The parent's servers, asked for our DS in a rollover (none: `dnssec ds-seen`).
        parent: "list of address:port" = "[]",
        /// TTL of our DS record at the parent.
        parent_ds_ttl: "duration" = duration(86_400),
        /// Age at which the key is rolled on its own; 0: only by `dnssec rollover`.
        key_lifetime: "duration, e.g. 365d" = duration(0),
        /// TTL of the DNSKEY, CDS and CDNSKEY sets.
        dnskey_ttl: "duration" = duration(3600),
        /// Time allowed for a change to reach every server and cache once served.
        propagation_delay: "duration" = duration(300),
    }
}

section! {
    /// `[privacy]` (ours): minimisation and retention.
    Privacy = "privacy" {
        /// Client addresses in logs and the audit trail: cut to /24 or /48, in full, or not at
        /// all.
        client_ip: "truncated, full or none" = quote("truncated"),
        /// How logs name a subdomain: a keyed pseudonym, or the name itself.
        log_subdomain: "pseudonym or full" = quote("pseudonym"),
        /// The file holding the pseudonyms' secret (made at first start, mode 0600).
        log_subdomain_key: "file path"
            = "log-subdomain.key beside the SQLite database; with PostgreSQL, a new secret at each start",
        /// How long the audit trail of credential uses is kept.
        audit_retention: "duration" = duration(crate::privacy::Privacy::default().audit_retention),
        /// How long TXT values are kept after they were set.
        txt_retention: "duration" = duration(crate::privacy::Privacy::default().txt_retention),
        /// Accounts not updated for this long are deleted; 0 keeps them.
        account_expiry: "duration" = "0 (accounts are kept)",
        /// How often the purge runs.
        purge_interval: "duration" = duration(crate::privacy::Privacy::default().purge_interval),
    }
}

section! {
    /// `[dns]` (ours): DNS details.
    Dns = "dns" {
        /// TXT values kept and served per subdomain, newest last.
        txt_values: "integer, 1 to 100" = defaults::TXT_VALUES,
        /// TTL of the TXT answers, in seconds.
        txt_ttl: "integer, 0 to 2147483647" = defaults::TXT_TTL,
        /// TTL of the dns-persist-01 records, in seconds.
        persist_ttl: "integer, 0 to 2147483647" = defaults::PERSIST_TTL,
        /// Negative-caching TTL (the SOA minimum), in seconds.
        negative_ttl: "integer, 0 to 2147483647" = defaults::NEGATIVE_TTL,
        /// TTL of the SOA, in seconds.
        soa_ttl: "integer, 0 to 2147483647" = defaults::SOA_TTL,
        /// TTL of static records written without one, in seconds.
        default_ttl: "integer, 0 to 2147483647" = defaults::DEFAULT_TTL,
        /// EDNS UDP payload size advertised, and the limit for UDP answers.
        edns_udp_size: "integer, 512 to 4096" = defaults::EDNS_UDP_SIZE,
        /// Name server identifier (RFC 5001) for queries that ask for it.
        nsid: "string of at most 255 bytes" = "none (off)",
        /// Seconds a TCP connection may idle between messages.
        tcp_idle_timeout: "integer, 1 to 3600" = defaults::TCP_IDLE_TIMEOUT,
        /// TCP connections at most.
        tcp_max_connections: "integer, 1 to 65536" = defaults::TCP_MAX_CONNECTIONS,
        /// TCP connections at most per client network (/24, /56).
        tcp_max_connections_per_network: "integer, 1 to 65536" = defaults::TCP_MAX_CONNECTIONS_PER_NETWORK,
        /// Seconds a new TCP connection has to deliver its first query.
        tcp_first_message_timeout: "integer, 1 to 3600" = defaults::TCP_FIRST_MESSAGE_TIMEOUT,
        /// UDP worker threads per listen address.
        udp_workers: "integer, 1 to 256" = "the number of CPUs",
        /// Response rate limit: UDP answers per second per client network (/24, /56); 0 turns
        /// it off.
        rate_limit: "integer, 0 to 1000000" = defaults::RATE_LIMIT,
        /// Every how many limited answers one is sent truncated (the others are dropped); 0
        /// drops them all.
        rate_limit_slip: "integer, 0 to 100" = defaults::RATE_LIMIT_SLIP,
    }
}

section! {
    /// `[transfer]` (ours): zone transfers to secondaries, NOTIFY and their TSIG key. Without
    /// this section AXFR and IXFR are refused and no NOTIFY is sent.
    Transfer = "transfer" {
        /// Networks that may AXFR/IXFR.
        allow_transfer: "list of networks (CIDR)" = "nobody",
        /// Secondaries told of every change (an address alone means port 53).
        notify: "list of addresses (address or address:port)" = "none",
        /// The TSIG key's name; when set, transfers and NOTIFY need the key.
        tsig_name: "domain name" = "none (no TSIG)",
        /// The TSIG key's algorithm.
        tsig_algorithm: "hmac-sha256 or hmac-sha512" = quote("hmac-sha256"),
        /// The key's secret, base64 (at least 16 bytes).
        tsig_secret: "base64" = "none (mandatory with tsig_name)",
        /// Whether `POST /update` answers only once every secondary serves the change.
        wait_for_secondaries: "none or all" = "\"all\" when notify lists secondaries, else \"none\"",
        /// How long it waits at most, in seconds.
        wait_timeout: "integer, 1 to 300" = defaults::WAIT_TIMEOUT,
        /// Transfers at once, in all; more are refused (REFUSED) until one ends.
        max_transfers: "integer, 1 to 10000" = defaults::MAX_TRANSFERS,
        /// Transfers at once per client network (/24 for IPv4, /56 for IPv6).
        max_transfers_per_network: "integer, 1 to 10000" = defaults::MAX_TRANSFERS_PER_NETWORK,
        /// Where to serve zone transfers over TLS (XoT, RFC 9103; DNS over TLS with ALPN "dot").
        tls_listen: "address or list of addresses (host:port, [v6]:port, :port)" = "none (no TLS)",
        /// PEM certificate chain of the TLS listener (read again on reload).
        tls_cert_fullchain: "file path" = "none (mandatory with tls_listen)",
        /// PEM private key of that certificate (read again on reload).
        tls_cert_privkey: "file path" = "none (mandatory with tls_listen)",
        /// PEM CA certificates for mutual TLS: then a client must show a certificate they signed.
        tls_client_ca: "file path" = "none (no client certificate asked for)",
        /// `false` refuses AXFR and IXFR over clear TCP (REFUSED): transfers over TLS only.
        clear_transfers: "true or false" = "true",
    }
}

section! {
    /// `[metrics]` (ours): the Prometheus exporter (`GET /metrics`). Without this section
    /// nothing listens.
    Metrics = "metrics" {
        /// `address:port` of the exporter, never the API's.
        listen: "address:port" = "none (no exporter)",
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

            /// Every section's reference, in the order above (see `docs`).
            pub(super) fn reference() -> Vec<docs::Section> {
                vec![$($section::reference()),*]
            }

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
