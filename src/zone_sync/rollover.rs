//! The rollover driver: takes each step of a key rollover when it is safe, on every instance,
//! with the store deciding which instance takes it.
//!
//! Design note: the steps and their waits follow RFC 7583 (CSK rollover, with the double-KSK
//! order for the DNSKEY set: the new key is published first, the parent moves next, the old key
//! leaves last) and RFC 6781 section 4.1.4 (algorithm rollover: signatures of the new algorithm
//! on every set before its DNSKEY is published, and the old algorithm's signatures left until
//! after its DNSKEY is gone). [`plan`] says what each key does at each step; [`wait_after`]
//! what must pass before the next one. A step is a zone version (`store::keys::advance`), so
//! every instance applies it at the same serial and secondaries get it by IXFR.
//!
//! A step's wait starts only when the step is *served*: every instance on the store reports a
//! version at or past it (`instances`, written by each instance's driver every tick) and every
//! `[transfer] notify` secondary answers an SOA serial at or past it. A stopped secondary or a
//! lagging instance holds the rollover there (logged when the wait begins and every minute,
//! counted in metrics), so nothing that answers for the zone is ever a step behind. Steps that
//! move the parent's DS also wait for the parent: all `[dnssec] parent` servers answering a DS
//! set that names the new key and not the old one, or without them the operator's
//! `dnssec ds-seen`. Then the parent's DS TTL and the propagation delay pass before the old
//! key leaves.
//!
//! Every instance runs [`run`]; each tick reads the rollover row and tries the next step by a
//! compare-and-set on the step (one wins; the others apply its version from the log). Times
//! are the store's, so instances agree on them; a restart or kill -9 resumes from the row.

use std::time::Duration;

use crate::dns::dnssec::{KeyPolicy, SigningKey};
use crate::dns::propagation;
use crate::store::StoreError;
use crate::store::keys::{KeyChange, Mark, Rollover, RolloverKind, StartOutcome};

use super::ZoneSync;
use super::keys::{KeyError, active, algorithm_name};

/// An instance not heard from for this long (seconds) no longer holds a step: it beats every
/// second (from a task of its own, so a long re-signing does not silence it), and one killed
/// holds a step this long at most.
const INSTANCE_TIMEOUT: i64 = 10;
/// A tick at least this often (the wait for servers and the parent is polled).
const TICK: Duration = Duration::from_secs(1);
/// How long one question to a secondary or the parent waits.
const ASK: Duration = Duration::from_millis(700);
/// A wait that goes on is logged again this often (seconds).
const LOG_AGAIN: i64 = 60;

/// The last step of a rollover of `kind`: the old key is gone from the zone.
pub(crate) fn last_step(kind: RolloverKind) -> u32 {
    match kind {
        RolloverKind::Csk => 3,
        RolloverKind::Algorithm => 5,
    }
}

/// The step after which the parent's DS must name the new key (CDS names it from this step).
pub(crate) fn ds_step(kind: RolloverKind) -> u32 {
    match kind {
        RolloverKind::Csk => 2,
        RolloverKind::Algorithm => 3,
    }
}

/// What the old and the new key do at `step`: their roles and states.
pub(crate) fn plan(
    kind: RolloverKind,
    step: u32,
) -> ((&'static str, &'static str), (&'static str, &'static str)) {
    match (kind, step) {
        // Old key signs everything; the new one is published and signs the DNSKEY set.
        (RolloverKind::Csk, 1) => (("DKZC", "active"), ("DK", "published")),
        // The new key signs the zone data and CDS names it; the old stays in DNSKEY.
        (RolloverKind::Csk, 2) => (("DK", "retiring"), ("DKZC", "active")),
        // New-algorithm signatures on every set, its DNSKEY not yet published.
        (RolloverKind::Algorithm, 1) => (("DKZC", "active"), ("KZ", "signing")),
        (RolloverKind::Algorithm, 2) => (("DKZC", "active"), ("DKZ", "published")),
        (RolloverKind::Algorithm, 3) => (("DKZ", "retiring"), ("DKZC", "active")),
        // The old DNSKEY gone, its signatures still there.
        (RolloverKind::Algorithm, 4) => (("KZ", "retiring"), ("DKZC", "active")),
        // The last step: the old key is gone.
        _ => (("", "retired"), ("DKZC", "active")),
    }
}

/// What a step does, in words (status, log).
pub(crate) fn describe(kind: RolloverKind, step: u32) -> &'static str {
    match (kind, step) {
        (_, 0) => "asked for, not started",
        (RolloverKind::Csk, 1) => "new key published in DNSKEY",
        (RolloverKind::Csk, 2) => "new key signs the zone, CDS names it",
        (RolloverKind::Algorithm, 1) => "new-algorithm signatures on every set",
        (RolloverKind::Algorithm, 2) => "new key published in DNSKEY",
        (RolloverKind::Algorithm, 3) => "CDS names the new key",
        (RolloverKind::Algorithm, 4) => "old key out of DNSKEY, its signatures stay",
        _ => "old key removed",
    }
}

/// What must pass after `step` is served (seconds) before the next step, not counting the
/// parent: `(from served, from the parent's DS seen)`.
pub(crate) fn wait_after(
    kind: RolloverKind,
    step: u32,
    policy: &KeyPolicy,
    max_ttl: u32,
) -> (u64, Option<u64>) {
    let prop = u64::from(policy.propagation_delay);
    let dnskey = u64::from(policy.dnskey_ttl) + prop;
    let ds = Some(u64::from(policy.parent_ds_ttl) + prop);
    let max = u64::from(max_ttl) + prop;
    match (kind, step) {
        (_, 0) => (0, None),
        (RolloverKind::Csk, 1) => (dnskey, None),
        // Signatures of the old key leave caches (max TTL); the old DS leaves them.
        (RolloverKind::Csk, 2) => (max, ds),
        (RolloverKind::Algorithm, 1) => (max, None),
        (RolloverKind::Algorithm, 2) => (dnskey, None),
        (RolloverKind::Algorithm, 3) => (0, ds),
        (RolloverKind::Algorithm, 4) => (dnskey, None),
        _ => (0, None),
    }
}

/// Why the rollover waits, for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// Servers behind the step: named.
    Servers(Vec<String>),
    /// The parent's DS (or `dnssec ds-seen`).
    Parent,
    /// Time: until this store time.
    Until(i64),
}

/// Runs the driver until `shutdown` changes: a tick at once, then at least every second.
pub(crate) async fn run(sync: ZoneSync, policy: KeyPolicy, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    // Unique enough: the process and its start to the nanosecond.
    let started =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let instance = format!("{}-{started:x}", std::process::id());
    {
        // The heartbeat, apart from the driver (whose step may sign for minutes at scale).
        let (sync, instance, mut shutdown) = (sync.clone(), instance.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                if let Err(error) = beat(&sync, &instance).await {
                    tracing::debug!("rollover heartbeat: {error}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    let mut driver = Driver { sync, policy, instance, logged: None };
    loop {
        let next = match driver.tick().await {
            Ok(wait) => wait.clamp(Duration::from_millis(100), TICK),
            Err(error) => {
                tracing::warn!("key rollover: {error} (tried again in a second)");
                TICK
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Records the version this instance serves (without waiting for a zone change in progress:
/// then the version before it, which is what it serves); the instances seen lately.
async fn beat(sync: &ZoneSync, instance: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let version = match sync.applied.try_lock() {
        Ok(applied) => applied.version,
        Err(_) => sync.served.load(std::sync::atomic::Ordering::Relaxed),
    };
    sync.served.store(version, std::sync::atomic::Ordering::Relaxed);
    let (time, _) = sync.shared_time(false).await?;
    sync.store.heartbeat(instance, version, time.now - INSTANCE_TIMEOUT).await
}

/// One instance's driver.
struct Driver {
    /// The store and zone.
    sync: ZoneSync,
    /// The timings.
    policy: KeyPolicy,
    /// This instance's name in `instances`.
    instance: String,
    /// The last wait logged: the step, what it waited for, when.
    logged: Option<(u32, String, i64)>,
}

/// Why a tick failed.
#[derive(Debug, thiserror::Error)]
enum TickError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A key could not be made or read.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The zone could not follow the step (its keys, or the signing work).
    #[error("{0}")]
    Sync(#[from] super::SyncError),
}

impl Driver {
    /// Reports this instance's version, then takes the next step if it is due; returns how
    /// long until the next tick is worth it.
    async fn tick(&mut self) -> Result<Duration, TickError> {
        let store = self.sync.store.clone();
        let instances = beat(&self.sync, &self.instance).await?;
        let (time, _) = self.sync.shared_time(false).await?;
        let now = time.now;
        let rollover = store.rollover().await?;
        let Some(r) = rollover.filter(|r| !r.done) else {
            crate::metrics::counters::rollover_state(0, None);
            self.maybe_start(now).await?;
            return Ok(TICK);
        };
        let last = last_step(r.kind);
        if r.step == 0 {
            self.take(&r, 1).await?;
            return Ok(Duration::ZERO);
        }
        let (waiting, until) = self.status(&r, now, &instances).await?;
        crate::metrics::counters::rollover_state(r.step, until.map(|u| u - now));
        match waiting {
            Waiting::Servers(behind) => {
                crate::metrics::counters::rollover_held();
                self.log_wait(
                    r.step,
                    format!(
                        "servers behind step {} (serial of version {}): {}",
                        r.step,
                        r.version,
                        behind.join(", ")
                    ),
                    now,
                );
                return Ok(TICK);
            }
            Waiting::Parent => {
                let how = if self.policy.parent.is_empty() {
                    "`acme-delegate dnssec ds-seen` (no [dnssec] parent configured)".to_owned()
                } else {
                    "the parent's servers to serve a DS naming the new key only".to_owned()
                };
                self.log_wait(r.step, format!("waiting for {how}"), now);
                return Ok(TICK);
            }
            // Store times are whole seconds, and the moment a wait began was recorded rounded
            // down: the step is due only once the clock passed the end, never at it.
            Waiting::Until(at) if at >= now => {
                return Ok(Duration::from_secs(u64::try_from(at - now + 1).unwrap_or(1)));
            }
            Waiting::Until(_) => {}
        }
        if r.step >= last {
            if store.finish_rollover(r.step).await? {
                tracing::info!(
                    "key rollover ({}) done: every server serves the last step; active key {}",
                    r.kind.name(),
                    self.key_name(r.new_key).await?
                );
                if r.kind == RolloverKind::Algorithm {
                    tracing::warn!(
                        "the algorithm rollover is done: set dnssec.algorithm = \"{}\" before the next start",
                        self.algorithm_of(r.new_key).await?
                    );
                }
            }
            return Ok(TICK);
        }
        self.take(&r, r.step + 1).await?;
        Ok(Duration::ZERO)
    }

    /// Whether step `r.step` is served and the parent seen, recording each when first seen;
    /// what the rollover waits for and the earliest time of the next step.
    async fn status(
        &mut self,
        r: &Rollover,
        now: i64,
        instances: &[(String, u64)],
    ) -> Result<(Waiting, Option<i64>), TickError> {
        let mut served_at = r.served_at;
        if served_at.is_none() {
            let behind = self.behind(r.version, instances).await;
            if !behind.is_empty() {
                return Ok((Waiting::Servers(behind), None));
            }
            self.sync.store.mark_rollover(Mark::Served, r.step, now).await?;
            tracing::info!("key rollover step {} is served by every instance and secondary", r.step);
            served_at = Some(now);
        }
        let served_at = served_at.unwrap_or(now);
        let (after_served, after_ds) = wait_after(r.kind, r.step, &self.policy, self.sync.zone.max_ttl());
        let mut until = served_at + i64::try_from(after_served).unwrap_or(i64::MAX / 2);
        if let Some(after_ds) = after_ds {
            let mut ds_at = r.ds_at;
            if ds_at.is_none() && !self.policy.parent.is_empty() && self.parent_has_new(r).await? {
                self.sync.store.mark_rollover(Mark::Ds, r.step, now).await?;
                tracing::info!("key rollover: every parent server serves a DS naming the new key only");
                ds_at = Some(now);
            }
            let Some(ds_at) = ds_at else { return Ok((Waiting::Parent, None)) };
            until = until.max(ds_at + i64::try_from(after_ds).unwrap_or(i64::MAX / 2));
        }
        Ok((Waiting::Until(until), Some(until)))
    }

    /// The instances and secondaries not yet serving `version`, named.
    async fn behind(&self, version: u64, instances: &[(String, u64)]) -> Vec<String> {
        let mut behind: Vec<String> = instances
            .iter()
            .filter(|(_, v)| *v < version)
            .map(|(id, v)| format!("instance {id} at version {v}"))
            .collect();
        let serial = self.sync.applied.lock().await.serial_of(version);
        if let Some(transfers) = self.sync.transfers.as_ref().map(|t| t.settings()) {
            for &secondary in &transfers.notify {
                match propagation::soa_serial(self.sync.zone.apex_wire(), secondary, ASK).await {
                    Ok(have) if propagation::serial_reached(have, serial) => {}
                    Ok(have) => {
                        behind.push(format!("secondary {secondary} at serial {have}, not {serial}"));
                        // Back from a stop, it may wait out the NOTIFY task's back-off (up to a
                        // minute) or its refresh timer: tell it now.
                        let key = transfers.key.as_deref();
                        if let Err(error) =
                            crate::dns::notify::notify_once(&self.sync.zone, secondary, key).await
                        {
                            tracing::debug!("NOTIFY to {secondary}, which is behind the rollover: {error}");
                        }
                    }
                    Err(error) => behind.push(format!("secondary {secondary}: {error}")),
                }
            }
        }
        behind
    }

    /// Whether every parent server serves a DS set naming the new key and not the old one.
    async fn parent_has_new(&self, r: &Rollover) -> Result<bool, TickError> {
        let rows = self.sync.store.dnssec_keys().await?;
        let key = |id: i64| rows.iter().find(|k| k.id == id).map(super::keys::load).transpose();
        let (Some(old), Some(new)) = (key(r.old_key)?, key(r.new_key)?) else { return Ok(false) };
        let apex = self.sync.zone.apex_wire();
        let names = |ds: &[u8], key: &SigningKey| {
            ds.get(..4) == key.ds_rdata(apex).get(..4) && {
                // Any digest type the parent chose: the tag and algorithm name the key; a SHA-256
                // digest must match.
                ds.get(3) != Some(&2) || *ds == key.ds_rdata(apex)
            }
        };
        for &server in &self.policy.parent {
            let Ok(set) = propagation::ds_set(apex, server, ASK).await else { return Ok(false) };
            if !set.iter().any(|ds| names(ds, &new)) || set.iter().any(|ds| names(ds, &old)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes step `to` (if no other instance did) and applies it here.
    async fn take(&mut self, r: &Rollover, to: u32) -> Result<(), TickError> {
        let ((old_roles, old_state), (new_roles, new_state)) = plan(r.kind, to);
        let changes = vec![
            KeyChange { id: r.old_key, roles: old_roles.to_owned(), state: old_state },
            KeyChange { id: r.new_key, roles: new_roles.to_owned(), state: new_state },
        ];
        let rolling = to < last_step(r.kind);
        let taken = self.sync.store.advance_rollover((r.step, to), changes, rolling).await?;
        if let Some(version) = taken {
            tracing::info!(
                "key rollover ({}) step {to}: {} (version {version}; old key {}, new key {})",
                r.kind.name(),
                describe(r.kind, to),
                self.key_name(r.old_key).await?,
                self.key_name(r.new_key).await?
            );
        }
        self.sync.catch_up(None).await?;
        Ok(())
    }

    /// Starts a CSK rollover when the active key reached `key_lifetime`.
    async fn maybe_start(&self, now: i64) -> Result<(), TickError> {
        if self.policy.key_lifetime == 0 {
            return Ok(());
        }
        let rows = self.sync.store.dnssec_keys().await?;
        let Some(key) = active(&rows) else { return Ok(()) };
        let since = key.since.unwrap_or(key.created_at);
        if now - since < i64::try_from(self.policy.key_lifetime).unwrap_or(i64::MAX) {
            return Ok(());
        }
        let algorithm = super::keys::load(key)?.algorithm();
        let pkcs8 = SigningKey::generate(algorithm).map_err(KeyError::Make)?;
        if let StartOutcome::Started(_) = self
            .sync
            .store
            .start_rollover(RolloverKind::Csk, algorithm.number(), crate::privacy::Secret::new(pkcs8))
            .await?
        {
            tracing::info!(
                "key rollover (csk) started: the active key is {} days old, key_lifetime is {} days",
                (now - since) / 86_400,
                self.policy.key_lifetime / 86_400
            );
        }
        Ok(())
    }

    /// Logs a wait when it begins or changes, and again every minute it lasts.
    fn log_wait(&mut self, step: u32, what: String, now: i64) {
        let again = match &self.logged {
            Some((s, w, at)) => *s != step || *w != what || now - at >= LOG_AGAIN,
            None => true,
        };
        if again {
            tracing::info!("key rollover holds at step {step}: {what}");
            self.logged = Some((step, what, now));
        }
    }

    /// `tag/algorithm` of stored key `id`, for the log.
    async fn key_name(&self, id: i64) -> Result<String, TickError> {
        let rows = self.sync.store.dnssec_keys().await?;
        Ok(match rows.iter().find(|k| k.id == id) {
            Some(row) => {
                let key = super::keys::load(row)?;
                format!("{} ({})", key.key_tag(), key.algorithm().name())
            }
            None => format!("#{id}"),
        })
    }

    /// The configuration's spelling of stored key `id`'s algorithm.
    async fn algorithm_of(&self, id: i64) -> Result<String, TickError> {
        let rows = self.sync.store.dnssec_keys().await?;
        Ok(rows.iter().find(|k| k.id == id).map_or_else(String::new, |k| algorithm_name(k.algorithm)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::Roles;

    #[test]
    fn every_step_publishes_a_key_that_signs_the_key_set_and_one_that_signs_the_zone() {
        for kind in [RolloverKind::Csk, RolloverKind::Algorithm] {
            let mut cds_named_before: Vec<&str> = vec![];
            for step in 1..=last_step(kind) {
                let ((old, _), (new, _)) = plan(kind, step);
                let (old, new) = (Roles::parse(old).unwrap(), Roles::parse(new).unwrap());
                assert!((old.dnskey && old.signs_keys) || (new.dnskey && new.signs_keys), "{kind:?} {step}");
                assert!(old.signs_zone || new.signs_zone, "{kind:?} {step}");
                // A key that signs the zone data is in DNSKEY, or was at the step before, or
                // will be (new-algorithm signatures come first).
                assert!(!(old.cds && new.cds), "CDS names one key: {kind:?} {step}");
                cds_named_before.push(if new.cds { "new" } else { "old" });
            }
            assert_eq!(cds_named_before.iter().position(|c| *c == "new").unwrap() as u32 + 1, ds_step(kind));
        }
    }
}
