//! A tenant's current categories (`company_category`) and their history
//! (`category_change`): what a run compares with, a run's apply (its bulk writes in
//! [`crate::storage::bulk::write`]), and the reads of GetCompanyCategories and
//! GetCompanyHistory (through the `company_category` and `category_change` entities).

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Value};

use super::rows::{date, stored_classes, Stored};
use crate::domain::abc::{AbcClass, Category, CategoryChange, Lifecycle, Stamp};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::bulk::abc as bulk;
use crate::storage::bulk::write;
use crate::storage::entities::category_change;
use crate::storage::entities::company_category::{self, Column};
use crate::storage::Db;

/// What runs need of the tenant's current categories, by external id (a bulk read).
pub async fn stored(db: &Db, tenant: &TenantId) -> Result<HashMap<String, Stored>> {
    bulk::stored_categories(db, tenant)
        .await?
        .into_iter()
        .map(|(id, class, lifecycle, fingerprint, company_hash)| {
            let (abc_class, lifecycle) = stored_classes(&id, class, &lifecycle)?;
            let stored = Stored {
                abc_class,
                lifecycle,
                fingerprint,
                company_hash,
            };
            Ok((id, stored))
        })
        .collect()
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
    let mut select = company_category::Entity::of_tenant_after(tenant.as_str(), after);
    match filter.class {
        Some(Some(c)) => select = select.filter(Column::AbcClass.eq(c.as_str())),
        Some(None) => select = select.filter(Column::AbcClass.is_null()),
        None => {}
    }
    if let Some(l) = filter.lifecycle {
        select = select.filter(Column::Lifecycle.eq(l.as_str()));
    }
    if let Some(pf) = &filter.portfolio {
        select = select.filter(Column::Portfolio.eq(pf.as_str()));
    }
    select
        .limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(Category::try_from)
        .collect()
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
        company_category::Entity::update_many()
            .col_expr(Column::CategorizedRunId, Expr::value(Value::String(None)))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::ExternalId.is_in(first.iter().map(|e| e.external_id.as_str())))
            .exec(&*txn)
            .await?;
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
    let row = company_category::Entity::of_company(tenant.as_str(), external_id)
        .filter(Column::CategorizedRunId.is_not_null())
        .one(conn)
        .await?;
    let Some(company_category::Model {
        abc_class,
        lifecycle,
        categorized_run_id: Some(run_id),
        categorized_on,
        categorized_at,
        ..
    }) = row
    else {
        return Ok(None);
    };
    let at = categorized_at.ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "the first categorization of {external_id:?} has no instant"
        ))
    })?;
    let (class, lifecycle) = stored_classes(external_id, abc_class, &lifecycle)?;
    let mut classes = (class, Some(lifecycle));
    // The classes it was first given are those its first later change started from.
    let later = category_change::Entity::of_company(tenant.as_str(), external_id)
        .filter(category_change::Column::ChangedAt.gt(at))
        .one(conn)
        .await?;
    if let Some(r) = later {
        classes = (
            r.abc_from.as_deref().and_then(AbcClass::parse),
            r.lifecycle_from.as_deref().and_then(Lifecycle::parse),
        );
    }
    Ok(Some(CategoryChange {
        external_id: external_id.to_owned(),
        run_id,
        changed_on: date(categorized_on)?.unwrap_or_default(),
        changed_at: at,
        abc_from: None,
        abc_to: classes.0,
        lifecycle_from: None,
        lifecycle_to: classes.1,
        // A first categorization keeps no revenue or rank of its own.
        revenue: None,
        standing: None,
    }))
}

/// A company's categorization history, oldest first: its stored changes, and its first
/// categorization where its category row keeps it.
pub async fn history(db: &Db, tenant: &TenantId, external_id: &str) -> Result<Vec<CategoryChange>> {
    let class = |s: Option<String>| s.as_deref().and_then(AbcClass::parse);
    let life = |s: Option<String>| s.as_deref().and_then(Lifecycle::parse);
    let mut out = category_change::Entity::of_company(tenant.as_str(), external_id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(|r| {
            Ok(CategoryChange {
                changed_on: date(Some(r.changed_on))?.unwrap_or_default(),
                changed_at: r.changed_at,
                abc_from: class(r.abc_from),
                abc_to: class(r.abc_to),
                lifecycle_from: life(r.lifecycle_from),
                lifecycle_to: life(r.lifecycle_to),
                revenue: r.revenue,
                standing: category_change::standing_of(r.revenue_rank, r.share_before),
                external_id: r.external_id,
                run_id: r.run_id,
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
    company_category::Entity::of_company(tenant.as_str(), external_id)
        .one(db.conn())
        .await?
        .map(Category::try_from)
        .transpose()
}
