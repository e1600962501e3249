//! The store's two ways of running a shared operation on whichever engine is open: `run!`
//! (statements that commit one by one) and `atomic!` (one transaction).
//!
//! Design note: the operations (`common.rs` and its neighbours) are written once against
//! `common::Conn`; these macros give them a connection of the open engine. They are macros,
//! not generic functions, because the operation is an expression borrowing the caller's
//! values that runs on SQLite's blocking thread or on a PostgreSQL connection from the pool,
//! and a closure returning a future that borrows its own arguments cannot be written as a
//! plain bound.

/// Runs a shared operation `$op`, with `$c` bound to a connection of whichever engine is open,
/// outside any transaction (each statement commits by itself). `$op` may use owned values of
/// the caller: the SQLite arm moves them to the blocking thread.
macro_rules! run {
    ($self:ident, $c:ident => $op:expr) => {
        match $self {
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
                let client = store.client().await?;
                let out = postgres::deadline(postgres::CALL_DEADLINE, async {
                    let $c = &postgres::Pg(&client);
                    $op.await
                })
                .await;
                postgres::settle(client, &out);
                out
            }
        }
    };
}

/// Like `run!`, in one transaction: all of `$op`'s statements apply, or none; its
/// notifications are delivered only if it commits.
macro_rules! atomic {
    ($self:ident, $c:ident => $op:expr) => {
        atomic!($self, limit = CALL_DEADLINE, $c => $op)
    };
    // With PostgreSQL, `$limit` (a constant of `postgres`) bounds the transaction.
    ($self:ident, limit = $limit:ident, $c:ident => $op:expr) => {
        match $self {
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
                let mut client = store.client().await?;
                let out = postgres::deadline(postgres::$limit, async {
                    let tx = client.transaction().await.map_err(postgres::error)?;
                    if let Some(sql) = postgres::longer_statements(postgres::$limit) {
                        tx.batch_execute(&sql).await.map_err(postgres::error)?;
                    }
                    let out = {
                        let $c = &postgres::Pg(&tx);
                        $op.await?
                    };
                    tx.commit().await.map_err(postgres::error)?;
                    Ok(out)
                })
                .await;
                postgres::settle(client, &out);
                out
            }
        }
    };
}
