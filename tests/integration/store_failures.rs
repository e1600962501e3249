//! Issue 19, "store errors mapped honestly": a PostgreSQL restart and a full disk are 503s the
//! client can retry, never a 500; `/ready` tells when writes fail; DNS answers throughout from
//! memory; and the `signatures` table keeps about one row per signed set however often a name
//! changes. The restart runs on a throwaway cluster of its own, the full disk on a small tmpfs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::pg::{self, Cluster};

/// Writers updating at once during the restart, one account each.
const WRITERS: usize = 4;
/// Updates per writer at most: below `txt_values = 100`, so every value answered 200 is still
/// served at the end.
const PER_WRITER: u32 = 95;

/// What one `/update` got: the value sent, the status and the body.
type Outcome = (String, u16, String);

/// `pg_ctl restart -m fast` during a bounded stream of updates: every answer is 200 or 503
/// `store_unavailable` (never a 500), and every value answered 200 is served afterwards.
#[test]
fn a_postgres_restart_gives_200_or_503_and_every_200_is_served() {
    let cluster = Cluster::start();
    let dir = TempDir::new();
    let url = pg::fresh_database_on(&cluster.url());
    let config = with_keys(&postgres_config(&dir.0, &url), "api", "update_rate_limit = 0");
    let config = with_keys(&config, "dns", "txt_values = 100");
    let server = TestServer::start_with(&dir, &config);
    let accounts: Vec<serde_json::Value> = (0..WRITERS).map(|_| server.register()).collect();
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(40);
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|scope| {
        let writers: Vec<_> = accounts
            .iter()
            .enumerate()
            .map(|(w, account)| {
                let (server, done) = (&server, &done);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for n in 0..PER_WRITER {
                        if done.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        let value = txt_value(w as u32 * 1000 + n);
                        let r = server.update(account, &value);
                        out.push((value, r.status, r.body_text()));
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        cluster.restart_fast();
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, Ordering::Relaxed);
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let all: Vec<&Outcome> = outcomes.iter().flatten().collect();
    let refused: Vec<&&Outcome> = all.iter().filter(|(_, status, _)| *status != 200).collect();
    eprintln!("{} updates, {} not 200", all.len(), refused.len());
    for (value, status, body) in &refused {
        assert_eq!(*status, 503, "update of {value}: {body}\n{}", server.log_text());
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(json["error"], "store_unavailable", "{body}");
    }
    let recovered =
        pg::eventually(Duration::from_secs(20), || server.http("GET", "/ready", &[], b"").status == 200);
    assert!(recovered, "/ready did not recover:\n{}", server.log_text());
    for (account, outcomes) in accounts.iter().zip(&outcomes) {
        let name = account["fulldomain"].as_str().unwrap();
        let reply = server.tcp_exchange(&query(name, t::TXT, None)).expect("a TCP reply");
        let served = Message::decode(&reply).txts();
        for (value, _, _) in outcomes.iter().filter(|(_, status, _)| *status == 200) {
            assert!(served.contains(value), "{value} was answered 200 but {name} serves {served:?}");
        }
    }
}

/// A tmpfs mounted for a test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` spells it: `4m`) on the new directory `at`.
    fn mount(at: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs (the test needs root)");
        Self(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there (a server that did not stop) must not
        // keep the mount around.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

/// With the SQLite store's disk full, writes answer 503 `store_full`, `/ready` says writes fail,
/// DNS still answers the values written before; once space is freed, writes succeed again.
#[test]
fn a_full_disk_gives_503_and_ready_says_so_while_dns_answers() {
    let dir = TempDir::new();
    // Declared before the server, so dropped after it.
    let mount = Tmpfs::mount(dir.join("fs"), "4m");
    let db = mount.0.join("acme-delegate.db");
    let config = base_config(&dir.0).replace(
        &format!("connection = \"{}\"", dir.join("acme-delegate.db").display()),
        &format!("connection = \"{}\"", db.display()),
    );
    let server = TestServer::start_with(&dir, &with_keys(&config, "api", "update_rate_limit = 0"));
    let account = server.register();
    let name = account["fulldomain"].as_str().unwrap().to_owned();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    let filler = fill(&mount.0);

    // Some writes may still fit where the WAL has room; a bounded number must reach the limit.
    let mut served = vec![txt_value(1)];
    let mut full = None;
    for n in 2..200 {
        let r = server.update(&account, &txt_value(n));
        match r.status {
            200 => {
                served.push(txt_value(n));
            }
            503 => {
                full = Some((n, r.json()));
                break;
            }
            status => {
                panic!("update {n} with the disk full: {status} {}\n{}", r.body_text(), server.log_text())
            }
        }
    }
    let (failed, body) = full.expect("no write failed with the disk full");
    assert_eq!(body["error"], "store_full", "{body}");
    let ready = server.http("GET", "/ready", &[], b"");
    assert_eq!(ready.status, 503, "/ready with writes failing: {}", ready.body_text());
    assert_eq!(ready.json()["error"], "store_full", "{}", ready.body_text());
    // DNS answers from memory: the last values written, not the refused one.
    let answer = server.ask(&name, t::TXT).txts();
    let newest: Vec<String> = served.iter().rev().take(2).rev().cloned().collect();
    assert_eq!(answer, newest, "served with the disk full");
    assert!(!answer.contains(&txt_value(failed)));

    std::fs::remove_file(filler).unwrap();
    let r = server.update(&account, &txt_value(500));
    assert_eq!(r.status, 200, "after space was freed: {}", r.body_text());
    let ready = server.http("GET", "/ready", &[], b"");
    assert_eq!(ready.status, 200, "/ready after space was freed: {}", ready.body_text());
    assert!(server.ask(&name, t::TXT).txts().contains(&txt_value(500)));
    drop(server);
    drop(mount);
}

/// Rows in the SQLite store's `signatures` table.
fn signature_rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM signatures", [], |r| r.get(0)).unwrap()
}

/// Many updates of one name within one signing epoch leave about one kept signature per signed
/// set, and a restart still reuses them.
#[test]
fn kept_signatures_stay_bounded_under_many_updates_of_one_name() {
    const UPDATES: u32 = 300;
    let dir = TempDir::new();
    let config = with_keys(&base_config(&dir.0), "dnssec", "enabled = true");
    let config = with_keys(&config, "api", "update_rate_limit = 0");
    let mut server = TestServer::start_with(&dir, &config);
    let account = server.register();
    for n in 0..UPDATES {
        assert_eq!(server.update(&account, &txt_value(n)).status, 200);
    }
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", server.log_text());
    let rows = signature_rows(&dir.join("acme-delegate.db"));
    eprintln!("{rows} kept signatures after {UPDATES} updates of one name");
    // The static sets, the name's TXT set and NSEC3 links: a dozen or two, not one per update.
    assert!(rows < 40, "{rows} kept signatures after {UPDATES} updates of one name");

    let again = TestServer::start_with(&dir, &config);
    let log = again.log_text();
    let line = log.lines().find(|l| l.contains("signed zone loaded")).unwrap_or_else(|| panic!("{log}"));
    let made: u64 = line[..line.find(" signatures made").unwrap()]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(made <= 2, "the kept rows are not the served ones: {line}");
    let served = again.ask(account["fulldomain"].as_str().unwrap(), t::TXT).txts();
    assert_eq!(served, [txt_value(UPDATES - 2), txt_value(UPDATES - 1)]);
}
