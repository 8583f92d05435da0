//! Delivery's statement on `staged_record` that runs once per record of a sync: marking
//! the delivered versions. Which versions wait and when they are marked is
//! `storage::staging::delivery`'s.

use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;

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
