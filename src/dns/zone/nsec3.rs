//! The NSEC3 chain: one link per name of the zone, kept sorted by hash and signed.
//!
//! Design note: RFC 9276 parameters (SHA-1, no salt, no extra iterations). The chain is built
//! once at start (or on the first bulk load) and then changed one link at a time: a name that
//! comes or goes re-renders its own link and its predecessor's, never the whole chain.

use super::{Set, State, TxtEntry, Zone};
use crate::dns::dnssec;
use crate::dns::wire::{RrSet, rtype};

/// One link of the NSEC3 chain.
#[derive(Debug)]
pub(super) struct Nsec3Entry {
    /// Owner label in wire form (length byte and 32 base32hex characters).
    pub(super) label: Vec<u8>,
    /// Types present at the hashed name.
    pub(super) types: Vec<u16>,
    /// The NSEC3 record with its signature.
    pub(super) set: Set,
}

/// An NSEC3 hash as the chain's key: the 20 bytes as integers, so that ordering them (which
/// equals the bytes' order) is three integer compares instead of a `memcmp` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key(u64, u64, u32);

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
pub(super) fn nsec3_key(name: &[u8]) -> Key {
    let h = dnssec::nsec3_hash(name);
    let word = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
    Key(word(0), word(8), u32::from_be_bytes([h[16], h[17], h[18], h[19]]))
}

impl Zone {
    /// The types at a registered subdomain for the NSEC3 bitmap.
    pub(super) fn subdomain_types(entry: &TxtEntry) -> Vec<u16> {
        if entry.set.records.is_empty() { Vec::new() } else { vec![rtype::TXT, rtype::RRSIG] }
    }

    /// Renders and signs the NSEC3 record of `hash` from its entry and its successor.
    pub(super) fn render_nsec3(&self, state: &mut State, hash: Key) {
        let Some((owner, records)) = self.unsigned_nsec3(state, hash) else { return };
        self.touch_nsec3(state, hash);
        let set = self.signed(&owner, records);
        if let Some(entry) = state.nsec3.get_mut(&hash) {
            entry.set = set;
        }
    }

    /// The owner and (unsigned) NSEC3 record of `hash`, pointing at its successor.
    fn unsigned_nsec3(&self, state: &State, hash: Key) -> Option<(Vec<u8>, RrSet)> {
        let next = state
            .nsec3
            .range((std::ops::Bound::Excluded(hash), std::ops::Bound::Unbounded))
            .next()
            .or_else(|| state.nsec3.iter().next())
            .map(|(h, _)| *h)
            .unwrap_or(hash);
        let entry = state.nsec3.get(&hash)?;
        let mut rdata = vec![1, 0, 0, 0, 0, 20];
        rdata.extend_from_slice(&next.bytes());
        rdata.extend(dnssec::type_bitmap(&entry.types));
        let mut records = RrSet::default();
        records.add(rtype::NSEC3, self.soa_ttl.min(self.negative_ttl), &rdata);
        let mut owner = entry.label.clone();
        owner.extend_from_slice(&self.apex);
        Some((owner, records))
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
    pub(super) fn chain_remove(&self, state: &mut State, name: &[u8]) {
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
            let hash = nsec3_key(&name);
            let mut label = vec![32];
            label.extend_from_slice(dnssec::base32hex(&hash.bytes()).as_bytes());
            state.nsec3.insert(hash, Nsec3Entry { label, types, set: Set::default() });
        }
        // Rendered in one pass, signed on every core, installed under the lock already held.
        let work: Vec<(Key, Vec<u8>, RrSet)> = state
            .nsec3
            .keys()
            .filter_map(|&hash| {
                self.unsigned_nsec3(state, hash).map(|(owner, records)| (hash, owner, records))
            })
            .collect();
        let signed =
            super::sign::parallel_map(work, |(hash, owner, records)| (hash, self.signed(&owner, records)));
        for (hash, set) in signed {
            self.touch_nsec3(state, hash);
            if let Some(entry) = state.nsec3.get_mut(&hash) {
                entry.set = set;
            }
        }
    }
}
