//! `client persist` and the dns-persist-01 part of `client check`.
//!
//! Design note: `persist` computes the record the way a CA will read it (the rules are in
//! [`crate::dns_persist`], shared with the server, and checked here before anything is sent),
//! publishes it with the stored credentials, and prints the one CNAME the domain owner creates:
//! `_validation-persist.<domain>. CNAME <persistdomain>.`. The account URI is either the plain
//! ACME account URL (what CAs accept today) or the hashed form of draft-ietf-acme-dns-persist
//! -02 §4.1, which names no account in public DNS (the privacy-friendly choice).
//!
//! The drafts move, and some ACME clients (lego 5, acme.sh with `--dns-persist`) compute the
//! value themselves and print it for the user to publish: `--value` takes such a value as
//! printed (read as a CA reads it, every parameter kept in its order), `--param TAG=VALUE` adds
//! a parameter a newer draft defines, and `--print` prints the TXT record without sending
//! anything, for an owner who publishes it in their own zone.
//!
//! The check reads the record through a recursive resolver, as a CA does: it follows the CNAME,
//! joins each record's strings, parses them as RFC 8659 issue-values, and says what a CA would
//! find: issuer, account URI, policy, persistUntil (warning when it is past or within 30 days).
//! A domain without the CNAME is fine (dns-persist-01 is optional); a wrong one fails. So is a
//! lookup that gets no answer (a timeout, a resolver or firewall that drops the query): a
//! warning, not a failure, since the check's verdict is about the delegation DNS-01 needs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::Common;
use super::dns::{self, Rdata, rtype};
use super::http;
use super::storage::{Account, Storage, normalize_domain, same_name};
use crate::dns_persist::{OWNER_LABEL, Parsed, Record, hashed_account_uri};

/// Warn when a record stops counting within this many seconds.
const SOON: i64 = 30 * 86_400;

/// `client persist`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example: acme-delegate client persist --domain example.com --issuer letsencrypt.org \\
           --account-url https://acme-v02.api.letsencrypt.org/acme/acct/123456 --wildcard
Then create the printed _validation-persist CNAME once; renewals need no DNS change.")]
pub(crate) struct PersistArgs {
    /// The domain the record is for (its stored account is used).
    #[arg(long, value_name = "NAME")]
    domain: String,
    /// The CA's issuer domain name, e.g. letsencrypt.org (an A-label: punycode for IDNs).
    #[arg(long, value_name = "NAME", required_unless_present = "value")]
    issuer: Option<String>,
    /// The ACME account URL at that CA.
    #[arg(long, value_name = "URL", required_unless_present_any = ["value", "delete"])]
    account_url: Option<String>,
    /// The whole record value as an ACME client printed it (lego `--dns-persist`, acme.sh
    /// `--dns-persist`), e.g. "letsencrypt.org; accounturi=https://…"; quotes are removed.
    #[arg(
        long,
        value_name = "VALUE",
        conflicts_with_all = ["issuer", "account_url", "account_hash_prefix", "wildcard", "persist_until", "param"]
    )]
    value: Option<String>,
    /// A further parameter of the record, TAG=VALUE (e.g. a newer draft's accountdigest=…);
    /// may be repeated. The server checks its syntax only.
    #[arg(long, value_name = "TAG=VALUE")]
    param: Vec<String>,
    /// Print the TXT record instead of publishing it (no account or server needed), for a zone
    /// you publish it in yourself.
    #[arg(long, conflicts_with_all = ["delete", "server"])]
    print: bool,
    /// Publish the hashed account URI (draft -02 §4.1) with this prefix, the CA's
    /// `accountHashPrefix` (needs --thumbprint).
    #[arg(long, value_name = "PREFIX", requires = "thumbprint")]
    account_hash_prefix: Option<String>,
    /// The JWK thumbprint (RFC 7638, base64url) of the ACME account key, for the hashed URI.
    #[arg(long, value_name = "THUMBPRINT", requires = "account_hash_prefix")]
    thumbprint: Option<String>,
    /// Hash with the domain `*`: the record may then be reused for any domain (draft's opt-out).
    #[arg(long, requires = "account_hash_prefix")]
    any_domain: bool,
    /// Allow wildcard certificates too (policy=wildcard).
    #[arg(long)]
    wildcard: bool,
    /// Unix time after which the record no longer counts (persistUntil).
    #[arg(long, value_name = "UNIX_TIME")]
    persist_until: Option<i64>,
    /// Delete this issuer's record instead of setting it.
    #[arg(long, conflicts_with_all = ["wildcard", "persist_until"])]
    delete: bool,
    /// Use this API URL instead of the stored one.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The account URI to publish for `domain`: the account URL, or its hashed form.
fn account_uri(args: &PersistArgs, domain: &str) -> Result<String, String> {
    match (&args.account_hash_prefix, &args.thumbprint) {
        (Some(prefix), Some(thumbprint)) => {
            let hashed_for = if args.any_domain { "*" } else { domain };
            hashed_account_uri(prefix, hashed_for, thumbprint, args.account_url.as_deref().unwrap_or(""))
                .ok_or_else(|| format!("{domain} is too long to hash (more than 255 octets)"))
        }
        _ => Ok(args.account_url.clone().unwrap_or_default()),
    }
}

/// The record the arguments describe, checked with the server's own rules (so a mistake is
/// named before anything is sent): from `--value`, or from the separate options.
fn record_of(args: &PersistArgs, domain: &str) -> Result<Record, String> {
    if let Some(value) = &args.value {
        return record_of_value(value, now());
    }
    let uri = account_uri(args, domain)?;
    let policy = args.wildcard.then_some(crate::dns_persist::WILDCARD);
    let params = args
        .param
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(tag, value)| (tag.to_owned(), value.to_owned()))
                .ok_or_else(|| format!("--param {p}: give TAG=VALUE"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Record::new(args.issuer.as_deref(), Some(&uri), policy, args.persist_until, now())
        .and_then(|r| r.with_params(params))
        .map_err(|e| e.to_string())
}

/// The record of a value an ACME client printed: read as a CA reads it (tags
/// case-insensitive), the parameters this program does not write itself kept as written.
fn record_of_value(value: &str, now: i64) -> Result<Record, String> {
    let value = value.trim().trim_matches('"').trim();
    // The issuer's own error first: it says what to do with a U-label.
    let issuer = value.split(';').next().unwrap_or("").trim_matches([' ', '\t']).to_ascii_lowercase();
    crate::dns_persist::check_issuer(&issuer).map_err(|e| format!("--value: {e}"))?;
    let parsed =
        Parsed::parse(value).ok_or_else(|| format!("--value {value:?} is not an RFC 8659 issue-value"))?;
    let persist_until = match parsed.params.get("persistuntil") {
        None => None,
        Some(raw) => Some(raw.parse().map_err(|_| format!("--value: persistUntil={raw} is not a number"))?),
    };
    let policy = parsed.params.get("policy").map(|p| p.to_ascii_lowercase());
    Record::new(
        Some(&parsed.issuer),
        parsed.params.get("accounturi").map(String::as_str),
        policy.as_deref(),
        persist_until,
        now,
    )
    .and_then(|r| r.with_params(crate::dns_persist::params_of(value)))
    .map_err(|e| format!("--value: {e}"))
}

/// The TXT record of `value` at `domain`'s owner name, in zone-file form: strings of at most
/// 255 octets (a value holds no '"' or '\\', so none needs escaping).
fn txt_line(domain: &str, value: &str) -> String {
    let strings: Vec<String> =
        value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
    format!("{OWNER_LABEL}.{domain}. TXT {}", strings.join(" "))
}

/// Runs `client persist`.
pub(crate) fn run(args: &PersistArgs) -> Result<(), String> {
    let domain = normalize_domain(&args.domain)?;
    if args.print {
        let record = record_of(args, &domain)?;
        println!("{}", txt_line(&domain, &record.value()));
        return Ok(());
    }
    let storage = Storage::load(&args.common.storage()?)?;
    let (account, url) = super::account_and_url(&storage, &domain, args.server.as_deref())?;
    let headers = [("X-Api-User", account.username.as_str()), ("X-Api-Key", account.password.as_str())];
    let issuer = match (&args.value, &args.issuer) {
        (Some(value), _) => record_of_value(value, now())?.issuer,
        (None, issuer) => issuer.clone().unwrap_or_default(),
    };
    let (method, body) = if args.delete {
        crate::dns_persist::check_issuer(&issuer).map_err(|e| e.to_string())?;
        ("DELETE", serde_json::json!({ "issuer": issuer }))
    } else {
        let record = record_of(args, &domain)?;
        let mut body = serde_json::json!({ "issuer": record.issuer, "accounturi": record.accounturi });
        if record.wildcard {
            body["policy"] = crate::dns_persist::WILDCARD.into();
        }
        if let Some(until) = record.persist_until {
            body["persistuntil"] = until.into();
        }
        if !record.params.is_empty() {
            body["params"] =
                record.params.iter().map(|(t, v)| (t.clone(), serde_json::Value::from(v.clone()))).collect();
        }
        ("POST", body)
    };
    let options = args.common.http();
    let response = crate::cli::block_on(http::send_json(
        method,
        &url,
        "/persist",
        &headers,
        &body.to_string(),
        &options,
    ))?;
    if !(200..300).contains(&response.status) {
        let detail = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|j| j["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| response.error_text());
        return Err(format!(
            "{url} refused the persistent record for {domain}: HTTP {}: {detail}",
            response.status
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let target = answer["persistdomain"].as_str().unwrap_or_default().trim_end_matches('.').to_owned();
    if target.is_empty() || normalize_domain(&target).is_err() {
        return Err(format!("{url} answered without a usable persistdomain: {}", response.error_text()));
    }
    if args.delete {
        println!("{issuer} record of {domain} deleted at {url}.");
        return Ok(());
    }
    println!(
        "{OWNER_LABEL}.{domain} -> {target}: TXT \"{}\" set at {url}",
        answer["value"].as_str().unwrap_or("")
    );
    println!();
    println!("Create this record in the DNS zone of {domain}, once (it never changes):");
    println!();
    println!("{OWNER_LABEL}.{domain}. CNAME {target}.");
    println!();
    println!("Then verify: acme-delegate client check --domain {domain}");
    Ok(())
}

/// The persist name of an account on our server: `persist-<subdomain>` beside its fulldomain.
pub(crate) fn expected_target(account: &Account) -> Option<String> {
    let zone = account.fulldomain.trim_end_matches('.').split_once('.')?.1;
    Some(format!("{}.{zone}", crate::dns::zone::persist_label(&account.subdomain)))
}

/// Judges the records a resolver returned for `_validation-persist.<domain>` (joined strings)
/// as a CA would read them at `now`; returns report lines and whether any record is unusable.
pub(crate) fn judge_records(values: &[String], now: i64) -> (String, bool) {
    let mut text = String::new();
    let mut bad = false;
    for value in values {
        let Some(parsed) = Parsed::parse(value) else {
            bad = true;
            let _ = writeln!(text, "  TXT \"{value}\"  FAIL: not an RFC 8659 issue-value");
            continue;
        };
        let Some(uri) = parsed.params.get("accounturi") else {
            bad = true;
            let _ = writeln!(text, "  {}: FAIL: no accounturi (a CA ignores this record)", parsed.issuer);
            continue;
        };
        let policy = if parsed.allows_wildcard() { "wildcard allowed" } else { "no wildcard" };
        let until = match (parsed.params.get("persistuntil"), parsed.persist_until()) {
            (None, _) => "no persistUntil".to_owned(),
            (Some(raw), None) => {
                bad = true;
                format!("FAIL: persistUntil {raw:?} is not a number")
            }
            (_, Some(t)) if t <= now => format!("WARNING: persistUntil {t} has passed: no CA accepts it"),
            (_, Some(t)) if t - now < SOON => {
                format!("WARNING: persistUntil {t} is within {} days", (t - now) / 86_400 + 1)
            }
            (_, Some(t)) => format!("persistUntil {t}"),
        };
        let _ = writeln!(text, "  {}: accounturi={uri}; {policy}; {until}", parsed.issuer);
    }
    (text, bad)
}

/// The dns-persist-01 part of `client check`: report text and whether it passed.
pub(crate) fn check(
    domain: &str,
    account: &Account,
    resolver: SocketAddr,
    timeout: Duration,
) -> (String, bool) {
    let owner = format!("{OWNER_LABEL}.{domain}");
    let mut text = String::new();
    let Some(expected) = expected_target(account) else { return (text, true) };
    let cname = match dns::ask(resolver, &owner, rtype::CNAME, true, timeout) {
        Ok(reply) => reply.answers_for(&owner, rtype::CNAME).find_map(|r| match &r.data {
            Rdata::Name(target) => Some(target.trim_end_matches('.').to_owned()),
            _ => None,
        }),
        Err(e) => {
            let _ = writeln!(
                text,
                "{owner}.  WARNING: not checked (dns-persist-01 is optional): no answer from the resolver: {e}"
            );
            return (text, true);
        }
    };
    let Some(target) = cname else {
        let _ = writeln!(text, "{owner}.  not set up (dns-persist-01 is optional; see `client persist`)");
        return (text, true);
    };
    if !same_name(&target, &expected) {
        let _ = writeln!(
            text,
            "{owner}. CNAME {target}  FAIL: should be {expected}.\n  fix: {owner}. CNAME {expected}."
        );
        return (text, false);
    }
    let _ = writeln!(text, "{owner}. CNAME {target}  ok: this account's persist name");
    let values: Vec<String> = match dns::ask(resolver, &owner, rtype::TXT, true, timeout) {
        Ok(reply) => reply.answers.iter().filter(|r| r.rtype == rtype::TXT).filter_map(|r| r.txt()).collect(),
        Err(e) => {
            let _ = writeln!(text, "  WARNING: the records were not read (no answer from the resolver): {e}");
            return (text, true);
        }
    };
    if values.is_empty() {
        let _ = writeln!(text, "  no records published yet (`client persist` sets one)");
        return (text, true);
    }
    let (lines, bad) = judge_records(&values, now());
    text.push_str(&lines);
    (text, !bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_another_client_printed_is_taken_as_written() {
        let now = 1_800_000_000;
        let r = record_of_value(
            " \"Ca.Example;AccountURI=acct:1; POLICY=Wildcard; persistUntil=1900000000; zz=2; accountdigest=d\" ",
            now,
        )
        .unwrap();
        assert_eq!((r.issuer.as_str(), r.accounturi.as_str(), r.wildcard), ("ca.example", "acct:1", true));
        assert_eq!(r.persist_until, Some(1_900_000_000));
        assert_eq!(
            r.params,
            [("zz".to_owned(), "2".to_owned()), ("accountdigest".to_owned(), "d".to_owned())]
        );
        assert!(
            record_of_value("ca.example; policy=wildcard", now).unwrap_err().contains("accounturi: missing")
        );
        assert!(record_of_value("ca.example; accounturi=a:1; persistUntil=soon", now).is_err());
        assert!(record_of_value("ca.example; accounturi=a:1; persistUntil=1", now).is_err(), "past");
        assert!(record_of_value("bücher.example; accounturi=a:1", now).unwrap_err().contains("xn--"));
        assert!(record_of_value("ca.example; accounturi", now).is_err());
        let long = format!("ca.example; accounturi=a:1; t={}", "x".repeat(300));
        assert!(record_of_value(&long, now).unwrap_err().starts_with("--value: params: t:"));
        // A value longer than one string is split into 255-octet ones.
        let line = txt_line("example.com", &"a".repeat(300));
        assert_eq!(
            line,
            format!("_validation-persist.example.com. TXT \"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))
        );
    }

    #[test]
    fn records_are_judged_as_a_ca_reads_them() {
        let now = 1_800_000_000;
        let values = [
            "ca.example; accounturi=acct:1; policy=wildcard".to_owned(),
            format!("le.example; accounturi=acct:2; persistUntil={}", now + 86_400),
            format!("old.example; accounturi=acct:3; persistUntil={}", now - 1),
            "x.example; policy=wildcard".to_owned(),
        ];
        let (text, bad) = judge_records(&values, now);
        assert!(bad, "the record without accounturi is unusable");
        assert!(text.contains("ca.example: accounturi=acct:1; wildcard allowed; no persistUntil"), "{text}");
        assert!(text.contains("WARNING: persistUntil 1800086400 is within 2 days"), "{text}");
        assert!(text.contains("has passed"), "{text}");
        assert!(text.contains("x.example: FAIL: no accounturi"), "{text}");
        assert!(!judge_records(&values[..1], now).1);
    }

    #[test]
    fn the_persist_name_sits_beside_the_fulldomain() {
        let account = Account {
            username: "u".into(),
            password: "p".into(),
            fulldomain: "abc.auth.example.org".into(),
            subdomain: "ABC".into(),
            allowfrom: Vec::new(),
            server_url: String::new(),
        };
        assert_eq!(expected_target(&account).as_deref(), Some("persist-abc.auth.example.org"));
    }
}
