//! `view_config`: a tenant's View configuration, as JSON, at most one row per tenant.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

/// A stored configuration.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "view_config")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The `ViewConfig` as JSON, its URL sealed when a key is configured.
    #[sea_orm(column_type = "Text")]
    pub config: String,
    /// Who named the URL: `tenant` (checked against its grants) or `operator`.
    pub named_by: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// A new configuration replaces the tenant's earlier one.
    pub fn replace_earlier() -> OnConflict {
        OnConflict::column(Column::TenantId)
            .update_columns([Column::Config, Column::NamedBy, Column::UpdatedAt])
            .to_owned()
    }
}
