//! `staged_record`: the intermediate database, one row per (tenant, table, external_id),
//! and the queries on it every caller shares. The multi-row writes and reads of a staged
//! batch and of a delivery page are in `bulk::staging` and `bulk::delivery`.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{Condition, Select};

/// A staged record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staged_record")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    /// Normalized fields, a JSON object.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    pub content_hash: i64,
    pub updated_at: Option<DateTimeUtc>,
    pub deleted: bool,
    pub changed_at: DateTimeUtc,
    pub request_id: String,
    pub size_bytes: i64,
    /// The content hash of the version delivered to the CRM (None: never delivered).
    pub synced_hash: Option<i64>,
    /// Revenue columns (invoices, orders): the company, the day of issue (days since
    /// 1970-01-01, see `storage::days`) and the total in ten-thousandths.
    pub company_ref: Option<String>,
    pub issued_on: Option<i32>,
    pub amount: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The staged records of one tenant's table.
    pub fn of_table(tenant: &str, table: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::TableName.eq(table))
    }

    /// One staged record.
    pub fn of_record(tenant: &str, table: &str, external_id: &str) -> Select<Self> {
        Self::of_table(tenant, table).filter(Column::ExternalId.eq(external_id))
    }

    /// The records of one tenant's table that wait for delivery.
    pub fn pending_of_table(tenant: &str, table: &str) -> Select<Self> {
        Self::of_table(tenant, table).filter(Self::pending())
    }

    /// Versions waiting for delivery: never delivered, or the delivered version is not
    /// the staged one (`synced_hash` behind `content_hash`).
    pub fn pending() -> Condition {
        Condition::any()
            .add(Column::SyncedHash.is_null())
            .add(Expr::col(Column::SyncedHash).ne(Expr::col(Column::ContentHash)))
    }
}
