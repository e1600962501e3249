//! The difference one commit makes: what the IXFR journal keeps for its serial step.
//!
//! Design note: a commit knows which names it changes (the names of its edits, the apex whose
//! SOA moves), and the NSEC3 links those changes can reach follow from the chain: a name's own
//! link, and the link before it once the chain has changed, which is either another changed
//! name's link or the nearest unchanged link below it (unchanged links are the same before and
//! after). So the places are listed from the edits alone, before anything changes; their
//! records are copied then and again after the change, and the difference of the two is the
//! step. No writer reports what it touched, so none can forget to. A new signing epoch changes
//! every signature: its places are every name and link.

use std::collections::BTreeSet;

use super::nsec3::{Key, nsec3_key};
use super::{State, Zone};
use crate::dns::journal::{self, Change};
use crate::dns::wire::rtype;

/// A place whose records a commit may change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Place {
    /// An owner name among the static names or the registered names (lower-case wire).
    Name(Vec<u8>),
    /// A link of the NSEC3 chain.
    Link(Key),
}

/// The records of the places a commit may change, as they were before it.
#[derive(Debug)]
pub(super) struct Before {
    /// The serial before.
    serial: u32,
    /// Each place and its flat records.
    places: Vec<(Place, Vec<u8>)>,
}

impl Zone {
    /// The places a change of the names `changed` (lower-case wire names) can reach in `state`:
    /// the names, the apex (its SOA moves with every step) and, when signed, their links and the
    /// links before them. With `everything` (a new signing epoch), every name and link.
    pub(super) fn places(&self, state: &State, changed: &[Vec<u8>], everything: bool) -> BTreeSet<Place> {
        let mut places: BTreeSet<Place> = changed.iter().cloned().map(Place::Name).collect();
        places.insert(Place::Name(self.apex.clone()));
        if everything {
            places.extend(state.nodes.keys().cloned().map(Place::Name));
            places.extend(state.dynamic.keys().map(|label| Place::Name(self.subdomain_name(label))));
            places.extend(state.nsec3.keys().copied().map(Place::Link));
        }
        if self.signer.is_some() {
            let hashes: BTreeSet<Key> = changed.iter().map(|name| nsec3_key(name)).collect();
            for &hash in &hashes {
                places.insert(Place::Link(hash));
                // The nearest link below, going round the chain, that this change leaves alone.
                let mut below = state.nsec3.range(..hash).rev().chain(state.nsec3.range(hash..).rev());
                if let Some((&before, _)) = below.find(|(k, _)| !hashes.contains(k)) {
                    places.insert(Place::Link(before));
                }
            }
        }
        places
    }

    /// Copies the records of `places` as `state` holds them, before a commit changes them.
    pub(super) fn before(&self, state: &State, places: BTreeSet<Place>) -> Before {
        let places = places
            .into_iter()
            .map(|place| {
                let records = self.records_at(state, &place);
                (place, records)
            })
            .collect();
        Before { serial: state.serial, places }
    }

    /// The step from `before` to `state`: the records removed and added at its places, with the
    /// SOA records apart (IXFR sends them around each step).
    pub(super) fn difference(&self, state: &State, before: Before) -> Change {
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        for (place, old) in &before.places {
            let new = self.records_at(state, place);
            journal::diff(old, &new, &mut deleted, &mut added);
        }
        let (mut old_soa, mut new_soa) = (Vec::new(), Vec::new());
        for (list, soa) in [(&mut deleted, &mut old_soa), (&mut added, &mut new_soa)] {
            let mut rest = Vec::with_capacity(list.len());
            for (owner, tail) in journal::records(list) {
                let target = if journal::tail_type(tail) == rtype::SOA { &mut *soa } else { &mut rest };
                target.extend_from_slice(owner);
                target.extend_from_slice(tail);
            }
            *list = rest;
        }
        Change { from: before.serial, to: state.serial, old_soa, deleted, new_soa, added }
    }

    /// The flat records at `place` (signatures and, at the apex, the SOA included).
    fn records_at(&self, state: &State, place: &Place) -> Vec<u8> {
        let mut out = Vec::new();
        match place {
            Place::Name(owner) => self.owner_records(state, owner, true, &mut out),
            Place::Link(key) => self.nsec3_records(state, key, &mut out),
        }
        out
    }
}
