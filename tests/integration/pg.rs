//! PostgreSQL for tests: `DATABASE_URL` when set, otherwise a throwaway cluster made with
//! Debian's `initdb` and `pg_ctl` in a temporary directory (so the tests run on a fresh
//! machine), stopped when the test binary exits. Each test gets a database of its own.

#![allow(dead_code, unsafe_code, reason = "shared helpers; atexit needs unsafe")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::{TempDir, free_port};

/// A PostgreSQL cluster started by the tests.
pub struct Cluster {
    /// Directory holding the data directory and the log.
    dir: TempDir,
    /// Server binaries.
    bin: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

/// The directory of the newest installed PostgreSQL's binaries.
fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (Debian package postgresql) are installed")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

/// Whether we run as root (PostgreSQL refuses to; then it runs as the `postgres` user).
fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a PostgreSQL program as the right user.
fn pg_command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

impl Cluster {
    /// Creates and starts a new cluster.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = TempDir::new();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir.0).status().unwrap();
            assert!(ok.success());
        }
        let out = pg_command(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let cluster = Self { dir, bin, port: free_port(&["127.0.0.1"]) };
        cluster.pg_ctl_start();
        cluster
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.0.display()
        );
        let out = pg_command(&self.bin, "pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("log"))
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the cluster (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
    }

    /// `pg_ctl restart -m fast`: connected clients are ended (57P01), new ones refused while it
    /// stops and starts (57P03, connection refused); returns once it accepts connections again.
    pub fn restart_fast(&self) {
        let out = pg_command(&self.bin, "pg_ctl")
            .args(["-w", "-t", "30", "-m", "fast", "-D"])
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("log"))
            .arg("restart")
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl restart: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts it again after [`Self::stop`].
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// The data directory (relation files are under it, at `pg_relation_filepath`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Every process of the cluster: the postmaster (first line of `postmaster.pid`) and its
    /// children (backends, checkpointer, WAL writer…).
    pub fn processes(&self) -> Vec<u32> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap();
        let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // The fourth field, after the parenthesised name (which may hold spaces).
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sends `signal` (`STOP`, `CONT`) to every process of the cluster.
    pub fn signal_all(&self, signal: &str) {
        let pids: Vec<String> = self.processes().iter().map(u32::to_string).collect();
        let status = Command::new("kill").arg(format!("-{signal}")).args(&pids).status().unwrap();
        assert!(status.success(), "kill -{signal} {pids:?}");
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A test that failed while the cluster was frozen must not leave it stopped.
        if self.data_dir().join("postmaster.pid").exists() {
            let pids: Vec<String> = self.processes().iter().map(u32::to_string).collect();
            let _ = Command::new("kill").arg("-CONT").args(&pids).status();
        }
        let _ = pg_command(&self.bin, "pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
    }
}

/// The cluster shared by tests when `DATABASE_URL` is not set; stopped at exit.
static SHARED: Mutex<Option<Cluster>> = Mutex::new(None);

/// Stops the shared cluster when the test binary exits.
extern "C" fn stop_shared() {
    if let Ok(mut shared) = SHARED.lock() {
        shared.take();
    }
}

/// URL of a server to create test databases on.
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            return url;
        }
        let cluster = Cluster::start();
        let url = cluster.url();
        *SHARED.lock().unwrap() = Some(cluster);
        // SAFETY: registering a plain extern "C" function with no arguments is always sound.
        unsafe {
            libc::atexit(stop_shared);
        }
        url
    })
    .clone()
}

/// Runs SQL with psql against `url`.
pub fn psql(url: &str, sql: &str) -> String {
    let out =
        Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Replaces the database name in a URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').expect("URL with a path");
    let mut out = format!("{}/{name}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A new, empty database on `server`; returns its URL.
pub fn fresh_database_on(server: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name =
        format!("acme_delegate_test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    psql(server, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(server, &format!("CREATE DATABASE {name}"));
    with_database(server, &name)
}

/// A new, empty database on the shared server.
pub fn fresh_database() -> String {
    fresh_database_on(&server_url())
}

/// Waits until `check` holds, up to `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}
