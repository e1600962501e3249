//! TSIG (RFC 8945): shared-secret signatures on zone transfers, their answers and NOTIFY.
//!
//! Design note: one key is configured (`[transfer] tsig_*`), with HMAC-SHA256 or HMAC-SHA512
//! from `ring`, whose `hmac::verify` compares MACs in constant time. A request is checked in the
//! order RFC 8945 section 5.2 gives: the key (BADKEY), then the MAC (BADSIG), then the time
//! (BADTIME); each failure becomes a NOTAUTH reply carrying that error and never any zone data
//! ([`failure_reply`]). The answer to a signed request is signed with the request's MAC as
//! "prior MAC"; a transfer of several messages signs every one of them, the later ones over the
//! previous message's MAC and the timers only (section 5.3.1), which [`ResponseSigner`] keeps
//! track of.
//!
//! Messages are walked with the reader every part of the server shares (`wire::reader`): a
//! TSIG record must be found (it is the last record of the message) and cut off before the MAC
//! can be computed. Names inside the TSIG record are read following only backward pointers,
//! since a peer may compress them.
//!
//! The secret never leaves [`TsigKey`]: its `Debug` prints the key's name and algorithm only.

use ring::hmac;

use super::wire::{self, Open16, TooLong, put_u16_prefixed};

/// The TSIG record type.
pub const TSIG: u16 = 250;
/// The class of a TSIG record (ANY).
const CLASS_ANY: u16 = 255;
/// The fudge we put into the records we sign: seconds of clock skew accepted by the peer.
const FUDGE: u16 = 300;
/// Rcode NOTAUTH, used with every TSIG error.
pub(crate) const NOTAUTH: u8 = 9;

/// TSIG error codes (the record's Error field).
pub(crate) mod error {
    /// The MAC does not verify.
    pub(crate) const BADSIG: u16 = 16;
    /// The key is not known.
    pub(crate) const BADKEY: u16 = 17;
    /// The time signed is outside the fudge.
    pub(crate) const BADTIME: u16 = 18;
    /// The MAC is truncated below what we accept.
    pub(crate) const BADTRUNC: u16 = 22;
}

/// The HMAC algorithms we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`.
    HmacSha256,
    /// `hmac-sha512`.
    HmacSha512,
}

impl TsigAlgorithm {
    /// From the configuration's name (`hmac-sha256`, `hmac-sha512`), case-insensitively.
    pub(crate) fn from_name(text: &str) -> Option<Self> {
        match text.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm name in wire form, as it appears in TSIG records.
    fn wire(self) -> &'static [u8] {
        match self {
            Self::HmacSha256 => b"\x0bhmac-sha256\x00",
            Self::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    /// ring's algorithm.
    fn ring(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha256 => hmac::HMAC_SHA256,
            Self::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// Length of a full MAC.
    fn mac_len(self) -> usize {
        match self {
            Self::HmacSha256 => 32,
            Self::HmacSha512 => 64,
        }
    }
}

/// A TSIG key: its name, algorithm and secret.
pub struct TsigKey {
    /// Lower-case wire form of the name.
    name: Vec<u8>,
    /// The name as configured, for logs.
    text: String,
    /// The algorithm.
    algorithm: TsigAlgorithm,
    /// The secret, ready for HMAC.
    key: hmac::Key,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("TsigKey").field("name", &self.text).field("algorithm", &self.algorithm).finish()
    }
}

impl PartialEq for TsigKey {
    /// Same name, algorithm and secret: the secret is compared through the MAC of a fixed
    /// message, since the HMAC key does not give its bytes back (and need not be copied).
    fn eq(&self, other: &Self) -> bool {
        let mac = |key: &Self| hmac::sign(&key.key, b"acme-delegate key comparison");
        (&self.name, self.algorithm) == (&other.name, other.algorithm)
            && mac(self).as_ref() == mac(other).as_ref()
    }
}

impl TsigKey {
    /// Makes a key; `name` is a domain name (`transfer-key`), `secret` the decoded bytes.
    /// Returns `None` when the name is not a valid domain name.
    pub fn new(name: &str, algorithm: TsigAlgorithm, secret: &[u8]) -> Option<Self> {
        let wire = super::records::name_to_wire(name).ok()?.to_ascii_lowercase();
        Some(Self {
            name: wire,
            text: name.trim_end_matches('.').to_owned(),
            algorithm,
            key: hmac::Key::new(algorithm.ring(), secret),
        })
    }

    /// The key's name as configured, for logs.
    pub(crate) fn name(&self) -> &str {
        &self.text
    }

    /// The algorithm (the configuration's unit tests read it back).
    #[cfg(test)]
    pub(crate) fn algorithm(&self) -> TsigAlgorithm {
        self.algorithm
    }
}

/// Seconds since the epoch, as TSIG counts time.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Reads a possibly compressed name at `pos` in lower-case uncompressed wire form (TSIG key and
/// algorithm names compare without case); returns it and the offset after it.
fn read_name(msg: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let (mut name, end) = wire::read_name(msg, pos).ok()?;
    name.make_ascii_lowercase();
    Some((name, end))
}

/// A TSIG record found at the end of a message.
#[derive(Debug)]
pub struct TsigRecord<'a> {
    /// Where the record starts: the message without it is `msg[..start]`.
    start: usize,
    /// Key name, lower-case wire form.
    name: Vec<u8>,
    /// Algorithm name, lower-case wire form.
    algorithm: Vec<u8>,
    /// Time signed (48 bits).
    time_signed: u64,
    /// Fudge.
    fudge: u16,
    /// The MAC.
    mac: &'a [u8],
    /// The message ID before any forwarder changed it.
    original_id: u16,
    /// Error field.
    error: u16,
    /// Other data.
    other: &'a [u8],
}

/// The message does not carry a well-formed TSIG record where one must be: FORMERR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed TSIG record")]
pub struct Malformed;

/// Finds the TSIG record of `msg`: `Ok(None)` when it has none, `Err` when one is present but
/// not the last record, or does not parse.
pub fn find(msg: &[u8]) -> Result<Option<TsigRecord<'_>>, Malformed> {
    if wire::u16_at(msg, 10).unwrap_or(0) == 0 {
        return Ok(None); // no additional records: the common case costs nothing more
    }
    // One walk without allocating: with transfers on, every EDNS query comes through here.
    let counts = wire::counts(msg).map_err(|_| Malformed)?;
    let records = usize::from(counts[1]) + usize::from(counts[2]) + usize::from(counts[3]);
    let mut pos = wire::HEADER_LEN;
    for _ in 0..counts[0] {
        pos = wire::skip_question(msg, pos).map_err(|_| Malformed)?;
    }
    let (mut start, mut rtype) = (pos, 0);
    for index in 0..records {
        if rtype == TSIG && index > 0 {
            return Err(Malformed); // a TSIG record that is not the last
        }
        let record = wire::record_at(msg, pos).map_err(|_| Malformed)?;
        (start, rtype, pos) = (record.start, record.rtype, record.data.end);
    }
    if pos != msg.len() {
        return Err(Malformed);
    }
    if rtype != TSIG {
        return Ok(None);
    }
    let (name, pos) = read_name(msg, start).ok_or(Malformed)?;
    if wire::u16_at(msg, pos + 2) != Some(CLASS_ANY) {
        return Err(Malformed);
    }
    let rdata = msg.get(pos + 10..).ok_or(Malformed)?;
    let (algorithm, at) = read_name(msg, pos + 10).ok_or(Malformed)?;
    let at = at - (pos + 10);
    let field = |from: usize, len: usize| rdata.get(from..from + len).ok_or(Malformed);
    let time = field(at, 6)?;
    let time_signed = time.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    let fudge = u16::from_be_bytes(field(at + 6, 2)?.try_into().map_err(|_| Malformed)?);
    let mac_len = usize::from(u16::from_be_bytes(field(at + 8, 2)?.try_into().map_err(|_| Malformed)?));
    let mac = field(at + 10, mac_len)?;
    let rest = at + 10 + mac_len;
    let word = |from| -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(field(from, 2)?.try_into().map_err(|_| Malformed)?))
    };
    let (original_id, error, other_len) = (word(rest)?, word(rest + 2)?, usize::from(word(rest + 4)?));
    let other = field(rest + 6, other_len)?;
    if rest + 6 + other_len != rdata.len() {
        return Err(Malformed);
    }
    Ok(Some(TsigRecord { start, name, algorithm, time_signed, fudge, mac, original_id, error, other }))
}

/// Appends the TSIG variables of RFC 8945 section 4.3.3 (everything but the MAC); errs when
/// `other` is too long for its 16-bit length.
fn push_variables(
    out: &mut Vec<u8>,
    key: &TsigKey,
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) -> Result<(), TooLong> {
    out.extend_from_slice(&key.name);
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(key.algorithm.wire());
    push_timers(out, time, fudge);
    out.extend_from_slice(&error.to_be_bytes());
    put_u16_prefixed(out, other)
}

/// Appends time signed (48 bits) and fudge.
fn push_timers(out: &mut Vec<u8>, time: u64, fudge: u16) {
    out.extend_from_slice(&time.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
}

/// Appends a prior MAC with its length, as digests of answers start.
fn push_prior(out: &mut Vec<u8>, prior: &[u8]) -> Result<(), TooLong> {
    put_u16_prefixed(out, prior)
}

/// The message as it was before `record` was added: cut there, ARCOUNT one less, the
/// original ID restored.
fn unsigned_part(msg: &[u8], record: &TsigRecord<'_>) -> Vec<u8> {
    let mut out = msg[..record.start].to_vec();
    out[..2].copy_from_slice(&record.original_id.to_be_bytes());
    let arcount = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    out
}

/// Appends a TSIG record to a finished message (at least a header) and counts it in ARCOUNT.
/// A MAC or other data too long for its field, or a record too long for its RDLENGTH, is an
/// error, and the message is left as it was.
fn append_record(
    msg: &mut Vec<u8>,
    key: &TsigKey,
    time: u64,
    mac: &[u8],
    error: u16,
    other: &[u8],
) -> Result<(), TooLong> {
    let start = msg.len();
    let original_id = [msg[0], msg[1]];
    msg.extend_from_slice(&key.name);
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    let rdata = Open16::open(msg);
    msg.extend_from_slice(key.algorithm.wire());
    push_timers(msg, time, FUDGE);
    let written = put_u16_prefixed(msg, mac)
        .and_then(|()| {
            msg.extend_from_slice(&original_id);
            msg.extend_from_slice(&error.to_be_bytes());
            put_u16_prefixed(msg, other)
        })
        .and_then(|()| rdata.close(msg));
    if let Err(e) = written {
        msg.truncate(start);
        return Err(e);
    }
    let arcount = u16::from_be_bytes([msg[10], msg[11]]).wrapping_add(1);
    msg[10..12].copy_from_slice(&arcount.to_be_bytes());
    Ok(())
}

/// Bytes a TSIG record with `key` adds to a message (for size limits).
pub(crate) fn record_len(key: &TsigKey) -> usize {
    key.name.len() + 10 + key.algorithm.wire().len() + 10 + key.algorithm.mac_len() + 6 + 6
}

/// Why a signed request is refused; the reply carries the error and no data.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The key's name or algorithm is not ours (or no key is configured).
    BadKey,
    /// The MAC does not verify.
    BadSig,
    /// The MAC is shorter than we accept.
    BadTrunc,
    /// The MAC verifies but the time is outside the fudge; the reply is signed.
    BadTime {
        /// The request's MAC, to sign the reply with.
        mac: Vec<u8>,
    },
}

impl Failure {
    /// The TSIG error code.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Self::BadKey => error::BADKEY,
            Self::BadSig => error::BADSIG,
            Self::BadTrunc => error::BADTRUNC,
            Self::BadTime { .. } => error::BADTIME,
        }
    }

    /// The name RFC 8945 gives the error, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::BadKey => "BADKEY",
            Self::BadSig => "BADSIG",
            Self::BadTrunc => "BADTRUNC",
            Self::BadTime { .. } => "BADTIME",
        }
    }
}

/// A request whose TSIG verified: what its answer is signed with.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The request's MAC.
    mac: Vec<u8>,
}

/// Checks the TSIG of a request at time `now`: `Ok(None)` when unsigned.
pub fn verify_request(msg: &[u8], key: Option<&TsigKey>, now: u64) -> Result<Option<Verified>, Check> {
    let record = match find(msg) {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(Malformed) => return Err(Check::Malformed),
    };
    let Some(key) = key.filter(|k| k.name == record.name && k.algorithm.wire() == record.algorithm) else {
        return Err(Check::Failed(Failure::BadKey, record_reply_key(&record)));
    };
    let full = key.algorithm.mac_len();
    if record.mac.len() > full {
        return Err(Check::Malformed);
    }
    if record.mac.len() < full {
        // RFC 8945 allows MACs truncated to half their length; we send and expect full ones.
        return Err(Check::Failed(Failure::BadTrunc, record_reply_key(&record)));
    }
    let mut data = unsigned_part(msg, &record);
    // `other` was read from a 16-bit length, so it fits one; were it not, the record is bad.
    push_variables(&mut data, key, record.time_signed, record.fudge, record.error, record.other)
        .map_err(|_| Check::Malformed)?;
    if hmac::verify(&key.key, &data, record.mac).is_err() {
        return Err(Check::Failed(Failure::BadSig, record_reply_key(&record)));
    }
    if now.abs_diff(record.time_signed) > u64::from(record.fudge) {
        return Err(Check::Failed(Failure::BadTime { mac: record.mac.to_vec() }, record_reply_key(&record)));
    }
    Ok(Some(Verified { mac: record.mac.to_vec() }))
}

/// The key name and algorithm a failure reply echoes (the request's, even when unknown).
#[derive(Debug, PartialEq, Eq)]
pub struct ReplyKey {
    /// Key name, wire form.
    name: Vec<u8>,
    /// Algorithm name, wire form.
    algorithm: Vec<u8>,
}

/// The request's key name and algorithm, for its failure reply.
fn record_reply_key(record: &TsigRecord<'_>) -> ReplyKey {
    ReplyKey { name: record.name.clone(), algorithm: record.algorithm.clone() }
}

/// The outcome of checking a request that is not acceptable.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The TSIG record is malformed: FORMERR.
    Malformed,
    /// The signature does not verify: NOTAUTH with this error.
    Failed(Failure, ReplyKey),
}

/// Writes the NOTAUTH reply to a request whose TSIG failed: header, the question, and a TSIG
/// record with the error. Only BADTIME is signed (RFC 8945 section 5.2.3); the others carry
/// no MAC, since the request's MAC could not be trusted.
pub(crate) fn failure_reply(
    request: &[u8],
    question: &[u8],
    failure: &Failure,
    reply_key: &ReplyKey,
    key: Option<&TsigKey>,
    now: u64,
    out: &mut Vec<u8>,
) {
    out.clear();
    let flags = request.get(2).copied().unwrap_or(0) & 0x79; // opcode and RD
    out.extend_from_slice(&[
        request[0],
        request[1],
        0x80 | flags,
        NOTAUTH,
        0,
        u8::from(!question.is_empty()),
    ]);
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(question);
    let signed = match (failure, key) {
        (Failure::BadTime { mac }, Some(key)) => badtime_record(out, mac, key, now).is_ok(),
        _ => false,
    };
    if !signed {
        unsigned_record(out, &request[..2], failure, reply_key, now);
    }
}

/// Appends the signed TSIG record of a BADTIME reply (RFC 8945 section 5.2.3): over the
/// request's MAC, the reply so far and the variables, with our time as other data.
fn badtime_record(out: &mut Vec<u8>, request_mac: &[u8], key: &TsigKey, now: u64) -> Result<(), TooLong> {
    let other = &now.to_be_bytes()[2..];
    let mut data = Vec::with_capacity(out.len() + 128);
    push_prior(&mut data, request_mac)?;
    data.extend_from_slice(out);
    push_variables(&mut data, key, now, FUDGE, error::BADTIME, other)?;
    let tag = hmac::sign(&key.key, &data);
    append_record(out, key, now, tag.as_ref(), error::BADTIME, other)
}

/// Appends the unsigned TSIG record of a failure reply: the request's own key name and
/// algorithm, an empty MAC, the request's ID and the error. A record that does not fit (an
/// algorithm name read from a message is at most 255 bytes, so it always does) is left out.
fn unsigned_record(out: &mut Vec<u8>, request_id: &[u8], failure: &Failure, reply_key: &ReplyKey, now: u64) {
    let start = out.len();
    out.extend_from_slice(&reply_key.name);
    out.extend_from_slice(&TSIG.to_be_bytes());
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let rdata = Open16::open(out);
    out.extend_from_slice(&reply_key.algorithm);
    push_timers(out, now, FUDGE);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(request_id);
    out.extend_from_slice(&failure.code().to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    if rdata.close(out).is_ok() {
        out[11] = 1;
    } else {
        out.truncate(start);
    }
}

/// Signs the messages of one answer: the first over the request's MAC and all variables, each
/// later one over the previous MAC and the timers (RFC 8945 section 5.3.1).
#[derive(Debug)]
pub(crate) struct ResponseSigner<'k> {
    /// The key.
    key: &'k TsigKey,
    /// The MAC the next message's digest starts with.
    prior: Vec<u8>,
    /// Whether the next message is the first.
    first: bool,
}

impl<'k> ResponseSigner<'k> {
    /// A signer for the answer to a verified request.
    pub(crate) fn new(key: &'k TsigKey, request: &Verified) -> Self {
        Self { key, prior: request.mac.clone(), first: true }
    }

    /// Signs a finished message (no TSIG yet) and appends its TSIG record. The MACs are
    /// ours (64 bytes at most), so the only error is a record that does not fit, and then the
    /// message is left unsigned and the signer as it was.
    pub(crate) fn sign(&mut self, msg: &mut Vec<u8>, now: u64) -> Result<(), TooLong> {
        let mut ctx = hmac::Context::with_key(&self.key.key);
        let mut head = Vec::with_capacity(2 + self.prior.len());
        push_prior(&mut head, &self.prior)?;
        ctx.update(&head);
        ctx.update(msg);
        let mut tail = Vec::with_capacity(64);
        if self.first {
            push_variables(&mut tail, self.key, now, FUDGE, 0, &[])?;
        } else {
            push_timers(&mut tail, now, FUDGE);
        }
        ctx.update(&tail);
        let tag = ctx.sign();
        append_record(msg, self.key, now, tag.as_ref(), 0, &[])?;
        self.prior = tag.as_ref().to_vec();
        self.first = false;
        Ok(())
    }
}

/// Signs a request (NOTIFY) and returns its MAC, to verify the answer with; a message the
/// record does not fit is left unsigned and is an error.
pub fn sign_request(key: &TsigKey, msg: &mut Vec<u8>, now: u64) -> Result<Vec<u8>, TooLong> {
    let mut data = msg.clone();
    push_variables(&mut data, key, now, FUDGE, 0, &[])?;
    let tag = hmac::sign(&key.key, &data);
    append_record(msg, key, now, tag.as_ref(), 0, &[])?;
    Ok(tag.as_ref().to_vec())
}

/// Why the answer to our signed request is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// It carries no TSIG record, or a malformed one.
    #[error("the answer is not signed")]
    Unsigned,
    /// It reports a TSIG error (the peer rejected our key, MAC or time).
    #[error("the peer answered with TSIG error {0}")]
    Peer(u16),
    /// Its key differs or its MAC does not verify.
    #[error("the answer's TSIG does not verify")]
    BadSig,
}

/// Verifies the TSIG of the answer to a request we signed with `request_mac`.
pub fn verify_answer(key: &TsigKey, request_mac: &[u8], msg: &[u8]) -> Result<(), AnswerError> {
    let record = find(msg).ok().flatten().ok_or(AnswerError::Unsigned)?;
    if record.error != 0 {
        return Err(AnswerError::Peer(record.error));
    }
    if record.name != key.name || record.algorithm != key.algorithm.wire() {
        return Err(AnswerError::BadSig);
    }
    let mut data = Vec::with_capacity(msg.len() + 128);
    // Our own MAC, and other data read from a 16-bit length: both fit their fields.
    push_prior(&mut data, request_mac).map_err(|_| AnswerError::BadSig)?;
    data.extend(unsigned_part(msg, &record));
    push_variables(&mut data, key, record.time_signed, record.fudge, record.error, record.other)
        .map_err(|_| AnswerError::Unsigned)?;
    hmac::verify(&key.key, &data, record.mac).map_err(|_| AnswerError::BadSig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> TsigKey {
        TsigKey::new("transfer-key", TsigAlgorithm::HmacSha256, secret).unwrap()
    }

    fn query() -> Vec<u8> {
        let mut m = vec![0xAB, 0xCD, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x04auth\x07example\x03org\x00\x00\xfc\x00\x01");
        m
    }

    #[test]
    fn keys_are_equal_by_name_algorithm_and_secret() {
        assert_eq!(key(b"secret"), key(b"secret"));
        assert_ne!(key(b"secret"), key(b"secreT"));
        assert_ne!(key(b"secret"), TsigKey::new("other-key", TsigAlgorithm::HmacSha256, b"secret").unwrap());
        assert_ne!(
            key(b"secret"),
            TsigKey::new("transfer-key", TsigAlgorithm::HmacSha512, b"secret").unwrap()
        );
    }

    #[test]
    fn a_signed_request_verifies_and_its_answers_chain() {
        let k = key(b"secret");
        let mut request = query();
        let mac = sign_request(&k, &mut request, now()).unwrap();
        let verified = verify_request(&request, Some(&k), now()).unwrap().unwrap();
        assert_eq!(verified.mac, mac);
        // Answers: each message verifies with the MAC chain a client keeps.
        let mut signer = ResponseSigner::new(&k, &verified);
        let mut first = query();
        first[2] = 0x84;
        signer.sign(&mut first, now()).unwrap();
        assert_eq!(verify_answer(&k, &mac, &first), Ok(()));
        // A later message: digest over the previous MAC, the message and the timers only.
        let first_mac = find(&first).unwrap().unwrap().mac.to_vec();
        let mut second = query();
        second[2] = 0x84;
        signer.sign(&mut second, now()).unwrap();
        assert_eq!(verify_answer(&k, &mac, &second), Err(AnswerError::BadSig), "not the first form");
        let record = find(&second).unwrap().unwrap();
        let mut data = Vec::new();
        push_prior(&mut data, &first_mac).unwrap();
        data.extend(unsigned_part(&second, &record));
        push_timers(&mut data, record.time_signed, record.fudge);
        assert!(hmac::verify(&k.key, &data, record.mac).is_ok());
    }

    #[test]
    fn failures_are_told_apart() {
        let k = key(b"secret");
        let mut request = query();
        sign_request(&key(b"other"), &mut request, now()).unwrap();
        assert!(matches!(verify_request(&request, Some(&k), now()), Err(Check::Failed(Failure::BadSig, _))));
        let other_name = TsigKey::new("nope", TsigAlgorithm::HmacSha256, b"secret").unwrap();
        let mut request = query();
        sign_request(&other_name, &mut request, now()).unwrap();
        assert!(matches!(verify_request(&request, Some(&k), now()), Err(Check::Failed(Failure::BadKey, _))));
        assert!(matches!(verify_request(&request, None, now()), Err(Check::Failed(Failure::BadKey, _))));
        let mut request = query();
        sign_request(&k, &mut request, now() - 1000).unwrap();
        assert!(matches!(
            verify_request(&request, Some(&k), now()),
            Err(Check::Failed(Failure::BadTime { .. }, _))
        ));
        assert_eq!(verify_request(&query(), Some(&k), now()).unwrap().map(|v| v.mac), None);
        // A flipped bit anywhere in the signed part breaks the MAC.
        let mut request = query();
        sign_request(&k, &mut request, now()).unwrap();
        request[13] ^= 0x20;
        assert!(matches!(verify_request(&request, Some(&k), now()), Err(Check::Failed(Failure::BadSig, _))));
    }

    #[test]
    fn failure_replies_carry_the_error() {
        let k = key(b"secret");
        let mut request = query();
        sign_request(&key(b"wrong"), &mut request, now()).unwrap();
        let Err(Check::Failed(failure, reply_key)) = verify_request(&request, Some(&k), now()) else {
            panic!("must fail")
        };
        let mut out = Vec::new();
        failure_reply(&request, &request[12..34], &failure, &reply_key, Some(&k), now(), &mut out);
        assert_eq!(out[3] & 0x0F, NOTAUTH);
        let record = find(&out).unwrap().unwrap();
        assert_eq!((record.error, record.mac.len()), (error::BADSIG, 0));
    }

    #[test]
    fn a_record_whose_other_data_does_not_fit_is_not_appended() {
        let k = key(b"secret");
        let mut msg = query();
        let before = msg.clone();
        let err = append_record(&mut msg, &k, now(), &[0; 32], 0, &vec![0; 65_536]).unwrap_err();
        assert_eq!(err.len, 65_536);
        assert_eq!(msg, before, "the message is left as it was, ARCOUNT included");
        // The whole record is bounded too: other data that fits its own field but not the
        // record's RDLENGTH along with the rest.
        let err = append_record(&mut msg, &k, now(), &[0; 32], 0, &vec![0; 65_535]).unwrap_err();
        assert!(err.len > 65_535);
        assert_eq!(msg, before);
    }

    #[test]
    fn malformed_records_never_panic() {
        let k = key(b"secret");
        let mut request = query();
        sign_request(&k, &mut request, now()).unwrap();
        for len in 0..request.len() {
            let mut cut = request[..len].to_vec();
            if cut.len() >= 12 {
                cut[11] = 1;
            }
            let _ = verify_request(&cut, Some(&k), now());
        }
    }

    #[test]
    fn compressed_names_are_read_and_loops_stop() {
        let msg = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01A\x00\xc0\x0c\xc0\x11";
        assert_eq!(read_name(msg, 15), Some((b"\x01a\x00".to_vec(), 17)));
        assert_eq!(read_name(msg, 17), None);
    }
}
