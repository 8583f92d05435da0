//! Bulk writes of the ABC analysis: a run's categories with their history entries
//! (`company_category`, `category_change`) and a held classification's rows
//! (`abc_held`), tens of thousands of rows at a time, each backend its own way
//! ([`sqlite`]: multi-row statements; [`pg`]: COPY and `UNNEST`). What both share, the
//! batch sizes and the history rows' statement, is in [`batch`].

mod batch;
mod pg;
mod sqlite;

use std::collections::HashMap;

use crate::domain::abc::{Category, CategoryChange, Stamp};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::db::{Db, Pool};

pub(crate) use self::batch::{insert_history, ROWS_PER_STATEMENT};

/// Writes a run's categories: `new` (no stored categories: their first history entry is
/// kept on their row) inserted, `changed` upserted with their entries of `by_company`,
/// `removed` deleted.
pub(crate) async fn categories(
    db: &Db,
    tenant: &TenantId,
    stamp: &Stamp<'_>,
    new: &[Category],
    changed: &[Category],
    by_company: &HashMap<&str, &CategoryChange>,
    removed: &[String],
) -> Result<()> {
    if let Pool::Postgres(pool) = db.pool() {
        return pg::apply(pool, tenant, stamp, new, changed, by_company, removed).await;
    }
    sqlite::apply(db, tenant, stamp, new, changed, by_company, removed).await
}

/// Writes the companies' categories of the classification `run_id` holds.
pub(crate) async fn held(
    db: &Db,
    tenant: &TenantId,
    run_id: &str,
    rows: &[Category],
) -> Result<()> {
    if let Pool::Postgres(pool) = db.pool() {
        return pg::hold(pool, tenant, run_id, rows).await;
    }
    sqlite::hold(db, tenant, run_id, rows).await
}
