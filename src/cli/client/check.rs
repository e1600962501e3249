//! `client check`: is the delegation in place, and does every authoritative nameserver of the
//! delegation zone serve the same TXT values?
//!
//! Design note: CAs validate from several vantage points (multi-perspective validation), and
//! they may each reach a different authoritative server. So the check does what they do, once
//! per server: it resolves `_acme-challenge.NAME` through a recursive resolver (the CNAME must
//! point at the stored `fulldomain`; case and a final dot do not matter), finds the NS set of
//! the zone holding `fulldomain`, looks up each server's addresses, and asks every address
//! directly (RD clear) for the TXT. A table shows what each said; any disagreement, lame
//! server or missing expected value fails the check, before the CA sees it. Each address is
//! also asked for the zone's SOA, and its serial shown: a secondary that lags behind the
//! primary (a transfer failing, a NOTIFY not arriving) is visible before its TXT goes stale.
//! A lower serial alone is reported, not failed: the TXT asked for may well be current.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::dns::{self, Rdata, Reply, rtype};
use super::storage::same_name;

/// What to ask, and where.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Recursive resolver for the CNAME, the NS set and the servers' addresses.
    pub resolver: SocketAddr,
    /// Ask these addresses instead of the zone's NS set (e.g. servers not yet delegated to).
    pub nameservers: Vec<SocketAddr>,
    /// Port on which the zone's nameservers are asked (53 but in tests).
    pub ns_port: u16,
    /// TXT values that every server must serve (none: just agree with each other).
    pub expected: Vec<String>,
    /// Per-query timeout.
    pub timeout: Duration,
}

/// The result: text to print and whether everything is in order.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The report.
    pub text: String,
    /// True when the delegation works and all servers agree (and serve what was expected).
    pub ok: bool,
}

/// What the resolver says about `_acme-challenge.NAME`.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // `NoCname` reads better than any name without it
pub(crate) enum Cname {
    /// A CNAME to the stored fulldomain.
    Matches(String),
    /// A CNAME elsewhere.
    Elsewhere(String),
    /// The name exists without a CNAME (NOERROR, no CNAME in the answer): other records may sit
    /// where the CNAME must go ([`blockers`] asks which).
    NoCname,
    /// No such name (NXDOMAIN), or a CNAME record that could not be read.
    Missing(String),
    /// The resolver could not say (SERVFAIL, REFUSED, …).
    Unresolved(String),
}

/// Judges the resolver's reply to `challenge CNAME?` against `fulldomain`.
pub(crate) fn judge_cname(reply: &Reply, challenge: &str, fulldomain: &str) -> Cname {
    if let Some(record) = reply.answers_for(challenge, rtype::CNAME).next() {
        let Rdata::Name(target) = &record.data else { return Cname::Missing("bad CNAME data".into()) };
        return if same_name(target, fulldomain) {
            Cname::Matches(target.clone())
        } else {
            Cname::Elsewhere(target.clone())
        };
    }
    match reply.rcode() {
        0 => Cname::NoCname,
        3 => Cname::Missing("no such name (NXDOMAIN)".into()),
        rcode => Cname::Unresolved(dns::rcode_name(rcode)),
    }
}

/// The record types asked for at the challenge name when it exists without a CNAME: a CNAME
/// shares its name with no other data (RFC 1034 §3.6.2, RFC 2181 §10.1), so any of them there
/// keeps the CNAME from being created (a TXT left from a manual DNS-01 is the usual one).
const BLOCKING_TYPES: [(u16, &str); 6] = [
    (rtype::TXT, "TXT"),
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::MX, "MX"),
    (rtype::CAA, "CAA"),
    (rtype::NS, "NS"),
];

/// The records the resolver (`ask`) shows at `challenge` for [`BLOCKING_TYPES`], as (type
/// name, record in zone-file form).
pub(crate) fn blockers(
    ask: impl Fn(&str, u16) -> Result<Reply, String>,
    challenge: &str,
) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for (qtype, type_name) in BLOCKING_TYPES {
        let Ok(reply) = ask(challenge, qtype) else { continue };
        for record in reply.answers_for(challenge, qtype) {
            let value = match &record.data {
                Rdata::Txt(_) => format!(" \"{}\"", record.txt().unwrap_or_default()),
                Rdata::A(ip) => format!(" {ip}"),
                Rdata::Aaaa(ip) => format!(" {ip}"),
                Rdata::Name(name) => format!(" {name}"),
                Rdata::Other(_) => String::new(),
            };
            found.push((type_name, format!("{challenge}. {type_name}{value}")));
        }
    }
    found
}

/// The report of records blocking the CNAME at `challenge`: what is there, and what to do.
pub(crate) fn blocked_text(challenge: &str, found: &[(&str, String)], fulldomain: &str) -> String {
    let mut types: Vec<&str> = found.iter().map(|(t, _)| *t).collect();
    types.dedup();
    let what = match types.as_slice() {
        [one] if found.len() == 1 => {
            let article = if matches!(*one, "A" | "AAAA" | "MX" | "NS") { "an" } else { "a" };
            format!("{article} {one} record exists")
        }
        [one] => format!("{one} records exist"),
        [init @ .., last] => format!("{} and {last} records exist", init.join(", ")),
        [] => "records exist".to_owned(),
    };
    let pronoun = if found.len() == 1 { "it" } else { "them" };
    let mut text =
        format!("{challenge}.  FAIL: {what} at {challenge}, where the CNAME must go: delete {pronoun}\n");
    for (_, record) in found {
        let _ = writeln!(text, "  {record}");
    }
    let _ = writeln!(text, "  fix: delete {pronoun}, then create {challenge}. CNAME {fulldomain}.");
    text
}

/// One row of the table: one address of one nameserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// Nameserver name (or the address when given with `--nameserver`).
    pub nameserver: String,
    /// Address asked ("-" when the name has none).
    pub address: String,
    /// Response code and AA, or the error.
    pub answer: String,
    /// TXT values served (None when there was no usable answer).
    pub values: Option<BTreeSet<String>>,
    /// Problem found, if any.
    pub problem: Option<String>,
    /// The zone's SOA serial there, when it answered one.
    pub serial: Option<u32>,
}

/// Builds a row from what one server said.
pub(crate) fn judge_server(
    nameserver: &str,
    address: &str,
    reply: Result<&Reply, &str>,
    fulldomain: &str,
) -> Row {
    let row = |answer: String, values, problem: Option<&str>| Row {
        nameserver: nameserver.to_owned(),
        address: address.to_owned(),
        answer,
        values,
        problem: problem.map(str::to_owned),
        serial: None,
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => return row("no answer".into(), None, Some(error)),
    };
    let answer = format!("{}{}", dns::rcode_name(reply.rcode()), if reply.aa() { " AA" } else { "" });
    if reply.rcode() != 0 {
        let why = if reply.rcode() == 3 {
            "the name does not exist there (account unknown to this server?)"
        } else {
            "error response"
        };
        return row(answer, None, Some(why));
    }
    if !reply.aa() {
        return row(answer, None, Some("not authoritative for the zone (lame delegation?)"));
    }
    let values = reply.answers_for(fulldomain, rtype::TXT).filter_map(|r| r.txt()).collect();
    row(answer, Some(values), None)
}

/// Marks rows that miss an expected value, or (without expectations) differ from the others.
pub(crate) fn compare(rows: &mut [Row], expected: &[String]) {
    if !expected.is_empty() {
        for row in rows.iter_mut().filter(|r| r.problem.is_none()) {
            let values = row.values.as_ref().expect("rows without problems have values");
            let missing: Vec<&str> =
                expected.iter().filter(|e| !values.contains(*e)).map(String::as_str).collect();
            if !missing.is_empty() {
                row.problem = Some(format!("missing {}", missing.join(", ")));
            }
        }
        return;
    }
    // No expectation: the servers must agree. The most common set is taken as the reference.
    let sets: Vec<BTreeSet<String>> = rows.iter().filter_map(|r| r.values.clone()).collect();
    let reference = sets.iter().max_by_key(|s| sets.iter().filter(|t| t == s).count()).cloned();
    if let Some(reference) = reference {
        for row in rows.iter_mut() {
            if row.values.as_ref().is_some_and(|v| *v != reference) {
                row.problem = Some("serves other values than the other nameservers".into());
            }
        }
    }
}

/// The SOA serial in a reply's answer for `zone`: the first of the five numbers that end the
/// SOA rdata (read from the end, so compressed names before them do not matter).
pub(crate) fn soa_serial(reply: &Reply, zone: &str) -> Option<u32> {
    let record = reply.answers_for(zone, rtype::SOA).next()?;
    let Rdata::Other(rdata) = &record.data else { return None };
    let at = rdata.len().checked_sub(20)?;
    let bytes = rdata.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// A line naming the addresses whose serial is below the highest seen (RFC 1982), if any.
pub(crate) fn lagging(rows: &[Row]) -> Option<String> {
    let serials: Vec<u32> = rows.iter().filter_map(|r| r.serial).collect();
    let newest = *serials.iter().max_by(|a, b| (a.wrapping_sub(**b) as i32).cmp(&0))?;
    let behind: Vec<String> = rows
        .iter()
        .filter_map(|r| r.serial.filter(|s| *s != newest).map(|s| format!("{} ({s})", r.address)))
        .collect();
    (!behind.is_empty())
        .then(|| format!("note: serial {newest} is the newest; behind it: {}", behind.join(", ")))
}

/// Renders the table.
pub(crate) fn table(rows: &[Row]) -> String {
    let header = ["NAMESERVER", "ADDRESS", "SERIAL", "ANSWER", "TXT VALUES", "RESULT"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let values = match &r.values {
                None => "-".to_owned(),
                Some(v) if v.is_empty() => "(none)".to_owned(),
                Some(v) => v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(" "),
            };
            let result = r.problem.as_ref().map_or("ok".to_owned(), |p| format!("FAIL: {p}"));
            let serial = r.serial.map_or("-".to_owned(), |s| s.to_string());
            [r.nameserver.clone(), r.address.clone(), serial, r.answer.clone(), values, result]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut text = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                text.push_str(c);
            } else {
                let _ = write!(text, "{c:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &cells {
        line(row);
    }
    out
}

/// Parses `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address.
pub(crate) fn parse_server(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(format!("{text:?} is not an address (write 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53)"))
}

/// The first `nameserver` of a resolv.conf text.
pub(crate) fn resolv_conf_nameserver(text: &str) -> Option<SocketAddr> {
    text.lines()
        .map(|l| l.split(['#', ';']).next().unwrap_or_default())
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// The system's resolver (first nameserver of /etc/resolv.conf), or 127.0.0.1:53.
pub(crate) fn system_resolver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| resolv_conf_nameserver(&t))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}

/// The parent names of `name`, nearest first, without the root.
fn ancestors(name: &str) -> Vec<String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    (1..labels.len()).map(|i| labels[i..].join(".")).collect()
}

/// Runs the whole check for `domain` (normalised) whose account has `fulldomain`.
pub(crate) fn run(domain: &str, fulldomain: &str, settings: &Settings) -> Outcome {
    let mut text = String::new();
    let mut ok = true;
    let challenge = format!("_acme-challenge.{domain}");
    let fulldomain = fulldomain.trim_end_matches('.');
    let ask_resolver = |name: &str, qtype| dns::ask(settings.resolver, name, qtype, true, settings.timeout);

    // 1. The CNAME, as the world sees it.
    let _ = writeln!(text, "resolver {}", settings.resolver);
    match ask_resolver(&challenge, rtype::CNAME) {
        Ok(reply) => match judge_cname(&reply, &challenge, fulldomain) {
            Cname::Matches(target) => {
                let _ = writeln!(text, "{challenge}. CNAME {target}  ok: the stored fulldomain");
            }
            Cname::Elsewhere(target) => {
                ok = false;
                let _ = writeln!(
                    text,
                    "{challenge}. CNAME {target}  FAIL: should be {fulldomain}.\n  fix: _acme-challenge.{domain}. CNAME {fulldomain}."
                );
            }
            Cname::NoCname => {
                ok = false;
                let found = blockers(ask_resolver, &challenge);
                if found.is_empty() {
                    let _ = writeln!(
                        text,
                        "{challenge}.  FAIL: the name exists but holds no CNAME (and none of {}: only names below it?)\n  fix: create _acme-challenge.{domain}. CNAME {fulldomain}.",
                        BLOCKING_TYPES.map(|(_, name)| name).join(", ")
                    );
                } else {
                    text.push_str(&blocked_text(&challenge, &found, fulldomain));
                }
            }
            Cname::Unresolved(rcode) => {
                ok = false;
                let _ = writeln!(
                    text,
                    "{challenge}.  FAIL: the resolver answered {rcode} (is {} a recursive resolver that serves this machine?)",
                    settings.resolver
                );
            }
            Cname::Missing(why) => {
                ok = false;
                let _ = writeln!(
                    text,
                    "{challenge}.  FAIL: {why}\n  fix: create _acme-challenge.{domain}. CNAME {fulldomain}."
                );
            }
        },
        Err(e) => {
            ok = false;
            let _ = writeln!(text, "{challenge}.  FAIL: cannot ask the resolver: {e}");
        }
    }

    // 2. The servers to ask: given, or the NS set of the zone holding fulldomain.
    let mut targets: Vec<(String, Result<SocketAddr, String>)> = Vec::new();
    // Whose SOA serial to ask for: the zone found, or fulldomain's parent when servers are given.
    let mut zone_name = ancestors(fulldomain).first().cloned().unwrap_or_default();
    if settings.nameservers.is_empty() {
        let mut zone = None;
        for candidate in ancestors(fulldomain) {
            match ask_resolver(&candidate, rtype::NS) {
                Ok(reply) => {
                    let names: Vec<String> = reply
                        .answers_for(&candidate, rtype::NS)
                        .filter_map(|r| match &r.data {
                            Rdata::Name(n) => Some(n.clone()),
                            _ => None,
                        })
                        .collect();
                    if !names.is_empty() {
                        zone = Some((candidate, names));
                        break;
                    }
                }
                Err(e) => {
                    let _ = writeln!(text, "NS {candidate}: {e}");
                }
            }
        }
        let Some((zone, mut names)) = zone else {
            let _ = writeln!(text, "FAIL: no NS records found for any parent of {fulldomain}");
            return Outcome { text, ok: false };
        };
        names.sort_by_key(|n| n.to_ascii_lowercase());
        names.dedup_by(|a, b| same_name(a, b));
        let _ = writeln!(text, "zone {zone}: {} nameserver(s): {}", names.len(), names.join(" "));
        zone_name.clone_from(&zone);
        for name in names {
            let mut addresses = Vec::new();
            let mut error = None;
            for qtype in [rtype::A, rtype::AAAA] {
                match ask_resolver(&name, qtype) {
                    Ok(reply) => addresses.extend(reply.answers.iter().filter_map(|r| match r.data {
                        Rdata::A(ip) if r.rtype == qtype => Some(IpAddr::V4(ip)),
                        Rdata::Aaaa(ip) if r.rtype == qtype => Some(IpAddr::V6(ip)),
                        _ => None,
                    })),
                    Err(e) => error = Some(format!("address lookup failed: {e}")),
                }
            }
            if addresses.is_empty() {
                targets.push((name.clone(), Err(error.unwrap_or_else(|| "no A or AAAA record".into()))));
            }
            for ip in addresses {
                targets.push((name.clone(), Ok(SocketAddr::new(ip, settings.ns_port))));
            }
        }
    } else {
        let _ = writeln!(text, "nameservers given: {} address(es)", settings.nameservers.len());
        targets = settings.nameservers.iter().map(|a| (a.to_string(), Ok(*a))).collect();
    }

    // 3. Ask each address directly, RD clear.
    let mut rows: Vec<Row> = targets
        .iter()
        .map(|(name, addr)| match addr {
            Ok(addr) => {
                let reply = dns::ask(*addr, fulldomain, rtype::TXT, false, settings.timeout);
                let mut row =
                    judge_server(name, &addr.to_string(), reply.as_ref().map_err(String::as_str), fulldomain);
                let soa = dns::ask(*addr, &zone_name, rtype::SOA, false, settings.timeout);
                row.serial = soa.ok().and_then(|r| soa_serial(&r, &zone_name));
                row
            }
            Err(e) => judge_server(name, "-", Err(e), fulldomain),
        })
        .collect();
    compare(&mut rows, &settings.expected);
    let _ = writeln!(text, "TXT {fulldomain}. asked of every nameserver:");
    text.push_str(&table(&rows));
    if let Some(note) = lagging(&rows) {
        let _ = writeln!(text, "{note}");
    }
    let failed = rows.iter().filter(|r| r.problem.is_some()).count();
    if failed > 0 {
        ok = false;
        let _ = writeln!(
            text,
            "{failed} of {} nameserver address(es) failed: a CA may see different answers",
            rows.len()
        );
    } else if rows.is_empty() {
        ok = false;
        let _ = writeln!(text, "no nameserver to ask");
    } else {
        let _ = writeln!(text, "all {} nameserver address(es) agree", rows.len());
    }
    Outcome { text, ok }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::dns::{Record, decode};

    fn reply(flags: u16, answers: Vec<Record>) -> Reply {
        Reply { id: 1, flags, question: None, answers }
    }

    fn record(owner: &str, rtype: u16, data: Rdata) -> Record {
        Record { owner: owner.into(), rtype, ttl: 1, data }
    }

    const FULL: &str = "3f1c.auth.example.org";

    #[test]
    fn cname_comparison_ignores_case_and_final_dot() {
        let ch = "_acme-challenge.example.com";
        let r = reply(
            0x8180,
            vec![record("_ACME-challenge.Example.com.", 5, Rdata::Name("3F1C.Auth.Example.ORG.".into()))],
        );
        assert_eq!(judge_cname(&r, ch, FULL), Cname::Matches("3F1C.Auth.Example.ORG.".into()));
        let r = reply(
            0x8180,
            vec![record("_acme-challenge.example.com.", 5, Rdata::Name("3f1d.auth.example.org.".into()))],
        );
        assert_eq!(judge_cname(&r, ch, FULL), Cname::Elsewhere("3f1d.auth.example.org.".into()));
        let r =
            reply(0x8180, vec![record("_acme-challenge.example.com.", 16, Rdata::Txt(vec![b"x".to_vec()]))]);
        assert_eq!(judge_cname(&r, ch, FULL), Cname::NoCname);
        assert!(
            matches!(judge_cname(&reply(0x8183, vec![]), ch, FULL), Cname::Missing(m) if m.contains("NXDOMAIN"))
        );
        assert_eq!(judge_cname(&reply(0x8185, vec![]), ch, FULL), Cname::Unresolved("REFUSED".into()));
        assert_eq!(judge_cname(&reply(0x8180, vec![]), ch, FULL), Cname::NoCname);
        // A CNAME owned by another name does not count.
        let r = reply(0x8180, vec![record("other.example.com.", 5, Rdata::Name(format!("{FULL}.")))]);
        assert_eq!(judge_cname(&r, ch, FULL), Cname::NoCname);
    }

    #[test]
    fn records_in_the_cnames_place_are_named() {
        let ch = "_acme-challenge.example.com";
        // A resolver with a TXT and an A at the name, and nothing else.
        let ask = |name: &str, qtype: u16| -> Result<Reply, String> {
            let data = match qtype {
                rtype::TXT => Rdata::Txt(vec![b"left".to_vec(), b"over".to_vec()]),
                rtype::A => Rdata::A("192.0.2.1".parse().unwrap()),
                rtype::MX => return Err("timed out".into()),
                _ => return Ok(reply(0x8180, vec![])),
            };
            Ok(reply(0x8180, vec![record(&format!("{name}."), qtype, data)]))
        };
        let found = blockers(ask, ch);
        assert_eq!(
            found,
            vec![("TXT", format!("{ch}. TXT \"leftover\"")), ("A", format!("{ch}. A 192.0.2.1"))]
        );
        let text = blocked_text(ch, &found, FULL);
        assert!(
            text.contains(&format!(
                "FAIL: TXT and A records exist at {ch}, where the CNAME must go: delete them"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("fix: delete them, then create {ch}. CNAME {FULL}.")), "{text}");
        let text = blocked_text(ch, &found[..1], FULL);
        assert!(
            text.contains(&format!("a TXT record exists at {ch}, where the CNAME must go: delete it")),
            "{text}"
        );
        let text = blocked_text(ch, &found[1..], FULL);
        assert!(text.contains("an A record exists"), "{text}");
    }

    #[test]
    fn servers_are_judged_and_compared() {
        let txt = |v: &str| record(&format!("{FULL}."), 16, Rdata::Txt(vec![v.as_bytes().to_vec()]));
        let good = reply(0x8400, vec![txt("a"), txt("b")]);
        let other = reply(0x8400, vec![txt("a")]);
        let nx = reply(0x8403, vec![]);
        let lame = reply(0x8000, vec![txt("a"), txt("b")]);
        let mut rows = vec![
            judge_server("ns1.", "127.0.0.1:53", Ok(&good), FULL),
            judge_server("ns2.", "127.0.0.2:53", Ok(&good), FULL),
            judge_server("ns3.", "127.0.0.3:53", Ok(&other), FULL),
            judge_server("ns4.", "127.0.0.4:53", Ok(&nx), FULL),
            judge_server("ns5.", "127.0.0.5:53", Ok(&lame), FULL),
            judge_server("ns6.", "-", Err("no A or AAAA record"), FULL),
        ];
        assert_eq!(rows[0].values.as_ref().unwrap().len(), 2);
        assert!(rows[3].problem.as_ref().unwrap().contains("does not exist"));
        assert!(rows[4].problem.as_ref().unwrap().contains("not authoritative"));
        let mut expecting = rows.clone();
        compare(&mut rows, &[]);
        assert!(rows[0].problem.is_none() && rows[1].problem.is_none());
        assert!(rows[2].problem.as_ref().unwrap().contains("other values"));
        compare(&mut expecting, &["b".into()]);
        assert!(expecting[0].problem.is_none());
        assert_eq!(expecting[2].problem.as_deref(), Some("missing b"));
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESERVER") && lines[0].ends_with("RESULT"), "{text}");
        assert!(
            lines[1].contains("NOERROR AA") && lines[1].contains("\"a\" \"b\"") && lines[1].ends_with("ok")
        );
        assert!(lines[4].contains("NXDOMAIN AA") && lines[4].contains("FAIL:"), "{text}");
        assert!(lines[6].contains("no answer"), "{text}");
        // Columns line up.
        let at = lines[0].find("ADDRESS").unwrap();
        assert!(
            lines.iter().skip(1).all(|l| l[at..].starts_with("127.") || l[at..].starts_with('-')),
            "{text}"
        );
        // No values at all is fine when all agree (nothing set yet).
        let empty = reply(0x8400, vec![]);
        let mut rows =
            vec![judge_server("ns1.", "a", Ok(&empty), FULL), judge_server("ns2.", "b", Ok(&empty), FULL)];
        compare(&mut rows, &[]);
        assert!(rows.iter().all(|r| r.problem.is_none()));
        assert!(table(&rows).contains("(none)"));
    }

    #[test]
    fn serials_are_read_and_a_lagging_server_is_named() {
        let mut rdata = b"\xc0\x0c\xc0\x0c".to_vec();
        for n in [42u32, 7200, 3600, 86400, 30] {
            rdata.extend_from_slice(&n.to_be_bytes());
        }
        let soa = reply(0x8400, vec![record("auth.example.org.", 6, Rdata::Other(rdata))]);
        assert_eq!(soa_serial(&soa, "auth.example.org"), Some(42));
        assert_eq!(soa_serial(&reply(0x8400, vec![]), "auth.example.org"), None);
        let empty = reply(0x8400, vec![]);
        let mut rows: Vec<Row> =
            ["a", "b", "c"].iter().map(|n| judge_server(n, n, Ok(&empty), FULL)).collect();
        assert_eq!(lagging(&rows), None);
        (rows[0].serial, rows[1].serial, rows[2].serial) = (Some(u32::MAX), Some(1), Some(u32::MAX));
        // 1 is after u32::MAX in serial arithmetic: the two others lag.
        let note = lagging(&rows).unwrap();
        assert!(note.contains("serial 1 is the newest") && note.contains("a (4294967295)"), "{note}");
        assert!(table(&rows).lines().nth(2).unwrap().contains(" 1 "), "{}", table(&rows));
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_server("127.0.0.1", 53).unwrap(), "127.0.0.1:53".parse().unwrap());
        assert_eq!(parse_server("127.0.0.1:5353", 53).unwrap(), "127.0.0.1:5353".parse().unwrap());
        assert_eq!(parse_server("::1", 53).unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(parse_server("[::1]", 5353).unwrap(), "[::1]:5353".parse().unwrap());
        assert_eq!(parse_server("[::1]:54", 53).unwrap(), "[::1]:54".parse().unwrap());
        assert!(parse_server("ns1.example.org", 53).is_err());
        assert_eq!(
            resolv_conf_nameserver("# c\nsearch x\nnameserver fe80::1%eth0\nnameserver 9.9.9.9\n"),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(
            resolv_conf_nameserver("nameserver 192.0.2.1 # comment\n"),
            Some("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(resolv_conf_nameserver("options ndots:1\n"), None);
        assert_eq!(ancestors("a.b.c"), vec!["b.c".to_owned(), "c".to_owned()]);
    }

    #[test]
    fn a_decoded_reply_feeds_the_judges() {
        // End to end through the decoder: a reply as a server sends it.
        let q = dns::build_query(9, FULL, rtype::TXT, false).unwrap();
        let mut m = q[..q.len() - 11].to_vec();
        m[2..4].copy_from_slice(&0x8400u16.to_be_bytes());
        m[6..8].copy_from_slice(&1u16.to_be_bytes());
        m[10..12].copy_from_slice(&[0, 0]);
        m.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 4, 3, b'x', b'y', b'z']);
        let reply = decode(&m).unwrap();
        let row = judge_server("ns1.", "127.0.0.1:53", Ok(&reply), FULL);
        assert_eq!(row.values.unwrap().into_iter().collect::<Vec<_>>(), vec!["xyz".to_owned()]);
    }
}
