//! How much of the intermediate database a tenant takes (the overview's "Tamanho do
//! banco de dados da integração").
//!
//! A tenant's share is the sum, over every row it owns, of the stored text form of each
//! column: the same definition on SQLite and PostgreSQL. Small tables are measured by the
//! database itself through the tenant indexes; the big ones (staging, request log) keep
//! running counters in `tenant_usage`, updated in the same transaction as the rows, so the
//! overview never scans millions of rows.

use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};

use super::entities::tenant_usage;
use crate::domain::tenant::TenantId;
use crate::error::Result;

pub use super::bulk::usage::tenant_db_size;

/// A change of a tenant's counted usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    /// Staged rows added (negative: removed).
    pub staged_rows: i64,
    /// Staged bytes added.
    pub staged_bytes: i64,
    /// Request-log rows added.
    pub request_log_rows: i64,
    /// Request-log bytes added.
    pub request_log_bytes: i64,
}

/// Adds `d` to the tenant's counters, inside the caller's transaction.
pub async fn add(conn: &DatabaseTransaction, tenant: &TenantId, d: Delta) -> Result<()> {
    if d == Delta::default() {
        return Ok(());
    }
    tenant_usage::Entity::insert(tenant_usage::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        staged_rows: Set(d.staged_rows),
        staged_bytes: Set(d.staged_bytes),
        request_log_rows: Set(d.request_log_rows),
        request_log_bytes: Set(d.request_log_bytes),
    })
    .on_conflict(tenant_usage::Entity::add_to_existing())
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
