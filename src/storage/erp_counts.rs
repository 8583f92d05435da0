//! Queries of `erp_count`: how many rows the ERP says each table has (ReportCounts).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{Db, Params};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Stores the ERP's counts, replacing earlier reports of the same tables.
pub async fn report(
    db: &Db,
    tenant: &TenantId,
    counts: &[(String, u64)],
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    for (table, count) in counts {
        let mut p = Params::new(txn.get_database_backend(), 4);
        let sql = format!(
            "INSERT INTO erp_count (tenant_id, table_name, count, reported_at) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (tenant_id, table_name) DO UPDATE SET count = excluded.count, \
             reported_at = excluded.reported_at",
            p.push(tenant.as_str()),
            p.push(table.as_str()),
            p.push(i64::try_from(*count).unwrap_or(i64::MAX)),
            p.push(now)
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// The tenant's reported counts by table.
pub async fn all(db: &Db, tenant: &TenantId) -> Result<HashMap<String, u64>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT table_name, count FROM erp_count WHERE tenant_id = {}",
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            let n: i64 = r.try_get("", "count")?;
            Ok((r.try_get("", "table_name")?, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}
