//! A tenant's current categories (`company_category`) and their history
//! (`category_change`): what a run compares with, a run's apply (its bulk writes in
//! [`crate::storage::bulk::write`]), and the reads of GetCompanyCategories and
//! GetCompanyHistory.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ConnectionTrait;

use super::rows::{category_from, date, stored_classes, Stored, CATEGORY_COLUMNS};
use crate::domain::abc::{AbcClass, Category, CategoryChange, Lifecycle};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::read::{col, fetch_all, Ph};
use crate::storage::bulk::write;
use crate::storage::{Db, Params};

/// What runs need of the tenant's current categories, by external id.
pub async fn stored(db: &Db, tenant: &TenantId) -> Result<HashMap<String, Stored>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT external_id, abc_class, lifecycle, fingerprint, company_hash FROM company_category \
             WHERE tenant_id = {}",
            ph(1)
        )
    };
    let rows = fetch_all!(db, build, [tenant.as_str()], |r| {
        let id: String = col(r, 0)?;
        let class: Option<String> = col(r, 1)?;
        let lifecycle: String = col(r, 2)?;
        let (abc_class, lifecycle) = stored_classes(&id, class, &lifecycle)?;
        let stored = Stored {
            abc_class,
            lifecycle,
            fingerprint: col(r, 3)?,
            company_hash: col(r, 4)?,
        };
        Ok((id, stored))
    })?;
    Ok(rows.into_iter().collect())
}

pub use crate::domain::abc::CompanyFilter as Filter;

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

/// Which run applies categories, and when (the history's run, instant and civil date).
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// The run whose classification it is.
    pub run_id: &'a str,
    /// When it is applied.
    pub at: DateTime<Utc>,
    /// That instant's civil date in the tenant's zone.
    pub on: NaiveDate,
}

/// Stores new categories with their history entries, and forgets the categories of
/// companies no longer in the CRM. `new` are the companies without stored categories
/// (categorized for the first time: that first entry of their history is kept on their
/// row, `categorized_*`), `changed` the ones whose stored categories change, with
/// `history` their changes.
pub async fn apply(
    db: &Db,
    tenant: &TenantId,
    stamp: &Stamp<'_>,
    new: &[Category],
    changed: &[Category],
    history: &[CategoryChange],
    removed: &[String],
) -> Result<()> {
    let by_company: HashMap<&str, &CategoryChange> = history
        .iter()
        .map(|h| (h.external_id.as_str(), h))
        .collect();
    // The first entries of forgotten companies' histories become rows of their own.
    keep_first_entries(db, tenant, removed).await?;
    write::categories(db, tenant, stamp, new, changed, &by_company, removed).await
}

/// Writes, as `category_change` rows, the first history entry of each of `ids` that keeps
/// it on its category row (before the row is deleted).
async fn keep_first_entries(db: &Db, tenant: &TenantId, ids: &[String]) -> Result<()> {
    for chunk in ids.chunks(write::ROWS_PER_STATEMENT) {
        let txn = db.begin_write().await?;
        let mut first = Vec::new();
        for id in chunk {
            if let Some(entry) = first_entry(&*txn, tenant, id).await? {
                first.push(entry);
            }
        }
        if first.is_empty() {
            continue;
        }
        write::insert_history(&txn, tenant, &first.iter().collect::<Vec<_>>()).await?;
        // Kept once: the row no longer holds it (a retried removal writes it again never).
        let mut p = Params::new(txn.get_database_backend(), first.len() + 1);
        let t = p.push(tenant.as_str());
        let list: Vec<String> = first
            .iter()
            .map(|e| p.push(e.external_id.as_str()))
            .collect();
        let sql = format!(
            "UPDATE company_category SET categorized_run_id = NULL WHERE tenant_id = {t} \
             AND external_id IN ({})",
            list.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
        txn.commit().await?;
    }
    Ok(())
}

/// The first entry of a company's history when its category row keeps it: categorized
/// from nothing into the classes before its first change (or its current ones).
async fn first_entry<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    external_id: &str,
) -> Result<Option<CategoryChange>> {
    let mut p = Params::new(conn.get_database_backend(), 2);
    let sql = format!(
        "SELECT abc_class, lifecycle, categorized_run_id, categorized_on, categorized_at \
         FROM company_category WHERE tenant_id = {} AND external_id = {} \
         AND categorized_run_id IS NOT NULL",
        p.push(tenant.as_str()),
        p.push(external_id)
    );
    let Some(row) = conn.query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let at: DateTime<Utc> = row.try_get("", "categorized_at")?;
    let lifecycle: String = row.try_get("", "lifecycle")?;
    let (class, lifecycle) =
        stored_classes(external_id, row.try_get("", "abc_class")?, &lifecycle)?;
    let mut classes = (class, Some(lifecycle));
    // The classes it was first given are those its first later change started from.
    let mut p = Params::new(conn.get_database_backend(), 3);
    let sql = format!(
        "SELECT abc_from, lifecycle_from FROM category_change WHERE tenant_id = {} \
         AND external_id = {} AND changed_at > {} ORDER BY id LIMIT 1",
        p.push(tenant.as_str()),
        p.push(external_id),
        p.push(at)
    );
    if let Some(r) = conn.query_one(p.statement(sql)).await? {
        classes = (
            r.try_get::<Option<String>>("", "abc_from")?
                .as_deref()
                .and_then(AbcClass::parse),
            r.try_get::<Option<String>>("", "lifecycle_from")?
                .as_deref()
                .and_then(Lifecycle::parse),
        );
    }
    Ok(Some(CategoryChange {
        external_id: external_id.to_owned(),
        run_id: row.try_get("", "categorized_run_id")?,
        changed_on: date(row.try_get("", "categorized_on")?)?.unwrap_or_default(),
        changed_at: at,
        abc_from: None,
        abc_to: classes.0,
        lifecycle_from: None,
        lifecycle_to: classes.1,
    }))
}

/// A company's categorization history, oldest first: its stored changes, and its first
/// categorization where its category row keeps it.
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
    let mut out = db
        .conn()
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
        .collect::<Result<Vec<_>>>()?;
    if let Some(first) = first_entry(db.conn(), tenant, external_id).await? {
        // Before the changes made after it (earlier ones belong to an earlier life of the
        // company, before its categories were forgotten).
        let at = out
            .iter()
            .position(|c| c.changed_at > first.changed_at)
            .unwrap_or(out.len());
        out.insert(at, first);
    }
    Ok(out)
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
