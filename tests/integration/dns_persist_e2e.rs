//! dns-persist-01 and dns-account-01 end to end, as a CA would see them (issue 11).
//!
//! Debian's Pebble (2.4.0) knows neither method, so the CA's side of dns-persist-01 is written
//! here from the draft (draft-ietf-acme-dns-persist-02): query `_validation-persist.<domain>`
//! TXT through a validating unbound (which follows the domain owner's CNAME to us), join each
//! record's strings, find the record of our issuer, parse its parameters as RFC 8659 says,
//! compare `accounturi`, require `policy=wildcard` for a wildcard, and reject after
//! `persistUntil`. It is deliberately independent of `acme_delegate::dns_persist`, so it does not
//! share a mistake with the code it checks.
//!
//! The domain owner's zone (`customer.example.net`) is served by a second acme-delegate with static
//! CNAMEs, signed too, so that the whole chain validates with the two trust anchors. The
//! CNAMEs come from the output of `client register --account-url` and `client persist`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;
use crate::pg;

/// The domain owner's zone (not under `test.`: unbound answers that special-use name itself).
const CUSTOMER: &str = "customer.example.net";
/// The CA's issuer domain name.
const ISSUER: &str = "ca.example";
/// The ACME account URL at that CA.
const ACCOUNT: &str = "https://ca.example/acct/123";

/// Seconds since the epoch.
fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Runs `acme-delegate client ARGS` with the credentials file `storage`; returns stdout, and
/// panics with stderr when it fails.
fn client(storage: &str, args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("client")
        .args(args)
        .args(["--storage", storage])
        .env_remove("ACME_DELEGATE_CLIENT_STORAGE")
        .stdin(Stdio::null())
        .output()
        .expect("client runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "client {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// The line of `output` that starts with `prefix`.
fn line_starting<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{output}"))
}

/// Starts a signed server (`domain`, `records`) in `dir`; returns it and its DNSKEY line.
fn signed(dir: &TempDir, domain: &str, records: &[String]) -> (TestServer, String) {
    let config = config_with(&dir.0, "\"127.0.0.1:0\"", records)
        .replace(&format!("domain = \"{DOMAIN}\""), &format!("domain = \"{domain}\""))
        .replace(&format!("nsname = \"ns1.{DOMAIN}\""), &format!("nsname = \"ns1.{domain}\""));
    let config = with_keys(&config, "dnssec", "enabled = true");
    // Short TTLs: a change (a deleted record) is seen through the resolver's cache at once.
    let config = with_keys(&config, "dns", "persist_ttl = 1\ntxt_ttl = 1\nnegative_ttl = 1");
    let server = TestServer::start_with(dir, &config);
    let out =
        Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let dnskey = text.lines().find(|l| l.contains(" DNSKEY 257 ")).expect("a DNSKEY line").to_owned();
    (server, dnskey)
}

/// What the CA asks for.
struct Request<'a> {
    /// The domain validated (`*.` for a wildcard).
    domain: &'a str,
    /// The ACME account asking.
    account: &'a str,
    /// When the CA checks (seconds since the epoch).
    at: i64,
}

/// RFC 8659 §4.2 issue-value: `issuer-domain-name *(";" parameter)`, parameter `tag "=" value`,
/// whitespace allowed around each; `None` if it does not parse.
fn parse_issue_value(text: &str) -> Option<(String, BTreeMap<String, String>)> {
    let mut parts = text.split(';');
    let issuer = parts.next()?.trim().to_ascii_lowercase();
    let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !issuer.split('.').all(label_ok) {
        return None;
    }
    let mut parameters = BTreeMap::new();
    for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let (tag, value) = part.split_once('=')?;
        let (tag, value) = (tag.trim(), value.trim());
        if !tag.chars().all(|c| c.is_ascii_alphanumeric())
            || !value.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b';')
        {
            return None;
        }
        parameters.insert(tag.to_ascii_lowercase(), value.to_owned());
    }
    Some((issuer, parameters))
}

/// The CA's check: `Ok` when the validation succeeds, else why not.
fn ca_validates(resolver: &Unbound, request: &Request<'_>) -> Result<(), String> {
    let (base, wildcard) = match request.domain.strip_prefix("*.") {
        Some(base) => (base, true),
        None => (request.domain, false),
    };
    let name = format!("_validation-persist.{base}");
    let reply = resolver.resolve(&name, t::TXT).ok_or("no answer from the resolver")?;
    if reply.rcode != rcode::NOERROR {
        return Err(format!("rcode {}", reply.rcode));
    }
    if !reply.ad() {
        return Err("the answer did not validate (DNSSEC)".into());
    }
    // Each record's strings joined (Record::txt), then the one for this CA.
    let mine: Vec<BTreeMap<String, String>> = reply
        .txts()
        .iter()
        .filter_map(|v| parse_issue_value(v))
        .filter(|(issuer, _)| issuer == ISSUER)
        .map(|(_, parameters)| parameters)
        .collect();
    let [parameters] = mine.as_slice() else { return Err(format!("{} records for {ISSUER}", mine.len())) };
    if parameters.get("accounturi").map(String::as_str) != Some(request.account) {
        return Err("accounturi names another account".into());
    }
    if wildcard && !parameters.get("policy").is_some_and(|p| p.eq_ignore_ascii_case("wildcard")) {
        return Err("no policy=wildcard for a wildcard".into());
    }
    if let Some(until) = parameters.get("persistuntil") {
        let until: i64 = until.parse().map_err(|_| "persistUntil is not a number")?;
        if request.at > until {
            return Err("persistUntil has passed".into());
        }
    }
    Ok(())
}

#[test]
fn a_ca_accepts_our_persistent_record_and_rejects_what_it_must() {
    let (dir_a, dir_c, dir_r) = (TempDir::new(), TempDir::new(), TempDir::new());
    let records = [format!("{DOMAIN}. NS ns1.{DOMAIN}."), format!("ns1.{DOMAIN}. A 127.0.0.1")];
    let (ours, our_key) = signed(&dir_a, DOMAIN, &records);
    let storage = dir_a.join("client.json").display().to_string();
    let api = format!("http://{}", ours.api);
    // The domain owner's side, with the client: register (it prints the dns-account-01 name
    // too), then publish a persistent record.
    let registered =
        client(&storage, &["register", "--server", &api, "--domain", CUSTOMER, "--account-url", ACCOUNT]);
    let challenge_cname =
        line_starting(&registered, &format!("_acme-challenge.{CUSTOMER}. CNAME ")).to_owned();
    let account_cname = line_starting(&registered, "_h5zlfqoi7m5jaytl._acme-challenge.").to_owned();
    let until = now() + 86_400;
    let published = client(
        &storage,
        &[
            "persist",
            "--domain",
            CUSTOMER,
            "--issuer",
            ISSUER,
            "--account-url",
            ACCOUNT,
            "--persist-until",
            &until.to_string(),
        ],
    );
    let persist_cname =
        line_starting(&published, &format!("_validation-persist.{CUSTOMER}. CNAME ")).to_owned();
    let (customer, customer_key) = signed(
        &dir_c,
        CUSTOMER,
        &[
            format!("{CUSTOMER}. NS ns1.{CUSTOMER}."),
            format!("ns1.{CUSTOMER}. A 127.0.0.1"),
            challenge_cname,
            account_cname,
            persist_cname,
        ],
    );
    std::fs::write(dir_r.join("anchors.key"), format!("{our_key}\n{customer_key}\n")).unwrap();
    let more = format!(
        r#"    module-config: "validator iterator"
    trust-anchor-file: "{dir}/anchors.key"
    qname-minimisation: no
    val-permissive-mode: no
    prefetch: no
stub-zone:
    name: "{CUSTOMER}"
    stub-addr: 127.0.0.1@{port}
"#,
        dir = dir_r.0.display(),
        port = customer.udp.port(),
    );
    let resolver = Unbound::start(&dir_r.0, ours.udp.port(), &more, (DOMAIN, t::SOA));
    let t0 = now();
    let ask =
        |domain: &str, account: &str, at: i64| ca_validates(&resolver, &Request { domain, account, at });
    // Accepted: our record, the right account, before persistUntil.
    assert_eq!(ask(CUSTOMER, ACCOUNT, t0), Ok(()));
    // Rejected: another account, a wildcard without policy=wildcard, after persistUntil.
    assert_eq!(
        ask(CUSTOMER, "https://ca.example/acct/999", t0),
        Err("accounturi names another account".into())
    );
    assert_eq!(ask(&format!("*.{CUSTOMER}"), ACCOUNT, t0), Err("no policy=wildcard for a wildcard".into()));
    assert_eq!(ask(CUSTOMER, ACCOUNT, until + 1), Err("persistUntil has passed".into()));
    // With policy=wildcard published, the wildcard passes (after the 1 s TTL).
    client(
        &storage,
        &["persist", "--domain", CUSTOMER, "--issuer", ISSUER, "--account-url", ACCOUNT, "--wildcard"],
    );
    assert!(
        pg::eventually(Duration::from_secs(4), || ask(&format!("*.{CUSTOMER}"), ACCOUNT, t0).is_ok()),
        "{:?}",
        ask(&format!("*.{CUSTOMER}"), ACCOUNT, t0)
    );
    // `client check` reads it as a CA would.
    let resolver_addr = resolver.addr();
    let nameserver = ours.udp.to_string();
    let checked = client(
        &storage,
        &["check", "--domain", CUSTOMER, "--resolver", &resolver_addr, "--nameserver", &nameserver],
    );
    assert!(checked.contains("ok: this account's persist name"), "{checked}");
    assert!(
        checked.contains(&format!("{ISSUER}: accounturi={ACCOUNT}; wildcard allowed; no persistUntil")),
        "{checked}"
    );
    // Deleted: rejected.
    client(
        &storage,
        &["persist", "--domain", CUSTOMER, "--issuer", ISSUER, "--account-url", ACCOUNT, "--delete"],
    );
    assert!(
        pg::eventually(Duration::from_secs(4), || ask(CUSTOMER, ACCOUNT, now())
            == Err(format!("0 records for {ISSUER}"))),
        "{:?}",
        ask(CUSTOMER, ACCOUNT, now())
    );
    // dns-account-01: the value set with /update is reached through the account's own name.
    let value = txt_value(11);
    client(&storage, &["update", "--domain", CUSTOMER, "--txt", &value]);
    let account_name = format!("_h5zlfqoi7m5jaytl._acme-challenge.{CUSTOMER}");
    let reached =
        || resolver.resolve(&account_name, t::TXT).is_some_and(|r| r.ad() && r.txts() == [value.clone()]);
    assert!(pg::eventually(Duration::from_secs(4), reached), "{:?}", resolver.resolve(&account_name, t::TXT));
}

#[test]
fn the_hashed_account_uri_is_published_as_the_draft_computes_it() {
    let (server, dir) = TestServer::start();
    let storage = dir.join("client.json").display().to_string();
    client(&storage, &["register", "--server", &format!("http://{}", server.api), "--domain", "example.com"]);
    // draft -02 §10.2's inputs; the expected URI is its vector with our prefix.
    let thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let out = client(
        &storage,
        &[
            "persist",
            "--domain",
            "example.com",
            "--issuer",
            ISSUER,
            "--account-url",
            ACCOUNT,
            "--account-hash-prefix",
            "acct:",
            "--thumbprint",
            thumbprint,
        ],
    );
    let want = "ca.example; accounturi=acct:sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw";
    assert!(out.contains(&format!("TXT \"{want}\"")), "{out}");
    let target = line_starting(&out, "_validation-persist.example.com. CNAME ").rsplit(' ').next().unwrap();
    assert_eq!(server.ask(target.trim_end_matches('.'), t::TXT).txts(), [want]);
}

#[test]
fn labels_and_hashed_uris_match_an_independent_computation() {
    // Python's hashlib and base64 (RFC 4648) as the second opinion, on inputs of our choice.
    let urls = [
        "https://ca.example/acct/123",
        "https://acme-v02.api.letsencrypt.org/acme/acct/2147483647",
        "acct:x",
    ];
    let thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let script = format!(
        "import base64, hashlib\n\
         for u in {urls:?}:\n\
         \x20   print(base64.b32encode(hashlib.sha256(u.encode()).digest()[:10]).decode().lower())\n\
         \x20   for d in ['example.com', '*', 'sub.example.org']:\n\
         \x20       h = hashlib.sha256(bytes([len(d)]) + d.encode() + b'{thumbprint}' + u.encode()).digest()\n\
         \x20       print('p:sha-256/' + base64.urlsafe_b64encode(h).decode().rstrip('='))\n"
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python = String::from_utf8(out.stdout).unwrap();
    let mut ours = String::new();
    for url in urls {
        ours.push_str(&format!("{}\n", acme_delegate::dns_persist::account_label(url)));
        for domain in ["example.com", "*", "sub.example.org"] {
            let uri = acme_delegate::dns_persist::hashed_account_uri("p:", domain, thumbprint, url).unwrap();
            ours.push_str(&format!("{uri}\n"));
        }
    }
    assert_eq!(ours, python);
    assert!(python.starts_with("h5zlfqoi7m5jaytl\n"), "the issue's vector: {python}");
}

#[test]
fn the_client_prints_a_record_and_publishes_a_value_another_client_printed() {
    let (server, dir) = TestServer::start();
    let storage = dir.join("client.json").display().to_string();
    // --print: no account, no server; the zone-file line with the further parameter.
    let printed = client(
        &storage,
        &[
            "persist",
            "--print",
            "--domain",
            "example.com",
            "--issuer",
            ISSUER,
            "--account-url",
            ACCOUNT,
            "--wildcard",
            "--param",
            "accountdigest=sha-256/x",
        ],
    );
    let want = format!("{ISSUER}; accounturi={ACCOUNT}; policy=wildcard; accountdigest=sha-256/x");
    assert_eq!(printed, format!("_validation-persist.example.com. TXT \"{want}\"\n"));
    // --value: what lego or acme.sh printed (quoted, tags in any case), published as written.
    client(&storage, &["register", "--server", &format!("http://{}", server.api), "--domain", "example.com"]);
    let given = format!("\"{ISSUER}; accountURI={ACCOUNT}; Policy=wildcard; accountdigest=sha-256/y\"");
    let out = client(&storage, &["persist", "--domain", "example.com", "--value", &given]);
    let served = format!("{ISSUER}; accounturi={ACCOUNT}; policy=wildcard; accountdigest=sha-256/y");
    assert!(out.contains(&format!("TXT \"{served}\"")), "{out}");
    let target = line_starting(&out, "_validation-persist.example.com. CNAME ").rsplit(' ').next().unwrap();
    assert_eq!(server.ask(target.trim_end_matches('.'), t::TXT).txts(), [served]);
    // A U-label in the value is refused before anything is sent, with the punycode hint.
    let refused = Command::new(binary())
        .args(["client", "persist", "--domain", "example.com", "--storage", &storage])
        .args(["--value", &format!("bücher.example; accounturi={ACCOUNT}")])
        .env_remove("ACME_DELEGATE_CLIENT_STORAGE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("xn--"), "{stderr}");
}
