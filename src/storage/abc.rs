//! The ABC analysis's tables: revenue aggregated from staged invoices or orders, each
//! company's current categories (`company_category`), their history (`category_change`),
//! each run's report (`abc_report`) and the classifications held by the shift guard
//! (`abc_held`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Value};
use serde_json::json;

use super::{Db, Params};
use crate::domain::abc::{
    AbcClass, AbcReport, Basis, Category, CategoryChange, ClassSummary, Lifecycle, ReportState,
};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

/// One company's purchases as the database sums them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purchases {
    /// Revenue inside the window, in ten-thousandths.
    pub revenue: i64,
    /// First purchase (positive total) up to the window's end.
    pub first: Option<NaiveDate>,
    /// Last purchase up to the window's end.
    pub last: Option<NaiveDate>,
}

/// Revenue per company over [from, to] and first/last purchase dates up to `to`, summed
/// by the database in one scan of the revenue index (never loading the rows here).
pub async fn purchases(
    db: &Db,
    tenant: &TenantId,
    basis: Basis,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<String, Purchases>> {
    let mut p = Params::new(db.backend(), 4);
    // Placeholders are bound in the order they appear.
    let from_p = p.push(from.to_string());
    let t = p.push(tenant.as_str());
    let tb = p.push(basis.table());
    let to_p = p.push(to.to_string());
    let sql = format!(
        "SELECT company_ref, CAST(SUM(CASE WHEN issued_on >= {from_p} THEN amount ELSE 0 END) AS BIGINT) AS revenue, \
         MIN(CASE WHEN amount > 0 THEN issued_on END) AS first_buy, \
         MAX(CASE WHEN amount > 0 THEN issued_on END) AS last_buy \
         FROM staged_record WHERE tenant_id = {t} AND table_name = {tb} AND amount IS NOT NULL \
         AND issued_on <= {to_p} AND NOT deleted GROUP BY company_ref"
    );
    let rows = db.conn().query_all(p.statement(sql)).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("overflow") || text.contains("out of range") {
            AppError::Internal(anyhow::anyhow!(
                "a company's revenue is beyond 922 trillion: check the ERP's {} totals ({text})",
                basis.table()
            ))
        } else {
            AppError::Database(e)
        }
    })?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: Option<String> = r.try_get("", "company_ref")?;
        let Some(id) = id else { continue };
        out.insert(
            id,
            Purchases {
                revenue: r.try_get::<Option<i64>>("", "revenue")?.unwrap_or(0),
                first: date(r.try_get("", "first_buy")?)?,
                last: date(r.try_get("", "last_buy")?)?,
            },
        );
    }
    Ok(out)
}

fn date(s: Option<String>) -> Result<Option<NaiveDate>> {
    s.map(|s| {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored date {s:?} is corrupt: {e}")))
    })
    .transpose()
}

/// A live (not deleted) staged company: what categorize needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCompany {
    /// External id.
    pub external_id: String,
    /// Name.
    pub name: String,
    /// Document.
    pub document: String,
    /// The seller's external id, if any.
    pub seller_id: Option<String>,
}

/// Every live staged company of the tenant (the JSON fields read by the database).
pub async fn live_companies(db: &Db, tenant: &TenantId) -> Result<Vec<LiveCompany>> {
    let field = |name: &str| match db.backend() {
        DbBackend::Postgres => format!("(fields::jsonb)->>'{name}'"),
        _ => format!("json_extract(fields, '$.{name}')"),
    };
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT external_id, {} AS name, {} AS document, {} AS seller_id FROM staged_record \
         WHERE tenant_id = {} AND table_name = 'company' AND NOT deleted",
        field("name"),
        field("document"),
        field("seller_id"),
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            Ok(LiveCompany {
                external_id: r.try_get("", "external_id")?,
                name: r.try_get::<Option<String>>("", "name")?.unwrap_or_default(),
                document: r
                    .try_get::<Option<String>>("", "document")?
                    .unwrap_or_default(),
                seller_id: r
                    .try_get::<Option<String>>("", "seller_id")?
                    .filter(|s| !s.is_empty()),
            })
        })
        .collect()
}

const CATEGORY_COLUMNS: &str = "external_id, name, document, abc_class, lifecycle, portfolio, \
    revenue, first_purchase, last_purchase";

fn category_values(c: &Category) -> [Value; 9] {
    [
        c.external_id.as_str().into(),
        c.name.as_str().into(),
        c.document.as_str().into(),
        c.abc_class.map(|x| x.as_str().to_owned()).into(),
        c.lifecycle.as_str().into(),
        c.portfolio.as_str().into(),
        c.revenue.into(),
        c.first_purchase.map(|d| d.to_string()).into(),
        c.last_purchase.map(|d| d.to_string()).into(),
    ]
}

fn category_from(r: &QueryResult) -> Result<Category> {
    let corrupt =
        |what: &str, v: &str| AppError::Internal(anyhow::anyhow!("stored {what} {v:?} is corrupt"));
    let class: Option<String> = r.try_get("", "abc_class")?;
    let lifecycle: String = r.try_get("", "lifecycle")?;
    Ok(Category {
        external_id: r.try_get("", "external_id")?,
        name: r.try_get("", "name")?,
        document: r.try_get("", "document")?,
        abc_class: match class {
            Some(c) => Some(AbcClass::parse(&c).ok_or_else(|| corrupt("class", &c))?),
            None => None,
        },
        lifecycle: Lifecycle::parse(&lifecycle).ok_or_else(|| corrupt("lifecycle", &lifecycle))?,
        portfolio: r.try_get("", "portfolio")?,
        revenue: r.try_get("", "revenue")?,
        first_purchase: date(r.try_get("", "first_purchase")?)?,
        last_purchase: date(r.try_get("", "last_purchase")?)?,
    })
}

/// The tenant's current categories, by external id.
pub async fn categories(db: &Db, tenant: &TenantId) -> Result<HashMap<String, Category>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM company_category WHERE tenant_id = {}",
        p.push(tenant.as_str())
    );
    let rows = db.conn().query_all(p.statement(sql)).await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let c = category_from(&r)?;
        out.insert(c.external_id.clone(), c);
    }
    Ok(out)
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this class; `Some(None)` for the companies without one.
    pub class: Option<Option<AbcClass>>,
    /// Only this lifecycle.
    pub lifecycle: Option<Lifecycle>,
    /// Only this portfolio.
    pub portfolio: Option<String>,
}

/// A page of the tenant's categorized companies by external id, after `after`.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    filter: &Filter,
    after: &str,
    limit: u64,
) -> Result<Vec<Category>> {
    let mut p = Params::new(db.backend(), 5);
    let mut sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM company_category WHERE tenant_id = {} AND external_id > {}",
        p.push(tenant.as_str()),
        p.push(after)
    );
    match filter.class {
        Some(Some(c)) => sql += &format!(" AND abc_class = {}", p.push(c.as_str())),
        Some(None) => sql += " AND abc_class IS NULL",
        None => {}
    }
    if let Some(l) = filter.lifecycle {
        sql += &format!(" AND lifecycle = {}", p.push(l.as_str()));
    }
    if let Some(pf) = &filter.portfolio {
        sql += &format!(" AND portfolio = {}", p.push(pf.as_str()));
    }
    sql += &format!(" ORDER BY external_id LIMIT {limit}");
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .iter()
        .map(category_from)
        .collect()
}

/// Companies a write transaction covers: each transaction keeps a company's category and
/// its history entry together, and stays short enough not to hold SQLite's writer long.
const COMPANIES_PER_TXN: usize = 10_000;
/// Rows per multi-row statement (13 columns stay under SQLite's bind limit).
const ROWS_PER_STATEMENT: usize = 2_000;

/// Stores new categories with their history entries, and forgets the categories of
/// companies no longer in the CRM.
pub async fn apply(
    db: &Db,
    tenant: &TenantId,
    run_id: &str,
    now: DateTime<Utc>,
    changed: &[Category],
    history: &[CategoryChange],
    removed: &[String],
) -> Result<()> {
    let by_company: HashMap<&str, &CategoryChange> = history
        .iter()
        .map(|h| (h.external_id.as_str(), h))
        .collect();
    for chunk in changed.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        upsert_categories(&txn, tenant, run_id, now, chunk).await?;
        let changes: Vec<&CategoryChange> = chunk
            .iter()
            .filter_map(|c| by_company.get(c.external_id.as_str()).copied())
            .collect();
        insert_history(&txn, tenant, &changes).await?;
        txn.commit().await?;
    }
    for chunk in removed.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        for ids in chunk.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new(txn.get_database_backend(), ids.len() + 1);
            let t = p.push(tenant.as_str());
            let list: Vec<String> = ids.iter().map(|id| p.push(id.as_str())).collect();
            let sql = format!(
                "DELETE FROM company_category WHERE tenant_id = {t} AND external_id IN ({})",
                list.join(", ")
            );
            txn.execute(p.statement(sql)).await?;
        }
        txn.commit().await?;
    }
    Ok(())
}

async fn upsert_categories(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    run_id: &str,
    now: DateTime<Utc>,
    rows: &[Category],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 12);
        let tuples: Vec<String> = chunk
            .iter()
            .map(|c| {
                let mut v = vec![p.push(tenant.as_str())];
                v.extend(category_values(c).into_iter().map(|x| p.push(x)));
                v.push(p.push(run_id));
                v.push(p.push(now));
                format!("({})", v.join(", "))
            })
            .collect();
        let updates: Vec<String> = CATEGORY_COLUMNS
            .split(", ")
            .skip(1)
            .chain(["run_id", "updated_at"])
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO company_category (tenant_id, {CATEGORY_COLUMNS}, run_id, updated_at) VALUES {} \
             ON CONFLICT (tenant_id, external_id) DO UPDATE SET {}",
            tuples.join(", "),
            updates.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}

async fn insert_history(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    rows: &[&CategoryChange],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 9);
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
                ];
                format!("({})", v.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO category_change (tenant_id, external_id, run_id, changed_on, changed_at, \
             abc_from, abc_to, lifecycle_from, lifecycle_to) VALUES {}",
            tuples.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}

/// A company's categorization history, oldest first.
pub async fn history(db: &Db, tenant: &TenantId, external_id: &str) -> Result<Vec<CategoryChange>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT external_id, run_id, changed_on, changed_at, abc_from, abc_to, lifecycle_from, \
         lifecycle_to FROM category_change WHERE tenant_id = {} AND external_id = {} ORDER BY id",
        p.push(tenant.as_str()),
        p.push(external_id)
    );
    let class = |s: Option<String>| s.as_deref().and_then(AbcClass::parse);
    let life = |s: Option<String>| s.as_deref().and_then(Lifecycle::parse);
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            Ok(CategoryChange {
                external_id: r.try_get("", "external_id")?,
                run_id: r.try_get("", "run_id")?,
                changed_on: date(r.try_get("", "changed_on")?)?.unwrap_or_default(),
                changed_at: r.try_get("", "changed_at")?,
                abc_from: class(r.try_get("", "abc_from")?),
                abc_to: class(r.try_get("", "abc_to")?),
                lifecycle_from: life(r.try_get("", "lifecycle_from")?),
                lifecycle_to: life(r.try_get("", "lifecycle_to")?),
            })
        })
        .collect()
}

/// One company's current categories.
pub async fn category(db: &Db, tenant: &TenantId, external_id: &str) -> Result<Option<Category>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM company_category WHERE tenant_id = {} AND external_id = {}",
        p.push(tenant.as_str()),
        p.push(external_id)
    );
    db.conn()
        .query_one(p.statement(sql))
        .await?
        .as_ref()
        .map(category_from)
        .transpose()
}

/// Keeps a classification held by the shift guard: its report and every company's new
/// category. An earlier held classification of the tenant is superseded.
pub async fn hold(db: &Db, tenant: &TenantId, report: &AbcReport, rows: &[Category]) -> Result<()> {
    supersede_held(db, tenant, report.computed_at).await?;
    for chunk in rows.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        for part in chunk.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new(txn.get_database_backend(), part.len() * 11);
            let tuples: Vec<String> = part
                .iter()
                .map(|c| {
                    let mut v = vec![p.push(report.run_id.as_str()), p.push(tenant.as_str())];
                    v.extend(category_values(c).into_iter().map(|x| p.push(x)));
                    format!("({})", v.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO abc_held (run_id, tenant_id, {CATEGORY_COLUMNS}) VALUES {} \
                 ON CONFLICT (run_id, external_id) DO NOTHING",
                tuples.join(", ")
            );
            txn.execute(p.statement(sql)).await?;
        }
        txn.commit().await?;
    }
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

/// Stores a run's report.
pub async fn insert_report(db: &Db, tenant: &TenantId, r: &AbcReport) -> Result<()> {
    let summary: Vec<serde_json::Value> = r
        .summary
        .iter()
        .map(|s| {
            json!({
                "class": s.class.map(AbcClass::as_str),
                "companies": s.companies,
                "revenue": s.revenue.to_string(),
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
        p.push(r.basis.table()),
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
