//! The Histórico export's pages of `request_log`: keyset pages of up to a million rows
//! in all, read through sqlx on one held connection (packed into one text on SQLite).

use chrono::{DateTime, Utc};

use crate::domain::request_log::{RequestLogEntry, Transport};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::db::{sqlx_error, Db, Pool};
use crate::storage::request_body::decode_body;

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
             request_truncated, response_body, warnings FROM request_log WHERE tenant_id = {} \
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
            // the reader for each, which costs more than writing the row to the sheet.
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
                "warnings",
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
                let mut row: [Option<&str>; 16] = [None; 16];
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
                    let warnings: i32 = r.try_get(15).map_err(get)?;
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
                        warnings: u32::try_from(warnings).unwrap_or(0),
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
fn packed_entry(r: &[Option<&str>; 16], tenant: &TenantId) -> Result<RequestLogEntry> {
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
        warnings: u32::try_from(int(15)).unwrap_or(0),
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
