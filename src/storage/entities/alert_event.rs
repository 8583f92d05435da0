//! `alert_event`: the alert feed, append-only, ordered by a cursor the database assigns,
//! and the queries on it every caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

/// An event row: an alert opened or resolved.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_event")]
pub struct Model {
    /// Strictly increasing across the database, in commit order.
    #[sea_orm(primary_key)]
    pub cursor: i64,
    pub tenant_id: String,
    pub alert_id: String,
    /// OPENED or RESOLVED.
    pub event: String,
    /// The alert's kind (STALE, …).
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub run_id: Option<String>,
    pub opened_at: DateTimeUtc,
    /// When the alert opened or resolved.
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The events after `cursor` (of `tenants` only, when given), oldest first.
    pub fn after(cursor: i64, tenants: Option<&[String]>) -> Select<Self> {
        let q = Self::find()
            .filter(Column::Cursor.gt(cursor))
            .order_by_asc(Column::Cursor);
        match tenants {
            Some(t) => q.filter(Column::TenantId.is_in(t.iter().map(String::as_str))),
            None => q,
        }
    }
}
