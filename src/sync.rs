//! Zone sync: the one owner of "commit to the store, then apply to the in-memory zone".
//!
//! Design note: the store is the durable truth and the zone is what DNS serves; every change
//! to what is served goes through [`ZoneSync`], and nothing else calls the zone's mutating
//! methods. That gives three guarantees written once instead of at every caller:
//!
//! - **A committed write reaches the zone even if its requester is gone.** Each write runs as
//!   its own task; the caller awaits its outcome, but dropping the caller (an HTTP client that
//!   disconnects, a request timeout) does not drop the task between the commit and the apply.
//! - **The zone follows the store, never the other way round.** Values applied to the zone are
//!   the ones the store returned after the commit, tagged with the store's sequence number, so
//!   writes that reach the zone out of order cannot go back in time.
//! - **Hearing a change twice costs nothing.** An instance hears its own writes again from the
//!   change feed (PostgreSQL delivers a NOTIFY to its sender too); the zone compares before it
//!   renders, so an entry that did not change is neither re-signed nor given a new serial.
//!
//! The daemon makes one [`ZoneSync`] and hands clones to the API, the change-feed follower,
//! the retention purge, the signature refresh and the ACME client.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::dns::dnssec::{Algorithm, SigningKey};
use crate::dns::zone::Zone;
use crate::privacy::Secret;
use crate::store::{Account, Change, PurgeRules, Purged, Store, StoreError, TxtValues};

/// Why the zone's signing key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The key could not be made, or the stored one not read.
    #[error("{0}")]
    Make(String),
}

/// Loads the zone's signing key from the store, making and storing one on first use.
///
/// Returns the key and when it was made (seconds since the epoch).
pub async fn signing_key(store: &Store, algorithm: Algorithm) -> Result<(SigningKey, i64), KeyError> {
    let number = algorithm.number();
    if store.dnssec_key(number).await?.is_none() {
        let pkcs8 = SigningKey::generate(algorithm).map_err(|e| KeyError::Make(e.to_string()))?;
        store.add_dnssec_key_if_none(number, Secret::new(pkcs8)).await?;
        tracing::info!("made a new {} signing key", algorithm.name());
    }
    let stored = store
        .dnssec_key(number)
        .await?
        .ok_or_else(|| KeyError::Make("the signing key just stored cannot be read back".into()))?;
    let key = SigningKey::from_pkcs8(algorithm, stored.pkcs8.expose())
        .map_err(|e| KeyError::Make(e.to_string()))?;
    Ok((key, stored.created_at))
}

/// The store and the zone, kept in step; cheap to clone.
#[derive(Clone, Debug)]
pub struct ZoneSync {
    /// The durable store.
    store: Store,
    /// The zone being served.
    zone: Arc<Zone>,
    /// TXT values kept per subdomain.
    keep: usize,
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

impl ZoneSync {
    /// Joins `store` and `zone`; `keep` is how many TXT values each subdomain serves.
    pub fn new(store: Store, zone: Arc<Zone>, keep: usize) -> Self {
        Self { store, zone, keep }
    }

    /// The zone, for reading.
    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    /// Loads every registered subdomain into the zone (start-up); returns how many there are.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let mark = self.zone.mark();
        let contents = self.store.zone_contents(self.keep).await?;
        let count = contents.len();
        self.replace_all(mark, &contents);
        self.zone.set_own_challenge(&self.store.own_challenges().await?);
        Ok(count)
    }

    /// Stores a new account and serves its (empty) subdomain.
    pub async fn register(&self, account: Account) -> Result<(), StoreError> {
        let this = self.clone();
        detached(async move {
            this.store.insert_account(&account).await?;
            this.zone.set_txt(&account.subdomain, 0, &[]);
            Ok(())
        })
        .await
    }

    /// Adds a TXT value to a subdomain and serves what the store then holds.
    pub async fn update_txt(&self, subdomain: &str, value: &str) -> Result<TxtValues, StoreError> {
        let (this, subdomain, value) = (self.clone(), subdomain.to_owned(), value.to_owned());
        detached(async move {
            // Metrics: update → served latency, from the store call's start to the zone apply.
            let started = std::time::Instant::now();
            let stored = this.store.update_txt(&subdomain, &value, this.keep).await?;
            this.set(&stored);
            crate::metrics::counters::update_served(started.elapsed());
            Ok(stored)
        })
        .await
    }

    /// Erases an account and stops serving its subdomain; returns the subdomain if it existed.
    pub async fn delete_account(&self, username: &str) -> Result<Option<String>, StoreError> {
        let (this, username) = (self.clone(), username.to_owned());
        detached(async move {
            let subdomain = this.store.delete_account(&username).await?;
            if let Some(subdomain) = &subdomain {
                this.zone.remove(subdomain);
            }
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
    ) -> Result<(), StoreError> {
        let (this, token, value) = (self.clone(), token.to_owned(), value.map(str::to_owned));
        detached(async move {
            this.store.put_own_challenge(&token, value.as_deref(), expires_at).await?;
            this.zone.set_own_challenge(&this.store.own_challenges().await?);
            Ok(())
        })
        .await
    }

    /// Removes what is past retention, and stops serving what was removed.
    pub async fn purge(&self, rules: PurgeRules) -> Result<Purged, StoreError> {
        let this = self.clone();
        detached(async move {
            let purged = this.store.purge(rules).await?;
            for subdomain in &purged.txt_cleared {
                this.apply(Change::Subdomain(subdomain.clone())).await?;
            }
            for subdomain in &purged.accounts_expired {
                this.zone.remove(subdomain);
            }
            Ok(purged)
        })
        .await
    }

    /// Applies a change that another process committed (from the change feed): reads what the
    /// store now holds and serves it.
    pub async fn apply(&self, change: Change) -> Result<(), StoreError> {
        match change {
            Change::Resync => {
                let mark = self.zone.mark();
                let contents = self.store.zone_contents(self.keep).await?;
                let changed = self.replace_all(mark, &contents);
                if changed > 0 {
                    tracing::info!(
                        "zone resynchronised from the database: {changed} of {} subdomains changed",
                        contents.len()
                    );
                }
                self.zone.set_own_challenge(&self.store.own_challenges().await?);
            }
            Change::OwnChallenge => self.zone.set_own_challenge(&self.store.own_challenges().await?),
            Change::Subdomain(subdomain) => {
                // Taken before the read: a write of ours landing meanwhile is newer and kept.
                let mark = self.zone.mark();
                match self.store.txt_of(&subdomain, self.keep).await? {
                    Some(t) => {
                        let values: Vec<&str> = t.values.iter().map(String::as_str).collect();
                        self.zone.replace_txt(mark, &t.subdomain, t.seq, &values);
                    }
                    None => {
                        self.zone.remove(&subdomain);
                    }
                }
            }
        }
        Ok(())
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
                tracing::warn!("could not apply a change from another instance: {error}");
            }
            crate::metrics::counters::feed_applied(received.elapsed(), changes.len(), resync);
        }
    }

    /// Renews signatures close to expiry (blocking work: call from a blocking thread); returns
    /// how many RRsets were re-signed.
    pub fn refresh_signatures(&self) -> usize {
        self.zone.refresh_signatures()
    }

    /// Serves one subdomain's values as the store returned them.
    fn set(&self, stored: &TxtValues) {
        let values: Vec<&str> = stored.values.iter().map(String::as_str).collect();
        self.zone.set_txt(&stored.subdomain, stored.seq, &values);
    }

    /// Replaces every subdomain with a store snapshot read after `mark`; returns how many
    /// subdomains changed.
    fn replace_all(&self, mark: u64, contents: &[TxtValues]) -> usize {
        self.zone.replace_all(
            mark,
            contents
                .iter()
                .map(|t| (t.subdomain.as_str(), t.seq, t.values.iter().map(String::as_str).collect())),
        )
    }
}
