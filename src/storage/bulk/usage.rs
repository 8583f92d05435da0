//! The bytes of every row a tenant owns, measured by the database: one sum of the text
//! lengths of every column over the small tenant-owned tables, plus the counters the big
//! ones keep (`tenant_usage`). See [`crate::storage::usage`].

use sea_orm::{ConnectionTrait, Statement};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::Db;

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
/// Only the table and column names above go into its text; the tenant is a parameter.
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
