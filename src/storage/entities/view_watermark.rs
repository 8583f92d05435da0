//! `view_watermark`: per tenant and table read incrementally from a View, where the last
//! read stopped.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::Select;

/// A table's watermark.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "view_watermark")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    /// The view, key and watermark column the read used: a watermark applies to the
    /// same read only.
    #[sea_orm(column_type = "Text")]
    pub fingerprint: String,
    #[sea_orm(column_type = "Text")]
    pub watermark: String,
    /// The key of the last row read, tagged with its type (`t:`, `i:`, `r:`).
    #[sea_orm(column_type = "Text")]
    pub last_key: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The watermarks of one tenant.
    pub fn of_tenant(tenant: &str) -> Select<Self> {
        Self::find().filter(Column::TenantId.eq(tenant))
    }

    /// A later read of a table replaces the earlier one's watermark.
    pub fn replace_earlier() -> OnConflict {
        OnConflict::columns([Column::TenantId, Column::TableName])
            .update_columns([
                Column::Fingerprint,
                Column::Watermark,
                Column::LastKey,
                Column::UpdatedAt,
            ])
            .to_owned()
    }
}
