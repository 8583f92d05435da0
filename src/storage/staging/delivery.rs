//! Delivery of staged records to the CRM: which versions wait (`synced_hash` behind
//! `content_hash`), pages of them for a run, marking versions delivered, and records
//! restored to the version the CRM has when their deletion is discarded.
//!
//! A sync's mark of the versions it delivered is in `bulk::delivery`; pages, counts,
//! tombstones, the mark of a whole table and restores go through the `staged_record`
//! entity (and `storage::crm` for the CRM's version).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::hash::{content_hash, restored_hash};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::delivery as bulk;
use crate::storage::crm::{self, CrmTable};
use crate::storage::entities;
use crate::storage::entities::staged_record::{Column, Entity};
use crate::storage::Db;

pub use crate::domain::crm::Pending;
use crate::domain::crm::RecordVersion;

/// Brings PostgreSQL's statistics of `staged_record` up to date when a bulk load left
/// them stale (see [`analyze_if_stale`](crate::storage::bulk::backend::analyze_if_stale)):
/// a run's counts and its mark of a whole table delivered then scan the table instead of
/// walking a fresh load through an index. Returns whether it analyzed.
pub async fn refresh_statistics(db: &Db) -> Result<bool> {
    crate::storage::bulk::backend::analyze_if_stale(db.conn(), "staged_record").await
}

/// How many records of the table wait for delivery (only tombstones with `deletes_only`).
pub async fn count_pending(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    deletes_only: bool,
) -> Result<u64> {
    let mut q = Entity::pending_of_table(tenant.as_str(), table);
    if deletes_only {
        q = q.filter(Column::Deleted.eq(true));
    }
    Ok(entities::count(q, db.conn()).await?)
}

/// The next page of records waiting for delivery, by external id after `after`: the
/// sync streams a table in pages and never holds it whole.
pub async fn pending_page(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<Pending>> {
    type Row = (
        String,
        String,
        bool,
        i64,
        Option<i64>,
        Option<DateTime<Utc>>,
        String,
    );
    let rows: Vec<Row> = Entity::pending_of_table(tenant.as_str(), table)
        .filter(Column::ExternalId.gt(after))
        .order_by_asc(Column::ExternalId)
        .limit(limit)
        .select_only()
        .columns([
            Column::ExternalId,
            Column::Fields,
            Column::Deleted,
            Column::ContentHash,
            Column::SyncedHash,
            Column::UpdatedAt,
            Column::RequestId,
        ])
        .into_tuple()
        .all(db.conn())
        .await?;
    rows.into_iter()
        .map(
            |(external_id, fields, deleted, hash, synced, updated_at, request_id)| {
                let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&fields) else {
                    return Err(
                        anyhow::anyhow!("stored record fields are not a JSON object").into(),
                    );
                };
                Ok(Pending {
                    external_id,
                    fields,
                    deleted,
                    version: RecordVersion {
                        content_hash: hash,
                        updated_at,
                        request_id,
                    },
                    delivered_before: synced.is_some(),
                })
            },
        )
        .collect()
}

/// Marks versions delivered. A record re-staged since it was read keeps waiting: only
/// the delivered version (same content hash) is marked.
pub async fn mark_delivered(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    done: &[(String, i64)],
) -> Result<()> {
    let txn = db.begin_write().await?;
    bulk::mark_delivered(&txn, tenant, table, done).await?;
    txn.commit().await
}

/// The external ids of the table's tombstones waiting for delivery.
pub async fn pending_tombstones(db: &Db, tenant: &TenantId, table: &str) -> Result<Vec<String>> {
    Ok(Entity::pending_of_table(tenant.as_str(), table)
        .filter(Column::Deleted.eq(true))
        .select_only()
        .column(Column::ExternalId)
        .order_by_asc(Column::ExternalId)
        .into_tuple()
        .all(db.conn())
        .await?)
}

/// Restores records whose deletion was discarded: each becomes again the version the CRM
/// has (`crm`'s fields), already delivered, so nothing is sent for it; its content hash
/// marks it restored (see `restored_hash`). Returns the restored ones (those the CRM
/// has) with that hash.
pub async fn restore_from_crm(
    db: &Db,
    tenant: &TenantId,
    crm: CrmTable,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<(String, i64)>> {
    let table = crm.staged().as_str();
    let txn = db.begin_write().await?;
    let mut restored = Vec::with_capacity(ids.len());
    for id in ids {
        let crm_fields = crm::fields_of(&*txn, crm, tenant, id).await?;
        let Some(fields) = crm_fields else {
            continue;
        };
        let updated_at: Option<DateTime<Utc>> = Entity::of_record(tenant.as_str(), table, id)
            .select_only()
            .column(Column::UpdatedAt)
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(&*txn)
            .await?
            .flatten();
        let hash = restored_hash(&fields, updated_at);
        let size = i64::try_from(fields.len() + id.len() + 90).unwrap_or(i64::MAX);
        Entity::update_many()
            .col_expr(Column::Fields, Expr::value(fields))
            .col_expr(Column::Deleted, Expr::value(false))
            .col_expr(Column::ContentHash, Expr::value(hash))
            .col_expr(Column::SyncedHash, Expr::value(hash))
            .col_expr(Column::ChangedAt, Expr::value(now))
            .col_expr(Column::SizeBytes, Expr::value(size))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table))
            .filter(Column::ExternalId.eq(id.as_str()))
            .exec(&*txn)
            .await?;
        restored.push((id.clone(), hash));
    }
    txn.commit().await?;
    Ok(restored)
}

/// Stages again the deletion of records a discard had restored (a reopened deletion):
/// each becomes a tombstone waiting for delivery, as the ERP's own would be.
pub async fn tombstone_again(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    const EMPTY: &str = "{}";
    let hash = content_hash(EMPTY, None, true);
    let txn = db.begin_write().await?;
    for chunk in ids.chunks(2_000) {
        Entity::update_many()
            .col_expr(Column::Fields, Expr::value(EMPTY))
            .col_expr(
                Column::UpdatedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(Column::Deleted, Expr::value(true))
            .col_expr(Column::ContentHash, Expr::value(hash))
            .col_expr(Column::ChangedAt, Expr::value(now))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table))
            .filter(Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await
}

/// Marks every pending record of a table delivered at once: for tables the CRM does not
/// receive (orders, invoices, …), which a run only counts.
pub async fn mark_all_delivered(db: &Db, tenant: &TenantId, table: &str) -> Result<u64> {
    let txn = db.begin_write().await?;
    let n = Entity::update_many()
        .col_expr(Column::SyncedHash, Expr::col(Column::ContentHash).into())
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::TableName.eq(table))
        .filter(Entity::pending())
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(n)
}
