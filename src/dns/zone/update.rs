//! Changes while serving, in order: TXT values of registered subdomains, the zone's own
//! challenge, removals, bulk resyncs, and the SOA serial that moves with each of them.
//!
//! Design note: the store is the authority and several writers race to the zone (the API, the
//! change feed, the retention purge, a resync). Each entry carries the store's sequence and the
//! zone's change counter ([`Zone::mark`]), so a late write of older data never undoes a newer
//! one. Rendering and signing happen before the write lock where possible.

use super::persist::is_persist_label;
use super::{Set, State, TxtEntry, Zone};
use crate::dns::wire::{RrSet, rtype, txt_rdata};

/// The data of the marker of a name without values: one octet, zero. RFC 3597 allows none, but
/// hickory-proto (0.26, a library resolvers and clients are built on) refuses a whole message
/// with a record of no data outside an UPDATE (where that form means "delete"), so an answer to
/// ANY, or a transfer, read by it would fail.
const MARKER_DATA: [u8; 1] = [0];

impl Zone {
    /// Re-renders (and re-signs) the apex SOA with the current serial.
    pub(super) fn render_soa(&self, state: &mut State) {
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

    /// Moves the serial forward by one and re-renders the SOA, unless a versioned change holds
    /// it (see [`Zone::load_version`]), which sets the serial itself at its end.
    ///
    /// Never from the clock: instances sharing a store take their serials from it
    /// (`apply_version`, `load_version`), and a serial must not move without a change.
    pub(super) fn bump_serial(&self, state: &mut State) {
        if state.hold {
            return;
        }
        let next = state.serial.wrapping_add(1);
        self.move_serial(state, next);
    }

    /// Sets the serial to `serial`, re-renders the SOA and journals the step.
    pub(super) fn move_serial(&self, state: &mut State, serial: u32) {
        let old = state.serial;
        state.serial = serial;
        self.touch_name(state, &self.apex);
        self.render_soa(state);
        self.commit_changes(state, old);
    }

    /// Renders TXT values (oldest first) into a signed set; with no value, the marker in their
    /// place (see [`rtype::MARKER`] and the module note of `zone`).
    pub(super) fn render_txt(&self, label: &[u8], values: &[&str]) -> Set {
        let mut records = RrSet::default();
        let ttl = self.dynamic_ttl(label);
        for value in values.iter().filter(|v| !v.is_empty()) {
            records.add(rtype::TXT, ttl, &txt_rdata(value.as_bytes()));
        }
        if records.is_empty() {
            records.add(rtype::MARKER, ttl, &MARKER_DATA);
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
        // A name the zone cannot serve is not served (see `admit`).
        let Some(values) = self.admit(subdomain, values.iter().copied()) else {
            let mut state = self.write();
            let removed = self.remove_entry(&mut state, &key);
            if removed {
                self.bump_serial(&mut state);
            }
            return removed;
        };
        let values = values.as_slice();
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
        self.install_entry(&mut state, key, seq, set);
        self.bump_serial(&mut state);
        true
    }

    /// Puts a rendered entry in place under the write lock, with its NSEC3 link; the serial is
    /// the caller's to move.
    pub(super) fn install_entry(&self, state: &mut State, key: Vec<u8>, seq: u64, set: Set) {
        state.changes += 1;
        let entry = TxtEntry { seq, set, changed: state.changes };
        let types = Self::subdomain_types(&entry);
        let name = self.subdomain_name(&key);
        self.touch_name(state, &name);
        state.insert_dynamic(key, entry);
        self.chain_upsert(state, &name, types);
    }

    /// Serves `values` as the TXT of `_acme-challenge.<apex>`, or with none stops serving it:
    /// the DNS-01 challenges for the API's own certificate (one per instance with an order
    /// open). It lives among the static names, so a resync of the registered subdomains never
    /// touches it.
    pub fn set_own_challenge(&self, values: &[String]) {
        let values = &self.admit_own_challenge(values);
        if self.read().own_challenge == *values {
            return; // nothing new (e.g. this instance's own write coming back from the feed)
        }
        let set = self.render_own_challenge(values);
        let mut state = self.write();
        self.install_own_challenge(&mut state, values, set);
        self.bump_serial(&mut state);
    }

    /// The signed TXT set of the own challenge values (`None` for none).
    pub(super) fn render_own_challenge(&self, values: &[String]) -> Option<Set> {
        let owner = self.own_challenge_name();
        (!values.is_empty()).then(|| {
            let mut records = RrSet::default();
            for value in values {
                records.add(rtype::TXT, self.txt_ttl, &txt_rdata(value.as_bytes()));
            }
            self.signed(&owner, records)
        })
    }

    /// `_acme-challenge.<apex>` in wire form.
    fn own_challenge_name(&self) -> Vec<u8> {
        let mut owner = b"\x0f_acme-challenge".to_vec();
        owner.extend_from_slice(&self.apex);
        owner
    }

    /// Puts the rendered own challenge set in place under the write lock; the serial is the
    /// caller's to move.
    pub(super) fn install_own_challenge(&self, state: &mut State, values: &[String], set: Option<Set>) {
        let owner = self.own_challenge_name();
        state.own_challenge = values.to_vec();
        self.touch_name(state, &owner);
        let node = state.nodes.entry(owner.clone()).or_default();
        node.sets.retain(|s| s.records.type_and_ttl().map(|(t, _)| t) != Some(rtype::TXT));
        node.sets.extend(set);
        let mut types = node.types();
        if types.is_empty() {
            state.nodes.remove(&owner);
            self.chain_remove(state, &owner);
        } else {
            types.push(rtype::RRSIG);
            self.chain_upsert(state, &owner, types);
        }
    }

    /// Removes a subdomain; its name stops existing at once.
    pub fn remove(&self, subdomain: &str) -> bool {
        let key = subdomain.to_ascii_lowercase().into_bytes();
        let mut state = self.write();
        let removed = self.remove_entry(&mut state, &key);
        if removed {
            self.bump_serial(&mut state);
        }
        removed
    }

    /// Removes a subdomain under the write lock; the serial is the caller's to move.
    pub(super) fn remove_entry(&self, state: &mut State, key: &[u8]) -> bool {
        self.touch_name(state, &self.subdomain_name(key));
        let removed = state.remove_dynamic(key).is_some();
        if removed {
            self.chain_remove(state, &self.subdomain_name(key));
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
        // Names the zone cannot serve are left out, as if the snapshot did not hold them.
        let entries: Vec<(Vec<u8>, u64, Vec<&str>)> = entries
            .into_iter()
            .filter_map(|(sub, seq, values)| {
                let values = self.admit(sub, values)?;
                Some((sub.to_ascii_lowercase().into_bytes(), seq, values))
            })
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
        let rendered: Vec<(Vec<u8>, TxtEntry)> = super::sign::parallel_map(changed, |i| {
            let (key, seq, values) = &entries[i];
            let set = self.render_txt(key, values);
            (key.clone(), TxtEntry { seq: *seq, set, changed: 0 })
        });
        if rendered.is_empty() && gone.is_empty() {
            return 0; // the zone already holds the snapshot: no new serial, no signature
        }
        // A name's NSEC3 bitmap changes when its set changes type (values ↔ the marker).
        let kind = |e: &TxtEntry| e.set.records.type_and_ttl().map(|(t, _)| t);
        let mut state = self.write();
        state.changes += 1;
        let changes = state.changes;
        if state.dynamic.is_empty() {
            // The first load: sign the whole chain in one pass, before anything is served.
            let count = rendered.len();
            // Not journaled: a secondary behind this gets the whole zone.
            self.forget_changes();
            state.dynamic = rendered.into_iter().collect();
            state.persist_names = state.dynamic.keys().filter(|k| is_persist_label(k)).count();
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
            if let Some(entry) = state.remove_dynamic(&key) {
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
                    let changes = kind(held) != kind(&entry);
                    removed.push(std::mem::replace(held, entry));
                    changes
                }
                None => {
                    count += 1;
                    state.insert_dynamic(key.clone(), entry);
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
}
