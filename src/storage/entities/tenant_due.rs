//! `tenant_due`: per tenant, when the scheduler must next look at it (indexed) and when
//! its last run is retried.

use sea_orm::entity::prelude::*;

/// A tenant's due row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_due")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// Null: nothing is due until something changes.
    pub due_at: Option<DateTimeUtc>,
    pub retry_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
