//! How much of the intermediate database a tenant takes (the overview's "Tamanho do
//! banco de dados da integração").
//!
//! A tenant's share is the sum, over every row it owns, of the stored text form of each
//! column: the same definition on SQLite and PostgreSQL. Small tables are measured by the
//! database itself through the tenant indexes; the big ones (staging, request log) keep
//! running counters in `tenant_usage`, updated in the same transaction as the rows, so the
//! overview never scans millions of rows.

use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction, EntityTrait, Statement};

use super::entities::tenant_usage;
use super::Db;
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Tenant-owned tables: (table, the column naming the tenant, the columns measured).
const OWNED: &[(&str, &str, &[&str])] = &[
    (
        "tenant",
        "id",
        &[
            "id",
            "name",
            "timezone",
            "erp_name",
            "erp_version",
            "integration_type",
            "deployment_status",
            "business_rule",
            "active",
            "scheduled",
            "schedule_daily",
            "schedule_cron",
            "max_without_success_secs",
            "created_at",
            "updated_at",
        ],
    ),
    ("api_token_tenant", "tenant_id", &["token_id", "tenant_id"]),
    (
        "sync_run",
        "tenant_id",
        &[
            "id",
            "tenant_id",
            "status",
            "trigger",
            "started_at",
            "finished_at",
            "duration_ms",
            "error",
        ],
    ),
    (
        "alert",
        "tenant_id",
        &[
            "id",
            "tenant_id",
            "kind",
            "message",
            "run_id",
            "opened_at",
            "resolved_at",
        ],
    ),
];

/// The bytes of every row the tenant owns.
///
/// Hand-written: one sum of the text lengths of every column over several tables, built
/// from `OWNED`; as sea-query expressions it would read far worse than the SQL it makes.
pub async fn tenant_db_size(db: &Db, tenant: &TenantId) -> Result<u64> {
    let parts: Vec<String> = OWNED
        .iter()
        .map(|(table, key, columns)| {
            let row = columns
                .iter()
                .map(|c| format!("COALESCE(LENGTH(CAST(\"{c}\" AS TEXT)), 0)"))
                .collect::<Vec<_>>()
                .join(" + ");
            format!("(SELECT COALESCE(SUM({row}), 0) FROM \"{table}\" WHERE \"{key}\" = $1)")
        })
        .collect();
    let counted = "(SELECT COALESCE(SUM(staged_bytes + request_log_bytes), 0) FROM tenant_usage \
                   WHERE tenant_id = $1)";
    let sql = format!(
        "SELECT CAST({} + {counted} AS BIGINT) AS bytes",
        parts.join(" + ")
    );
    let stmt = Statement::from_sql_and_values(db.backend(), sql, [tenant.as_str().into()]);
    let row = db.conn().query_one(stmt).await?;
    let bytes: i64 = match row {
        Some(row) => row.try_get("", "bytes")?,
        None => 0,
    };
    Ok(u64::try_from(bytes).unwrap_or(0))
}

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
