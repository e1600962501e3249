//! Response rate limiting: the real server, real UDP datagrams from two loopback networks.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Sends `count` queries for the apex A from `from` as fast as it can, then collects replies
/// until all are in or a second has passed; returns (full answers, truncated empty answers).
fn burst(server: &SocketAddr, from: &str, count: usize) -> (usize, usize) {
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
        let reply = Message::decode(&buf[..len]);
        if reply.tc() {
            assert!(reply.answers.is_empty(), "a truncated answer carries no records");
            truncated += 1;
        } else {
            assert_eq!(reply.answers.len(), 1, "a full answer: {reply:?}");
            full += 1;
        }
    }
    (full, truncated)
}

#[test]
fn answers_past_the_rate_are_dropped_or_truncated_per_network_and_tcp_is_never_limited() {
    let dir = TempDir::new();
    let config = with_keys(&base_config(&dir.0), "dns", "rate_limit = 20\nrate_limit_slip = 2");
    let server = TestServer::start_with(&dir, &config);

    // One second's worth (20) is answered; of the 40 past it every second one is truncated.
    let (full, truncated) = burst(&server.udp, "127.0.0.1:0", 60);
    assert!((20..=22).contains(&full), "full answers: {full}");
    assert!((18..=21).contains(&truncated), "truncated answers: {truncated}");

    // Another /24 has a budget of its own; TCP is not limited at all.
    assert_eq!(burst(&server.udp, "127.0.1.1:0", 5), (5, 0));
    let reply = Message::decode(&server.tcp_exchange(&query(DOMAIN, t::A, None)).expect("a TCP answer"));
    assert_eq!(reply.answers.len(), 1);

    // The budget comes back with time.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(burst(&server.udp, "127.0.0.1:0", 10), (10, 0));
    // The client's address is not logged, not even by the limiter.
    assert!(!server.log_text().contains("127.0.1.1"), "{}", server.log_text());
}

#[test]
fn without_a_rate_limit_every_query_is_answered() {
    let dir = TempDir::new();
    let config = with_keys(&base_config(&dir.0), "dns", "rate_limit = 0");
    let server = TestServer::start_with(&dir, &config);
    // 300 within well under a second, more than the default limit (200) would let through; in
    // waves, so that the client's own receive buffer does not overflow.
    let start = Instant::now();
    for _ in 0..6 {
        assert_eq!(burst(&server.udp, "127.0.0.1:0", 50), (50, 0));
    }
    assert!(start.elapsed() < Duration::from_secs(1), "too slow to show anything: {:?}", start.elapsed());
}
