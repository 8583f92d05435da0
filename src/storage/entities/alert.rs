//! `alert`: alerts raised on a tenant, open until resolved, and the queries on it every
//! caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::Condition;

/// An alert row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub run_id: Option<String>,
    pub opened_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's open alerts (not resolved yet).
    pub fn open_of(tenant: &str) -> Condition {
        Condition::all()
            .add(Column::TenantId.eq(tenant))
            .add(Column::ResolvedAt.is_null())
    }

    /// The tenant's open alert of `kind` (at most one: an alert is raised once).
    pub fn open_of_kind(tenant: &str, kind: &str) -> Condition {
        Self::open_of(tenant).add(Column::Kind.eq(kind))
    }
}
