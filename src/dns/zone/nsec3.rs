//! The NSEC3 chain: one link per name of the zone, kept sorted by hash and signed.
//!
//! Design note: RFC 9276 parameters (SHA-1, no salt, no extra iterations). The chain is built
//! once at start (and for a whole-zone load into an empty zone, on the state built aside) and
//! then changed one link at a time: a name that
//! comes or goes re-renders its own link and its predecessor's, never the whole chain.

use super::{Set, State, TxtEntry, Zone};
use crate::dns::dnssec;
use crate::dns::wire::{RrSet, rtype};

/// One link of the NSEC3 chain.
///
/// Only the record and its signature: the owner label comes from the hash (its key in the
/// chain) and the types are the record's bitmap. At a million names each field left out here
/// is a hundred megabytes less.
#[derive(Clone, Debug, Default)]
pub(super) struct Nsec3Entry {
    /// The NSEC3 record (next hash, type bitmap) with its signature.
    pub(super) set: Set,
}

/// A link of the chain ready to send as it is: its hash, its owner label and its record with
/// the signature.
#[derive(Clone, Debug)]
pub(super) struct ReadyLink {
    /// The link's hash (its key in the chain).
    pub(super) key: Key,
    /// The owner label, rendered.
    pub(super) label: [u8; 33],
    /// The NSEC3 record and its signature.
    pub(super) set: Set,
}

/// Where the type bitmap starts in our NSEC3 rdata: algorithm, flags, iterations (2), salt
/// length (0), hash length, the 20-byte next hash.
const BITMAP_AT: usize = 26;

/// The type bitmap of a link's record (empty for a link not rendered yet).
fn bitmap_of(set: &Set) -> &[u8] {
    set.records.rdatas().next().and_then(|rdata| rdata.get(BITMAP_AT..)).unwrap_or(&[])
}

/// An NSEC3 hash as the chain's key: the 20 bytes as integers, so that ordering them (which
/// equals the bytes' order) is three integer compares instead of a `memcmp` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key(u64, u64, u32);

impl Key {
    /// The owner label in wire form: length 32 and the hash in base32hex, lower case (a stack
    /// value: the query path makes it when it sends a link that is not kept ready).
    pub(super) fn label(self) -> [u8; 33] {
        let bytes = self.bytes();
        let mut out = [0u8; 33];
        out[0] = 32;
        // 160 bits are four groups of 40, each eight characters of 5 bits, made eight at a time
        // in one u64 (a byte a character) instead of a shift and a table look-up each.
        for (group, five) in bytes.chunks_exact(5).enumerate() {
            let bits = five.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
            // Spread 40 bits to two 20-bit halves (32 bits apart), then 10-bit quarters (16 apart),
            // then 5-bit eighths (8 apart): one value of 0..=31 in each byte, the first on top.
            let x = (bits & 0xFF_FFF0_0000) << 12 | (bits & 0xF_FFFF);
            let x = (x & 0x000F_FC00_000F_FC00) << 6 | (x & 0x0000_03FF_0000_03FF);
            let x = (x & 0x03E0_03E0_03E0_03E0) << 3 | (x & 0x001F_001F_001F_001F);
            // '0' + v, and 39 more ('a' - '0' - 10) where v >= 10: v + 0x76 reaches 0x80 then.
            let letters = ((x + 0x7676_7676_7676_7676) >> 7) & 0x0101_0101_0101_0101;
            let chars = x + 0x3030_3030_3030_3030 + letters * 39;
            out[1 + 8 * group..9 + 8 * group].copy_from_slice(&chars.to_be_bytes());
        }
        out
    }

    /// The owner name of the link: its label under `apex`.
    pub(super) fn owner(self, apex: &[u8]) -> Vec<u8> {
        let mut owner = Vec::with_capacity(33 + apex.len());
        owner.extend_from_slice(&self.label());
        owner.extend_from_slice(apex);
        owner
    }

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
pub(super) fn nsec3_key(name: &[u8]) -> Key {
    let h = dnssec::nsec3_hash(name);
    let word = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
    Key(word(0), word(8), u32::from_be_bytes([h[16], h[17], h[18], h[19]]))
}

/// The link covering `hash` (the greatest one below it, circularly), found with one walk of
/// the tree.
pub(super) fn covering<'s>(state: &'s State, hash: &Key) -> Option<(&'s Key, &'s Nsec3Entry)> {
    state.nsec3.range(..*hash).next_back().or_else(|| state.nsec3.iter().next_back())
}

impl Zone {
    /// The types at a registered subdomain for the NSEC3 bitmap: its set's (TXT, or the marker
    /// of a name without values) and RRSIG.
    pub(super) fn subdomain_types(entry: &TxtEntry) -> Vec<u16> {
        entry.set.records.type_and_ttl().map(|(t, _)| vec![t, rtype::RRSIG]).unwrap_or_default()
    }

    /// Renders and signs the NSEC3 record of `hash` from its entry and its successor.
    pub(super) fn render_nsec3(&self, state: &mut State, hash: Key) {
        self.render_nsec3_with(state, hash, None);
    }

    /// Renders and signs the NSEC3 record of `hash` with `bitmap` (its present one if none).
    fn render_nsec3_with(&self, state: &mut State, hash: Key, bitmap: Option<&[u8]>) {
        let Some((owner, records)) = self.unsigned_nsec3(state, hash, bitmap) else { return };
        let set = self.signed(&owner, records);
        if let Some(entry) = state.nsec3.get_mut(&hash) {
            entry.set = set;
        }
    }

    /// The owner and (unsigned) NSEC3 record of `hash`, pointing at its successor, with
    /// `bitmap` or the link's present one.
    fn unsigned_nsec3(&self, state: &State, hash: Key, bitmap: Option<&[u8]>) -> Option<(Vec<u8>, RrSet)> {
        let next = state
            .nsec3
            .range((std::ops::Bound::Excluded(hash), std::ops::Bound::Unbounded))
            .next()
            .or_else(|| state.nsec3.iter().next())
            .map(|(h, _)| *h)
            .unwrap_or(hash);
        let entry = state.nsec3.get(&hash)?;
        let records = self.nsec3_rrset(next, bitmap.unwrap_or_else(|| bitmap_of(&entry.set)));
        Some((hash.owner(&self.apex), records))
    }

    /// An NSEC3 record pointing at `next` with `bitmap`.
    fn nsec3_rrset(&self, next: Key, bitmap: &[u8]) -> RrSet {
        let mut rdata = Vec::with_capacity(BITMAP_AT + bitmap.len());
        rdata.extend_from_slice(&[1, 0, 0, 0, 0, 20]);
        rdata.extend_from_slice(&next.bytes());
        rdata.extend_from_slice(bitmap);
        let mut records = RrSet::default();
        records.add(rtype::NSEC3, self.soa_ttl.min(self.negative_ttl), &rdata);
        records
    }

    /// The hash preceding `hash` in the chain (circularly).
    fn predecessor(state: &State, hash: &Key) -> Option<Key> {
        state.nsec3.range(..*hash).next_back().or_else(|| state.nsec3.iter().next_back()).map(|(h, _)| *h)
    }

    /// Sets the NSEC3 entry for `name` with `types`, re-signing what changed.
    pub(super) fn chain_upsert(&self, state: &mut State, name: &[u8], types: Vec<u16>) {
        if self.signer.is_none() {
            return;
        }
        let hash = nsec3_key(name);
        let bitmap = dnssec::type_bitmap(&types);
        if let Some(entry) = state.nsec3.get(&hash) {
            if bitmap_of(&entry.set) != bitmap.as_slice() {
                self.render_nsec3_with(state, hash, Some(&bitmap));
            }
            return;
        }
        state.nsec3.insert(hash, Nsec3Entry::default());
        self.render_nsec3_with(state, hash, Some(&bitmap));
        if let Some(prev) = Self::predecessor(state, &hash).filter(|p| *p != hash) {
            self.render_nsec3(state, prev);
        }
    }

    /// Removes the NSEC3 entry for `name`, re-signing its predecessor.
    pub(super) fn chain_remove(&self, state: &mut State, name: &[u8]) {
        if self.signer.is_none() {
            return;
        }
        let hash = nsec3_key(name);
        if state.nsec3.remove(&hash).is_some()
            && let Some(prev) = Self::predecessor(state, &hash)
        {
            self.render_nsec3(state, prev);
        }
    }

    /// Rebuilds the whole NSEC3 chain (start-up and bulk replacement).
    pub(super) fn rebuild_chain(&self, state: &mut State) {
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
            // The record points at itself until the chain is complete: it carries the bitmap.
            let hash = nsec3_key(&name);
            let records = self.nsec3_rrset(hash, &dnssec::type_bitmap(&types));
            state.nsec3.insert(hash, Nsec3Entry { set: Set { records, ..Set::default() } });
        }
        // Rendered, signed on every core and installed a slice of the chain at a time (under the
        // lock already held): the copies in flight stay a few megabytes at a million links.
        let hashes: Vec<Key> = state.nsec3.keys().copied().collect();
        for slice in hashes.chunks(REBUILD_SLICE) {
            let work: Vec<(Key, Vec<u8>, RrSet)> = slice
                .iter()
                .filter_map(|&hash| {
                    self.unsigned_nsec3(state, hash, None).map(|(owner, records)| (hash, owner, records))
                })
                .collect();
            let signed = super::sign::parallel_map(work, |(hash, owner, records)| {
                (hash, self.signed(&owner, records))
            });
            for (hash, set) in signed {
                if let Some(entry) = state.nsec3.get_mut(&hash) {
                    entry.set = set;
                }
            }
        }
    }
}

/// Links rendered and signed together when the chain is rebuilt.
const REBUILD_SLICE: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::{bitmap_of, covering, nsec3_key};
    use crate::dns::dnssec::{self, Algorithm, KeySet, SigningKey};
    use crate::dns::wire::rtype;
    use crate::dns::zone::tests::{NONE, ask_with, at, numbers, settings, step, val};
    use crate::dns::zone::{Signer, Zone};

    #[test]
    fn a_name_without_values_holds_the_marker_and_its_link_lists_it() {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap();
        let zone = Zone::new(&settings(), Some(Signer { key, validity: 3600, refresh: 600 })).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        let owner = zone.subdomain_name(sub.as_bytes());
        let link = |zone: &Zone| bitmap_of(&zone.read().nsec3[&nsec3_key(&owner)].set).to_vec();
        // (rcode, answer count, first answer type)
        let asked = |qtype: u16| {
            let r = ask_with(&zone, &name, qtype, true);
            let qend = 12 + owner.len() + 4;
            let first = (r[7] > 0).then(|| u16::from_be_bytes([r[qend + 2], r[qend + 3]]));
            (r[3] & 0x0F, u16::from_be_bytes([r[6], r[7]]), first)
        };
        step(&zone, |w| {
            w.txt(sub, NONE);
        });
        assert_eq!(link(&zone), dnssec::type_bitmap(&[rtype::MARKER, rtype::RRSIG]));
        // TXT and A: NODATA; the marker itself and ANY: the marker with its signature.
        assert_eq!(asked(rtype::TXT), (0, 0, None));
        assert_eq!(asked(rtype::A), (0, 0, None));
        assert_eq!(asked(rtype::MARKER), (0, 2, Some(rtype::MARKER)));
        assert_eq!(asked(rtype::ANY), (0, 2, Some(rtype::MARKER)));
        let chain: Vec<_> = zone.read().nsec3.keys().copied().collect();
        // The first value replaces the marker: the link's bitmap changes, the chain does not.
        step(&zone, |w| {
            w.txt(sub, &[val("one")]);
        });
        assert_eq!(link(&zone), dnssec::type_bitmap(&[rtype::TXT, rtype::RRSIG]));
        assert_eq!(asked(rtype::MARKER), (0, 0, None));
        assert_eq!(asked(rtype::TXT), (0, 2, Some(rtype::TXT)));
        assert_eq!(zone.read().nsec3.keys().copied().collect::<Vec<_>>(), chain);
        // Cleared, by a resync as by an update: the marker again.
        step(&zone, |w| {
            w.load([(sub, Vec::<String>::new())]);
        });
        assert_eq!(link(&zone), dnssec::type_bitmap(&[rtype::MARKER, rtype::RRSIG]));
        assert_eq!(asked(rtype::MARKER), (0, 2, Some(rtype::MARKER)));
        // The same empty state again changes nothing (the marker is what "no values" holds).
        let serial = zone.serial();
        let again = at(&zone, serial, |w| {
            w.txt(sub, NONE);
        });
        assert_eq!((again.changed, again.serial), (0, serial));
    }

    #[test]
    fn what_negative_answers_keep_ready_is_the_zones_after_writes_of_every_kind() {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap();
        let zone =
            Zone::new(&settings(), Some(Signer { key: key.clone(), validity: 3600, refresh: 600 })).unwrap();
        // What the ready links must be: looked up afresh, as the proof did before they were kept.
        let check = |zone: &Zone, what: &str| {
            let state = zone.read();
            let soa = state.nodes[&zone.apex].get(rtype::SOA).unwrap();
            let ttl = zone.soa_ttl.min(zone.negative_ttl);
            let sigs: Vec<_> = state.negative.soa_sigs.tails().collect();
            assert_eq!(sigs.len(), soa.sigs.tails().count(), "{what}: the SOA's signatures");
            for (ready, sig) in sigs.iter().zip(soa.sigs.tails()) {
                assert_eq!(ready[4..8], ttl.to_be_bytes(), "{what}: the negative TTL");
                assert_eq!((&ready[..4], &ready[8..]), (&sig[..4], &sig[8..]), "{what}: the SOA's signature");
            }
            let (apex, wildcard) = zone.apex_hashes;
            let fresh = [state.nsec3.get_key_value(&apex), covering(&state, &wildcard)];
            for (ready, fresh) in state.negative.links.iter().zip(fresh) {
                let (ready, (key, entry)) = (ready.as_ref().unwrap(), fresh.unwrap());
                assert_eq!(ready.key, *key, "{what}: the link");
                assert_eq!(ready.label, key.label(), "{what}: its label");
                assert_eq!(ready.set.records, entry.set.records, "{what}: its record");
                assert_eq!(ready.set.sigs, entry.set.sigs, "{what}: its signature");
            }
        };
        check(&zone, "at start");
        let mut next = numbers(0x9e37_79b9_7f4a_7c15);
        for round in 0..60 {
            let name = format!("name{}", next(40));
            let kind = next(6);
            step(&zone, |w| {
                match kind {
                    0 => w.remove(&name),
                    1 => w.txt(&name, NONE),
                    // A new epoch signs every link anew.
                    2 => w.epoch(1_800_000_000 + round * 3600),
                    // New keys without CDS change the apex's types, so its link.
                    3 => w.keys(KeySet { publish_cds: round % 2 == 0, ..KeySet::single(key.clone(), 300) }),
                    _ => w.txt(&name, &[val(&format!("v{round}"))]),
                };
            });
            check(&zone, &format!("round {round}, kind {kind}"));
        }
        // A whole-zone load into an empty zone builds the state aside.
        let empty = Zone::new(&settings(), Some(Signer { key, validity: 3600, refresh: 600 })).unwrap();
        step(&empty, |w| {
            w.load((0..30).map(|i| (format!("bulk{i}"), vec![val("x")])));
        });
        check(&empty, "after a whole-zone load");
    }

    #[test]
    fn the_label_made_from_the_key_is_the_base32hex_of_the_hash() {
        let names = (0..2000u32).map(|i| format!("\x04n{i:03}\x00").into_bytes());
        let fixed = [&b"\x07example\x00"[..], b"\x01a\x04auth\x07example\x03org\x00", b"\x00"];
        for name in fixed.into_iter().map(<[u8]>::to_vec).chain(names) {
            let key = nsec3_key(&name);
            let label = key.label();
            assert_eq!(label[0], 32);
            assert_eq!(&label[1..], dnssec::base32hex(&dnssec::nsec3_hash(&name)).as_bytes());
        }
        // Every value of 5 bits in every place: all zeros, all ones, and a stair of each.
        for bytes in [[0u8; 20], [0xFF; 20], std::array::from_fn(|i| (i * 13) as u8)] {
            let key = super::Key(
                u64::from_be_bytes(bytes[..8].try_into().unwrap()),
                u64::from_be_bytes(bytes[8..16].try_into().unwrap()),
                u32::from_be_bytes(bytes[16..].try_into().unwrap()),
            );
            assert_eq!(&key.label()[1..], dnssec::base32hex(&bytes).as_bytes());
        }
    }
}
