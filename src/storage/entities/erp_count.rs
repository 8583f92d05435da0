//! `erp_count`: how many rows the ERP says each of a tenant's tables has, and the
//! queries on it every caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::Select;

/// A reported count.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erp_count")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    pub count: i64,
    pub reported_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The counts of one tenant.
    pub fn of_tenant(tenant: &str) -> Select<Self> {
        Self::find().filter(Column::TenantId.eq(tenant))
    }

    /// A later report of a table replaces the earlier one.
    pub fn replace_earlier() -> OnConflict {
        OnConflict::columns([Column::TenantId, Column::TableName])
            .update_columns([Column::Count, Column::ReportedAt])
            .to_owned()
    }
}
