//! The container image: built by `scripts/container` from the Containerfile (with the binary
//! under test, so CI compiles nothing more), run by podman as README says, with the
//! configuration the repository ships for it (packaging/container/config.cfg).
//!
//! Podman runs here with `--cgroup-manager=cgroupfs`, `--runtime /usr/sbin/runc` and explicit
//! ulimits (crun and the default limits fail on these machines), and `--network host` so the
//! test reaches DNS and the API on loopback ports of its choosing. Port 53 is checked in a
//! container with a network of its own (`--network none`), through the image's HEALTHCHECK.
//! The test is skipped, saying so, only when podman cannot run at all on the machine.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{
    DOMAIN, Message, TempDir, auth, binary, free_port, http, query, t, txt_value, udp_exchange,
};

/// The user the image runs as (Containerfile's USER).
const UID: &str = "10053";
/// CAP_NET_BIND_SERVICE (bit 10) as /proc/PID/status shows a capability set.
const NET_BIND_SERVICE: &str = "0000000000000400";

/// `podman` with the global options these machines need.
fn podman() -> Command {
    let mut command = Command::new("podman");
    command.arg("--cgroup-manager=cgroupfs");
    command
}

/// Runs podman with `args`; panics with its output when it fails.
fn podman_ok(args: &[&str]) -> String {
    let out = podman().args(args).output().expect("podman runs");
    assert!(out.status.success(), "podman {}: {}", args.join(" "), text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Stdout and stderr of a finished command.
fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Why podman cannot run here, if it cannot.
fn podman_unusable() -> Option<String> {
    match Command::new("podman").args(["--cgroup-manager=cgroupfs", "info"]).output() {
        Err(e) => Some(format!("podman is not installed ({e}); Debian: apt-get install podman runc")),
        Ok(out) if !out.status.success() => Some(format!("`podman info` fails: {}", text(&out))),
        Ok(_) => None,
    }
}

/// The image, containers, volume and network of one test, removed when dropped (a failed
/// assertion too).
struct Podman {
    /// The image's tag.
    image: String,
    /// The volume holding the store.
    volume: String,
    /// Containers started so far.
    containers: Vec<String>,
    /// A network podman-compose made, if any.
    network: Option<String>,
}

impl Podman {
    /// Builds the image from the binary under test with `scripts/container`, in `dir`.
    fn build(id: &str, dir: &Path) -> Self {
        let pod = Self {
            image: format!("localhost/{id}:test"),
            volume: id.to_owned(),
            containers: Vec::new(),
            network: None,
        };
        let context = dir.join("image");
        std::fs::create_dir_all(&context).unwrap();
        let out = Command::new(repository().join("scripts/container"))
            .args(["--binary", binary(), "--tag", &pod.image, "--dir"])
            .arg(&context)
            .output()
            .expect("scripts/container runs");
        assert!(out.status.success(), "scripts/container: {}", text(&out));
        pod
    }

    /// Starts a container of the image, detached, as README's command line does, plus
    /// `network` and the configuration file `config`. Returns its name.
    fn run(&mut self, network: &str, config: &Path) -> String {
        let name = format!("{}-{}", self.volume, self.containers.len());
        self.containers.push(name.clone());
        let config_mount = format!("{}:/etc/acme-delegate/config.cfg:ro", config.display());
        let volume_mount = format!("{}:/var/lib/acme-delegate", self.volume);
        podman_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--runtime",
            "/usr/sbin/runc",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            "--network",
            network,
            "--cap-drop=all",
            "--cap-add=net_bind_service",
            "--read-only",
            "--security-opt",
            "no-new-privileges",
            "-v",
            &config_mount,
            "-v",
            &volume_mount,
            &self.image,
        ]);
        name
    }

    /// Waits until the image's HEALTHCHECK passes in `name` (DNS answers the zone's SOA, the
    /// API its /health); panics with the container's log if it does not within 30 s.
    fn wait_healthy(name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = podman().args(["healthcheck", "run", name]).output().expect("podman runs");
            if out.status.success() {
                return;
            }
            let running = podman_ok(&["inspect", "--format", "{{.State.Running}}", name]);
            if running != "true" || Instant::now() > deadline {
                let log = podman().args(["logs", name]).output().map(|o| text(&o)).unwrap_or_default();
                panic!("{name} not healthy (running: {running}): {}\nits log:\n{log}", text(&out));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops `name` (SIGTERM) and checks that it exited cleanly.
    fn stop(name: &str) {
        podman_ok(&["stop", "-t", "10", name]);
        let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", name]);
        assert_eq!(code, "0", "{name} exited with {code} on SIGTERM");
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = podman().args(["rm", "-f", name]).output();
        }
        let _ = podman().args(["volume", "rm", "-f", &self.volume]).output();
        if let Some(network) = &self.network {
            let _ = podman().args(["network", "rm", "-f", network]).output();
        }
        let _ = podman().args(["rmi", "-f", &self.image]).output();
    }
}

/// The checkout's root.
fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The configuration the repository ships for the image.
fn shipped_config() -> String {
    std::fs::read_to_string(repository().join("packaging/container/config.cfg"))
        .expect("packaging/container/config.cfg")
}

/// `text` with each `(from, to)` replaced; panics if `from` is not in it (the file changed).
fn replaced(text: &str, file: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(out.contains(from), "{file} has no {from}");
        out = out.replace(from, to);
    }
    out
}

/// Registers an account through the API at `api`, sets `value` and checks that DNS at `dns`
/// serves it; returns the account.
fn register_and_update(api: SocketAddr, dns: SocketAddr, value: &str) -> serde_json::Value {
    let r = http(api, "POST", "/register", &[], b"");
    assert_eq!(r.status, 201, "register: {}", r.body_text());
    let account = r.json();
    update(api, &account, value);
    let fulldomain = account["fulldomain"].as_str().unwrap();
    assert!(fulldomain.ends_with(DOMAIN), "{fulldomain}");
    assert_eq!(txts(dns, fulldomain), vec![value.to_owned()]);
    account
}

/// Sets `value` for `account` through the API at `api`.
fn update(api: SocketAddr, account: &serde_json::Value, value: &str) {
    let body = serde_json::json!({"subdomain": account["subdomain"], "txt": value}).to_string();
    let r = http(api, "POST", "/update", &auth(account), body.as_bytes());
    assert_eq!(r.status, 200, "update: {}", r.body_text());
}

/// The TXT values DNS at `dns` serves for `name`.
fn txts(dns: SocketAddr, name: &str) -> Vec<String> {
    let reply = udp_exchange(dns, &query(name, t::TXT, None)).expect("a DNS answer from the container");
    Message::decode(&reply).txts()
}

/// The process of container `name` as the host sees it: its uid line and capability sets.
fn process_status(name: &str) -> String {
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", name]);
    std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the container's process status")
}

/// The value of field `key` in a /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')))
        .map_or("", str::trim)
}

#[test]
fn container_image_serves_keeps_its_store_and_runs_unprivileged() {
    if let Some(why) = podman_unusable() {
        eprintln!("SKIPPED container_image_serves_keeps_its_store_and_runs_unprivileged: {why}");
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new();
    let id = format!("acme-delegate-it-{}", std::process::id());
    // The image, from the binary under test, by the script README names.
    let mut pod = Podman::build(&id, &dir.0);
    let built = started.elapsed();

    // The shipped configuration, on loopback ports of the test's choosing (host network).
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/container/config.cfg"))
            .expect("packaging/container/config.cfg");
    let dns_port = free_port(&["127.0.0.1"]);
    let api_port = free_port(&["127.0.0.1"]);
    let config = replaced(
        &shipped,
        "packaging/container/config.cfg",
        &[
            ("listen = \"0.0.0.0:53\"", format!("listen = \"127.0.0.1:{dns_port}\"")),
            ("ip = \"0.0.0.0\"", "ip = \"127.0.0.1\"".to_owned()),
            ("port = \"8053\"", format!("port = \"{api_port}\"")),
        ],
    );
    let config_file = dir.join("config.cfg");
    std::fs::write(&config_file, config).unwrap();
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();

    // First run: register, update, query.
    let first = pod.run("host", &config_file);
    Podman::wait_healthy(&first);
    let value = txt_value(23);
    let account = register_and_update(api, dns, &value);
    let fulldomain = account["fulldomain"].as_str().unwrap().to_owned();
    let first_served = started.elapsed();

    // Not root, and no capability but the one to bind port 53.
    let status = process_status(&first);
    assert_eq!(status_field(&status, "Uid").split_whitespace().collect::<Vec<_>>(), [UID; 4], "{status}");
    assert_eq!(status_field(&status, "Gid").split_whitespace().collect::<Vec<_>>(), [UID; 4], "{status}");
    assert_eq!(status_field(&status, "CapBnd"), NET_BIND_SERVICE, "{status}");
    let effective = status_field(&status, "CapEff");
    assert!([NET_BIND_SERVICE, "0000000000000000"].contains(&effective), "{status}");
    Podman::stop(&first);

    // A new container on the same volume: the account and its value are still there.
    let second = pod.run("host", &config_file);
    Podman::wait_healthy(&second);
    assert_eq!(txts(dns, &fulldomain), vec![value.clone()]);
    let newer = txt_value(24);
    update(api, &account, &newer);
    let mut served = txts(dns, &fulldomain);
    served.sort();
    let mut expected = vec![value, newer];
    expected.sort();
    assert_eq!(served, expected);
    // Operator commands run in the container without -c (ACME_DELEGATE_CONFIG).
    let listed = podman_ok(&["exec", &second, "acme-delegate", "account", "list"]);
    assert!(listed.contains(account["username"].as_str().unwrap()), "{listed}");
    Podman::stop(&second);

    // The shipped configuration as it is: port 53 in a network of its own, bound by uid 10053
    // with CAP_NET_BIND_SERVICE only; the HEALTHCHECK asks it (and the API) from inside.
    let shipped_file = dir.join("shipped.cfg");
    std::fs::write(&shipped_file, shipped).unwrap();
    let third = pod.run("none", &shipped_file);
    Podman::wait_healthy(&third);
    let probe = podman_ok(&["exec", &third, "acme-delegate", "healthcheck"]);
    assert!(probe.contains("DNS 127.0.0.1:53 answers"), "{probe}");
    let status = process_status(&third);
    assert_eq!(status_field(&status, "Uid").split_whitespace().next(), Some(UID), "{status}");
    let listed = podman_ok(&["exec", &third, "acme-delegate", "account", "list"]);
    assert!(listed.contains("1 accounts"), "{listed}");
    Podman::stop(&third);
    eprintln!(
        "container: image built in {:.1} s, first registration served over DNS {:.1} s after the build, all in {:.1} s",
        built.as_secs_f64(),
        (first_served - built).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn compose_file_runs_with_podman_compose() {
    if let Some(why) = podman_unusable() {
        eprintln!("SKIPPED compose_file_runs_with_podman_compose: {why}");
        return;
    }
    if Command::new("podman-compose").arg("version").output().is_err() {
        eprintln!(
            "SKIPPED compose_file_runs_with_podman_compose: podman-compose is not installed (Debian: podman-compose)"
        );
        return;
    }
    let dir = TempDir::new();
    let project = format!("acme-delegate-it-compose-{}", std::process::id());
    let mut pod = Podman::build(&project, &dir.0);
    // podman-compose names the volume and network after the project.
    pod.volume = format!("{project}_acme-delegate");
    pod.network = Some(format!("{project}_default"));
    pod.containers.push(project.clone());

    // compose.yaml as shipped, published on loopback ports of the test's choosing; the shipped
    // configuration unchanged (port 53 inside the container's own network).
    let dns_port = free_port(&["127.0.0.1"]);
    let api_port = free_port(&["127.0.0.1"]);
    let compose = std::fs::read_to_string(repository().join("compose.yaml")).expect("compose.yaml");
    let compose = replaced(
        &compose,
        "compose.yaml",
        &[
            ("\"53:53/udp\"", format!("\"127.0.0.1:{dns_port}:53/udp\"")),
            ("\"53:53/tcp\"", format!("\"127.0.0.1:{dns_port}:53/tcp\"")),
            ("\"127.0.0.1:8053:8053/tcp\"", format!("\"127.0.0.1:{api_port}:8053/tcp\"")),
        ],
    );
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
    std::fs::write(dir.join("config.cfg"), shipped_config()).unwrap();
    // What only this machine and this run need: the image's tag, a name of its own, the limits.
    let local = format!(
        "services:\n  acme-delegate:\n    image: {}\n    container_name: {project}\n    \
         ulimits:\n      nofile: 4096\n      nproc: 4096\n",
        pod.image
    );
    std::fs::write(dir.join("local.yaml"), local).unwrap();
    let compose = |action: &[&str]| {
        let out = Command::new("podman-compose")
            .args(["--podman-args=--cgroup-manager=cgroupfs", "--podman-run-args=--runtime /usr/sbin/runc"])
            .args(["-p", &project, "-f", "compose.yaml", "-f", "local.yaml"])
            .args(action)
            .current_dir(&dir.0)
            .output()
            .expect("podman-compose runs");
        assert!(out.status.success(), "podman-compose {}: {}", action.join(" "), text(&out));
    };
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();

    compose(&["up", "-d"]);
    Podman::wait_healthy(&project);
    let value = txt_value(5);
    let account = register_and_update(api, dns, &value);
    compose(&["down"]);
    compose(&["up", "-d"]);
    Podman::wait_healthy(&project);
    assert_eq!(txts(dns, account["fulldomain"].as_str().unwrap()), vec![value]);
    compose(&["down"]);
}
