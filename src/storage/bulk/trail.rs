//! `record_trail`'s multi-row insert: a batch's events (thousands of records of one
//! request, or of one sink call), [`ROWS_PER_STATEMENT`] rows per statement, in the
//! caller's transaction. Which events to write is `storage::trail`'s.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::tenant::TenantId;
use crate::domain::trail::{NewTrail, TrailSource};
use crate::error::Result;
use crate::storage::bulk::Params;

/// Rows per statement: 13 values a row stay under SQLite's 32 766 bind limit.
const ROWS_PER_STATEMENT: usize = 2_500;

/// Inserts `events` of the tenant's `table`, made by `source` at `at`.
pub(crate) async fn insert(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    source: TrailSource<'_>,
    at: DateTime<Utc>,
    events: &[NewTrail<'_>],
) -> Result<()> {
    let (request_id, run_id, stage) = match source {
        TrailSource::Request(id) => (Some(id), None, None),
        TrailSource::Run { run_id, stage } => (None, Some(run_id), Some(stage)),
    };
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 13);
        let tuples: Vec<String> = chunk
            .iter()
            .map(|e| {
                let v = [
                    p.push(tenant.as_str()),
                    p.push(table),
                    p.push(e.external_id),
                    p.push(at),
                    p.push(e.kind.as_str()),
                    p.push(request_id),
                    p.push(e.position.and_then(|i| i32::try_from(i).ok())),
                    p.push(run_id),
                    p.push(stage),
                    p.push(e.field),
                    p.push(e.detail),
                    p.push(e.idempotency_key),
                    p.push(e.content_hash),
                ];
                format!("({})", v.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO record_trail (tenant_id, table_name, external_id, at, kind, request_id, \
             position, run_id, stage, field, detail, idempotency_key, content_hash) VALUES {}",
            tuples.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}
