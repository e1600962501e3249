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

/// Length of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// Largest legal domain name in wire form, root label included.
pub const MAX_NAME_LEN: usize = 255;
/// Offset of the question name in every message; answers point here to compress their owner.
pub const QNAME_OFFSET: u16 = 12;

/// Record types this server knows by number.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Authoritative name server.
    pub const NS: u16 = 2;
    /// Canonical name (alias).
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Pointer.
    pub const PTR: u16 = 12;
    /// Mail exchanger.
    pub const MX: u16 = 15;
    /// Text strings.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service locator.
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record.
    pub const OPT: u16 = 41;
    /// Delegation signer.
    pub const DS: u16 = 43;
    /// Signature.
    pub const RRSIG: u16 = 46;
    /// Zone key.
    pub const DNSKEY: u16 = 48;
    /// Hashed authenticated denial.
    pub const NSEC3: u16 = 50;
    /// NSEC3 parameters.
    pub const NSEC3PARAM: u16 = 51;
    /// Child DS.
    pub const CDS: u16 = 59;
    /// Child DNSKEY.
    pub const CDNSKEY: u16 = 60;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Full zone transfer.
    pub const AXFR: u16 = 252;
    /// Mailbox-related records (obsolete meta type).
    pub const MAILB: u16 = 253;
    /// Mail agent records (obsolete meta type).
    pub const MAILA: u16 = 254;
    /// Any type (RFC 8482 minimal answer).
    pub const ANY: u16 = 255;
    /// Certification authority authorisation.
    pub const CAA: u16 = 257;
}

/// The Internet class.
pub const CLASS_IN: u16 = 1;

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

/// Why a received message is not a query we answer normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer than the two bytes of an ID: nothing to reply to.
    #[error("message shorter than a message ID")]
    NoId,
    /// The QR bit is set: it is a response, and answering responses makes loops.
    #[error("message is a response")]
    IsResponse,
    /// The header is cut short.
    #[error("header shorter than 12 bytes")]
    ShortHeader,
    /// An opcode other than QUERY.
    #[error("opcode {0} not implemented")]
    Opcode(u8),
    /// QDCOUNT is not 1.
    #[error("question count {0}, expected 1")]
    QuestionCount(u16),
    /// A name runs past the end of the message.
    #[error("name truncated")]
    NameTruncated,
    /// A label uses the reserved 0x40/0x80 label types.
    #[error("reserved label type")]
    BadLabelType,
    /// The question name uses a compression pointer.
    #[error("compression pointer in question")]
    PointerInQuestion,
    /// A compression pointer points forward or at itself (a loop).
    #[error("compression pointer does not point backwards")]
    BadPointer,
    /// A name longer than 255 bytes.
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// The fixed part or data of a record runs past the end.
    #[error("record truncated")]
    RecordTruncated,
    /// An OPT record in the wrong place, twice, or with an owner other than the root.
    #[error("misplaced or malformed OPT record")]
    BadOpt,
    /// Bytes left over after the last record.
    #[error("trailing bytes after the last record")]
    TrailingBytes,
    /// The question asks for a meta type that makes no sense in a query (OPT).
    #[error("meta type {0} in question")]
    MetaType(u16),
}

impl ParseError {
    /// The rcode to answer with, or `None` to stay silent.
    ///
    /// This is the single place where parse failures meet the wire.
    pub fn rcode(self) -> Option<Rcode> {
        match self {
            Self::NoId | Self::IsResponse => None,
            Self::Opcode(_) => Some(Rcode::NotImp),
            _ => Some(Rcode::FormErr),
        }
    }
}

/// EDNS(0) information from a query's OPT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size, raised to 512 when smaller.
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
}

/// A parsed query, borrowing the receive buffer.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The whole message.
    pub msg: &'a [u8],
    /// Message ID.
    pub id: u16,
    /// Recursion desired (copied into the reply).
    pub rd: bool,
    /// Checking disabled (copied into the reply).
    pub cd: bool,
    /// The question name as received, wire form, case preserved.
    pub qname: &'a [u8],
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// EDNS data, when the query carries an OPT record.
    pub edns: Option<Edns>,
}

impl Query<'_> {
    /// The question section (name, type, class) exactly as received.
    pub fn question_bytes(&self) -> &[u8] {
        let end = HEADER_LEN + self.qname.len() + 4;
        &self.msg[HEADER_LEN..end]
    }
}

/// Reads a big-endian u16 at `pos`, or `None` past the end.
fn u16_at(buf: &[u8], pos: usize) -> Option<u16> {
    let b = buf.get(pos..pos + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `pos`, or `None` past the end.
fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Walks an uncompressed name starting at `pos`; returns the offset just past it.
fn question_name_end(msg: &[u8], mut pos: usize) -> Result<usize, ParseError> {
    let start = pos;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::NameTruncated)?;
        match len & 0xC0 {
            0xC0 => return Err(ParseError::PointerInQuestion),
            0x40 | 0x80 => return Err(ParseError::BadLabelType),
            _ => {}
        }
        pos += 1 + usize::from(len);
        if pos - start > MAX_NAME_LEN {
            return Err(ParseError::NameTooLong);
        }
        if len == 0 {
            return Ok(pos);
        }
        if pos > msg.len() {
            return Err(ParseError::NameTruncated);
        }
    }
}

/// Skips a possibly compressed name at `pos` without following pointers.
///
/// A pointer must point strictly before the name it ends, which rules out loops for anyone who
/// later decompresses the name; we never do.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, ParseError> {
    let start = pos;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::NameTruncated)?;
        match len & 0xC0 {
            0xC0 => {
                let ptr = u16_at(msg, pos).ok_or(ParseError::NameTruncated)? & 0x3FFF;
                if usize::from(ptr) >= start {
                    return Err(ParseError::BadPointer);
                }
                return Ok(pos + 2);
            }
            0x40 | 0x80 => return Err(ParseError::BadLabelType),
            _ => {}
        }
        pos += 1 + usize::from(len);
        if pos - start > MAX_NAME_LEN {
            return Err(ParseError::NameTooLong);
        }
        if len == 0 {
            return Ok(pos);
        }
    }
}

/// Checks the option list inside an OPT record's data.
fn check_options(mut data: &[u8]) -> Result<(), ParseError> {
    while !data.is_empty() {
        let len = u16_at(data, 2).ok_or(ParseError::BadOpt)?;
        let end = 4 + usize::from(len);
        if end > data.len() {
            return Err(ParseError::BadOpt);
        }
        data = &data[end..];
    }
    Ok(())
}

/// Parses a received message as a query.
pub fn parse_query(msg: &[u8]) -> Result<Query<'_>, ParseError> {
    if msg.len() < 2 {
        return Err(ParseError::NoId);
    }
    if msg.len() >= 3 && msg[2] & 0x80 != 0 {
        return Err(ParseError::IsResponse);
    }
    if msg.len() < HEADER_LEN {
        return Err(ParseError::ShortHeader);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let opcode = (msg[2] >> 3) & 0x0F;
    if opcode != 0 {
        return Err(ParseError::Opcode(opcode));
    }
    let counts = [
        u16::from_be_bytes([msg[4], msg[5]]),
        u16::from_be_bytes([msg[6], msg[7]]),
        u16::from_be_bytes([msg[8], msg[9]]),
        u16::from_be_bytes([msg[10], msg[11]]),
    ];
    if counts[0] != 1 {
        return Err(ParseError::QuestionCount(counts[0]));
    }
    let name_end = question_name_end(msg, HEADER_LEN)?;
    let qtype = u16_at(msg, name_end).ok_or(ParseError::RecordTruncated)?;
    let qclass = u16_at(msg, name_end + 2).ok_or(ParseError::RecordTruncated)?;
    if qtype == rtype::OPT {
        return Err(ParseError::MetaType(qtype));
    }
    let mut pos = name_end + 4;
    let mut edns = None;
    let records = usize::from(counts[1]) + usize::from(counts[2]) + usize::from(counts[3]);
    let first_additional = usize::from(counts[1]) + usize::from(counts[2]);
    for index in 0..records {
        let name_start = pos;
        pos = skip_name(msg, pos)?;
        let rr_type = u16_at(msg, pos).ok_or(ParseError::RecordTruncated)?;
        let class = u16_at(msg, pos + 2).ok_or(ParseError::RecordTruncated)?;
        let ttl = u32_at(msg, pos + 4).ok_or(ParseError::RecordTruncated)?;
        let rdlen = u16_at(msg, pos + 8).ok_or(ParseError::RecordTruncated)?;
        let data_start = pos + 10;
        let data_end = data_start + usize::from(rdlen);
        if data_end > msg.len() {
            return Err(ParseError::RecordTruncated);
        }
        if rr_type == rtype::OPT {
            let root_owner = pos == name_start + 1 && msg[name_start] == 0;
            if index < first_additional || edns.is_some() || !root_owner {
                return Err(ParseError::BadOpt);
            }
            check_options(&msg[data_start..data_end])?;
            edns = Some(Edns {
                udp_size: class.max(512),
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
        pos = data_end;
    }
    if pos != msg.len() {
        return Err(ParseError::TrailingBytes);
    }
    Ok(Query {
        msg,
        id,
        rd: msg[2] & 0x01 != 0,
        cd: msg[3] & 0x10 != 0,
        qname: &msg[HEADER_LEN..name_end],
        qtype,
        qclass,
        edns,
    })
}

/// Copies a wire-form name into `out` in lower case; returns the used length.
///
/// The name must come from [`parse_query`], which bounds it to 255 bytes.
pub fn lowercase_name(name: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> usize {
    let len = name.len().min(MAX_NAME_LEN);
    for (dst, src) in out.iter_mut().zip(&name[..len]) {
        *dst = src.to_ascii_lowercase();
    }
    len
}

/// Offsets at which each label of a wire-form name starts (the root label included).
pub fn label_starts(name: &[u8]) -> impl Iterator<Item = usize> + '_ {
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

/// Header flags for a response.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
}

/// Where a record's owner name comes from when it is written.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// A compression pointer to this offset of the message.
    Pointer(u16),
    /// An uncompressed wire-form name.
    Name(&'a [u8]),
    /// Labels (wire form, no root) followed by a pointer to this offset.
    Prefixed(&'a [u8], u16),
}

/// A response under construction in a caller-owned buffer.
pub struct Response<'b> {
    /// The output buffer; cleared on creation.
    buf: &'b mut Vec<u8>,
    /// Records written to each of answer, authority and additional.
    counts: [u16; 3],
    /// Length of header plus question, where a truncated response is cut.
    question_end: usize,
    /// The OPT record to append at the end, if the query had EDNS.
    opt: Option<(u16, bool)>,
    /// The rcode, written into the header (and OPT) on finish.
    rcode: Rcode,
}

/// Sections of a response, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// Answer section.
    Answer = 0,
    /// Authority section.
    Authority = 1,
    /// Additional section.
    Additional = 2,
}

impl<'b> Response<'b> {
    /// Starts a reply to `query`, echoing its question and EDNS presence.
    ///
    /// `udp_size` is what our OPT advertises; `dnssec_ok` is echoed from the query.
    pub fn new(buf: &'b mut Vec<u8>, query: &Query<'_>, udp_size: u16) -> Self {
        buf.clear();
        let id = query.id.to_be_bytes();
        buf.extend_from_slice(&[id[0], id[1], 0x80 | u8::from(query.rd), 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        if query.cd {
            buf[3] |= 0x10;
        }
        buf.extend_from_slice(query.question_bytes());
        let question_end = buf.len();
        Self {
            buf,
            counts: [0; 3],
            question_end,
            opt: query.edns.map(|e| (udp_size, e.dnssec_ok)),
            rcode: Rcode::NoError,
        }
    }

    /// Sets the rcode.
    pub fn set_rcode(&mut self, rcode: Rcode) {
        self.rcode = rcode;
    }

    /// Sets the AA bit.
    pub fn set_authoritative(&mut self, aa: bool) {
        if aa {
            self.buf[2] |= 0x04;
        } else {
            self.buf[2] &= !0x04;
        }
    }

    /// Appends a record: the owner, then `tail` (type, class, TTL, rdlength, rdata).
    pub fn push(&mut self, section: Section, owner: Owner<'_>, tail: &[u8]) {
        match owner {
            Owner::Pointer(offset) => self.buf.extend_from_slice(&(0xC000 | offset).to_be_bytes()),
            Owner::Name(name) => self.buf.extend_from_slice(name),
            Owner::Prefixed(labels, offset) => {
                self.buf.extend_from_slice(labels);
                self.buf.extend_from_slice(&(0xC000 | offset).to_be_bytes());
            }
        }
        self.buf.extend_from_slice(tail);
        self.counts[section as usize] += 1;
    }

    /// Appends several pre-rendered records that share one owner.
    pub fn push_all(&mut self, section: Section, owner: Owner<'_>, rrset: &RrSet) {
        for tail in rrset.tails() {
            self.push(section, owner, tail);
        }
    }

    /// Writes counts, rcode and the OPT record; truncates to `max_len` with TC if needed.
    pub fn finish(mut self, max_len: usize) {
        let opt_len = if self.opt.is_some() { 11 } else { 0 };
        if self.buf.len() + opt_len > max_len {
            self.buf.truncate(self.question_end);
            self.counts = [0; 3];
            self.buf[2] |= 0x02;
        }
        let rcode = self.rcode.value();
        self.buf[3] |= (rcode & 0x0F) as u8;
        if let Some((size, dnssec_ok)) = self.opt {
            let ext = (rcode >> 4) as u8;
            let flags: u8 = if dnssec_ok { 0x80 } else { 0 };
            let size = size.to_be_bytes();
            self.buf.extend_from_slice(&[0, 0, 41, size[0], size[1], ext, 0, flags, 0, 0, 0]);
            self.counts[2] += 1;
        }
        let counts = self.counts;
        for (i, count) in counts.iter().enumerate() {
            let at = 6 + 2 * i;
            self.buf[at..at + 2].copy_from_slice(&count.to_be_bytes());
        }
    }
}

/// Writes a bare error reply (no question) for a message that did not parse.
///
/// Only the ID, opcode and RD bit are copied; the caller has checked that the ID exists.
pub fn error_reply(msg: &[u8], rcode: Rcode, out: &mut Vec<u8>) {
    out.clear();
    let flags = msg.get(2).copied().unwrap_or(0) & 0x79; // opcode and RD
    out.extend_from_slice(&[msg[0], msg[1], 0x80 | flags, rcode.value() as u8 & 0x0F]);
    out.extend_from_slice(&[0; 8]);
}

/// One RRset in pre-rendered form: each record's tail (type, class, TTL, rdlength, rdata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RrSet {
    /// Concatenated record tails.
    bytes: Vec<u8>,
}

impl RrSet {
    /// Adds one record of this set.
    pub fn add(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) {
        self.bytes.extend_from_slice(&rtype.to_be_bytes());
        self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        // Callers build rdata from bounded inputs (names <= 255, TXT strings split at 255).
        let len = u16::try_from(rdata.len()).expect("rdata is bounded by its builders");
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(rdata);
    }

    /// Whether the set has no records.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Type and TTL of the first record (all records of a set share them).
    pub fn type_and_ttl(&self) -> Option<(u16, u32)> {
        let t = self.bytes.get(..8)?;
        Some((u16::from_be_bytes([t[0], t[1]]), u32::from_be_bytes([t[4], t[5], t[6], t[7]])))
    }

    /// Iterates over the records' rdata.
    pub fn rdatas(&self) -> impl Iterator<Item = &[u8]> {
        self.tails().map(|tail| &tail[10..])
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.tails().count()
    }

    /// Iterates over the record tails.
    pub fn tails(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.bytes.as_slice();
        std::iter::from_fn(move || {
            if rest.len() < 10 {
                return None;
            }
            let len = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
            let (one, tail) = rest.split_at(len);
            rest = tail;
            Some(one)
        })
    }
}

/// Builds a TXT record's rdata from one value, split into 255-byte character strings.
pub fn txt_rdata(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + value.len() / 255 + 1);
    if value.is_empty() {
        out.push(0);
    }
    for chunk in value.chunks(255) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
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
        assert_eq!(q.edns, Some(Edns { udp_size: 512, version: 0, dnssec_ok: true }));
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
