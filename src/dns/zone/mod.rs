//! The in-memory zone and the answer algorithm, signed or not.
//!
//! Design note: the zone is one [`State`] behind an `RwLock`. Queries take the read lock only
//! while copying pre-rendered records into the response: every record is kept in wire form
//! (type, class, TTL, rdata) and the owner of an answer is a compression pointer back to the
//! question, so answering is a hash lookup and a few copies.
//!
//! The zone has one write path, a transaction: [`Zone::begin`] gives a [`Write`] that collects
//! changes (a name's TXT values, a removal, the own challenge, a signing epoch, or every name at
//! once for a load), and [`Write::commit`] makes them one serial step at the serial the caller
//! gives: rendered and signed with no lock held, put in place with the NSEC3 links and the SOA
//! under one write lock, and returned as a difference ([`Commit`]), which is also what the IXFR
//! journal keeps and what the serial watch announces. Writes happen one at a time (a write
//! holds the writer's turn until it commits), so an update costs the same with ten accounts as
//! with a million, and no reader sees part of one.
//!
//! With DNSSEC on, each RRset carries its RRSIGs, made when the set changes, with a validity
//! window from the signing epoch (not the clock), and made anew for every set when the owner of
//! the data moves the epoch ([`Write::epoch`]). Denial of existence uses an NSEC3 chain with
//! RFC 9276 parameters (SHA-1, no salt, no extra iterations) over every name of the zone, kept
//! signed incrementally: a new name costs two NSEC3 signatures (its own and its predecessor's),
//! so answering NXDOMAIN or NODATA costs a lookup and never a signature, whatever a client asks.
//!
//! Behaviour that differs from acme-dns on purpose (DESIGN.md section 3): exact names only,
//! names outside the zone are REFUSED, a registered name with no value answers NODATA with the
//! SOA (never NXDOMAIN), static data keeps its case, and the SOA serial moves with the zone.
//!
//! A registered name with no value (and a persist name whose records were all deleted) holds
//! one record of the private-use type [`rtype::MARKER`](super::wire::rtype::MARKER) with one
//! octet of data (zero; see `update`), in place of its TXT set, with the TXT TTL and signed
//! like any set. A name without records cannot be written in a zone file
//! or carried by a transfer: NSD, Knot and BIND, as secondaries, made it NXDOMAIN or SERVFAIL
//! where we said NODATA, and with DNSSEC their proofs failed. The marker makes the name data
//! that every copy of the zone holds: its NSEC3 bitmap is the marker and RRSIG, TXT and A there
//! are NODATA everywhere, and a first value changes that name's bitmap, never the chain. The
//! marker goes when the first value comes (one set per name, nothing more to keep or sign for a
//! name with values; the price is the marker and its signature in the IXFR of that change).
//! This module knows nothing of the store, the API or who may transfer the zone: the owner of
//! the data (`zone_sync`) writes through [`Zone::begin`], one write per store version (a rollover
//! step's keys too, [`Write::keys`]), and every
//! stored row passes the rule of `admit` on its way in.
//!
//! Files, by job: this one holds the data types and the small public queries; `admit` is the
//! one rule for what a registered name and its values may be (bad stored rows are left out,
//! logged and counted, never served or panicked on); `build` makes a zone from its settings;
//! `update` is the write transaction; `diff` finds the places a commit can change and the
//! difference it made; `nsec3` keeps the denial chain; `sign` makes signatures and signs every
//! set anew for an epoch; `answer` serves queries; `persist` names where dns-persist-01
//! records are served; `transfer` keeps the journal of the commits' differences and walks the
//! zone for AXFR; `version` is the vocabulary of a store version's changes ([`Edit`]); `memo`
//! reuses signatures the owner kept from an earlier run instead of signing again, and gathers
//! the signatures a commit makes into its result for the owner to keep.

mod admit;
mod answer;
mod build;
mod diff;
mod dns_persist;
mod memo;
mod nsec3;
mod sign;
mod transfer;
mod update;
mod version;

pub use admit::{
    MAX_SUBDOMAIN, MAX_VALUES, Refusal, TXT_LEN, check_persist_value, check_subdomain, check_txt_value,
    quote_short,
};
pub use dns_persist::persist_label;
pub use memo::NewSignature;
pub use transfer::{NameList, Stale, Steps, WALK_CHUNK, Walk};
pub use update::{Commit, Write};
pub use version::Edit;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use self::answer::Negative;
use self::nsec3::{Key, Nsec3Entry};
use super::dnssec::{KeySet, SigningKey};
use super::records::{self, RecordError, StaticRecord, is_at_or_below};
use super::wire::RrSet;

/// What the zone is built from; `config` fills it from `[general]` and `[dns]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSettings {
    /// Zone apex, e.g. `auth.example.org`.
    pub apex: String,
    /// SOA MNAME: the primary name server.
    pub nsname: String,
    /// SOA RNAME: the responsible mailbox in name form.
    pub nsadmin: String,
    /// Static records, parsed (by `config`, which names a bad line by its key).
    pub records: Vec<StaticRecord>,
    /// TTL of the SOA record itself.
    pub soa_ttl: u32,
    /// Negative-caching TTL: SOA MINIMUM, and the TTL of the SOA in negative answers.
    pub negative_ttl: u32,
    /// TTL of the dynamic TXT records.
    pub txt_ttl: u32,
    /// TTL of the dns-persist-01 records (see `persist`).
    pub persist_ttl: u32,
    /// TTL for static records written without one.
    pub default_ttl: u32,
    /// The UDP payload size we advertise and accept at most.
    pub udp_size: u16,
    /// Our name server identifier (RFC 5001), sent to queries that ask for it; at most 255
    /// bytes.
    pub nsid: Option<Vec<u8>>,
}

/// How to sign: the first key and the signature lifetimes.
#[derive(Debug)]
pub struct Signer {
    /// The combined signing key the zone is built with, alone in every role (the owner of the
    /// keys installs the set in force with [`Write::keys`] before serving).
    pub key: SigningKey,
    /// Seconds a new signature is valid.
    pub validity: u32,
    /// Signatures with less than this many seconds left are renewed.
    pub refresh: u32,
}

/// Why the zone could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The apex or an SOA name is not a valid domain name.
    #[error("{field}: {source}")]
    Name {
        /// Which setting.
        field: &'static str,
        /// The underlying problem.
        source: RecordError,
    },
    /// The records contradict each other.
    #[error("{0}")]
    Conflict(String),
}

/// An RRset with its signatures.
#[derive(Clone, Debug, Default)]
struct Set {
    /// The records.
    records: RrSet,
    /// RRSIG records over them (empty when unsigned).
    sigs: RrSet,
}

/// A name in the static part and its RRsets.
#[derive(Clone, Debug, Default)]
struct Node {
    /// RRsets in the order first written.
    sets: Vec<Set>,
}

impl Node {
    /// The set of `rtype`, if any.
    fn get(&self, rtype: u16) -> Option<&Set> {
        self.sets.iter().find(|s| s.records.type_and_ttl().map(|(t, _)| t) == Some(rtype))
    }

    /// The types present.
    fn types(&self) -> Vec<u16> {
        self.sets.iter().filter_map(|s| s.records.type_and_ttl().map(|(t, _)| t)).collect()
    }
}

/// A delegation to another server below our apex: NS records and in-zone glue.
#[derive(Debug)]
struct Cut {
    /// Lower-case wire name of the delegation point.
    name: Vec<u8>,
    /// The NS RRset (never signed: the child is authoritative for it).
    ns: RrSet,
    /// Glue: owner name and its A/AAAA RRsets.
    glue: Vec<(Vec<u8>, RrSet)>,
}

/// The TXT values of one registered name (a subdomain or a persist name).
#[derive(Clone, Debug, Default)]
struct TxtEntry {
    /// TXT records, oldest value first, with signatures. The values are not kept besides: the
    /// records carry them (a million names would pay ~170 bytes each for a second copy).
    set: Set,
}

impl TxtEntry {
    /// Whether the records served are those of `values`, in order (an empty value is not
    /// served, and no value is the marker, as [`Zone::render_txt`] makes them).
    fn holds(&self, values: &[impl AsRef<str>]) -> bool {
        if self.set.records.type_and_ttl().is_some_and(|(t, _)| t == super::wire::rtype::MARKER) {
            return values.iter().all(|v| v.as_ref().is_empty());
        }
        let mut rdatas = self.set.records.rdatas();
        values
            .iter()
            .map(AsRef::as_ref)
            .filter(|v| !v.is_empty())
            .all(|v| rdatas.next().is_some_and(|rdata| super::wire::txt_rdata_is(rdata, v.as_bytes())))
            && rdatas.next().is_none()
    }
}

/// Everything that changes while serving.
#[derive(Clone, Debug)]
struct State {
    /// Current SOA serial.
    serial: u32,
    /// Static names (apex and empty non-terminals included); the apex holds the SOA set.
    nodes: HashMap<Vec<u8>, Node>,
    /// The SOA record with the negative TTL, for negative answers (its signatures at that TTL:
    /// `negative.soa_sigs`).
    soa_negative: RrSet,
    /// Registered subdomains (and persist names, see `persist`) by lower-case label.
    dynamic: HashMap<Vec<u8>, TxtEntry>,
    /// How many of `dynamic` are persist names (kept by `dns_persist::{insert,remove}_dynamic`).
    persist_names: usize,
    /// The NSEC3 chain by hash (empty when unsigned).
    nsec3: BTreeMap<Key, Nsec3Entry>,
    /// The values served for the API's own ACME challenge (see [`Write::own_challenge`]).
    own_challenge: Vec<String>,
    /// What most signed negative answers send whatever the name, ready (see
    /// [`Zone::refresh_negative`]).
    negative: Negative,
}

/// The authoritative zone, shared by all DNS workers and the API.
#[derive(Debug)]
pub struct Zone {
    /// Apex in lower-case wire form.
    apex: Vec<u8>,
    /// SOA MNAME and RNAME, lower-case wire form.
    soa_names: Vec<u8>,
    /// TTL of the SOA record.
    soa_ttl: u32,
    /// SOA MINIMUM and negative TTL.
    negative_ttl: u32,
    /// TTL of dynamic TXT records.
    txt_ttl: u32,
    /// TTL of the dns-persist-01 records.
    persist_ttl: u32,
    /// Largest UDP payload we send.
    udp_size: u16,
    /// The NSID option (code, length, identifier) ready to append, or empty when not set.
    nsid_option: Vec<u8>,
    /// Delegation points below the apex.
    cuts: Vec<Cut>,
    /// Signing key and policy, when DNSSEC is on.
    signer: Option<Signer>,
    /// The keys in force and what each does (one key doing everything but during a rollover);
    /// replaced whole by a commit with [`Write::keys`], read by every signing (see `sign`).
    keys: RwLock<std::sync::Arc<KeySet>>,
    /// NSEC3 hashes of the apex and of `*.<apex>`, the closest encloser and wildcard of almost
    /// every NXDOMAIN, computed once instead of per query.
    apex_hashes: (Key, Key),
    /// The changing part.
    state: RwLock<State>,
    /// The writer's turn: a [`Write`] holds it from [`Zone::begin`] to its commit, so writes
    /// happen one at a time and what a write read under the read lock is still the zone when it
    /// commits.
    turn: Mutex<()>,
    /// The IXFR journal and what walks share, once kept ([`Zone::keep_journal`]); see
    /// [`transfer`].
    history: std::sync::OnceLock<transfer::History>,
    /// Every new serial, as each commit makes it (the NOTIFY senders watch it).
    serials: tokio::sync::watch::Sender<u32>,
    /// The signing epoch: every signature is valid from an hour before it to `validity` after
    /// it. Whoever owns the data sets it ([`Write::epoch`]), so that instances sharing that data
    /// make the same signatures; an atomic because sets are signed outside the lock.
    epoch: std::sync::atomic::AtomicU32,
    /// Signatures remembered for a bulk load and new ones for the owner to keep; see [`memo`].
    memo: memo::Memo,
    /// First labels below the apex that the configuration serves; no subdomain may take one
    /// (see [`admit`]).
    reserved: std::collections::HashSet<Vec<u8>>,
    /// Stored rows left out of the zone because it cannot serve them (see [`admit`]).
    refused: std::sync::atomic::AtomicU64,
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl Zone {
    /// Read access to the state, surviving a panicked writer.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write access to the state, surviving a panicked writer.
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The apex as dotted text without the final dot.
    pub(crate) fn apex_text(&self) -> String {
        records::wire_to_text(&self.apex).trim_end_matches('.').to_owned()
    }

    /// Whether answers are signed.
    pub(crate) fn is_signed(&self) -> bool {
        self.signer.is_some()
    }

    /// The current SOA serial.
    pub fn serial(&self) -> u32 {
        self.read().serial
    }

    /// Number of registered subdomains.
    pub(crate) fn subdomain_count(&self) -> usize {
        let state = self.read();
        state.dynamic.len() - state.persist_names
    }

    /// The delegation at or above `name` (below the apex), if any.
    fn cut_at_or_above(&self, name: &[u8]) -> Option<&Cut> {
        self.cuts.iter().find(|cut| is_at_or_below(name, &cut.name))
    }

    /// Wire name of a subdomain label below the apex.
    fn subdomain_name(&self, label: &[u8]) -> Vec<u8> {
        let mut name = Vec::with_capacity(1 + label.len() + self.apex.len());
        name.push(label.len() as u8);
        name.extend_from_slice(label);
        name.extend_from_slice(&self.apex);
        name
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dns::dnssec::Algorithm;
    use crate::dns::records::name_to_wire;
    use crate::dns::wire::{parse_query, rtype};

    /// A dns-01 value the zone accepts (43 characters of base64url) made from `tag`, so tests
    /// can tell values apart by name.
    pub(super) fn val(tag: &str) -> &'static str {
        let mut value: String =
            tag.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        value.truncate(admit::TXT_LEN);
        while value.len() < admit::TXT_LEN {
            value.push('A');
        }
        Box::leak(value.into_boxed_str())
    }

    pub(super) fn settings() -> ZoneSettings {
        ZoneSettings {
            apex: "auth.example.org".into(),
            nsname: "ns1.auth.example.org".into(),
            nsadmin: "admin.example.org".into(),
            records: [
                "auth.example.org. A 192.0.2.1",
                "ns1.auth.example.org. A 192.0.2.2",
                "a.b.auth.example.org. TXT \"Mixed Case\"",
                "sub.auth.example.org. NS ns.sub.auth.example.org.",
                "ns.sub.auth.example.org. A 192.0.2.3",
            ]
            .map(record)
            .into(),
            soa_ttl: 3600,
            negative_ttl: 60,
            txt_ttl: 1,
            persist_ttl: 300,
            default_ttl: 3600,
            udp_size: 1232,
            nsid: None,
        }
    }

    /// A static record of the test zone, parsed as `config` does.
    pub(super) fn record(line: &str) -> StaticRecord {
        records::parse_record(line, &name_to_wire("auth.example.org").unwrap(), 3600).unwrap()
    }

    fn signer() -> Signer {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        Signer {
            key: SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap(),
            validity: 3600,
            refresh: 600,
        }
    }

    pub(super) fn ask_with(zone: &Zone, name: &str, qtype: u16, dnssec_ok: bool) -> Vec<u8> {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(dnssec_ok)];
        m.extend(name_to_wire(name).unwrap());
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        if dnssec_ok {
            m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        let q = parse_query(&m).unwrap();
        let mut out = Vec::new();
        zone.answer(&q, 4096, &mut out);
        out
    }

    fn ask(zone: &Zone, name: &str, qtype: u16) -> Vec<u8> {
        ask_with(zone, name, qtype, false)
    }

    /// (rcode, aa, ancount, nscount, arcount)
    fn summary(r: &[u8]) -> (u8, bool, u16, u16, u16) {
        let count = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]);
        (r[3] & 0x0F, r[2] & 0x04 != 0, count(6), count(8), count(10))
    }

    #[test]
    fn apex_and_static() {
        let zone = Zone::new(&settings(), None).unwrap();
        assert_eq!(summary(&ask(&zone, "auth.example.org", rtype::SOA)), (0, true, 1, 0, 0));
        // The name server's address comes along in the additional section.
        assert_eq!(summary(&ask(&zone, "AUTH.example.org", rtype::NS)), (0, true, 1, 0, 1));
        assert_eq!(summary(&ask(&zone, "auth.example.org", rtype::MX)), (0, true, 0, 1, 0));
        let r = ask(&zone, "a.b.auth.example.org", rtype::TXT);
        assert!(r.windows(10).any(|w| w == b"Mixed Case"));
        // Empty non-terminal: NODATA.
        assert_eq!(summary(&ask(&zone, "b.auth.example.org", rtype::A)), (0, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, "nope.auth.example.org", rtype::A)), (3, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, "example.com", rtype::A)), (5, false, 0, 0, 0));
    }

    #[test]
    fn referral_below_a_cut() {
        let zone = Zone::new(&settings(), None).unwrap();
        assert_eq!(summary(&ask(&zone, "x.sub.auth.example.org", rtype::A)), (0, false, 0, 1, 1));
    }

    /// No values.
    pub(super) const NONE: &[&str] = &[];

    /// A xorshift generator from `seed`: `next(n)` is a number below `n`, the same run after run.
    pub(super) fn numbers(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// Commits what `edit` writes at the next serial.
    pub(super) fn step(zone: &Zone, edit: impl FnOnce(&mut Write<'_>)) -> Commit {
        at(zone, zone.serial().wrapping_add(1), edit)
    }

    /// Commits what `edit` writes at `serial`.
    pub(super) fn at(zone: &Zone, serial: u32, edit: impl FnOnce(&mut Write<'_>)) -> Commit {
        let mut write = zone.begin();
        edit(&mut write);
        write.commit(serial)
    }

    #[test]
    fn dynamic_txt_lifecycle() {
        let zone = Zone::new(&settings(), None).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
        let serial = zone.serial();
        step(&zone, |w| {
            w.txt(sub, NONE);
        });
        assert_eq!(zone.serial(), serial.wrapping_add(1));
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)), (0, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, &name, rtype::A)), (0, true, 0, 1, 0));
        step(&zone, |w| {
            w.txt(sub, &[val("one"), val("two")]);
        });
        assert_eq!(summary(&ask(&zone, &name.to_uppercase(), rtype::TXT)), (0, true, 2, 0, 0));
        let r = ask(&zone, &name, rtype::TXT);
        let one = r.windows(3).position(|w| w == b"one").unwrap();
        let two = r.windows(3).position(|w| w == b"two").unwrap();
        assert!(one < two, "values in update order");
        assert_eq!(summary(&ask(&zone, &format!("x.{name}"), rtype::TXT)).0, 3);
        step(&zone, |w| {
            w.remove(sub);
        });
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
    }

    #[test]
    fn a_write_changes_nothing_until_its_commit_and_a_commit_of_nothing_is_no_step() {
        let zone = Zone::new(&settings(), None).unwrap();
        let serial = zone.serial();
        let mut write = zone.begin();
        write.txt("abc", &[val("a")]);
        assert_eq!(summary(&ask(&zone, "abc.auth.example.org", rtype::TXT)).0, 3, "not yet");
        drop(write);
        assert_eq!(summary(&ask(&zone, "abc.auth.example.org", rtype::TXT)).0, 3, "dropped");
        assert_eq!(zone.serial(), serial);
        // Nothing at the same serial: no step; nothing at a new serial: the SOA's step.
        let commit = zone.begin().commit(serial);
        assert_eq!((commit.changed, zone.serial()), (0, serial));
        let commit = zone.begin().commit(serial.wrapping_add(5));
        assert_eq!((commit.changed, zone.serial()), (0, serial.wrapping_add(5)));
        // The same values again change nothing but the serial.
        step(&zone, |w| {
            w.txt("abc", &[val("a")]);
        });
        assert_eq!(
            step(&zone, |w| {
                w.txt("ABC", &[val("a")]);
            })
            .changed,
            0
        );
        // A name written twice in one write: the last wins.
        step(&zone, |w| {
            w.txt("abc", &[val("b")]).remove("abc").txt("abc", &[val("c")]);
        });
        let r = ask(&zone, "abc.auth.example.org", rtype::TXT);
        assert!(r.windows(43).any(|w| w == val("c").as_bytes()));
        assert_eq!(summary(&r).2, 1);
    }

    #[test]
    fn a_load_makes_the_names_exactly_those_given_and_leaves_the_own_challenge() {
        let zone = Zone::new(&settings(), None).unwrap();
        step(&zone, |w| {
            w.txt("one", &[val("a")]).txt("two", NONE).own_challenge(&[val("own").into()]);
        });
        let commit = step(&zone, |w| {
            w.load([("two", vec![val("b")]), ("three", vec![])]);
        });
        assert_eq!(commit.changed, 3, "one gone, two changed, three new");
        let rcode = |name: &str| summary(&ask(&zone, &format!("{name}.auth.example.org"), rtype::TXT)).0;
        assert_eq!((rcode("one"), rcode("two"), rcode("three")), (3, 0, 0));
        assert_eq!(summary(&ask(&zone, "_acme-challenge.auth.example.org", rtype::TXT)).2, 1);
        assert_eq!(zone.subdomain_count(), 2);
    }

    #[test]
    fn a_load_signs_only_what_changed_and_leaves_the_chain_a_rebuild_would_make() {
        let zone = Zone::new(&settings(), Some(signer())).unwrap();
        let names: Vec<String> = (0..50).map(|i| format!("sub-{i}")).collect();
        step(&zone, |w| {
            w.load(names.iter().map(|n| (n.as_str(), vec![val("v")])));
        });
        let sigs = |zone: &Zone, label: &str| zone.read().dynamic[label.as_bytes()].set.sigs.clone();
        let (kept, changed) = (sigs(&zone, "sub-1"), sigs(&zone, "sub-2"));
        // sub-0 deleted, sub-2 updated, sub-new registered.
        let snapshot: Vec<(&str, Vec<&str>)> = names[1..]
            .iter()
            .map(|n| (n.as_str(), vec![if n == "sub-2" { val("w") } else { val("v") }]))
            .chain([("sub-new", vec![])])
            .collect();
        assert_eq!(
            step(&zone, |w| {
                w.load(snapshot.clone());
            })
            .changed,
            3
        );
        assert_eq!(sigs(&zone, "sub-1"), kept);
        assert_ne!(sigs(&zone, "sub-2"), changed);
        let rebuilt = Zone::new(&settings(), Some(signer())).unwrap();
        step(&rebuilt, |w| {
            w.load(snapshot);
        });
        let chain = |zone: &Zone| -> Vec<(Key, RrSet)> {
            zone.read().nsec3.iter().map(|(k, e)| (*k, e.set.records.clone())).collect()
        };
        assert_eq!(chain(&zone), chain(&rebuilt));
    }

    #[test]
    fn own_challenge_comes_and_goes() {
        let zone = Zone::new(&settings(), Some(signer())).unwrap();
        let name = "_acme-challenge.auth.example.org";
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).0, 3);
        step(&zone, |w| {
            w.own_challenge(&[val("token-value").into()]);
        });
        let r = ask_with(&zone, name, rtype::TXT, true);
        assert_eq!(summary(&r).2, 2, "the TXT and its RRSIG");
        assert!(r.windows(11).any(|w| w == b"token-value"));
        // Two instances with orders open: both values.
        step(&zone, |w| {
            w.own_challenge(&[val("token-value").into(), val("other-value").into()]);
        });
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).2, 2);
        // A load of the registered subdomains leaves them alone.
        step(&zone, |w| {
            w.load([("sub-1", vec![val("v")])]);
        });
        step(&zone, |w| {
            w.load(NONE.iter().map(|n| (*n, Vec::<&str>::new())));
        });
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).2, 2);
        step(&zone, |w| {
            w.own_challenge(&[]);
        });
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).0, 3);
    }

    #[test]
    fn conflicting_cname_is_refused() {
        let mut s = settings();
        s.records.push(record("c.auth.example.org. CNAME x.example.com."));
        s.records.push(record("c.auth.example.org. A 192.0.2.9"));
        assert!(matches!(s.check(), Err(ZoneError::Conflict(_))));
        assert!(matches!(Zone::new(&s, None), Err(ZoneError::Conflict(_))));
    }

    #[test]
    fn signed_answers_carry_signatures_and_proofs() {
        let zone = Zone::new(&settings(), Some(signer())).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        step(&zone, |w| {
            w.txt(sub, &[val("value")]);
        });
        // TXT + RRSIG; OPT in additional.
        assert_eq!(summary(&ask_with(&zone, &name, rtype::TXT, true)), (0, true, 2, 0, 1));
        // Without DO: no signatures.
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)), (0, true, 1, 0, 0));
        assert_eq!(summary(&ask_with(&zone, "auth.example.org", rtype::DNSKEY, true)), (0, true, 2, 0, 1));
        // NODATA: SOA, RRSIG, NSEC3, RRSIG.
        assert_eq!(summary(&ask_with(&zone, &name, rtype::A, true)), (0, true, 0, 4, 1));
        // NXDOMAIN: SOA, RRSIG, and 1 to 3 distinct NSEC3 with signatures (one may serve twice).
        let (rcode, aa, an, ns, _) = summary(&ask_with(&zone, "nope.auth.example.org", rtype::A, true));
        assert_eq!((rcode, aa, an), (3, true, 0));
        assert!([4, 6, 8].contains(&ns), "{ns}");
        // Referral: NS, NSEC3 + RRSIG proving no DS.
        assert_eq!(summary(&ask_with(&zone, "x.sub.auth.example.org", rtype::A, true)), (0, false, 0, 3, 2));
        // The chain holds apex, ns1, a.b, b (ENT), sub (cut), the subdomain; not the glue name.
        assert_eq!(zone.read().nsec3.len(), 6);
        step(&zone, |w| {
            w.remove(sub);
        });
        assert_eq!(zone.read().nsec3.len(), 5);
    }

    #[test]
    fn a_new_epoch_re_signs_everything_and_the_same_epoch_signs_alike() {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let signer = || Signer {
            key: SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap(),
            validity: 3600,
            refresh: 600,
        };
        let edit = Edit::Txt { subdomain: "abc".into(), values: vec![val("v").into()] };
        // Two instances of one store: the same version at the same serial and epoch.
        let zones = [
            Zone::new(&settings(), Some(signer())).unwrap(),
            Zone::new(&settings(), Some(signer())).unwrap(),
        ];
        for zone in &zones {
            at(zone, 1000, |w| {
                w.epoch(7200).load(NONE.iter().map(|n| (*n, Vec::<&str>::new())));
            });
            at(zone, 1001, |w| {
                w.edit(&edit);
            });
        }
        let answer = |zone: &Zone, name: &str, qtype: u16| ask_with(zone, name, qtype, true);
        for (name, qtype) in [
            ("abc.auth.example.org", rtype::TXT),
            ("nope.auth.example.org", rtype::A),
            ("auth.example.org", rtype::SOA),
        ] {
            assert_eq!(answer(&zones[0], name, qtype), answer(&zones[1], name, qtype), "{name}");
        }
        assert_eq!(zones[0].serial(), 1001);
        let before = answer(&zones[0], "abc.auth.example.org", rtype::TXT);
        assert!(
            at(&zones[0], 1002, |w| {
                w.epoch(10_800);
            })
            .resigned
                >= 8
        );
        assert_ne!(answer(&zones[0], "abc.auth.example.org", rtype::TXT), before);
        assert_eq!((zones[0].serial(), zones[0].epoch()), (1002, 10_800));
        // Due once the expiry is within the refresh window: 7200 + 3600 - 600.
        assert_eq!(zones[1].next_epoch(10_000), None);
        assert!(zones[1].next_epoch(10_200).is_some());
    }
}
