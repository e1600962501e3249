//! The storage layer's error: what a store call can fail with, whichever engine ran it.
//!
//! Design note: callers decide on the variant, not on text. The API answers 503 for the
//! failures that may pass (`Unavailable`, `Disconnected`, `Full`) and 500 for the rest
//! (`api::error`, the one place that picks statuses); `calls.rs` retries a call once after
//! `Disconnected` where nothing can apply twice. Each engine's file maps its driver's errors to
//! these variants (`sqlite::error`, `postgres::error`).

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached at start.
    #[error("cannot open the database {target}: {reason}")]
    Open {
        /// File or URL (without password).
        target: String,
        /// Why.
        reason: String,
    },
    /// The database is unreachable now (it may come back): no answer in time, no free
    /// connection, a resource of the server exhausted, a lock held too long.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The connection broke, or the server ended it or refused a new one (a restart, a
    /// shutdown, a reset): what the call sent was not committed, unless it broke at the commit.
    #[error("the database connection was lost: {0}")]
    Disconnected(String),
    /// The database has no room left to write (a full disk): reads still work, writes fail
    /// until space is freed.
    #[error("the database is out of space: {0}")]
    Full(String),
    /// The database (named) holds acme-dns's schema, which we do not take over in place.
    #[error("{0} is an acme-dns database; acme-delegate keeps its own schema and leaves this one as it is")]
    ForeignSchema(String),
    /// The schema is newer than this program knows.
    #[error(
        "the database schema is version {found}, newer than this program's {known}; upgrade acme-delegate"
    )]
    TooNew {
        /// Version in the database.
        found: i64,
        /// Newest version we know.
        known: i64,
    },
    /// A uniqueness rule was violated (e.g. a colliding random name).
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Backend(String),
}
