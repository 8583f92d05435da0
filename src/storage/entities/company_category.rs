//! `company_category`: each company's current categories (one row per tenant and
//! company), with the first entry of its history while its row keeps it
//! (`categorized_*`). A run writes it in bulk (`storage::bulk::write`).

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

/// A company's current categories.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "company_category")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub name: String,
    pub document: String,
    /// "A", "B", "C"; NULL without revenue.
    pub abc_class: Option<String>,
    pub lifecycle: String,
    pub portfolio: String,
    /// Ten-thousandths.
    pub revenue: i64,
    /// A civil date as `YYYY-MM-DD` text.
    pub first_purchase: Option<String>,
    /// A civil date as `YYYY-MM-DD` text.
    pub last_purchase: Option<String>,
    /// The staged company's content hash its fields were read from.
    pub company_hash: Option<i64>,
    /// The run that last wrote the row.
    pub run_id: String,
    pub updated_at: DateTimeUtc,
    /// A hash of the category columns.
    pub fingerprint: i64,
    /// The run that first categorized the company, while the row keeps that entry.
    pub categorized_run_id: Option<String>,
    /// A civil date as `YYYY-MM-DD` text.
    pub categorized_on: Option<String>,
    pub categorized_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's rows.
    pub fn of_tenant(tenant: &str) -> Select<Self> {
        Self::find().filter(Column::TenantId.eq(tenant))
    }

    /// The tenant's rows after `after`, by external id.
    pub fn of_tenant_after(tenant: &str, after: &str) -> Select<Self> {
        Self::of_tenant(tenant)
            .filter(Column::ExternalId.gt(after))
            .order_by_asc(Column::ExternalId)
    }

    /// One company's row.
    pub fn of_company(tenant: &str, external_id: &str) -> Select<Self> {
        Self::of_tenant(tenant).filter(Column::ExternalId.eq(external_id))
    }
}
