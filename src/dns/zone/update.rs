//! The zone's one write path: a transaction ([`Zone::begin`] → [`Write`] → [`Write::commit`])
//! that makes its changes one serial step and returns the difference.
//!
//! Design note: a [`Write`] collects what the owner of the data wants (a name's TXT values, a
//! removal, the own challenge's values, a new signing epoch, or every registered name at once
//! for a load) and changes nothing until [`Write::commit`]. It holds the zone's writer turn
//! from [`Zone::begin`] on, so writes happen one at a time and what the commit reads under the
//! read lock is still the zone when it takes the write lock: nothing is pending anywhere. The
//! commit decides under the read lock what changes (a name served the same values keeps its
//! signatures), renders and signs that with no lock held (on every core for a large load or a
//! new epoch), then under one write lock puts it in place, relinks NSEC3, moves the serial and
//! the SOA, and journals the difference (`diff`), which it also returns with the signatures it
//! made (`memo`). A whole-zone load into an empty zone (the start) is built aside, its chain
//! signed there, and swapped in at once; so is a commit that signs every set anew (a new
//! epoch, a rollover step), on a copy, because replacing every set under the write lock kept
//! queries waiting for seconds at a million names; its difference is built only when the journal
//! could hold it (at a million names it is far larger, and the commit clears the journal). No
//! reader ever sees part of a commit, or a commit at the serial before it, or a serial whose
//! step the journal does not hold yet. Every commit ends by refreshing what signed negative
//! answers keep ready (`answer::Negative`).
//!
//! The serial is the caller's: instances sharing a store take it from the store's version, so
//! a commit never moves it by itself, and a commit that changes nothing at the same serial is
//! no step at all.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};

use super::dns_persist::is_persist_label;
use super::sign::{Resigned, parallel_map};
use super::{Edit, NewSignature, Set, State, TxtEntry, Zone};
use crate::dns::dnssec::KeySet;
use crate::dns::journal::Change;
use crate::dns::wire::{RrSet, rtype, txt_rdata};

/// The data of the marker of a name without values: one octet, zero. RFC 3597 allows none, but
/// hickory-proto (0.26, a library resolvers and clients are built on) refuses a whole message
/// with a record of no data outside an UPDATE (where that form means "delete"), so an answer to
/// ANY, or a transfer, read by it would fail.
const MARKER_DATA: [u8; 1] = [0];

/// A write under way: the changes collected since [`Zone::begin`], made by [`Write::commit`].
/// Dropped without a commit, it changes nothing.
#[must_use = "a write changes nothing until it is committed"]
pub struct Write<'z> {
    /// The zone written.
    zone: &'z Zone,
    /// The writer's turn, held to the end of the commit.
    _turn: MutexGuard<'z, ()>,
    /// Registered names to change, by lower-case label: the values to serve (as the zone's rule
    /// admits them), or `None` to remove the name.
    names: HashMap<Vec<u8>, Option<Vec<String>>>,
    /// Whether `names` is every name the zone is to serve ([`Write::load`]): the others go.
    whole: bool,
    /// The own challenge's values to serve, when they change.
    own: Option<Vec<String>>,
    /// The signing epoch to sign at, when given.
    epoch: Option<u32>,
    /// The key set to sign with from this commit on (a rollover step), when given.
    keys: Option<KeySet>,
}

/// What a commit did.
#[derive(Debug)]
pub struct Commit {
    /// The serial the zone is at.
    pub serial: u32,
    /// How many registered names were added, changed or removed (the own challenge counts as
    /// one name).
    pub changed: usize,
    /// How many sets were signed anew for a new signing epoch.
    pub resigned: usize,
    /// The step from the serial before to this one, as IXFR sends it (and the journal keeps).
    /// `None` when there was no step (nothing changed, the serial stayed) or the step is no
    /// difference: a whole-zone load into an empty zone, new contents at the same serial, or a
    /// new signing epoch (or new zone-signing keys) in a zone that keeps no journal or whose
    /// signatures alone exceed the journal's bytes. A secondary behind such a step takes the
    /// whole zone.
    pub diff: Option<Arc<Change>>,
    /// The signatures this commit made, for the owner to keep (see `memo`: why the difference
    /// cannot carry them); empty unless collecting is on.
    pub signatures: Vec<NewSignature>,
}

/// What a commit changes, decided under the read lock.
struct Plan {
    /// The serial before.
    serial: u32,
    /// Names to render with their values, by lower-case label.
    txt: Vec<(Vec<u8>, Vec<String>)>,
    /// Names to remove, by lower-case label.
    gone: Vec<Vec<u8>>,
    /// The own challenge's new values.
    own: Option<Vec<String>>,
    /// Whether the zone holds no registered name yet.
    empty: bool,
}

/// The changes of a commit, rendered and signed.
struct Ready {
    /// Registered names and their new sets.
    txt: Vec<(Vec<u8>, Set)>,
    /// Registered names removed.
    gone: Vec<Vec<u8>>,
    /// The own challenge's values and set (`None`: no values).
    own: Option<(Vec<String>, Option<Set>)>,
    /// Every other set signed anew, for a new epoch.
    resigned: Option<Resigned>,
}

impl Zone {
    /// Begins a write. Waits for the write before it to commit: one write at a time.
    pub fn begin(&self) -> Write<'_> {
        Write {
            zone: self,
            _turn: self.turn.lock().unwrap_or_else(PoisonError::into_inner),
            names: HashMap::new(),
            whole: false,
            own: None,
            epoch: None,
            keys: None,
        }
    }
}

impl Write<'_> {
    /// Serves `values` (oldest first) at the registered name `subdomain` (a subdomain or a
    /// persist name), registering it if new; with none, the name answers NODATA. A name or
    /// value the zone cannot serve is left out (see `admit`).
    pub fn txt(&mut self, subdomain: &str, values: &[impl AsRef<str>]) -> &mut Self {
        let key = subdomain.to_ascii_lowercase().into_bytes();
        let admitted = self.zone.admit(subdomain, values.iter().map(AsRef::as_ref));
        self.names.insert(key, admitted.map(|values| values.into_iter().map(str::to_owned).collect()));
        self
    }

    /// Removes the registered name `subdomain`: it stops existing.
    pub fn remove(&mut self, subdomain: &str) -> &mut Self {
        self.names.insert(subdomain.to_ascii_lowercase().into_bytes(), None);
        self
    }

    /// Serves `values` as the TXT of `_acme-challenge.<apex>`, or with none stops serving it:
    /// the DNS-01 challenges of the API's own certificate (one per instance with an order open).
    /// It lives among the static names, so a load of the registered names never touches it.
    pub fn own_challenge(&mut self, values: &[String]) -> &mut Self {
        self.own = Some(self.zone.admit_own_challenge(values));
        self
    }

    /// Signs at signing epoch `epoch`; a new one signs every set anew.
    pub fn epoch(&mut self, epoch: u32) -> &mut Self {
        self.epoch = Some(epoch);
        self
    }

    /// Signs with `keys` from this commit on (one step of a rollover, or the keys read at a
    /// start): the apex DNSKEY, CDS and CDNSKEY sets are made from it, and when the keys that
    /// sign the zone data change, every set is signed anew. An unsigned zone ignores it.
    ///
    /// The apex key sets and every new signature go in under the commit's one write lock, so
    /// no moment serves a signature whose key is not in the DNSKEY set the same answer proves
    /// (the owner of the keys orders the steps so that a key is published before it signs and
    /// stops signing before it leaves).
    pub fn keys(&mut self, keys: KeySet) -> &mut Self {
        self.keys = Some(keys);
        self
    }

    /// One change of a store version.
    pub fn edit(&mut self, edit: &Edit) -> &mut Self {
        match edit {
            Edit::Txt { subdomain, values } => self.txt(subdomain, values),
            Edit::Remove(subdomain) => self.remove(subdomain),
            Edit::OwnChallenge(values) => self.own_challenge(values),
        }
    }

    /// Makes the registered names exactly `names` with their values (a load from a snapshot of
    /// the store): names not given are removed. Replaces the names changed so far.
    pub fn load<S: AsRef<str>, V: AsRef<str>>(
        &mut self,
        names: impl IntoIterator<Item = (S, Vec<V>)>,
    ) -> &mut Self {
        self.names.clear();
        self.whole = true;
        for (subdomain, values) in names {
            self.txt(subdomain.as_ref(), &values);
        }
        self
    }

    /// Makes the changes and moves the serial to `serial`, as one step that no reader sees in
    /// part; returns what it did and the difference.
    pub fn commit(self, serial: u32) -> Commit {
        let Write { zone, _turn: turn, names, whole, own, epoch, keys } = self;
        let new_epoch = epoch.filter(|&e| e != zone.epoch());
        if let Some(epoch) = new_epoch {
            // Everything signed from here on is signed at it: the sets below, the chain's links.
            zone.epoch.store(epoch, Ordering::Relaxed);
        }
        // New keys sign everything signed from here on, too.
        let rekey = keys.filter(|_| zone.is_signed()).map(|keys| zone.install_keys(keys));
        // A new epoch, or new zone-signing keys, sign every set anew (an unsigned zone only
        // notes the epoch).
        let resign = (new_epoch.is_some() || rekey == Some(true)) && zone.is_signed();
        let (plan, unsigned) = {
            let state = zone.read();
            let plan = zone.plan(&state, names, whole, own, resign);
            (plan, resign.then(|| zone.unsigned_sets(&state)))
        };
        if plan.txt.is_empty()
            && plan.gone.is_empty()
            && plan.own.is_none()
            && !resign
            && rekey.is_none()
            && plan.serial == serial
        {
            let signatures = zone.take_made_signatures();
            return Commit { serial, changed: 0, resigned: 0, diff: None, signatures };
        }
        let changed = plan.txt.len() + plan.gone.len() + usize::from(plan.own.is_some());
        let empty = plan.empty;
        let ready = Ready {
            txt: parallel_map(plan.txt, |(key, values)| {
                let set = zone.render_txt(&key, &values);
                (key, set)
            }),
            gone: plan.gone,
            own: plan.own.map(|values| {
                let set = zone.render_own_challenge(&values);
                (values, set)
            }),
            resigned: unsigned.map(|work| zone.sign_sets(work)),
        };
        let (resigned, diff) = if whole && empty {
            (zone.swap_in(serial, ready, rekey.is_some()), None)
        } else {
            zone.apply(serial, ready, resign, rekey.is_some())
        };
        zone.serials.send_replace(serial);
        // Taken before the turn passes on: they are this commit's alone.
        let signatures = zone.take_made_signatures();
        drop(turn);
        Commit { serial, changed, resigned, diff, signatures }
    }
}

impl Zone {
    /// What a write changes in `state`: names whose served values differ (all of them for a new
    /// epoch), names to remove that exist, the own challenge if it differs.
    fn plan(
        &self,
        state: &State,
        names: HashMap<Vec<u8>, Option<Vec<String>>>,
        whole: bool,
        own: Option<Vec<String>>,
        resign: bool,
    ) -> Plan {
        let mut gone: Vec<Vec<u8>> = if whole {
            state.dynamic.keys().filter(|k| !names.contains_key(*k)).cloned().collect()
        } else {
            Vec::new()
        };
        let mut txt = Vec::new();
        for (key, wanted) in names {
            match wanted {
                None if state.dynamic.contains_key(&key) => gone.push(key),
                None => {}
                // The same values keep their signatures (they would come out the same).
                Some(values) if !resign && state.dynamic.get(&key).is_some_and(|h| h.holds(&values)) => {}
                Some(values) => txt.push((key, values)),
            }
        }
        let own = own.filter(|values| resign || *values != state.own_challenge);
        Plan { serial: state.serial, txt, gone, own, empty: state.dynamic.is_empty() }
    }

    /// Puts `ready` in place under one write lock, moves the serial to `serial` and journals the
    /// step; returns how many sets were signed anew and the step (see [`Commit::diff`]).
    fn apply(&self, serial: u32, ready: Ready, resign: bool, rekey: bool) -> (usize, Option<Arc<Change>>) {
        let mut changed: Vec<Vec<u8>> = ready
            .gone
            .iter()
            .chain(ready.txt.iter().map(|(k, _)| k))
            .map(|k| self.subdomain_name(k))
            .collect();
        if ready.own.is_some() {
            changed.push(self.own_challenge_name());
        }
        if rekey {
            // The apex key sets, and the apex's link (its types may change: CDS comes and goes).
            changed.push(self.apex.clone());
        }
        // A difference needs a step; a new epoch's (every record) only where a journal keeps it,
        // and only when the journal could hold it: a step larger than its byte bound would be
        // dropped at once (and not stored), and building it held a copy of every record and the
        // difference, hundreds of megabytes at a million names. Such a step clears the journal,
        // as the journal itself would. The step of a smaller zone is copied under the read lock
        // (queries go on; the writer's turn keeps the zone still meanwhile); a small step's
        // under the write lock, where it costs microseconds.
        let step = self.read().serial != serial;
        let limit = self.journal_limits().map(|limits| limits.bytes);
        let whole_before = limit.filter(|_| step && resign).and_then(|limit| {
            let state = self.read();
            (self.signature_bytes(&state) <= limit).then(|| {
                let places = self.places(&state, &changed, true);
                self.before(&state, places)
            })
        });
        if resign {
            // Every set changes: replacing them one by one under the write lock kept queries
            // waiting for seconds at a million names. The new state is made aside from a copy
            // (the writer's turn keeps the zone still meanwhile; queries go on reading it) and
            // swapped in at once; the old one is freed after the lock.
            let mut aside: State = self.read().clone();
            let resigned = self.change(&mut aside, serial, ready, rekey);
            let diff = whole_before.map(|before| Arc::new(self.difference(&aside, before)));
            // The journal takes the step under the same write lock as the swap: a walk or an
            // IXFR that saw the new serial without its step would find no way back to its own.
            let mut state = self.write();
            let old = std::mem::replace(&mut *state, aside);
            self.record(diff.as_ref());
            drop(state);
            drop(old);
            return (resigned, diff);
        }
        let mut state = self.write();
        let before = step.then(|| {
            let places = self.places(&state, &changed, false);
            self.before(&state, places)
        });
        let resigned = self.change(&mut state, serial, ready, rekey);
        let diff = before.map(|before| Arc::new(self.difference(&state, before)));
        // Before the lock goes: see above.
        self.record(diff.as_ref());
        drop(state);
        (resigned, diff)
    }

    /// Makes the changes of `ready` in `state` and moves its serial to `serial`; returns how
    /// many sets were signed anew.
    fn change(&self, state: &mut State, serial: u32, ready: Ready, rekey: bool) -> usize {
        let resigned = ready.resigned.map_or(0, |signed| self.install_resigned(state, signed));
        for key in &ready.gone {
            self.remove_entry(state, key);
        }
        for (key, set) in ready.txt {
            self.install_entry(state, key, set);
        }
        if let Some((values, set)) = ready.own {
            self.install_own_challenge(state, &values, set);
        }
        let resigned = resigned + if rekey { self.relink_apex_keys(state) } else { 0 };
        state.serial = serial;
        self.render_soa(state);
        self.refresh_negative(state);
        resigned
    }

    /// Builds the zone of a whole-zone load into an empty zone aside (the static names it holds,
    /// the registered names, the chain signed over all of them, the SOA at `serial`) and swaps
    /// it in at once; returns how many static sets were signed anew. Not a difference: the
    /// journal starts again.
    fn swap_in(&self, serial: u32, ready: Ready, rekey: bool) -> usize {
        // With no registered name yet, the state is the static names: a small copy.
        let mut aside: State = self.read().clone();
        let resigned = ready.resigned.map_or(0, |signed| self.install_resigned(&mut aside, signed));
        aside.dynamic = ready.txt.into_iter().map(|(key, set)| (key, TxtEntry { set })).collect();
        aside.persist_names = aside.dynamic.keys().filter(|k| is_persist_label(k)).count();
        if let Some((values, set)) = ready.own {
            self.install_own_challenge(&mut aside, &values, set);
        }
        let resigned = resigned + if rekey { self.render_apex_keys(&mut aside) } else { 0 };
        self.rebuild_chain(&mut aside);
        aside.serial = serial;
        self.render_soa(&mut aside);
        self.refresh_negative(&mut aside);
        let mut state = self.write();
        let old = std::mem::replace(&mut *state, aside);
        self.record(None);
        drop(state);
        drop(old);
        resigned
    }

    /// Renders the apex key sets from the key set in force and relinks the apex (its types may
    /// change); returns how many sets were signed.
    fn relink_apex_keys(&self, state: &mut State) -> usize {
        let count = self.render_apex_keys(state);
        let mut types = state.nodes.get(&self.apex).map(super::Node::types).unwrap_or_default();
        types.push(rtype::RRSIG);
        let apex = self.apex.clone();
        self.chain_upsert(state, &apex, types);
        count
    }

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

    /// Renders TXT values (oldest first) into a signed set; with no value, the marker in their
    /// place (see [`rtype::MARKER`] and the module note of `zone`).
    fn render_txt(&self, label: &[u8], values: &[impl AsRef<str>]) -> Set {
        let mut records = RrSet::default();
        let ttl = self.dynamic_ttl(label);
        for value in values.iter().map(AsRef::as_ref).filter(|v| !v.is_empty()) {
            records.add(rtype::TXT, ttl, &txt_rdata(value.as_bytes()));
        }
        if records.is_empty() {
            records.add(rtype::MARKER, ttl, &MARKER_DATA);
        }
        self.signed(&self.subdomain_name(label), records)
    }

    /// Puts a rendered entry in place under the write lock, with its NSEC3 link.
    fn install_entry(&self, state: &mut State, key: Vec<u8>, set: Set) {
        let entry = TxtEntry { set };
        let types = Self::subdomain_types(&entry);
        let name = self.subdomain_name(&key);
        state.insert_dynamic(key, entry);
        self.chain_upsert(state, &name, types);
    }

    /// Removes a registered name under the write lock, with its NSEC3 link.
    fn remove_entry(&self, state: &mut State, key: &[u8]) {
        if state.remove_dynamic(key).is_some() {
            self.chain_remove(state, &self.subdomain_name(key));
        }
    }

    /// The signed TXT set of the own challenge values (`None` for none).
    fn render_own_challenge(&self, values: &[String]) -> Option<Set> {
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

    /// Puts the rendered own challenge set in place under the write lock, with its NSEC3 link.
    fn install_own_challenge(&self, state: &mut State, values: &[String], set: Option<Set>) {
        let owner = self.own_challenge_name();
        state.own_challenge = values.to_vec();
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
}
