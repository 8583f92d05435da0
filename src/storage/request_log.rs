//! Queries of `request_log`, the big table: written once per request, read by tenant
//! and time range through (tenant_id, received_at), deleted by age in bounded batches.
//! The export's pages of it ([`PageReader`]) are bulk reads, in `storage::bulk`.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set};

pub use super::bulk::request_log::{ExportCursor, PageReader};
use super::entities::request_log;
use super::request_body::decode_body;
pub use super::request_body::StoredBody;
use super::{usage, Db};
use crate::domain::request_log::{RequestLogEntry, Transport};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// What a row takes, as counted in the tenant's usage (with the body as stored).
fn row_size(e: &RequestLogEntry, stored_body: usize) -> i64 {
    let text = e.id.len()
        + e.endpoint.len()
        + e.table.as_deref().map_or(0, str::len)
        + e.status.len()
        + e.error.as_deref().map_or(0, str::len)
        + stored_body
        + e.response_body.len();
    // Fixed-width columns and the row header, roughly.
    i64::try_from(text).unwrap_or(i64::MAX).saturating_add(80)
}

/// Writes one entry inside `txn` and counts it in the tenant's usage; returns the bytes
/// it counted. `body` is the request body to store (`e.request_body` is not read).
pub async fn insert(
    txn: &DatabaseTransaction,
    e: &RequestLogEntry,
    body: &StoredBody,
) -> Result<u64> {
    let size = row_size(e, body.bytes.len());
    let row = request_log::ActiveModel {
        id: Set(e.id.clone()),
        tenant_id: Set(e.tenant.as_str().to_owned()),
        received_at: Set(e.received_at),
        endpoint: Set(clip(&e.endpoint)),
        table_name: Set(e.table.as_deref().map(clip)),
        transport: Set(e.transport.as_str().to_owned()),
        status: Set(e.status.clone()),
        http_status: Set(i32::from(e.http_status)),
        duration_ms: Set(i64::try_from(e.duration_ms).unwrap_or(i64::MAX)),
        accepted: Set(i32::try_from(e.accepted).unwrap_or(i32::MAX)),
        rejected: Set(i32::try_from(e.rejected).unwrap_or(i32::MAX)),
        warnings: Set(i32::try_from(e.warnings).unwrap_or(i32::MAX)),
        error: Set(e.error.clone()),
        request_body: Set(body.bytes.clone()),
        request_body_lz4: Set(body.compressed),
        request_truncated: Set(e.request_truncated),
        response_body: Set(e.response_body.clone()),
        size_bytes: Set(size),
    };
    request_log::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    usage::add(
        txn,
        &e.tenant,
        usage::Delta {
            request_log_rows: 1,
            request_log_bytes: size,
            ..Default::default()
        },
    )
    .await?;
    Ok(u64::try_from(size).unwrap_or_default())
}

/// The widest `endpoint` and `table_name` the table holds, in characters.
const LABEL_CHARS: usize = 64;

/// `label` cut to fit its column (a request naming a 100-character table is logged all the
/// same, its name cut and marked), a NUL character shown as U+FFFD (a request naming
/// table "company\0" is logged on PostgreSQL too, whose text columns refuse NUL).
fn clip(label: &str) -> String {
    let shown = |c: char| {
        if c == '\0' {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        }
    };
    if label.chars().count() <= LABEL_CHARS {
        return label.chars().map(shown).collect();
    }
    let mut cut: String = label.chars().take(LABEL_CHARS - 1).map(shown).collect();
    cut.push('…');
    cut
}

/// Writes one entry in its own transaction.
pub async fn insert_alone(db: &Db, e: &RequestLogEntry) -> Result<()> {
    let txn = db.begin_write().await?;
    let bytes = insert(&txn, e, &StoredBody::encode(&e.request_body)).await?;
    txn.commit().await?;
    crate::metrics::request_logged(e.tenant.as_str(), bytes);
    Ok(())
}

/// The tenant's entries received in `[from, to)`, oldest first, at most `limit`.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<RequestLogEntry>> {
    request_log::Entity::of_tenant_between(tenant.as_str(), from, to)
        .limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(|r| {
            Ok(RequestLogEntry {
                transport: Transport::parse(&r.transport).ok_or_else(|| {
                    anyhow::anyhow!("stored request has transport {:?}", r.transport)
                })?,
                request_body: decode_body(&r.request_body, r.request_body_lz4)?,
                id: r.id,
                tenant: tenant.clone(),
                received_at: r.received_at,
                endpoint: r.endpoint,
                table: r.table_name,
                status: r.status,
                http_status: u16::try_from(r.http_status).unwrap_or(0),
                duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
                accepted: u32::try_from(r.accepted).unwrap_or(0),
                rejected: u32::try_from(r.rejected).unwrap_or(0),
                warnings: u32::try_from(r.warnings).unwrap_or(0),
                error: r.error,
                request_truncated: r.request_truncated,
                response_body: r.response_body,
            })
        })
        .collect()
}

/// Deletes at most `batch` entries received before `cutoff` (any tenant) and takes
/// them off their tenants' usage; returns how many went. Bounded so a long backlog
/// never holds the database in one huge transaction.
pub async fn delete_older_than(db: &Db, cutoff: DateTime<Utc>, batch: u64) -> Result<u64> {
    use request_log::Column;
    let txn = db.begin_write().await?;
    let mut oldest = request_log::Entity::oldest_before(cutoff, batch)
        .select_only()
        .columns([Column::Id, Column::TenantId, Column::SizeBytes]);
    if db.backend() == sea_orm::DbBackend::Postgres {
        // Replicas purge at once: each takes rows no other holds, so a row's size is taken
        // off its tenant's usage once. (SQLite's writer lock already makes them take turns.)
        oldest = oldest.lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        );
    }
    let rows: Vec<(String, String, i64)> = oldest.into_tuple().all(&*txn).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut per_tenant: HashMap<&str, (i64, i64)> = HashMap::new();
    for (_, tenant, size) in &rows {
        let e = per_tenant.entry(tenant).or_default();
        e.0 += 1;
        e.1 += size;
    }
    // The cutoff again lets PostgreSQL look for the ids only in the partitions before it.
    request_log::Entity::delete_many()
        .filter(Column::Id.is_in(rows.iter().map(|(id, _, _)| id.as_str())))
        .filter(Column::ReceivedAt.lt(cutoff))
        .exec(&*txn)
        .await?;
    for (tenant, (count, bytes)) in per_tenant {
        let tenant = TenantId::parse(tenant).map_err(|e| anyhow::anyhow!(e))?;
        usage::add(
            &txn,
            &tenant,
            usage::Delta {
                request_log_rows: -count,
                request_log_bytes: -bytes,
                ..Default::default()
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(rows.len() as u64)
}
