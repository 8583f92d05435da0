//! Each run's ABC report (`abc_report`): stored, and read back as GetAbcReport and the
//! shift guard need it (the one in force, the one held, one run's).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sea_orm::sea_query::{IntoCondition, OnConflict};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use super::rows::date;
use crate::domain::abc::{AbcClass, AbcReport, Basis, ClassSummary, Money, ReportState};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::entities::abc_report;
use crate::storage::Db;

/// Stores a run's report.
pub async fn insert_report(db: &Db, tenant: &TenantId, r: &AbcReport) -> Result<()> {
    let summary: Vec<serde_json::Value> = r
        .summary
        .iter()
        .map(|s| {
            json!({
                "class": s.class.map(AbcClass::as_str),
                "companies": s.companies,
                "revenue": s.revenue.ten_thousandths().to_string(),
                "share": s.share.to_string(),
            })
        })
        .collect();
    let curve: Vec<[String; 2]> = r
        .curve
        .iter()
        .map(|(c, v)| [c.to_string(), v.to_string()])
        .collect();
    let row = abc_report::ActiveModel {
        run_id: Set(r.run_id.clone()),
        tenant_id: Set(tenant.as_str().to_owned()),
        computed_at: Set(r.computed_at),
        as_of: Set(r.as_of.to_string()),
        basis: Set(r.basis.table().as_str().to_owned()),
        window_from: Set(r.window_from.to_string()),
        window_to: Set(r.window_to.to_string()),
        a_threshold: Set(r.a_threshold.to_string()),
        b_threshold: Set(r.b_threshold.to_string()),
        summary: Set(serde_json::Value::from(summary).to_string()),
        curve: Set(json!(curve).to_string()),
        companies: Set(i64::try_from(r.companies).unwrap_or(i64::MAX)),
        changed: Set(i64::try_from(r.changed).unwrap_or(i64::MAX)),
        base: Set(i64::try_from(r.base).unwrap_or(i64::MAX)),
        state: Set(r.state.as_str().to_owned()),
        resolved_at: NotSet,
    };
    // Stored again (a held classification approved): only its state changes.
    let txn = db.begin_write().await?;
    abc_report::Entity::insert(row)
        .on_conflict(
            OnConflict::column(abc_report::Column::RunId)
                .update_column(abc_report::Column::State)
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await?;
    txn.commit().await
}

/// The classification in force (the last one applied or approved), if any.
pub async fn current_report(db: &Db, tenant: &TenantId) -> Result<Option<AbcReport>> {
    let in_force = [ReportState::Applied, ReportState::Approved].map(ReportState::as_str);
    report_where(db, tenant, abc_report::Column::State.is_in(in_force)).await
}

/// The classification waiting for ResolveAbcShift, if any.
pub async fn held_report(db: &Db, tenant: &TenantId) -> Result<Option<AbcReport>> {
    let held = abc_report::Column::State.eq(ReportState::Held.as_str());
    report_where(db, tenant, held).await
}

/// The report of one run.
pub async fn report(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Option<AbcReport>> {
    report_where(db, tenant, abc_report::Column::RunId.eq(run_id)).await
}

/// The tenant's latest report that meets `condition`.
async fn report_where(
    db: &Db,
    tenant: &TenantId,
    condition: impl IntoCondition,
) -> Result<Option<AbcReport>> {
    abc_report::Entity::of_tenant_latest_first(tenant.as_str())
        .filter(condition)
        .one(db.conn())
        .await?
        .map(AbcReport::try_from)
        .transpose()
}

/// A stored report read back (an Internal error naming what is corrupt).
impl TryFrom<abc_report::Model> for AbcReport {
    type Error = AppError;

    fn try_from(r: abc_report::Model) -> Result<Self> {
        let corrupt =
            |what: &str| AppError::Internal(anyhow::anyhow!("stored ABC report: bad {what}"));
        let dec = |s: String, what: &str| s.parse::<Decimal>().map_err(|_| corrupt(what));
        let summary: serde_json::Value =
            serde_json::from_str(&r.summary).map_err(|_| corrupt("summary"))?;
        let summary = summary
            .as_array()
            .ok_or_else(|| corrupt("summary"))?
            .iter()
            .map(|s| {
                Ok(ClassSummary {
                    class: s["class"].as_str().and_then(AbcClass::parse),
                    companies: s["companies"].as_u64().unwrap_or(0),
                    revenue: s["revenue"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .map(Money::from_ten_thousandths)
                        .ok_or_else(|| corrupt("revenue"))?,
                    share: s["share"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| corrupt("share"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let curve: Vec<[String; 2]> =
            serde_json::from_str(&r.curve).map_err(|_| corrupt("curve"))?;
        let curve = curve
            .into_iter()
            .map(|[c, v]| Ok((dec(c, "curve")?, dec(v, "curve")?)))
            .collect::<Result<Vec<_>>>()?;
        let day = |s: String, col: &str| -> Result<NaiveDate> {
            date(Some(s))?.ok_or_else(|| corrupt(col))
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(AbcReport {
            as_of: day(r.as_of, "as_of")?,
            basis: Basis::parse(&r.basis).ok_or_else(|| corrupt("basis"))?,
            window_from: day(r.window_from, "window_from")?,
            window_to: day(r.window_to, "window_to")?,
            a_threshold: dec(r.a_threshold, "threshold")?,
            b_threshold: dec(r.b_threshold, "threshold")?,
            summary,
            curve,
            companies: count(r.companies),
            changed: count(r.changed),
            base: count(r.base),
            state: ReportState::parse(&r.state).ok_or_else(|| corrupt("state"))?,
            run_id: r.run_id,
            computed_at: r.computed_at,
        })
    }
}
