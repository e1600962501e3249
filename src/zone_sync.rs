//! Zone sync: the one owner of "commit to the store, then apply to the in-memory zone".
//!
//! Design note: the store is the durable truth and the zone is what DNS serves; every change
//! to what is served goes through [`ZoneSync`], and nothing else writes to the zone (its one
//! write transaction, `Zone::begin`, one write per store version). That gives these guarantees,
//! written once instead of at every caller:
//!
//! - **A committed write reaches the zone even if its requester is gone.** Each write runs as
//!   its own task; the caller awaits its outcome, but dropping the caller (an HTTP client that
//!   disconnects, a request timeout) does not drop the task between the commit and the apply.
//! - **The zone is the store's, version by version.** Every write that changes what DNS serves
//!   moves the store's zone version and logs what it changed (`store::version`). The zone
//!   applies the log in version order, one version per serial step at serial = base + version,
//!   whoever made the change: this instance, another one on the same PostgreSQL (the change
//!   feed says which version) or an operator's command on SQLite (the feed notices a write).
//!   So every instance serves the same zone, byte for byte with deterministic signatures, at
//!   the same serial, and its IXFR journal entries are the same too. The log has every
//!   version: nothing waits for a missing one; a version missing from it (pruned) makes the
//!   zone resynchronise from a snapshot that reads the version with the contents.
//! - **Hearing a change twice costs nothing.** An instance hears its own writes again from the
//!   change feed (PostgreSQL delivers a NOTIFY to its sender too); a version already applied is
//!   skipped without reading the store.
//! - **Signatures are renewed by a store event.** When the signatures near expiry, one
//!   instance records a new signing epoch as a version (a conditional update: a second
//!   instance trying at the same time finds the epoch moved and records nothing); every
//!   instance then signs every set anew with it, the same way.
//! - **Shared decisions take the store's time.** The signing epoch and the purge's cut come
//!   from the store's clock, and an instance whose own clock disagrees with it refuses them;
//!   an epoch in the future is refused by every reader and replaced (`clock.rs`).
//!
//! The daemon makes one [`ZoneSync`] and hands clones to the API, the change-feed follower,
//! the retention purge, the signature refresh, the keeper of signatures (`signatures.rs`) and
//! the ACME client.

pub(crate) mod clock;
mod dns_persist;
mod error;
mod journal;
pub(crate) mod keys;
mod lag;
pub(crate) mod offline;
pub(crate) mod rollover;
mod signatures;

pub use error::SyncError;
pub use keys::{KeyError, signing_keys};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, mpsc, watch};

use crate::dns::dnssec::KeyPolicy;
use crate::dns::transfers::Transfers;
use crate::dns::zone::persist_label;
use crate::dns::zone::{Commit, Edit, Write, Zone, unix_now};
use crate::store::keys::{KEYS, decode_key_set};
use crate::store::version::{ERASED, OWN_CHALLENGE, PERSIST, SIGN, erased_name};
use crate::store::{
    Account, AuditEntry, Change, LogEntry, PurgeRules, Purged, Store, StoreError, StoreTime, TxtValues,
};
use clock::{Clock, Skew};

/// A start serves its signatures without renewing them first only while they stay valid this
/// long (seconds): longer than a validator caches an answer from us (TTLs here are hours at
/// most) plus clock skew.
const SERVE_AT_LEAST: u32 = 6 * 3600;

/// The store and the zone, kept in step; cheap to clone.
#[derive(Clone, Debug)]
pub struct ZoneSync {
    /// The durable store.
    store: Store,
    /// The zone being served.
    zone: Arc<Zone>,
    /// TXT values kept per subdomain.
    keep: usize,
    /// The store version the zone is at; held while the zone moves, so versions apply in
    /// order, one catch-up at a time.
    applied: Arc<Mutex<Applied>>,
    /// Tickets of log reads, taken as each read begins: a write committed before a read began
    /// is seen by it, so writes that commit together share one read (see [`Self::catch_up`]).
    reads: Arc<AtomicU64>,
    /// This instance's clock compared with the store's, and the epochs refused.
    clock: Arc<Clock>,
    /// Zone transfers, when `[transfer]` is on: whom an update waits for.
    transfers: Option<Arc<Transfers>>,
    /// How keys are served (DNSKEY TTL, CDS), when signed; see [`Self::with_key_policy`].
    policy: Option<Arc<KeyPolicy>>,
    /// The version last seen served, for the rollover's heartbeat while a change is applied.
    served: Arc<AtomicU64>,
    /// The task that keeps the IXFR journal's steps in the store (`journal.rs`).
    journal_out: journal::Worker,
    /// The signatures the zone's commits made, until the keeper writes them (`signatures.rs`).
    unkept: signatures::Unkept,
}

/// The store version the zone serves.
#[derive(Clone, Copy, Debug, Default)]
struct Applied {
    /// The version.
    version: u64,
    /// The serial of version 0 (fixed in the store).
    serial_base: u32,
    /// The ticket of the last log read applied in full.
    read: Option<u64>,
}

impl Applied {
    /// The serial of `version`.
    fn serial_of(self, version: u64) -> u32 {
        self.serial_base.wrapping_add(version as u32)
    }
}

/// Runs `work` as a task of its own and waits for it: if the caller is dropped, the work still
/// finishes (the point of this module). A panic in the work is passed on to the caller.
async fn detached<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    match tokio::spawn(work).await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only a runtime shutting down cancels a task; the process is exiting then.
        Err(error) => panic!("zone sync task cancelled: {error}"),
    }
}

/// The zone edits of one log entry (none for a new signing epoch, applied on its own, and for
/// the erasure of a name the zone does not serve).
fn edits_of(zone: &Zone, entry: &LogEntry) -> Vec<Edit> {
    let edit = match (entry.name.as_str(), &entry.values) {
        (SIGN | KEYS, _) => None,
        // Logged by digest: the zone's labels are matched against it (an erasure is rare); the
        // account's persist name goes with it.
        (digest, _) if digest.starts_with(ERASED) => {
            let Some(label) = zone.find_subdomain(|label| erased_name(label) == digest) else {
                return vec![];
            };
            return vec![Edit::Remove(persist_label(&label)), Edit::Remove(label)];
        }
        (name, values) if name.starts_with(PERSIST) => {
            let label = persist_label(&name[PERSIST.len_utf8()..]);
            Some(match values {
                Some(values) => Edit::Txt { subdomain: label, values: values.clone() },
                None => Edit::Remove(label),
            })
        }
        (OWN_CHALLENGE, values) => Some(Edit::OwnChallenge(values.clone().unwrap_or_default())),
        (subdomain, Some(values)) => {
            Some(Edit::Txt { subdomain: subdomain.to_owned(), values: values.clone() })
        }
        (subdomain, None) => Some(Edit::Remove(subdomain.to_owned())),
    };
    edit.into_iter().collect()
}

impl ZoneSync {
    /// Joins `store` and `zone`; `keep` is how many TXT values each subdomain serves,
    /// `max_clock_skew` how far (seconds) this instance's clock may be from the store's.
    pub fn new(store: Store, zone: Arc<Zone>, keep: usize, max_clock_skew: u64) -> Self {
        Self {
            store,
            zone,
            keep,
            applied: Arc::new(Mutex::new(Applied::default())),
            reads: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(Clock::new(max_clock_skew)),
            transfers: None,
            policy: None,
            served: Arc::new(AtomicU64::new(0)),
            journal_out: journal::Worker::default(),
            unkept: signatures::Unkept::default(),
        }
    }

    /// With zone transfers on: an update waits for the secondaries as their settings say.
    pub(crate) fn with_transfers(mut self, transfers: Option<Arc<Transfers>>) -> Self {
        self.transfers = transfers;
        self
    }

    /// Serves the key sets of the store's versions with `policy` (a signed zone).
    #[must_use]
    pub(crate) fn with_key_policy(mut self, policy: KeyPolicy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Installs the key set the store holds now (no serial move): at a start, before the
    /// load, and at a resync whose snapshot may be past key changes the log no longer has.
    pub(crate) async fn install_keys(&self) -> Result<(), SyncError> {
        let Some(policy) = self.policy.as_deref() else { return Ok(()) };
        let rows = self.store.dnssec_keys().await?;
        let rollover = self.store.rollover().await?;
        let set = keys::current_set(&rows, rollover.as_ref(), policy)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let serial = this.zone.serial();
            let mut write = this.zone.begin();
            write.keys(set);
            this.commit(write, serial);
        })
        .await
        .map_err(SyncError::task("installing the keys"))?;
        Ok(())
    }

    /// The store's time, compared with this instance's clock: `Some` skew when they differ by
    /// more than `[general] max_clock_skew`. With `record`, the store records the time (so it
    /// never goes back).
    pub(crate) async fn shared_time(&self, record: bool) -> Result<(StoreTime, Option<Skew>), StoreError> {
        let time = self.store.time(record).await?;
        let skew = self.clock.compare(i64::from(unix_now()), &time);
        Ok((time, skew))
    }

    /// This instance's clock beyond the bound at the last comparison, if it was.
    pub fn clock_skew(&self) -> Option<Skew> {
        self.clock.skew()
    }

    /// The zone, for reading.
    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    /// Loads every registered subdomain into the zone at the store's version (start-up), with
    /// `renew` renewing signatures about to expire (a command that only computes what the
    /// store's version serves renews nothing); returns how many there are.
    pub async fn load(&self, renew: bool) -> Result<usize, SyncError> {
        let started = std::time::Instant::now();
        let made_before = self.zone.signatures_made();
        if self.zone.is_signed() {
            // Every signature this instance makes from now on is kept for the next start.
            self.zone.collect_signatures(true);
            let kept = self.remember_kept_signatures().await;
            if kept == 0 {
                tracing::info!(
                    "loading the signed zone: no signatures kept for this key and epoch, so every set \
                     is signed now, before DNS is served (about 2 minutes a million names with P-256 \
                     on two cores, 20 s with Ed25519)"
                );
            } else {
                tracing::info!(
                    "loading the signed zone: {kept} signatures kept in the database; sets they do \
                     not cover are signed now, before DNS is served"
                );
            }
        }
        let (count, _) = self.resync(&mut *self.applied.lock().await).await?;
        if self.zone.is_signed() {
            let reused = self.zone.forget_remembered();
            let made = self.zone.signatures_made() - made_before;
            tracing::info!(
                "signed zone loaded in {:.1} s: {count} subdomains, {reused} kept signatures reused, \
                 {made} signatures made",
                started.elapsed().as_secs_f64()
            );
        }
        // Signatures about to expire (every instance stopped for most of their validity) are
        // renewed before anything is served: served, they could turn bogus in a validator's
        // cache. Signatures that are only due for renewal are served while the refresh task
        // renews them (it checks at once): a restart after a long stop answers in seconds. So
        // is an epoch in the future that the load refused (replaced by a correct one).
        if renew && self.zone.is_signed() {
            let (time, _) = self.shared_time(false).await?;
            let soon = time.now.saturating_add(SERVE_AT_LEAST.into());
            let expiry = self.zone.earliest_signature_expiry().map_or(i64::MAX, i64::from);
            if expiry <= soon || self.clock.refused().is_some() {
                self.refresh_signatures().await?;
            }
        }
        Ok(count)
    }

    /// Stores a new account with its audit entry and serves its (empty) subdomain.
    pub async fn register(&self, account: Account, entry: AuditEntry) -> Result<(), SyncError> {
        let this = self.clone();
        detached(async move {
            this.store.register_account(&account, entry).await?;
            this.catch_up(None).await
        })
        .await
    }

    /// Adds a TXT value to a subdomain and serves what the store then holds.
    pub async fn update_txt(&self, subdomain: &str, value: &str) -> Result<TxtValues, SyncError> {
        let (this, subdomain, value) = (self.clone(), subdomain.to_owned(), value.to_owned());
        let stored = detached(async move {
            // Metrics: update → served latency, from the store call's start to the zone apply.
            let started = std::time::Instant::now();
            let stored = this.store.update_txt(&subdomain, &value, this.keep).await?;
            this.catch_up(None).await?;
            crate::metrics::counters::update_served(started.elapsed());
            Ok::<_, SyncError>(stored)
        })
        .await?;
        self.wait_for_secondaries().await;
        Ok(stored)
    }

    /// Erases an account and stops serving its subdomain; returns the subdomain if it existed.
    pub async fn delete_account(&self, username: &str) -> Result<Option<String>, SyncError> {
        let (this, username) = (self.clone(), username.to_owned());
        detached(async move {
            let subdomain = this.store.delete_account(&username).await?;
            this.catch_up(None).await?;
            Ok(subdomain)
        })
        .await
    }

    /// Publishes (`Some`) or withdraws (`None`) this instance's ACME challenge value for the
    /// API's own certificate, and serves every instance's values as the store then holds them
    /// (at once: the change feed would follow, but perhaps not before the CA asks).
    pub async fn put_own_challenge(
        &self,
        token: &str,
        value: Option<&str>,
        expires_at: i64,
    ) -> Result<(), SyncError> {
        let (this, token, value) = (self.clone(), token.to_owned(), value.map(str::to_owned));
        detached(async move {
            this.store.put_own_challenge(&token, value.as_deref(), expires_at).await?;
            this.catch_up(None).await
        })
        .await
    }

    /// Removes what is past retention, and stops serving what was removed. The caller takes
    /// `rules` from the store's time, and runs no purge when this instance's clock is off
    /// (see [`Self::shared_time`]).
    pub async fn purge(&self, rules: PurgeRules) -> Result<Purged, SyncError> {
        let this = self.clone();
        detached(async move {
            let purged = this.store.purge(rules).await?;
            this.catch_up(None).await?;
            Ok(purged)
        })
        .await
    }

    /// Applies a change that another process committed (from the change feed).
    pub async fn apply(&self, change: Change) -> Result<(), SyncError> {
        match change {
            Change::Version { version, .. } => self.catch_up(Some(version)).await,
            Change::Resync => self.catch_up(None).await,
        }
    }

    /// Applies the store's log beyond the zone's version, version by version; with `until`,
    /// nothing when the zone is at that version already (a change heard twice). Without, it
    /// catches up with what was committed before the call: nothing to read when a read that
    /// began since was applied while this call waited for its turn (concurrent writes of this
    /// instance then share one read).
    async fn catch_up(&self, until: Option<u64>) -> Result<(), SyncError> {
        let seen = self.reads.load(Ordering::SeqCst);
        let mut applied = self.applied.lock().await;
        if until.is_some_and(|v| applied.version >= v) || applied.read.is_some_and(|t| t >= seen) {
            return Ok(());
        }
        let ticket = self.reads.fetch_add(1, Ordering::SeqCst);
        let log = self.store.zone_log_since(applied.version).await?;
        let refused_before = self.clock.refused();
        let mut rest = log.as_slice();
        // The steps committed, for the store's journal (`journal.rs`).
        let (mut steps, mut forget) = (Vec::new(), false);
        while let Some(first) = rest.first() {
            let version = first.version;
            if version != applied.version + 1 {
                // Not in the log (pruned, or an erased account's only change): start afresh.
                self.keep_steps(std::mem::take(&mut steps), forget);
                let (count, _) = self.resync(&mut applied).await?;
                tracing::info!(
                    "zone resynchronised from the database: version {version} was not in the log \
                     ({count} subdomains)"
                );
                applied.read = Some(ticket);
                return Ok(());
            }
            let end = rest.iter().position(|e| e.version != version).unwrap_or(rest.len());
            let (entries, tail) = rest.split_at(end);
            rest = tail;
            let serial = applied.serial_of(version);
            let epoch = entries
                .iter()
                .find(|e| e.name == SIGN)
                .and_then(|e| e.values.as_ref()?.first()?.parse().ok());
            // Erased data (see `journal.rs`): neither the steps so far nor this one are kept.
            let erasing = entries.iter().any(journal::erases);
            if erasing {
                (steps, forget) = (Vec::new(), true);
            }
            let keys =
                entries.iter().find(|e| e.name == KEYS).and_then(|e| decode_key_set(e.values.as_deref()?));
            if let (Some((rolling, set)), Some(policy)) = (keys, self.policy.as_deref()) {
                // A rollover step: the key set of this version, signed in anew where it changed.
                let rows = self.store.dnssec_keys().await?;
                let set = keys::key_set(&rows, &set, rolling, policy)?;
                let commit = self
                    .commit_bulk("re-keying", serial, move |write| {
                        write.keys(set);
                    })
                    .await?;
                tracing::info!("key set of version {version} applied: {} RRsets signed", commit.resigned);
                steps.extend(commit.diff);
            } else if let Some(epoch) = epoch
                && self.refuse_future(epoch).await?
            {
                // Signing on with the epoch held; the serial moves as everywhere.
                self.commit(self.zone.begin(), serial);
            } else if let Some(epoch) = epoch {
                // Every set signed anew: blocking work, off the async workers.
                let commit = self
                    .commit_bulk("re-signing", serial, move |write| {
                        write.epoch(epoch);
                    })
                    .await?;
                if commit.resigned > 0 {
                    tracing::info!("signatures renewed: {} RRsets signed for epoch {epoch}", commit.resigned);
                }
                steps.extend(commit.diff);
            } else {
                let edits: Vec<Edit> = entries.iter().flat_map(|e| edits_of(&self.zone, e)).collect();
                let mut write = self.zone.begin();
                for edit in &edits {
                    write.edit(edit);
                }
                let diff = self.commit(write, serial).diff;
                steps.extend(diff.filter(|_| !erasing));
            }
            applied.version = version;
        }
        applied.read = Some(ticket);
        drop(applied);
        self.keep_steps(steps, forget);
        if let Some(epoch) = self.clock.refused()
            && refused_before != Some(epoch)
        {
            self.repair_epoch();
        }
        Ok(())
    }

    /// Commits a write that signs every set anew (`job`: new keys, a new epoch) on a blocking
    /// thread, off the async workers, and gives the memory it freed back to the system.
    async fn commit_bulk(
        &self,
        job: &'static str,
        serial: u32,
        change: impl FnOnce(&mut Write<'_>) + Send + 'static,
    ) -> Result<Commit, SyncError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut write = this.zone.begin();
            change(&mut write);
            let commit = this.commit(write, serial);
            release_after_bulk(&commit);
            commit
        })
        .await
        .map_err(SyncError::task(job))
    }

    /// Whether `epoch`, read from the store, lies in the future and is refused (see `clock.rs`);
    /// records an epoch applied otherwise.
    async fn refuse_future(&self, epoch: u32) -> Result<bool, StoreError> {
        // By the store's time, not this instance's: its clock may be the wrong one (a new
        // epoch is rare, one more read is nothing).
        let (time, _) = self.shared_time(false).await?;
        let future = self.clock.in_future(epoch, time.now).then_some(time.now);
        match future {
            Some(now) => self.clock.refuse(epoch, now),
            None => self.clock.accepted(),
        }
        Ok(future.is_some())
    }

    /// Records a correct signing epoch in place of one refused for lying in the future, in a
    /// task of its own (the caller may hold the zone's version).
    fn repair_epoch(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            match this.refresh_signatures().await {
                Ok(true) => tracing::info!("recorded a correct signing epoch for every instance"),
                Ok(false) => {}
                Err(error) => tracing::warn!("could not record a correct signing epoch: {error}"),
            }
        });
    }

    /// Reads a consistent snapshot of the store and makes the zone exactly that, at its
    /// serial; returns how many subdomains there are and how many changed.
    async fn resync(&self, applied: &mut Applied) -> Result<(usize, usize), SyncError> {
        if applied.version > 0 {
            // The snapshot may be past key steps the log no longer holds.
            self.install_keys().await?;
        }
        let snapshot = self.store.zone_snapshot(self.keep).await?;
        let count = snapshot.contents.len();
        let mut version = snapshot.version;
        if version.epoch != self.zone.epoch() && self.refuse_future(version.epoch).await? {
            // Signing on with the epoch held; at a start, the zone's own is from this instance's
            // clock, which is no good either if that is ahead: the store's hour then.
            let (time, _) = self.shared_time(false).await?;
            version.epoch = match self.zone.epoch() {
                held if !self.clock.in_future(held, time.now) => held,
                _ => u32::try_from(time.now - time.now % 3600).unwrap_or(0),
            };
        }
        // Rendering (and at a start, signing on every core) a large zone is blocking work: off
        // the async workers, which go on serving the API meanwhile.
        let this = self.clone();
        let changed = tokio::task::spawn_blocking(move || {
            // Both names of each account: its subdomain and, once it had a record, its persist name.
            let persist: Vec<TxtValues> = snapshot
                .persist
                .iter()
                .map(|t| TxtValues { subdomain: persist_label(&t.subdomain), ..t.clone() })
                .collect();
            let names = snapshot
                .contents
                .iter()
                .chain(&persist)
                .map(|t| (t.subdomain.as_str(), t.values.iter().map(String::as_str).collect::<Vec<_>>()));
            let mut write = this.zone.begin();
            write.epoch(version.epoch).load(names).own_challenge(&snapshot.own_challenge);
            this.commit(write, version.serial()).changed
        })
        .await
        .map_err(SyncError::task("loading the zone"))?;
        *applied = Applied { version: version.version, serial_base: version.serial_base, read: applied.read };
        Ok((count, changed))
    }

    /// Follows the store's change feed until it ends or `shutdown` changes.
    pub async fn follow(self, mut changes: mpsc::Receiver<Change>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let change = tokio::select! {
                c = changes.recv() => c,
                _ = shutdown.changed() => return,
            };
            let Some(change) = change else { return };
            let (received, resync) = (std::time::Instant::now(), matches!(change, Change::Resync));
            if let Err(error) = self.apply(change).await {
                tracing::warn!("could not apply a change from the database: {error}");
            }
            crate::metrics::counters::feed_applied(received.elapsed(), changes.len(), resync);
        }
    }

    /// When the signatures near expiry, records a new signing epoch in the store (unless
    /// another instance just did) and applies it; so too when the store's epoch lies in the
    /// future (a repair). The time is the store's; nothing is recorded when this instance's
    /// clock is off. Returns whether this instance recorded an epoch.
    pub(crate) async fn refresh_signatures(&self) -> Result<bool, SyncError> {
        if !self.zone.is_signed() {
            return Ok(false);
        }
        let (time, skew) = self.shared_time(true).await?;
        let now = u32::try_from(time.now).unwrap_or(u32::MAX);
        let (seen, epoch) = if self.clock.in_future(time.epoch, time.now) {
            // Conditional on the bad epoch, which the zone refused to take.
            (time.epoch, self.zone.epoch_at(now))
        } else {
            let seen = self.zone.epoch();
            (seen, self.zone.next_epoch(now).filter(|&e| e != seen))
        };
        let Some(epoch) = epoch else { return Ok(false) };
        if let Some(skew) = skew {
            crate::metrics::counters::clock_refusal("write_epoch");
            tracing::warn!("not recording the signing epoch due: {skew}");
            return Ok(false);
        }
        let recorded = self.store.new_signing_epoch(seen, epoch).await?;
        // Another instance's epoch, if it won, is in the log too.
        self.catch_up(None).await?;
        Ok(recorded.is_some())
    }
}

/// After a commit that signed every set anew (a new epoch, a rollover step), gives the memory
/// its copies and old signatures used back to the system, as the start does after its load:
/// otherwise the allocator keeps it, and the server stays about twice its size (measured at a
/// million names). A blocking call: run it where the commit ran.
fn release_after_bulk(commit: &Commit) {
    if commit.resigned > 1000 {
        crate::sys::release_free_memory();
    }
}
