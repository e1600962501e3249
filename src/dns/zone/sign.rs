//! Signatures: signing an RRset when it changes, and signing every set anew for a new epoch.
//!
//! Design note: a signature is made when its set is rendered, never while answering. Its
//! validity window comes from the zone's signing epoch, which the owner of the data sets (from
//! the store, so that every instance sharing it signs alike), never from this instance's clock:
//! with deterministic signatures (`dnssec`), the same set, key and epoch give the same bytes
//! everywhere. Renewal before expiry is a new epoch for the whole zone ([`super::Write::epoch`]):
//! the commit copies every set under the read lock, signs them with no lock held and swaps them
//! in under its write lock.

use std::sync::atomic::Ordering;

use super::nsec3::Key;
use super::{Set, State, Zone};
use crate::dns::dnssec::{RrsetToSign, Validity};
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
    pub fn next_epoch(&self, now: u32) -> Option<u32> {
        let signer = self.signer.as_ref()?;
        let expiry = self.epoch().saturating_add(signer.validity);
        if expiry.wrapping_sub(now) as i32 > signer.refresh as i32 {
            return None;
        }
        self.epoch_at(now)
    }

    /// The signing epoch to record at `now`, due or not (`None`: unsigned): see
    /// [`Self::next_epoch`] for the rounding.
    pub fn epoch_at(&self, now: u32) -> Option<u32> {
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
        let prepared =
            signer.key.prepare(&RrsetToSign { owner, rtype, ttl, rdatas: &rdatas }, validity, &self.apex);
        // The SOA's signature changes with every serial: not worth keeping.
        let rrsig =
            self.memo.sign(&signer.key, prepared, (owner, rtype), (rtype != rtype::SOA).then_some(epoch));
        let mut sigs = RrSet::default();
        sigs.add(rtype::RRSIG, ttl, &rrsig);
        Set { records, sigs }
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
    pub fn earliest_signature_expiry(&self) -> Option<u32> {
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
    use super::parallel_map;

    #[test]
    fn parallel_map_keeps_the_order_on_both_sides_of_the_threshold() {
        for n in [0, 1, 511, 512, 513, 10_007] {
            let items: Vec<usize> = (0..n).collect();
            let out = parallel_map(items, |i| i * 3);
            assert_eq!(out, (0..n).map(|i| i * 3).collect::<Vec<_>>(), "n = {n}");
        }
    }
}
