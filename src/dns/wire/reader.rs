//! The one place that reads names and records out of a received message: the query parser,
//! TSIG, transfers, the secondaries' SOA answers and the client's stub all walk with these.
//!
//! Design note: every read is bounds-checked through `get`, so no input can make these panic.
//! A compression pointer must point strictly before the name it ends (RFC 1035 only lets a name
//! point back at earlier bytes), which rules out loops for a reader that follows pointers: each
//! jump goes to a smaller offset, so a walk ends after at most one jump per byte, and the
//! 255-byte name limit ends it sooner. Skipping never follows pointers at all (the hot path).

use std::ops::Range;

use super::{MAX_NAME_LEN, ParseError};

/// Reads a big-endian u16 at `pos`, or `None` past the end.
#[inline]
pub fn u16_at(buf: &[u8], pos: usize) -> Option<u16> {
    let b = buf.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `pos`, or `None` past the end.
#[inline]
pub fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Skips a possibly compressed name at `pos` without following pointers; returns the offset
/// just past it. A pointer must point before the name's start, a label must be of the normal
/// type, and the labels before a pointer may not exceed 255 bytes.
#[inline]
pub fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, ParseError> {
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

/// Reads a possibly compressed name at `pos` into uncompressed wire form (case kept); returns
/// it and the offset just past it in the message. Pointers must point backwards (each jump to
/// an earlier offset than the label that holds it), and the name may not exceed 255 bytes.
pub fn read_name(msg: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), ParseError> {
    let mut name = Vec::with_capacity(32);
    let mut end = None;
    loop {
        let len = *msg.get(pos).ok_or(ParseError::NameTruncated)?;
        match len & 0xC0 {
            0xC0 => {
                let ptr = usize::from(u16_at(msg, pos).ok_or(ParseError::NameTruncated)? & 0x3FFF);
                if ptr >= pos {
                    return Err(ParseError::BadPointer);
                }
                end.get_or_insert(pos + 2);
                pos = ptr;
            }
            0x40 | 0x80 => return Err(ParseError::BadLabelType),
            _ => {
                let label = msg.get(pos..pos + 1 + usize::from(len)).ok_or(ParseError::NameTruncated)?;
                name.extend_from_slice(label);
                if name.len() > MAX_NAME_LEN {
                    return Err(ParseError::NameTooLong);
                }
                if len == 0 {
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                pos += label.len();
            }
        }
    }
}

/// Skips a question (name, type, class) at `pos`; returns the offset just past it.
#[inline]
pub fn skip_question(msg: &[u8], pos: usize) -> Result<usize, ParseError> {
    let end = skip_name(msg, pos)? + 4;
    if end > msg.len() {
        return Err(ParseError::RecordTruncated);
    }
    Ok(end)
}

/// One resource record as it sits in a message: where it starts, its fixed fields, and where
/// its data lies (checked to be inside the message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAt {
    /// Offset of the owner name: the record is `msg[start..data.end]`.
    pub start: usize,
    /// Offset just past the owner name (the type field).
    pub fixed: usize,
    /// Record type.
    pub rtype: u16,
    /// Class (for OPT: the UDP payload size).
    pub class: u16,
    /// TTL (for OPT: extended rcode, version and flags).
    pub ttl: u32,
    /// The record data.
    pub data: Range<usize>,
}

/// Reads the record at `pos` (its owner skipped, not followed).
#[inline]
pub fn record_at(msg: &[u8], pos: usize) -> Result<RecordAt, ParseError> {
    let fixed = skip_name(msg, pos)?;
    let field = |at: usize| u16_at(msg, fixed + at).ok_or(ParseError::RecordTruncated);
    let (rtype, class, rdlen) = (field(0)?, field(2)?, field(8)?);
    let ttl = u32_at(msg, fixed + 4).ok_or(ParseError::RecordTruncated)?;
    let data = fixed + 10..fixed + 10 + usize::from(rdlen);
    if data.end > msg.len() {
        return Err(ParseError::RecordTruncated);
    }
    Ok(RecordAt { start: pos, fixed, rtype, class, ttl, data })
}

/// The header's four counts: questions, answers, authority, additional.
pub fn counts(msg: &[u8]) -> Result<[u16; 4], ParseError> {
    let at = |i: usize| u16_at(msg, 4 + 2 * i).ok_or(ParseError::ShortHeader);
    Ok([at(0)?, at(1)?, at(2)?, at(3)?])
}

/// Every record after the question section, in order, checked to end exactly at the end of
/// the message.
pub fn records(msg: &[u8]) -> Result<Vec<RecordAt>, ParseError> {
    let [questions, answers, authority, additional] = counts(msg)?;
    let mut pos = super::HEADER_LEN;
    for _ in 0..questions {
        pos = skip_question(msg, pos)?;
    }
    let total = usize::from(answers) + usize::from(authority) + usize::from(additional);
    let mut out = Vec::with_capacity(total.min(msg.len() / 11));
    for _ in 0..total {
        let record = record_at(msg, pos)?;
        pos = record.data.end;
        out.push(record);
    }
    if pos != msg.len() {
        return Err(ParseError::TrailingBytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_through_backward_pointers_only() {
        // Header, then "a." at 12, then a pointer to it at 15, then a pointer to itself at 17.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x01a\x00\xC0\x0C\xC0\x11");
        assert_eq!(read_name(&msg, 12), Ok((b"\x01a\x00".to_vec(), 15)));
        assert_eq!(read_name(&msg, 15), Ok((b"\x01a\x00".to_vec(), 17)));
        assert_eq!(read_name(&msg, 17), Err(ParseError::BadPointer));
        assert_eq!(skip_name(&msg, 15), Ok(17));
        assert_eq!(skip_name(&msg, 17), Err(ParseError::BadPointer));
        assert_eq!(read_name(&msg, 19), Err(ParseError::NameTruncated));
    }

    #[test]
    fn a_name_over_255_bytes_is_refused() {
        let mut msg = Vec::new();
        for _ in 0..5 {
            msg.push(63);
            msg.extend_from_slice(&[b'x'; 63]);
        }
        msg.push(0);
        assert_eq!(read_name(&msg, 0), Err(ParseError::NameTooLong));
        assert_eq!(skip_name(&msg, 0), Err(ParseError::NameTooLong));
    }

    #[test]
    fn records_walk_to_the_end_or_fail() {
        let mut msg = vec![0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x01a\x00\x00\x10\x00\x01");
        msg.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 2, 1, b'v']);
        let walked = records(&msg).unwrap();
        assert_eq!(walked.len(), 1);
        assert_eq!((walked[0].rtype, walked[0].ttl, &msg[walked[0].data.clone()]), (16, 60, &b"\x01v"[..]));
        assert_eq!(records(&msg[..msg.len() - 1]), Err(ParseError::RecordTruncated));
        let mut longer = msg.clone();
        longer.push(0);
        assert_eq!(records(&longer), Err(ParseError::TrailingBytes));
        // Every prefix fails cleanly, none panics.
        for cut in 0..msg.len() {
            assert!(records(&msg[..cut]).is_err());
        }
    }
}
