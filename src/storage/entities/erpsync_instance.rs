//! `erpsync_instance`: one row, this database's random id, made by its first migration,
//! and the key page tokens are signed with (filled by the first server that needs it).

use sea_orm::entity::prelude::*;

/// The row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erpsync_instance")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// 64 hex digits; NULL until a server first needs it.
    pub page_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
