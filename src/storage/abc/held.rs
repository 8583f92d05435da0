//! Classifications held by the shift guard (`abc_held`): kept with their report until
//! ResolveAbcShift approves or discards them, or a later one supersedes them.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::report::insert_report;
use super::rows::{category_from, CATEGORY_COLUMNS};
use crate::domain::abc::{AbcReport, Category, ReportState};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::write;
use crate::storage::{Db, Params};

/// Keeps a classification held by the shift guard: its report and every company's new
/// category. An earlier held classification of the tenant is superseded.
pub async fn hold(db: &Db, tenant: &TenantId, report: &AbcReport, rows: &[Category]) -> Result<()> {
    supersede_held(db, tenant, report.computed_at).await?;
    write::held(db, tenant, &report.run_id, rows).await?;
    insert_report(db, tenant, report).await
}

/// The companies' categories of a held classification.
pub async fn held_rows(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Vec<Category>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM abc_held WHERE tenant_id = {} AND run_id = {}",
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .iter()
        .map(category_from)
        .collect()
}

/// Marks every held classification of the tenant SUPERSEDED (a later one replaces it)
/// and drops its rows.
pub async fn supersede_held(db: &Db, tenant: &TenantId, now: DateTime<Utc>) -> Result<u64> {
    let held = held_report_ids(db, tenant).await?;
    for run in &held {
        resolve(db, tenant, run, ReportState::Superseded, now).await?;
    }
    Ok(held.len() as u64)
}

async fn held_report_ids(db: &Db, tenant: &TenantId) -> Result<Vec<String>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT run_id FROM abc_report WHERE tenant_id = {} AND state = 'HELD'",
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "run_id").map_err(Into::into))
        .collect()
}

/// Ends a held classification (APPROVED, DISCARDED or SUPERSEDED) and drops its rows;
/// false when it was not held any more.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    run_id: &str,
    state: ReportState,
    now: DateTime<Utc>,
) -> Result<bool> {
    let txn = db.begin_write().await?;
    let mut p = Params::new(txn.get_database_backend(), 4);
    let sql = format!(
        "UPDATE abc_report SET state = {}, resolved_at = {} WHERE tenant_id = {} AND run_id = {} \
         AND state = 'HELD'",
        p.push(state.as_str()),
        p.push(now),
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    let n = txn.execute(p.statement(sql)).await?.rows_affected();
    let mut p = Params::new(txn.get_database_backend(), 2);
    let sql = format!(
        "DELETE FROM abc_held WHERE tenant_id = {} AND run_id = {}",
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    txn.execute(p.statement(sql)).await?;
    txn.commit().await?;
    Ok(n > 0)
}
