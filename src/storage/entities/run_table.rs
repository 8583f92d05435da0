//! `run_table`: a run's counts per ERP table.

use sea_orm::entity::prelude::*;
use sea_orm::QueryOrder;

/// One table's counts in one run.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_table")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    pub received: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub held: i64,
    pub rejected: i64,
    pub erp_count: Option<i64>,
    pub staged_count: i64,
    pub crm_count: Option<i64>,
    pub crm_counted_at: Option<DateTimeUtc>,
    /// `HOST_COUNT`, `HOST_TOTAL`, `DELIVERED` or `EMBEDDED` (see
    /// `domain::run::CrmCountSource`).
    pub crm_count_source: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The rows of run `run_id`, by table name.
    pub fn of_run(run_id: &str) -> Select<Entity> {
        Self::find()
            .filter(Column::RunId.eq(run_id))
            .order_by_asc(Column::TableName)
    }
}
