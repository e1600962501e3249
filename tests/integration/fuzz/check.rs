//! The invariants every DNS reply must keep, checked by a strict walker of our own and by an
//! independent parser (hickory-proto).
//!
//! Design note: "it did not panic" says little about a DNS server; a reply that a resolver
//! cannot parse is as bad as silence. So every reply the fuzz targets produce is walked here:
//! the header counts match the records actually present (and nothing trails them), every name
//! is well formed, every compression pointer points strictly backwards (to an earlier byte, so
//! names can never loop), names inside record data that may be compressed (NS, CNAME, SOA, MX,
//! PTR) obey the same rule and end inside their record, and the size is within the limit the
//! query allowed. Then hickory-proto must parse it and agree on the section counts.

use hickory_proto::op::Message as Oracle;

/// Reads the 16-bit value at `at`.
fn u16_at(msg: &[u8], at: usize) -> Result<u16, String> {
    msg.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| format!("short at {at}"))
}

/// Walks the name at `pos`; returns where it ends (after its last label or first pointer).
/// Every pointer must aim strictly before the pointer itself, and the name must fit 255 bytes.
fn walk_name(msg: &[u8], pos: usize) -> Result<usize, String> {
    let (mut at, mut end, mut total, mut hops) = (pos, None, 1usize, 0);
    loop {
        let len = *msg.get(at).ok_or_else(|| format!("name at {pos} runs past the end"))? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(end.unwrap_or(at + 1)),
            0x00 => {
                total += len + 1;
                if total > 255 {
                    return Err(format!("name at {pos} longer than 255"));
                }
                at += 1 + len;
            }
            0xC0 => {
                let target = (u16_at(msg, at)? & 0x3FFF) as usize;
                if target >= at {
                    return Err(format!("compression pointer at {at} goes forward to {target}"));
                }
                end.get_or_insert(at + 2);
                hops += 1;
                if hops > 128 {
                    return Err(format!("name at {pos}: too many pointers"));
                }
                at = target;
            }
            _ => return Err(format!("label type {len:#x} at {at}")),
        }
    }
}

/// Checks the names in the data of a record of `rtype` found at `start..end`.
fn walk_rdata(msg: &[u8], rtype: u16, start: usize, end: usize) -> Result<(), String> {
    let names_end = match rtype {
        // NS, CNAME, PTR: one name.
        2 | 5 | 12 => walk_name(msg, start)?,
        // SOA: two names, then five 32-bit numbers.
        6 => walk_name(msg, walk_name(msg, start)?)? + 20,
        // MX: a preference, then a name.
        15 => walk_name(msg, start + 2)?,
        _ => return Ok(()),
    };
    if names_end != end {
        return Err(format!("type {rtype} record data at {start} ends at {names_end}, not {end}"));
    }
    Ok(())
}

/// The section counts (question, answer, authority, additional) after a strict walk.
pub fn walk(msg: &[u8]) -> Result<[u16; 4], String> {
    if msg.len() < 12 {
        return Err(format!("{} bytes: no header", msg.len()));
    }
    let counts = [u16_at(msg, 4)?, u16_at(msg, 6)?, u16_at(msg, 8)?, u16_at(msg, 10)?];
    let mut pos = 12;
    for _ in 0..counts[0] {
        pos = walk_name(msg, pos)? + 4;
    }
    let records: usize = counts[1..].iter().map(|&c| usize::from(c)).sum();
    for _ in 0..records {
        pos = walk_name(msg, pos)?;
        let rtype = u16_at(msg, pos)?;
        let rdlen = usize::from(u16_at(msg, pos + 8)?);
        let start = pos + 10;
        pos = start + rdlen;
        if pos > msg.len() {
            return Err(format!("record data at {start} runs past the end"));
        }
        walk_rdata(msg, rtype, start, pos)?;
    }
    if pos != msg.len() {
        return Err(format!("{} bytes after the last counted record", msg.len() - pos));
    }
    Ok(counts)
}

/// Checks one reply to `query`, of at most `limit` bytes; panics with the reason.
pub fn reply(query: &[u8], reply: &[u8], limit: usize) {
    assert!(reply.len() <= limit, "reply of {} bytes over the limit {limit}", reply.len());
    let counts = walk(reply).unwrap_or_else(|e| panic!("malformed reply: {e}"));
    if query.len() >= 2 {
        assert_eq!(reply[..2], query[..2], "the reply's ID is not the query's");
    }
    assert!(reply[2] & 0x80 != 0, "QR not set");
    let oracle =
        Oracle::from_vec(reply).unwrap_or_else(|e| panic!("hickory-proto cannot parse the reply: {e}"));
    assert_eq!(oracle.answers.len(), usize::from(counts[1]), "answer count (hickory)");
    assert_eq!(oracle.authorities.len(), usize::from(counts[2]), "authority count (hickory)");
}

#[test]
fn the_walker_refuses_forward_pointers_and_trailing_bytes() {
    // A header with one question whose name is a pointer to itself.
    let mut msg = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1];
    assert!(walk(&msg).unwrap_err().contains("goes forward"));
    msg[12..14].copy_from_slice(&[1, b'a']);
    msg.insert(14, 0);
    assert_eq!(walk(&msg), Ok([1, 0, 0, 0]));
    msg.push(0);
    assert!(walk(&msg).unwrap_err().contains("after the last"));
}
