//! Issue 12 (hardening): each test replays one attack of the adversarial run against the real
//! server over real sockets, with small limits in the config so that the attack stays cheap.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::*;

/// A TCP connection to `to` from the local address `source` (a distinctive `127.x.y.z`).
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).expect("bind the source address");
    socket.connect_timeout(&to.into(), Duration::from_secs(3)).expect("connect");
    socket.into()
}

/// Reads a whole HTTP response (the server closes after it: `Connection: close`).
fn read_response(stream: &mut TcpStream) -> HttpResponse {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_http(&raw)
}

/// Whether the server has already sent something on `stream` (without waiting).
fn has_answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let answered = matches!(stream.peek(&mut byte), Ok(n) if n > 0);
    stream.set_nonblocking(false).unwrap();
    answered
}

/// Item 1: many connections from one address each send the headers of `/register`, wait until
/// all of them are past the point where the limit used to be checked, then send the body.
/// No more than the limit may be created, however the requests interleave.
#[test]
fn r12_registration_limit_holds_under_concurrency() {
    let (server, _dir) = TestServer::start_with_keys("api", "register_rate_limit = 3");
    let head = format!(
        "POST /register HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
        server.api
    );
    let mut streams: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = connect_from("127.8.1.1", server.api);
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let mut statuses = Vec::new();
    for stream in &mut streams {
        // A request refused before its body is answered at once; send no body after that.
        if !has_answered(stream) {
            let _ = stream.write_all(b"{}");
        }
        statuses.push(read_response(stream).status);
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((created, limited), (3, 37), "{statuses:?}");
    // Requests that failed before the write gave their place back; these did not, so the
    // network stays limited, and another network is not.
    assert_eq!(http_from(Some("127.8.1.2"), server.api, "POST", "/register", &[], b"{}").status, 429);
    assert_eq!(http_from(Some("127.8.2.1"), server.api, "POST", "/register", &[], b"{}").status, 201);
}
