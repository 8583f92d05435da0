//! Delivery's multi-row statement on `staged_record`: marking the versions a sync
//! delivered, thousands per statement. Which versions wait and when they are marked is
//! `storage::staging::delivery`'s.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;

/// Versions marked per statement (3 values each).
const PER_STATEMENT: usize = 2_000;

/// Marks the versions `done` (external id, content hash) delivered in `txn`, a chunk per
/// statement: a record re-staged since it was read (another hash) is left waiting.
pub(crate) async fn mark_delivered(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    done: &[(String, i64)],
) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        return mark_delivered_pg(txn, tenant, table, done).await;
    }
    // The `external_id IN (…)` lets SQLite find the rows by key; the row values then
    // match each one's hash.
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

/// PostgreSQL's mark: two arrays and no join, so no plan can go
/// quadratic. The same statement with row values planned, on a freshly loaded table
/// (statistics saying the tenant has one row), a nested loop of the page's rows against
/// its VALUES list (500 000 comparisons per 1 000-row page, 420 ms) behind an index scan
/// of the tenant's whole table with the ids as a filter. Here the rows are found by key
/// within the page's range (its least and greatest id, in the database's collation), and
/// each row's `id hash` pair is looked up in a hashed array (PostgreSQL hashes a
/// constant `= ANY` array; the pool's `force_custom_plan` makes it constant). The hash is
/// the pair's last word, so ids with spaces cannot collide.
async fn mark_delivered_pg(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    done: &[(String, i64)],
) -> Result<()> {
    for chunk in done.chunks(PER_STATEMENT) {
        let mut p = Params::new(DbBackend::Postgres, chunk.len() * 2 + 2);
        let (t, tb) = (p.push(tenant.as_str()), p.push(table));
        let ids: Vec<String> = chunk.iter().map(|(id, _)| p.push(id.as_str())).collect();
        let pairs: Vec<String> = chunk
            .iter()
            .map(|(id, hash)| p.push(format!("{id} {hash}")))
            .collect();
        let ids = format!("ARRAY[{}]::text[]", ids.join(", "));
        let pairs = format!("ARRAY[{}]::text[]", pairs.join(", "));
        let sql = format!(
            "UPDATE staged_record SET synced_hash = content_hash WHERE tenant_id = {t} \
             AND table_name = {tb} \
             AND external_id >= (SELECT min(i) FROM unnest({ids}) i) \
             AND external_id <= (SELECT max(i) FROM unnest({ids}) i) \
             AND external_id = ANY({ids}) \
             AND external_id || ' ' || content_hash::text = ANY({pairs})"
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}
