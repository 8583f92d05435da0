//! The embedded CRM (`crm_company`, `crm_contact`): where the default sink delivers, so a
//! standalone install is complete. Upserts and deletes are idempotent by
//! (tenant, external_id).
//!
//! The multi-row upserts and deletes of a sync are in `bulk::crm`; pages, counts and
//! categories go through the `crm_company` and `crm_contact` entities.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, JoinType};
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};

use super::bulk;
use super::entities::{self, company_category, crm_company, crm_contact};
use super::Db;
use crate::domain::abc::Money;
use crate::domain::crm::{CrmCompany, CrmContact};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Inserts or replaces companies.
pub async fn upsert_companies(
    db: &Db,
    tenant: &TenantId,
    rows: &[CrmCompany],
    now: DateTime<Utc>,
) -> Result<()> {
    bulk::crm::upsert_companies(db, tenant, rows, now).await
}

/// Inserts or replaces contacts.
pub async fn upsert_contacts(
    db: &Db,
    tenant: &TenantId,
    rows: &[CrmContact],
    now: DateTime<Utc>,
) -> Result<()> {
    bulk::crm::upsert_contacts(db, tenant, rows, now).await
}

/// Deletes rows of `table` by external id; returns how many were deleted.
pub async fn delete(db: &Db, table: CrmTable, tenant: &TenantId, ids: &[String]) -> Result<u64> {
    bulk::crm::delete(db, table, tenant, ids).await
}

pub use super::bulk::crm::CrmTable;

/// The fields (JSON text) the CRM holds of one record, if it has it.
pub(crate) async fn fields_of(
    conn: &impl ConnectionTrait,
    table: CrmTable,
    tenant: &TenantId,
    external_id: &str,
) -> Result<Option<String>> {
    Ok(match table {
        CrmTable::Company => {
            crm_company::Entity::of_record(tenant.as_str(), external_id)
                .select_only()
                .column(crm_company::Column::Fields)
                .into_tuple()
                .one(conn)
                .await?
        }
        CrmTable::Contact => {
            crm_contact::Entity::of_record(tenant.as_str(), external_id)
                .select_only()
                .column(crm_contact::Column::Fields)
                .into_tuple()
                .one(conn)
                .await?
        }
    })
}

/// A page of the tenant's CRM companies by external id, after `after`.
pub async fn companies(
    db: &Db,
    tenant: &TenantId,
    after: &str,
    limit: u64,
) -> Result<Vec<CrmCompany>> {
    let rows: Vec<(String, String)> = crm_company::Entity::of_tenant(tenant.as_str())
        .filter(crm_company::Column::ExternalId.gt(after))
        .select_only()
        .columns([crm_company::Column::ExternalId, crm_company::Column::Fields])
        .order_by_asc(crm_company::Column::ExternalId)
        .limit(limit)
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, fields)| {
            let fields = match serde_json::from_str(&fields) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => Default::default(),
            };
            CrmCompany::from_staged(&id, fields)
        })
        .collect())
}

/// How many companies and contacts the tenant's CRM holds.
pub async fn counts(db: &Db, tenant: &TenantId) -> Result<(u64, u64)> {
    let companies = entities::count(crm_company::Entity::of_tenant(tenant.as_str()), db.conn());
    let contacts = entities::count(crm_contact::Entity::of_tenant(tenant.as_str()), db.conn());
    Ok((companies.await?, contacts.await?))
}

/// The categories an embedded CRM company carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyCategories {
    /// External id.
    pub external_id: String,
    /// "A", "B", "C"; None without revenue (or before the first analysis).
    pub abc_class: Option<String>,
    /// PROSPECT, NEW, …; None before the first analysis.
    pub lifecycle: Option<String>,
    /// The seller's external id or "unassigned"; None before the first analysis.
    pub portfolio: Option<String>,
    /// Revenue in the window, exact decimal; None before the first analysis.
    pub revenue: Option<String>,
}

/// An external id and `company_category`'s abc_class, lifecycle, portfolio and revenue.
type CategoryRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// Every embedded CRM company of the tenant with its categories, by external id. The
/// embedded CRM keeps no copy of the categories: they are the applied ones of
/// `company_category`, in the same database.
pub async fn company_categories(db: &Db, tenant: &TenantId) -> Result<Vec<CompanyCategories>> {
    use company_category::Column as Category;
    let category = |col: Category| Expr::col((company_category::Entity, col));
    let mut q = crm_company::Entity::of_tenant(tenant.as_str())
        .select_only()
        .column(crm_company::Column::ExternalId)
        .column_as(category(Category::AbcClass), "abc_class")
        .column_as(category(Category::Lifecycle), "lifecycle")
        .column_as(category(Category::Portfolio), "portfolio")
        .column_as(category(Category::Revenue), "revenue")
        .order_by_asc(crm_company::Column::ExternalId);
    QueryTrait::query(&mut q).join(
        JoinType::LeftJoin,
        company_category::Entity,
        category(Category::TenantId)
            .equals((crm_company::Entity, crm_company::Column::TenantId))
            .and(
                category(Category::ExternalId)
                    .equals((crm_company::Entity, crm_company::Column::ExternalId)),
            ),
    );
    let rows: Vec<CategoryRow> = q.into_tuple().all(db.conn()).await?;
    Ok(rows
        .into_iter()
        .map(
            |(external_id, abc_class, lifecycle, portfolio, revenue)| CompanyCategories {
                external_id,
                abc_class,
                lifecycle,
                portfolio,
                revenue: revenue.map(|r| Money::from(r).text()),
            },
        )
        .collect())
}
