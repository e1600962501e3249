//! The `zone_rows` target: store rows (subdomains and their TXT values, as the store may hold
//! them) applied to a zone as versions and snapshots, then transferred.
//!
//! Design note: the input is structured (libFuzzer's bytes read through `arbitrary`), so that
//! a few bytes can stand for a 64 KB value or a 300-octet subdomain (`Text::Repeat`): a plain
//! byte input of libFuzzer's default 4 KB could never hold the rows that break a zone. Each step
//! is what `sync` hands the zone: a store version's edits (`Zone::apply_version`) or a whole
//! snapshot (`Zone::load_version`). After each step the zone is transferred (AXFR, and IXFR
//! from the last few serials) and checked (`xfr.rs`), and what it serves is compared with a
//! model of the rows: every subdomain that is a plain DNS label, with values of a plain size,
//! serves exactly its non-empty values, and no other such name serves TXT.
//!
//! `ACME_DELEGATE_FUZZ_KNOWN` steers clear of known findings (issue 19, items 1 and 2), so
//! that they do not stop every run at once and the fuzzer can look past them until they are
//! fixed: a comma-separated list of `huge` (values of 65,279 bytes at most: no TXT rdata over
//! 65,535 bytes), `values` (below 50,000 bytes: no record too large for a transfer message),
//! `labels` (subdomains made DNS labels: 1 to 63 letters, digits, `-`, `_`), `dups` (the
//! values of one list made distinct, as the store keeps them); `skip` is all.

use std::collections::BTreeMap;

use acme_delegate::dns::zone::Edit;
use arbitrary::Arbitrary;

use crate::xfr::{self, Records};

/// Steps per input at most (each transfers the zone a few times).
const MAX_STEPS: usize = 6;
/// Edits or rows per step at most.
const MAX_EDITS: usize = 12;
/// Values per subdomain at most.
const MAX_VALUES: usize = 4;
/// Bytes of text per input at most (a few 64 KB values).
const MAX_BYTES: usize = 400_000;
/// The signing epoch of the first snapshot (an hour boundary).
const EPOCH: u32 = 1_800_000_000 / 3600 * 3600;

/// Texts a store may hold that a DNS name or TXT record may not take as they are (`None`:
/// a label of 64, 255 or 300 octets).
const ODD: [Option<&str>; 14] = [
    None,
    Some(""),
    Some("a.b.c"),
    Some(".."),
    Some("."),
    Some("\0"),
    Some("a\0b"),
    Some(" "),
    Some("*"),
    Some("_acme-challenge"),
    Some("UPPER-case"),
    Some("é"),
    Some("a\\b"),
    Some("\u{7f}"),
];

/// A subdomain or a value.
#[derive(Arbitrary, Debug)]
pub enum Text {
    /// As given.
    Plain(String),
    /// An acme-dns subdomain (a UUID) or value (43 characters), numbered.
    Usual(u8),
    /// One of the awkward texts of `ODD` (a dictionary: the fuzzer need not find them).
    Odd(u8),
    /// `len` bytes of one character: a long value or label (a byte above 0x7F stands for `é`).
    Repeat {
        /// The character.
        fill: u8,
        /// Bytes.
        len: u16,
    },
}

impl Text {
    /// The text, as a subdomain (`label`) or a value.
    pub(crate) fn make(&self, label: bool, budget: &mut usize) -> String {
        let text = match self {
            Text::Plain(s) => s.clone(),
            Text::Usual(n) if label => format!("{n:08x}-1f2d-4e5a-9b6c-7d8e9f0a1b2c"),
            Text::Usual(n) => crate::harness::txt_value(u32::from(*n)),
            Text::Odd(n) => match ODD[usize::from(*n) % ODD.len()] {
                Some(text) => text.to_owned(),
                None => "a".repeat([64, 255, 300][usize::from(*n) % 3]),
            },
            Text::Repeat { fill, len } => {
                let len = usize::from(*len).min(*budget);
                match char::from_u32(u32::from(*fill)).filter(char::is_ascii) {
                    Some(c) => std::iter::repeat_n(c, len).collect(),
                    None => "é".repeat(len / 2),
                }
            }
        };
        let mut text = tame(text, label);
        while text.len() > *budget {
            text.pop();
        }
        *budget -= text.len();
        text
    }
}

/// Which known findings to keep clear of (see the module note): (labels, largest value,
/// distinct values).
fn known() -> (bool, usize, bool) {
    static KNOWN: std::sync::OnceLock<(bool, usize, bool)> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        let list = std::env::var("ACME_DELEGATE_FUZZ_KNOWN").unwrap_or_default();
        let has = |w: &str| list.split(',').any(|x| x.trim() == w || x.trim() == "skip");
        let largest = if has("values") {
            50_000
        } else if has("huge") {
            65_279
        } else {
            usize::MAX
        };
        (has("labels"), largest, has("dups"))
    })
}

/// A subdomain made a DNS label (1 to 63 letters, digits, `-`, `_`), a value cut to the
/// largest size asked for.
fn tame(text: String, label: bool) -> String {
    let (labels, largest, _) = known();
    if label && labels {
        let mut l: String =
            text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(63).collect();
        if l.is_empty() {
            l.push('x');
        }
        l
    } else if label {
        text
    } else {
        let mut v = text;
        while v.len() > largest {
            v.pop();
        }
        v
    }
}

/// One edit of a version.
#[derive(Arbitrary, Debug)]
pub enum RowEdit {
    /// A subdomain's values.
    Txt(Text, Vec<Text>),
    /// A subdomain removed.
    Remove(Text),
    /// The API's own challenge values.
    Own(Vec<Text>),
}

/// One step.
#[derive(Arbitrary, Debug)]
pub enum Step {
    /// A store version: its edits, at the serial `1 + skip` ahead.
    Version {
        /// Serials skipped.
        skip: u8,
        /// The edits.
        edits: Vec<RowEdit>,
    },
    /// A snapshot of the store: every subdomain with its values, at the serial `skip` ahead
    /// (the same serial when 0, as at a restart), in a new signing epoch or not.
    Load {
        /// Serials skipped.
        skip: u8,
        /// Whether the signing epoch moves.
        new_epoch: bool,
        /// Subdomains and values.
        rows: Vec<(Text, Vec<Text>)>,
        /// The own challenge values.
        own: Vec<Text>,
    },
}

/// An input: a zone, signed or not, and the steps.
#[derive(Arbitrary, Debug)]
pub struct Rows {
    /// DNSSEC on.
    pub signed: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Values as text, at most `MAX_VALUES`.
fn values(texts: &[Text], budget: &mut usize) -> Vec<String> {
    let mut values: Vec<String> = texts.iter().take(MAX_VALUES).map(|t| t.make(false, budget)).collect();
    if known().2 {
        let mut seen = std::collections::HashSet::new();
        values.retain(|v| seen.insert(v.clone()));
    }
    values
}

/// Runs one input; panics when a transfer or the zone's contents are wrong.
pub fn run(input: &Rows) {
    let zone = xfr::zone(input.signed);
    let mut model: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut budget = MAX_BYTES;
    let (records, _) = xfr::check_axfr(&zone);
    let mut seen: Vec<(u32, Records)> = vec![(zone.serial(), records)];
    let (mut version, mut epoch) = (0u64, EPOCH);
    for step in input.steps.iter().take(MAX_STEPS) {
        version += 1;
        let before = zone.serial();
        match step {
            Step::Version { skip, edits } => {
                let mut made = Vec::new();
                for edit in edits.iter().take(MAX_EDITS) {
                    made.push(match edit {
                        RowEdit::Txt(sub, vals) => {
                            let subdomain = sub.make(true, &mut budget);
                            let values = values(vals, &mut budget);
                            model.insert(subdomain.to_ascii_lowercase(), values.clone());
                            Edit::Txt { subdomain, values }
                        }
                        RowEdit::Remove(sub) => {
                            let subdomain = sub.make(true, &mut budget);
                            model.remove(&subdomain.to_ascii_lowercase());
                            Edit::Remove(subdomain)
                        }
                        RowEdit::Own(vals) => Edit::OwnChallenge(values(vals, &mut budget)),
                    });
                }
                zone.apply_version(before.wrapping_add(1 + u32::from(*skip)), version, &made);
            }
            Step::Load { skip, new_epoch, rows, own } => {
                // A store holds each subdomain once: the last row of a name wins.
                let mut snapshot: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
                for (sub, vals) in rows.iter().take(MAX_EDITS) {
                    let subdomain = sub.make(true, &mut budget);
                    let values = values(vals, &mut budget);
                    snapshot.insert(subdomain.to_ascii_lowercase(), (subdomain, values));
                }
                let own = values(own, &mut budget);
                if *new_epoch {
                    epoch += 3600;
                }
                let serial = before.wrapping_add(u32::from(*skip));
                if serial == before {
                    // The same serial with other contents resets the journal: what was served
                    // at it before is no longer a base for differences.
                    seen.retain(|(s, _)| *s != serial);
                }
                let mark = zone.mark();
                let entries = snapshot
                    .values()
                    .map(|(sub, vals)| (sub.as_str(), version, vals.iter().map(String::as_str).collect()));
                zone.load_version(mark, serial, epoch, entries, &own);
                model = snapshot.into_iter().map(|(k, (_, v))| (k, v)).collect();
            }
        }
        let (records, _) = xfr::check_axfr(&zone);
        check_model(&model, &records, zone.apex_wire());
        for (serial, old) in &seen {
            xfr::check_ixfr(&zone, *serial, old, &records);
        }
        seen.retain(|(s, _)| *s != zone.serial());
        seen.push((zone.serial(), records));
        if seen.len() > 3 {
            seen.remove(0);
        }
    }
}

/// Whether `label` is a subdomain the model vouches for: a plain DNS label, not the own
/// challenge's.
fn plain(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && label != "_acme-challenge"
}

/// The TXT values served one label below `apex` (lower-case label → values), from the flat
/// records of a snapshot.
fn served_txt(records: &Records, apex: &[u8]) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    let mut out: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for record in records.keys() {
        let Some(&len) = record.first() else { continue };
        let label_end = 1 + usize::from(len);
        if len == 0 || !record.get(label_end..).is_some_and(|rest| rest.starts_with(apex)) {
            continue;
        }
        let tail = &record[label_end + apex.len()..];
        if tail.len() < 10 || u16::from_be_bytes([tail[0], tail[1]]) != 16 {
            continue;
        }
        // TXT rdata: character-strings, joined.
        let (mut rdata, mut value) = (&tail[10..], Vec::new());
        while let Some((&n, rest)) = rdata.split_first() {
            let n = usize::from(n).min(rest.len());
            value.extend_from_slice(&rest[..n]);
            rdata = &rest[n..];
        }
        out.entry(record[1..label_end].to_ascii_lowercase()).or_default().push(value);
    }
    out
}

/// Compares what the zone serves with the rows it was given (see the module note).
fn check_model(model: &BTreeMap<String, Vec<String>>, records: &Records, apex: &[u8]) {
    let served = served_txt(records, apex);
    for (label, values) in model {
        if !plain(label) || values.iter().any(|v| v.len() > 4000) {
            continue;
        }
        let mut want: Vec<&[u8]> = values.iter().filter(|v| !v.is_empty()).map(|v| v.as_bytes()).collect();
        want.sort();
        want.dedup();
        let mut got: Vec<&[u8]> =
            served.get(label.as_bytes()).map_or(Vec::new(), |v| v.iter().map(Vec::as_slice).collect());
        got.sort();
        got.dedup();
        assert!(want == got, "subdomain {label}: serves {} values, the rows hold {}", got.len(), want.len());
    }
    for label in served.keys() {
        let Ok(label) = std::str::from_utf8(label) else { continue };
        if plain(label) {
            assert!(model.contains_key(label), "TXT served for {label}, which the rows do not hold");
        }
    }
}
