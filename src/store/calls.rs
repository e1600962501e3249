//! The store's ways of running a shared operation on whichever engine is open: `run!`
//! (statements that commit one by one), `read!` (the same, for an operation that only reads)
//! and `atomic!` (one transaction).
//!
//! Design note: the operations (`common.rs` and its neighbours) are written once against
//! `common::Conn`; these macros give them a connection of the open engine. They are macros,
//! not generic functions, because the operation is an expression borrowing the caller's
//! values that runs on SQLite's blocking thread or on a PostgreSQL connection from the pool,
//! and a closure returning a future that borrows its own arguments cannot be written as a
//! plain bound.
//!
//! Retries: a PostgreSQL restart ends every connection (57P01) and refuses new ones for a
//! moment (57P03, connection refused); each of those is `StoreError::Disconnected`, and a
//! call that met one is run once more on a fresh connection after a short pause where that
//! cannot apply anything twice: when no connection could be had (nothing was sent), when the
//! operation only reads (`read!`), and when a transaction failed before its COMMIT was sent
//! (the server rolls back a transaction whose connection is gone). Never when the connection
//! was lost at the COMMIT, nor for a statement of `run!` that may write: the server may have
//! committed and only its reply been lost, and running it again could apply it twice (an
//! update's value stored twice would push out the value before it; the zone version would move
//! twice). That call answers 503 and the client, which knows what it asked for, retries. A call
//! that ran out of time is not retried either, and a retry runs in what is left of the first
//! attempt's deadline: the deadline bounds the call, not each attempt.
//! Every outcome passes through `Store::observe`, which notes a write refused for lack of space
//! (for `/ready`).

/// Runs a shared operation `$op`, with `$c` bound to a connection of whichever engine is open,
/// outside any transaction (each statement commits by itself). `$op` may use owned values of
/// the caller: the SQLite arm moves them to the blocking thread. With `retry = true` (see
/// `read!`), a connection lost anywhere in it runs it again; otherwise only failing to get one.
macro_rules! run {
    ($self:ident, $c:ident => $op:expr) => {
        run!($self, retry = false, $c => $op)
    };
    ($self:ident, retry = $retry:expr, $c:ident => $op:expr) => {
        $self.observe(match $self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => {
                store
                    .with(move |conn| {
                        let $c = &*conn;
                        sqlite::ready($op)
                    })
                    .await
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => {
                let read_only: bool = $retry;
                // The deadline runs from the first attempt's first statement.
                let (mut again, mut began) = (true, None);
                loop {
                    // Whether statements went out on the connection (and may have committed).
                    let (out, sent) = match store.client().await {
                        Err(error) => (Err(error), false),
                        Ok(client) => {
                            let start = *began.get_or_insert_with(tokio::time::Instant::now);
                            let limit = postgres::remaining(postgres::CALL_DEADLINE, start);
                            let out = postgres::deadline(limit, async {
                                let $c = &postgres::Pg(&client);
                                $op.await
                            })
                            .await;
                            postgres::settle(client, &out);
                            (out, true)
                        }
                    };
                    if again && (read_only || !sent) && postgres::retryable(&out) {
                        again = false;
                        postgres::pause().await;
                        continue;
                    }
                    break out;
                }
            }
        })
    };
}

/// Like `run!` for an operation that only reads: a read commits nothing, so after a lost
/// connection it runs once more on a fresh one wherever it broke.
macro_rules! read {
    ($self:ident, $c:ident => $op:expr) => {
        run!($self, retry = true, $c => $op)
    };
}

/// Like `run!`, in one transaction: all of `$op`'s statements apply, or none; its
/// notifications are delivered only if it commits. With PostgreSQL, a connection lost before
/// the COMMIT was sent runs the transaction once more (see the design note for why never at
/// the COMMIT).
macro_rules! atomic {
    ($self:ident, $c:ident => $op:expr) => {
        atomic!($self, limit = CALL_DEADLINE, $c => $op)
    };
    // With PostgreSQL, `$limit` (a constant of `postgres`) bounds the transaction.
    ($self:ident, limit = $limit:ident, $c:ident => $op:expr) => {
        $self.observe(match $self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(store) => {
                store
                    .with(move |conn| {
                        let tx = sqlite::begin(conn)?;
                        let out = {
                            let $c = &*tx;
                            sqlite::ready($op)?
                        };
                        tx.commit().map_err(sqlite::error)?;
                        Ok(out)
                    })
                    .await
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => {
                // The deadline runs from the first attempt's first statement.
                let (mut again, mut began) = (true, None);
                loop {
                    // Whether the COMMIT was sent: from then on the outcome may be unknown.
                    let mut committing = false;
                    let out = match store.client().await {
                        Err(error) => Err(error),
                        Ok(mut client) => {
                            let start = *began.get_or_insert_with(tokio::time::Instant::now);
                            let limit = postgres::remaining(postgres::$limit, start);
                            let out = postgres::deadline(limit, async {
                                let tx = client.transaction().await.map_err(postgres::error)?;
                                if let Some(sql) = postgres::longer_statements(postgres::$limit) {
                                    tx.batch_execute(&sql).await.map_err(postgres::error)?;
                                }
                                let out = {
                                    let $c = &postgres::Pg(&tx);
                                    $op.await?
                                };
                                committing = true;
                                tx.commit().await.map_err(postgres::error)?;
                                Ok(out)
                            })
                            .await;
                            postgres::settle(client, &out);
                            out
                        }
                    };
                    if again && !committing && postgres::retryable(&out) {
                        again = false;
                        postgres::pause().await;
                        continue;
                    }
                    break out;
                }
            }
        })
    };
}
