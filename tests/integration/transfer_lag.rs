//! The lag history of `transfer status` (issue 22, item 5): with `wait_for_secondaries =
//! "all"`, the primary keeps how long each notified secondary took to serve each update (the
//! newest 100 per secondary), and the command prints each one's p50 and max over them and
//! names the slowest. NSD is the secondary that serves; a port where nothing answers is the
//! one that never does.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::xfr::{nsd_with, soa_serial, transfer_section, within};

/// A primary on a fixed DNS port (NSD keeps asking it across a restart) whose updates wait
/// for `notify` at most `timeout` seconds.
fn waiting_config(dir: &TempDir, dns_port: u16, notify: &[u16], timeout: u32) -> String {
    let config = base_config(&dir.0).replace("\"127.0.0.1:0\"", &format!("\"127.0.0.1:{dns_port}\""));
    let transfer = transfer_section("\"127.0.0.1/32\"", notify).replace(
        "wait_for_secondaries = \"none\"",
        &format!("wait_for_secondaries = \"all\"\nwait_timeout = {timeout}"),
    );
    with_keys(&with_keys(&config, "transfer", &transfer), "api", "update_rate_limit = 0")
}

/// Runs `transfer status` on the configuration in `dir`: its exit code and output.
fn status(dir: &TempDir) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(["transfer", "status", "-c"])
        .arg(dir.join("config.cfg"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// The p50 and max (milliseconds) `status` printed for `secondary` over `updates` updates.
fn lag_of(status: &str, secondary: &str, updates: usize) -> Option<(u64, u64)> {
    let head = format!("{secondary}: lag over the last {updates} updates: p50 ");
    let line = status.lines().find_map(|l| l.strip_prefix(&head))?;
    let (p50, max) = line.split_once(" ms, max ")?;
    Some((p50.parse().ok()?, max.strip_suffix(" ms")?.parse().ok()?))
}

#[test]
fn transfer_status_reports_each_secondarys_lag_over_the_last_updates_and_the_slowest() {
    let dir = TempDir::new();
    let (dns_port, nsd_port, dead) =
        (free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]), free_port(&["127.0.0.1"]));
    let mut server = TestServer::start_with(&dir, &waiting_config(&dir, dns_port, &[nsd_port, dead], 3));
    // NSD serves a transfer at once (README: its default waits a second before loading one).
    let nsd = nsd_with(&dir.join("nsd"), nsd_port, server.tcp, "  xfrd-reload-timeout: 0\n");
    let serial = soa_serial(&server.ask(DOMAIN, t::SOA)).unwrap();
    assert!(within(Duration::from_secs(10), || nsd.serial() == Some(serial)).is_some(), "{}", nsd.log_text());
    let account = server.register();
    for i in 0..3 {
        assert_eq!(server.update(&account, &txt_value(i)).status, 200);
    }
    // The lags are written after each update's answer.
    std::thread::sleep(Duration::from_millis(500));
    let (code, out) = status(&dir);
    assert_eq!(code, Some(1), "the silent secondary fails the check:\n{out}");
    let (p50, max) = lag_of(&out, &format!("127.0.0.1:{nsd_port}"), 3).unwrap_or_else(|| panic!("{out}"));
    assert!(p50 <= max && max < 3000, "NSD within the timeout:\n{out}");
    let never = format!(
        "127.0.0.1:{dead}: lag over the last 3 updates: p50 over wait_timeout, max over wait_timeout, \
         3 not within wait_timeout"
    );
    assert!(out.contains(&never), "{out}");
    assert!(out.contains(&format!("slowest over the last updates: 127.0.0.1:{dead}")), "{out}");

    // NSD alone, beyond the 100 updates kept.
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).is_some());
    let server = TestServer::start_with(&dir, &waiting_config(&dir, dns_port, &[nsd_port], 10));
    for i in 0..105 {
        assert_eq!(server.update(&account, &txt_value(10 + i)).status, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, out) = status(&dir);
    assert_eq!(code, Some(0), "{out}");
    let (p50, max) = lag_of(&out, &format!("127.0.0.1:{nsd_port}"), 100).unwrap_or_else(|| panic!("{out}"));
    assert!(p50 <= max && max < 10_000, "{out}");
    println!("NSD's lag over 100 updates: p50 {p50} ms, max {max} ms");
}
