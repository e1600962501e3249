//! A small DNS stub for `client check`: builds queries, decodes replies, talks UDP with TCP
//! fallback.
//!
//! Design note: the check must see what a CA's resolver and each authoritative server say,
//! independently of the server code under test, so it has its own few hundred lines instead of
//! reusing `crate::dns` (which is the thing being checked). It decodes only what the check
//! needs (CNAME, NS, A, AAAA, TXT; everything else is kept raw), and treats every reply as
//! hostile: bounds-checked reads, compression pointers only backwards, a random ID and the
//! question matched before a reply is believed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::dns::wire;

/// Record types, as the server names them.
pub(crate) use crate::dns::wire::rtype;

/// Decoded record data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rdata {
    /// CNAME or NS target, dotted with a final dot.
    Name(String),
    /// A.
    A(Ipv4Addr),
    /// AAAA.
    Aaaa(Ipv6Addr),
    /// TXT character strings.
    Txt(Vec<Vec<u8>>),
    /// Anything else, raw.
    Other(Vec<u8>),
}

/// One resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// Owner name, dotted with a final dot, case as sent.
    pub owner: String,
    /// Type.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// Data.
    pub data: Rdata,
}

impl Record {
    /// TXT data as one string per record (its character strings joined), lossily decoded.
    pub(crate) fn txt(&self) -> Option<String> {
        match &self.data {
            Rdata::Txt(parts) => Some(parts.iter().map(|p| String::from_utf8_lossy(p)).collect()),
            _ => None,
        }
    }
}

/// A decoded reply.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    /// Message ID.
    pub id: u16,
    /// Flags word.
    pub flags: u16,
    /// Question name (dotted) and type.
    pub question: Option<(String, u16)>,
    /// Answer section.
    pub answers: Vec<Record>,
}

impl Reply {
    /// Response code (header bits only).
    pub(crate) fn rcode(&self) -> u8 {
        (self.flags & 0x000F) as u8
    }

    /// Authoritative answer bit.
    pub(crate) fn aa(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// Truncated bit.
    pub(crate) fn tc(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// Answer records of `rtype` owned by `name`.
    pub(crate) fn answers_for<'a>(
        &'a self,
        name: &'a str,
        rtype: u16,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.answers.iter().filter(move |r| r.rtype == rtype && super::storage::same_name(&r.owner, name))
    }
}

/// The name of a response code.
pub(crate) fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// Wire form of a dotted name.
fn name_to_wire(name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(format!("{name:?} is too long for DNS"));
    }
    Ok(out)
}

/// A query for `name`/`qtype` with the given ID; `recursion` sets RD. It carries an EDNS OPT
/// record offering 1232 bytes over UDP.
pub(crate) fn build_query(id: u16, name: &str, qtype: u16, recursion: bool) -> Result<Vec<u8>, String> {
    let flags: u16 = if recursion { 0x0100 } else { 0 };
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    m.extend(name_to_wire(name)?);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    // OPT: root owner, type 41, UDP size 1232, extended rcode/version/flags 0, no options.
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    Ok(m)
}

/// Reads a name at `start` (with the server's reader: pointers must go backwards); returns it
/// in presentation form, with a final dot, and the offset after it.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), String> {
    let (name, end) = wire::read_name(msg, start).map_err(|e| format!("bad name in the reply: {e}"))?;
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = name.get(pos).filter(|&&len| len > 0) {
        for &b in &name[pos + 1..pos + 1 + usize::from(len)] {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
        pos += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok((out, end))
}

/// Decodes a reply; errors name what is wrong.
pub(crate) fn decode(msg: &[u8]) -> Result<Reply, String> {
    let cut = || "reply cut short".to_owned();
    let malformed = |e: wire::ParseError| format!("malformed reply: {e}");
    let (id, flags) = (wire::u16_at(msg, 0).ok_or_else(cut)?, wire::u16_at(msg, 2).ok_or_else(cut)?);
    if flags & 0x8000 == 0 {
        return Err("not a response (QR clear)".into());
    }
    let counts = wire::counts(msg).map_err(|_| cut())?;
    let mut question = None;
    let mut pos = wire::HEADER_LEN;
    for _ in 0..counts[0] {
        let (name, end) = read_name(msg, pos)?;
        let qtype = wire::u16_at(msg, end).ok_or_else(cut)?;
        pos = wire::skip_question(msg, pos).map_err(malformed)?;
        question = Some((name, qtype));
    }
    let mut sections: [Vec<Record>; 2] = [Vec::new(), Vec::new()];
    for (count, section) in counts[1..3].iter().zip(sections.iter_mut()) {
        for _ in 0..*count {
            let record = wire::record_at(msg, pos).map_err(malformed)?;
            let (owner, _) = read_name(msg, record.start)?;
            let (rtype, ttl, start, len) = (record.rtype, record.ttl, record.data.start, record.data.len());
            let raw = &msg[record.data.clone()];
            pos = record.data.end;
            let data = match rtype {
                rtype::CNAME | rtype::NS => {
                    let (name, end) = read_name(msg, start)?;
                    if end != start + len {
                        return Err("name in record data does not fill it".into());
                    }
                    Rdata::Name(name)
                }
                rtype::A if len == 4 => Rdata::A(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
                rtype::AAAA if len == 16 => {
                    Rdata::Aaaa(Ipv6Addr::from(<[u8; 16]>::try_from(raw).expect("16 bytes")))
                }
                rtype::TXT => {
                    let mut parts = Vec::new();
                    let mut at = 0;
                    while at < raw.len() {
                        let n = usize::from(raw[at]);
                        parts.push(
                            raw.get(at + 1..at + 1 + n).ok_or("TXT string runs past its record")?.to_vec(),
                        );
                        at += 1 + n;
                    }
                    Rdata::Txt(parts)
                }
                _ => Rdata::Other(raw.to_vec()),
            };
            section.push(Record { owner, rtype, ttl, data });
        }
    }
    // The additional section is not needed (glue is looked up explicitly).
    // The authority section is walked (so the reply must be well formed) but not kept.
    let [answers, _authority] = sections;
    Ok(Reply { id, flags, question, answers })
}

/// A random message ID.
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("system RNG");
    u16::from_be_bytes(b)
}

/// Whether `reply` answers the query (ID and question).
fn matches(reply: &Reply, id: u16, name: &str, qtype: u16) -> bool {
    reply.id == id
        && reply.question.as_ref().is_some_and(|(q, t)| *t == qtype && super::storage::same_name(q, name))
}

/// Asks `server` about `name`/`qtype` over UDP (two tries), and over TCP if the answer is
/// truncated; `recursion` sets RD (for a resolver; clear for an authoritative server).
pub(crate) fn ask(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    recursion: bool,
    timeout: Duration,
) -> Result<Reply, String> {
    let id = random_id();
    let query = build_query(id, name, qtype, recursion)?;
    let bind = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(server).map_err(|e| format!("{server}: {e}"))?;
    socket.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_535];
    let mut last_error = format!("{server}: no answer within {} ms (UDP, 2 tries)", timeout.as_millis());
    for _ in 0..2 {
        socket.send(&query).map_err(|e| format!("{server}: {e}"))?;
        loop {
            let len = match socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    break;
                }
                Err(e) => {
                    last_error = format!("{server}: {e}");
                    break;
                }
            };
            let Ok(reply) = decode(&buf[..len]) else { continue };
            if !matches(&reply, id, name, qtype) {
                continue; // a stray or forged datagram: keep waiting
            }
            if reply.tc() {
                return ask_tcp(server, &query, id, name, qtype, timeout);
            }
            return Ok(reply);
        }
    }
    Err(last_error)
}

/// One query over TCP.
fn ask_tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Reply, String> {
    let fail = |e: std::io::Error| format!("{server} (TCP): {e}");
    let mut stream = TcpStream::connect_timeout(&server, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    stream.set_write_timeout(Some(timeout)).map_err(fail)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    wire::put_u16_prefixed(&mut framed, query).map_err(|e| format!("{server} (TCP): {e}"))?;
    stream.write_all(&framed).map_err(fail)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(fail)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).map_err(fail)?;
    let reply = decode(&reply).map_err(|e| format!("{server} (TCP): {e}"))?;
    if !matches(&reply, id, name, qtype) {
        return Err(format!("{server} (TCP): the reply does not match the query"));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query` with the given answer records (already in wire form).
    fn reply_to(query: &[u8], flags: u16, answers: &[Vec<u8>]) -> Vec<u8> {
        let question_end = query.len() - 11; // without the OPT record
        let mut m = query[..question_end].to_vec();
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        m[10..12].copy_from_slice(&[0, 0]);
        for a in answers {
            m.extend_from_slice(a);
        }
        m
    }

    /// A record owned by the question name (pointer to offset 12).
    fn rr(rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut r = vec![0xC0, 12];
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        r
    }

    #[test]
    fn queries_are_well_formed() {
        let q = build_query(0xBEEF, "_acme-challenge.Example.COM.", rtype::CNAME, true).unwrap();
        assert_eq!(&q[..4], &[0xBE, 0xEF, 0x01, 0x00]);
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
        let name = b"\x0f_acme-challenge\x07Example\x03COM\x00";
        assert_eq!(&q[12..12 + name.len()], name);
        assert_eq!(&q[12 + name.len()..16 + name.len()], &[0, 5, 0, 1]);
        assert_eq!(&q[q.len() - 11..], &[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
        let q = build_query(1, "a.b", rtype::TXT, false).unwrap();
        assert_eq!(q[2], 0, "RD clear for authoritative servers");
        assert!(build_query(1, "a..b", 1, false).is_err());
        assert!(build_query(1, &format!("{}.b", "x".repeat(64)), 1, false).is_err());
        assert!(build_query(1, &vec!["abcdefghi"; 30].join("."), 1, false).is_err());
    }

    #[test]
    fn replies_decode() {
        let q = build_query(7, "_acme-challenge.example.com", rtype::CNAME, true).unwrap();
        // CNAME target written with a pointer back into the question ("example.com" at 28).
        let mut target = b"\x03abc\x04auth".to_vec();
        target.extend_from_slice(&[0xC0, 28]);
        let mut txt = vec![3];
        txt.extend_from_slice(b"one");
        txt.push(3);
        txt.extend_from_slice(b"two");
        let msg = reply_to(
            &q,
            0x8580,
            &[
                rr(rtype::CNAME, &target),
                rr(rtype::TXT, &txt),
                rr(rtype::A, &[127, 0, 0, 2]),
                rr(rtype::AAAA, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                rr(99, &[1, 2, 3]),
            ],
        );
        let reply = decode(&msg).unwrap();
        assert!(matches(&reply, 7, "_ACME-challenge.example.com.", rtype::CNAME));
        assert!(!matches(&reply, 8, "_acme-challenge.example.com", rtype::CNAME));
        assert!(!matches(&reply, 7, "_acme-challenge.example.com", rtype::TXT));
        assert!(reply.aa() && !reply.tc());
        assert_eq!(reply.rcode(), 0);
        assert_eq!(reply.answers[0].owner, "_acme-challenge.example.com.");
        assert_eq!(reply.answers[0].data, Rdata::Name("abc.auth.example.com.".into()));
        assert_eq!(reply.answers[1].txt().as_deref(), Some("onetwo"));
        assert_eq!(reply.answers[2].data, Rdata::A(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(reply.answers[3].data, Rdata::Aaaa(Ipv6Addr::LOCALHOST));
        assert_eq!(reply.answers[4].data, Rdata::Other(vec![1, 2, 3]));
        assert_eq!(reply.answers_for("_acme-challenge.EXAMPLE.com", rtype::TXT).count(), 1);
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(9), "RCODE9");
    }

    #[test]
    fn hostile_replies_are_errors_not_panics() {
        let q = build_query(7, "example.com", rtype::TXT, false).unwrap();
        let good = reply_to(&q, 0x8400, &[rr(rtype::TXT, b"\x03abc")]);
        // Every truncation of a good reply fails cleanly.
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "cut at {len}");
        }
        assert!(decode(&good).is_ok());
        // A query is not a reply.
        assert!(decode(&q).is_err());
        // A pointer to itself, and one forwards.
        let mut looped = good.clone();
        let at = looped.len() - 16; // the answer's owner pointer
        looped[at..at + 2].copy_from_slice(&[0xC0, at as u8]);
        assert!(decode(&looped).is_err());
        let mut forward = good.clone();
        forward[at..at + 2].copy_from_slice(&[0xC0, 0xFF]);
        assert!(decode(&forward).is_err());
        // A TXT string longer than its record.
        let bad_txt = reply_to(&q, 0x8400, &[rr(rtype::TXT, b"\x09abc")]);
        assert!(decode(&bad_txt).is_err());
        // Odd bytes in labels are escaped, not trusted.
        let mut odd = good.clone();
        odd[13] = b'.';
        let reply = decode(&odd).unwrap();
        assert_eq!(reply.question.unwrap().0, "\\046xample.com.");
    }

    #[test]
    fn udp_and_tcp_exchanges_with_a_fake_server() {
        // A UDP server that first sends a stray datagram, then a truncated reply; a TCP server
        // that gives the full answer.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(addr).unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (len, from) = udp.recv_from(&mut buf).unwrap();
            let query = buf[..len].to_vec();
            let mut stray = reply_to(&query, 0x8400, &[]);
            stray[0] ^= 0xFF;
            udp.send_to(&stray, from).unwrap();
            udp.send_to(&reply_to(&query, 0x8600, &[]), from).unwrap();
            let (mut conn, _) = tcp.accept().unwrap();
            let mut len = [0u8; 2];
            conn.read_exact(&mut len).unwrap();
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            conn.read_exact(&mut q).unwrap();
            let full = reply_to(&q, 0x8400, &[rr(rtype::TXT, b"\x05hello")]);
            let mut framed = (full.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&full);
            conn.write_all(&framed).unwrap();
        });
        let reply = ask(addr, "example.com", rtype::TXT, false, Duration::from_secs(2)).unwrap();
        assert_eq!(reply.answers[0].txt().as_deref(), Some("hello"));
        server.join().unwrap();
        // Silence is a clear error, not a hang.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err =
            ask(silent.local_addr().unwrap(), "example.com", rtype::TXT, false, Duration::from_millis(100))
                .unwrap_err();
        assert!(err.contains("no answer"), "{err}");
    }
}
