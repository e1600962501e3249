//! The fuzz targets: each runs one input through one of the server's readers and asserts what
//! must hold of the outcome, not only that nothing panicked.
//!
//! Each target returns a small "feature" number describing what the input led to (a reply's
//! rcode, flags and counts; an error's kind): the runner keeps an input that shows a feature
//! not seen before, the one bit of feedback a coverage-free fuzzer can have cheaply.

use std::net::IpAddr;
use std::sync::Arc;

use acme_delegate::cidr::Cidr;
use acme_delegate::config::Config;
use acme_delegate::dns::server::{MaxLen, handle_message};
use acme_delegate::dns::transfers::Transfers;
use acme_delegate::dns::tsig::{self, TsigAlgorithm, TsigKey};
use acme_delegate::dns::wire::{self, error_reply, parse_query};
use acme_delegate::dns::zone::{Signer, Zone};

use super::check;

/// The TSIG secret of the transfer zone (test only).
const SECRET: &[u8] = b"fuzzing-secret-0123456789abcdef!";

/// What the targets share: zones built once per run.
pub struct Context {
    /// An unsigned zone with a few TXT values.
    pub unsigned: Arc<Zone>,
    /// The same, signed (ECDSA P-256, NSEC3).
    pub signed: Arc<Zone>,
    /// Signed, with transfers open to everyone and a TSIG key.
    pub transfer: Transfers,
    /// The transfer zone's key.
    pub key: TsigKey,
    /// Networks the proxy-header target trusts.
    pub proxies: Vec<Cidr>,
}

/// A configuration text for the fuzz zones.
fn config_text(extra: &str) -> String {
    let base = crate::harness::base_config(std::path::Path::new("/nonexistent"));
    format!("{base}\n{extra}\n")
}

/// A zone from `config_text(extra)`, signed when the config says so, with three names; and
/// its transfers when the config has `[transfer]`.
fn zone_and_transfers(extra: &str) -> (Arc<Zone>, Option<Transfers>) {
    let config = Config::from_text(&config_text(extra), "fuzz").expect("the fuzz config is valid");
    let signer = config.dnssec.as_ref().map(|d| {
        let pkcs8 = acme_delegate::dns::dnssec::SigningKey::generate(d.algorithm).unwrap();
        let key = acme_delegate::dns::dnssec::SigningKey::from_pkcs8(d.algorithm, &pkcs8).unwrap();
        Signer { key, validity: d.validity, refresh: d.refresh }
    });
    let zone = Zone::new(&config.dns.zone, signer).expect("the fuzz zone builds");
    let mut write = zone.begin();
    write
        .txt("0b7e3c8a-1f2d-4e5a-9b6c-7d8e9f0a1b2c", &[crate::harness::txt_value(1)])
        .txt(
            "1c8f4d9b-2a3e-4f6b-8c7d-8e9f0a1b2c3d",
            &[crate::harness::txt_value(2), crate::harness::txt_value(3)],
        )
        .txt("2d9a5eac-3b4f-4a7c-9d8e-9f0a1b2c3d4e", &[] as &[&str]);
    let serial = zone.serial().wrapping_add(1);
    write.commit(serial);
    let zone = Arc::new(zone);
    let transfers = config.transfer.map(|transfer| {
        Transfers::new(Arc::clone(&zone), transfer, acme_delegate::dns::journal::Limits::default())
    });
    (zone, transfers)
}

/// A zone from `config_text(extra)` without transfers.
fn zone(extra: &str) -> Arc<Zone> {
    zone_and_transfers(extra).0
}

impl Context {
    /// Builds the zones.
    pub fn new() -> Self {
        use base64_engine::encode;
        let transfer = format!(
            "[dnssec]\nenabled = true\n[transfer]\nallow_transfer = [\"0.0.0.0/0\", \"::/0\"]\n\
             tsig_name = \"transfer-key\"\ntsig_algorithm = \"hmac-sha256\"\ntsig_secret = \"{}\"",
            encode(SECRET)
        );
        Self {
            unsigned: zone(""),
            signed: zone("[dnssec]\nenabled = true"),
            transfer: zone_and_transfers(&transfer).1.expect("the transfer zone has [transfer]"),
            key: TsigKey::new("transfer-key", TsigAlgorithm::HmacSha256, SECRET).unwrap(),
            proxies: ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32"]
                .iter()
                .map(|n| n.parse().unwrap())
                .collect(),
        }
    }
}

/// A tiny standard base64 encoder (the config takes the TSIG secret in base64).
mod base64_engine {
    /// Standard base64 with padding.
    pub fn encode(data: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// A feature number from a reply: rcode, flags and section counts.
fn reply_feature(reply: &[u8]) -> u64 {
    if reply.len() < 12 {
        return reply.len() as u64;
    }
    let mut f = u64::from(reply[3] & 0x0F) | u64::from(reply[2]) << 4;
    for i in 0..4 {
        f = f * 31 + u64::from(u16::from_be_bytes([reply[4 + 2 * i], reply[5 + 2 * i]]).min(8));
    }
    f
}

/// A feature number from text (an error's first words).
fn text_feature(text: &str) -> u64 {
    text.bytes().take(40).fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The DNS message parser, and the error replies it leads to.
pub fn dns_parse(_: &Context, input: &[u8]) -> u64 {
    match parse_query(input) {
        Ok(query) => {
            assert!(query.msg.len() == input.len());
            1
        }
        Err(error) => {
            let mut out = Vec::new();
            if let Some(rcode) = error.rcode() {
                error_reply(input, rcode, 1232, &mut out);
            }
            if !out.is_empty() {
                // An error reply echoes at most the question and an OPT: it always fits 512.
                check::reply(input, &out, 512);
            }
            // The error's kind, not its positions: one feature per kind of refusal.
            let kind = format!("{error:?}");
            text_feature(kind.split(['(', ' ', '{']).next().unwrap_or("")) ^ reply_feature(&out)
        }
    }
}

/// Query → answer over UDP and TCP on `zone` (with `transfers` when on): every reply is well
/// formed and within its limit.
fn answer_on(zone: &Zone, transfers: Option<&Transfers>, input: &[u8]) -> u64 {
    let mut out = Vec::new();
    handle_message(zone, transfers, input, Some(MaxLen::Udp), &mut out);
    let udp_feature = reply_feature(&out);
    if !out.is_empty() {
        let limit = parse_query(input).map_or(512, |q| zone.udp_limit(&q));
        check::reply(input, &out, limit);
    }
    handle_message(zone, transfers, input, None, &mut out);
    if !out.is_empty() {
        check::reply(input, &out, usize::from(u16::MAX));
    }
    udp_feature ^ reply_feature(&out).rotate_left(32)
}

/// The whole query → answer function, unsigned zone.
pub fn dns_answer(ctx: &Context, input: &[u8]) -> u64 {
    answer_on(&ctx.unsigned, None, input)
}

/// The whole query → answer function, signed zone (answers with RRSIG and NSEC3).
pub fn dns_answer_signed(ctx: &Context, input: &[u8]) -> u64 {
    answer_on(&ctx.signed, None, input)
}

/// Transfers and TSIG: the transfer zone's answers; the TSIG reader on every input; and for
/// every input that is a query, signing it must verify, the answer's TSIG must verify, and
/// any change to the signed bytes must make verification fail.
pub fn dns_transfer(ctx: &Context, input: &[u8]) -> u64 {
    let now = tsig::now();
    let _ = tsig::verify_request(input, Some(&ctx.key), now);
    let _ = wire::records(input);
    let mut feature = answer_on(ctx.transfer.zone(), Some(&ctx.transfer), input);
    // Only a query without any record of type TSIG can be signed and must then verify: one in
    // another place than the end (`tsig::find` looks only there) makes the signed query
    // malformed, rightly (the server answers FORMERR).
    let has_tsig = wire::records(input).map_or(true, |records| records.iter().any(|r| r.rtype == tsig::TSIG));
    if parse_query(input).is_err() || has_tsig || input.len() > 16_000 {
        return feature;
    }
    let mut signed = input.to_vec();
    let mac = tsig::sign_request(&ctx.key, &mut signed, now)
        .expect("a query under 16,000 bytes takes a TSIG record");
    let verified = tsig::verify_request(&signed, Some(&ctx.key), now);
    assert!(matches!(verified, Ok(Some(_))), "a request we signed does not verify: {verified:?}");
    feature ^= answer_on(ctx.transfer.zone(), Some(&ctx.transfer), &signed).rotate_left(7);
    let mut out = Vec::new();
    handle_message(ctx.transfer.zone(), Some(&ctx.transfer), &signed, None, &mut out);
    if matches!(tsig::find(&out), Ok(Some(_))) {
        let answer = tsig::verify_answer(&ctx.key, &mac, &out);
        assert!(
            matches!(answer, Ok(()) | Err(tsig::AnswerError::Peer(_))),
            "the answer to a signed request does not verify: {answer:?}"
        );
    }
    // Every byte the MAC covers, but the ID (the original ID in the TSIG record stands in).
    let tsig_start = wire::records(&signed)
        .ok()
        .and_then(|records| records.iter().rev().find(|r| r.rtype == tsig::TSIG).map(|r| r.start))
        .expect("the record we appended is found");
    let at = 2 + (feature as usize % (tsig_start - 2));
    let mut tampered = signed.clone();
    tampered[at] ^= 1 << (feature as usize / 7 % 8);
    let check = tsig::verify_request(&tampered, Some(&ctx.key), now);
    assert!(!matches!(check, Ok(Some(_))), "a request changed at byte {at} still verifies");
    feature
}

/// The config reader: never panics, is deterministic, and an error names what is wrong.
pub fn config(_: &Context, input: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(input);
    let first = Config::from_text(&text, "fuzz");
    let again = Config::from_text(&text, "fuzz");
    match (&first, &again) {
        (Ok(_), Ok(_)) => 1,
        (Err(a), Err(b)) => {
            let (a, b) = (a.to_string(), b.to_string());
            assert_eq!(a, b, "the same text, two different errors");
            assert!(!a.trim().is_empty(), "an empty error message");
            text_feature(&a)
        }
        _ => panic!("the same text read twice: one Ok, one Err"),
    }
}

/// The JSON body reader: it accepts exactly a blank body, `null` or a JSON object, and then
/// sees the object's keys.
pub fn json_body(_: &Context, input: &[u8]) -> u64 {
    let ours = acme_delegate::fuzz::json_object(input);
    let blank = input.iter().all(u8::is_ascii_whitespace);
    let oracle = serde_json::from_slice::<serde_json::Value>(input).ok();
    match (&ours, &oracle) {
        (Some(keys), Some(serde_json::Value::Object(map))) => {
            assert_eq!(keys.len(), map.len(), "keys");
            2 + keys.len().min(4) as u64
        }
        (Some(keys), Some(serde_json::Value::Null)) => {
            assert!(keys.is_empty());
            1
        }
        (Some(keys), None) => {
            assert!(blank && keys.is_empty(), "accepted a body that is not JSON");
            0
        }
        (None, Some(serde_json::Value::Object(_) | serde_json::Value::Null)) => {
            panic!("refused a JSON object")
        }
        (None, _) => {
            assert!(!blank, "refused a blank body");
            10
        }
        (Some(_), Some(_)) => panic!("accepted JSON that is not an object"),
    }
}

/// The proxy-header reader: the client it finds is the proxy itself or an address written in
/// the header, and an untrusted address appended by our proxy is always the client.
pub fn proxy_header(ctx: &Context, input: &[u8]) -> u64 {
    let peers: [IpAddr; 3] =
        ["10.1.1.1".parse().unwrap(), "2001:db8::1".parse().unwrap(), "127.0.0.1".parse().unwrap()];
    let (peer, rest) = match input.split_first() {
        Some((b, rest)) => (peers[usize::from(*b) % peers.len()], rest),
        None => (peers[0], input),
    };
    let values: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    let client = acme_delegate::fuzz::forwarded_client(peer, &values, &ctx.proxies);
    let written: Vec<IpAddr> = values
        .iter()
        .flat_map(|v| v.split(|b| *b == b','))
        .filter_map(|p| std::str::from_utf8(p).ok())
        .filter_map(|s| s.trim().trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok())
        .map(acme_delegate::cidr::canonical)
        .collect();
    assert!(client == peer || written.contains(&client), "{client} is neither the proxy nor in the header");
    let mut appended = values.clone();
    appended.push(b"192.0.2.77");
    let outside: IpAddr = "192.0.2.77".parse().unwrap();
    assert_eq!(acme_delegate::fuzz::forwarded_client(peer, &appended, &ctx.proxies), outside);
    u64::from(client == peer) + 2 * written.len().min(8) as u64
}
