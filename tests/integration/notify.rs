//! NOTIFY to a secondary that was away (issue 22, item 5): failed NOTIFYs back off up to a
//! minute, but a new serial is news and goes out at once, as BIND and Knot send it. Before,
//! a secondary that came back heard of the next change only when the back-off of an earlier
//! serial ran out (3–6 s late in the run, up to a minute).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Answers one NOTIFY on `socket` (echoing its question with QR set); returns the serial it
/// carried, or `None` when nothing came within `limit`.
fn answer_notify(socket: &UdpSocket, limit: Duration) -> Option<u32> {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1500];
    let (len, from) = socket.recv_from(&mut buf).ok()?;
    let msg = &buf[..len];
    assert_eq!((msg[2] >> 3) & 0x0F, 4, "a NOTIFY");
    let decoded = Message::decode(msg);
    let serial = decoded.answers.first().map(|soa| {
        let rdata = &soa.rdata;
        u32::from_be_bytes(rdata[rdata.len() - 20..rdata.len() - 16].try_into().unwrap())
    });
    // The header with QR set, the question as sent, nothing else.
    let question_end = 12 + name_wire(DOMAIN).len() + 4;
    let mut reply = msg[..question_end].to_vec();
    reply[2] |= 0x80;
    reply[6..12].fill(0);
    socket.send_to(&reply, from).unwrap();
    serial
}

#[test]
fn a_secondary_back_after_failed_notifies_hears_of_the_next_change_at_once() {
    let dir = TempDir::new();
    // The secondary's port, closed for now: every NOTIFY fails at once (port unreachable).
    let port = free_port(&["127.0.0.1"]);
    let config = with_keys(
        &base_config(&dir.0),
        "transfer",
        &format!("notify = [\"127.0.0.1:{port}\"]\nwait_for_secondaries = \"none\""),
    );
    let config = with_keys(&config, "api", "register_rate_limit = 0");
    let server = TestServer::start_with(&dir, &config);
    let account = server.register();
    assert_eq!(server.update(&account, &txt_value(1)).status, 200);
    // Failures at 0, 1, 3, 7 s…: by now the next try is seconds away.
    std::thread::sleep(Duration::from_millis(4500));
    let secondary = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    assert_eq!(server.update(&account, &txt_value(2)).status, 200);
    let changed = Instant::now();
    let serial = answer_notify(&secondary, Duration::from_secs(10)).expect("a NOTIFY");
    let waited = changed.elapsed();
    assert!(waited < Duration::from_millis(100), "the NOTIFY came {waited:?} after the change");
    let served = crate::xfr::soa_serial(&server.ask(DOMAIN, t::SOA)).expect("an SOA");
    assert_eq!(serial, served, "the NOTIFY names the newest serial");
}
