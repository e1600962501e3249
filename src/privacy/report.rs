//! The record of processing activities (GDPR Art. 30), generated from the running
//! configuration so that it cannot drift from what the server really does.
//!
//! Design note: the record is built as one JSON value; the Markdown form is rendered from that
//! same value, so the two formats always say the same thing.

use serde_json::{Value, json};

use super::pseudonym::SubdomainPolicy;
use super::{IpPolicy, Privacy};

/// Configuration facts the record depends on (filled in by the CLI from the config).
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    /// The zone served.
    pub(crate) domain: String,
    /// Retention and minimisation.
    pub(crate) privacy: Privacy,
    /// `open`, `token` or `closed`.
    pub(crate) registration: String,
    /// Storage engine name.
    pub(crate) store: String,
    /// Whether the API uses TLS itself.
    pub(crate) api_tls: bool,
    /// Whether a proxy header is trusted for client addresses.
    pub(crate) proxy_header: bool,
    /// Whether the zone is DNSSEC-signed.
    pub(crate) dnssec: bool,
    /// TXT values kept per account.
    pub(crate) txt_values: usize,
    /// DNS response rate limit (answers per second per client network; 0: off).
    pub(crate) dns_rate_limit: u32,
}

/// Human form of a number of seconds.
fn period(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

/// How client addresses are kept, in words.
fn ip_words(policy: IpPolicy) -> &'static str {
    match policy {
        IpPolicy::Truncated => {
            "truncated to the /24 (IPv4) or /48 (IPv6) network; full addresses are never stored"
        }
        IpPolicy::Full => "full addresses (configured: privacy.client_ip = \"full\")",
        IpPolicy::None => "not recorded at all",
    }
}

/// How subdomains appear in the logs, in words.
fn subdomain_words(policy: &SubdomainPolicy) -> String {
    match policy {
        SubdomainPolicy::Pseudonym { key_file: Some(path) } => format!(
            "as a short keyed pseudonym (HMAC-SHA256 with this instance's secret in {}, kept out of the \
             database; it cannot be tied back to the subdomain without that secret, and is the same \
             across restarts)",
            path.display()
        ),
        SubdomainPolicy::Pseudonym { key_file: None } => {
            "as a short keyed pseudonym (HMAC-SHA256 with a secret made at each start and never stored)"
                .into()
        }
        SubdomainPolicy::Full => "in full (configured: privacy.log_subdomain = \"full\"); it stays in log \
                                  lines written before an erasure"
            .into(),
    }
}

/// The record as JSON.
pub(crate) fn record(f: &Facts) -> Value {
    let p = &f.privacy;
    let expiry = p
        .account_expiry
        .map_or("kept until the account holder or the operator deletes them".to_owned(), |s| {
            format!("deleted after {} without a successful update", period(s))
        });
    let mut record = json!({
        "title": format!("Record of processing activities: acme-delegate for {}", f.domain),
        "controller": "the operator of this acme-delegate instance (fill in name and contact)",
        "purposes": [
            "answering ACME DNS-01 challenges delegated by domain owners (issuing TLS certificates)",
            "serving dns-persist-01 records that domain owners publish to let one CA issue to one ACME account",
            "authenticating API clients and restricting which networks may change an account's record",
            "security: detecting and limiting abuse of the API (audit trail, rate limits)",
        ],
        "data_subjects": [
            "domain owners and their ACME clients who register and use accounts",
            "clients that call the API without an account (failed or refused requests)",
        ],
        "categories": [
            {
                "data": "account identifiers: username and subdomain (random UUIDs), registration time, last use",
                "retention": expiry,
            },
            {
                "data": "API key: stored only as a SHA-256 hash (imported acme-dns keys: bcrypt until first use)",
                "retention": "with the account",
            },
            {
                "data": "allowfrom: networks the account holder chose to allow",
                "retention": "with the account; changeable with PATCH /account",
            },
            {
                "data": format!("TXT values (ACME validation tokens), the newest {} per account, also in the zone's change log that carries each change to every instance sharing the database", f.txt_values),
                "retention": format!("cleared {} after they were set", period(p.txt_retention)),
            },
            {
                "data": format!(
                    "dns-persist-01 records, at most {} per account: the issuer (a CA's domain name), the ACME account URI the account holder chose (it can identify an ACME account holder: the docs recommend the hashed form of draft-ietf-acme-dns-persist, which names no account), the wildcard policy and persistUntil, and when each was set",
                    crate::dns_persist::MAX_RECORDS
                ),
                "retention": "until persistUntil passes (then purged automatically), the record is deleted (DELETE /persist), or the account is erased; not cleared by the TXT retention, and a live record keeps its account in use",
            },
            {
                "data": format!("audit trail of every credential use: time, account, action, outcome, client address {}; identical uses within an hour are one entry with a count and the time of the last", ip_words(p.client_ip)),
                "retention": format!("{}, then purged automatically", period(p.audit_retention)),
            },
            {
                "data": format!(
                    "server logs: registrations, updates, key rotations and refused requests, with the account's subdomain {} and the client address {}; no keys or TXT values; DNS query sources are not logged",
                    subdomain_words(&p.log_subdomain),
                    ip_words(p.client_ip)
                ),
                "retention": "the operator's: acme-delegate writes logs to its configured output and neither keeps nor deletes them, so their retention is that of the operator's log rotation; erasing an account does not reach lines already written",
            },
            if f.dns_rate_limit > 0 {
                json!({
                    "data": "DNS response rate limiting: per client network (/24, /56) of recent UDP queries, a counter, in memory only",
                    "retention": "forgotten within about a minute of the network's last query; never stored or logged",
                })
            } else {
                Value::Null
            },
        ],
        "not_collected": ["e-mail addresses", "names", "DNS query sources (stored or logged)", "full client IP addresses (by default)"],
        "recipients": [
            "anyone can query the DNS zone: TXT values and dns-persist-01 records of an account are public while they are kept",
            "no other recipients; no transfers to third countries by acme-delegate itself",
        ],
        "rights": {
            "access_and_portability": "GET /account with the account's own credentials (all data above, as JSON)",
            "rectification": "PATCH /account (allowfrom), POST /account/rotate (new key)",
            "erasure": "DELETE /account (account, TXT values, dns-persist-01 records and audit entries; the names stop resolving at once); DELETE /persist for one record",
            "operator": "acme-delegate account list|show|export|delete",
        },
        "security_measures": [
            "API keys: 240-bit random, stored as SHA-256 hashes, compared in constant time, shown once",
            format!("registration: {}", f.registration),
            "rate limits on registration (per client network) and on failed authentication (per client network and username)",
            format!("API transport: {}", if f.api_tls { "TLS (certificate files or ACME)" } else { "plain HTTP: put a TLS proxy in front" }),
            format!("client address: {}", if f.proxy_header { "from the proxy header, believed only from trusted proxy networks" } else { "the connection's own address" }),
            if f.dns_rate_limit > 0 {
                format!("DNS: response rate limiting, {} UDP answers per second per client network, against reflection attacks", f.dns_rate_limit)
            } else {
                "DNS: response rate limiting off".to_owned()
            },
            format!("DNSSEC: {}", if f.dnssec { "the zone is signed; the signing key stays in the store and is never logged" } else { "off" }),
            format!("store: {}; {}", f.store, erasure_words(f)),
        ],
    });
    // Categories that do not apply (null) are left out.
    if let Some(categories) = record["categories"].as_array_mut() {
        categories.retain(|c| !c.is_null());
    }
    record
}

/// What an erasure leaves behind in the store's engine, and for how long.
fn erasure_words(f: &Facts) -> String {
    if f.store == "postgres" {
        format!(
            "erased rows leave PostgreSQL's table files when the purge task rewrites the tables (VACUUM FULL of accounts and txt, at its next run, within {}); \
             deleted audit entries are vacuumed, their bytes stay in free space of the audit table's files until new entries overwrite them; \
             the write-ahead log keeps erased values until its segments are recycled (after the next checkpoints, usually minutes; longer with WAL archiving, replication slots or wal_keep_size); \
             the operator's backups and WAL archives keep them until those expire",
            period(f.privacy.purge_interval)
        )
    } else {
        "deleted rows are overwritten (SQLite secure_delete) and the journal emptied after erasure; the operator's backups keep them until those expire".to_owned()
    }
}

/// The record as Markdown.
pub(crate) fn markdown(f: &Facts) -> String {
    let r = record(f);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|items| items.iter().map(|i| format!("- {}\n", text(i))).collect())
            .unwrap_or_default()
    };
    let mut out = format!("# {}\n\n", text(&r["title"]));
    out.push_str(&format!("**Controller:** {}\n\n", text(&r["controller"])));
    out.push_str("## Purposes\n\n");
    out.push_str(&list(&r["purposes"]));
    out.push_str("\n## Data subjects\n\n");
    out.push_str(&list(&r["data_subjects"]));
    out.push_str("\n## Categories of personal data and retention\n\n| data | retention |\n|---|---|\n");
    for c in r["categories"].as_array().into_iter().flatten() {
        out.push_str(&format!("| {} | {} |\n", text(&c["data"]), text(&c["retention"])));
    }
    out.push_str("\n## Not collected\n\n");
    out.push_str(&list(&r["not_collected"]));
    out.push_str("\n## Recipients\n\n");
    out.push_str(&list(&r["recipients"]));
    out.push_str("\n## Rights of the data subject\n\n");
    for (k, v) in r["rights"].as_object().into_iter().flatten() {
        out.push_str(&format!("- **{}:** {}\n", k.replace('_', " "), text(v)));
    }
    out.push_str("\n## Security measures (Art. 32)\n\n");
    out.push_str(&list(&r["security_measures"]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_follows_the_configuration() {
        let mut facts = Facts {
            domain: "auth.example.org".into(),
            privacy: Privacy::default(),
            registration: "open".into(),
            store: "sqlite".into(),
            api_tls: false,
            proxy_header: false,
            dnssec: true,
            txt_values: 2,
            dns_rate_limit: 200,
        };
        let md = markdown(&facts);
        assert!(md.contains("30 days, then purged"), "{md}");
        assert!(md.contains("cleared 7 days after"), "{md}");
        assert!(md.contains("/24"));
        assert!(md.contains("in memory only"), "{md}");
        // dns-persist-01 records: listed with their lifetime, the hashed form recommended.
        assert!(md.contains("dns-persist-01 records, at most 10 per account"), "{md}");
        assert!(md.contains("until persistUntil passes") && md.contains("hashed form"), "{md}");
        facts.privacy.client_ip = IpPolicy::None;
        facts.privacy.account_expiry = Some(90 * 86_400);
        let json = record(&facts).to_string();
        assert!(json.contains("not recorded at all"));
        assert!(json.contains("deleted after 90 days"));
        facts.dns_rate_limit = 0;
        assert!(!markdown(&facts).contains("in memory only"));
        assert!(json.contains("keyed pseudonym") && json.contains("retention is that of the operator"));
        assert!(!markdown(&facts).contains("VACUUM FULL"));
        facts.store = "postgres".into();
        assert!(markdown(&facts).contains("VACUUM FULL") && markdown(&facts).contains("WAL archives"));
        facts.privacy.log_subdomain = SubdomainPolicy::Full;
        assert!(markdown(&facts).contains("stays in log lines written before an erasure"));
    }
}
