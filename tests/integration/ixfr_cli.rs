//! IXFR after changes the command line made while no server ran (issue 22, item 2): NSD, Knot
//! and BIND, TSIG-keyed secondaries of a signed primary at 10,000 names, are in step; the
//! primary stops; `import-acme-dns` runs once per change; the primary starts again, and each
//! secondary takes what it missed by IXFR (its own log says so, and ours), and the difference
//! the restarted primary sends, applied to the zone taken before the stop, gives exactly the
//! zone it serves: the zone the command computed is the server's, signatures and all.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;
use crate::same_zone::{axfr, ixfr};
use crate::stores::{acme_dns_sqlite, import};
use crate::xfr::{Secondary, bind, knot, nsd, soa_serial, transfer_section, txts_at, within};

/// Names in the zone before the primary first starts (the scale).
const NAMES: u32 = 2_000;
/// Imports while the primary is stopped: one zone version each.
const IMPORTS: u32 = 20;
/// New accounts in each of them.
const PER_IMPORT: u32 = 3;

/// A UUID-shaped text for account `n` (`kind` tells usernames from subdomains).
fn uuid(kind: u16, n: u32) -> String {
    format!("{n:08x}-{kind:04x}-4bbb-8ccc-dddddddddddd")
}

/// The subdomain of account `n`.
fn subdomain(n: u32) -> String {
    uuid(0x5b, n)
}

/// An acme-dns SQLite file with acme-dns's test account (`stores::acme_dns_sqlite`) and the
/// accounts `first..first + count`, two TXT values each but every third, which has none.
fn acme_dns_file(path: &Path, first: u32, count: u32) {
    acme_dns_sqlite(path);
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let rows = conn.transaction().unwrap();
    for n in first..first + count {
        // Shaped like acme-dns's bcrypt hashes (unique, as its column requires); never used.
        let hash = format!("$2a$10${n:053}");
        rows.execute(
            "INSERT INTO records VALUES (?1, ?2, ?3, '[]')",
            rusqlite::params![uuid(0xa5, n), hash, subdomain(n)],
        )
        .unwrap();
        for i in (0..2).filter(|_| n % 3 != 0) {
            rows.execute(
                "INSERT INTO txt VALUES (?1, ?2, ?3)",
                rusqlite::params![subdomain(n), txt_value(2 * n + i), 1_700_000_000 + i],
            )
            .unwrap();
        }
    }
    rows.commit().unwrap();
}

/// The primary: signed (Ed25519, quick to sign at a start), DNS on a fixed loopback port (the secondaries keep asking it across
/// its restart), transfers to 127.0.0.1 with NOTIFY to `notify`.
fn primary_config(dir: &TempDir, dns_port: u16, notify: &[u16]) -> String {
    let config = base_config(&dir.0).replace("\"127.0.0.1:0\"", &format!("\"127.0.0.1:{dns_port}\""));
    let config = with_keys(&config, "transfer", &transfer_section("\"127.0.0.1/32\"", notify));
    let config = with_keys(&config, "api", "register_rate_limit = 0");
    with_keys(&config, "dnssec", "enabled = true\nalgorithm = \"ed25519\"")
}

/// The serial the primary serves.
fn serial(server: &TestServer) -> u32 {
    soa_serial(&server.ask(DOMAIN, t::SOA)).expect("the primary answers its SOA")
}

/// Waits until each secondary serves `serial`.
fn all_reach(secondaries: &[&Secondary], serial: u32) {
    for secondary in secondaries {
        let took = within(Duration::from_secs(60), || secondary.serial() == Some(serial));
        assert!(took.is_some(), "a secondary reaches serial {serial}:\n{}", secondary.log_text());
    }
}

/// The size of each transfer a secondary logged in `log`: the number before "bytes" on each
/// line with `marker` (NSD "… of B bytes in …", Knot "…, finished, …, B bytes", BIND
/// "Transfer completed: …, B bytes, …").
fn transfer_sizes(log: &str, marker: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| l.split_once(" bytes")?.0.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// `zone` (records as dig prints them) with the IXFR `ixfr` applied (RFC 1995: after the
/// first SOA, each SOA begins a step's deletions, the next its additions); every deletion must
/// be a record the zone holds and every addition a new one.
fn apply_ixfr(zone: &[String], ixfr: &[String]) -> BTreeSet<String> {
    let is_soa = |line: &str| line.split(' ').nth(3) == Some("SOA");
    assert!(ixfr.len() > 2 && is_soa(&ixfr[1]), "not an incremental answer: {ixfr:?}");
    let mut zone: BTreeSet<String> = zone.iter().cloned().collect();
    let mut deleting = false;
    for line in &ixfr[1..ixfr.len() - 1] {
        deleting ^= is_soa(line);
        if deleting {
            assert!(zone.remove(line), "the IXFR deletes a record the zone did not hold: {line}");
        } else {
            assert!(zone.insert(line.clone()), "the IXFR adds a record the zone held: {line}");
        }
    }
    zone
}

#[test]
fn ixfr_cli_imports_made_while_the_primary_was_stopped_reach_nsd_knot_and_bind_by_ixfr() {
    let dir = TempDir::new();
    let ports: Vec<u16> = (0..4).map(|_| free_port(&["127.0.0.1"])).collect();
    let config = primary_config(&dir, ports[0], &ports[1..]);
    std::fs::write(dir.join("config.cfg"), &config).unwrap();
    // The zone before the first start: an import into the empty store, whose difference would
    // be larger than the zone it came to, so no step is kept.
    let source = dir.join("base.db");
    acme_dns_file(&source, 0, NAMES - 1);
    let report = import(&dir, source.to_str().unwrap());
    assert!(report.contains("no IXFR steps are kept"), "{report}");

    let mut server = TestServer::start_with(&dir, &config);
    let primary = server.tcp;
    let nsd = nsd(&dir.join("nsd"), ports[1], primary);
    let knot = knot(&dir.join("knot"), ports[2], primary);
    let named = bind(&dir.join("bind"), ports[3], primary);
    let secondaries = [&nsd, &knot, &named];
    // Updates through the API: steps the server keeps, which the command's must continue.
    let account = server.register();
    for i in 0..2 {
        assert_eq!(server.update(&account, &txt_value(90_000 + i)).status, 200);
    }
    let before = serial(&server);
    all_reach(&secondaries, before);
    let zone_before = axfr(&server);
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(20)).is_some(), "the primary stops on SIGTERM");
    let knot_before = knot.log_text().len();

    // The changes, each an import of new accounts (acme-dns's test account, imported by the
    // first, is skipped by the others).
    for i in 0..IMPORTS {
        let source = dir.join(&format!("import-{i}.db"));
        acme_dns_file(&source, NAMES + i * PER_IMPORT, PER_IMPORT);
        let report = import(&dir, source.to_str().unwrap());
        let (from, to) = (before.wrapping_add(i), before.wrapping_add(i + 1));
        let kept = format!("IXFR steps kept: 1, serial {from} to {to}");
        assert!(report.contains(&format!("{PER_IMPORT} imported")) && report.contains(&kept), "{report}");
    }
    let after = before.wrapping_add(IMPORTS);

    let server = TestServer::start_with(&dir, &config);
    assert_eq!(serial(&server), after, "the restarted primary serves the store's serial");
    // The chain read at the start: the server's steps, then the command's, to the serial now.
    let log = server.log_text();
    let seeded = log.lines().find_map(|l| {
        let (steps, serials) = l.split_once("IXFR journal: ")?.1.split_once(" steps from the database")?;
        serials.ends_with(&format!(" to {after})")).then(|| steps.parse::<u32>().ok())?
    });
    assert!(seeded.is_some_and(|steps| steps > IMPORTS), "the journal reaches serial {after}:\n{log}");
    // Its NOTIFY at the start brings each secondary's IXFR.
    all_reach(&secondaries, after);
    let log = server.log_text();
    assert!(!log.contains("full zone instead"), "no secondary gets the whole zone:\n{log}");
    let ours = format!("incremental from serial {before} to {after}");
    assert!(log.matches(&ours).count() >= 3, "three IXFRs from {before} answered incrementally:\n{log}");
    // Each secondary's log: Knot names the kind of each transfer; all three give its size,
    // which after the restart is a small part of the first (the whole zone).
    let knot_since = knot.log_text().get(knot_before..).unwrap_or_default().to_owned();
    assert!(knot_since.contains("IXFR, incoming") && !knot_since.contains("AXFR"), "Knot:\n{knot_since}");
    for (secondary, marker) in
        [(&nsd, "received update to serial"), (&knot, "XFR, incoming"), (&named, "Transfer completed")]
    {
        let log = secondary.log_text();
        let sizes = transfer_sizes(&log, marker);
        let (Some(first), Some(last)) = (sizes.first(), sizes.last()) else { panic!("no transfer:\n{log}") };
        assert!(last * 5 < *first, "the last transfer ({last} bytes) is not a difference ({first}):\n{log}");
    }

    // The difference, applied to the zone before, is the zone served now, record for record.
    let replayed = apply_ixfr(&zone_before, &ixfr(&server, before));
    let served: BTreeSet<String> = axfr(&server).into_iter().collect();
    assert!(
        replayed == served,
        "the IXFR applied to the zone at {before} is not the zone at {after}:\nonly replayed: {:?}\nonly served: {:?}",
        replayed.difference(&served).collect::<Vec<_>>(),
        served.difference(&replayed).collect::<Vec<_>>()
    );
    // And the secondaries serve what the primary serves at the names the command added.
    let last = NAMES + IMPORTS * PER_IMPORT - 1;
    for n in [NAMES, last - 1, last] {
        let name = format!("{}.{DOMAIN}", subdomain(n));
        let values = txts_at(server.udp, &name).expect("the primary answers");
        assert_eq!(values.len(), if n % 3 == 0 { 0 } else { 2 }, "{name}");
        for secondary in secondaries {
            assert_eq!(txts_at(secondary.addr, &name), Some(values.clone()), "{name}");
        }
    }
}
