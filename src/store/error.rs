//! The storage layer's error: what a store call can fail with, whichever engine ran it.
//!
//! Design note: callers decide on the variant, not on text. The API answers 503 for the
//! failures that may pass (`Unavailable`, `Disconnected`, `Full`) and 500 for the rest
//! (`api::error`, the one place that picks statuses); `calls.rs` retries a call once after
//! `Disconnected` where nothing can apply twice. Each engine's file maps its driver's errors to
//! these variants (`sqlite::error`, `postgres::error`). A failure that another error caused
//! keeps that error as its `source` (the driver's, the JSON reader's, a blocking task's panic),
//! so a log that follows the chain names the cause, and a panic is not told as a database
//! error. `Backend` is left for what has no cause beneath it: a row that is not as it must be.

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
    /// SQLite failed in a way none of the variants above names (a corrupt file, a statement
    /// it refuses); the driver's error is the source.
    #[cfg(feature = "sqlite")]
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// PostgreSQL failed in a way none of the variants above names.
    #[cfg(feature = "postgres")]
    #[error("database error: {message}")]
    Postgres {
        /// The server's own message (the driver's `Display` says only "db error").
        message: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A column kept as JSON (`allowfrom`, the values a version logs) could not be written or
    /// read back.
    #[error("{what}: {source}")]
    Json {
        /// Which column, of what.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Store work on a blocking thread (an SQLite call, the import's reader) panicked or was
    /// cancelled: a fault in this program, not the database's.
    #[error("{job} did not finish: {source}")]
    Task {
        /// What the work was, for the log.
        job: &'static str,
        /// The panic or cancellation.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A row or column is not what the schema says, or a call has no row to return: no
    /// error of another layer lies beneath.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// The error of the blocking store work `job`, for `map_err` on its join handle.
    pub(crate) fn task(job: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| Self::Task { job, source }
    }

    /// The error of the JSON column `what`, for `map_err` on its (de)serialisation.
    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let what = what.into();
        move |source| Self::Json { what, source }
    }
}
