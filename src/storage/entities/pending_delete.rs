//! `pending_delete`: deletions held by the delete guard, one row per record, and the
//! queries on it every caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::Select;

/// A held deletion row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_delete")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub name: String,
    pub document: String,
    pub detected_run_id: String,
    pub detected_at: DateTimeUtc,
    pub state: String,
    pub resolved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The states of a deletion still waiting: held, or approved and not yet applied.
pub const WAITING: [&str; 2] = ["HELD", "APPROVED"];

impl Entity {
    /// The deletions of one tenant's table.
    pub fn of_table(tenant: &str, table: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::TableName.eq(table))
    }
}
