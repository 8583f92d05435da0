//! Statements of one backend's own functions, not queries of a table, so no entity fits:
//! PostgreSQL's transaction-scoped advisory locks, notifications and statistics, SQLite's
//! WAL checkpoint.

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};

use crate::error::Result;
use crate::storage::db::Db;

impl Db {
    /// Copies the SQLite write-ahead log into the database file without blocking
    /// writers or readers (a no-op on PostgreSQL). Returns the WAL frames checkpointed.
    pub async fn checkpoint(&self) -> Result<i64> {
        wal_checkpoint(self.conn()).await
    }
}

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

/// Checks that a LISTEN connection still answers, with a statement of its own.
pub(crate) async fn ping_listener(listener: &mut sqlx::postgres::PgListener) -> Result<()> {
    sqlx::query("SELECT 1").execute(listener).await?;
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

/// Rows changed since a table's last ANALYZE, beyond its share below, that make its
/// statistics stale for [`analyze_if_stale`].
const STALE_ROWS: f64 = 10_000.0;
/// Share of a table's rows changed since its last ANALYZE that makes its statistics stale:
/// autovacuum's own default (`autovacuum_analyze_scale_factor`), only sooner.
const STALE_SHARE: f64 = 0.1;

/// Analyzes `table` on PostgreSQL when more of its rows changed since its last ANALYZE
/// than autovacuum lets pass (10 % and 10 000 rows); returns whether it did. A no-op on
/// SQLite, whose plans here take no statistics.
///
/// Right after a bulk load autovacuum has not analyzed yet (it wakes every minute, then
/// takes its time), and the planner, told the tenant has a handful of rows, walks a
/// million of them through an index: an `UPDATE` of a freshly loaded table's rows that
/// way took 7 × the sequential scan it takes once analyzed. ANALYZE reads a sample of
/// 30 000 pages: a fraction of a second, once per load.
pub(crate) async fn analyze_if_stale(
    conn: &DatabaseConnection,
    table: &'static str,
) -> Result<bool> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let row = conn
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT s.n_mod_since_analyze::float8 AS changed, greatest(c.reltuples, 0)::float8 AS rows \
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.relid = to_regclass($1)",
            [table.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let changed: f64 = row.try_get("", "changed")?;
    let rows: f64 = row.try_get("", "rows")?;
    if changed <= STALE_ROWS + STALE_SHARE * rows {
        return Ok(false);
    }
    // The name is one of storage's own tables, never a caller's text.
    conn.execute(Statement::from_string(
        DbBackend::Postgres,
        format!("ANALYZE {table}"),
    ))
    .await?;
    Ok(true)
}
