//! Reading a query: the header, one question, an OPT record; everything else skipped.
//!
//! Design note: see the module note of `wire`. Every read is bounds-checked through `get`, so no
//! input can make this panic; a name in the question may not be compressed, so no pointer loop
//! can be followed.

use super::reader::{record_at, skip_name, u16_at};
use super::{HEADER_LEN, MAX_NAME_LEN, OPTION_NSID, Rcode, rtype};

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
    /// The query asks for our name server identifier (an NSID option, RFC 5001).
    pub nsid: bool,
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
    pub(crate) fn question_bytes(&self) -> &[u8] {
        let end = HEADER_LEN + self.qname.len() + 4;
        &self.msg[HEADER_LEN..end]
    }
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

/// Checks the option list inside an OPT record's data; returns whether it asks for NSID.
fn check_options(mut data: &[u8]) -> Result<bool, ParseError> {
    let mut nsid = false;
    while !data.is_empty() {
        let len = u16_at(data, 2).ok_or(ParseError::BadOpt)?;
        let end = 4 + usize::from(len);
        if end > data.len() {
            return Err(ParseError::BadOpt);
        }
        nsid |= u16_at(data, 0) == Some(OPTION_NSID);
        data = &data[end..];
    }
    Ok(nsid)
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
        let record = record_at(msg, pos)?;
        if record.rtype == rtype::OPT {
            let root_owner = record.fixed == record.start + 1 && msg[record.start] == 0;
            if index < first_additional || edns.is_some() || !root_owner {
                return Err(ParseError::BadOpt);
            }
            let nsid = check_options(&msg[record.data.clone()])?;
            edns = Some(Edns {
                udp_size: record.class.max(512),
                version: (record.ttl >> 16) as u8,
                dnssec_ok: record.ttl & 0x8000 != 0,
                nsid,
            });
        }
        pos = record.data.end;
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

/// Reads what an error reply may echo from a message that [`parse_query`] refused: its only
/// question (name, type and class, when the count is 1 and the name is uncompressed) and its
/// OPT record (when every record can be walked and the OPT is single, well placed and well
/// formed). Anything doubtful gives `None`; nothing here panics on any input.
pub(super) fn scan_leniently(msg: &[u8]) -> (Option<&[u8]>, Option<Edns>) {
    let Some(header) = msg.get(..HEADER_LEN) else { return (None, None) };
    let count = |i: usize| usize::from(u16::from_be_bytes([header[4 + 2 * i], header[5 + 2 * i]]));
    let mut question = None;
    let mut pos = HEADER_LEN;
    for _ in 0..count(0) {
        let Ok(end) = skip_name(msg, pos) else { return (question, None) };
        if count(0) == 1 && question_name_end(msg, pos) == Ok(end) {
            question = msg.get(pos..end + 4);
        }
        pos = end + 4;
    }
    let first_additional = count(1) + count(2);
    let mut edns = None;
    for index in 0..first_additional + count(3) {
        let Ok(record) = record_at(msg, pos) else { return (question, None) };
        if record.rtype == rtype::OPT {
            let root_owner = record.fixed == record.start + 1 && msg.get(record.start) == Some(&0);
            if index < first_additional || edns.is_some() || !root_owner {
                return (question, None);
            }
            let Ok(nsid) = check_options(&msg[record.data.clone()]) else { return (question, None) };
            edns = Some(Edns {
                udp_size: record.class.max(512),
                version: (record.ttl >> 16) as u8,
                dnssec_ok: record.ttl & 0x8000 != 0,
                nsid,
            });
        }
        pos = record.data.end;
    }
    (question, edns)
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
