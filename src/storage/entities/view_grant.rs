//! `view_grant`: the View sources the operator granted a tenant, one row per source.

use sea_orm::entity::prelude::*;

/// One granted source.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "view_grant")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The grant as shown (`postgres://host:5432/erp`, `sqlite:///path`): its identity.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub source: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub kind: String,
    /// Server grants: the host, lower-case; empty for a file.
    #[sea_orm(column_type = "Text")]
    pub host: String,
    /// Server grants: the port; 0 for a file.
    pub port: i32,
    /// Server grants: the database; empty for a file.
    #[sea_orm(column_type = "Text")]
    pub database_name: String,
    /// File grants: the canonical path; empty for a server.
    #[sea_orm(column_type = "Text")]
    pub path: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
