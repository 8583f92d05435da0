//! Bulk writes of the ABC analysis: a run's categories with their history entries
//! (`company_category`, `category_change`) and a held classification's rows
//! (`abc_held`), tens of thousands of rows at a time, each backend its own way
//! ([`sqlite`]: multi-row statements; [`pg`]: COPY and `UNNEST`).

mod pg;
mod sqlite;

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::abc::{Category, CategoryChange};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::abc::Stamp;
use crate::storage::bulk::Params;
use crate::storage::entities::category_change::standing_columns;
use crate::storage::{Db, Pool};

/// Companies a write transaction covers: each transaction keeps a company's category and
/// its history entry together, and stays short enough not to hold SQLite's writer long.
pub(crate) const COMPANIES_PER_TXN: usize = 10_000;
/// Rows per multi-row statement (17 columns stay under SQLite's 32 766 bind limit).
pub(crate) const ROWS_PER_STATEMENT: usize = 1_800;

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

/// Writes history entries as `category_change` rows, in multi-row statements (both
/// backends).
pub(crate) async fn insert_history(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    rows: &[&CategoryChange],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 12);
        let tuples: Vec<String> = chunk
            .iter()
            .map(|h| {
                let v = [
                    p.push(tenant.as_str()),
                    p.push(h.external_id.as_str()),
                    p.push(h.run_id.as_str()),
                    p.push(h.changed_on.to_string()),
                    p.push(h.changed_at),
                    p.push(h.abc_from.map(|c| c.as_str().to_owned())),
                    p.push(h.abc_to.map(|c| c.as_str().to_owned())),
                    p.push(h.lifecycle_from.map(|l| l.as_str().to_owned())),
                    p.push(h.lifecycle_to.map(|l| l.as_str().to_owned())),
                    p.push(h.revenue),
                    p.push(standing_columns(h.standing).0),
                    p.push(standing_columns(h.standing).1),
                ];
                format!("({})", v.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO category_change (tenant_id, external_id, run_id, changed_on, changed_at, \
             abc_from, abc_to, lifecycle_from, lifecycle_to, revenue, revenue_rank, share_before) \
             VALUES {}",
            tuples.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}
