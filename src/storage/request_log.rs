//! Queries of `request_log`, the big table: written once per request, read by tenant
//! and time range through (tenant_id, received_at), deleted by age in bounded batches.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, Value};

use super::{sqlx_error, usage, Db, Params, Pool};
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
fn decode_body(bytes: &[u8], compressed: bool) -> Result<String> {
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

/// Where a page of [`PageReader::page`] starts: after this (received_at, id).
pub type ExportCursor = (DateTime<Utc>, String);

/// One connection held for every page of an export: on SQLite each pooled connection
/// keeps its own page cache, and pages read over all of them would fill them all.
pub struct PageReader {
    conn: Conn,
}

enum Conn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl PageReader {
    /// Takes a connection from the pool until the reader is dropped.
    pub async fn new(db: &Db) -> Result<Self> {
        let conn = match db.pool() {
            Pool::Sqlite(pool) => Conn::Sqlite(pool.acquire().await.map_err(sqlx_error)?),
            Pool::Postgres(pool) => Conn::Postgres(pool.acquire().await.map_err(sqlx_error)?),
        };
        Ok(Self { conn })
    }

    /// See [`export_page`].
    pub async fn page(
        &mut self,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tables: Option<&[&str]>,
        after: Option<&ExportCursor>,
        limit: usize,
    ) -> Result<Vec<RequestLogEntry>> {
        export_page(&mut self.conn, tenant, from, to, tables, after, limit).await
    }
}

/// One page of the tenant's entries received in `[from, to)`, in (received_at, id)
/// order, after `after`, of the `tables` given (every entry when None), at most `limit`:
/// a keyset page over the (tenant_id, received_at) index, so an export of a million rows
/// never skips through an OFFSET nor holds the range in memory. Read through sqlx
/// directly: sea-orm's per-row cost shows at this size.
async fn export_page(
    conn: &mut Conn,
    tenant: &TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tables: Option<&[&str]>,
    after: Option<&ExportCursor>,
    limit: usize,
) -> Result<Vec<RequestLogEntry>> {
    let build = |ph: &dyn Fn(usize) -> String| {
        let mut n = 0;
        let mut next = || {
            n += 1;
            ph(n)
        };
        // One lower bound only (the page's start), so the index range starts there:
        // given two, SQLite might take the range's start and rescan every page.
        let mut sql = format!(
            "SELECT id, received_at, endpoint, table_name, transport, status, http_status, \
             duration_ms, accepted, rejected, error, request_body, request_body_lz4, \
             request_truncated, response_body FROM request_log WHERE tenant_id = {} \
             AND received_at >= {} AND received_at < {}",
            next(),
            next(),
            next()
        );
        if after.is_some() {
            // Ties on the last row's instant go by id.
            let (at, id) = (next(), next());
            sql.push_str(&format!(" AND (received_at > {at} OR id > {id})"));
        }
        if let Some(tables) = tables {
            let list: Vec<String> = tables.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND table_name IN ({})", list.join(", ")));
        }
        // The limit is bound too: one statement text, one prepared statement cached.
        sql.push_str(&format!(" ORDER BY received_at, id LIMIT {}", next()));
        sql
    };
    let start = after.map_or(from, |(at, _)| (*at).max(from));
    match conn {
        Conn::Sqlite(conn) => {
            // sqlx hands SQLite rows over one at a time from its worker thread, waking
            // the reader for each: ~15 µs a row, more than writing the row to the sheet.
            // SQLite packs the page into one text instead, every field as `<bytes>:<text>`
            // (`-` for NULL; LZ4 bodies in hex), cut apart here without any unescaping:
            // the same rows, several times faster. Their order is restored here (an
            // ORDER BY inside the aggregate would sort whole rows).
            let field = |c: &str| format!("ifnull(length(CAST({c} AS BLOB)) || ':' || {c}, '-')");
            let body = "(CASE WHEN request_body_lz4 THEN hex(request_body) ELSE CAST(request_body AS TEXT) END)";
            let packed_row = [
                "id",
                "received_at",
                "endpoint",
                "table_name",
                "transport",
                "status",
                "http_status",
                "duration_ms",
                "accepted",
                "rejected",
                "error",
                body,
                "request_body_lz4",
                "request_truncated",
                "response_body",
            ]
            .map(field)
            .join(" || ");
            let sql = format!(
                "SELECT ifnull(group_concat({packed_row}, ''), '') FROM ({})",
                build(&|_| "?".to_owned())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql)
                .bind(tenant.as_str())
                .bind(start)
                .bind(to);
            if let Some((at, id)) = after {
                q = q.bind(*at).bind(id.as_str());
            }
            for t in tables.unwrap_or_default() {
                q = q.bind(*t);
            }
            q = q.bind(i64::try_from(limit).unwrap_or(i64::MAX));
            let packed = q.fetch_one(&mut **conn).await.map_err(sqlx_error)?;
            let mut rows = Vec::with_capacity(limit.min(4_096));
            let mut fields = Packed(&packed);
            while !fields.0.is_empty() {
                let mut row: [Option<&str>; 15] = [None; 15];
                for f in &mut row {
                    *f = fields.next()?;
                }
                rows.push(row);
            }
            // The stored text orders as SQLite compared it.
            rows.sort_unstable_by(|a, b| (a[1], a[0]).cmp(&(b[1], b[0])));
            rows.iter().map(|r| packed_entry(r, tenant)).collect()
        }
        Conn::Postgres(conn) => {
            let sql = build(&|n| format!("${n}"));
            let mut q = sqlx::query(&sql).bind(tenant.as_str()).bind(start).bind(to);
            if let Some((at, id)) = after {
                q = q.bind(*at).bind(id.as_str());
            }
            for t in tables.unwrap_or_default() {
                q = q.bind(*t);
            }
            q = q.bind(i64::try_from(limit).unwrap_or(i64::MAX));
            let rows = q.fetch_all(&mut **conn).await.map_err(sqlx_error)?;
            rows.iter()
                .map(|r| {
                    use sqlx::Row;
                    let get = |e: sqlx::Error| sqlx_error(e);
                    let transport: &str = r.try_get(4).map_err(get)?;
                    let http_status: i32 = r.try_get(6).map_err(get)?;
                    let duration_ms: i64 = r.try_get(7).map_err(get)?;
                    let accepted: i32 = r.try_get(8).map_err(get)?;
                    let rejected: i32 = r.try_get(9).map_err(get)?;
                    Ok(RequestLogEntry {
                        id: r.try_get(0).map_err(get)?,
                        tenant: tenant.clone(),
                        received_at: r.try_get(1).map_err(get)?,
                        endpoint: r.try_get(2).map_err(get)?,
                        table: r.try_get(3).map_err(get)?,
                        transport: parse_transport(transport)?,
                        status: r.try_get(5).map_err(get)?,
                        http_status: u16::try_from(http_status).unwrap_or(0),
                        duration_ms: u64::try_from(duration_ms).unwrap_or(0),
                        accepted: u32::try_from(accepted).unwrap_or(0),
                        rejected: u32::try_from(rejected).unwrap_or(0),
                        error: r.try_get(10).map_err(get)?,
                        request_body: decode_body(
                            r.try_get::<&[u8], _>(11).map_err(get)?,
                            r.try_get(12).map_err(get)?,
                        )?,
                        request_truncated: r.try_get(13).map_err(get)?,
                        response_body: r.try_get(14).map_err(get)?,
                    })
                })
                .collect()
        }
    }
}

fn parse_transport(s: &str) -> Result<Transport> {
    Transport::parse(s).ok_or_else(|| anyhow::anyhow!("stored request has transport {s:?}").into())
}

/// A page of request-log rows as SQLite packs them for [`export_page`]: fields one
/// after the other, each `<length in bytes>:<text>`, or `-` for NULL.
struct Packed<'a>(&'a str);

impl<'a> Packed<'a> {
    fn next(&mut self) -> Result<Option<&'a str>> {
        let bad = || anyhow::anyhow!("a packed request-log page is malformed");
        if let Some(rest) = self.0.strip_prefix('-') {
            self.0 = rest;
            return Ok(None);
        }
        let (len, rest) = self.0.split_once(':').ok_or_else(bad)?;
        let len: usize = len.parse().map_err(|_| bad())?;
        let value = rest.get(..len).ok_or_else(bad)?;
        self.0 = rest.get(len..).ok_or_else(bad)?;
        Ok(Some(value))
    }
}

/// The entry of a packed row (the columns of [`export_page`] in order).
fn packed_entry(r: &[Option<&str>; 15], tenant: &TenantId) -> Result<RequestLogEntry> {
    let id = r[0].unwrap_or_default();
    let bad = |what: &str| anyhow::anyhow!("stored request {id} has a malformed {what}");
    let text = |i: usize| r[i].unwrap_or_default().to_owned();
    let int = |i: usize| r[i].and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let received_at = r[1]
        .and_then(parse_stored_instant)
        .ok_or_else(|| bad("received_at"))?;
    let body = r[11].unwrap_or_default();
    let request_body = if int(12) != 0 {
        decode_body(&from_hex(body).ok_or_else(|| bad("body"))?, true)?
    } else {
        body.to_owned()
    };
    Ok(RequestLogEntry {
        id: id.to_owned(),
        tenant: tenant.clone(),
        received_at,
        endpoint: text(2),
        table: r[3].map(str::to_owned),
        transport: parse_transport(r[4].unwrap_or_default())?,
        status: text(5),
        http_status: u16::try_from(int(6)).unwrap_or(0),
        duration_ms: u64::try_from(int(7)).unwrap_or(0),
        accepted: u32::try_from(int(8)).unwrap_or(0),
        rejected: u32::try_from(int(9)).unwrap_or(0),
        error: r[10].map(str::to_owned),
        request_body,
        request_truncated: int(13) != 0,
        response_body: text(14),
    })
}

/// An instant as SQLite stores it (sqlx writes RFC 3339; a space for the `T` is read too).
fn parse_stored_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [h, l] => Some(digit(*h)? << 4 | digit(*l)?),
            _ => None,
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
