//! Queries of `erp_count`: how many rows the ERP says each table has (ReportCounts),
//! through the entity (`entities::erp_count`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait, QuerySelect};

use super::entities::erp_count::{self, Column, Entity};
use super::Db;
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
    // One statement a table: a report naming a table twice keeps its last count.
    for (table, count) in counts {
        Entity::insert(erp_count::ActiveModel {
            tenant_id: Set(tenant.as_str().to_owned()),
            table_name: Set(table.clone()),
            count: Set(i64::try_from(*count).unwrap_or(i64::MAX)),
            reported_at: Set(now),
        })
        .on_conflict(Entity::replace_earlier())
        .exec_without_returning(&*txn)
        .await?;
    }
    txn.commit().await
}

/// The tenant's reported counts by table.
pub async fn all(db: &Db, tenant: &TenantId) -> Result<HashMap<String, u64>> {
    let rows: Vec<(String, i64)> = Entity::of_tenant(tenant.as_str())
        .select_only()
        .columns([Column::TableName, Column::Count])
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(table, n)| (table, u64::try_from(n).unwrap_or(0)))
        .collect())
}
