//! The IXFR journal: the zone's recent changes, one entry per serial step, bounded.
//!
//! Design note: records travel as flat byte strings of uncompressed records, each its owner
//! name in wire form followed by the tail the zone keeps pre-rendered (type, class, TTL,
//! rdlength, rdata). That is what the zone can copy fastest while it holds its lock, what the
//! transfer writer reads without allocating per record, and what memory limits can be counted
//! on exactly. The journal keeps at most [`Limits::entries`] entries and [`Limits::bytes`] bytes
//! of them; older ones are dropped first, and a secondary whose serial is older than the oldest
//! entry gets the whole zone instead (RFC 1995 section 4 allows it). Entries are shared
//! (`Arc`), so an IXFR takes what it needs under the lock by counting references, and writes it
//! out after the lock is released. A change also travels as bytes ([`Change::encode`]) to be
//! kept in the database across restarts; reading them back checks every length and record
//! boundary, as they come from outside this process.

use std::collections::VecDeque;
use std::sync::Arc;

/// How much the journal may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries (serial steps) at most.
    pub(crate) entries: usize,
    /// Bytes of records at most.
    pub(crate) bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A day of busy updates (one every 20 s), in less memory than a small zone's AXFR.
        Self { entries: 4096, bytes: 16 << 20 }
    }
}

/// One step from serial `from` to serial `to`.
#[derive(Debug)]
pub struct Change {
    /// The serial before.
    pub from: u32,
    /// The serial after.
    pub to: u32,
    /// The SOA record before (owner and tail).
    pub(crate) old_soa: Vec<u8>,
    /// Records removed, flat.
    pub deleted: Vec<u8>,
    /// The SOA record after.
    pub(crate) new_soa: Vec<u8>,
    /// Records added, flat.
    pub added: Vec<u8>,
}

impl Change {
    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.old_soa.len() + self.deleted.len() + self.new_soa.len() + self.added.len()
    }

    /// The step as bytes for the store: `from` and `to` (u32 each), then the old SOA, the
    /// deleted records, the new SOA and the added records, each behind its length (u32), all
    /// big-endian. `None` for a field longer than a u32 can count (never a step worth keeping).
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(24 + self.size());
        out.extend_from_slice(&self.from.to_be_bytes());
        out.extend_from_slice(&self.to.to_be_bytes());
        for field in [&self.old_soa, &self.deleted, &self.new_soa, &self.added] {
            out.extend_from_slice(&u32::try_from(field.len()).ok()?.to_be_bytes());
            out.extend_from_slice(field);
        }
        Some(out)
    }

    /// A step read back from [`Change::encode`]'s bytes; `None` unless every length fits, no
    /// byte is left over, each field is whole flat records and each SOA field one record: the
    /// bytes come from a database and the transfer writer trusts what the journal holds.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        /// The next `n` bytes of `rest`, moving past them.
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            *rest = tail;
            Some(head)
        }
        /// The next big-endian u32.
        fn number(rest: &mut &[u8]) -> Option<u32> {
            take(rest, 4)?.try_into().ok().map(u32::from_be_bytes)
        }
        let mut rest = bytes;
        let (from, to) = (number(&mut rest)?, number(&mut rest)?);
        let mut field = || -> Option<Vec<u8>> {
            let len = usize::try_from(number(&mut rest)?).ok()?;
            Some(take(&mut rest, len)?.to_vec())
        };
        let change =
            Self { from, to, old_soa: field()?, deleted: field()?, new_soa: field()?, added: field()? };
        let whole = |buf: &[u8]| records(buf).map(|(o, t)| o.len() + t.len()).sum::<usize>() == buf.len();
        let one = |buf: &[u8]| whole(buf) && records(buf).count() == 1;
        let sound = rest.is_empty()
            && one(&change.old_soa)
            && one(&change.new_soa)
            && whole(&change.deleted)
            && whole(&change.added);
        sound.then_some(change)
    }
}

/// The bounded list of recent changes, oldest first.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Entries, oldest first; each `to` is the next one's `from`.
    entries: VecDeque<Arc<Change>>,
    /// Sum of the entries' sizes.
    bytes: usize,
    /// The bounds.
    limits: Limits,
}

impl Journal {
    /// An empty journal.
    pub(crate) fn new(limits: Limits) -> Self {
        Self { entries: VecDeque::new(), bytes: 0, limits }
    }

    /// Appends a change, dropping the oldest entries beyond the limits. A change that does not
    /// continue the last one (the zone was rebuilt in between) starts the journal afresh.
    pub(crate) fn push(&mut self, change: impl Into<Arc<Change>>) {
        let change = change.into();
        if self.entries.back().is_some_and(|last| last.to != change.from) {
            self.clear();
        }
        self.bytes += change.size();
        self.entries.push_back(change);
        while self.entries.len() > self.limits.entries || self.bytes > self.limits.bytes {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.size(),
                None => break,
            }
        }
    }

    /// Puts `older` (oldest first, a chain) before the entries, if it ends where they begin
    /// (or, with no entries, anywhere: the caller checks that it ends at the zone's serial);
    /// otherwise leaves the journal as it is. Returns how many were put; the limits then drop
    /// the oldest as usual.
    pub(crate) fn prepend(&mut self, older: Vec<Arc<Change>>) -> usize {
        let joins = match (older.last(), self.entries.front()) {
            (Some(last), Some(first)) => last.to == first.from,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let chained = older.windows(2).all(|w| w[0].to == w[1].from);
        if !joins || !chained {
            return 0;
        }
        let put = older.len();
        let newer = std::mem::take(&mut self.entries);
        let bytes = std::mem::take(&mut self.bytes);
        self.bytes = bytes + older.iter().map(|c| c.size()).sum::<usize>();
        self.entries = older.into_iter().chain(newer).collect();
        while self.entries.len() > self.limits.entries || self.bytes > self.limits.bytes {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.size(),
                None => break,
            }
        }
        put
    }

    /// The serial the oldest entry starts from.
    pub(crate) fn oldest(&self) -> Option<u32> {
        self.entries.front().map(|c| c.from)
    }

    /// The bounds.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Forgets everything (after a change that was not journaled).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The changes from `serial` to the newest, if the journal reaches back that far.
    pub(crate) fn since(&self, serial: u32) -> Option<Vec<Arc<Change>>> {
        let start = self.entries.iter().position(|c| c.from == serial)?;
        Some(self.entries.range(start..).cloned().collect())
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Length of the flat record at the start of `buf`, or `None` if it is cut short.
fn record_len(buf: &[u8]) -> Option<(usize, usize)> {
    let mut pos = 0;
    loop {
        let len = usize::from(*buf.get(pos)?);
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let rdlen = usize::from(u16::from_be_bytes([*buf.get(pos + 8)?, *buf.get(pos + 9)?]));
    let end = pos + 10 + rdlen;
    (end <= buf.len()).then_some((pos, end))
}

/// Iterates over the flat records of `buf` as (owner, tail) pairs.
pub fn records(mut buf: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        let (owner_end, end) = record_len(buf)?;
        let (record, rest) = buf.split_at(end);
        buf = rest;
        Some((&record[..owner_end], &record[owner_end..]))
    })
}

/// The type of a record tail.
pub(crate) fn tail_type(tail: &[u8]) -> u16 {
    u16::from_be_bytes([tail[0], tail[1]])
}

/// Appends to `deleted` the records of `old` missing from `new`, and to `added` those of `new`
/// missing from `old`. Both hold the records of one owner, a few at most, so the quadratic
/// comparison is cheaper than sorting.
pub(crate) fn diff(old: &[u8], new: &[u8], deleted: &mut Vec<u8>, added: &mut Vec<u8>) {
    let contains = |buf: &[u8], wanted: (&[u8], &[u8])| records(buf).any(|r| r == wanted);
    for record in records(old) {
        if !contains(new, record) {
            deleted.extend_from_slice(record.0);
            deleted.extend_from_slice(record.1);
        }
    }
    for record in records(new) {
        if !contains(old, record) {
            added.extend_from_slice(record.0);
            added.extend_from_slice(record.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat TXT record at `owner` holding `text`.
    fn txt(owner: &[u8], text: &[u8]) -> Vec<u8> {
        let mut r = owner.to_vec();
        r.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 1, 0, text.len() as u8 + 1, text.len() as u8]);
        r.extend_from_slice(text);
        r
    }

    fn change(from: u32, to: u32, size: usize) -> Change {
        Change { from, to, old_soa: vec![], deleted: vec![0; size], new_soa: vec![], added: vec![] }
    }

    #[test]
    fn diff_keeps_what_stayed() {
        let (a, b, c) = (txt(b"\x01x\x00", b"a"), txt(b"\x01x\x00", b"b"), txt(b"\x01x\x00", b"c"));
        let old = [a.clone(), b.clone()].concat();
        let new = [b.clone(), c.clone()].concat();
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        diff(&old, &new, &mut deleted, &mut added);
        assert_eq!((deleted, added), (a, c));
        assert_eq!(records(&old).count(), 2);
    }

    #[test]
    fn encoded_steps_come_back_and_bad_bytes_do_not() {
        let soa = |n: u8| txt(b"\x00", &[n]);
        let step = Change {
            from: 7,
            to: 8,
            old_soa: soa(1),
            deleted: txt(b"\x01x\x00", b"a"),
            new_soa: soa(2),
            added: [txt(b"\x01x\x00", b"b"), txt(b"\x01y\x00", b"c")].concat(),
        };
        let bytes = step.encode().unwrap();
        let back = Change::decode(&bytes).unwrap();
        assert_eq!((back.from, back.to, back.size()), (7, 8, step.size()));
        assert_eq!((back.old_soa, back.deleted, back.added), (step.old_soa, step.deleted, step.added));
        for cut in 0..bytes.len() {
            assert!(Change::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Change::decode(&longer).is_none());
        let mut bad = bytes;
        bad[11] ^= 0x40;
        assert!(Change::decode(&bad).is_none(), "a length too long");
    }

    #[test]
    fn prepended_steps_must_join() {
        let mut journal = Journal::new(Limits { entries: 3, bytes: 100 });
        journal.push(change(5, 6, 1));
        assert_eq!(journal.prepend(vec![Arc::new(change(3, 4, 1))]), 0, "a gap");
        let older = (2..5).map(|s| Arc::new(change(s, s + 1, 1))).collect();
        assert_eq!(journal.prepend(older), 3);
        assert_eq!(journal.len(), 3, "bounded");
        assert!(journal.since(3).is_some() && journal.since(2).is_none());
    }

    #[test]
    fn bounded_and_chained() {
        let mut journal = Journal::new(Limits { entries: 3, bytes: 100 });
        for serial in 1..=5 {
            journal.push(change(serial, serial + 1, 10));
        }
        assert_eq!(journal.len(), 3);
        assert!(journal.since(2).is_none(), "dropped");
        assert_eq!(journal.since(3).unwrap().len(), 3);
        assert_eq!(journal.since(5).unwrap().len(), 1);
        journal.push(change(6, 7, 95));
        assert_eq!((journal.len(), journal.bytes()), (1, 95));
        journal.push(change(100, 101, 1));
        assert!(journal.since(6).is_none(), "a gap starts afresh");
        journal.push(change(101, 102, 200));
        assert!(journal.is_empty(), "an entry larger than the limit is not kept");
    }
}
