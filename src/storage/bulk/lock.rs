//! PostgreSQL's transaction-scoped advisory locks: a lock function, not a query of a
//! table, so no entity fits.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};

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
