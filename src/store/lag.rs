//! How long each secondary took to serve each update: the history behind `transfer status`.
//!
//! Design note: with `wait_for_secondaries = "all"` a server learns, at each update, how long
//! every notified secondary took to serve it (or that it did not within `wait_timeout`). One
//! row per secondary and update, written after the update was answered; each secondary keeps
//! its newest [`KEEP`] rows, pruned in the same transaction, so the table stays a few hundred
//! rows whatever the traffic. A secondary is named by its address as `[transfer] notify`
//! writes it. Every instance on one database writes its own waits; the history is the
//! database's, read by the command line without a running server.

use super::common::{Conn, Value, count, now};
// The engines, by the names the `run!` and `atomic!` macros use.
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Store, StoreError};

/// Updates kept per secondary.
pub const KEEP: usize = 100;

/// One secondary's lag at one update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lag {
    /// The secondary's address, as `[transfer] notify` names it.
    pub secondary: String,
    /// Milliseconds from this server serving the update to the secondary serving it; `None`:
    /// not within `wait_timeout`.
    pub millis: Option<u64>,
}

/// See [`Store::record_lags`].
async fn record(c: &impl Conn, serial: u32, lags: &[Lag]) -> Result<(), StoreError> {
    let at = now();
    for lag in lags {
        let millis = lag.millis.map_or(Value::Null, |ms| i64::try_from(ms).unwrap_or(i64::MAX).into());
        c.execute(
            "INSERT INTO secondary_lag (secondary, serial, lag_ms, at) VALUES ($1, $2, $3, $4)",
            &[lag.secondary.as_str().into(), i64::from(serial).into(), millis, at.into()],
        )
        .await?;
        // The id of the newest row beyond the kept ones, and every older one: none, no delete.
        c.execute(
            "DELETE FROM secondary_lag WHERE secondary = $1 AND id <= \
             (SELECT id FROM secondary_lag WHERE secondary = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            &[lag.secondary.as_str().into(), count(KEEP)],
        )
        .await?;
    }
    Ok(())
}

/// See [`Store::lags`].
async fn read(c: &impl Conn) -> Result<Vec<Lag>, StoreError> {
    let rows =
        c.query("SELECT secondary, lag_ms FROM secondary_lag ORDER BY secondary, id DESC", &[]).await?;
    let mut lags = Vec::with_capacity(rows.len());
    for row in &rows {
        let millis = match row.0.get(1) {
            Some(Value::Int(ms)) => Some(u64::try_from(*ms).unwrap_or(0)),
            _ => None,
        };
        lags.push(Lag { secondary: row.text(0)?, millis });
    }
    Ok(lags)
}

impl Store {
    /// Records how long each secondary took to serve `serial`, keeping each one's newest
    /// [`KEEP`].
    pub async fn record_lags(&self, serial: u32, lags: Vec<Lag>) -> Result<(), StoreError> {
        atomic!(self, c => record(c, serial, &lags))
    }

    /// Every secondary's recorded lags, by secondary, newest first.
    pub async fn lags(&self) -> Result<Vec<Lag>, StoreError> {
        read!(self, c => read(c))
    }
}
