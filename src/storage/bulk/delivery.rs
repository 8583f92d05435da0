//! Delivery's multi-row statement on `staged_record`: marking the versions a sync
//! delivered, thousands per statement. Which versions wait and when they are marked is
//! `storage::staging::delivery`'s.

use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;

/// Versions marked per statement (3 values each).
const PER_STATEMENT: usize = 2_000;

/// Marks the versions `done` (external id, content hash) delivered in `txn`, a chunk per
/// statement: a record re-staged since it was read (another hash) is left waiting.
/// The `external_id IN (…)` lets SQLite find the rows by key; the row values then match
/// each one's hash.
pub(crate) async fn mark_delivered(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    done: &[(String, i64)],
) -> Result<()> {
    for chunk in done.chunks(PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 3 + 2);
        let (t, tb) = (p.push(tenant.as_str()), p.push(table));
        let ids: Vec<String> = chunk.iter().map(|(id, _)| p.push(id.as_str())).collect();
        let versions: Vec<String> = chunk
            .iter()
            .map(|(id, hash)| format!("({}, {})", p.push(id.as_str()), p.push(*hash)))
            .collect();
        let sql = format!(
            "UPDATE staged_record SET synced_hash = content_hash WHERE tenant_id = {t} \
             AND table_name = {tb} AND external_id IN ({}) \
             AND (external_id, content_hash) IN (VALUES {})",
            ids.join(", "),
            versions.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}
