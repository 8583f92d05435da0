//! Statements of one backend's own functions, not queries of a table, so no entity fits:
//! PostgreSQL's transaction-scoped advisory locks and notifications, SQLite's WAL
//! checkpoint.

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};

use crate::error::Result;

/// Waits for, then holds until `txn` ends, the lock named `key`: writers that take the
/// same key commit one after another. A no-op on SQLite, whose writers already do.
pub(crate) async fn hold_until_commit(txn: &DatabaseTransaction, key: &str) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [key.into()],
    ))
    .await?;
    Ok(())
}

/// Sends `payload` on the PostgreSQL channel `channel` when `txn` commits (nothing if it
/// rolls back): a listener that hears it reads a database where the transaction's rows
/// are visible. A no-op on SQLite, which has no other process to tell.
pub(crate) async fn notify_at_commit(
    txn: &DatabaseTransaction,
    channel: &str,
    payload: &str,
) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), payload.into()],
    ))
    .await?;
    Ok(())
}

/// Copies SQLite's write-ahead log into the database file without blocking writers or
/// readers; returns the WAL frames checkpointed (0 on PostgreSQL, which has no such log).
pub(crate) async fn wal_checkpoint(conn: &DatabaseConnection) -> Result<i64> {
    if conn.get_database_backend() != DbBackend::Sqlite {
        return Ok(0);
    }
    let row = conn
        .query_one(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?;
    Ok(row
        .and_then(|r| r.try_get_by_index::<i64>(2).ok())
        .unwrap_or(0))
}
