//! Classifications held by the shift guard (`abc_held`): kept with their report until
//! ResolveAbcShift approves or discards them, or a later one supersedes them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::report::insert_report;
use crate::domain::abc::{AbcReport, Category, ReportState};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::write;
use crate::storage::entities::{abc_held, abc_report};
use crate::storage::Db;

/// Keeps a classification held by the shift guard: its report and every company's new
/// category. An earlier held classification of the tenant is superseded.
pub async fn hold(db: &Db, tenant: &TenantId, report: &AbcReport, rows: &[Category]) -> Result<()> {
    supersede_held(db, tenant, report.computed_at).await?;
    write::held(db, tenant, &report.run_id, rows).await?;
    insert_report(db, tenant, report).await
}

/// The companies' categories of a held classification.
pub async fn held_rows(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Vec<Category>> {
    abc_held::Entity::of_run(tenant.as_str(), run_id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(Category::try_from)
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
    Ok(abc_report::Entity::find()
        .select_only()
        .column(abc_report::Column::RunId)
        .filter(abc_report::Column::TenantId.eq(tenant.as_str()))
        .filter(abc_report::Column::State.eq(ReportState::Held.as_str()))
        .into_tuple()
        .all(db.conn())
        .await?)
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
    let n = abc_report::Entity::update_many()
        .col_expr(abc_report::Column::State, Expr::value(state.as_str()))
        .col_expr(abc_report::Column::ResolvedAt, Expr::value(now))
        .filter(abc_report::Column::TenantId.eq(tenant.as_str()))
        .filter(abc_report::Column::RunId.eq(run_id))
        .filter(abc_report::Column::State.eq(ReportState::Held.as_str()))
        .exec(&*txn)
        .await?
        .rows_affected;
    abc_held::Entity::delete_many()
        .filter(abc_held::Column::TenantId.eq(tenant.as_str()))
        .filter(abc_held::Column::RunId.eq(run_id))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(n > 0)
}
