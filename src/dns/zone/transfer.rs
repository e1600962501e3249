//! The zone's side of zone transfers: consistent snapshots for AXFR, and the journal of
//! changes for IXFR, recorded where the serial moves.
//!
//! Design note: transfers are off until [`Zone::enable_transfers`] is called (the daemon does,
//! when `[transfer]` is configured); until then every hook here returns at once and the zone
//! behaves exactly as before.
//!
//! Journaling works in two steps, both under the zone's write lock. Before a writer changes
//! the records of a name, it calls [`Zone::touch_name`] (or [`Zone::touch_nsec3`] for a link of
//! the NSEC3 chain): the first touch of a name since the last serial bump copies the name's
//! records as they are. When the serial moves, [`Zone::commit_changes`] copies the touched
//! names' records again and keeps the difference as one journal entry, with the old and new
//! SOA. So an entry holds exactly what changed (a TXT and its RRSIG, two NSEC3 links, the SOA's
//! RRSIG), whatever the writer did to get there, and the writers only need to say which names
//! they touch. A change made without journaling (the bulk load of an empty zone) clears the
//! journal instead, so no secondary is ever sent an incomplete difference.
//!
//! Snapshots are copied as flat records under the read lock (a memory copy, no allocation per
//! record) and written out to the network after it is released, so queries never wait for a
//! transfer. Every hook takes the journal's mutex only while the zone's lock is held, always in
//! that order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::{Key, Set, State, Zone};
use crate::dns::journal::{self, Change, Journal, Limits};
use crate::dns::wire::rtype;
use crate::dns::xfr::TransferSettings;

/// A name whose records a writer is about to change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Touch {
    /// An owner name among the static names or the registered subdomains (lower-case wire).
    Name(Vec<u8>),
    /// A link of the NSEC3 chain.
    Nsec3(Key),
}

/// Touched names and the journal, behind one mutex.
#[derive(Debug)]
struct Log {
    /// Records of each touched name as they were before the first touch since the last bump.
    pending: BTreeMap<Touch, Vec<u8>>,
    /// Changes so far.
    journal: Journal,
    /// Set by [`Zone::forget_changes`]: the next bump clears the journal instead of adding.
    reset: bool,
}

/// Everything transfers need from the zone, present once they are enabled.
#[derive(Debug)]
pub struct Transfers {
    /// Who may transfer, with which key, and whom to notify.
    settings: TransferSettings,
    /// Pending touches and the journal.
    log: Mutex<Log>,
    /// The current serial, for the NOTIFY senders.
    serial: watch::Sender<u32>,
    /// Size of the last snapshot, to allocate the next one at once.
    snapshot_hint: AtomicUsize,
}

impl Transfers {
    /// The journal and pending touches, surviving a panicked holder.
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The whole zone at one serial, as flat records.
#[derive(Debug)]
pub struct Snapshot {
    /// The serial.
    pub serial: u32,
    /// The SOA record (owner and tail).
    pub soa: Vec<u8>,
    /// Every other record, flat.
    pub records: Vec<u8>,
}

/// What an IXFR request gets.
#[derive(Debug)]
pub enum IxfrPlan {
    /// The client is current (or ahead): the SOA alone.
    UpToDate {
        /// The current SOA record.
        soa: Vec<u8>,
    },
    /// The journal reaches back to the client's serial: the differences.
    Incremental {
        /// The current SOA record.
        soa: Vec<u8>,
        /// The steps from the client's serial to the current one.
        changes: Vec<Arc<Change>>,
    },
    /// The journal does not reach back that far: the whole zone.
    Full(Snapshot),
}

/// Appends `set`'s records (and signatures) at `owner` as flat records.
fn push_set(out: &mut Vec<u8>, owner: &[u8], set: &Set, with_soa: bool) {
    for rrset in [&set.records, &set.sigs] {
        for tail in rrset.tails() {
            if with_soa || journal::tail_type(tail) != rtype::SOA {
                out.extend_from_slice(owner);
                out.extend_from_slice(tail);
            }
        }
    }
}

impl Zone {
    /// Turns transfers on: from now on changes are journaled and NOTIFY senders may watch the
    /// serial. Returns `false` if they were on already.
    pub fn enable_transfers(&self, settings: TransferSettings, limits: Limits) -> bool {
        let state = self.write();
        let (serial, _) = watch::channel(state.serial);
        let transfers = Transfers {
            settings,
            log: Mutex::new(Log { pending: BTreeMap::new(), journal: Journal::new(limits), reset: false }),
            serial,
            snapshot_hint: AtomicUsize::new(0),
        };
        self.transfer.set(transfers).is_ok()
    }

    /// The apex in lower-case wire form.
    pub fn apex_wire(&self) -> &[u8] {
        &self.apex
    }

    /// The transfer settings, when transfers are on.
    pub fn transfers(&self) -> Option<&TransferSettings> {
        self.transfer.get().map(|t| &t.settings)
    }

    /// A receiver that sees every new serial, when transfers are on.
    pub fn serial_watch(&self) -> Option<watch::Receiver<u32>> {
        self.transfer.get().map(|t| t.serial.subscribe())
    }

    /// Entries and bytes in the journal (0 when transfers are off).
    pub fn journal_size(&self) -> (usize, usize) {
        self.transfer.get().map_or((0, 0), |t| {
            let log = t.log();
            (log.journal.len(), log.journal.bytes())
        })
    }

    /// The current SOA record as a flat record, with its serial.
    pub fn soa_record(&self) -> (u32, Vec<u8>) {
        let state = self.read();
        (state.serial, self.current_soa(&state))
    }

    /// The SOA record of `state`.
    fn current_soa(&self, state: &State) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(soa) = state.nodes.get(&self.apex).and_then(|apex| apex.get(rtype::SOA)) {
            for tail in soa.records.tails() {
                out.extend_from_slice(&self.apex);
                out.extend_from_slice(tail);
            }
        }
        out
    }

    /// Appends every record at `owner` (signatures included) as flat records; the SOA record
    /// itself only with `with_soa`.
    fn owner_records(&self, state: &State, owner: &[u8], with_soa: bool, out: &mut Vec<u8>) {
        if let Some(node) = state.nodes.get(owner) {
            for set in &node.sets {
                push_set(out, owner, set, with_soa);
            }
        }
        let label_len = usize::from(owner[0]);
        if 1 + label_len + self.apex.len() == owner.len()
            && let Some(entry) = state.dynamic.get(&owner[1..=label_len])
        {
            push_set(out, owner, &entry.set, false);
        }
    }

    /// Appends the NSEC3 record of `key` and its signature as flat records.
    fn nsec3_records(&self, state: &State, key: &Key, out: &mut Vec<u8>) {
        if let Some(entry) = state.nsec3.get(key) {
            push_set(out, &key.owner(&self.apex), &entry.set, false);
        }
    }

    /// Records of a touched name as they are now.
    fn touched_records(&self, state: &State, touch: &Touch) -> Vec<u8> {
        let mut out = Vec::new();
        match touch {
            Touch::Name(owner) => self.owner_records(state, owner, true, &mut out),
            Touch::Nsec3(key) => self.nsec3_records(state, key, &mut out),
        }
        out
    }

    /// Notes that the records of `owner` are about to change (journal hook).
    pub(super) fn touch_name(&self, state: &State, owner: &[u8]) {
        self.touch(state, Touch::Name(owner.to_vec()));
    }

    /// Notes that the NSEC3 link `key` is about to change (journal hook).
    pub(super) fn touch_nsec3(&self, state: &State, key: Key) {
        self.touch(state, Touch::Nsec3(key));
    }

    /// Keeps the records of `touch` as they are, unless they were kept since the last bump.
    fn touch(&self, state: &State, touch: Touch) {
        let Some(transfers) = self.transfer.get() else { return };
        let mut log = transfers.log();
        if !log.reset && !log.pending.contains_key(&touch) {
            let old = self.touched_records(state, &touch);
            log.pending.insert(touch, old);
        }
    }

    /// Whether names were touched since the last serial bump.
    pub(super) fn has_pending_changes(&self) -> bool {
        self.transfer.get().is_some_and(|t| !t.log().pending.is_empty())
    }

    /// Records the step from `old_serial` to the current serial in the journal: the difference
    /// of every touched name, and the two SOA records (journal hook, called where the serial
    /// moves, after the SOA was rendered anew).
    pub(super) fn commit_changes(&self, state: &State, old_serial: u32) {
        let Some(transfers) = self.transfer.get() else { return };
        let mut log = transfers.log();
        let pending = std::mem::take(&mut log.pending);
        if std::mem::take(&mut log.reset) {
            log.journal.clear();
            drop(log);
            transfers.serial.send_replace(state.serial);
            return;
        }
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        let (mut old_soa, mut new_soa) = (Vec::new(), Vec::new());
        for (touch, old) in pending {
            let new = self.touched_records(state, &touch);
            journal::diff(&old, &new, &mut deleted, &mut added);
        }
        // The SOA travels apart from the other records: take it out of the difference.
        for (list, soa) in [(&mut deleted, &mut old_soa), (&mut added, &mut new_soa)] {
            let mut rest = Vec::with_capacity(list.len());
            for (owner, tail) in journal::records(list) {
                let target = if journal::tail_type(tail) == rtype::SOA { &mut *soa } else { &mut rest };
                target.extend_from_slice(owner);
                target.extend_from_slice(tail);
            }
            *list = rest;
        }
        if old_soa.is_empty() {
            // The apex was not touched: nothing is known of the old SOA; start afresh.
            log.journal.clear();
        } else {
            let change = Change { from: old_serial, to: state.serial, old_soa, deleted, new_soa, added };
            log.journal.push(change);
        }
        drop(log);
        transfers.serial.send_replace(state.serial);
    }

    /// Drops the journal and pending touches, and ignores touches until the next serial bump:
    /// the zone is changing in a way not journaled, and secondaries must take a full transfer
    /// (journal hook).
    pub(super) fn forget_changes(&self) {
        if let Some(transfers) = self.transfer.get() {
            let mut log = transfers.log();
            log.pending.clear();
            log.journal.clear();
            log.reset = true;
        }
    }

    /// Copies the whole zone as flat records, under the read lock.
    fn snapshot_of(&self, state: &State) -> Snapshot {
        let hint = self.transfer.get().map_or(0, |t| t.snapshot_hint.load(Ordering::Relaxed));
        let mut records = Vec::with_capacity(hint + hint / 8);
        // The apex first: secondaries see its NS and DNSKEY early; not required, just tidy.
        self.owner_records(state, &self.apex, false, &mut records);
        for (owner, node) in &state.nodes {
            if *owner != self.apex {
                for set in &node.sets {
                    push_set(&mut records, owner, set, true);
                }
            }
        }
        let mut owner = Vec::with_capacity(64);
        for (label, entry) in &state.dynamic {
            owner.clear();
            owner.push(label.len() as u8);
            owner.extend_from_slice(label);
            owner.extend_from_slice(&self.apex);
            push_set(&mut records, &owner, &entry.set, false);
        }
        for key in state.nsec3.keys() {
            self.nsec3_records(state, key, &mut records);
        }
        if let Some(transfers) = self.transfer.get() {
            transfers.snapshot_hint.store(records.len(), Ordering::Relaxed);
        }
        Snapshot { serial: state.serial, soa: self.current_soa(state), records }
    }

    /// The whole zone at the current serial (for AXFR).
    pub fn transfer_snapshot(&self) -> Snapshot {
        let state = self.read();
        self.snapshot_of(&state)
    }

    /// What to send a client at `client_serial` asking for IXFR, decided under one read lock
    /// so that the journal and the snapshot agree with the serial.
    pub fn ixfr_plan(&self, client_serial: u32) -> IxfrPlan {
        let state = self.read();
        // Serial arithmetic (RFC 1982): equal or newer means nothing to send.
        if state.serial.wrapping_sub(client_serial) as i32 <= 0 {
            return IxfrPlan::UpToDate { soa: self.current_soa(&state) };
        }
        let changes = self.transfer.get().and_then(|t| t.log().journal.since(client_serial));
        match changes {
            Some(changes) if changes.last().is_some_and(|c| c.to == state.serial) => {
                IxfrPlan::Incremental { soa: self.current_soa(&state), changes }
            }
            _ => IxfrPlan::Full(self.snapshot_of(&state)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::val;
    use super::*;
    use crate::dns::dnssec::{Algorithm, SigningKey};
    use crate::dns::zone::{Signer, ZoneSettings};

    fn zone(signed: bool, refresh_everything: bool) -> Zone {
        // The shared test settings without the static TXT record.
        let settings = ZoneSettings {
            records: vec![
                crate::dns::zone::tests::record("auth.example.org. A 192.0.2.1"),
                crate::dns::zone::tests::record("ns1.auth.example.org. A 192.0.2.2"),
                crate::dns::zone::tests::record("sub.auth.example.org. NS ns.sub.auth.example.org."),
                crate::dns::zone::tests::record("ns.sub.auth.example.org. A 192.0.2.3"),
            ],
            ..crate::dns::zone::tests::settings()
        };
        let signer = signed.then(|| {
            let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
            let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap();
            // With refresh beyond validity, every signature is always due.
            Signer { key, validity: 3600, refresh: if refresh_everything { 7200 } else { 600 } }
        });
        Zone::new(&settings, signer).unwrap()
    }

    fn enable(zone: &Zone, limits: Limits) {
        let settings = TransferSettings {
            allow: Default::default(),
            notify: vec![],
            key: None,
            client_ip: Default::default(),
            wait: None,
        };
        assert!(zone.enable_transfers(settings, limits));
    }

    /// The records of a flat buffer, one by one.
    fn split(buf: &[u8]) -> Vec<Vec<u8>> {
        journal::records(buf).map(|(o, t)| [o, t].concat()).collect()
    }

    /// Applies IXFR steps to the records of a snapshot, checking each deletion exists.
    fn replay(
        mut records: Vec<Vec<u8>>,
        mut soa: Vec<u8>,
        changes: &[Arc<Change>],
    ) -> (Vec<Vec<u8>>, Vec<u8>) {
        for change in changes {
            assert_eq!(change.old_soa, soa, "each step starts where the last ended");
            for gone in split(&change.deleted) {
                let at = records.iter().position(|r| *r == gone).expect("a deleted record exists");
                records.swap_remove(at);
            }
            for new in split(&change.added) {
                assert!(!records.contains(&new), "an added record is new");
                records.push(new);
            }
            soa = change.new_soa.clone();
        }
        (records, soa)
    }

    #[test]
    fn the_journal_replays_to_the_current_zone() {
        for signed in [false, true] {
            let zone = zone(signed, signed);
            zone.replace_all(
                0,
                [("one", 1, vec![val("a")]), ("two", 1, vec![val("b")]), ("three", 1, vec![])],
            );
            enable(&zone, Limits::default());
            let before = zone.transfer_snapshot();
            zone.set_txt("one", 2, &[val("a"), val("c")]);
            zone.set_txt("four", 1, &[val("d")]);
            zone.remove("two");
            zone.set_own_challenge(&[val("token").into()]);
            zone.replace_all(zone.mark(), [("one", 3, vec![val("e")]), ("five", 1, vec![val("f")])]);
            if signed {
                assert!(zone.resign(zone.serial().wrapping_add(1), zone.epoch() + 3600) > 0);
            }
            let after = zone.transfer_snapshot();
            let IxfrPlan::Incremental { soa, changes } = zone.ixfr_plan(before.serial) else {
                panic!("the journal reaches back to the snapshot")
            };
            assert_eq!(soa, after.soa);
            let (mut replayed, replayed_soa) = replay(split(&before.records), before.soa.clone(), &changes);
            let mut expected = split(&after.records);
            replayed.sort();
            expected.sort();
            assert_eq!(replayed_soa, after.soa);
            assert!(replayed == expected, "signed: {signed}");
            assert!(matches!(zone.ixfr_plan(after.serial), IxfrPlan::UpToDate { .. }));
        }
    }

    #[test]
    fn an_older_serial_than_the_journal_gets_the_whole_zone() {
        let zone = zone(true, false);
        enable(&zone, Limits { entries: 2, bytes: 1 << 20 });
        let first = zone.serial();
        for i in 0..3 {
            zone.set_txt("one", i, &[val(&format!("v{i}"))]);
        }
        assert!(matches!(zone.ixfr_plan(first), IxfrPlan::Full(_)));
        assert_eq!(zone.journal_size().0, 2);
        // A bulk load of an empty zone is not journaled: the journal starts again.
        zone.replace_all(zone.mark(), std::iter::empty::<(&str, u64, Vec<&str>)>());
        let serial = zone.serial();
        zone.replace_all(zone.mark(), [("x", 1, vec![val("y")])]);
        assert!(matches!(zone.ixfr_plan(serial), IxfrPlan::Full(_)));
        assert_eq!(zone.journal_size().0, 0);
    }

    #[test]
    fn snapshots_hold_every_record_once() {
        let zone = zone(true, false);
        zone.replace_all(0, [("one", 1, vec![val("a")])]);
        let snapshot = zone.transfer_snapshot();
        let records = split(&snapshot.records);
        let count = |rtype: u16| {
            records
                .iter()
                .filter(|r| journal::records(r).any(|(_, t)| journal::tail_type(t) == rtype))
                .count()
        };
        assert_eq!(count(rtype::SOA), 0, "the SOA travels apart");
        assert_eq!(count(rtype::DNSKEY), 1);
        assert_eq!(count(rtype::NSEC3PARAM), 1);
        assert_eq!(count(rtype::TXT), 1);
        // apex, ns1, sub (cut), the subdomain: one NSEC3 each.
        assert_eq!(count(rtype::NSEC3), 4);
        assert!(count(rtype::RRSIG) >= 8);
        let mut unique = records.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), records.len());
    }
}
