//! `purchase_span`: each company's first and last purchase per revenue table. Written
//! only in bulk (`storage::bulk::spans`); this entity serves removing and exporting a
//! tenant's rows (`storage::purge`).

use sea_orm::entity::prelude::*;

/// One company's purchase span in one revenue table.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "purchase_span")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_ref: String,
    /// Days since 1970-01-01 (`storage::days`).
    pub first_on: i32,
    /// Days since 1970-01-01.
    pub last_on: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
