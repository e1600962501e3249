//! IXFR across a restart of the primary (issue 22, item 2): the journal's steps are kept in the
//! store, so a primary started again on the same store answers a secondary that fell behind
//! while it was stopped with a difference, not the whole zone. NSD is the secondary of the
//! small cases; at 10,000 names NSD, Knot and BIND follow the primary and each one's own log
//! must show that it took the change by IXFR.
//!
//! How each secondary says so (seen with NSD 4.6, Knot 3.2 and BIND 9.18): Knot logs "IXFR,
//! incoming, … finished", or "receiving AXFR-style IXFR" then "AXFR, incoming" when the primary
//! sent the whole zone; BIND, at debug level 3 of its `xfer-in` category (see `xfr::bind`),
//! "got incremental response" or "got nonincremental response"; NSD logs neither, only the
//! size of what it applied ("received update to serial N … of B bytes"), so an IXFR is a
//! transfer far smaller than NSD's first one, the whole zone.

use std::path::Path;
use std::time::Duration;

use crate::harness::*;
use crate::xfr::{SECRET, Secondary, nsd_with, soa_serial, transfer_section, txts_at, within};

/// RR type SOA.
const SOA: u16 = 6;

/// A primary's configuration: DNS on a fixed loopback port (NSD keeps asking it across the
/// restart), transfers to 127.0.0.1 with NOTIFY to `notify`.
pub(crate) fn fixed_primary_config(dir: &TempDir, dns_port: u16, notify: u16) -> String {
    as_primary(&base_config(&dir.0), dns_port, &[notify])
}

/// `base` (a configuration from the harness, on either store) as such a primary, with NOTIFY
/// to each of `notify` (none: an instance that only writes to the store, keeping its steps
/// there all the same).
pub(crate) fn as_primary(base: &str, dns_port: u16, notify: &[u16]) -> String {
    let config = base.replace("\"127.0.0.1:0\"", &format!("\"127.0.0.1:{dns_port}\""));
    let config = with_keys(&config, "transfer", &transfer_section("\"127.0.0.1/32\"", notify));
    with_keys(&config, "api", "register_rate_limit = 0")
}

/// Asks `server` for an IXFR from `serial` with `dig` (TSIG-signed, over TCP), as a secondary
/// that kept its zone would; the server's log then names what it sent.
fn ask_ixfr(server: &TestServer, serial: u32) {
    let out = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &server.tcp.port().to_string(), DOMAIN, &format!("IXFR={serial}")])
        .args(["-y", &format!("hmac-sha256:transfer-key:{SECRET}"), "+tcp", "+tries=1", "+time=5"])
        .output()
        .expect("dig (Debian package bind9-dnsutils)");
    assert!(out.status.success(), "dig IXFR: {}", String::from_utf8_lossy(&out.stdout));
}

/// Whether `server` answered an IXFR from `from` to `to` with a difference (checked for a few
/// seconds: the transfer's log line is written once its last message is sent, and a secondary
/// may hold the zone a moment before). NSD, when it could not keep its zone across its own stop
/// on a loaded machine, asks for an AXFR instead: `dig` asks the IXFR such a secondary would.
fn answered_incrementally(server: &TestServer, from: u32, to: u32) -> bool {
    let line = format!("incremental from serial {from} to {to}");
    if within(Duration::from_secs(3), || server.log_text().contains(&line)).is_some() {
        return true;
    }
    ask_ixfr(server, from);
    within(Duration::from_secs(5), || server.log_text().contains(&line)).is_some()
}

/// The serial a server serves.
fn serial_of(server: &TestServer) -> u32 {
    soa_serial(&server.ask(DOMAIN, SOA)).expect("the primary answers its SOA")
}

/// Registered names of the large zone of issue 22 ("at 10k names").
pub(crate) const MANY: u32 = 10_000;

/// Writes `names` accounts, each with one TXT value, straight into the PostgreSQL store `url`
/// of `config` before any server starts: the binary makes the schema (`account list`), then
/// two statements write the rows as the API would (a key hash nobody can log in with; values
/// stamped now, as the retention purge clears old ones). A second or so, where registering
/// through the API would take minutes in a debug build.
pub(crate) fn fill_postgres(dir: &TempDir, config: &str, url: &str, names: u32) {
    let path = dir.join("config.cfg");
    std::fs::write(&path, config).unwrap();
    let made = std::process::Command::new(binary()).arg("-c").arg(&path).args(["account", "list"]).output();
    let made = made.expect("the binary runs");
    assert!(made.status.success(), "schema: {}", String::from_utf8_lossy(&made.stderr));
    // The subdomain and value of name i as `xfr_limits` writes them on SQLite (`txt_value(i)`).
    let subdomain = "lpad(to_hex(i), 8, '0') || '-0000-4000-8000-000000000000'";
    let now = "extract(epoch FROM now())::bigint";
    let last = names.saturating_sub(1);
    crate::pg::psql(
        url,
        &format!(
            "INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at) \
             SELECT 'user-' || i, decode(repeat('00', 32), 'hex'), {subdomain}, '[]', {now} \
             FROM generate_series(0, {last}) AS i; \
             INSERT INTO txt (subdomain, value, updated_at) \
             SELECT {subdomain}, left(repeat(lpad(i::text, 8, '0') || '_', 5), 43), {now} \
             FROM generate_series(0, {last}) AS i;"
        ),
    );
}

/// Which server a secondary is: each logs the kind of a transfer its own way.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer {
    /// NSD (`xfr::nsd`).
    Nsd,
    /// Knot (`xfr::knot`).
    Knot,
    /// BIND (`xfr::bind`).
    Bind,
}

/// NSD, Knot and BIND as secondaries of `primary`, each in a directory of its own under `dir`,
/// on these ports (in that order). NSD runs with `xfrd-reload-timeout: 0`, as the README tells
/// operators: with its default, a burst of changes (registrations less than a second apart)
/// makes it log "update failed, restarting transfer" and forget the serial it holds, so that
/// its next request, whatever the primary keeps, is an AXFR.
pub(crate) fn three_secondaries(
    dir: &Path,
    ports: [u16; 3],
    primary: std::net::SocketAddr,
) -> [(Peer, Secondary); 3] {
    [
        (Peer::Nsd, nsd_with(&dir.join("nsd"), ports[0], primary, "  xfrd-reload-timeout: 0\n")),
        (Peer::Knot, crate::xfr::knot(&dir.join("knot"), ports[1], primary)),
        (Peer::Bind, crate::xfr::bind(&dir.join("bind"), ports[2], primary)),
    ]
}

/// The bytes of each transfer NSD applied, in its log's order ("… of B bytes in S seconds"),
/// with the serial it reached.
fn nsd_transfers(log: &str) -> Vec<(u32, u64)> {
    log.lines()
        .filter_map(|line| {
            let serial = line.split("received update to serial ").nth(1)?.split(' ').next()?.parse().ok()?;
            let bytes = line.split(" of ").last()?.split(" bytes in ").next()?.parse().ok()?;
            Some((serial, bytes))
        })
        .collect()
}

/// Whether `peer`'s log shows that it took serial `to` by an incremental transfer, looking only
/// at what it logged after the first `since` bytes of `log` (the part before may hold the
/// whole-zone transfers it started with): `Ok` with the log line that says so, `Err` with
/// what the log shows instead.
pub(crate) fn took_by_ixfr(peer: Peer, log: &str, since: usize, to: u32) -> Result<String, String> {
    let recent = log.get(since..).unwrap_or_default();
    let line = |needle: &str| recent.lines().find(|l| l.contains(needle)).map(str::to_owned);
    let why = match peer {
        Peer::Nsd => {
            // NSD's first transfer of the zone is the whole zone: the yardstick.
            let whole = nsd_transfers(log).first().map(|t| t.1).unwrap_or_default();
            match nsd_transfers(recent).into_iter().find(|t| t.0 == to) {
                Some((_, bytes)) if bytes * 4 < whole => {
                    let serial = format!("received update to serial {to} ");
                    let applied = recent.lines().find(|l| l.contains(&serial) && l.contains(" bytes in "));
                    return Ok(format!("{} (the whole zone: {whole} bytes)", applied.unwrap_or_default()));
                }
                Some((_, bytes)) => {
                    format!("{bytes} bytes to serial {to}, not under a quarter of the zone's {whole}")
                }
                None => format!("no transfer to serial {to}"),
            }
        }
        Peer::Knot => {
            let finished = recent.lines().find(|l| l.contains("IXFR, incoming") && l.contains("finished"));
            let reached = recent.contains(&format!("-> {to},"));
            match finished {
                Some(finished) if reached && !recent.contains("AXFR") => return Ok(finished.to_owned()),
                _ => format!(
                    "IXFR finished: {}, serial {to} reached: {reached}, AXFR named: {}",
                    finished.is_some(),
                    recent.contains("AXFR")
                ),
            }
        }
        Peer::Bind => {
            let incremental = line("got incremental response");
            let reached = recent.contains(&format!("transferred serial {to}"));
            match incremental {
                Some(incremental) if reached && !recent.contains("got nonincremental response") => {
                    return Ok(incremental);
                }
                _ => format!("incremental: {}, serial {to} reached: {reached}", incremental.is_some()),
            }
        }
    };
    Err(format!("{peer:?} did not take serial {to} by IXFR ({why}):\n{log}"))
}

#[test]
fn ixfr_a_restarted_primary_answers_a_secondary_behind_it_incrementally() {
    let dir = TempDir::new();
    let (dns_port, nsd_port) = (free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let config = fixed_primary_config(&dir, dns_port, nsd_port);
    let mut server = TestServer::start_with(&dir, &config);
    // NSD writes its zone file every second, so that it keeps its serial across its own stop.
    let mut nsd = nsd_with(&dir.join("nsd"), nsd_port, server.tcp, "  zonefiles-write: 1\n");
    let accounts: Vec<serde_json::Value> = (0..3).map(|_| server.register()).collect();
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(server.update(account, &txt_value(i as u32)).status, 200);
    }
    let in_step = serial_of(&server);
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(in_step));
    assert!(took.is_some(), "NSD reaches serial {in_step}:\n{}", nsd.log_text());

    // NSD has written its zone file (at most a second after the transfer), then stops.
    std::thread::sleep(Duration::from_millis(2500));
    // NSD stops; three more updates; the primary stops (SIGTERM) and starts on the same store.
    nsd.stop();
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(server.update(account, &txt_value(10 + i as u32)).status, 200);
    }
    let newest = serial_of(&server);
    assert_ne!(newest, in_step);
    // The steps are kept after each commit, off the update's path: give them a moment.
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).is_some(), "the primary stops on SIGTERM");
    let server = TestServer::start_with(&dir, &config);
    assert_eq!(serial_of(&server), newest, "the restarted primary serves the store's serial");

    // NSD asks for what it missed and gets it as a difference from its serial.
    nsd.start();
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(newest));
    assert!(took.is_some(), "NSD catches up to {newest}:\n{}", nsd.log_text());
    let name = accounts[2]["fulldomain"].as_str().unwrap();
    let value = txt_value(12);
    assert!(txts_at(nsd.addr, name).is_some_and(|t| t.contains(&value)));
    let incremental = answered_incrementally(&server, in_step, newest);
    let log = server.log_text();
    assert!(!log.contains("full zone instead"), "no full zone for NSD:\n{log}");
    assert!(incremental, "the restarted primary answers NSD's IXFR with a difference:\n{log}");
    assert!(log.contains("IXFR journal: 9 steps from the database"), "{log}");
}

/// Two instances on one PostgreSQL: while A (NSD's primary) is stopped, B makes the changes;
/// A, started again, answers NSD's IXFR with a difference computed by B.
#[test]
fn ixfr_a_primary_restarted_after_another_instance_changed_the_zone_answers_incrementally() {
    let url = crate::pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let (dns_port, nsd_port) = (free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let config_a = as_primary(&postgres_config(&dir_a.0, &url), dns_port, &[nsd_port]);
    let config_b = as_primary(&postgres_config(&dir_b.0, &url), free_port(&["127.0.0.1"]), &[]);
    let mut a = TestServer::start_with(&dir_a, &config_a);
    let b = TestServer::start_with(&dir_b, &config_b);
    let nsd = crate::xfr::nsd(&dir_a.join("nsd"), nsd_port, a.tcp);
    let accounts: Vec<serde_json::Value> = (0..3).map(|_| a.register()).collect();
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(a.update(account, &txt_value(i as u32)).status, 200);
    }
    let in_step = serial_of(&a);
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(in_step));
    assert!(took.is_some(), "NSD reaches serial {in_step}:\n{}", nsd.log_text());

    a.signal("TERM");
    assert!(a.wait(Duration::from_secs(10)).is_some(), "A stops on SIGTERM");
    assert!(within(Duration::from_secs(5), || serial_of(&b) == in_step).is_some());
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(b.update(account, &txt_value(20 + i as u32)).status, 200);
    }
    let newest = serial_of(&b);
    std::thread::sleep(Duration::from_millis(300));
    let a = TestServer::start_with(&dir_a, &config_a);
    assert_eq!(serial_of(&a), newest);
    // A's NOTIFY at its start brings NSD's IXFR.
    let took = within(Duration::from_secs(10), || nsd.serial() == Some(newest));
    assert!(took.is_some(), "NSD catches up to {newest}:\n{}", nsd.log_text());
    let incremental = answered_incrementally(&a, in_step, newest);
    let log = a.log_text();
    assert!(!log.contains("full zone instead"), "no full zone for NSD:\n{log}");
    assert!(incremental, "A answers NSD's IXFR with B's difference:\n{log}");
}

/// The stored steps hold the records they changed: after `DELETE /account`, no step names the
/// account or its value, and the steps that come after it are kept again.
#[test]
fn ixfr_an_erasure_leaves_no_stored_step_with_the_erased_data() {
    let dir = TempDir::new();
    let config = fixed_primary_config(&dir, free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let server = TestServer::start_with(&dir, &config);
    let (gone, kept) = (server.register(), server.register());
    let label = gone["subdomain"].as_str().unwrap().to_owned();
    let value = txt_value(77);
    assert_eq!(server.update(&gone, &value).status, 200);
    assert_eq!(server.update(&kept, &txt_value(78)).status, 200);
    let db = dir.join("acme-delegate.db");
    let steps = |pattern: &str| {
        let sql =
            format!("SELECT count(*) FROM zone_journal WHERE instr(data, CAST('{pattern}' AS BLOB)) > 0;");
        let out = std::process::Command::new("sqlite3").arg(&db).arg(sql).output().expect("sqlite3 runs");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().expect("a count")
    };
    let stored = within(Duration::from_secs(5), || steps(&value) > 0 && steps(&label) > 0);
    assert!(stored.is_some(), "the steps are stored, the account's among them");
    assert_eq!(server.http("DELETE", "/account", &auth(&gone), b"").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!((steps(&value), steps(&label)), (0, 0), "no stored step holds the erased account");
    assert_eq!(server.update(&kept, &txt_value(79)).status, 200);
    let again = within(Duration::from_secs(5), || steps(&txt_value(79)) > 0);
    assert!(again.is_some(), "steps after the erasure are kept");
}

/// Issue 22's case at 10,000 names: A (on PostgreSQL) feeds NSD, Knot and BIND; while A is
/// stopped, B (the same database) makes 100 updates; A, started again, answers each
/// secondary's IXFR with B's difference, and each secondary's own log says it took an IXFR.
#[test]
fn ixfr_nsd_knot_and_bind_take_a_second_instances_100_updates_by_ixfr_at_10k_names() {
    let url = crate::pg::fresh_database();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let dns_port = free_port(&["127.0.0.1"]);
    let ports = [(); 3].map(|_| free_port(&["127.0.0.1"]));
    let config_a = as_primary(&postgres_config(&dir_a.0, &url), dns_port, &ports);
    let config_b = as_primary(&postgres_config(&dir_b.0, &url), free_port(&["127.0.0.1"]), &[]);
    fill_postgres(&dir_a, &config_a, &url, MANY);
    let mut a = TestServer::start_with(&dir_a, &config_a);
    let b = TestServer::start_with(&dir_b, &config_b);
    // Accounts to update (the written ones have no usable key), made before the secondaries
    // start: their first transfer is then of a zone at rest (BIND, whose first AXFR was cut
    // while these registrations ran, asked again only after the SOA's retry, hours away).
    let accounts: Vec<serde_json::Value> = (0..20).map(|_| a.register()).collect();
    let secondaries = three_secondaries(&dir_a.0, ports, a.tcp);
    let in_step = serial_of(&a);
    for (peer, secondary) in &secondaries {
        let took = within(Duration::from_secs(30), || secondary.serial() == Some(in_step));
        assert!(took.is_some(), "{peer:?} reaches serial {in_step}:\n{}", secondary.log_text());
    }
    let name = |i: u32| format!("{i:08x}-0000-4000-8000-000000000000.{DOMAIN}");
    for (_, secondary) in &secondaries {
        assert_eq!(txts_at(secondary.addr, &name(MANY - 1)), Some(vec![txt_value(MANY - 1)]));
    }
    // What each secondary logged so far: its whole-zone transfer and the IXFRs since.
    let before: Vec<usize> = secondaries.iter().map(|(_, s)| s.log_text().len()).collect();

    a.signal("TERM");
    assert!(a.wait(Duration::from_secs(10)).is_some(), "A stops on SIGTERM");
    assert!(within(Duration::from_secs(5), || serial_of(&b) == in_step).is_some());
    let started = std::time::Instant::now();
    for i in 0..100u32 {
        assert_eq!(b.update(&accounts[i as usize % 20], &txt_value(100 + i)).status, 200);
    }
    let updating = started.elapsed();
    let newest = serial_of(&b);
    // B keeps its steps off the update's path: wait for the last one in the database.
    let kept = format!("SELECT count(*) FROM zone_journal WHERE serial_to = {newest}");
    let stored = within(Duration::from_secs(10), || crate::pg::psql(&url, &kept).trim() == "1");
    assert!(stored.is_some(), "B keeps the step to {newest}:\n{}", b.log_text());

    let a = TestServer::start_with(&dir_a, &config_a);
    assert_eq!(serial_of(&a), newest, "A serves the store's serial");
    // A's NOTIFY at its start brings each secondary's IXFR.
    let mut failures = Vec::new();
    let last = accounts[19]["fulldomain"].as_str().unwrap();
    for ((peer, secondary), since) in secondaries.iter().zip(before) {
        // Polled: a secondary loading the new version may miss a query meanwhile.
        let took = within(Duration::from_secs(30), || {
            secondary.serial() == Some(newest)
                && txts_at(secondary.addr, last).is_some_and(|t| t.contains(&txt_value(199)))
        });
        let outcome = match took {
            Some(_) => took_by_ixfr(*peer, &secondary.log_text(), since, newest),
            None => Err(format!("{peer:?} does not serve serial {newest}:\n{}", secondary.log_text())),
        };
        match outcome {
            Ok(line) => eprintln!("{peer:?}: {line}"),
            Err(failure) => failures.push(failure),
        }
    }
    // Our side: three differences from the serial the secondaries held, no whole zone.
    let line = format!("incremental from serial {in_step} to {newest}");
    let answered = within(Duration::from_secs(5), || a.log_text().matches(&line).count() >= 3);
    let log = a.log_text();
    if answered.is_none() || log.contains("full zone instead") {
        failures.push(format!("A answers the three IXFRs from {in_step} with the difference:\n{log}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let seeded =
        log.lines().any(|l| l.contains("steps from the database") && l.contains(&format!(" to {newest})")));
    assert!(seeded, "A's journal starts from the database's steps:\n{log}");
    eprintln!("100 updates by B in {updating:?}; NSD, Knot and BIND took {in_step} -> {newest} by IXFR");
}
