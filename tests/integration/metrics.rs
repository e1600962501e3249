//! Prometheus metrics: the real server with `[metrics]`, real DNS and HTTP traffic, then a
//! scrape that `promtool check metrics` accepts and whose counters moved by exactly what the
//! test sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// One scrape: `name{labels}` → value.
type Samples = BTreeMap<String, f64>;

/// The metrics address the server logged.
pub(crate) fn metrics_addr(server: &TestServer) -> SocketAddr {
    let log = server.log_text();
    let line = log.lines().find(|l| l.contains("metrics listening on http://")).expect("metrics line logged");
    let rest = &line[line.find("http://").unwrap() + 7..];
    rest.split('/').next().unwrap().parse().expect("metrics address")
}

/// Scrapes `/metrics`; returns the text.
pub(crate) fn scrape(addr: SocketAddr) -> String {
    let response = http(addr, "GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    response.body_text()
}

/// The samples of an exposition text.
pub(crate) fn samples(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("a sample line");
            (key.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// How much a sample moved between two scrapes (absent counts as 0).
fn delta(before: &Samples, after: &Samples, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// Runs `promtool check metrics` on `text`; panics with its output unless it passes.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Sends `count` apex A queries from `from` at once; returns (full answers, truncated answers)
/// received within a second.
fn burst(server: SocketAddr, from: &str, count: usize) -> (usize, usize) {
    let socket = UdpSocket::bind(from).unwrap();
    for _ in 0..count {
        socket.send_to(&query(DOMAIN, t::A, None), server).unwrap();
    }
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline && full + truncated < count {
        let Ok(len) = socket.recv(&mut buf) else { continue };
        if Message::decode(&buf[..len]).tc() { truncated += 1 } else { full += 1 }
    }
    (full, truncated)
}

/// One UDP query from `from`; the reply.
fn ask_from(server: SocketAddr, from: &str, name: &str, qtype: u16) -> Message {
    let socket = UdpSocket::bind(from).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket.send_to(&query(name, qtype, None), server).unwrap();
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).expect("a UDP reply");
    Message::decode(&buf[..len])
}

#[test]
fn counters_move_by_exactly_the_traffic_sent_and_promtool_accepts_the_scrape() {
    let dir = TempDir::new();
    let config = with_keys(&base_config(&dir.0), "dns", "rate_limit = 5\nrate_limit_slip = 2");
    let config = with_keys(&config, "metrics", "listen = \"127.0.0.1:0\"");
    let server = TestServer::start_with(&dir, &config);
    let addr = metrics_addr(&server);
    assert_ne!(addr, server.api);
    // Not on the API.
    assert_eq!(server.http("GET", "/metrics", &[], b"").status, 404);

    let before = samples(&scrape(addr));
    let answers = |transport: &str, qtype: &str, rcode: &str| {
        format!(
            "acme_delegate_dns_answers_total{{qtype=\"{qtype}\",rcode=\"{rcode}\",transport=\"{transport}\"}}"
        )
    };
    let api = |route: &str, method: &str, status: u16| {
        format!(
            "acme_delegate_api_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        )
    };

    // API: one registration, one update, one refused update, a 404, two health checks.
    let account = server.register();
    let value = txt_value(7);
    assert_eq!(server.update(&account, &value).status, 200);
    let wrong = serde_json::json!({"username": account["username"], "password": "x".repeat(40)});
    assert_eq!(server.update(&wrong, &value).status, 401);
    assert_eq!(server.http("GET", "/nothing-here", &[], b"").status, 404);
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);

    // DNS over UDP from a network of its own (within its rate): 3 TXT answers, 2 NXDOMAIN.
    let fulldomain = account["fulldomain"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(ask_from(server.udp, "127.0.4.1:0", &fulldomain, t::TXT).txts(), vec![value.clone()]);
    }
    for _ in 0..2 {
        ask_from(server.udp, "127.0.4.1:0", &format!("nope.{DOMAIN}"), t::TXT);
    }
    // DNS over TCP: 2 SOA answers.
    for _ in 0..2 {
        server.tcp_exchange(&query(DOMAIN, t::SOA, None)).expect("a TCP answer");
    }
    // A burst past the rate limit from another network: some answered, some truncated, the
    // rest dropped; the counters must say exactly which.
    let sent = 30;
    let (full, truncated) = burst(server.udp, "127.0.3.1:0", sent);
    let dropped = sent - full - truncated;
    assert!(truncated > 0 && dropped > 0, "the limiter acted: {full} full, {truncated} truncated");

    let text = scrape(addr);
    promtool_check(&text);
    let after = samples(&text);
    assert_eq!(delta(&before, &after, &answers("udp", "TXT", "NOERROR")), 3.0);
    assert_eq!(delta(&before, &after, &answers("udp", "TXT", "NXDOMAIN")), 2.0);
    assert_eq!(delta(&before, &after, &answers("tcp", "SOA", "NOERROR")), 2.0);
    assert_eq!(delta(&before, &after, &answers("udp", "A", "NOERROR")), (full + truncated) as f64);
    let truncated_key = "acme_delegate_dns_truncated_total{reason=\"rate_limit\",transport=\"udp\"}";
    assert_eq!(delta(&before, &after, truncated_key), truncated as f64);
    let size_key = "acme_delegate_dns_truncated_total{reason=\"size\",transport=\"udp\"}";
    assert_eq!(delta(&before, &after, size_key), 0.0);
    assert_eq!(delta(&before, &after, "acme_delegate_dns_rate_limit_dropped_total"), dropped as f64);
    assert_eq!(delta(&before, &after, &api("/register", "POST", 201)), 1.0);
    assert_eq!(delta(&before, &after, &api("/update", "POST", 200)), 1.0);
    assert_eq!(delta(&before, &after, &api("/update", "POST", 401)), 1.0);
    assert_eq!(delta(&before, &after, &api("/health", "GET", 200)), 2.0);
    assert_eq!(delta(&before, &after, &api("other", "GET", 404)), 1.0);
    // The first scrape was answered before `before` was read; the second one is still running.
    assert_eq!(delta(&before, &after, "acme_delegate_update_to_served_seconds_count"), 1.0);
    assert_eq!(after["acme_delegate_accounts"], 1.0);
    for name in ["process_start_time_seconds", "process_resident_memory_bytes", "process_open_fds"] {
        assert!(after.get(name).is_some_and(|v| *v > 0.0), "{name}");
    }
    // No label carries an account, a subdomain or an address.
    for secret in
        [account["username"].as_str().unwrap(), account["subdomain"].as_str().unwrap(), "127.0.", DOMAIN]
    {
        assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
    }
}

#[test]
fn dnssec_and_secondaries_are_reported_without_addresses() {
    let dir = TempDir::new();
    // A NOTIFY target that never answers: the secondary stays behind and unacknowledged.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap();
    let config = with_keys(&base_config(&dir.0), "dnssec", "enabled = true");
    let config =
        with_keys(&config, "transfer", &format!("notify = [\"{target}\"]\nwait_for_secondaries = \"none\""));
    let config = with_keys(&config, "metrics", "listen = \"127.0.0.1:0\"");
    let server = TestServer::start_with(&dir, &config);
    server.ask(DOMAIN, t::SOA);
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    let text = scrape(metrics_addr(&server));
    // Every metric the Grafana dashboard plots exists, from the first scrape.
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap();
    for part in dashboard.split("acme_delegate_").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        let family =
            ["_bucket", "_count", "_sum"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            text.contains(&format!("# TYPE acme_delegate_{family} ")),
            "dashboard plots acme_delegate_{family}"
        );
    }
    promtool_check(&text);
    let after = samples(&text);
    let expiry = after["acme_delegate_dnssec_signature_expiry_seconds"];
    assert!(expiry > 86_400.0, "signatures have days left: {expiry}");
    assert!(after["acme_delegate_dnssec_key_age_seconds"] >= 0.0);
    assert!(after["acme_delegate_secondary_seconds_behind{secondary=\"1\"}"] >= 1.0, "{text}");
    assert!(!after.contains_key("acme_delegate_secondary_serial{secondary=\"1\"}"), "never acknowledged");
    assert!(!text.contains("127.0.0.1"), "{text}");
}

/// Scrapes until `key` reaches `at_least` (a counter moved by work the server finishes after
/// its answer); panics after 5 s. Returns the last samples.
fn scrape_until(addr: SocketAddr, key: &str, at_least: f64) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = samples(&scrape(addr));
        if now.get(key).is_some_and(|v| *v >= at_least) {
            return now;
        }
        assert!(Instant::now() < deadline, "{key} stayed below {at_least}: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fresh_scrape_has_every_series_and_transfers_and_notifies_are_counted() {
    let dir = TempDir::new();
    // The secondary: its socket is bound (the startup NOTIFY waits in its buffer) and read only
    // after the first scrape, so that scrape sees no NOTIFY finished yet.
    let secondary = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = secondary.local_addr().unwrap();
    let config = with_keys(&base_config(&dir.0), "dnssec", "enabled = true");
    let transfer = format!("allow_transfer = [\"127.0.0.1/32\"]\nnotify = [\"{target}\"]");
    let config = with_keys(&config, "transfer", &transfer);
    let config = with_keys(&config, "metrics", "listen = \"127.0.0.1:0\"");
    let server = TestServer::start_with(&dir, &config);
    let addr = metrics_addr(&server);

    let text = scrape(addr);
    promtool_check(&text);
    let fresh = samples(&text);
    for kind in ["unavailable", "full", "backend"] {
        assert_eq!(
            fresh.get(&format!("acme_delegate_store_errors_total{{kind=\"{kind}\"}}")),
            Some(&0.0),
            "{text}"
        );
    }
    for what in ["write_epoch", "purge", "apply_epoch"] {
        assert_eq!(fresh.get(&format!("acme_delegate_clock_refusals_total{{what=\"{what}\"}}")), Some(&0.0));
    }
    let transfers = |kind: &str, outcome: &str| {
        format!("acme_delegate_transfers_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}")
    };
    for kind in ["AXFR", "IXFR"] {
        for outcome in ["complete", "cut_short", "refused"] {
            assert_eq!(fresh.get(&transfers(kind, outcome)), Some(&0.0), "{text}");
        }
    }
    let notifies =
        |outcome: &str| format!("acme_delegate_notifies_total{{outcome=\"{outcome}\",secondary=\"1\"}}");
    for outcome in ["acknowledged", "timeout", "error_rcode", "bad_tsig", "unreachable"] {
        assert!(fresh.contains_key(&notifies(outcome)), "{outcome}: {text}");
    }
    assert_eq!(fresh[&notifies("acknowledged")], 0.0);
    let info = fresh.iter().find(|(k, _)| k.starts_with("acme_delegate_build_info{")).expect("build_info");
    assert_eq!(*info.1, 1.0);
    assert!(info.0.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{}", info.0);
    assert!(info.0.contains("commit=\""), "{}", info.0);
    // Timestamps: the earliest signature expires days from now, the key was made before it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let expiry = fresh["acme_delegate_dnssec_signature_expiry_timestamp_seconds"];
    assert!(expiry > now + 86_400.0, "{expiry} vs {now}");
    let created = fresh["acme_delegate_dnssec_key_created_timestamp_seconds"];
    assert!(created <= now + 1.0 && created > now - 3_600.0, "{created} vs {now}");
    // The durations stay, for the dashboards that plot them.
    assert!(fresh.contains_key("acme_delegate_dnssec_signature_expiry_seconds"));
    assert!(fresh.contains_key("acme_delegate_dnssec_key_age_seconds"));

    // The secondary acknowledges every NOTIFY, the one waiting in its buffer first (and any
    // retry, should a slow first scrape have let the first attempt time out): the same message
    // back, QR set. It stops when its socket has been quiet for 3 s.
    secondary.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let acknowledging = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = secondary.recv_from(&mut buf) {
            buf[2] |= 0x80;
            secondary.send_to(&buf[..len], from).unwrap();
        }
    });
    scrape_until(addr, &notifies("acknowledged"), 1.0);
    // One AXFR (the small zone fits one message) and one refused IXFR (no SOA of the client's).
    let axfr = Message::decode(&server.tcp_exchange(&query(DOMAIN, t::AXFR, None)).expect("an AXFR"));
    assert_eq!(axfr.rcode, 0);
    let ixfr = Message::decode(&server.tcp_exchange(&query(DOMAIN, 251, None)).expect("an IXFR answer"));
    assert_eq!(ixfr.rcode, 1, "FORMERR");
    let after = scrape_until(addr, &transfers("AXFR", "complete"), 1.0);
    assert_eq!(after[&transfers("AXFR", "complete")], 1.0);
    assert_eq!(after[&transfers("IXFR", "refused")], 1.0);
    assert_eq!(after[&transfers("AXFR", "refused")] + after[&transfers("IXFR", "complete")], 0.0);
    promtool_check(&scrape(addr));
    acknowledging.join().unwrap();
}

#[test]
fn metrics_on_the_api_port_are_refused_naming_the_key() {
    let dir = TempDir::new();
    let config = base_config(&dir.0).replace("port = \"0\"", "port = \"9153\"");
    let config = with_keys(&config, "metrics", "listen = \"127.0.0.1:9153\"");
    let error = TestServer::try_start(&dir, &config).err().expect("refused").join("\n");
    assert!(error.contains("metrics.listen"), "{error}");
}
