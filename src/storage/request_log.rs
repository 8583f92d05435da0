//! Queries of `request_log`, the big table: written once per request, read by tenant
//! and time range through (tenant_id, received_at), deleted by age in bounded batches.
//! The export's pages of it ([`PageReader`]) are bulk reads, in `storage::bulk`.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, Value};

pub use super::bulk::request_log::{ExportCursor, PageReader};
use super::{usage, Db, Params};
use crate::domain::request_log::{RequestLogEntry, Transport};
use crate::domain::tenant::TenantId;
use crate::error::Result;

const COLUMNS: &str = "id, tenant_id, received_at, endpoint, table_name, transport, status, \
    http_status, duration_ms, accepted, rejected, error, request_body, request_body_lz4, \
    request_truncated, response_body, size_bytes";

/// Bodies from this size on are stored LZ4-compressed; smaller ones would not gain.
const COMPRESS_FROM: usize = 1024;

/// A request body in its stored form. Encoding (compression) is the costly part of
/// writing a log row, so callers can do it before they open the write transaction.
#[derive(Debug, Clone)]
pub struct StoredBody {
    bytes: Vec<u8>,
    compressed: bool,
}

impl StoredBody {
    /// Encodes `body` (already cut to the cap).
    pub fn encode(body: &str) -> Self {
        if body.len() >= COMPRESS_FROM {
            Self {
                bytes: lz4_flex::compress_prepend_size(body.as_bytes()),
                compressed: true,
            }
        } else {
            Self {
                bytes: body.as_bytes().to_vec(),
                compressed: false,
            }
        }
    }
}

/// The request body back from its stored form.
pub(crate) fn decode_body(bytes: &[u8], compressed: bool) -> Result<String> {
    let raw = if compressed {
        lz4_flex::decompress_size_prepended(bytes)
            .map_err(|e| anyhow::anyhow!("stored request body does not decompress: {e}"))?
    } else {
        bytes.to_vec()
    };
    String::from_utf8(raw)
        .map_err(|e| anyhow::anyhow!("stored request body is not UTF-8: {e}").into())
}

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

/// Writes one entry inside `txn` and counts it in the tenant's usage.
/// `body` is the request body to store (`e.request_body` is not read).
pub async fn insert(
    txn: &DatabaseTransaction,
    e: &RequestLogEntry,
    body: &StoredBody,
) -> Result<()> {
    let size = row_size(e, body.bytes.len());
    let values: Vec<Value> = vec![
        e.id.clone().into(),
        e.tenant.as_str().into(),
        e.received_at.into(),
        clip(&e.endpoint).into(),
        e.table.as_deref().map(clip).into(),
        e.transport.as_str().into(),
        e.status.clone().into(),
        i32::from(e.http_status).into(),
        i64::try_from(e.duration_ms).unwrap_or(i64::MAX).into(),
        i32::try_from(e.accepted).unwrap_or(i32::MAX).into(),
        i32::try_from(e.rejected).unwrap_or(i32::MAX).into(),
        e.error.clone().into(),
        body.bytes.clone().into(),
        body.compressed.into(),
        e.request_truncated.into(),
        e.response_body.clone().into(),
        size.into(),
    ];
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO request_log ({COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    );
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        sql,
        values,
    ))
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
    .await
}

/// The widest `endpoint` and `table_name` the table holds, in characters.
const LABEL_CHARS: usize = 64;

/// `label` cut to fit its column (a request naming a 100-character table is logged all the
/// same, its name cut and marked).
fn clip(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_owned();
    }
    let mut cut: String = label.chars().take(LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Writes one entry in its own transaction.
pub async fn insert_alone(db: &Db, e: &RequestLogEntry) -> Result<()> {
    let txn = db.begin_write().await?;
    insert(&txn, e, &StoredBody::encode(&e.request_body)).await?;
    txn.commit().await?;
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
    let sql = format!(
        "SELECT {COLUMNS} FROM request_log WHERE tenant_id = $1 AND received_at >= $2 \
         AND received_at < $3 ORDER BY received_at, id LIMIT {limit}"
    );
    let rows = db
        .conn()
        .query_all(Statement::from_sql_and_values(
            db.backend(),
            sql,
            [tenant.as_str().into(), from.into(), to.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            let transport: String = r.try_get("", "transport")?;
            let http_status: i32 = r.try_get("", "http_status")?;
            let duration_ms: i64 = r.try_get("", "duration_ms")?;
            let accepted: i32 = r.try_get("", "accepted")?;
            let rejected: i32 = r.try_get("", "rejected")?;
            Ok(RequestLogEntry {
                id: r.try_get("", "id")?,
                tenant: tenant.clone(),
                received_at: r.try_get("", "received_at")?,
                endpoint: r.try_get("", "endpoint")?,
                table: r.try_get("", "table_name")?,
                transport: Transport::parse(&transport)
                    .ok_or_else(|| anyhow::anyhow!("stored request has transport {transport:?}"))?,
                status: r.try_get("", "status")?,
                http_status: u16::try_from(http_status).unwrap_or(0),
                duration_ms: u64::try_from(duration_ms).unwrap_or(0),
                accepted: u32::try_from(accepted).unwrap_or(0),
                rejected: u32::try_from(rejected).unwrap_or(0),
                error: r.try_get("", "error")?,
                request_body: decode_body(
                    &r.try_get::<Vec<u8>>("", "request_body")?,
                    r.try_get("", "request_body_lz4")?,
                )?,
                request_truncated: r.try_get("", "request_truncated")?,
                response_body: r.try_get("", "response_body")?,
            })
        })
        .collect()
}

/// Deletes at most `batch` entries received before `cutoff` (any tenant) and takes
/// them off their tenants' usage; returns how many went. Bounded so a long backlog
/// never holds the database in one huge transaction.
pub async fn delete_older_than(db: &Db, cutoff: DateTime<Utc>, batch: u64) -> Result<u64> {
    let txn = db.begin_write().await?;
    let backend = txn.get_database_backend();
    let rows = txn
        .query_all(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id, tenant_id, size_bytes FROM request_log WHERE received_at < $1 \
                 ORDER BY received_at LIMIT {batch}"
            ),
            [cutoff.into()],
        ))
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut per_tenant: std::collections::HashMap<String, (i64, i64)> = Default::default();
    let mut p = Params::new(backend, rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("", "id")?;
        let tenant: String = r.try_get("", "tenant_id")?;
        let size: i64 = r.try_get("", "size_bytes")?;
        let e = per_tenant.entry(tenant).or_default();
        e.0 += 1;
        e.1 += size;
        ids.push(p.push(id));
    }
    txn.execute(p.statement(format!(
        "DELETE FROM request_log WHERE id IN ({})",
        ids.join(", ")
    )))
    .await?;
    for (tenant, (count, bytes)) in per_tenant {
        let tenant = TenantId::parse(&tenant).map_err(|e| anyhow::anyhow!(e))?;
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
