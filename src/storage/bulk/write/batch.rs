//! What both backends' writers share: how much a transaction and a statement carry, and
//! the history rows (`category_change`), written alike on both in multi-row statements.

use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::abc::CategoryChange;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::entities::category_change::standing_columns;

/// Companies a write transaction covers: each transaction keeps a company's category and
/// its history entry together, and stays short enough not to hold SQLite's writer long.
pub(crate) const COMPANIES_PER_TXN: usize = 10_000;
/// Rows per multi-row statement (17 columns stay under SQLite's 32 766 bind limit).
pub(crate) const ROWS_PER_STATEMENT: usize = 1_800;

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
