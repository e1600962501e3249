//! The one writer of length-prefixed fields: a record's RDLENGTH and the other 16-bit lengths
//! inside records (TSIG's MAC and other data, an EDNS option), the two bytes that frame a
//! message on TCP, and the 8-bit length of a character-string (TXT).
//!
//! Design note: a length prefix promises how many bytes follow it. Written as `len() as u16`,
//! it keeps that promise only as long as some check elsewhere keeps the content short, and
//! when that check changes the cast wraps silently and the message is malformed. Here the
//! bound is checked where the prefix is written. Content too long for its prefix is a
//! [`TooLong`] error and nothing of it is written, so no caller can send a wrapped length.
//! When the content is built in place (record data whose names are compressed as they are
//! written, a TSIG record, the OPT record's options), [`Open16`] reserves the two bytes and
//! `close` measures what was written after them: it writes the length, or takes the field
//! back out of the buffer and returns the error. A TXT value is cut into strings of at most
//! 255 bytes by [`put_character_strings`], which therefore cannot fail.
//!
//! Each function is a compare and a copy, one compare more than the cast it replaces, so the
//! query path uses them too (the OPT record, `Response::finish_with_options`).

/// Content longer than its length prefix can count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes do not fit a length-prefixed field of at most {max}")]
pub struct TooLong {
    /// Length of the content.
    pub len: usize,
    /// The most the prefix can count.
    pub max: usize,
}

/// The most a 16-bit prefix counts.
const MAX_U16: usize = u16::MAX as usize;
/// The most an 8-bit prefix counts.
const MAX_U8: usize = u8::MAX as usize;

/// Appends `content` after its length as a big-endian u16; writes nothing and errs when it is
/// longer than 65,535 bytes.
#[inline]
pub(crate) fn put_u16_prefixed(out: &mut Vec<u8>, content: &[u8]) -> Result<(), TooLong> {
    let len = u16::try_from(content.len()).map_err(|_| TooLong { len: content.len(), max: MAX_U16 })?;
    out.reserve(2 + content.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(content);
    Ok(())
}

/// Appends `content` after its length as one byte; writes nothing and errs when it is longer
/// than 255 bytes.
#[inline]
pub(crate) fn put_u8_prefixed(out: &mut Vec<u8>, content: &[u8]) -> Result<(), TooLong> {
    let len = u8::try_from(content.len()).map_err(|_| TooLong { len: content.len(), max: MAX_U8 })?;
    out.push(len);
    out.extend_from_slice(content);
    Ok(())
}

/// Appends `value` as character-strings (RFC 1035 section 3.3) of at most 255 bytes each, in
/// order; an empty value is one empty string. TXT record data is exactly this.
pub(crate) fn put_character_strings(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        out.push(0);
    }
    for chunk in value.chunks(MAX_U8) {
        // `chunks` yields at most 255 bytes, so the length always fits its byte.
        out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(chunk);
    }
}

/// Puts the 16-bit length in front of a whole message, as TCP frames it (RFC 1035 section
/// 4.2.2); leaves the message as it is and errs when it is longer than 65,535 bytes.
pub(crate) fn frame(msg: &mut Vec<u8>) -> Result<(), TooLong> {
    let len = u16::try_from(msg.len()).map_err(|_| TooLong { len: msg.len(), max: MAX_U16 })?;
    msg.splice(0..0, len.to_be_bytes());
    Ok(())
}

/// A 16-bit length field whose content is being written after it; [`Open16::close`] writes
/// the length. Dropping it without closing leaves the two bytes reserved as zero, a field
/// that says it is empty while bytes follow: hence `must_use`.
#[must_use = "an open length field must be closed, or it counts nothing of what follows"]
#[derive(Debug)]
pub(crate) struct Open16 {
    /// Where the two length bytes sit in the buffer.
    at: usize,
}

impl Open16 {
    /// Reserves two bytes for the length at the end of `out`.
    #[inline]
    pub(crate) fn open(out: &mut Vec<u8>) -> Self {
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        Self { at }
    }

    /// Writes the length of what was appended to `out` (the buffer it was opened on) since
    /// [`Open16::open`]; returns it. Content longer than 65,535 bytes is taken back out with
    /// the two reserved bytes, leaving `out` as it was before `open`, and is an error.
    #[inline]
    pub(crate) fn close(self, out: &mut Vec<u8>) -> Result<usize, TooLong> {
        let start = self.at + 2;
        debug_assert!(out.len() >= start, "closed on a buffer shorter than where it was opened");
        let len = out.len().saturating_sub(start);
        match u16::try_from(len) {
            Ok(prefix) => {
                if let Some(field) = out.get_mut(self.at..start) {
                    field.copy_from_slice(&prefix.to_be_bytes());
                }
                Ok(len)
            }
            Err(_) => {
                out.truncate(self.at);
                Err(TooLong { len, max: MAX_U16 })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_bit_field_takes_65535_bytes_and_refuses_one_more() {
        let mut out = vec![7];
        put_u16_prefixed(&mut out, &vec![1; MAX_U16]).unwrap();
        assert_eq!((out.len(), &out[..3]), (1 + 2 + MAX_U16, &[7, 0xFF, 0xFF][..]));
        let mut out = vec![7];
        let err = put_u16_prefixed(&mut out, &vec![1; MAX_U16 + 1]).unwrap_err();
        assert_eq!(err, TooLong { len: 65_536, max: 65_535 });
        assert_eq!(out, [7], "nothing written for a refused field");
    }

    #[test]
    fn an_8_bit_field_takes_255_bytes_and_refuses_one_more() {
        let mut out = Vec::new();
        put_u8_prefixed(&mut out, &[b'x'; 255]).unwrap();
        assert_eq!((out.len(), out[0]), (256, 255));
        let err = put_u8_prefixed(&mut out, &[b'x'; 256]).unwrap_err();
        assert_eq!(err, TooLong { len: 256, max: 255 });
        assert_eq!(out.len(), 256, "nothing written for a refused field");
    }

    #[test]
    fn an_open_field_counts_what_follows_or_takes_it_back() {
        let mut out = vec![9, 9];
        let field = Open16::open(&mut out);
        out.extend_from_slice(&[5; 300]);
        assert_eq!(field.close(&mut out), Ok(300));
        assert_eq!(&out[..4], &[9, 9, 1, 44]);
        let field = Open16::open(&mut out);
        out.resize(out.len() + MAX_U16, 1);
        assert_eq!(field.close(&mut out), Ok(MAX_U16));
        let before = out.len();
        let field = Open16::open(&mut out);
        out.resize(out.len() + MAX_U16 + 1, 1);
        assert_eq!(field.close(&mut out), Err(TooLong { len: 65_536, max: 65_535 }));
        assert_eq!(out.len(), before, "the refused field is taken back out");
    }

    #[test]
    fn a_frame_counts_the_whole_message() {
        let mut msg = vec![1; 512];
        frame(&mut msg).unwrap();
        assert_eq!((&msg[..3], msg.len()), (&[2, 0, 1][..], 514));
        let mut big = vec![0; MAX_U16 + 1];
        assert!(frame(&mut big).is_err());
        assert_eq!(big.len(), MAX_U16 + 1);
    }

    #[test]
    fn character_strings_are_cut_at_255_bytes() {
        let mut out = Vec::new();
        put_character_strings(&mut out, &[]);
        assert_eq!(out, [0]);
        for len in [1usize, 254, 255, 256, 510, 511, 1000] {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            put_character_strings(&mut out, &value);
            let (mut rest, mut joined) = (&out[..], Vec::new());
            while let Some((&n, tail)) = rest.split_first() {
                assert!(n > 0 && usize::from(n) <= tail.len(), "a string runs past the data");
                joined.extend_from_slice(&tail[..usize::from(n)]);
                rest = &tail[usize::from(n)..];
            }
            assert_eq!(joined, value);
            assert_eq!(out.len(), len + len.div_ceil(255));
        }
    }
}
