//! Delivery of staged records to the CRM: which versions wait (`synced_hash` behind
//! `content_hash`), pages of them for a run, marking versions delivered, and records
//! restored to the version the CRM has when their deletion is discarded.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::content_hash;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::{Db, Params};

pub use crate::domain::crm::Pending;

const PENDING: &str = "(synced_hash IS NULL OR synced_hash <> content_hash)";

/// How many records of the table wait for delivery (only tombstones with `deletes_only`).
pub async fn count_pending(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    deletes_only: bool,
) -> Result<u64> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT COUNT(*) AS n FROM staged_record WHERE tenant_id = {} AND table_name = {} AND {PENDING}{}",
        p.push(tenant.as_str()),
        p.push(table),
        if deletes_only { " AND deleted = TRUE" } else { "" }
    );
    let row = db.conn().query_one(p.statement(sql)).await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
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
    let mut p = Params::new(db.backend(), 3);
    let sql = format!(
        "SELECT external_id, fields, deleted, content_hash, synced_hash FROM staged_record \
         WHERE tenant_id = {} AND table_name = {} AND external_id > {} AND {PENDING} \
         ORDER BY external_id LIMIT {limit}",
        p.push(tenant.as_str()),
        p.push(table),
        p.push(after)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            let fields: String = r.try_get("", "fields")?;
            let synced: Option<i64> = r.try_get("", "synced_hash")?;
            Ok(Pending {
                external_id: r.try_get("", "external_id")?,
                fields: match serde_json::from_str(&fields) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => {
                        return Err(
                            anyhow::anyhow!("stored record fields are not a JSON object").into(),
                        )
                    }
                },
                deleted: r.try_get("", "deleted")?,
                hash: r.try_get("", "content_hash")?,
                delivered_before: synced.is_some(),
            })
        })
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
    for (id, hash) in done {
        let mut p = Params::new(txn.get_database_backend(), 5);
        let sql = format!(
            "UPDATE staged_record SET synced_hash = {} WHERE tenant_id = {} AND table_name = {} \
             AND external_id = {} AND content_hash = {}",
            p.push(*hash),
            p.push(tenant.as_str()),
            p.push(table),
            p.push(id.as_str()),
            p.push(*hash)
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// The external ids of the table's tombstones waiting for delivery.
pub async fn pending_tombstones(db: &Db, tenant: &TenantId, table: &str) -> Result<Vec<String>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT external_id FROM staged_record WHERE tenant_id = {} AND table_name = {} \
         AND deleted = TRUE AND {PENDING} ORDER BY external_id",
        p.push(tenant.as_str()),
        p.push(table)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "external_id").map_err(Into::into))
        .collect()
}

/// Restores records whose deletion was discarded: each becomes again the version the CRM
/// has (`crm_table`'s fields), already delivered, so nothing is sent for it.
pub async fn restore_from_crm(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    crm_table: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    let backend = txn.get_database_backend();
    for id in ids {
        let mut p = Params::new(backend, 2);
        let sql = format!(
            "SELECT fields FROM {crm_table} WHERE tenant_id = {} AND external_id = {}",
            p.push(tenant.as_str()),
            p.push(id.as_str())
        );
        let Some(row) = txn.query_one(p.statement(sql)).await? else {
            continue;
        };
        let fields: String = row.try_get("", "fields")?;
        let mut p = Params::new(backend, 3);
        let sql = format!(
            "SELECT updated_at FROM staged_record WHERE tenant_id = {} AND table_name = {} AND external_id = {}",
            p.push(tenant.as_str()),
            p.push(table),
            p.push(id.as_str())
        );
        let updated_at: Option<DateTime<Utc>> = match txn.query_one(p.statement(sql)).await? {
            Some(r) => r.try_get("", "updated_at")?,
            None => None,
        };
        let hash = content_hash(&fields, updated_at, false);
        let size = i64::try_from(fields.len() + id.len() + 90).unwrap_or(i64::MAX);
        let mut p = Params::new(backend, 8);
        let sql = format!(
            "UPDATE staged_record SET fields = {}, deleted = FALSE, content_hash = {}, synced_hash = {}, \
             changed_at = {}, size_bytes = {} WHERE tenant_id = {} AND table_name = {} AND external_id = {}",
            p.push(fields.clone()),
            p.push(hash),
            p.push(hash),
            p.push(now),
            p.push(size),
            p.push(tenant.as_str()),
            p.push(table),
            p.push(id.as_str())
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// Marks every pending record of a table delivered at once: for tables the CRM does not
/// receive (orders, invoices, …), which a run only counts.
pub async fn mark_all_delivered(db: &Db, tenant: &TenantId, table: &str) -> Result<u64> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "UPDATE staged_record SET synced_hash = content_hash WHERE tenant_id = {} AND table_name = {} \
         AND {PENDING}",
        p.push(tenant.as_str()),
        p.push(table)
    );
    let txn = db.begin_write().await?;
    let n = txn.execute(p.statement(sql)).await?.rows_affected();
    txn.commit().await?;
    Ok(n)
}
