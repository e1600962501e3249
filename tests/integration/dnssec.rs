//! DNSSEC judged by real validators from Debian: BIND's `delv` and unbound as a validating
//! resolver in front of the server, each with the zone's trust anchor from `dnssec ds`.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// A signed server and the trust anchor printed by `acme-delegate dnssec ds`.
struct Signed {
    /// The server.
    server: TestServer,
    /// `auth.example.org. IN DNSKEY 257 3 13 <base64>`.
    dnskey_line: String,
    /// Its directory.
    dir: TempDir,
}

/// Starts a server with DNSSEC on (plus `extra` lines in `[dnssec]`/`[dns]` via `sections`).
fn signed_server(dnssec_extra: &str, dns_extra: &str) -> Signed {
    let dir = TempDir::new();
    let mut config = with_keys(&base_config(&dir.0), "dnssec", &format!("enabled = true\n{dnssec_extra}"));
    if !dns_extra.is_empty() {
        config = with_keys(&config, "dns", dns_extra);
    }
    let server = TestServer::start_with(&dir, &config);
    let out =
        Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with(&format!("{DOMAIN}. IN DS "))), "{text}");
    let dnskey_line = text.lines().find(|l| l.contains(" DNSKEY 257 3 13 ")).expect("DNSKEY line").to_owned();
    Signed { server, dnskey_line, dir }
}

/// Writes a delv trust-anchor file for a DNSKEY line and returns its path.
fn delv_anchor(dir: &TempDir, dnskey_line: &str, name: &str) -> String {
    let fields: Vec<&str> = dnskey_line.split_whitespace().collect();
    let key = fields[6..].join("");
    let text = format!("trust-anchors {{\n  \"{DOMAIN}.\" static-key 257 3 {} \"{key}\";\n}};\n", fields[5]);
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs delv against the server; returns its whole output.
///
/// delv exits 0 even when validation fails, so callers look for "fully validated".
fn delv(server: &TestServer, anchor: &str, name: &str, qtype: &str) -> String {
    let out = Command::new("delv")
        .arg(format!("@{}", server.udp.ip()))
        .args(["-p", &server.udp.port().to_string(), "-a", anchor, &format!("+root={DOMAIN}"), name, qtype])
        .output()
        .expect("delv runs (Debian package bind9-dnsutils)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Registers an account and sets one TXT value; returns (account, value).
fn account_with_value(server: &TestServer, seed: u32) -> (serde_json::Value, String) {
    let account = server.register();
    let value = txt_value(seed);
    assert_eq!(server.update(&account, &value).status, 200);
    (account, value)
}

#[test]
fn delv_fully_validates_every_kind_of_answer() {
    let s = signed_server("", "");
    let anchor = delv_anchor(&s.dir, &s.dnskey_line, "anchor.conf");
    let (account, value) = account_with_value(&s.server, 1);
    let full = account["fulldomain"].as_str().unwrap();
    let cases = [
        (full.to_owned(), "TXT"),
        (full.to_owned(), "A"),            // NODATA
        (format!("nope.{DOMAIN}"), "TXT"), // NXDOMAIN
        (format!("below.{full}"), "TXT"),  // NXDOMAIN below a registered name
        (DOMAIN.to_owned(), "SOA"),
        (DOMAIN.to_owned(), "NS"),
        (DOMAIN.to_owned(), "DNSKEY"),
        (DOMAIN.to_owned(), "TXT"), // static record
        (DOMAIN.to_owned(), "MX"),  // NODATA at the apex
    ];
    for (name, qtype) in &cases {
        let out = delv(&s.server, &anchor, name, qtype);
        assert!(out.contains("fully validated"), "{name} {qtype}:\n{out}");
    }
    let out = delv(&s.server, &anchor, full, "TXT");
    assert!(out.contains(&value), "{out}");
    // After an update the new value validates.
    let value2 = txt_value(2);
    assert_eq!(s.server.update(&account, &value2).status, 200);
    let out = delv(&s.server, &anchor, full, "TXT");
    assert!(out.contains("fully validated") && out.contains(&value2), "{out}");
}

#[test]
fn delv_rejects_a_wrong_trust_anchor() {
    let s = signed_server("", "");
    // A different key: make one with a second signed server.
    let other = signed_server("", "");
    let wrong = delv_anchor(&s.dir, &other.dnskey_line, "wrong.conf");
    let out = delv(&s.server, &wrong, DOMAIN, "SOA");
    assert!(!out.contains("Unable to load keys"), "the anchor file itself must be valid: {out}");
    assert!(!out.contains("fully validated"), "{out}");
    assert!(out.contains("resolution failed") || out.contains("no valid"), "{out}");
}

#[test]
fn ed25519_validates_too() {
    let (server, dir) = TestServer::start_with_keys("dnssec", "enabled = true\nalgorithm = \"ed25519\"");
    let out =
        Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.contains(" DNSKEY 257 3 15 ")).expect("Ed25519 DNSKEY").to_owned();
    let anchor = delv_anchor(&dir, &line, "anchor.conf");
    let (account, _) = account_with_value(&server, 3);
    let out = delv(&server, &anchor, account["fulldomain"].as_str().unwrap(), "TXT");
    assert!(out.contains("fully validated"), "{out}");
}

#[test]
fn signatures_are_renewed_before_they_expire() {
    // Signatures valid 12 s, renewed when under 8 s remain (checked every 2 s).
    let s = signed_server("signature_validity = 12\nrefresh = 8", "");
    let anchor = delv_anchor(&s.dir, &s.dnskey_line, "anchor.conf");
    let (account, _) = account_with_value(&s.server, 4);
    let full = account["fulldomain"].as_str().unwrap();
    let first = delv(&s.server, &anchor, full, "TXT");
    assert!(first.contains("fully validated"), "{first}");
    std::thread::sleep(Duration::from_secs(14));
    // Past the first signatures' expiry: still valid, with a later expiration.
    for (name, qtype) in [(full, "TXT"), (DOMAIN, "SOA"), (DOMAIN, "DNSKEY"), ("nope.auth.example.org", "A")]
    {
        let out = delv(&s.server, &anchor, name, qtype);
        assert!(
            out.contains("fully validated"),
            "{name} {qtype} after 14 s:\n{out}\n{}",
            s.server.log_text()
        );
    }
    assert!(s.server.log_text().contains("recorded a new signing epoch"), "{}", s.server.log_text());
}

/// Starts unbound with `anchor_line` as the trust anchor and a stub zone pointing at `server`.
fn unbound(dir: &TempDir, server: &TestServer, anchor_line: &str) -> Unbound {
    std::fs::write(dir.join("anchor.key"), format!("{anchor_line}\n")).unwrap();
    let more = format!(
        r#"    module-config: "validator iterator"
    trust-anchor-file: "{dir}/anchor.key"
    qname-minimisation: no
    aggressive-nsec: yes
    val-permissive-mode: no
    prefetch: no
"#,
        dir = dir.0.display(),
    );
    Unbound::start(&dir.0, server.udp.port(), &more, (DOMAIN, t::SOA))
}

#[test]
fn unbound_validates_answers_nodata_and_nxdomain() {
    let s = signed_server("", "negative_ttl = 1");
    let resolver = unbound(&s.dir, &s.server, &s.dnskey_line);
    let account = s.server.register();
    let full = account["fulldomain"].as_str().unwrap().to_owned();
    // A registered name without a value: validated NODATA (not NXDOMAIN).
    let before = resolver.resolve(&full, t::TXT).expect("reply");
    assert_eq!((before.rcode, before.answers.len(), before.ad()), (rcode::NOERROR, 0, true), "{before:?}");
    let value = txt_value(5);
    assert_eq!(s.server.update(&account, &value).status, 200);
    // The cached denial lives for the 1 s negative TTL only (unbound counts whole seconds, so
    // allow up to 2 s); then the value validates.
    std::thread::sleep(Duration::from_millis(2500));
    let after = resolver.resolve(&full, t::TXT).expect("reply");
    assert!(after.ad(), "{after:?}");
    assert_eq!(after.txts(), vec![value]);
    for (name, qtype, want) in [
        (full.as_str(), t::A, rcode::NOERROR),
        ("nope.auth.example.org", t::TXT, rcode::NXDOMAIN),
        (DOMAIN, t::SOA, rcode::NOERROR),
        (DOMAIN, t::NS, rcode::NOERROR),
        (DOMAIN, 48, rcode::NOERROR), // DNSKEY
    ] {
        let reply = resolver.resolve(name, qtype).expect("reply");
        assert_eq!(reply.rcode, want, "{name} {qtype}: {reply:?}");
        assert!(reply.ad(), "{name} {qtype} not validated: {reply:?}");
    }
}

#[test]
fn unbound_with_a_wrong_anchor_answers_servfail() {
    let s = signed_server("", "");
    let other = signed_server("", "");
    let resolver_dir = TempDir::new();
    let resolver = unbound(&resolver_dir, &s.server, &other.dnskey_line);
    let (account, _) = account_with_value(&s.server, 6);
    let reply = resolver.resolve(account["fulldomain"].as_str().unwrap(), t::TXT).expect("reply");
    assert_eq!(reply.rcode, 2, "SERVFAIL expected: {reply:?}");
    assert!(!reply.ad());
}

/// A query with EDNS and the DO bit.
fn query_do(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = query(name, qtype, Some(1232));
    let flags = m.len() - 4;
    m[flags] |= 0x80;
    m
}

/// Issue 15, item 1: in a negative answer the SOA goes out with the negative TTL, and so does
/// its signature (RFC 4034 section 3); the signature's original TTL stays the SOA's own.
#[test]
fn negative_answers_give_the_soa_signature_the_soa_ttl() {
    let s = signed_server("", "");
    let (account, _) = account_with_value(&s.server, 5);
    let full = account["fulldomain"].as_str().unwrap();
    for (name, qtype) in
        [(format!("nope.{DOMAIN}"), t::A), (full.to_owned(), t::A), (DOMAIN.to_owned(), t::MX)]
    {
        let reply = Message::decode(&s.server.udp_exchange(&query_do(&name, qtype)).expect("a reply"));
        let soa = reply.authority.iter().find(|r| r.rtype == t::SOA).expect("SOA");
        let sig = reply
            .authority
            .iter()
            .find(|r| r.rtype == t::RRSIG && r.rdata[..2] == t::SOA.to_be_bytes())
            .expect("RRSIG over the SOA");
        assert_eq!((soa.ttl, sig.ttl), (30, 30), "{name}");
        assert_eq!(sig.rdata[4..8], 3600u32.to_be_bytes(), "original TTL");
    }
}

/// Issue 15, item 2: a query of type RRSIG gets the signatures at the name, as Knot answers (a
/// NODATA would contradict its own NSEC3 bitmap): the very signatures that come with each set
/// and that delv validates. (delv 9.18 itself cannot resolve a query of type RRSIG from any
/// server, Knot 3.2 included: its fetch hangs; so it checks the sets, not this query.)
#[test]
fn rrsig_queries_get_the_signatures_that_validate() {
    let s = signed_server("", "");
    let anchor = delv_anchor(&s.dir, &s.dnskey_line, "anchor.conf");
    let (account, _) = account_with_value(&s.server, 6);
    let full = account["fulldomain"].as_str().unwrap();
    for (name, expected) in [(DOMAIN, &[t::SOA, t::NS, t::A, t::TXT, 48, 51][..]), (full, &[t::TXT][..])] {
        let reply = Message::decode(&s.server.tcp_exchange(&query_do(name, t::RRSIG)).expect("a reply"));
        assert_eq!((reply.rcode, reply.aa()), (rcode::NOERROR, true), "{name}");
        let covered: Vec<u16> =
            reply.answers.iter().map(|r| u16::from_be_bytes([r.rdata[0], r.rdata[1]])).collect();
        assert!(expected.iter().all(|t| covered.contains(t)), "{name}: {covered:?}");
        for sig in &reply.answers {
            assert_eq!(sig.rtype, t::RRSIG);
            let covers = u16::from_be_bytes([sig.rdata[0], sig.rdata[1]]);
            let set = Message::decode(&s.server.tcp_exchange(&query_do(name, covers)).expect("a reply"));
            assert!(
                set.answers.contains(sig),
                "{name}: the signature over type {covers} is the one served with it"
            );
        }
        for qtype in ["SOA", "TXT"] {
            let out = delv(&s.server, &anchor, name, qtype);
            assert!(out.contains("fully validated"), "{name} {qtype}:\n{out}");
        }
    }
    // A registered name without a value: the signature of the marker it holds (issue 22; see
    // `dns::zone`), as every secondary holding the zone answers.
    let bare = s.server.register();
    let reply = s.server.ask(bare["fulldomain"].as_str().unwrap(), t::RRSIG);
    let covered: Vec<u16> =
        reply.answers.iter().map(|r| u16::from_be_bytes([r.rdata[0], r.rdata[1]])).collect();
    assert_eq!((reply.rcode, covered), (rcode::NOERROR, vec![65280]));
}

/// Issue 21: changing `[dnssec] algorithm` and restarting used to make a key of the new
/// algorithm and serve it alone, so every validator holding the DS of the old key called the
/// zone bogus. Now the start is refused, naming what to do, and the old key keeps validating.
#[test]
fn a_changed_algorithm_is_refused_and_the_zone_stays_valid() {
    let Signed { mut server, dnskey_line, dir } = signed_server("", "");
    let anchor = delv_anchor(&dir, &dnskey_line, "anchor");
    let (account, value) = account_with_value(&server, 7);
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    // `dnssec status` gives the key's age as a date and in days (issue 23: it printed seconds).
    let status =
        Command::new(binary()).args(["dnssec", "status", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let created = status.lines().find(|l| l.starts_with("created:")).unwrap_or_default();
    assert!(created.ends_with("Z (0 days ago)"), "{status}");
    server.signal("TERM");
    server.wait(Duration::from_secs(10)).expect("the server stops");
    let p256 = std::fs::read_to_string(dir.join("config.cfg")).unwrap();
    let ed25519 = with_keys(&p256, "dnssec", "algorithm = \"ed25519\"");
    let refused =
        TestServer::try_start(&dir, &ed25519).err().expect("a start with another algorithm is refused");
    let log = refused.join("\n");
    assert!(
        log.contains("dnssec.algorithm is ed25519, but the zone is signed with a ecdsap256sha256 key"),
        "{log}"
    );
    assert!(log.contains("keep dnssec.algorithm = \"ecdsap256sha256\""), "{log}");
    assert!(log.contains("run `acme-delegate dnssec rollover --algorithm ed25519`"), "{log}");
    // The operator commands refuse too, rather than print the DS of a key nobody serves.
    let out =
        Command::new(binary()).args(["dnssec", "ds", "-c"]).arg(dir.join("config.cfg")).output().unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Back to the configured key: the same trust anchor validates the same data.
    let server = TestServer::start_with(&dir, &p256);
    let answer = delv(&server, &anchor, &name, "TXT");
    assert!(answer.contains("; fully validated") && answer.contains(&value), "{answer}");
}
