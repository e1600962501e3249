//! Signatures: signing an RRset when it changes, and renewing them before they expire.
//!
//! Design note: a signature is made when its set is rendered, never while answering. Renewal
//! works in chunks under the write lock, so readers never wait for a whole zone's worth.

use super::nsec3::Key;
use super::{Set, Zone, unix_now};
use crate::dns::dnssec::{RrsetToSign, Validity};
use crate::dns::wire::{RrSet, rtype};

impl Zone {
    /// Signs `records` owned by `owner` (no-op when unsigned).
    pub(super) fn signed(&self, owner: &[u8], records: RrSet) -> Set {
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

    /// When the zone's earliest signature expires (seconds since the epoch); `None` when
    /// unsigned. Scans every RRset under the read lock: for the metrics exporter's scrape,
    /// seconds apart, never for the query path.
    pub fn earliest_signature_expiry(&self) -> Option<u32> {
        self.signer.as_ref()?;
        let state = self.read();
        let statics = state.nodes.values().flat_map(|node| node.sets.iter());
        let subdomains = state.dynamic.values().map(|entry| &entry.set);
        let chain = state.nsec3.values().map(|entry| &entry.set);
        // Sets without signatures (delegation NS and glue) have no expiry.
        statics.chain(subdomains).chain(chain).filter(|set| !set.sigs.is_empty()).map(|set| set.expires).min()
    }
}
