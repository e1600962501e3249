//! Static records written as zone-file lines, as acme-dns's `general.records` holds them.
//!
//! Design note: acme-dns lowercases a whole record line before parsing it, which corrupts
//! case-sensitive data (DKIM keys, site verification tokens). Here only owner names are folded
//! to lower case, for lookup; record data is kept exactly as written. Names are taken as
//! absolute whether or not they end in a dot, as acme-dns does, and `@` stands for the apex.
//! A line that does not parse is an error that names the line and what is wrong with it; the
//! caller turns it into a refusal to start.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire::{MAX_NAME_LEN, put_u8_prefixed, rtype, txt_rdata};

/// Why a record line or a name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A label is empty, longer than 63 bytes, or the name longer than 255.
    #[error("invalid domain name {0:?}")]
    BadName(String),
    /// The line ends before the record type.
    #[error("no record type")]
    NoType,
    /// A type this server does not serve as a static record.
    #[error("unsupported record type {0:?} (supported: A, AAAA, CNAME, NS, MX, TXT, CAA, SRV, PTR)")]
    UnsupportedType(String),
    /// The record data does not fit its type.
    #[error("bad {rtype} data: {reason}")]
    BadData {
        /// The record type's mnemonic.
        rtype: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A quoted string is never closed.
    #[error("unterminated quoted string")]
    Unterminated,
    /// The owner is not the zone apex or a name below it.
    #[error("owner {0:?} is outside the zone")]
    OutOfZone(String),
    /// The owner has a `*` label: wildcards are not expanded, so the record would never be
    /// served as written, and a signed zone's denial proofs would contradict it.
    #[error("owner {0:?} is a wildcard; wildcard records are not supported: list each name instead")]
    Wildcard(String),
}

/// One parsed static record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRecord {
    /// Owner in lower-case wire form.
    pub(crate) owner: Vec<u8>,
    /// Record type.
    pub(crate) rtype: u16,
    /// Time to live.
    pub(crate) ttl: u32,
    /// Record data in wire form, case as written.
    pub(crate) rdata: Vec<u8>,
}

/// Converts a dotted name to wire form, keeping its case. A missing final dot is implied.
pub(crate) fn name_to_wire(text: &str) -> Result<Vec<u8>, RecordError> {
    let bad = || RecordError::BadName(text.to_owned());
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    let mut out = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 || !label.is_ascii() {
                return Err(bad());
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err(bad());
    }
    Ok(out)
}

/// Converts a wire-form name back to dotted text with a final dot (for logs and docs).
pub(crate) fn wire_to_text(name: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(name.len());
        out.push_str(&String::from_utf8_lossy(&name[pos + 1..end]));
        out.push('.');
        pos = end;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Whether `name` equals `zone` or lies below it, comparing on label boundaries.
///
/// Both are lower-case wire names.
pub(crate) fn is_at_or_below(name: &[u8], zone: &[u8]) -> bool {
    if name.len() < zone.len() || !name.ends_with(zone) {
        return false;
    }
    let cut = name.len() - zone.len();
    super::wire::label_starts(name).any(|start| start == cut)
}

/// A token of a record line: its unescaped text (quotes removed).
struct Token {
    /// Unescaped text.
    text: Vec<u8>,
}

/// Splits a line into whitespace-separated tokens, honouring double quotes and `\` escapes.
fn tokenize(line: &str) -> Result<Vec<Token>, RecordError> {
    let bytes = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if bytes[i] == b';' {
            break; // comment
        }
        let quoted = bytes[i] == b'"';
        if quoted {
            i += 1;
        }
        let mut text = Vec::new();
        let mut closed = !quoted;
        while i < bytes.len() {
            let c = bytes[i];
            if quoted && c == b'"' {
                closed = true;
                i += 1;
                break;
            }
            if !quoted && c.is_ascii_whitespace() {
                break;
            }
            if c == b'\\' && i + 1 < bytes.len() {
                let digits = bytes.get(i + 1..i + 4);
                if let Some(d) = digits.filter(|d| d.iter().all(u8::is_ascii_digit)) {
                    let value = d.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
                    text.push(u8::try_from(value).unwrap_or(u8::MAX));
                    i += 4;
                } else {
                    text.push(bytes[i + 1]);
                    i += 2;
                }
                continue;
            }
            text.push(c);
            i += 1;
        }
        if !closed {
            return Err(RecordError::Unterminated);
        }
        tokens.push(Token { text });
    }
    Ok(tokens)
}

/// Maps a type mnemonic to its number and canonical name.
fn type_from_mnemonic(text: &str) -> Option<(u16, &'static str)> {
    let known = [
        ("A", rtype::A),
        ("AAAA", rtype::AAAA),
        ("CNAME", rtype::CNAME),
        ("NS", rtype::NS),
        ("MX", rtype::MX),
        ("TXT", rtype::TXT),
        ("CAA", rtype::CAA),
        ("SRV", rtype::SRV),
        ("PTR", rtype::PTR),
    ];
    known.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)).map(|&(name, number)| (number, name))
}

/// Parses one zone-file line into a record of the zone `apex` (lower-case wire form).
pub(crate) fn parse_record(line: &str, apex: &[u8], default_ttl: u32) -> Result<StaticRecord, RecordError> {
    let tokens = tokenize(line)?;
    let mut iter = tokens.iter();
    let owner_token = iter.next().ok_or(RecordError::NoType)?;
    let owner_text = String::from_utf8_lossy(&owner_token.text).into_owned();
    let owner =
        if owner_text == "@" { apex.to_vec() } else { name_to_wire(&owner_text)?.to_ascii_lowercase() };
    if !is_at_or_below(&owner, apex) {
        return Err(RecordError::OutOfZone(owner_text));
    }
    if owner_text.split('.').any(|label| label == "*") {
        return Err(RecordError::Wildcard(owner_text));
    }
    let mut ttl = default_ttl;
    let (number, mnemonic) = loop {
        let token = iter.next().ok_or(RecordError::NoType)?;
        let text = String::from_utf8_lossy(&token.text);
        if let Ok(value) = text.parse::<u32>() {
            ttl = value;
        } else if text.eq_ignore_ascii_case("IN") {
            continue;
        } else if let Some(found) = type_from_mnemonic(&text) {
            break found;
        } else {
            return Err(RecordError::UnsupportedType(text.into_owned()));
        }
    };
    let rest: Vec<&Token> = iter.collect();
    let rdata = rdata(mnemonic, &rest)?;
    Ok(StaticRecord { owner, rtype: number, ttl, rdata })
}

/// Builds the rdata of a `mnemonic` record from its tokens.
fn rdata(mnemonic: &'static str, rest: &[&Token]) -> Result<Vec<u8>, RecordError> {
    let bad = |reason: &str| RecordError::BadData { rtype: mnemonic, reason: reason.to_owned() };
    let text = |i: usize| -> Result<String, RecordError> {
        let token = rest.get(i).ok_or_else(|| bad("missing field"))?;
        Ok(String::from_utf8_lossy(&token.text).into_owned())
    };
    let count = |n: usize| -> Result<(), RecordError> {
        if rest.len() == n { Ok(()) } else { Err(bad(&format!("expected {n} fields, got {}", rest.len()))) }
    };
    let number = |i: usize| -> Result<u16, RecordError> {
        text(i)?.parse::<u16>().map_err(|_| bad("expected a number from 0 to 65535"))
    };
    Ok(match mnemonic {
        "A" => {
            count(1)?;
            let addr: Ipv4Addr = text(0)?.parse().map_err(|_| bad("not an IPv4 address"))?;
            addr.octets().to_vec()
        }
        "AAAA" => {
            count(1)?;
            let addr: Ipv6Addr = text(0)?.parse().map_err(|_| bad("not an IPv6 address"))?;
            addr.octets().to_vec()
        }
        "CNAME" | "NS" | "PTR" => {
            count(1)?;
            name_to_wire(&text(0)?)?
        }
        "MX" => {
            count(2)?;
            let mut out = number(0)?.to_be_bytes().to_vec();
            out.extend(name_to_wire(&text(1)?)?);
            out
        }
        "SRV" => {
            count(4)?;
            let mut out = Vec::new();
            for i in 0..3 {
                out.extend_from_slice(&number(i)?.to_be_bytes());
            }
            out.extend(name_to_wire(&text(3)?)?);
            out
        }
        "TXT" => {
            if rest.is_empty() {
                return Err(bad("no strings"));
            }
            let mut out = Vec::new();
            for token in rest {
                out.extend(txt_rdata(&token.text));
            }
            if out.len() > 65_000 {
                return Err(bad("longer than 65000 bytes"));
            }
            out
        }
        "CAA" => {
            count(3)?;
            let flags: u8 = text(0)?.parse().map_err(|_| bad("flags must be 0-255"))?;
            let tag = &rest[1].text;
            let tag_error = || bad("tag must be 1-255 letters or digits");
            if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                return Err(tag_error());
            }
            let value = &rest[2].text;
            if value.len() > 65_000 {
                return Err(bad("value too long"));
            }
            let mut out = vec![flags];
            put_u8_prefixed(&mut out, tag).map_err(|_| tag_error())?;
            out.extend_from_slice(value);
            out
        }
        other => return Err(RecordError::UnsupportedType(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apex() -> Vec<u8> {
        name_to_wire("auth.example.org").unwrap()
    }

    #[test]
    fn names_round_trip() {
        let wire = name_to_wire("Auth.Example.org.").unwrap();
        assert_eq!(wire, b"\x04Auth\x07Example\x03org\x00");
        assert_eq!(wire_to_text(&wire), "Auth.Example.org.");
        assert_eq!(name_to_wire(".").unwrap(), b"\x00");
        assert!(name_to_wire("a..b").is_err());
        assert!(name_to_wire(&"x".repeat(64)).is_err());
    }

    #[test]
    fn below_checks_label_boundaries() {
        let zone = apex();
        assert!(is_at_or_below(&name_to_wire("x.auth.example.org").unwrap(), &zone));
        assert!(is_at_or_below(&zone, &zone));
        assert!(!is_at_or_below(&name_to_wire("example.org").unwrap(), &zone));
        // "\x04xxxx" followed by the zone bytes, but not on a label boundary.
        let mut tricky = vec![9, b'a', 4];
        tricky.extend_from_slice(b"auth\x07example\x03org");
        tricky.push(0);
        assert!(!is_at_or_below(&tricky, &zone));
    }

    #[test]
    fn parses_common_records_and_keeps_case() {
        let r = parse_record("auth.example.org. A 198.51.100.1", &apex(), 3600).unwrap();
        assert_eq!((r.rtype, r.ttl, r.rdata), (rtype::A, 3600, vec![198, 51, 100, 1]));
        let r = parse_record("Auth.Example.org. 300 IN NS Ns1.Auth.example.org.", &apex(), 3600).unwrap();
        assert_eq!(r.owner, apex());
        assert_eq!(r.ttl, 300);
        assert_eq!(r.rdata, name_to_wire("Ns1.Auth.example.org").unwrap());
        let r = parse_record(r#"@ TXT "Hello World" "a\"b""#, &apex(), 60).unwrap();
        assert_eq!(r.rdata, b"\x0bHello World\x03a\"b");
        let r = parse_record(r#"@ CAA 0 issue "letsencrypt.org""#, &apex(), 60).unwrap();
        assert_eq!(r.rdata, b"\x00\x05issueletsencrypt.org");
    }

    #[test]
    fn refuses_bad_lines() {
        assert!(matches!(parse_record("example.com. A 1.2.3.4", &apex(), 1), Err(RecordError::OutOfZone(_))));
        let wildcard = parse_record("*.auth.example.org. TXT wild", &apex(), 1);
        assert!(matches!(wildcard, Err(RecordError::Wildcard(_))), "{wildcard:?}");
        assert!(matches!(
            parse_record("a.*.auth.example.org. A 1.2.3.4", &apex(), 1),
            Err(RecordError::Wildcard(_))
        ));
        assert!(matches!(parse_record("@ HINFO a b", &apex(), 1), Err(RecordError::UnsupportedType(_))));
        assert!(matches!(parse_record("@ A 1.2.3", &apex(), 1), Err(RecordError::BadData { .. })));
        assert!(matches!(parse_record(r#"@ TXT "open"#, &apex(), 1), Err(RecordError::Unterminated)));
        assert!(matches!(parse_record("@", &apex(), 1), Err(RecordError::NoType)));
    }
}
