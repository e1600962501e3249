//! DNSSEC judged by DNSViz 0.11 (PyPI `dnsviz`, in the virtual environment `scripts/e2e-venv`
//! makes), the analyser DNS operators use: `dnsviz probe` queries the signed zone, with
//! Debian's BIND started by its `-N` option to stand in for the parent zone and hold our DS,
//! and `dnsviz grok` with our DNSKEY as the trust anchor judges every answer. Both algorithms;
//! the apex, a name with a TXT value, a registered name without one, a persist name whose
//! record was deleted, a missing name and a name below a registered one, each for the types of
//! [`TYPES`]; the same zone at an NSD secondary; and the zone before, at every step of, and
//! after a CSK rollover and an algorithm rollover (P-256 to Ed25519), with the DS the parent
//! must hold at that moment (`dnssec ds`) as DNSViz's stand-in parent's.
//!
//! Every error and warning DNSViz reports fails the test, and so does any status BOGUS,
//! INVALID or INDETERMINATE, with one exception that is DNSViz's and not ours (see
//! [`dnsviz_misreads`]): DNSViz 0.11 cannot read any answer to a query of type RRSIG.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// The types asked for at every name.
const TYPES: &str = "A,AAAA,TXT,SOA,NS,DNSKEY,DS,NSEC3PARAM,RRSIG";

/// How long one `dnsviz probe` or `grok` may take (a probe takes about two seconds here).
const LIMIT: Duration = Duration::from_secs(120);

/// Whether a finding at `path` (keys from the top of grok's output) is DNSViz misreading an
/// answer to a query of type RRSIG, and nothing else.
///
/// dnspython, which DNSViz parses answers with, files RRSIG records by the type they cover, so
/// DNSViz 0.11 never finds an answer "of type RRSIG" and takes any such answer for a NODATA;
/// it then reports that this "NODATA" has no SOA and no NSEC3 and calls it BOGUS. It does so
/// for Knot 3.2 too (seen with the same probe). Only those two codes and that status, only on
/// the `nodata` of an RRSIG query, are let through; the server's answers to RRSIG queries are
/// checked by [`rrsig_queries_get_the_signatures`] and by delv in `dnssec.rs`.
fn dnsviz_misreads(path: &[String], code: Option<&str>) -> bool {
    let rrsig_nodata =
        path.windows(3).any(|w| w[0] == "queries" && w[1].ends_with("/IN/RRSIG") && w[2] == "nodata");
    rrsig_nodata && matches!(code, Some("MISSING_SOA_FOR_NODATA" | "MISSING_NSEC_FOR_NODATA" | "BOGUS"))
}

/// Collects what grok found wrong, as "path: code or status" lines.
fn findings(value: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for kind in ["errors", "warnings"] {
                for finding in map.get(kind).and_then(Value::as_array).into_iter().flatten() {
                    let code = finding.get("code").and_then(Value::as_str);
                    if !dnsviz_misreads(path, code) {
                        out.push(format!("{}: {kind} {finding}", path.join(" / ")));
                    }
                }
            }
            if let Some(status) = map.get("status").and_then(Value::as_str)
                && ["BOGUS", "INVALID", "INDETERMINATE"].contains(&status)
                && !dnsviz_misreads(path, Some(status))
            {
                out.push(format!("{}: status {status}", path.join(" / ")));
            }
            for (key, inner) in map {
                path.push(key.clone());
                findings(inner, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                path.push(i.to_string());
                findings(inner, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Runs `command` with stdin from `input` (or nothing) and stdout into `output`, within
/// [`LIMIT`]; panics with its stderr when it fails.
fn run(command: &mut Command, input: Option<&Path>, output: &Path, what: &str) {
    let stdin = match input {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    };
    let errors = output.with_extension("err");
    let mut child = command
        .stdin(stdin)
        .stdout(std::fs::File::create(output).unwrap())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let status = wait_or_kill(&mut child, LIMIT);
    let stderr = std::fs::read_to_string(&errors).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "{what} failed ({status:?}):\n{stderr}");
}

/// One signed server with the names to probe.
struct Probed {
    /// The server (ns1 of the zone, on 127.0.0.1).
    server: TestServer,
    /// Its directory.
    dir: TempDir,
    /// The name with a TXT value.
    with_value: String,
    /// The registered name without one.
    without_value: String,
    /// A persist name whose only record was deleted.
    emptied: String,
}

/// Starts a server signing with `algorithm` (with `transfer` lines, if any), registers three
/// names, gives one a value and another a persist record, deleted again.
fn start_signed(algorithm: &str, transfer: Option<&str>) -> Probed {
    start_signed_with(algorithm, transfer, "")
}

/// [`start_signed`] with more `[dnssec]` and `[dns]` lines (`dnssec_lines`, `dns_lines`: each
/// newline-separated, empty for none).
fn start_signed_with(algorithm: &str, transfer: Option<&str>, dnssec_lines: &str) -> Probed {
    let (dnssec_lines, dns_lines) = dnssec_lines.split_once("|").unwrap_or((dnssec_lines, ""));
    let dir = TempDir::new();
    let records = [
        format!("{DOMAIN}. NS ns1.{DOMAIN}."),
        format!("ns1.{DOMAIN}. A 127.0.0.1"),
        format!("{DOMAIN}. TXT \"static\""),
    ];
    let mut config = with_keys(
        &config_with(&dir.0, "\"127.0.0.1:0\"", &records),
        "dnssec",
        &format!("enabled = true\nalgorithm = \"{algorithm}\"\n{dnssec_lines}"),
    );
    if !dns_lines.is_empty() {
        config = with_keys(&config, "dns", dns_lines);
    }
    if let Some(transfer) = transfer {
        config = with_keys(&config, "transfer", transfer);
    }
    let server = TestServer::start_with(&dir, &config);
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(15)).status, 200);
    let with_value = account["fulldomain"].as_str().unwrap().to_owned();
    let without_value = server.register()["fulldomain"].as_str().unwrap().to_owned();
    let persisting = server.register();
    let body = serde_json::json!({ "issuer": "ca.example", "accounturi": "https://ca.example/acct/1" });
    let r = server.http("POST", "/persist", &auth(&persisting), body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.body_text());
    let emptied = r.json()["persistdomain"].as_str().unwrap().to_owned();
    let body = serde_json::json!({ "issuer": "ca.example" }).to_string();
    assert_eq!(server.http("DELETE", "/persist", &auth(&persisting), body.as_bytes()).status, 200);
    Probed { server, dir, with_value, without_value, emptied }
}

/// Probes the zone of `probed` with DNSViz at the server on 127.0.0.1 `port` (ours or a
/// secondary's) and returns grok's findings (empty: all clean) and how long probe and grok
/// took.
fn dnsviz(probed: &Probed, port: u16) -> (Vec<String>, Duration) {
    let dnsviz = python_venv().join("bin/dnsviz");
    let out = Command::new(binary())
        .args(["dnssec", "ds", "-c"])
        .arg(probed.dir.join("config.cfg"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let ds_line = text.lines().find(|l| l.starts_with(&format!("{DOMAIN}. IN DS "))).expect("DS line");
    let ds = ds_line.split_whitespace().skip(3).collect::<Vec<_>>().join(" ");
    let dnskey = text.lines().find(|l| l.contains(" DNSKEY 257 ")).expect("DNSKEY line");
    let anchor = probed.dir.join("anchor.txt");
    std::fs::write(&anchor, format!("{dnskey}\n")).unwrap();
    let server = format!("{DOMAIN}:ns1.{DOMAIN}=127.0.0.1:{port}");
    let names = [
        DOMAIN.to_owned(),
        probed.with_value.clone(),
        probed.without_value.clone(),
        probed.emptied.clone(),
        format!("nope.{DOMAIN}"),
        format!("below.{}", probed.with_value),
    ];
    // One probe at a time in this process: `probe -N` starts a stand-in parent of its own for
    // our domain, and two at once (the tests share the domain, not the DS) were seen to answer
    // each other's DS queries, so each judged its zone by the other's DS (NO_SEP).
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let probe = probed.dir.join("probe.json");
    // The venv's bin first: DNSViz runs helpers by name.
    let path =
        format!("{}:{}", dnsviz.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    run(
        Command::new(&dnsviz)
            .env("PATH", &path)
            .args(["probe", "-A", "-a", DOMAIN, "-x", &server, "-N", &server])
            .args(["-D", &format!("{DOMAIN}:{ds}"), "-R", TYPES])
            .args(&names),
        None,
        &probe,
        "dnsviz probe (Debian bind9 provides the stand-in parent)",
    );
    let grok = probed.dir.join("grok.json");
    run(
        Command::new(&dnsviz).env("PATH", &path).args(["grok", "-t"]).arg(&anchor),
        Some(&probe),
        &grok,
        "dnsviz grok",
    );
    let took = started.elapsed();
    let report: Value = serde_json::from_slice(&std::fs::read(&grok).unwrap()).expect("grok writes JSON");
    for name in &names {
        assert!(report.get(format!("{name}.")).is_some(), "grok judged {name}: {report}");
    }
    let mut found = Vec::new();
    findings(&report, &mut Vec::new(), &mut found);
    (found, took)
}

/// The RRSIG answers DNSViz cannot read are the signatures at the name: the apex's cover its
/// SOA, NS and DNSKEY sets, the registered name's its TXT set.
fn rrsig_queries_get_the_signatures(probed: &Probed) {
    let covered = |name: &str| -> Vec<u16> {
        // Over TCP: the apex's signatures take more than the 512 bytes of a plain UDP answer.
        let reply =
            Message::decode(&probed.server.tcp_exchange(&query(name, t::RRSIG, None)).expect("a reply"));
        assert_eq!((reply.rcode, reply.aa()), (rcode::NOERROR, true), "{name} RRSIG");
        reply
            .answers
            .iter()
            .map(|r| {
                assert_eq!(r.rtype, t::RRSIG, "{name} RRSIG: {r:?}");
                u16::from_be_bytes([r.rdata[0], r.rdata[1]])
            })
            .collect()
    };
    let apex = covered(DOMAIN);
    assert!([t::SOA, t::NS, 48].iter().all(|t| apex.contains(t)), "{apex:?}");
    assert_eq!(covered(&probed.with_value), vec![t::TXT]);
}

#[test]
fn dnsviz_finds_nothing_wrong_with_either_algorithm() {
    let mut report = Vec::new();
    let mut servers = Vec::new();
    for algorithm in ["ecdsap256sha256", "ed25519"] {
        let probed = start_signed(algorithm, None);
        let (found, took) = dnsviz(&probed, probed.server.udp.port());
        eprintln!("DNSViz probe and grok ({algorithm}): {took:?}");
        report.extend(found.into_iter().map(|f| format!("{algorithm}: {f}")));
        servers.push(probed);
    }
    assert!(report.is_empty(), "DNSViz findings:\n{}", report.join("\n"));
    for probed in &servers {
        rrsig_queries_get_the_signatures(probed);
    }
}

#[test]
fn dnsviz_finds_nothing_wrong_at_an_nsd_secondary() {
    // The zone as NSD holds it after the transfer: names without values included (issue 22).
    let port = free_port(&["127.0.0.1"]);
    let transfer = crate::xfr::transfer_section("\"127.0.0.1/32\"", &[port]);
    let probed = start_signed("ecdsap256sha256", Some(&transfer));
    let nsd = crate::xfr::nsd(&probed.dir.join("nsd"), port, probed.server.tcp);
    let serial = crate::xfr::soa_serial(&probed.server.ask(DOMAIN, t::SOA));
    let current = crate::xfr::within(Duration::from_secs(20), || nsd.serial() == serial);
    assert!(current.is_some(), "NSD reaches serial {serial:?}:\n{}", nsd.log_text());
    let (found, took) = dnsviz(&probed, port);
    eprintln!("DNSViz probe and grok at NSD: {took:?}");
    assert!(found.is_empty(), "DNSViz findings at NSD:\n{}", found.join("\n"));
}

/// The rollover's place as `dnssec status` shows it: "step N of M", or "none" when none runs.
fn rollover_step(probed: &Probed) -> String {
    let out = Command::new(binary())
        .args(["dnssec", "status", "-c"])
        .arg(probed.dir.join("config.cfg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("rollover:")).unwrap_or_default();
    match line.find("step ") {
        Some(at) => line[at..].split(':').next().unwrap_or_default().to_owned(),
        None => "none".to_owned(),
    }
}

/// Runs `acme-delegate dnssec ARGS` on `probed`'s configuration; panics on failure.
fn dnssec_command(probed: &Probed, args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("dnssec")
        .args(args)
        .arg("-c")
        .arg(probed.dir.join("config.cfg"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "dnssec {args:?}: {text}");
    text
}

/// Runs a rollover (`dnssec rollover ARGS`) on a zone signed with `algorithm` and probes it
/// with DNSViz before, at each step and after; returns the findings, each named by its stage.
fn probe_each_step(algorithm: &str, args: &[&str], new_algorithm: &str) -> Vec<String> {
    // Steps about ten seconds apart, so that a probe (two to five seconds) fits inside one; the
    // DS step waits for `ds-seen`, sent only after that step was probed. Every TTL is short:
    // the old key leaves only after the zone's largest TTL (the persist records' too).
    let probed = start_signed_with(
        algorithm,
        None,
        "dnskey_ttl = 6\npropagation_delay = 4\nparent_ds_ttl = 4|soa_ttl = 3\ndefault_ttl = 3\npersist_ttl = 3",
    );
    let port = probed.server.udp.port();
    let mut report = Vec::new();
    // A probe is of one zone version and of the DS the parent should hold for it. A step is
    // recorded in the store before the zone serves it (one that signs every set anew takes
    // seconds on a loaded machine), and meanwhile `dnssec ds`, read from the store, already names
    // that step's DS: a probe then judges the zone of one step against the DS of the next (a CI
    // run saw NO_SEP and CDS_SIGNER_INVALID so). So a probe starts only once `dnssec status` no
    // longer waits for the step to be served, and is made again when the serial, the step or
    // the DS moved during it; findings of a probe within one such state always count.
    let serial = || crate::xfr::soa_serial(&probed.server.ask(DOMAIN, 6));
    // (Once an algorithm rollover is done, the commands refuse the old algorithm's setting
    // until the configuration names the new one: their output is then an error, read as is.)
    let output = |action: &str| {
        let out =
            Command::new(binary()).args(["dnssec", action, "-c"]).arg(probed.dir.join("config.cfg")).output();
        out.map(|out| String::from_utf8_lossy(&out.stdout).into_owned()).unwrap_or_default()
    };
    let state = || {
        let serving = output("status").contains("to serve step");
        (serving, serial(), rollover_step(&probed), output("ds"))
    };
    let probe = |stage: &str, report: &mut Vec<String>| {
        let (waiting_since, mut moved) = (Instant::now(), 0);
        loop {
            let before = state();
            if before.0 {
                assert!(
                    waiting_since.elapsed() < Duration::from_secs(60),
                    "{stage}: not served within a minute"
                );
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            if !before.3.contains(" IN DS ") {
                // The algorithm rollover ended as its last step was served: that zone is the
                // one probed "after the rollover", with the configuration naming the new key.
                eprintln!("DNSViz at {stage}: the rollover ended; probed after it");
                return;
            }
            let (found, took) = dnsviz(&probed, port);
            let after = state();
            eprintln!(
                "DNSViz at {stage}: {} findings in {took:?} (serial {:?} to {:?}, {} to {})",
                found.len(),
                before.1,
                after.1,
                before.2,
                after.2
            );
            if before == after {
                report.extend(found.into_iter().map(|f| format!("{stage}: {f}")));
                return;
            }
            moved += 1;
            assert!(moved < 3, "three probes at {stage} each saw the zone or its DS move");
        }
    };
    probe("before the rollover", &mut report);
    let mut command = vec!["rollover"];
    command.extend_from_slice(args);
    dnssec_command(&probed, &command);
    let mut seen: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut ds_sent = false;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "rollover unfinished; steps seen: {seen:?}, ds-seen sent: {ds_sent}\n{}\n{}",
            dnssec_command(&probed, &["status"]),
            probed.server.log_text()
        );
        let step = rollover_step(&probed);
        if step == "none" && !seen.is_empty() {
            break;
        }
        if step != "none" && !seen.contains(&step) {
            probe(&step, &mut report);
            seen.push(step.clone());
        }
        // (Once an algorithm rollover is done, the commands refuse the old algorithm's setting:
        // `rollover_step` then reads no step, and the loop ends.)
        let status = Command::new(binary())
            .args(["dnssec", "status", "-c"])
            .arg(probed.dir.join("config.cfg"))
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        if !ds_sent && status.contains("dnssec ds-seen") {
            dnssec_command(&probed, &["ds-seen"]);
            ds_sent = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if new_algorithm != algorithm {
        // Done: the configuration names the new algorithm, as the server's log asks.
        let path = probed.dir.join("config.cfg");
        let config = std::fs::read_to_string(&path).unwrap();
        let from = format!("algorithm = \"{algorithm}\"");
        assert!(config.contains(&from));
        std::fs::write(&path, config.replace(&from, &format!("algorithm = \"{new_algorithm}\""))).unwrap();
    }
    probe("after the rollover", &mut report);
    assert!(ds_sent && seen.len() >= 3, "steps probed: {seen:?}");
    report
}

#[test]
fn dnsviz_finds_nothing_wrong_at_each_step_of_a_csk_rollover() {
    let report = probe_each_step("ecdsap256sha256", &[], "ecdsap256sha256");
    assert!(report.is_empty(), "DNSViz findings:\n{}", report.join("\n"));
}

#[test]
fn dnsviz_finds_nothing_wrong_at_each_step_of_an_algorithm_rollover() {
    let report = probe_each_step("ecdsap256sha256", &["--algorithm", "ed25519"], "ed25519");
    assert!(report.is_empty(), "DNSViz findings:\n{}", report.join("\n"));
}
