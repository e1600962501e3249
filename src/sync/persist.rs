//! Zone sync for dns-persist-01 records: store first, then the account's persist name.
//!
//! Design note: the same rule as every other write (see `sync.rs`): each change runs as a task
//! of its own, commits to the store, and serves what the store returned, tagged with the
//! account's persist counter so that writes reaching the zone out of order cannot go back in
//! time. The persist name is `dns::zone::persist_label` of the account's subdomain; the store
//! keys everything by subdomain, and the change feed announces a subdomain, so following
//! another instance's write is "reload both names of that subdomain".

use super::{ZoneSync, detached};
use crate::dns::zone::persist_label;
use crate::persist::{MAX_RECORDS, Record};
use crate::store::{PutOutcome, StoreError, TxtValues};

impl ZoneSync {
    /// Stores `record` for the account of `subdomain` (at most [`MAX_RECORDS`] issuers) and
    /// serves the account's records as the store then holds them.
    pub async fn put_persist(&self, subdomain: &str, record: Record) -> Result<PutOutcome, StoreError> {
        let (this, subdomain) = (self.clone(), subdomain.to_owned());
        detached(async move {
            let outcome = this.store.put_persist(&subdomain, &record, MAX_RECORDS).await?;
            if let PutOutcome::Stored { served, .. } = &outcome {
                this.set_persist(served);
            }
            Ok(outcome)
        })
        .await
    }

    /// Deletes the account's record of `issuer` and serves what is left; `None` when the
    /// account held no record of that issuer.
    pub async fn delete_persist(
        &self,
        subdomain: &str,
        issuer: &str,
    ) -> Result<Option<TxtValues>, StoreError> {
        let (this, subdomain, issuer) = (self.clone(), subdomain.to_owned(), issuer.to_owned());
        detached(async move {
            let served = this.store.delete_persist(&subdomain, &issuer).await?;
            if let Some(served) = &served {
                this.set_persist(served);
            }
            Ok(served)
        })
        .await
    }

    /// Serves an account's records as the store returned them after a write.
    fn set_persist(&self, served: &TxtValues) {
        let values: Vec<&str> = served.values.iter().map(String::as_str).collect();
        self.zone.set_txt(&persist_label(&served.subdomain), served.seq, &values);
    }

    /// Reloads the persist name of `subdomain` from the store (a change from the feed, a
    /// purge), keeping what changed in the zone after `mark`.
    pub(super) async fn reload_persist(&self, mark: u64, subdomain: &str) -> Result<(), StoreError> {
        let label = persist_label(subdomain);
        match self.store.persist_of(subdomain).await? {
            Some(t) => {
                let values: Vec<&str> = t.values.iter().map(String::as_str).collect();
                self.zone.replace_txt(mark, &label, t.seq, &values);
            }
            // The account is gone, or never had a record: the name does not exist.
            None => {
                self.zone.remove(&label);
            }
        }
        Ok(())
    }

    /// Adds every persist name, as the store holds it, to a snapshot of the subdomains (zone
    /// load and resync replace all registered names at once, so both kinds must be in it).
    pub(super) async fn with_persist(
        &self,
        mut contents: Vec<TxtValues>,
    ) -> Result<Vec<TxtValues>, StoreError> {
        for mut t in self.store.persist_contents().await? {
            t.subdomain = persist_label(&t.subdomain);
            contents.push(t);
        }
        Ok(contents)
    }

    /// Stops serving the persist name of `subdomain` (its account was erased).
    pub(super) fn remove_persist(&self, subdomain: &str) {
        self.zone.remove(&persist_label(subdomain));
    }
}
