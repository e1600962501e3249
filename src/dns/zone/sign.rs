//! Signatures: signing an RRset when it changes, and signing every set anew for a new epoch.
//!
//! Design note: a signature is made when its set is rendered, never while answering. Its
//! validity window comes from the zone's signing epoch, which the owner of the data sets (from
//! the store, so that every instance sharing it signs alike), never from this instance's clock:
//! with deterministic signatures (`dnssec`), the same set, key and epoch give the same bytes
//! everywhere. Renewal before expiry is a new epoch for the whole zone ([`super::Write::epoch`]):
//! the commit copies every set under the read lock, signs them with no lock held and swaps them
//! in under its write lock.
//!
//! Keys: the zone signs with the key set in force ([`KeySet`]), each set with every key whose
//! role covers it: the apex DNSKEY, CDS and CDNSKEY sets with the keys that sign the key set,
//! every other set with the zone-signing keys (two of each during parts of a rollover). The
//! owner of the keys replaces the set at each step of a rollover, as a write of its own
//! ([`super::Write::keys`]); a step that changes which keys sign the zone data signs every set
//! anew, one that changes only the apex key sets signs those alone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::nsec3::Key;
use super::{Set, State, Zone};
use crate::dns::dnssec::{KeySet, RrsetToSign, Validity};
use crate::dns::wire::{RrSet, rtype};

/// Where a set lives, to swap its new signatures in.
pub(super) enum SetAt {
    /// A static name's set, by index.
    Static(Vec<u8>, usize),
    /// A registered subdomain's TXT set.
    Dynamic(Vec<u8>),
    /// An NSEC3 link.
    Nsec3(Key),
}

/// Sets to sign anew: where each lives, its owner and its records.
pub(super) type Unsigned = Vec<(SetAt, Vec<u8>, RrSet)>;

/// Sets signed anew, by where they live.
pub(super) type Resigned = Vec<(SetAt, Set)>;

impl Zone {
    /// The signing epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// The validity window of signatures made at `epoch`: from an hour before it (clocks of
    /// validators run behind) to `validity` after it.
    fn validity(epoch: u32, validity: u32) -> Validity {
        Validity { inception: epoch.saturating_sub(3600), expiration: epoch.saturating_add(validity) }
    }

    /// The signing epoch to record when signatures of the current one expire within the
    /// refresh window at `now` (`None`: not due, or unsigned).
    ///
    /// Rounded down, on the hour where the lifetimes allow, to a step well inside the margin
    /// between validity and refresh otherwise, so the new epoch is never due again at once.
    /// (Instances need not agree on it: the first recorded wins, the others apply it.)
    pub(crate) fn next_epoch(&self, now: u32) -> Option<u32> {
        let signer = self.signer.as_ref()?;
        let expiry = self.epoch().saturating_add(signer.validity);
        if expiry.wrapping_sub(now) as i32 > signer.refresh as i32 {
            return None;
        }
        self.epoch_at(now)
    }

    /// The signing epoch to record at `now`, due or not (`None`: unsigned): see
    /// [`Self::next_epoch`] for the rounding.
    pub(crate) fn epoch_at(&self, now: u32) -> Option<u32> {
        let signer = self.signer.as_ref()?;
        let step = (signer.validity.saturating_sub(signer.refresh) / 4).clamp(1, 3600);
        Some(now - now % step)
    }

    /// Signs `records` owned by `owner` (no-op when unsigned), reusing a remembered signature
    /// for the same input when there is one (see `memo`).
    pub(super) fn signed(&self, owner: &[u8], records: RrSet) -> Set {
        let Some(signer) = &self.signer else { return Set { records, ..Set::default() } };
        let Some((rtype, ttl)) = records.type_and_ttl() else { return Set { records, ..Set::default() } };
        let epoch = self.epoch();
        let validity = Self::validity(epoch, signer.validity);
        let rdatas: Vec<&[u8]> = records.rdatas().collect();
        let keys = self.keys();
        let key_set =
            owner == self.apex.as_slice() && [rtype::DNSKEY, rtype::CDS, rtype::CDNSKEY].contains(&rtype);
        let mut sigs = RrSet::default();
        let signing = keys.with(|r| if key_set { r.signs_keys } else { r.signs_zone });
        for (i, key) in signing.enumerate() {
            // The rdatas come out of an `RrSet`, which holds none too long for a record: this
            // cannot fail, and a set it failed for would go unsigned rather than wrongly signed.
            let Ok(prepared) =
                key.prepare(&RrsetToSign { owner, rtype, ttl, rdatas: &rdatas }, validity, &self.apex)
            else {
                continue;
            };
            // The SOA's signature changes with every serial: not worth keeping.
            let keep = (rtype != rtype::SOA && i == 0).then_some(epoch);
            sigs.add(rtype::RRSIG, ttl, &self.memo.sign(key, prepared, (owner, rtype), keep));
        }
        Set { records, sigs }
    }

    /// The key set in force.
    pub fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Installs `keys` as the key set in force; returns whether the keys that sign the zone
    /// data changed (then every set is signed anew). The commit of [`super::Write::keys`] calls
    /// it before it signs anything, and renders the apex key sets under its write lock.
    pub(super) fn install_keys(&self, keys: KeySet) -> bool {
        let zone_signers = |set: &KeySet| -> Vec<Vec<u8>> {
            set.with(|r| r.signs_zone).map(|k| k.dnskey_rdata().to_vec()).collect()
        };
        let changed = zone_signers(&self.keys()) != zone_signers(&keys);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        changed
    }

    /// Renders and signs the apex DNSKEY, CDS and CDNSKEY sets from the key set in force (a set
    /// with no record goes); returns how many sets it signed. (The apex's NSEC3 link lists its
    /// types: the caller relinks it.)
    pub(super) fn render_apex_keys(&self, state: &mut State) -> usize {
        let keys = self.keys();
        let ttl = keys.dnskey_ttl;
        let named: Vec<&crate::dns::dnssec::SigningKey> =
            if keys.publish_cds { keys.with(|r| r.cds).collect() } else { Vec::new() };
        let mut dnskey = RrSet::default();
        for key in keys.with(|r| r.dnskey) {
            dnskey.add(rtype::DNSKEY, ttl, key.dnskey_rdata());
        }
        let (mut cds, mut cdnskey) = (RrSet::default(), RrSet::default());
        for key in named {
            cds.add(rtype::CDS, ttl, &key.ds_rdata(&self.apex));
            cdnskey.add(rtype::CDNSKEY, ttl, key.dnskey_rdata());
        }
        let sets: Vec<(u16, Option<Set>)> =
            [(rtype::DNSKEY, dnskey), (rtype::CDS, cds), (rtype::CDNSKEY, cdnskey)]
                .into_iter()
                .map(|(t, records)| (t, (!records.is_empty()).then(|| self.signed(&self.apex, records))))
                .collect();
        let apex = state.nodes.entry(self.apex.clone()).or_default();
        let mut count = 0;
        for (kind, set) in sets {
            let at = apex.sets.iter().position(|s| s.records.type_and_ttl().map(|(t, _)| t) == Some(kind));
            match (at, set) {
                (Some(at), Some(set)) => apex.sets[at] = set,
                (None, Some(set)) => apex.sets.push(set),
                (Some(at), None) => {
                    apex.sets.remove(at);
                    continue;
                }
                (None, None) => continue,
            }
            count += 1;
        }
        count
    }

    /// The largest TTL the zone serves now (static sets, the SOA and negative answers, TXT
    /// records, persist records when there are any, the apex key sets): how long a validator
    /// may hold a signature made by a key that stops signing (RFC 7583's MaxTTL).
    pub(crate) fn max_ttl(&self) -> u32 {
        let state = self.read();
        let statics = state.nodes.values().flat_map(|n| &n.sets).filter_map(|s| s.records.type_and_ttl());
        let persist = if state.persist_names > 0 { self.persist_ttl } else { 0 };
        statics
            .map(|(_, ttl)| ttl)
            .chain([self.soa_ttl, self.negative_ttl, self.txt_ttl, persist, self.keys().dnskey_ttl])
            .max()
            .unwrap_or(0)
    }

    /// Every signed set of `state` but the SOA (rendered where the serial moves), copied to be
    /// signed anew for a new epoch outside the lock (empty when unsigned).
    pub(super) fn unsigned_sets(&self, state: &State) -> Unsigned {
        let mut work = Vec::new();
        if self.signer.is_none() {
            return work;
        }
        for (owner, node) in &state.nodes {
            if self.cut_at_or_above(owner).is_some() {
                continue;
            }
            for (i, set) in node.sets.iter().enumerate() {
                if !set.records.is_empty() && set.records.type_and_ttl().map(|(t, _)| t) != Some(rtype::SOA) {
                    work.push((SetAt::Static(owner.clone(), i), owner.clone(), set.records.clone()));
                }
            }
        }
        for (label, entry) in &state.dynamic {
            if !entry.set.records.is_empty() {
                work.push((
                    SetAt::Dynamic(label.clone()),
                    self.subdomain_name(label),
                    entry.set.records.clone(),
                ));
            }
        }
        for (key, entry) in &state.nsec3 {
            work.push((SetAt::Nsec3(*key), key.owner(&self.apex), entry.set.records.clone()));
        }
        work
    }

    /// Signs `work` at the current epoch, on every core (no lock held).
    pub(super) fn sign_sets(&self, work: Unsigned) -> Resigned {
        parallel_map(work, |(at, owner, records)| (at, self.signed(&owner, records)))
    }

    /// Swaps the signed sets into `state`, each where its records are still the same; returns
    /// how many.
    pub(super) fn install_resigned(&self, state: &mut State, signed: Resigned) -> usize {
        let mut count = 0;
        for (at, set) in signed {
            let target = match &at {
                SetAt::Static(owner, i) => state.nodes.get_mut(owner).and_then(|n| n.sets.get_mut(*i)),
                SetAt::Dynamic(label) => state.dynamic.get_mut(label).map(|e| &mut e.set),
                SetAt::Nsec3(key) => state.nsec3.get_mut(key).map(|e| &mut e.set),
            };
            if let Some(target) = target
                && target.records == set.records
            {
                *target = set;
                count += 1;
            }
        }
        count
    }

    /// When the zone's earliest signature expires (seconds since the epoch); `None` when
    /// unsigned. Every signature carries the current epoch's window (a new epoch re-signs every
    /// set), so this is the epoch plus the validity, without a scan.
    pub(crate) fn earliest_signature_expiry(&self) -> Option<u32> {
        let signer = self.signer.as_ref()?;
        Some(self.epoch().saturating_add(signer.validity))
    }
}

/// Below this many items, [`parallel_map`] works on the calling thread: starting threads costs
/// more than a few signatures.
const PARALLEL_FROM: usize = 512;

/// `items.map(f)` in order, spread over the machine's cores for large inputs: bulk signing (a
/// start-up load, a new epoch, a rebuilt chain) is a signature per set and nothing else.
pub(super) fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || items.len() < PARALLEL_FROM {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let chunk: Vec<T> = items.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ask_with, at, settings, val};
    use super::super::{Set, Signer, Zone};
    use super::parallel_map;
    use crate::dns::dnssec::{Algorithm, KeySet, Roles, SigningKey, ZoneKey};
    use crate::dns::wire::rtype;

    /// The apex set of `kind`, if the zone has one.
    fn apex_set(zone: &Zone, kind: u16) -> Option<Set> {
        zone.read().nodes[&zone.apex].get(kind).cloned()
    }

    /// The algorithms of the RRSIGs of `set`, in order.
    fn signers(set: &Set) -> Vec<u8> {
        set.sigs.rdatas().map(|rrsig| rrsig[2]).collect()
    }

    #[test]
    fn a_commit_with_keys_publishes_and_signs_as_the_roles_say_and_moves_the_serial() {
        let key = |a| SigningKey::from_pkcs8(a, &SigningKey::generate(a).unwrap()).unwrap();
        let (old, new) = (key(Algorithm::EcdsaP256Sha256), key(Algorithm::Ed25519));
        let signer = Signer { key: old.clone(), validity: 3600, refresh: 600 };
        let zone = Zone::new(&settings(), Some(signer)).unwrap();
        at(&zone, 1000, |w| {
            w.txt("abc", &[val("v")]);
        });
        let txt = |zone: &Zone| zone.read().dynamic[b"abc".as_slice()].set.clone();
        let step = |o: &str, n: &str, publish_cds| KeySet {
            keys: vec![
                ZoneKey { key: old.clone(), roles: Roles::parse(o).unwrap() },
                ZoneKey { key: new.clone(), roles: Roles::parse(n).unwrap() },
            ],
            dnskey_ttl: 5,
            publish_cds,
        };
        // New-algorithm signatures everywhere, its DNSKEY not yet published.
        let commit = at(&zone, 1001, |w| {
            w.keys(step("DKZC", "KZ", true));
        });
        assert!(commit.resigned >= 5, "{commit:?}");
        assert_eq!(zone.serial(), 1001);
        let dnskey = apex_set(&zone, rtype::DNSKEY).unwrap();
        assert_eq!((dnskey.records.rdatas().count(), signers(&dnskey)), (1, vec![13, 15]));
        assert_eq!(dnskey.records.type_and_ttl(), Some((rtype::DNSKEY, 5)));
        assert_eq!(signers(&txt(&zone)), vec![13, 15]);
        assert_eq!(signers(&apex_set(&zone, rtype::SOA).unwrap()), vec![13, 15]);
        // Both published, the new one alone signs the zone, no CDS: the apex proves its absence.
        at(&zone, 1002, |w| {
            w.keys(step("DK", "DKZC", false));
        });
        assert_eq!(zone.serial(), 1002);
        let dnskey = apex_set(&zone, rtype::DNSKEY).unwrap();
        assert_eq!((dnskey.records.rdatas().count(), signers(&dnskey)), (2, vec![13, 15]));
        assert_eq!(signers(&txt(&zone)), vec![15]);
        assert!(apex_set(&zone, rtype::CDS).is_none() && apex_set(&zone, rtype::CDNSKEY).is_none());
        let nodata = ask_with(&zone, "auth.example.org", rtype::CDS, true);
        assert_eq!((nodata[3] & 0x0F, u16::from_be_bytes([nodata[6], nodata[7]])), (0, 0));
        // Only the apex key sets change when the zone's signers stay: the TXT keeps its RRSIG.
        let before = txt(&zone).sigs;
        let commit = at(&zone, 1003, |w| {
            w.keys(step("", "DKZC", true));
        });
        assert_eq!(txt(&zone).sigs, before);
        // (A zone with no journal records a difference only for a step that does not sign
        // every set anew; with transfers on, every step is one.)
        let diff = commit.diff.expect("a difference");
        assert!(!diff.added.is_empty() && !diff.deleted.is_empty(), "the apex key sets changed");
        let cds = apex_set(&zone, rtype::CDS).unwrap();
        assert_eq!(cds.records.rdatas().next().unwrap()[2], 15, "CDS names the new key");
        assert_eq!(signers(&apex_set(&zone, rtype::DNSKEY).unwrap()), vec![15]);
    }

    #[test]
    fn parallel_map_keeps_the_order_on_both_sides_of_the_threshold() {
        for n in [0, 1, 511, 512, 513, 10_007] {
            let items: Vec<usize> = (0..n).collect();
            let out = parallel_map(items, |i| i * 3);
            assert_eq!(out, (0..n).map(|i| i * 3).collect::<Vec<_>>(), "n = {n}");
        }
    }
}
