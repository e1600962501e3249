//! Zone sync for dns-persist-01 records: store first, then the account's persist name.
//!
//! Design note: the same rule as every other write (see `zone_sync.rs`): each change runs as a task
//! of its own, commits to the store (which moves the zone version and logs the persist name's
//! new values), then catches the zone up from the log, like every other change. The persist
//! name is `dns::zone::persist_label` of the account's subdomain; the store keys everything by
//! subdomain and logs the name as `+<subdomain>` (`store::version::persist_name`).

use super::SyncError;
use super::{ZoneSync, detached};
use crate::dns_persist::{MAX_RECORDS, Record};
use crate::store::{PutOutcome, TxtValues};

impl ZoneSync {
    /// Stores `record` for the account of `subdomain` (at most [`MAX_RECORDS`] issuers) and
    /// serves the account's records as the store then holds them.
    pub async fn put_persist(&self, subdomain: &str, record: Record) -> Result<PutOutcome, SyncError> {
        let (this, subdomain) = (self.clone(), subdomain.to_owned());
        detached(async move {
            let outcome = this.store.put_persist(&subdomain, &record, MAX_RECORDS).await?;
            if let PutOutcome::Stored { .. } = &outcome {
                this.catch_up(None).await?;
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
    ) -> Result<Option<TxtValues>, SyncError> {
        let (this, subdomain, issuer) = (self.clone(), subdomain.to_owned(), issuer.to_owned());
        detached(async move {
            let served = this.store.delete_persist(&subdomain, &issuer).await?;
            if served.is_some() {
                this.catch_up(None).await?;
            }
            Ok(served)
        })
        .await
    }
}
