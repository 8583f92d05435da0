//! Delivery's statements on `staged_record` that run once per record of a sync: the page
//! of versions waiting for delivery (with their fields) and marking the delivered versions.
//! Which versions wait and when they are marked is `storage::staging::delivery`'s.

use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::crm::Pending;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::Db;

/// Versions waiting for delivery (as `entities::staged_record::Entity::pending`).
const PENDING: &str = "(synced_hash IS NULL OR synced_hash <> content_hash)";

/// The next page of records waiting for delivery, by external id after `after`, at most
/// `limit`.
pub(crate) async fn pending_page(
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

/// Marks the versions `done` (external id, content hash) delivered in `txn`, one
/// statement each: a record re-staged since it was read (another hash) is left waiting.
pub(crate) async fn mark_delivered(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    done: &[(String, i64)],
) -> Result<()> {
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
    Ok(())
}
