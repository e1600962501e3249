//! Remembered signatures: what lets a restart load a signed zone instead of signing it again.
//!
//! Design note: signatures are deterministic, so a signature is a function of the key and the
//! bytes it signs; [`SigningKey::memo_digest`] names that input. Once collecting is on
//! ([`Zone::collect_signatures`]), each commit returns the signatures it made
//! ([`Commit::signatures`]), and the owner keeps them (in the store, shared by every instance);
//! before a bulk load the owner gives them back ([`Zone::remember_signatures`]) and the zone
//! reuses each one whose digest matches instead of signing. A remembered signature is only ever
//! used for exactly the input it was made for, so a stale or foreign entry costs a signature,
//! never a wrong answer (the store's rows are trusted to be what was written: a row damaged in
//! storage would be served as is). The remembered set is held only for the bulk load
//! ([`Zone::forget_remembered`] frees it): at a million names it is a few hundred megabytes.
//!
//! Why the commit's result carries them and not its difference: a kept signature needs its
//! digest, made from the key and the signed bytes, and those include the records of the set it
//! signs. A set signed anew for a new epoch or a new key changes only its RRSIG, so the
//! difference holds the new RRSIG without the records under it (and a load into an empty zone
//! has no difference at all). The digest is at hand only where the signature is made, so the
//! signing notes each one as it signs (on whichever thread signs it) and the commit takes what
//! its own signing noted into its result before it lets the next write begin: the commit is
//! the one place signatures leave the zone.
//!
//! Not collected: the SOA's signature, which changes with every serial and is one signature
//! at start.
//!
//! Each new signature names the set it signs, its owner and type, as a [`slot`]: a set signed
//! again (a name's TXT values changed, an NSEC3 link moved) supersedes its previous signature,
//! which signs data no longer served and would match nothing at the next load. The owner keeps
//! one row per slot, so the kept signatures stay about one per signed set however often a name
//! changes.
//!
//! [`SigningKey::memo_digest`]: crate::dns::dnssec::SigningKey::memo_digest
//! [`Commit::signatures`]: super::Commit::signatures

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use super::Zone;
use crate::dns::dnssec::{MemoDigest, Prepared, SIGNATURE_LEN, Signature, SigningKey};

/// A signature made for the owner to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewSignature {
    /// The signing epoch it was made at.
    pub epoch: u32,
    /// The set it signs (see [`slot`]): a later signature of the same slot supersedes it.
    pub slot: u64,
    /// Its memo digest.
    pub digest: MemoDigest,
    /// The signature.
    pub signature: Signature,
}

/// Names the set of type `rtype` at `owner` (lower-case wire form): the first 8 bytes of
/// SHA-256 over both. Stable across instances and versions, since the owner's store compares
/// them; two sets sharing a slot (about a chance in ten million at a million names) only cost
/// one of them a signature made again at a start.
pub(super) fn slot(owner: &[u8], rtype: u16) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(owner);
    ctx.update(&rtype.to_be_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&ctx.finish().as_ref()[..8]);
    u64::from_be_bytes(head)
}

/// The zone's remembered and new signatures.
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// Signatures to reuse, by digest (filled for a bulk load, emptied after).
    known: RwLock<HashMap<MemoDigest, Signature>>,
    /// Whether `known` has anything (a lock-free test on the path of every signature).
    any_known: AtomicBool,
    /// Whether new signatures are collected for the owner.
    collect: AtomicBool,
    /// Signatures made by the commit under way, which takes them into its result.
    made_now: Mutex<Vec<NewSignature>>,
    /// Signatures reused from `known` since it was filled.
    reused: AtomicU64,
    /// Signatures reused since the zone was built.
    reused_total: AtomicU64,
    /// Signatures made (not reused) since the zone was built.
    made: AtomicU64,
}

impl Memo {
    /// The RRSIG rdata for `prepared`, the set of type `rtype` at `owner`: remembered, or made
    /// now (and collected, as made at signing epoch `collect`, when that is given and
    /// collecting is on).
    pub(super) fn sign(
        &self,
        key: &SigningKey,
        prepared: Prepared,
        (owner, rtype): (&[u8], u16),
        collect: Option<u32>,
    ) -> Vec<u8> {
        let known = self.any_known.load(Ordering::Relaxed);
        let collect = collect.filter(|_| self.collect.load(Ordering::Relaxed));
        if !known && collect.is_none() {
            self.made.fetch_add(1, Ordering::Relaxed);
            return key.finish(prepared);
        }
        let digest = key.memo_digest(&prepared);
        if known {
            let found = self.known.read().unwrap_or_else(PoisonError::into_inner).get(&digest).copied();
            if let Some(signature) = found {
                self.reused.fetch_add(1, Ordering::Relaxed);
                return prepared.with_signature(&signature);
            }
        }
        self.made.fetch_add(1, Ordering::Relaxed);
        let rrsig = key.finish(prepared);
        if let Some(epoch) = collect
            && let Some(tail) = rrsig.len().checked_sub(SIGNATURE_LEN).and_then(|at| rrsig.get(at..))
            && let Ok(signature) = Signature::try_from(tail)
        {
            let new = NewSignature { epoch, slot: slot(owner, rtype), digest, signature };
            self.made_now.lock().unwrap_or_else(PoisonError::into_inner).push(new);
        }
        rrsig
    }
}

impl Zone {
    /// Starts (or stops) collecting every signature made from now on: each commit returns
    /// those it made in [`super::Commit::signatures`].
    pub(crate) fn collect_signatures(&self, on: bool) {
        self.memo.collect.store(on, Ordering::Relaxed);
    }

    /// The signatures made since the last call: the commit under way takes those it made (it
    /// holds the writer's turn, so no other commit signs meanwhile).
    pub(super) fn take_made_signatures(&self) -> Vec<NewSignature> {
        std::mem::take(&mut *self.memo.made_now.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes room for `count` more remembered signatures.
    pub(crate) fn expect_signatures(&self, count: usize) {
        self.memo.known.write().unwrap_or_else(PoisonError::into_inner).reserve(count);
    }

    /// Adds signatures made before (by this or another instance) for signing to reuse.
    pub(crate) fn remember_signatures(&self, signatures: impl IntoIterator<Item = (MemoDigest, Signature)>) {
        let mut known = self.memo.known.write().unwrap_or_else(PoisonError::into_inner);
        known.extend(signatures);
        self.memo.any_known.store(!known.is_empty(), Ordering::Relaxed);
    }

    /// How many signatures this zone has made since it was built (reused ones not counted).
    pub(crate) fn signatures_made(&self) -> u64 {
        self.memo.made.load(Ordering::Relaxed)
    }

    /// How many remembered signatures this zone has reused since it was built.
    pub(crate) fn signatures_reused(&self) -> u64 {
        self.memo.reused_total.load(Ordering::Relaxed)
    }

    /// Frees the remembered signatures; returns how many were reused since they were given.
    pub(crate) fn forget_remembered(&self) -> u64 {
        self.memo.any_known.store(false, Ordering::Relaxed);
        *self.memo.known.write().unwrap_or_else(PoisonError::into_inner) = HashMap::new();
        let reused = self.memo.reused.swap(0, Ordering::Relaxed);
        self.memo.reused_total.fetch_add(reused, Ordering::Relaxed);
        reused
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ask_with, at, settings, step, val};
    use super::super::{Commit, Signer, Zone};
    use crate::dns::dnssec::{Algorithm, SigningKey};
    use crate::dns::wire::rtype;

    /// Names in the test zone: more than `sign::PARALLEL_FROM`, so bulk signing runs threaded.
    const NAMES: usize = 600;

    fn zone(pkcs8: &[u8]) -> Zone {
        let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, pkcs8).unwrap();
        Zone::new(&settings(), Some(Signer { key, validity: 14 * 86400, refresh: 7 * 86400 })).unwrap()
    }

    /// Loads `NAMES` subdomains, name `changed` with another value, at one serial and epoch.
    fn load(zone: &Zone, changed: Option<usize>) -> Commit {
        let names: Vec<String> = (0..NAMES).map(|i| format!("sub{i:04}")).collect();
        let entries = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), vec![if Some(i) == changed { val("new") } else { val("old") }]));
        at(zone, 4242, |w| {
            w.epoch(1_800_000_000).load(entries);
        })
    }

    #[test]
    fn kept_signatures_are_reused_and_answers_stay_byte_for_byte() {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let first = zone(&pkcs8);
        first.collect_signatures(true);
        let kept = load(&first, None).signatures;
        // A TXT set and an NSEC3 link per name, and the static sets.
        assert!(kept.len() > 2 * NAMES, "{} kept", kept.len());
        assert!(first.take_made_signatures().is_empty(), "the commit took them all");

        let second = zone(&pkcs8);
        second.remember_signatures(kept.iter().map(|s| (s.digest, s.signature)));
        let before = second.signatures_made();
        load(&second, Some(7));
        let made = second.signatures_made() - before;
        let reused = second.forget_remembered();
        // Name 7's TXT set and the SOA (not kept: it changes with every serial).
        assert!(made <= 3, "{made} signatures made");
        assert!(reused as usize >= kept.len() - 1, "{reused} of {} reused", kept.len());
        for i in (0..NAMES).filter(|&i| i != 7).step_by(37) {
            for qtype in [rtype::TXT, rtype::A] {
                let name = format!("sub{i:04}.auth.example.org");
                assert_eq!(
                    ask_with(&first, &name, qtype, true),
                    ask_with(&second, &name, qtype, true),
                    "{name}"
                );
            }
        }
        let nx = "nothing-here.auth.example.org";
        assert_eq!(ask_with(&first, nx, rtype::TXT, true), ask_with(&second, nx, rtype::TXT, true));
        // Name 7 got a signature of its own, not a remembered one of the other value.
        let changed = "sub0007.auth.example.org";
        assert_ne!(ask_with(&first, changed, rtype::TXT, true), ask_with(&second, changed, rtype::TXT, true));
    }

    #[test]
    fn a_signature_kept_for_another_key_or_epoch_is_never_used() {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let first = zone(&pkcs8);
        first.collect_signatures(true);
        let kept = load(&first, None).signatures;
        // Another key: no digest matches.
        let other = zone(&SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap());
        other.remember_signatures(kept.iter().map(|s| (s.digest, s.signature)));
        load(&other, None);
        assert_eq!(other.forget_remembered(), 0);
        // The same key and data at another epoch (another validity window): none matches either.
        let later = zone(&pkcs8);
        later.remember_signatures(kept.iter().map(|s| (s.digest, s.signature)));
        let names: Vec<String> = (0..NAMES).map(|i| format!("sub{i:04}")).collect();
        let entries = names.iter().map(|name| (name.as_str(), vec![val("old")]));
        at(&later, 4242, |w| {
            w.epoch(1_800_003_600).load(entries);
        });
        assert_eq!(later.forget_remembered(), 0);
    }

    #[test]
    fn nothing_is_collected_unless_asked_and_each_commit_returns_what_it_signed() {
        let pkcs8 = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let key = SigningKey::from_pkcs8(Algorithm::Ed25519, &pkcs8).unwrap();
        let zone = Zone::new(&settings(), Some(Signer { key, validity: 86400, refresh: 3600 })).unwrap();
        assert!(load(&zone, None).signatures.is_empty(), "not collecting");
        zone.collect_signatures(true);
        let taken = step(&zone, |w| {
            w.txt("sub0001", &[val("x")]);
        })
        .signatures;
        // The TXT set only: its NSEC3 link lists the same types as before, and the SOA is not kept.
        assert_eq!(taken.len(), 1, "{taken:?}");
        // Signed again, the set keeps its slot; another name's set has its own (and a new name's
        // link is signed too, and the link before it).
        let again = step(&zone, |w| {
            w.txt("sub0001", &[val("y")]);
        })
        .signatures;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].slot, taken[0].slot);
        assert_ne!(again[0].digest, taken[0].digest);
        let other = step(&zone, |w| {
            w.txt("sub0002", &[val("x")]);
        })
        .signatures;
        assert_eq!(other.len(), 1);
        assert_ne!(other[0].slot, taken[0].slot);
        let new_name = step(&zone, |w| {
            w.txt("brand-new", &[val("x")]);
        })
        .signatures;
        assert_eq!(new_name.len(), 3, "its TXT set, its link, the link before it: {new_name:?}");
        // A new epoch: every set but the SOA, returned by the commit that signed them.
        let sets = zone.unsigned_sets(&zone.read()).len();
        let epoch = zone.epoch() + 3600;
        let renewed = step(&zone, |w| {
            w.epoch(epoch);
        })
        .signatures;
        assert_eq!(renewed.len(), sets);
        assert!(renewed.iter().all(|s| s.epoch == epoch));
    }
}
