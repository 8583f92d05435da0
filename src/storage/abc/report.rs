//! Each run's ABC report (`abc_report`): stored, and read back as GetAbcReport and the
//! shift guard need it (the one in force, the one held, one run's).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::rows::date;
use crate::domain::abc::{AbcClass, AbcReport, Basis, ClassSummary, Money, ReportState};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::{Db, Params};

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
    let mut p = Params::new(db.backend(), 16);
    let v = [
        p.push(r.run_id.as_str()),
        p.push(tenant.as_str()),
        p.push(r.computed_at),
        p.push(r.as_of.to_string()),
        p.push(r.basis.table().as_str()),
        p.push(r.window_from.to_string()),
        p.push(r.window_to.to_string()),
        p.push(r.a_threshold.to_string()),
        p.push(r.b_threshold.to_string()),
        p.push(serde_json::Value::from(summary).to_string()),
        p.push(json!(curve).to_string()),
        p.push(i64::try_from(r.companies).unwrap_or(i64::MAX)),
        p.push(i64::try_from(r.changed).unwrap_or(i64::MAX)),
        p.push(i64::try_from(r.base).unwrap_or(i64::MAX)),
        p.push(r.state.as_str()),
    ];
    let sql = format!(
        "INSERT INTO abc_report (run_id, tenant_id, computed_at, as_of, basis, window_from, window_to, \
         a_threshold, b_threshold, summary, curve, companies, changed, base, state) VALUES ({}) \
         ON CONFLICT (run_id) DO UPDATE SET state = excluded.state",
        v.join(", ")
    );
    let txn = db.begin_write().await?;
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
}

/// The classification in force (the last one applied or approved), if any.
pub async fn current_report(db: &Db, tenant: &TenantId) -> Result<Option<AbcReport>> {
    report_where(db, tenant, "state IN ('APPLIED', 'APPROVED')", None).await
}

/// The classification waiting for ResolveAbcShift, if any.
pub async fn held_report(db: &Db, tenant: &TenantId) -> Result<Option<AbcReport>> {
    report_where(db, tenant, "state = 'HELD'", None).await
}

/// The report of one run.
pub async fn report(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Option<AbcReport>> {
    report_where(db, tenant, "1 = 1", Some(run_id)).await
}

async fn report_where(
    db: &Db,
    tenant: &TenantId,
    condition: &str,
    run_id: Option<&str>,
) -> Result<Option<AbcReport>> {
    let mut p = Params::new(db.backend(), 2);
    let mut sql = format!(
        "SELECT run_id, computed_at, as_of, basis, window_from, window_to, a_threshold, b_threshold, \
         summary, curve, companies, changed, base, state FROM abc_report WHERE tenant_id = {} AND {condition}",
        p.push(tenant.as_str())
    );
    if let Some(run) = run_id {
        sql += &format!(" AND run_id = {}", p.push(run));
    }
    sql += " ORDER BY computed_at DESC LIMIT 1";
    let Some(r) = db.conn().query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let corrupt = |what: &str| AppError::Internal(anyhow::anyhow!("stored ABC report: bad {what}"));
    let dec = |s: String, what: &str| s.parse::<Decimal>().map_err(|_| corrupt(what));
    let summary: serde_json::Value = serde_json::from_str(&r.try_get::<String>("", "summary")?)
        .map_err(|_| corrupt("summary"))?;
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
        serde_json::from_str(&r.try_get::<String>("", "curve")?).map_err(|_| corrupt("curve"))?;
    let curve = curve
        .into_iter()
        .map(|[c, v]| Ok((dec(c, "curve")?, dec(v, "curve")?)))
        .collect::<Result<Vec<_>>>()?;
    let day =
        |col: &str| -> Result<NaiveDate> { date(r.try_get("", col)?)?.ok_or_else(|| corrupt(col)) };
    let count =
        |col: &str| -> Result<u64> { Ok(u64::try_from(r.try_get::<i64>("", col)?).unwrap_or(0)) };
    let state: String = r.try_get("", "state")?;
    let basis: String = r.try_get("", "basis")?;
    Ok(Some(AbcReport {
        run_id: r.try_get("", "run_id")?,
        computed_at: r.try_get("", "computed_at")?,
        as_of: day("as_of")?,
        basis: Basis::parse(&basis).ok_or_else(|| corrupt("basis"))?,
        window_from: day("window_from")?,
        window_to: day("window_to")?,
        a_threshold: dec(r.try_get("", "a_threshold")?, "threshold")?,
        b_threshold: dec(r.try_get("", "b_threshold")?, "threshold")?,
        summary,
        curve,
        companies: count("companies")?,
        changed: count("changed")?,
        base: count("base")?,
        state: ReportState::parse(&state).ok_or_else(|| corrupt("state"))?,
    }))
}
