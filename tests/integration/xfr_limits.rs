//! What zone transfers may cost the primary: memory while many slow transfers run, places
//! under the caps, a stalled secondary, the log when requests are refused in a loop, and the
//! serial that RFC 1982 cannot compare. A zone of many names is written straight into the
//! SQLite store (as `scripts/bench-lib/dns_data.py` does) and signed with Ed25519 at the start,
//! the fastest way to a large signed zone in a debug build; 100,000 names are measured by
//! `scripts/bench-xfr` (BENCHMARKS.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::xfr::{soa_serial, within};

/// Registered names of the large zone: about 7 MB of signed records, more than the loopback
/// socket buffers hold, and a signed start of a few seconds in a debug build.
const NAMES: u32 = 12_000;

/// Registered names of the large unsigned zone: about 6 MB on the wire.
const UNSIGNED_NAMES: u32 = 60_000;

/// RR type numbers used here.
const SOA: u16 = 6;
const TXT: u16 = 16;
const NSEC3: u16 = 50;
const IXFR: u16 = 251;
const AXFR: u16 = 252;

/// A primary, transfers open to 127.0.0.1 without a key, `transfer` and `dns` lines added, and
/// `names` registered names (with a value each) written into its store before it starts.
fn primary(dir: &TempDir, names: u32, signed: bool, transfer: &str, dns: &str) -> TestServer {
    let mut config = with_keys(
        &base_config(&dir.0),
        "transfer",
        &format!("allow_transfer = [\"127.0.0.1/32\"]\n{transfer}"),
    );
    if !dns.is_empty() {
        config = with_keys(&config, "dns", dns);
    }
    if signed {
        config = with_keys(&config, "dnssec", "enabled = true\nalgorithm = \"ed25519\"");
    }
    if names > 0 {
        let path = dir.join("config.cfg");
        std::fs::write(&path, &config).unwrap();
        // The binary creates its schema; the rows go in as the API would write them.
        let made = Command::new(binary()).arg("-c").arg(&path).args(["account", "list"]).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        // Written now: the retention purge clears values older than a week.
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let mut conn = rusqlite::Connection::open(dir.join("acme-delegate.db")).unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..names {
            let subdomain = format!("{i:08x}-0000-4000-8000-000000000000");
            tx.execute(
                "INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at) \
                 VALUES (?1, ?2, ?3, '[]', ?4)",
                rusqlite::params![format!("user-{i}"), vec![0u8; 32], subdomain, now],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO txt (subdomain, value, updated_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![subdomain, txt_value(i), now],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    TestServer::start_with(dir, &config)
}

/// A field of /proc/PID/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field}"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap()
}

/// A connection that asked for `request` over TCP.
fn ask(server: &TestServer, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&server.tcp, Duration::from_secs(3)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed).unwrap();
    stream
}

/// Reads a whole transfer: every record, until the closing SOA (or the connection ends).
fn whole_transfer(stream: &mut TcpStream) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    while let Some(frame) = read_frame(stream) {
        let message = Message::decode(&frame);
        assert_eq!(message.rcode, rcode::NOERROR);
        records.extend(message.answers);
        if records.len() > 1 && records.last().is_some_and(|r| r.rtype == SOA) {
            break;
        }
    }
    records
}

/// An IXFR request carrying the client's SOA with `serial`.
fn ixfr_query(serial: u32) -> Vec<u8> {
    let mut m = query(DOMAIN, IXFR, None);
    m[9] = 1;
    m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
    m.extend_from_slice(&serial.to_be_bytes());
    m.extend_from_slice(&[0; 16]);
    m
}

#[test]
fn xfr_limits_slow_concurrent_axfrs_share_the_zone_instead_of_copying_it() {
    let dir = TempDir::new();
    let caps = "max_transfers = 64\nmax_transfers_per_network = 64";
    let server = primary(&dir, NAMES, true, caps, "tcp_max_connections_per_network = 64");
    // Settled: the signatures made at the start are kept in the store by now.
    let kept =
        within(Duration::from_secs(30), || server.log_text().contains("new signatures in the database"));
    assert!(kept.is_some(), "{}", server.log_text());
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.pid();
    let idle = status_kb(pid, "VmRSS");
    // Peak RSS from here on (VmHWM), besides the samples.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    // 32 secondaries that read 4 KB every 20 ms (200 KB/s each) for 4 s each.
    const CLIENTS: u64 = 32;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut stream = ask(&server, &query(DOMAIN, AXFR, None));
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(4);
                let mut buf = [0u8; 4096];
                let mut read = 0;
                while Instant::now() < until {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                read
            })
        })
        .collect();
    let mut peak = idle;
    while !clients.iter().all(|c| c.is_finished()) {
        peak = peak.max(status_kb(pid, "VmRSS"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let read: Vec<usize> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    peak = peak.max(status_kb(pid, "VmHWM"));
    // Messages in flight: per transfer a chunk of names, the message being built and the one
    // being written, with their name tables; 256 KB is generous.
    let bound = idle + idle / 10 + CLIENTS * 256;
    assert!(
        peak <= bound,
        "peak RSS {peak} kB with {CLIENTS} slow AXFRs, idle {idle} kB: more than idle + 10% + {} kB in flight",
        CLIENTS * 256
    );
    let loaded = server.log_text().lines().find(|l| l.contains("signed zone loaded")).map(str::to_owned);
    eprintln!("peak RSS {peak} kB with {CLIENTS} slow AXFRs, idle {idle} kB; {loaded:?}");
    assert!(
        read.iter().all(|&n| n > 64_000),
        "every transfer was under way: {read:?}\n{}",
        server.log_text()
    );

    // And the zone they were sent is the whole zone.
    let records = whole_transfer(&mut ask(&server, &query(DOMAIN, AXFR, None)));
    let count = |rtype: u16| records.iter().filter(|r| r.rtype == rtype).count();
    assert_eq!((records.first().map(|r| r.rtype), records.last().map(|r| r.rtype)), (Some(SOA), Some(SOA)));
    assert_eq!(count(TXT), NAMES as usize + 1, "every name's value and the apex TXT");
    assert_eq!(count(NSEC3), NAMES as usize + 2, "a link per name, the apex and ns1");
}

#[test]
fn xfr_limits_transfers_over_the_cap_are_refused_and_a_stalled_one_gives_its_place_back() {
    let dir = TempDir::new();
    // Unsigned (a fast start) and large: more than the socket buffers hold.
    let server = primary(
        &dir,
        UNSIGNED_NAMES,
        false,
        "max_transfers = 8\nmax_transfers_per_network = 2",
        "tcp_idle_timeout = 2",
    );
    // The whole zone's size on the wire, for a reader that keeps up.
    let mut whole = ask(&server, &query(DOMAIN, AXFR, None));
    let mut zone_bytes = 0;
    while let Some(frame) = read_frame(&mut whole) {
        zone_bytes += frame.len();
        let message = Message::decode(&frame);
        if zone_bytes > frame.len() && message.answers.last().is_some_and(|r| r.rtype == SOA) {
            break;
        }
    }
    // Two transfers that take their first message and then stop reading, with a small receive
    // buffer, so the kernel holds little of what the server writes.
    let small_window = || {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        socket.connect_timeout(&server.tcp.into(), Duration::from_secs(3)).unwrap();
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = query(DOMAIN, AXFR, None);
        let mut framed = (request.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&request);
        stream.write_all(&framed).unwrap();
        stream
    };
    drop(whole);
    // The first transfer's place is given back once the server has written its end, which on
    // a loaded machine may come a moment after the client read it: ask again while refused.
    let started = |_| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut stream = small_window();
            let rcode = Message::decode(&read_frame(&mut stream).unwrap()).rcode;
            if rcode == rcode::NOERROR {
                return stream;
            }
            assert!(rcode == rcode::REFUSED && Instant::now() < deadline, "rcode {rcode}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let stalled: Vec<TcpStream> = (0..2).map(started).collect();
    let asked = Instant::now();
    // A third from the same network: REFUSED at once, no data.
    let reply = Message::decode(&read_frame(&mut ask(&server, &query(DOMAIN, AXFR, None))).unwrap());
    assert_eq!((reply.rcode, reply.answers.len()), (rcode::REFUSED, 0));
    // The stalled ones are dropped after the idle timeout (2 s), and a new transfer is served.
    let served = within(Duration::from_secs(8), || {
        let reply = read_frame(&mut ask(&server, &query(DOMAIN, AXFR, None))).map(|f| Message::decode(&f));
        reply.is_some_and(|r| r.rcode == rcode::NOERROR)
    });
    assert!(served.is_some(), "{}", server.log_text());
    assert!(asked.elapsed() >= Duration::from_millis(1500), "dropped before the idle timeout");
    // What the kernel held is readable, then the connection ends: never the whole zone.
    for mut stream in stalled {
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 16];
        let end = loop {
            match stream.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => total += n,
                Err(e) => break Some(e.kind()),
            }
        };
        assert!(
            matches!(end, None | Some(std::io::ErrorKind::ConnectionReset)),
            "the server closed the stalled connection: {end:?}"
        );
        assert!(total < zone_bytes, "{total} of {zone_bytes} bytes reached a stalled client");
    }
    assert!(server.log_text().contains("cut short"), "{}", server.log_text());
}

#[test]
fn xfr_limits_an_ixfr_exactly_half_the_serial_space_away_gets_the_zone() {
    let dir = TempDir::new();
    let server = primary(&dir, 0, false, "", "");
    let serial = soa_serial(&server.ask(DOMAIN, SOA)).unwrap();
    // RFC 1982 leaves it undefined whether this serial is older or newer: only the whole zone
    // brings that secondary back (Knot answers so too).
    let records = whole_transfer(&mut ask(&server, &ixfr_query(serial.wrapping_add(1 << 31))));
    assert!(records.len() > 2, "the SOA alone: {records:?}");
    assert_ne!(records[1].rtype, SOA, "an AXFR-style answer, not a difference: {records:?}");
    assert!(records.iter().any(|r| r.rtype == TXT), "{records:?}");
    // One step ahead of us is still the SOA alone.
    let records = whole_transfer(&mut ask(&server, &ixfr_query(serial.wrapping_add(1))));
    assert_eq!(records.len(), 1);
}

#[test]
fn xfr_limits_refused_requests_in_a_loop_write_a_bounded_log() {
    let dir = TempDir::new();
    let mut config = with_keys(&base_config(&dir.0), "transfer", "allow_transfer = [\"10.0.0.0/8\"]");
    config = with_keys(&config, "dns", "tcp_max_connections_per_network = 64");
    let server = TestServer::start_with(&dir, &config);
    let before = server.log_text().lines().count();
    // 4 connections × 500 requests, each answered REFUSED.
    const PER_CONNECTION: usize = 500;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.tcp;
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let request = query(DOMAIN, AXFR, None);
                let mut framed = (request.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&request);
                let mut refused = 0;
                for _ in 0..PER_CONNECTION {
                    stream.write_all(&framed).unwrap();
                    let reply = Message::decode(&read_frame(&mut stream).unwrap());
                    refused += usize::from(reply.rcode == rcode::REFUSED);
                }
                refused
            })
        })
        .collect();
    let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(refused, 4 * PER_CONNECTION);
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().skip(before).filter(|l| l.contains("refused")).collect();
    // The first refusal of the network is logged; the rest wait for the minute's summary.
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "{} lines: {:?}",
        lines.len(),
        &lines[..lines.len().min(5)]
    );
    assert!(lines[0].contains("AXFR from 127.0.0.0/24 refused: network not in transfer.allow_transfer"));
}
