//! Writing the audit trail so that one account cannot grow it without bound.
//!
//! Design note: every credential use is recorded (GDPR accountability, and the account
//! holder's own view of who used their key), but a row per use lets one account, or one
//! attacker guessing its key, write rows as fast as it can send requests. So a use identical to
//! one already recorded in the last [`FOLD_WINDOW`] (same account, action, outcome and source
//! network) adds one to that row's count and moves its `last_at` instead of adding a row. Rows
//! per account then grow at most by one per window for each distinct (action, outcome, source)
//! it produces: a handful of actions and outcomes, times the networks it is used from. Nothing
//! is lost but the exact time of each repeat: the first (`at`) and the newest (`last_at`) are
//! kept, with the count. The retention purge removes a row by `at`, its first use, so no use is
//! kept longer than the retention says (a repeat may go up to one window early).
//!
//! Two instances folding the same use at once may both find no row and both insert one: that
//! costs a row, never a use, and the bound still holds up to the number of instances.

use super::common::{self, Conn};
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Account, AuditEntry, Store, StoreError};

/// How long after an entry's first use identical uses are folded into it, in seconds.
pub(super) const FOLD_WINDOW: i64 = 3600;

/// See [`super::Store::record_audit`]: folds `entry` into the newest identical entry of the
/// window, or appends it.
pub(super) async fn record(c: &impl Conn, entry: &AuditEntry) -> Result<(), StoreError> {
    // Only an entry that began at or before this use and within the window; an entry written
    // with an older time (a clock step back) starts a row of its own.
    let folded = c
        .execute(
            "UPDATE audit SET occurrences = occurrences + $6, \
             last_at = CASE WHEN last_at > $1 THEN last_at ELSE $1 END WHERE id = (\
                SELECT id FROM audit WHERE username IS NOT DISTINCT FROM $2 AND action = $3 \
                AND outcome = $4 AND source = $5 AND at <= $1 AND at > $7 ORDER BY id DESC LIMIT 1)",
            &[
                entry.last_at.into(),
                entry.username.as_ref().into(),
                (&entry.action).into(),
                (&entry.outcome).into(),
                (&entry.source).into(),
                entry.count.into(),
                (entry.last_at - FOLD_WINDOW).into(),
            ],
        )
        .await?;
    if folded > 0 {
        return Ok(());
    }
    c.execute(
        "INSERT INTO audit (at, username, action, outcome, source, occurrences, last_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            entry.at.into(),
            entry.username.as_ref().into(),
            (&entry.action).into(),
            (&entry.outcome).into(),
            (&entry.source).into(),
            entry.count.into(),
            entry.last_at.into(),
        ],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Appends to the audit trail.
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        run!(self, c => record(c, &entry))
    }

    /// Stores a new account and its audit entry in one transaction (one commit, not two).
    pub(crate) async fn register_account(
        &self,
        account: &Account,
        entry: AuditEntry,
    ) -> Result<(), StoreError> {
        let account = account.clone();
        atomic!(self, c => async {
            common::insert_account(c, &account, false).await?;
            record(c, &entry).await
        })
    }
}
