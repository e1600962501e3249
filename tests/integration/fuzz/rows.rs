//! The `zone_rows` target: store rows (subdomains and their TXT values, as the store may hold
//! them) applied to a zone as versions and snapshots, then transferred.
//!
//! Design note: the input is read as a list of choices (`Reader`), so that a few bytes can
//! stand for a 64 KB value, a 300-octet subdomain (`Text::Repeat`) or a hundred values: raw
//! bytes of libFuzzer's default 4 KB could never hold the rows that break a zone. The same
//! decoder serves both fuzzers: this file is part of the stable in-repository fuzzer and is
//! compiled into the cargo-fuzz crate (fuzz/src/lib.rs) as it is. Each step is what `zone_sync`
//! hands the zone: a store version's edits, or a whole snapshot (`Write::load`), each one
//! write committed at its serial (`Zone::begin`, `Write::commit`). After each step the zone is transferred (AXFR, and IXFR from the
//! last few serials) and checked (`xfr.rs`), and what it serves is compared with a model of
//! the rows under the zone's rule (`dns::zone::admit`): a name it cannot serve serves nothing,
//! a value it cannot serve is left out, a value given twice is served once, at most the newest
//! `MAX_VALUES` are served, and no other name one label below the apex serves TXT.

use std::collections::{BTreeMap, HashSet};

use acme_delegate::dns::zone::{Edit, MAX_VALUES, Zone, check_persist_value, check_txt_value};

use super::xfr::{self, Records};

/// Steps per input at most (each transfers the zone a few times).
const MAX_STEPS: usize = 6;
/// Edits or rows per step at most.
const MAX_EDITS: usize = 12;
/// Bytes of text per input at most (a few 64 KB values).
const MAX_BYTES: usize = 400_000;
/// The signing epoch of the first snapshot (an hour boundary).
const EPOCH: u32 = 1_800_000_000 / 3600 * 3600;
/// What a persist name's label starts with (src/dns/zone/dns_persist.rs).
const PERSIST: &str = "persist-";

/// Texts a store may hold that a DNS name or TXT record may not take as they are, and a few
/// that it may (`None`: a label of 55, 56, 63, 64, 255 or 300 octets).
const ODD: [Option<&str>; 22] = [
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
    Some("-a"),
    Some("ns1"),
    Some("NS1"),
    Some("persist-0b7e3c8a-1f2d-4e5a-9b6c-7d8e9f0a1b2c"),
    Some("Persist-persist-a"),
    Some("ca.example; accounturi=https://ca.example/acct/1"),
    Some("ca.example; accounturi=https://ca.example/acct/2; policy=wildcard"),
    Some("A-_zaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="),
];

/// Reads an input's bytes as a sequence of choices; past the end every read gives zeros, so
/// every input, however short, decodes (and lists end).
pub struct Reader<'a> {
    /// What is left to read.
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// A choice of two.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// A list length: at most `max`, and 0 once the input is used up.
    pub fn count(&mut self, max: usize) -> usize {
        if self.data.is_empty() { 0 } else { usize::from(self.u8()) % (max + 1) }
    }
}

/// A subdomain or a value.
#[derive(Debug)]
pub enum Text {
    /// As given.
    Plain(String),
    /// A usual text of its column, numbered (an acme-dns subdomain is a UUID, a value 43
    /// characters of base64url; the caller says which).
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
    /// Reads a text.
    pub fn read(r: &mut Reader) -> Self {
        match r.u8() % 4 {
            0 => {
                let len = usize::from(r.u8());
                Text::Plain(String::from_utf8_lossy(r.bytes(len)).into_owned())
            }
            1 => Text::Usual(r.u8()),
            2 => Text::Odd(r.u8()),
            _ => Text::Repeat { fill: r.u8(), len: r.u16() },
        }
    }

    /// The text; `usual` makes the text of `Text::Usual`. It takes at most `budget` bytes.
    pub fn make(&self, usual: fn(u8) -> String, budget: &mut usize) -> String {
        let mut text = match self {
            Text::Plain(s) => s.clone(),
            Text::Usual(n) => usual(*n),
            Text::Odd(n) => match ODD[usize::from(*n) % ODD.len()] {
                Some(text) => text.to_owned(),
                None => "a".repeat([55, 56, 63, 64, 255, 300][usize::from(*n) / ODD.len() % 6]),
            },
            Text::Repeat { fill, len } => {
                let len = usize::from(*len).min(*budget);
                match char::from_u32(u32::from(*fill)).filter(char::is_ascii) {
                    Some(c) => std::iter::repeat_n(c, len).collect(),
                    None => "é".repeat(len / 2),
                }
            }
        };
        while text.len() > *budget {
            text.pop();
        }
        *budget -= text.len();
        text
    }
}

/// A usual subdomain: a UUID, numbered.
pub fn usual_label(n: u8) -> String {
    format!("{n:08x}-1f2d-4e5a-9b6c-7d8e9f0a1b2c")
}

/// A usual value: 43 characters of base64url, numbered.
pub fn usual_value(n: u8) -> String {
    crate::harness::txt_value(u32::from(n))
}

/// Reads a list of values: mostly a few, sometimes more than a name may serve.
fn read_values(r: &mut Reader) -> Vec<Text> {
    let b = r.u8();
    let n = if b >= 0xF0 { MAX_VALUES - 4 + usize::from(b & 0x0F) } else { usize::from(b % 5) };
    (0..n).map(|_| Text::read(r)).collect()
}

/// One edit of a version.
#[derive(Debug)]
pub enum RowEdit {
    /// A subdomain's values.
    Txt(Text, Vec<Text>),
    /// A subdomain removed.
    Remove(Text),
    /// The API's own challenge values.
    Own(Vec<Text>),
}

/// One step.
#[derive(Debug)]
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
#[derive(Debug)]
pub struct Rows {
    /// DNSSEC on.
    pub signed: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Rows {
    /// Reads an input.
    pub fn read(data: &[u8]) -> Self {
        let r = &mut Reader::new(data);
        let signed = r.bool();
        let steps = (0..r.count(MAX_STEPS))
            .map(|_| {
                if r.bool() {
                    let skip = r.u8();
                    let edits = (0..r.count(MAX_EDITS))
                        .map(|_| match r.u8() % 3 {
                            0 => RowEdit::Txt(Text::read(r), read_values(r)),
                            1 => RowEdit::Remove(Text::read(r)),
                            _ => RowEdit::Own(read_values(r)),
                        })
                        .collect();
                    Step::Version { skip, edits }
                } else {
                    let (skip, new_epoch) = (r.u8(), r.bool());
                    let rows = (0..r.count(MAX_EDITS)).map(|_| (Text::read(r), read_values(r))).collect();
                    Step::Load { skip, new_epoch, rows, own: read_values(r) }
                }
            })
            .collect();
        Self { signed, steps }
    }
}

/// Values as text.
fn values(texts: &[Text], budget: &mut usize) -> Vec<String> {
    texts.iter().map(|t| t.make(usual_value, budget)).collect()
}

/// The model's view of the zone: registered names (lower-case label → values as given) and
/// the own challenge values.
#[derive(Default)]
struct Model {
    /// Names and their values.
    names: BTreeMap<String, Vec<String>>,
    /// The own challenge.
    own: Vec<String>,
}

/// Runs one input; panics when a transfer or the zone's contents are wrong. Returns a feature
/// number of what it led to (for the stable fuzzer).
pub fn run(input: &Rows) -> u64 {
    let zone = xfr::zone(input.signed);
    let mut model = Model::default();
    let mut budget = MAX_BYTES;
    let (records, _) = xfr::check_axfr(&zone);
    let mut seen: Vec<(u32, Records)> = vec![(zone.serial(), records)];
    let mut epoch = EPOCH;
    let mut feature = u64::from(input.signed);
    for step in input.steps.iter().take(MAX_STEPS) {
        let before = zone.serial();
        match step {
            Step::Version { skip, edits } => {
                let mut made = Vec::new();
                for edit in edits.iter().take(MAX_EDITS) {
                    made.push(match edit {
                        RowEdit::Txt(sub, vals) => {
                            let subdomain = sub.make(usual_label, &mut budget);
                            let values = values(vals, &mut budget);
                            model.names.insert(subdomain.to_ascii_lowercase(), values.clone());
                            Edit::Txt { subdomain, values }
                        }
                        RowEdit::Remove(sub) => {
                            let subdomain = sub.make(usual_label, &mut budget);
                            model.names.remove(&subdomain.to_ascii_lowercase());
                            Edit::Remove(subdomain)
                        }
                        RowEdit::Own(vals) => {
                            model.own = values(vals, &mut budget);
                            Edit::OwnChallenge(model.own.clone())
                        }
                    });
                }
                let mut write = zone.begin();
                for edit in &made {
                    write.edit(edit);
                }
                write.commit(before.wrapping_add(1 + u32::from(*skip)));
            }
            Step::Load { skip, new_epoch, rows, own } => {
                // A store holds each subdomain once: the last row of a name wins.
                let mut snapshot: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
                for (sub, vals) in rows.iter().take(MAX_EDITS) {
                    let subdomain = sub.make(usual_label, &mut budget);
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
                let names = snapshot.values().map(|(sub, vals)| (sub.as_str(), vals.clone()));
                let mut write = zone.begin();
                write.epoch(epoch).load(names).own_challenge(&own);
                write.commit(serial);
                model.names = snapshot.into_iter().map(|(k, (_, v))| (k, v)).collect();
                model.own = own;
            }
        }
        let (records, received) = xfr::check_axfr(&zone);
        let served = check_model(&zone, &model, &records);
        for (serial, old) in &seen {
            xfr::check_ixfr(&zone, *serial, old, &records);
        }
        seen.retain(|(s, _)| *s != zone.serial());
        seen.push((zone.serial(), records));
        if seen.len() > 3 {
            seen.remove(0);
        }
        feature = feature.wrapping_mul(31)
            ^ (served.min(8) as u64)
            ^ (received.messages.min(4) as u64) << 4
            ^ u64::from(matches!(step, Step::Load { .. })) << 7;
    }
    feature ^ u64::from(zone.refused_rows() > 0) << 40
}

/// What the zone's rule lets `label` serve of `values` (given oldest first): `None` when the
/// name cannot be in the zone. Each value passes the check of its kind (a dns-01 value, or
/// an issue-value at a persist name), is served once (a repeated value counts at its newest
/// place), and only the newest `MAX_VALUES` are served.
fn admitted(zone: &Zone, label: &str, values: &[String]) -> Option<Vec<String>> {
    let (subdomain, persist) = match label.get(..PERSIST.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PERSIST) => (&label[PERSIST.len()..], true),
        _ => (label, false),
    };
    zone.check_subdomain(subdomain).ok()?;
    let mut seen = HashSet::new();
    let mut newest_first: Vec<String> = values
        .iter()
        .rev()
        .filter(|v| if persist { check_persist_value(v).is_ok() } else { check_txt_value(v).is_ok() })
        .filter(|v| seen.insert(v.as_str()))
        .cloned()
        .collect();
    newest_first.truncate(MAX_VALUES);
    Some(newest_first)
}

/// The TXT values served one label below `apex` (lower-case label → values), from the flat
/// records of a snapshot.
fn served_txt(records: &Records, apex: &[u8]) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    let mut out: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for (record, &copies) in records {
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
        let values = out.entry(record[1..label_end].to_ascii_lowercase()).or_default();
        values.extend(std::iter::repeat_n(value, copies));
    }
    out
}

/// Sorted, as bytes.
fn sorted(values: &[String]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
    out.sort();
    out
}

/// Compares what the zone serves with the rows it was given (see the module note); returns
/// how many names serve TXT.
fn check_model(zone: &Zone, model: &Model, records: &Records) -> usize {
    let served = served_txt(records, zone.apex_wire());
    for (label, values) in &model.names {
        if label == "_acme-challenge" {
            // Not a subdomain the rule lets in: that name serves the own challenge (below).
            assert!(admitted(zone, label, values).is_none(), "a subdomain named _acme-challenge");
            continue;
        }
        let want = admitted(zone, label, values).unwrap_or_default();
        let mut got: Vec<&[u8]> =
            served.get(label.as_bytes()).map_or(Vec::new(), |v| v.iter().map(Vec::as_slice).collect());
        got.sort();
        assert!(
            sorted(&want) == got,
            "{label:?}: serves {} TXT records, the rows give {} under the zone's rule",
            got.len(),
            want.len()
        );
    }
    // The own challenge: each dns-01 value once.
    let mut own: Vec<String> = model.own.iter().filter(|v| check_txt_value(v).is_ok()).cloned().collect();
    own.sort();
    own.dedup();
    let mut got: Vec<&[u8]> = served
        .get(b"_acme-challenge".as_slice())
        .map_or(Vec::new(), |v| v.iter().map(Vec::as_slice).collect());
    got.sort();
    assert!(
        sorted(&own) == got,
        "the own challenge serves {} TXT records for {} values",
        got.len(),
        own.len()
    );
    for label in served.keys() {
        let text = std::str::from_utf8(label).unwrap_or_else(|_| panic!("TXT served at a label of no text"));
        assert!(
            text == "_acme-challenge" || model.names.contains_key(text),
            "TXT served at {text:?}, which the rows do not hold"
        );
    }
    served.len()
}
