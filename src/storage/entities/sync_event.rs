//! `sync_event`: each tenant's log, ordered by a cursor the database assigns, and the
//! queries on it every caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

/// An event row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_event")]
pub struct Model {
    /// Strictly increasing across the database.
    #[sea_orm(primary_key)]
    pub cursor: i64,
    pub tenant_id: String,
    pub run_id: Option<String>,
    pub at: DateTimeUtc,
    pub level: String,
    pub stage: String,
    pub table_name: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// A JSON object.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's events after `cursor`, oldest first.
    pub fn of_tenant_after(tenant: &str, cursor: i64) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::Cursor.gt(cursor))
            .order_by_asc(Column::Cursor)
    }
}
