//! Writing a response into one caller-owned buffer, and the pre-rendered RRsets it copies.
//!
//! Design note: records are kept as rendered tails (type, class, TTL, rdata) so answering is a
//! few copies; owners are compression pointers into the question. A response that does not
//! fit is truncated at a whole RRset, keeping the question and OPT, with TC set.

use super::read::scan_leniently;
use super::{CLASS_IN, Open16, Query, Rcode, put_character_strings, put_u16_prefixed};

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
    /// Length and counts before the first optional record (see [`Response::mark_optional`]).
    optional_from: Option<(usize, [u16; 3])>,
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
            optional_from: None,
        }
    }

    /// Marks that what is pushed from here on may be dropped, rather than the whole answer
    /// truncated, when the response does not fit (additional data that is a courtesy, such as
    /// the addresses of the apex name servers; RFC 2181 section 9).
    pub(crate) fn mark_optional(&mut self) {
        if self.optional_from.is_none() {
            self.optional_from = Some((self.buf.len(), self.counts));
        }
    }

    /// Sets the rcode.
    pub(crate) fn set_rcode(&mut self, rcode: Rcode) {
        self.rcode = rcode;
    }

    /// Sets the AA bit.
    pub(crate) fn set_authoritative(&mut self, aa: bool) {
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
    pub(crate) fn push_all(&mut self, section: Section, owner: Owner<'_>, rrset: &RrSet) {
        for tail in rrset.tails() {
            self.push(section, owner, tail);
        }
    }

    /// Writes counts, rcode and the OPT record; truncates to `max_len` with TC if needed.
    pub fn finish(self, max_len: usize) {
        self.finish_with_options(max_len, &[]);
    }

    /// [`Response::finish`], with pre-rendered EDNS options (code, length, data) appended to
    /// our OPT record; they are dropped when the query had no OPT. Records pushed after
    /// [`Response::mark_optional`] are dropped first when the response does not fit.
    pub(crate) fn finish_with_options(mut self, max_len: usize, options: &[&[u8]]) {
        let options_len: usize = if self.opt.is_some() { options.iter().map(|o| o.len()).sum() } else { 0 };
        let opt_len = if self.opt.is_some() { 11 + options_len } else { 0 };
        if self.buf.len() + opt_len > max_len {
            match self.optional_from {
                Some((len, counts)) if len + opt_len <= max_len => {
                    self.buf.truncate(len);
                    self.counts = counts;
                }
                _ => {
                    self.buf.truncate(self.question_end);
                    self.counts = [0; 3];
                    self.buf[2] |= 0x02;
                }
            }
        }
        let rcode = self.rcode.value();
        self.buf[3] |= (rcode & 0x0F) as u8;
        if let Some((size, dnssec_ok)) = self.opt {
            let ext = (rcode >> 4) as u8;
            let flags: u8 = if dnssec_ok { 0x80 } else { 0 };
            let size = size.to_be_bytes();
            self.buf.extend_from_slice(&[0, 0, 41, size[0], size[1], ext, 0, flags, 0]);
            let rdata = Open16::open(self.buf);
            for option in options {
                self.buf.extend_from_slice(option);
            }
            // Options are few and small (an NSID of at most 255 bytes, a 2-byte EDE); should
            // they ever not fit, the OPT record goes out without them.
            if rdata.close(self.buf).is_err() {
                self.buf.extend_from_slice(&[0, 0]);
            }
            self.counts[2] += 1;
        }
        let counts = self.counts;
        for (i, count) in counts.iter().enumerate() {
            let at = 6 + 2 * i;
            self.buf[at..at + 2].copy_from_slice(&count.to_be_bytes());
        }
    }
}

/// Writes the reply to a message that did not parse as a query we answer (FORMERR, NOTIMP).
///
/// The ID, opcode and RD bit are copied; the caller has checked that the ID exists. A NOTIMP
/// reply echoes the question when the message has exactly one that reads well (the message
/// was understood, only its kind is not served). Either carries an OPT record advertising
/// `udp_size` when the message had one (RFC 6891 section 7: a reply to a request with OPT
/// has OPT), so that an EDNS client does not take us for a server without EDNS.
pub fn error_reply(msg: &[u8], rcode: Rcode, udp_size: u16, out: &mut Vec<u8>) {
    out.clear();
    let flags = msg.get(2).copied().unwrap_or(0) & 0x79; // opcode and RD
    out.extend_from_slice(&[msg[0], msg[1], 0x80 | flags, rcode.value() as u8 & 0x0F]);
    out.extend_from_slice(&[0; 8]);
    let (question, edns) = scan_leniently(msg);
    if let Some(question) = question.filter(|_| rcode == Rcode::NotImp) {
        out.extend_from_slice(question);
        out[5] = 1;
    }
    if let Some(edns) = edns {
        let size = udp_size.to_be_bytes();
        let flags: u8 = if edns.dnssec_ok { 0x80 } else { 0 };
        out.extend_from_slice(&[0, 0, 41, size[0], size[1], 0, 0, flags, 0, 0, 0]);
        out[11] = 1;
    }
}

/// One RRset in pre-rendered form: each record's tail (type, class, TTL, rdlength, rdata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RrSet {
    /// Concatenated record tails.
    bytes: Vec<u8>,
}

impl RrSet {
    /// Adds one record of this set; rdata longer than a record can hold (65,535 octets) is not
    /// added, and the result says so.
    pub fn add(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
        // Callers build rdata from bounded inputs (names <= 255, TXT values checked by the
        // zone's rule, `dns::zone::admit`); this is the last guard, for data that got past
        // them: no record rather than a panic or a malformed one.
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&rtype.to_be_bytes());
        self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.bytes.extend_from_slice(&ttl.to_be_bytes());
        if put_u16_prefixed(&mut self.bytes, rdata).is_err() {
            self.bytes.truncate(start);
            return false;
        }
        true
    }

    /// Whether the set has no records.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Type and TTL of the first record (all records of a set share them).
    pub(crate) fn type_and_ttl(&self) -> Option<(u16, u32)> {
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
    pub(crate) fn tails(&self) -> impl Iterator<Item = &[u8]> {
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
    put_character_strings(&mut out, value);
    out
}

/// Whether `rdata` is exactly [`txt_rdata`] of `value`, without making it.
pub fn txt_rdata_is(rdata: &[u8], value: &[u8]) -> bool {
    if value.is_empty() {
        return rdata == [0];
    }
    let mut rest = rdata;
    for chunk in value.chunks(255) {
        match rest.split_first() {
            Some((&len, tail)) if usize::from(len) == chunk.len() && tail.starts_with(chunk) => {
                rest = &tail[chunk.len()..];
            }
            _ => return false,
        }
    }
    rest.is_empty()
}
