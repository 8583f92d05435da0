//! `category_change`: each company's categorization history, in the order the
//! database numbers it (a run writes it in bulk, `storage::bulk::write`).

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

/// A change of a company's categories.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "category_change")]
pub struct Model {
    /// Increasing in the order the changes were written.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    pub external_id: String,
    pub run_id: String,
    /// A civil date as `YYYY-MM-DD` text.
    pub changed_on: String,
    pub changed_at: DateTimeUtc,
    pub abc_from: Option<String>,
    pub abc_to: Option<String>,
    pub lifecycle_from: Option<String>,
    pub lifecycle_to: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// One company's changes, oldest first.
    pub fn of_company(tenant: &str, external_id: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::ExternalId.eq(external_id))
            .order_by_asc(Column::Id)
    }
}
