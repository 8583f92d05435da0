//! How much of the intermediate database a tenant takes (the overview's "Tamanho do
//! banco de dados da integração").
//!
//! A tenant's share is the sum, over every row it owns, of the stored text form of each
//! column: the same definition on SQLite and PostgreSQL, measured by the database itself
//! through the tenant indexes (never a full scan).

use sea_orm::{ConnectionTrait, Statement};

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
    let sql = format!("SELECT CAST({} AS BIGINT) AS bytes", parts.join(" + "));
    let stmt = Statement::from_sql_and_values(db.backend(), sql, [tenant.as_str().into()]);
    let row = db.conn().query_one(stmt).await?;
    let bytes: i64 = match row {
        Some(row) => row.try_get("", "bytes")?,
        None => 0,
    };
    Ok(u64::try_from(bytes).unwrap_or(0))
}
