//! What can keep a change from reaching the zone: the store, the keys, or the zone work.
//!
//! Design note: a write through [`super::ZoneSync`] first commits to the store, then applies
//! the store's versions to the zone. Three different things can fail on that path, and a
//! caller must be able to tell them apart: the database (which may come back: the API answers
//! 503 for some of its failures), the key set a rollover step names (stored keys that cannot
//! be read: an operator's matter), and the zone work the sync runs on a blocking thread
//! (signing every set, re-keying, a whole-zone load), whose panic is a fault in this program.
//! Before this type, the last two were folded into `StoreError::Backend` as text, so a
//! panicked signing task was logged and counted as a database error and its cause was lost.
//! Each variant keeps its cause as the error's `source`; the HTTP translation stays in
//! `api::error`, the one place that turns errors into statuses.

use crate::store::StoreError;

use super::keys::KeyError;

/// Why the zone could not follow the store.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key set a version names (a rollover step, or the keys in force at a start) could
    /// not be made from the stored keys.
    #[error("the zone's signing keys: {0}")]
    Keys(#[source] KeyError),
    /// Zone work on a blocking thread panicked or was cancelled: a fault in this program, not
    /// in the database.
    #[error("{job} did not finish: {source}")]
    Task {
        /// What the work was, for the log.
        job: &'static str,
        /// The panic or cancellation.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl From<KeyError> for SyncError {
    /// A key error that is the store's failure stays one, so that callers see `Store` for
    /// every database failure whichever step it came from.
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Store(error) => Self::Store(error),
            other => Self::Keys(other),
        }
    }
}

impl SyncError {
    /// The error of the blocking zone work `job`, for `map_err` on its join handle.
    pub(crate) fn task(job: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| Self::Task { job, source }
    }
}
