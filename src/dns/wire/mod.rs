//! DNS message parsing and composing over borrowed bytes.
//!
//! Design note: an authoritative server for one zone needs very little of the DNS message
//! format, so this is a small zero-copy parser rather than a general library. A query is read
//! once, front to back, from the receive buffer: the header, exactly one question (its name
//! kept as a borrowed slice, never decompressed), then every remaining record is *skipped* and
//! only an OPT record is looked at. Names in the question must not use compression (nothing
//! precedes them to point at), so a compression loop can never be followed; names in later
//! sections are skipped without following their pointers at all.
//!
//! Anything that does not parse becomes a [`ParseError`], and [`ParseError::rcode`] is the one
//! place that decides whether the sender gets FORMERR/NOTIMP or silence. No function here panics
//! on any input; the fuzz-style unit tests below feed it truncated and random packets.
//!
//! Composing is done by [`Response`], which appends to one caller-owned buffer: header, the
//! question copied byte for byte from the query (so 0x20 case randomisation is echoed exactly),
//! then records whose owner is usually a compression pointer to that question.
//!
//! Files: this one holds the constants and codes both directions share; `reader` is the one
//! reader of names and records in received messages (the query parser, TSIG, transfers, the
//! secondaries' answers and the client use it), `read` parses queries, `write` composes
//! responses, and `prefixed` is the one writer of length-prefixed fields (RDLENGTH, TCP
//! framing, TSIG's fields, character-strings), which checks each length where it writes it.
//! All are re-exported here, so users name `wire::Query` and `wire::Response` whatever file
//! they live in.

mod prefixed;
mod read;
mod reader;
mod write;

pub use self::prefixed::TooLong;
pub(crate) use self::prefixed::{Open16, frame, put_character_strings, put_u8_prefixed, put_u16_prefixed};
pub use self::read::{Edns, ParseError, Query, lowercase_name, parse_query};
pub use self::reader::{
    RecordAt, counts, read_name, record_at, records, skip_name, skip_question, u16_at, u32_at,
};
pub use self::write::{Flags, Owner, Response, RrSet, Section, error_reply, txt_rdata, txt_rdata_is};

/// EDNS option code of NSID (RFC 5001).
pub(crate) const OPTION_NSID: u16 = 3;

/// Length of the fixed DNS header.
pub(crate) const HEADER_LEN: usize = 12;
/// Largest legal domain name in wire form, root label included.
pub(crate) const MAX_NAME_LEN: usize = 255;
/// Offset of the question name in every message; answers point here to compress their owner.
pub(crate) const QNAME_OFFSET: u16 = 12;

/// Record types this server knows by number.
pub(crate) mod rtype {
    /// IPv4 address.
    pub(crate) const A: u16 = 1;
    /// Authoritative name server.
    pub(crate) const NS: u16 = 2;
    /// Canonical name (alias).
    pub(crate) const CNAME: u16 = 5;
    /// Start of authority.
    pub(crate) const SOA: u16 = 6;
    /// Pointer.
    pub(crate) const PTR: u16 = 12;
    /// Mail exchanger.
    pub(crate) const MX: u16 = 15;
    /// Text strings.
    pub(crate) const TXT: u16 = 16;
    /// IPv6 address.
    pub(crate) const AAAA: u16 = 28;
    /// Service locator.
    pub(crate) const SRV: u16 = 33;
    /// EDNS(0) pseudo-record.
    pub(crate) const OPT: u16 = 41;
    /// Delegation signer.
    pub(crate) const DS: u16 = 43;
    /// Signature.
    pub(crate) const RRSIG: u16 = 46;
    /// Zone key.
    pub(crate) const DNSKEY: u16 = 48;
    /// Hashed authenticated denial.
    pub(crate) const NSEC3: u16 = 50;
    /// NSEC3 parameters.
    pub(crate) const NSEC3PARAM: u16 = 51;
    /// Child DS.
    pub(crate) const CDS: u16 = 59;
    /// Child DNSKEY.
    pub(crate) const CDNSKEY: u16 = 60;
    /// Incremental zone transfer.
    pub(crate) const IXFR: u16 = 251;
    /// Full zone transfer.
    pub(crate) const AXFR: u16 = 252;
    /// Mailbox-related records (obsolete meta type).
    pub(crate) const MAILB: u16 = 253;
    /// Mail agent records (obsolete meta type).
    pub(crate) const MAILA: u16 = 254;
    /// Any type (RFC 8482 minimal answer).
    pub(crate) const ANY: u16 = 255;
    /// Certification authority authorisation.
    pub(crate) const CAA: u16 = 257;
    /// The first private-use type (RFC 6895 section 3.1), which the zone puts at a registered
    /// name that has no value, so that the name exists in every copy of the zone (see
    /// `dns::zone`'s module note).
    pub(crate) const MARKER: u16 = 65280;
}

/// The Internet class.
pub(crate) const CLASS_IN: u16 = 1;

/// Response codes (the 4-bit header rcode plus BADVERS, which needs the OPT extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    /// No error.
    NoError,
    /// The query could not be interpreted.
    FormErr,
    /// The server failed internally.
    ServFail,
    /// The name does not exist.
    NxDomain,
    /// The kind of query is not implemented.
    NotImp,
    /// The server will not answer this query (not our zone, not allowed).
    Refused,
    /// EDNS version not supported (extended rcode 16).
    BadVers,
}

impl Rcode {
    /// The full 12-bit value of this rcode.
    pub fn value(self) -> u16 {
        match self {
            Self::NoError => 0,
            Self::FormErr => 1,
            Self::ServFail => 2,
            Self::NxDomain => 3,
            Self::NotImp => 4,
            Self::Refused => 5,
            Self::BadVers => 16,
        }
    }
}

/// Offsets at which each label of a wire-form name starts (the root label included).
pub(crate) fn label_starts(name: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || pos >= name.len() {
            return None;
        }
        let here = pos;
        let len = usize::from(name[pos]);
        if len == 0 {
            done = true;
        }
        pos += 1 + len;
        Some(here)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a query for `name` (dotted) and `qtype`, with optional EDNS size.
    fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
        for label in name.split('.').filter(|l| !l.is_empty()) {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        if let Some(size) = edns {
            m.extend_from_slice(&[0, 0, 41]);
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
        }
        m
    }

    #[test]
    fn parses_a_plain_query() {
        let m = query("Www.Example.ORG", rtype::TXT, None);
        let q = parse_query(&m).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.rd);
        assert_eq!(q.qtype, rtype::TXT);
        assert_eq!(q.qname, &m[12..m.len() - 4]);
        assert!(q.edns.is_none());
    }

    #[test]
    fn parses_edns_and_do_bit() {
        let m = query("a.b", rtype::A, Some(100));
        let q = parse_query(&m).unwrap();
        assert_eq!(q.edns, Some(Edns { udp_size: 512, version: 0, dnssec_ok: true, nsid: false }));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_query(&[1]).unwrap_err(), ParseError::NoId);
        assert_eq!(parse_query(&[1, 2, 0, 0]).unwrap_err(), ParseError::ShortHeader);
        let mut m = query("a.b", 1, None);
        m[5] = 2;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::QuestionCount(2));
        m[5] = 0;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::QuestionCount(0));
        let mut m = query("a.b", 1, None);
        m[12] = 0xC0;
        m[13] = 12;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::PointerInQuestion);
        let mut m = query("a.b", 1, None);
        m[12] = 0x41;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::BadLabelType);
        let mut m = query("a.b", 1, None);
        m[12] = 60;
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::NameTruncated);
        let mut m = query("a.b", 1, None);
        m.push(0);
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::TrailingBytes);
        let mut m = query("a.b", 1, None);
        m[2] = 0x28; // opcode 5, UPDATE
        assert_eq!(parse_query(&m).unwrap_err().rcode(), Some(Rcode::NotImp));
        let mut m = query("a.b", 1, None);
        m[2] |= 0x80;
        assert_eq!(parse_query(&m).unwrap_err().rcode(), None);
    }

    #[test]
    fn rejects_forward_pointer_in_additional() {
        let mut m = query("a.b", 1, None);
        m[11] = 1;
        let at = m.len() as u8;
        m.extend_from_slice(&[0xC0, at, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::BadPointer);
    }

    #[test]
    fn long_names_are_refused() {
        let name = ["abcdefghij"; 30].join(".");
        let m = query(&name, 1, None);
        assert_eq!(parse_query(&m).unwrap_err(), ParseError::NameTooLong);
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let m = query("some.name.example", 16, Some(1232));
        for len in 0..m.len() {
            let _ = parse_query(&m[..len]);
        }
        // A simple deterministic generator; every byte pattern must be handled.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut noisy = m.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % noisy.len();
                noisy[at] = (state >> 32) as u8;
            }
            let _ = parse_query(&noisy);
        }
    }

    #[test]
    fn error_replies_echo_opt_and_the_notimp_question() {
        let mut m = query("a.b", rtype::SOA, Some(1232));
        m[2] = 5 << 3; // UPDATE
        let mut out = Vec::new();
        error_reply(&m, Rcode::NotImp, 1400, &mut out);
        let question = &m[HEADER_LEN..HEADER_LEN + 9];
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&out[HEADER_LEN..HEADER_LEN + 9], question);
        assert_eq!(&out[HEADER_LEN + 9..], &[0, 0, 41, 0x05, 0x78, 0, 0, 0x80, 0, 0, 0]);
        // FORMERR: no question, OPT only; without OPT, a bare header.
        error_reply(&m, Rcode::FormErr, 1232, &mut out);
        assert_eq!((out.len(), out[5], out[11]), (HEADER_LEN + 11, 0, 1));
        let plain = query("a.b", rtype::SOA, None);
        error_reply(&plain, Rcode::FormErr, 1232, &mut out);
        assert_eq!(out.len(), HEADER_LEN);
        // Any prefix or noise: never a panic.
        for len in 2..m.len() {
            error_reply(&m[..len], Rcode::FormErr, 1232, &mut out);
            error_reply(&m[..len], Rcode::NotImp, 1232, &mut out);
        }
    }

    #[test]
    fn an_rdata_one_byte_too_long_for_rdlength_is_not_added() {
        let mut set = RrSet::default();
        assert!(set.add(rtype::TXT, 1, &vec![b'x'; 65_535]));
        assert!(!set.add(rtype::TXT, 1, &vec![b'x'; 65_536]));
        assert_eq!(set.len(), 1, "the refused record leaves nothing behind");
        assert_eq!(set.rdatas().next().map(<[u8]>::len), Some(65_535));
    }

    #[test]
    fn truncation_keeps_question_and_opt() {
        let m = query("a.b", rtype::TXT, Some(512));
        let q = parse_query(&m).unwrap();
        let mut buf = Vec::new();
        let mut r = Response::new(&mut buf, &q, 1232);
        let mut set = RrSet::default();
        set.add(rtype::TXT, 1, &txt_rdata(&[b'x'; 600]));
        r.push_all(Section::Answer, Owner::Pointer(QNAME_OFFSET), &set);
        r.finish(512);
        assert_eq!(buf[2] & 0x02, 0x02);
        assert_eq!(&buf[6..12], &[0, 0, 0, 0, 0, 1]);
        assert_eq!(buf.len(), 12 + q.question_bytes().len() + 11);
    }
}
