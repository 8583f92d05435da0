//! `run_stage`: the stages a finished run went through, in order.

use sea_orm::entity::prelude::*;
use sea_orm::QueryOrder;

/// One stage of one run.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_stage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub stage: String,
    pub duration_ms: i64,
    #[sea_orm(column_type = "Text")]
    pub outcome: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The stages of run `run_id`, in run order.
    pub fn of_run(run_id: &str) -> Select<Entity> {
        Self::find()
            .filter(Column::RunId.eq(run_id))
            .order_by_asc(Column::Position)
    }
}
