//! `request_log`: every request and its answer, by tenant and time of arrival; the
//! queries its readers share.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, QuerySelect, Select};

/// A logged request.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "request_log")]
pub struct Model {
    /// A random UUID, unique by itself. PostgreSQL's table is partitioned by day of
    /// `received_at` (migration 000021) and keyed by (id, received_at), the partition key
    /// being part of every unique key there; its index still leads with `id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub received_at: DateTimeUtc,
    pub endpoint: String,
    pub table_name: Option<String>,
    pub transport: String,
    pub status: String,
    pub http_status: i32,
    pub duration_ms: i64,
    pub accepted: i32,
    pub rejected: i32,
    /// Unknown fields the answer warned about.
    pub warnings: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// LZ4-compressed (size-prepended) when `request_body_lz4`, else UTF-8.
    #[sea_orm(column_type = "Blob")]
    pub request_body: Vec<u8>,
    pub request_body_lz4: bool,
    pub request_truncated: bool,
    #[sea_orm(column_type = "Text")]
    pub response_body: String,
    pub size_bytes: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's entries received in `[from, to)`, oldest first.
    pub fn of_tenant_between(tenant: &str, from: DateTimeUtc, to: DateTimeUtc) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::ReceivedAt.gte(from))
            .filter(Column::ReceivedAt.lt(to))
            .order_by_asc(Column::ReceivedAt)
            .order_by_asc(Column::Id)
    }

    /// The oldest `limit` entries of any tenant received before `cutoff`.
    pub fn oldest_before(cutoff: DateTimeUtc, limit: u64) -> Select<Self> {
        Self::find()
            .filter(Column::ReceivedAt.lt(cutoff))
            .order_by_asc(Column::ReceivedAt)
            .limit(limit)
    }
}
