//! The in-memory zone and the answer algorithm, signed or not.
//!
//! Design note: the zone is one [`State`] behind an `RwLock`. Queries take the read lock only
//! while copying pre-rendered records into the response: every record is kept in wire form
//! (type, class, TTL, rdata) and the owner of an answer is a compression pointer back to the
//! question, so answering is a hash lookup and a few copies. Writers (an update, a
//! registration, a signature refresh) take the write lock for the few microseconds it takes to
//! replace an entry and, when signing, to make its few signatures. An update costs the same
//! with ten accounts as with a million.
//!
//! With DNSSEC on, each RRset carries its RRSIGs, made when the set changes and refreshed
//! before they expire ([`Zone::refresh_signatures`], in bounded chunks so readers never wait
//! long). Denial of existence uses an NSEC3 chain with RFC 9276 parameters (SHA-1, no salt, no
//! extra iterations) over every name of the zone, kept signed incrementally: a new name costs
//! two NSEC3 signatures (its own and its predecessor's), so answering NXDOMAIN or NODATA costs
//! a lookup and never a signature, whatever a client asks.
//!
//! Behaviour that differs from acme-dns on purpose (DESIGN.md section 3): exact names only,
//! names outside the zone are REFUSED, a registered name with no value answers NODATA with the
//! SOA (never NXDOMAIN), static data keeps its case, and the SOA serial moves with the zone.
//! This module knows nothing of the store or the API: whoever owns the data calls
//! [`Zone::set_txt`] and friends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::dnssec::{self, RrsetToSign, SigningKey, Validity};
use super::records::{self, RecordError, StaticRecord, is_at_or_below, name_to_wire};
use super::wire::{self, Owner, QNAME_OFFSET, Query, Rcode, Response, RrSet, Section, rtype, txt_rdata};

mod transfer;
pub use transfer::{IxfrPlan, Snapshot};

/// What the zone is built from; `config` fills it from `[general]` and `[dns]`.
#[derive(Clone, Debug)]
pub struct ZoneSettings {
    /// Zone apex, e.g. `auth.example.org`.
    pub apex: String,
    /// SOA MNAME: the primary name server.
    pub nsname: String,
    /// SOA RNAME: the responsible mailbox in name form.
    pub nsadmin: String,
    /// Static records as zone-file lines.
    pub records: Vec<String>,
    /// TTL of the SOA record itself.
    pub soa_ttl: u32,
    /// Negative-caching TTL: SOA MINIMUM, and the TTL of the SOA in negative answers.
    pub negative_ttl: u32,
    /// TTL of the dynamic TXT records.
    pub txt_ttl: u32,
    /// TTL for static records written without one.
    pub default_ttl: u32,
    /// The UDP payload size we advertise and accept at most.
    pub udp_size: u16,
}

/// How to sign: the key and the signature lifetimes.
#[derive(Debug)]
pub struct Signer {
    /// The combined signing key.
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
    /// A static record line is invalid.
    #[error("record {index} ({line:?}): {source}")]
    Record {
        /// Index in the list, from 0.
        index: usize,
        /// The line as written.
        line: String,
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
    /// When the signatures expire (0 when unsigned).
    expires: u32,
}

/// A name in the static part and its RRsets.
#[derive(Debug, Default)]
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

/// The TXT values of one registered subdomain.
#[derive(Debug, Default)]
struct TxtEntry {
    /// Sequence of the newest value, so a late, older write never overwrites a newer one.
    seq: u64,
    /// The values, oldest first, as given (to tell an unchanged entry in a resync).
    values: Vec<String>,
    /// TXT records, oldest value first, with signatures.
    set: Set,
    /// The zone's change counter when this entry last changed (see [`Zone::mark`]).
    changed: u64,
}

impl TxtEntry {
    /// Whether this entry is exactly the store's state (`seq`, `values`).
    fn is(&self, seq: u64, values: &[impl AsRef<str>]) -> bool {
        self.seq == seq
            && self.values.len() == values.len()
            && self.values.iter().zip(values).all(|(a, b)| a == b.as_ref())
    }
}

/// One link of the NSEC3 chain.
#[derive(Debug)]
struct Nsec3Entry {
    /// Owner label in wire form (length byte and 32 base32hex characters).
    label: Vec<u8>,
    /// Types present at the hashed name.
    types: Vec<u16>,
    /// The NSEC3 record with its signature.
    set: Set,
}

/// Everything that changes while serving.
#[derive(Debug)]
struct State {
    /// Current SOA serial.
    serial: u32,
    /// Static names (apex and empty non-terminals included); the apex holds the SOA set.
    nodes: HashMap<Vec<u8>, Node>,
    /// The SOA record with the negative TTL, for negative answers (signatures: the SOA set's).
    soa_negative: RrSet,
    /// Registered subdomains by lower-case label.
    dynamic: HashMap<Vec<u8>, TxtEntry>,
    /// The NSEC3 chain by hash (empty when unsigned).
    nsec3: BTreeMap<Key, Nsec3Entry>,
    /// Counts changes to registered subdomains; see [`Zone::mark`].
    changes: u64,
    /// The values served for the API's own ACME challenge (see [`Zone::set_own_challenge`]).
    own_challenge: Vec<String>,
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
    /// Largest UDP payload we send.
    udp_size: u16,
    /// Delegation points below the apex.
    cuts: Vec<Cut>,
    /// Signing key and policy, when DNSSEC is on.
    signer: Option<Signer>,
    /// NSEC3 hashes of the apex and of `*.<apex>`, the closest encloser and wildcard of almost
    /// every NXDOMAIN, computed once instead of per query.
    apex_hashes: (Key, Key),
    /// The changing part.
    state: RwLock<State>,
    /// Zone transfers (snapshots, the IXFR journal), once enabled; see [`transfer`].
    transfer: OnceLock<transfer::Transfers>,
}

/// An NSEC3 hash as the chain's key: the 20 bytes as integers, so that ordering them (which
/// equals the bytes' order) is three integer compares instead of a `memcmp` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u64, u64, u32);

impl Key {
    /// The hash's bytes.
    fn bytes(self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..8].copy_from_slice(&self.0.to_be_bytes());
        out[8..16].copy_from_slice(&self.1.to_be_bytes());
        out[16..].copy_from_slice(&self.2.to_be_bytes());
        out
    }
}

/// The NSEC3 hash of a lower-case wire name, as a chain key.
fn nsec3_key(name: &[u8]) -> Key {
    let h = dnssec::nsec3_hash(name);
    let word = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
    Key(word(0), word(8), u32::from_be_bytes([h[16], h[17], h[18], h[19]]))
}

/// Seconds since the epoch.
pub fn unix_now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Lower-cases the domain names embedded in rdata of the types that carry them (RFC 4034
/// section 6.2), so the served data is in canonical form. Other data keeps its case.
fn canonical_rdata(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let name_from = match rtype {
        rtype::NS | rtype::CNAME | rtype::PTR => Some(0),
        rtype::MX => Some(2),
        rtype::SRV => Some(6),
        _ => None,
    };
    let mut out = rdata.to_vec();
    if let Some(from) = name_from
        && let Some(name) = out.get_mut(from..)
    {
        name.make_ascii_lowercase();
    }
    out
}

impl Zone {
    /// Builds the zone from its settings (signed when `signer` is given); no subdomains yet.
    pub fn new(settings: &ZoneSettings, signer: Option<Signer>) -> Result<Self, ZoneError> {
        let name = |field, text: &str| name_to_wire(text).map_err(|source| ZoneError::Name { field, source });
        let apex = name("domain", &settings.apex)?.to_ascii_lowercase();
        let mut soa_names = name("nsname", &settings.nsname)?.to_ascii_lowercase();
        soa_names.extend(name("nsadmin", &settings.nsadmin.replacen('@', ".", 1))?.to_ascii_lowercase());

        let mut parsed: Vec<StaticRecord> = Vec::new();
        for (index, line) in settings.records.iter().enumerate() {
            let record = records::parse_record(line, &apex, settings.default_ttl)
                .map_err(|source| ZoneError::Record { index, line: line.clone(), source })?;
            parsed.push(record);
        }
        if !parsed.iter().any(|r| r.owner == apex && r.rtype == rtype::NS) {
            // A zone without apex NS is not a zone; use the SOA's name server.
            let mname = name("nsname", &settings.nsname)?.to_ascii_lowercase();
            parsed.push(StaticRecord {
                owner: apex.clone(),
                rtype: rtype::NS,
                ttl: settings.default_ttl,
                rdata: mname,
            });
        }
        for r in &parsed {
            if r.owner == apex && [rtype::SOA, rtype::DNSKEY, rtype::CDS, rtype::CDNSKEY].contains(&r.rtype) {
                return Err(ZoneError::Conflict(
                    "SOA and DNSSEC records at the apex are made by the server".into(),
                ));
            }
        }

        // Group records into sets; one TTL per set (the smallest written), as RFC 2181 asks.
        let mut grouped: Vec<Grouped> = Vec::new();
        for r in &parsed {
            let rdata = canonical_rdata(r.rtype, &r.rdata);
            match grouped.iter_mut().find(|(o, t, _, _)| *o == r.owner && *t == r.rtype) {
                Some((_, _, ttl, rdatas)) => {
                    *ttl = (*ttl).min(r.ttl);
                    if !rdatas.contains(&rdata) {
                        rdatas.push(rdata);
                    }
                }
                None => grouped.push((r.owner.clone(), r.rtype, r.ttl, vec![rdata])),
            }
        }
        let mut nodes: HashMap<Vec<u8>, Node> = HashMap::new();
        nodes.insert(apex.clone(), Node::default());
        for (owner, rtype, ttl, rdatas) in &grouped {
            let mut records = RrSet::default();
            for rdata in rdatas {
                records.add(*rtype, *ttl, rdata);
            }
            nodes.entry(owner.clone()).or_default().sets.push(Set { records, ..Set::default() });
            // Every name between the owner and the apex exists (empty non-terminals).
            let mut parent = owner.as_slice();
            while parent.len() > apex.len() {
                parent = &parent[1 + usize::from(parent[0])..];
                nodes.entry(parent.to_vec()).or_default();
            }
        }
        for (owner, node) in &nodes {
            if node.get(rtype::CNAME).is_some() && (node.sets.len() > 1 || *owner == apex) {
                return Err(ZoneError::Conflict(format!(
                    "CNAME at {} cannot coexist with other records",
                    records::wire_to_text(owner)
                )));
            }
        }
        let mut cuts = Vec::new();
        for (owner, node) in &nodes {
            if *owner == apex {
                continue;
            }
            if let Some(ns) = node.get(rtype::NS) {
                let mut glue = Vec::new();
                for target in ns.records.rdatas() {
                    if let Some(target_node) = nodes.get(target) {
                        for kind in [rtype::A, rtype::AAAA] {
                            if let Some(set) = target_node.get(kind) {
                                glue.push((target.to_vec(), set.records.clone()));
                            }
                        }
                    }
                }
                cuts.push(Cut { name: owner.clone(), ns: ns.records.clone(), glue });
            }
        }

        let zone = Self {
            apex: apex.clone(),
            soa_names,
            soa_ttl: settings.soa_ttl,
            negative_ttl: settings.negative_ttl,
            txt_ttl: settings.txt_ttl,
            udp_size: settings.udp_size,
            cuts,
            signer,
            apex_hashes: (nsec3_key(&apex), {
                let mut wildcard = b"\x01*".to_vec();
                wildcard.extend_from_slice(&apex);
                nsec3_key(&wildcard)
            }),
            state: RwLock::new(State {
                serial: unix_now(),
                nodes,
                soa_negative: RrSet::default(),
                dynamic: HashMap::new(),
                nsec3: BTreeMap::new(),
                changes: 0,
                own_challenge: Vec::new(),
            }),
            transfer: OnceLock::new(),
        };
        {
            let mut state = zone.write();
            if let Some(signer) = &zone.signer {
                let key = &signer.key;
                let ds = key.ds_rdata(&apex);
                let apex_node = state.nodes.entry(apex.clone()).or_default();
                let mut add = |rtype: u16, rdata: &[u8]| {
                    let mut records = RrSet::default();
                    records.add(rtype, settings.soa_ttl, rdata);
                    apex_node.sets.push(Set { records, ..Set::default() });
                };
                add(rtype::DNSKEY, key.dnskey_rdata());
                add(rtype::CDNSKEY, key.dnskey_rdata());
                add(rtype::CDS, &ds);
                // Algorithm 1 (SHA-1), no flags, 0 extra iterations, no salt (RFC 9276).
                add(rtype::NSEC3PARAM, &[1, 0, 0, 0, 0]);
            }
            zone.render_soa(&mut state);
            if zone.signer.is_some() {
                let owners: Vec<Vec<u8>> = state.nodes.keys().cloned().collect();
                for owner in owners {
                    if zone.cut_at_or_above(&owner).is_some() {
                        continue;
                    }
                    let signed: Vec<Set> = state.nodes[&owner]
                        .sets
                        .iter()
                        .map(|set| {
                            if set.sigs.is_empty() {
                                zone.signed(&owner, set.records.clone())
                            } else {
                                set.clone()
                            }
                        })
                        .collect();
                    if let Some(node) = state.nodes.get_mut(&owner) {
                        node.sets = signed;
                    }
                }
                zone.rebuild_chain(&mut state);
            }
        }
        Ok(zone)
    }

    /// Read access to the state, surviving a panicked writer.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write access to the state, surviving a panicked writer.
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The apex as dotted text without the final dot.
    pub fn apex_text(&self) -> String {
        records::wire_to_text(&self.apex).trim_end_matches('.').to_owned()
    }

    /// Whether answers are signed.
    pub fn is_signed(&self) -> bool {
        self.signer.is_some()
    }

    /// The current SOA serial.
    pub fn serial(&self) -> u32 {
        self.read().serial
    }

    /// Number of registered subdomains.
    pub fn subdomain_count(&self) -> usize {
        self.read().dynamic.len()
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

    /// Signs `records` owned by `owner` (no-op when unsigned).
    fn signed(&self, owner: &[u8], records: RrSet) -> Set {
        let Some(signer) = &self.signer else { return Set { records, ..Set::default() } };
        let Some((rtype, ttl)) = records.type_and_ttl() else { return Set { records, ..Set::default() } };
        let now = unix_now();
        let validity =
            Validity { inception: now.saturating_sub(3600), expiration: now.saturating_add(signer.validity) };
        let rdatas: Vec<&[u8]> = records.rdatas().collect();
        let rrsig =
            signer.key.sign_rrset(&RrsetToSign { owner, rtype, ttl, rdatas: &rdatas }, validity, &self.apex);
        let mut sigs = RrSet::default();
        sigs.add(rtype::RRSIG, ttl, &rrsig);
        Set { records, sigs, expires: validity.expiration }
    }

    /// Re-renders (and re-signs) the apex SOA with the current serial.
    fn render_soa(&self, state: &mut State) {
        let mut rdata = self.soa_names.clone();
        for value in [state.serial, 28_800, 7_200, 604_800, self.negative_ttl] {
            rdata.extend_from_slice(&value.to_be_bytes());
        }
        let mut records = RrSet::default();
        records.add(rtype::SOA, self.soa_ttl, &rdata);
        let mut negative = RrSet::default();
        negative.add(rtype::SOA, self.soa_ttl.min(self.negative_ttl), &rdata);
        state.soa_negative = negative;
        let set = self.signed(&self.apex, records);
        if let Some(apex) = state.nodes.get_mut(&self.apex) {
            match apex.sets.iter_mut().find(|s| s.records.type_and_ttl().map(|(t, _)| t) == Some(rtype::SOA))
            {
                Some(existing) => *existing = set,
                None => apex.sets.insert(0, set),
            }
        }
    }

    /// Moves the serial forward (to the current time, or by one) and re-renders the SOA.
    fn bump_serial(&self, state: &mut State) {
        let now = unix_now();
        let old = state.serial;
        state.serial = if now.wrapping_sub(old) as i32 > 0 { now } else { old.wrapping_add(1) };
        self.touch_name(state, &self.apex);
        self.render_soa(state);
        self.commit_changes(state, old);
    }

    /// The types at a registered subdomain for the NSEC3 bitmap.
    fn subdomain_types(entry: &TxtEntry) -> Vec<u16> {
        if entry.set.records.is_empty() { Vec::new() } else { vec![rtype::TXT, rtype::RRSIG] }
    }

    /// Renders and signs the NSEC3 record of `hash` from its entry and its successor.
    fn render_nsec3(&self, state: &mut State, hash: Key) {
        let next = state
            .nsec3
            .range((std::ops::Bound::Excluded(hash), std::ops::Bound::Unbounded))
            .next()
            .or_else(|| state.nsec3.iter().next())
            .map(|(h, _)| *h)
            .unwrap_or(hash);
        let Some(entry) = state.nsec3.get(&hash) else { return };
        self.touch_nsec3(state, hash);
        let mut rdata = vec![1, 0, 0, 0, 0, 20];
        rdata.extend_from_slice(&next.bytes());
        rdata.extend(dnssec::type_bitmap(&entry.types));
        let mut records = RrSet::default();
        records.add(rtype::NSEC3, self.soa_ttl.min(self.negative_ttl), &rdata);
        let mut owner = entry.label.clone();
        owner.extend_from_slice(&self.apex);
        let set = self.signed(&owner, records);
        if let Some(entry) = state.nsec3.get_mut(&hash) {
            entry.set = set;
        }
    }

    /// The hash preceding `hash` in the chain (circularly).
    fn predecessor(state: &State, hash: &Key) -> Option<Key> {
        state.nsec3.range(..*hash).next_back().or_else(|| state.nsec3.iter().next_back()).map(|(h, _)| *h)
    }

    /// Sets the NSEC3 entry for `name` with `types`, re-signing what changed.
    fn chain_upsert(&self, state: &mut State, name: &[u8], types: Vec<u16>) {
        if self.signer.is_none() {
            return;
        }
        let hash = nsec3_key(name);
        if let Some(entry) = state.nsec3.get_mut(&hash) {
            if entry.types == types {
                return;
            }
            entry.types = types;
            self.render_nsec3(state, hash);
            return;
        }
        let mut label = vec![32];
        label.extend_from_slice(dnssec::base32hex(&hash.bytes()).as_bytes());
        state.nsec3.insert(hash, Nsec3Entry { label, types, set: Set::default() });
        self.render_nsec3(state, hash);
        if let Some(prev) = Self::predecessor(state, &hash).filter(|p| *p != hash) {
            self.render_nsec3(state, prev);
        }
    }

    /// Removes the NSEC3 entry for `name`, re-signing its predecessor.
    fn chain_remove(&self, state: &mut State, name: &[u8]) {
        if self.signer.is_none() {
            return;
        }
        let hash = nsec3_key(name);
        self.touch_nsec3(state, hash);
        if state.nsec3.remove(&hash).is_some()
            && let Some(prev) = Self::predecessor(state, &hash)
        {
            self.render_nsec3(state, prev);
        }
    }

    /// Rebuilds the whole NSEC3 chain (start-up and bulk replacement).
    fn rebuild_chain(&self, state: &mut State) {
        if self.signer.is_none() {
            return;
        }
        let mut names: Vec<(Vec<u8>, Vec<u16>)> = Vec::new();
        for (owner, node) in &state.nodes {
            let types = if let Some(cut) = self.cut_at_or_above(owner) {
                if cut.name != *owner {
                    continue; // occluded by the delegation
                }
                vec![rtype::NS]
            } else {
                let mut types = node.types();
                if !types.is_empty() {
                    types.push(rtype::RRSIG);
                }
                types
            };
            names.push((owner.clone(), types));
        }
        for (label, entry) in &state.dynamic {
            names.push((self.subdomain_name(label), Self::subdomain_types(entry)));
        }
        state.nsec3.clear();
        for (name, types) in names {
            let hash = nsec3_key(&name);
            let mut label = vec![32];
            label.extend_from_slice(dnssec::base32hex(&hash.bytes()).as_bytes());
            state.nsec3.insert(hash, Nsec3Entry { label, types, set: Set::default() });
        }
        let hashes: Vec<Key> = state.nsec3.keys().copied().collect();
        for hash in hashes {
            self.render_nsec3(state, hash);
        }
    }

    /// Renders TXT values (oldest first) into a signed set.
    fn render_txt(&self, label: &[u8], values: &[&str]) -> Set {
        let mut records = RrSet::default();
        for value in values.iter().filter(|v| !v.is_empty()) {
            records.add(rtype::TXT, self.txt_ttl, &txt_rdata(value.as_bytes()));
        }
        if records.is_empty() {
            return Set::default();
        }
        self.signed(&self.subdomain_name(label), records)
    }

    /// Registers `subdomain` if new and sets its TXT values (oldest first) as of `seq`.
    ///
    /// An older `seq` than the one already held is ignored, so concurrent updates that reach
    /// the zone out of order cannot go back in time. Returns whether anything changed.
    pub fn set_txt(&self, subdomain: &str, seq: u64, values: &[&str]) -> bool {
        self.put_entry(subdomain, seq, values, |held| seq >= held.seq)
    }

    /// The change counter, to take before reading the store for [`Self::replace_txt`] or
    /// [`Self::replace_all`]: what changed in the zone after the mark is newer than what the
    /// read can return, and is kept.
    pub fn mark(&self) -> u64 {
        self.read().changes
    }

    /// Sets a subdomain's values as the store held them when read (the change feed and the
    /// retention purge read the store after the change committed, having taken `mark` first),
    /// unless the entry changed in the zone since `mark`: that change is newer than the read.
    pub fn replace_txt(&self, mark: u64, subdomain: &str, seq: u64, values: &[&str]) {
        self.put_entry(subdomain, seq, values, |held| held.changed <= mark);
    }

    /// Sets a subdomain's values (registering it if new) and what depends on them: its NSEC3
    /// link, the change counter, the serial. `accept` sees the entry already held, if any, and
    /// may refuse the change; returns whether it was made.
    fn put_entry(
        &self,
        subdomain: &str,
        seq: u64,
        values: &[&str],
        accept: impl FnOnce(&TxtEntry) -> bool,
    ) -> bool {
        let key = subdomain.to_ascii_lowercase().into_bytes();
        // The same values again (an instance hearing its own write from the change feed, a
        // retried request) change nothing: no rendering, no signature, no serial.
        if self.read().dynamic.get(&key).is_some_and(|held| held.is(seq, values)) {
            return false;
        }
        let set = self.render_txt(&key, values);
        let mut state = self.write();
        if state.dynamic.get(&key).is_some_and(|held| !accept(held) || held.is(seq, values)) {
            return false;
        }
        state.changes += 1;
        let entry = TxtEntry {
            seq,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            set,
            changed: state.changes,
        };
        let types = Self::subdomain_types(&entry);
        let name = self.subdomain_name(&key);
        self.touch_name(&state, &name);
        state.dynamic.insert(key, entry);
        self.chain_upsert(&mut state, &name, types);
        self.bump_serial(&mut state);
        true
    }

    /// Serves `values` as the TXT of `_acme-challenge.<apex>`, or with none stops serving it:
    /// the DNS-01 challenges for the API's own certificate (one per instance with an order
    /// open). It lives among the static names, so a resync of the registered subdomains never
    /// touches it.
    pub fn set_own_challenge(&self, values: &[String]) {
        if self.read().own_challenge == values {
            return; // nothing new (e.g. this instance's own write coming back from the feed)
        }
        let mut owner = b"\x0f_acme-challenge".to_vec();
        owner.extend_from_slice(&self.apex);
        let set = (!values.is_empty()).then(|| {
            let mut records = RrSet::default();
            for value in values {
                records.add(rtype::TXT, self.txt_ttl, &txt_rdata(value.as_bytes()));
            }
            self.signed(&owner, records)
        });
        let mut state = self.write();
        state.own_challenge = values.to_vec();
        self.touch_name(&state, &owner);
        let node = state.nodes.entry(owner.clone()).or_default();
        node.sets.retain(|s| s.records.type_and_ttl().map(|(t, _)| t) != Some(rtype::TXT));
        node.sets.extend(set);
        let mut types = node.types();
        if types.is_empty() {
            state.nodes.remove(&owner);
            self.chain_remove(&mut state, &owner);
        } else {
            types.push(rtype::RRSIG);
            self.chain_upsert(&mut state, &owner, types);
        }
        self.bump_serial(&mut state);
    }

    /// Removes a subdomain; its name stops existing at once.
    pub fn remove(&self, subdomain: &str) -> bool {
        let key = subdomain.to_ascii_lowercase().into_bytes();
        let mut state = self.write();
        self.touch_name(&state, &self.subdomain_name(&key));
        let removed = state.dynamic.remove(&key).is_some();
        if removed {
            self.chain_remove(&mut state, &self.subdomain_name(&key));
            self.bump_serial(&mut state);
        }
        removed
    }

    /// Replaces every subdomain at once (start-up load, resync after a lost change feed) with a
    /// snapshot read after `mark` was taken ([`Self::mark`]).
    ///
    /// A subdomain that changed in the zone after the mark (an update or registration that
    /// landed while the snapshot was read) is kept as the zone has it; the others become what
    /// the snapshot says, and those not in it are gone.
    ///
    /// Every query waits while the write lock is held, so a resync of a large zone does its
    /// work where queries can go on: the comparison with what the zone holds under the read
    /// lock, the signing of changed sets under no lock. Under the write lock it only applies
    /// what changed (a few signatures per changed name for the NSEC3 chain).
    ///
    /// Returns how many subdomains it added, changed or removed; with none, the serial stays.
    pub fn replace_all<'a>(
        &self,
        mark: u64,
        entries: impl IntoIterator<Item = (&'a str, u64, Vec<&'a str>)>,
    ) -> usize {
        let entries: Vec<(Vec<u8>, u64, Vec<&str>)> = entries
            .into_iter()
            .map(|(sub, seq, values)| (sub.to_ascii_lowercase().into_bytes(), seq, values))
            .collect();
        let (changed, gone) = {
            let state = self.read();
            let changed: Vec<usize> = (0..entries.len())
                .filter(|&i| {
                    let (key, seq, values) = &entries[i];
                    !state.dynamic.get(key).is_some_and(|held| held.is(*seq, values))
                })
                .collect();
            let wanted: std::collections::HashSet<&[u8]> =
                entries.iter().map(|(k, _, _)| k.as_slice()).collect();
            let gone: Vec<Vec<u8>> =
                state.dynamic.keys().filter(|k| !wanted.contains(k.as_slice())).cloned().collect();
            (changed, gone)
        };
        let rendered: Vec<(Vec<u8>, TxtEntry)> = changed
            .into_iter()
            .map(|i| {
                let (key, seq, values) = &entries[i];
                let set = self.render_txt(key, values);
                let values = values.iter().map(|v| (*v).to_owned()).collect();
                (key.clone(), TxtEntry { seq: *seq, values, set, changed: 0 })
            })
            .collect();
        if rendered.is_empty() && gone.is_empty() {
            return 0; // the zone already holds the snapshot: no new serial, no signature
        }
        let has_records = |e: &TxtEntry| !e.set.records.is_empty();
        let mut state = self.write();
        state.changes += 1;
        let changes = state.changes;
        if state.dynamic.is_empty() {
            // The first load: sign the whole chain in one pass, before anything is served.
            let count = rendered.len();
            // Not journaled: a secondary behind this gets the whole zone.
            self.forget_changes();
            state.dynamic = rendered.into_iter().collect();
            self.rebuild_chain(&mut state);
            self.bump_serial(&mut state);
            return count;
        }
        let mut removed = Vec::new();
        let mut count = 0;
        for key in gone {
            if state.dynamic.get(&key).is_some_and(|held| held.changed > mark) {
                continue; // registered while the snapshot was read
            }
            self.touch_name(&state, &self.subdomain_name(&key));
            if let Some(entry) = state.dynamic.remove(&key) {
                self.chain_remove(&mut state, &self.subdomain_name(&key));
                removed.push(entry);
                count += 1;
            }
        }
        for (key, mut entry) in rendered {
            entry.changed = changes;
            self.touch_name(&state, &self.subdomain_name(&key));
            let bitmap_changes = match state.dynamic.get_mut(&key) {
                Some(held) if held.changed > mark => continue,
                Some(held) => {
                    count += 1;
                    let changes = has_records(held) != has_records(&entry);
                    removed.push(std::mem::replace(held, entry));
                    changes
                }
                None => {
                    count += 1;
                    state.dynamic.insert(key.clone(), entry);
                    true
                }
            };
            if bitmap_changes && let Some(entry) = state.dynamic.get(&key) {
                let types = Self::subdomain_types(entry);
                self.chain_upsert(&mut state, &self.subdomain_name(&key), types);
            }
        }
        if count > 0 {
            self.bump_serial(&mut state);
        }
        // What was replaced is freed after the lock is released.
        drop(state);
        drop(removed);
        count
    }

    /// Renews signatures that expire within the refresh window; returns how many sets were
    /// re-signed. Works in chunks so that readers never wait for more than a few milliseconds.
    pub fn refresh_signatures(&self) -> usize {
        let Some(signer) = &self.signer else { return 0 };
        const CHUNK: usize = 128;
        let due = |set: &Set| {
            !set.records.is_empty() && set.expires.wrapping_sub(unix_now()) as i32 <= signer.refresh as i32
        };
        let mut renewed = 0;
        // Static sets and the SOA: few, done at once.
        {
            let mut state = self.write();
            let owners: Vec<Vec<u8>> = state.nodes.keys().cloned().collect();
            for owner in owners {
                if self.cut_at_or_above(&owner).is_some() {
                    continue;
                }
                let stale: Vec<usize> = state.nodes[&owner]
                    .sets
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| due(s))
                    .map(|(i, _)| i)
                    .collect();
                for i in stale {
                    self.touch_name(&state, &owner);
                    let records = state.nodes[&owner].sets[i].records.clone();
                    let set = self.signed(&owner, records);
                    if let Some(node) = state.nodes.get_mut(&owner) {
                        node.sets[i] = set;
                    }
                    renewed += 1;
                }
            }
            // With transfers on, new signatures are a new version of the zone for secondaries.
            if self.has_pending_changes() {
                self.bump_serial(&mut state);
            }
        }
        // Subdomains, in chunks.
        let labels: Vec<Vec<u8>> =
            self.read().dynamic.iter().filter(|(_, e)| due(&e.set)).map(|(k, _)| k.clone()).collect();
        for chunk in labels.chunks(CHUNK) {
            let mut state = self.write();
            for label in chunk {
                let name = self.subdomain_name(label);
                if state.dynamic.get(label).is_some_and(|e| due(&e.set)) {
                    self.touch_name(&state, &name);
                }
                if let Some(entry) = state.dynamic.get_mut(label)
                    && due(&entry.set)
                {
                    entry.set = self.signed(&name, entry.set.records.clone());
                    renewed += 1;
                }
            }
            if self.has_pending_changes() {
                self.bump_serial(&mut state);
            }
        }
        // The NSEC3 chain, in chunks.
        let hashes: Vec<Key> =
            self.read().nsec3.iter().filter(|(_, e)| due(&e.set)).map(|(h, _)| *h).collect();
        for chunk in hashes.chunks(CHUNK) {
            let mut state = self.write();
            for hash in chunk {
                if state.nsec3.get(hash).is_some_and(|e| due(&e.set)) {
                    self.render_nsec3(&mut state, *hash);
                    renewed += 1;
                }
            }
            if self.has_pending_changes() {
                self.bump_serial(&mut state);
            }
        }
        renewed
    }

    /// The largest response for `query` over UDP.
    pub fn udp_limit(&self, query: &Query<'_>) -> usize {
        match query.edns {
            Some(edns) => usize::from(edns.udp_size.min(self.udp_size)),
            None => 512,
        }
    }

    /// Writes the complete response to `query` into `out`, at most `max_len` bytes.
    pub fn answer(&self, query: &Query<'_>, max_len: usize, out: &mut Vec<u8>) {
        let mut response = Response::new(out, query, self.udp_size);
        if let Some(edns) = query.edns
            && edns.version != 0
        {
            response.set_rcode(Rcode::BadVers);
            return response.finish(max_len);
        }
        let refuse = match query.qtype {
            _ if query.qclass != wire::CLASS_IN => Some(Rcode::Refused),
            rtype::AXFR | rtype::IXFR => Some(Rcode::Refused),
            rtype::MAILA | rtype::MAILB => Some(Rcode::NotImp),
            _ => None,
        };
        if let Some(rcode) = refuse {
            response.set_rcode(rcode);
            return response.finish(max_len);
        }
        let mut lower = [0u8; wire::MAX_NAME_LEN];
        let len = wire::lowercase_name(query.qname, &mut lower);
        let name = &lower[..len];
        if !is_at_or_below(name, &self.apex) {
            response.set_rcode(Rcode::Refused);
            return response.finish(max_len);
        }
        let dnssec = self.signer.is_some() && query.edns.is_some_and(|e| e.dnssec_ok);
        let ctx = Context {
            qtype: query.qtype,
            name,
            apex_ptr: QNAME_OFFSET + (len - self.apex.len()) as u16,
            dnssec,
        };
        let state = self.read();
        self.answer_in_zone(&state, &ctx, &mut response);
        drop(state);
        response.finish(max_len);
    }

    /// Appends a set (and its signatures when asked for).
    fn push_set(response: &mut Response<'_>, section: Section, owner: Owner<'_>, set: &Set, dnssec: bool) {
        response.push_all(section, owner, &set.records);
        if dnssec {
            response.push_all(section, owner, &set.sigs);
        }
    }

    /// Appends the NSEC3 record of `hash` (and its signature) to the authority section.
    fn push_nsec3(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>, hash: &Key) {
        if let Some(entry) = state.nsec3.get(hash) {
            Self::push_nsec3_entry(ctx, response, entry);
        }
    }

    /// Appends one NSEC3 record and its signature to the authority section.
    fn push_nsec3_entry(ctx: &Context<'_>, response: &mut Response<'_>, entry: &Nsec3Entry) {
        Self::push_set(
            response,
            Section::Authority,
            Owner::Prefixed(&entry.label, ctx.apex_ptr),
            &entry.set,
            true,
        );
    }

    /// The NSEC3 entry covering `hash` (the greatest one below it, circularly), found with one
    /// walk of the tree.
    fn covering<'s>(state: &'s State, hash: &Key) -> Option<(&'s Key, &'s Nsec3Entry)> {
        state.nsec3.range(..*hash).next_back().or_else(|| state.nsec3.iter().next_back())
    }

    /// Appends the SOA for a negative answer, and for a signed one the proof of `kind`.
    fn push_negative(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>, nxdomain: bool) {
        let apex_owner = Owner::Pointer(ctx.apex_ptr);
        response.push_all(Section::Authority, apex_owner, &state.soa_negative);
        if !ctx.dnssec {
            return;
        }
        if let Some(apex) = state.nodes.get(&self.apex)
            && let Some(soa) = apex.get(rtype::SOA)
        {
            response.push_all(Section::Authority, apex_owner, &soa.sigs);
        }
        if !nxdomain {
            self.push_nsec3(state, ctx, response, &nsec3_key(ctx.name));
            return;
        }
        // Closest encloser proof (RFC 5155 section 7.2.1) plus the wildcard's non-existence.
        let mut encloser = ctx.name;
        let mut next_closer = ctx.name;
        while encloser.len() > self.apex.len() {
            next_closer = encloser;
            encloser = &encloser[1 + usize::from(encloser[0])..];
            if self.exists(state, encloser) {
                break;
            }
        }
        let (encloser_hash, wildcard_hash) = if encloser.len() == self.apex.len() {
            self.apex_hashes
        } else {
            let mut wildcard = Vec::with_capacity(encloser.len() + 2);
            wildcard.extend_from_slice(b"\x01*");
            wildcard.extend_from_slice(encloser);
            (nsec3_key(encloser), nsec3_key(&wildcard))
        };
        // At most three proofs, each found with one walk of the tree; a fixed array keeps the
        // query path free of allocation. One record may serve twice: send it once.
        let mut proofs: [Option<(&Key, &Nsec3Entry)>; 3] = [None; 3];
        proofs[0] = state.nsec3.get_key_value(&encloser_hash);
        proofs[1] = Self::covering(state, &nsec3_key(next_closer));
        proofs[2] = Self::covering(state, &wildcard_hash);
        for i in 0..proofs.len() {
            if let Some((key, entry)) = proofs[i]
                && !proofs[..i].iter().flatten().any(|(k, _)| *k == key)
            {
                Self::push_nsec3_entry(ctx, response, entry);
            }
        }
    }

    /// Whether `name` (at or below the apex) exists in the zone.
    fn exists(&self, state: &State, name: &[u8]) -> bool {
        if state.nodes.contains_key(name) {
            return true;
        }
        let label_len = usize::from(name[0]);
        1 + label_len + self.apex.len() == name.len() && state.dynamic.contains_key(&name[1..=label_len])
    }

    /// Fills in a response for a name at or below the apex.
    fn answer_in_zone(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>) {
        let here = Owner::Pointer(QNAME_OFFSET);
        let (qtype, name) = (ctx.qtype, ctx.name);
        if let Some(cut) = self.cut_at_or_above(name)
            && !(name == cut.name && qtype == rtype::DS)
        {
            let cut_ptr = QNAME_OFFSET + (name.len() - cut.name.len()) as u16;
            response.push_all(Section::Authority, Owner::Pointer(cut_ptr), &cut.ns);
            if ctx.dnssec {
                // No DS at the cut: prove it, so validators accept the insecure delegation.
                self.push_nsec3(state, ctx, response, &nsec3_key(&cut.name));
            }
            for (owner, set) in &cut.glue {
                response.push_all(Section::Additional, Owner::Name(owner), set);
            }
            return;
        }
        response.set_authoritative(true);
        if let Some(node) = state.nodes.get(name) {
            let set = match qtype {
                rtype::ANY => node.sets.first(),
                _ => node.get(qtype).or_else(|| node.get(rtype::CNAME)),
            };
            match set {
                Some(set) => Self::push_set(response, Section::Answer, here, set, ctx.dnssec),
                None => self.push_negative(state, ctx, response, false),
            }
            return;
        }
        // A registered subdomain is exactly one label below the apex.
        let label_len = usize::from(name[0]);
        if 1 + label_len + self.apex.len() == name.len()
            && let Some(entry) = state.dynamic.get(&name[1..=label_len])
        {
            if (qtype == rtype::TXT || qtype == rtype::ANY) && !entry.set.records.is_empty() {
                Self::push_set(response, Section::Answer, here, &entry.set, ctx.dnssec);
            } else {
                self.push_negative(state, ctx, response, false);
            }
            return;
        }
        response.set_rcode(Rcode::NxDomain);
        self.push_negative(state, ctx, response, true);
    }
}

/// Static records grouped into a set while building: owner, type, TTL, rdatas.
type Grouped = (Vec<u8>, u16, u32, Vec<Vec<u8>>);

/// What the answer functions need to know about the query.
struct Context<'a> {
    /// Query type.
    qtype: u16,
    /// Lower-case query name.
    name: &'a [u8],
    /// Offset of the apex inside the question, for compression.
    apex_ptr: u16,
    /// Whether to add signatures and denial proofs.
    dnssec: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::Algorithm;
    use crate::dns::wire::parse_query;

    fn settings() -> ZoneSettings {
        ZoneSettings {
            apex: "auth.example.org".into(),
            nsname: "ns1.auth.example.org".into(),
            nsadmin: "admin.example.org".into(),
            records: vec![
                "auth.example.org. A 192.0.2.1".into(),
                "ns1.auth.example.org. A 192.0.2.2".into(),
                "a.b.auth.example.org. TXT \"Mixed Case\"".into(),
                "sub.auth.example.org. NS ns.sub.auth.example.org.".into(),
                "ns.sub.auth.example.org. A 192.0.2.3".into(),
            ],
            soa_ttl: 3600,
            negative_ttl: 60,
            txt_ttl: 1,
            default_ttl: 3600,
            udp_size: 1232,
        }
    }

    fn signer() -> Signer {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        Signer {
            key: SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap(),
            validity: 3600,
            refresh: 600,
        }
    }

    fn ask_with(zone: &Zone, name: &str, qtype: u16, dnssec_ok: bool) -> Vec<u8> {
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
        assert_eq!(summary(&ask(&zone, "AUTH.example.org", rtype::NS)), (0, true, 1, 0, 0));
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

    #[test]
    fn dynamic_txt_lifecycle() {
        let zone = Zone::new(&settings(), None).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
        let serial = zone.serial();
        zone.set_txt(sub, 0, &[]);
        assert!(zone.serial() != serial);
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)), (0, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, &name, rtype::A)), (0, true, 0, 1, 0));
        zone.set_txt(sub, 2, &["one", "two"]);
        assert_eq!(summary(&ask(&zone, &name.to_uppercase(), rtype::TXT)), (0, true, 2, 0, 0));
        assert!(!zone.set_txt(sub, 1, &["stale"]));
        let r = ask(&zone, &name, rtype::TXT);
        let one = r.windows(3).position(|w| w == b"one").unwrap();
        let two = r.windows(3).position(|w| w == b"two").unwrap();
        assert!(one < two, "values in update order");
        assert_eq!(summary(&ask(&zone, &format!("x.{name}"), rtype::TXT)).0, 3);
        zone.remove(sub);
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
    }

    #[test]
    fn a_snapshot_read_before_a_change_never_undoes_it() {
        let zone = Zone::new(&settings(), None).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        let answers = |zone: &Zone| summary(&ask(zone, &name, rtype::TXT)).2;
        zone.set_txt(sub, 0, &[]);
        // The change feed takes its mark and reads the store; meanwhile the API updates.
        let mark = zone.mark();
        zone.set_txt(sub, 1, &["a"]);
        zone.replace_txt(mark, sub, 0, &[]);
        assert_eq!(answers(&zone), 1, "an empty snapshot from before the update is ignored");
        zone.replace_all(mark, [(sub, 0, vec![])]);
        assert_eq!(answers(&zone), 1, "so is a resync's");
        // A value sent again moves to the newest place: an older read of the store holding
        // only that value must not drop the other.
        zone.set_txt(sub, 2, &["a", "b"]);
        let mark = zone.mark();
        zone.set_txt(sub, 3, &["b", "a"]);
        zone.replace_txt(mark, sub, 1, &["a"]);
        assert_eq!(answers(&zone), 2);
        // A read made after the last change is what the store holds: applied, even when it
        // holds less (the retention purge cleared values) or nothing.
        zone.replace_txt(zone.mark(), sub, 3, &["a"]);
        assert_eq!(answers(&zone), 1);
        zone.replace_txt(zone.mark(), sub, 0, &[]);
        assert_eq!(answers(&zone), 0);
        // A name registered while a resync read the store is kept; one not in a later read goes.
        let mark = zone.mark();
        zone.set_txt("new", 0, &[]);
        zone.replace_all(mark, [(sub, 0, vec![])]);
        assert_eq!(summary(&ask(&zone, "new.auth.example.org", rtype::TXT)).0, 0);
        zone.replace_all(zone.mark(), std::iter::empty());
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
        assert_eq!(summary(&ask(&zone, "new.auth.example.org", rtype::TXT)).0, 3);
    }

    #[test]
    fn a_resync_signs_only_what_changed_and_leaves_the_chain_a_rebuild_would_make() {
        let zone = Zone::new(&settings(), Some(signer())).unwrap();
        let names: Vec<String> = (0..50).map(|i| format!("sub-{i}")).collect();
        zone.replace_all(0, names.iter().map(|n| (n.as_str(), 1, vec!["v"])));
        let sigs = |zone: &Zone, label: &str| zone.read().dynamic[label.as_bytes()].set.sigs.clone();
        let (kept, changed) = (sigs(&zone, "sub-1"), sigs(&zone, "sub-2"));
        // sub-0 deleted, sub-2 updated, sub-new registered.
        let snapshot: Vec<(&str, u64, Vec<&str>)> = names[1..]
            .iter()
            .map(|n| if n == "sub-2" { (n.as_str(), 2, vec!["w"]) } else { (n.as_str(), 1, vec!["v"]) })
            .chain([("sub-new", 0, vec![])])
            .collect();
        zone.replace_all(zone.mark(), snapshot.clone());
        // ECDSA signatures differ each time: the same bytes mean no new signature.
        assert_eq!(sigs(&zone, "sub-1"), kept);
        assert_ne!(sigs(&zone, "sub-2"), changed);
        let rebuilt = Zone::new(&settings(), Some(signer())).unwrap();
        rebuilt.replace_all(0, snapshot);
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
        zone.set_own_challenge(&["token-value".into()]);
        let r = ask_with(&zone, name, rtype::TXT, true);
        assert_eq!(summary(&r).2, 2, "the TXT and its RRSIG");
        assert!(r.windows(11).any(|w| w == b"token-value"));
        // Two instances with orders open: both values.
        zone.set_own_challenge(&["token-value".into(), "other-value".into()]);
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).2, 2);
        // A resync of the registered subdomains leaves them alone.
        zone.replace_all(zone.mark(), [("sub-1", 1, vec!["v"])]);
        zone.replace_all(zone.mark(), std::iter::empty());
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).2, 2);
        zone.set_own_challenge(&[]);
        assert_eq!(summary(&ask(&zone, name, rtype::TXT)).0, 3);
    }

    #[test]
    fn conflicting_cname_is_refused() {
        let mut s = settings();
        s.records.push("c.auth.example.org. CNAME x.example.com.".into());
        s.records.push("c.auth.example.org. A 192.0.2.9".into());
        assert!(matches!(Zone::new(&s, None), Err(ZoneError::Conflict(_))));
    }

    #[test]
    fn signed_answers_carry_signatures_and_proofs() {
        let zone = Zone::new(&settings(), Some(signer())).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        zone.set_txt(sub, 1, &["value"]);
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
        zone.remove(sub);
        assert_eq!(zone.read().nsec3.len(), 5);
    }

    #[test]
    fn refresh_renews_due_signatures() {
        let mut s = signer();
        s.validity = 100;
        s.refresh = 200; // everything is always due
        let zone = Zone::new(&settings(), Some(s)).unwrap();
        zone.set_txt("abc", 1, &["v"]);
        assert!(zone.refresh_signatures() >= 8);
    }
}
