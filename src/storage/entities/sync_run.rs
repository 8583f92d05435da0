//! `sync_run`: one row per sync run.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

use crate::domain::run::RunStatus;

/// A run row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub status: String,
    pub trigger: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub duration_ms: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// While RUNNING: the stages finished and the one under way (JSON); NULL once ended.
    #[sea_orm(column_type = "Text", nullable)]
    pub progress: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's successful (or partial) runs, newest first: the (tenant_id,
    /// started_at) index walked from its newest end.
    pub fn successes_of(tenant: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::Status.is_in(RunStatus::SUCCESSES.map(RunStatus::as_str)))
            .order_by_desc(Column::StartedAt)
    }
}
