//! `table_freshness`: per tenant and ERP table, its freshness limit, when a record of it
//! was last accepted, and its open STALE_TABLE alert.

use sea_orm::entity::prelude::*;

/// A tenant's table's freshness row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "table_freshness")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    /// Null: no limit.
    pub max_age_secs: Option<i64>,
    /// When the limit was set; null without one.
    pub watched_since: Option<DateTimeUtc>,
    /// Null: no record accepted since the table got its row.
    pub last_accepted_at: Option<DateTimeUtc>,
    /// The open STALE_TABLE alert of the table; null when none is open.
    pub stale_alert_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's rows.
    pub fn of(tenant: &str) -> Select<Self> {
        Self::find().filter(Column::TenantId.eq(tenant))
    }
}
