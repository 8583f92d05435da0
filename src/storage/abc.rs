//! The ABC analysis's tables: revenue aggregated from staged invoices or orders, each
//! company's current categories (`company_category`), their history (`category_change`),
//! each run's report (`abc_report`) and the classifications held by the shift guard
//! (`abc_held`).

use std::collections::HashMap;

use futures_util::StreamExt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Value};
use serde_json::json;

use super::{sqlx_error, Db, Params, Pool};
use crate::domain::abc::{
    day_number, from_day_number, AbcClass, AbcReport, Basis, Category, CategoryChange,
    ClassSummary, Lifecycle, ReportState, Stored,
};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

/// One company's purchases as the database sums them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purchases {
    /// Revenue inside the window, in ten-thousandths.
    pub revenue: i64,
    /// First purchase (positive total) up to the window's end.
    pub first: Option<NaiveDate>,
    /// Last purchase up to the window's end.
    pub last: Option<NaiveDate>,
}

/// Runs `$sql` (built by `$build` from a placeholder function: `?` on SQLite, `$N` on
/// PostgreSQL) with `$binds` and maps every row with `$map`, through sqlx directly: for a
/// few hundred thousand rows sea-orm's `QueryResult` costs several times the query.
macro_rules! fetch_all {
    ($db:expr, $build:expr, [$($bind:expr),*], |$row:ident| $map:expr) => {{
        match $db.pool() {
            Pool::Sqlite(pool) => {
                let sql: String = $build(&|_: usize| "?".to_owned());
                let rows = sqlx::query(&sql)$(.bind($bind))*.fetch_all(pool).await.map_err(sqlx_error)?;
                rows.iter().map(|$row| $map).collect::<Result<Vec<_>>>()
            }
            Pool::Postgres(pool) => {
                let sql: String = $build(&|n: usize| format!("${n}"));
                let rows = sqlx::query(&sql)$(.bind($bind))*.fetch_all(pool).await.map_err(sqlx_error)?;
                rows.iter().map(|$row| $map).collect::<Result<Vec<_>>>()
            }
        }
    }};
}

/// Reads a keyset page whose `$columns` columns are aliased `c0`, `c1`, … and ordered by
/// `c0` into `Vec<T>`, T a tuple of the columns.
///
/// On SQLite the database packs the page into one JSON array of arrays, decoded here:
/// sqlx hands SQLite rows over one at a time through its worker thread, which for pages
/// of 20 000 small rows cost several times the query itself. PostgreSQL streams the page
/// as `COPY … TO STDOUT` text (see `pgcopy`), its values written in as literals.
macro_rules! fetch_packed {
    ($reader:expr, $build:expr, $columns:expr, [$($bind:expr),*]) => {{
        match $reader {
            Reader::Sqlite(conn) => {
                let columns = (0..$columns).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ");
                let inner: String = $build(&|_: usize| "?".to_owned());
                let sql = format!("SELECT json_group_array(json_array({columns})) FROM ({inner})");
                let packed: String = sqlx::query_scalar(&sql)$(.bind($bind))*
                    .fetch_one(&mut **conn)
                    .await
                    .map_err(sqlx_error)?;
                serde_json::from_str(&packed).map_err(|e| {
                    AppError::Internal(anyhow::anyhow!("a packed page does not decode: {e}"))
                })
            }
            Reader::Pg(pool) => {
                use super::pgcopy::Literal;
                let literals: Vec<String> = vec![$($bind.literal()?),*];
                let sql: String = $build(&|n: usize| literals[n - 1].clone());
                super::pgcopy::fetch(pool, &sql).await
            }
        }
    }};
}

/// Where an operation's bulk reads run: on SQLite one connection held for all its pages
/// (each pooled connection keeps a page cache of its own, and reading through all of them
/// fills them all); on PostgreSQL the pool (each COPY on a connection of its own).
enum Reader {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Pg(sqlx::PgPool),
}

impl Reader {
    async fn new(db: &Db) -> Result<Self> {
        Ok(match db.pool() {
            Pool::Sqlite(pool) => Reader::Sqlite(pool.acquire().await.map_err(sqlx_error)?),
            Pool::Postgres(pool) => Reader::Pg(pool.clone()),
        })
    }
}

/// The keyset cursor after a packed page: its last key in the database's order (SQLite
/// compares text bytewise, so the greatest; PostgreSQL's collation ordered the page).
fn last_key<'a>(db: &Db, keys: impl Iterator<Item = &'a str>) -> String {
    match db.backend() {
        DbBackend::Sqlite => keys.max().unwrap_or_default().to_owned(),
        _ => keys.last().unwrap_or_default().to_owned(),
    }
}

/// Column `i` of a row, on either backend.
fn col<'r, R, T>(row: &'r R, i: usize) -> Result<T>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    row.try_get(i).map_err(sqlx_error)
}

type Ph<'a> = &'a dyn Fn(usize) -> String;

/// Rows a bulk read fetches at a time (keyset pages): bounded memory, few round trips.
const PAGE: usize = 20_000;

/// Revenue per company over [from, to] and first/last purchase dates (positive totals;
/// credit notes are no purchase). The database sums the window in scans of the revenue
/// index (never loading the invoices here); the dates are staging's `purchase_span`.
/// Tombstones have no amount, so they are in neither.
///
/// The company ids are cut into ranges of about [`PAGE`] companies (at the span table's
/// keys), each summed by one query; PostgreSQL runs [`PARALLEL_RANGES`] at a time on as
/// many connections (one server process each), SQLite one after the other (beside the
/// companies' read).
pub async fn purchases(
    db: &Db,
    tenant: &TenantId,
    basis: Basis,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<String, Purchases>> {
    let (from, to) = (day_number(from), day_number(to));
    let mut out: HashMap<String, Purchases> = HashMap::new();
    let add_spans = |out: &mut HashMap<String, Purchases>, page: Vec<(String, i32, i32)>| {
        out.reserve(page.len());
        for (company, first, last) in page {
            out.insert(
                company,
                Purchases {
                    revenue: 0,
                    first: day(Some(first))?,
                    last: day(Some(last))?,
                },
            );
        }
        Ok::<_, AppError>(())
    };
    if db.backend() == DbBackend::Postgres {
        // A few large ranges (bounds found in one pass of the span table's key), summed
        // two at a time beside the read of the spans: each is a long scan, which
        // PostgreSQL compiles (JIT) as it does the floor's.
        let bounds = pg_bounds(&mut Reader::new(db).await?, tenant, basis).await?;
        let sums = futures_util::stream::iter(ranges(bounds).into_iter().map(|(lo, hi)| async {
            let mut r = Reader::new(db).await?;
            window_sums(&mut r, tenant, basis, from, to, lo, hi).await
        }))
        .buffer_unordered(PARALLEL_RANGES)
        .collect::<Vec<_>>();
        let (sums, spans) = tokio::join!(sums, all_spans(db, tenant, basis));
        add_spans(&mut out, spans?)?;
        for rows in sums {
            for (company, revenue) in rows? {
                out.entry(company).or_default().revenue = revenue;
            }
        }
        return Ok(out);
    }
    // SQLite: the spans in pages of PAGE companies; each page's last company bounds a
    // range, summed one at a time (beside the companies' read: each more connection
    // reading fills a page cache of its own).
    let mut reader = Reader::new(db).await?;
    let mut bounds = Vec::new();
    let mut after = String::new();
    loop {
        let page = spans(&mut reader, tenant, basis, &after).await?;
        let full = page.len() == PAGE;
        after = last_key(db, page.iter().map(|r| r.0.as_str()));
        add_spans(&mut out, page)?;
        if !full {
            break;
        }
        bounds.push(after.clone());
    }
    for (lo, hi) in ranges(bounds) {
        for (company, revenue) in window_sums(&mut reader, tenant, basis, from, to, lo, hi).await? {
            out.entry(company).or_default().revenue = revenue;
        }
    }
    Ok(out)
}

/// Consecutive ranges (lo, hi] of company ids cut at `bounds` (None: open).
fn ranges(bounds: Vec<String>) -> Vec<(Option<String>, Option<String>)> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lo = None;
    for b in bounds {
        out.push((lo, Some(b.clone())));
        lo = Some(b);
    }
    out.push((lo, None));
    out
}

/// Companies a PostgreSQL range sums at most.
const PG_RANGE: i64 = 250_000;

/// Company ids that cut the companies with spans into [`PARALLEL_RANGES`] ranges (more,
/// of at most [`PG_RANGE`], for larger tenants), in one pass of the span table's key.
async fn pg_bounds(reader: &mut Reader, tenant: &TenantId, basis: Basis) -> Result<Vec<String>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT COUNT(*) AS c0 FROM purchase_span WHERE tenant_id = {} AND table_name = {}",
            ph(1),
            ph(2)
        )
    };
    let count: Vec<(i64,)> = fetch_packed!(reader, build, 1, [tenant.as_str(), basis.table()])?;
    let n = count.first().map_or(0, |c| c.0);
    let parts = (n + PG_RANGE - 1) / PG_RANGE;
    let parts = parts.max(PARALLEL_RANGES as i64);
    let step = (n / parts).max(1);
    if n < 2 * step {
        return Ok(Vec::new());
    }
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT c0 FROM (SELECT company_ref AS c0, row_number() OVER (ORDER BY company_ref) AS r \
             FROM purchase_span WHERE tenant_id = {} AND table_name = {}) AS k \
             WHERE r % {step} = 0 AND r <= {} ORDER BY c0",
            ph(1),
            ph(2),
            (parts - 1) * step
        )
    };
    let bounds: Vec<(String,)> = fetch_packed!(reader, build, 1, [tenant.as_str(), basis.table()])?;
    Ok(bounds.into_iter().map(|b| b.0).collect())
}

/// Every company's first and last purchase days (all pages of [`spans`]).
async fn all_spans(db: &Db, tenant: &TenantId, basis: Basis) -> Result<Vec<(String, i32, i32)>> {
    let mut out = Vec::new();
    let mut after = String::new();
    let mut reader = Reader::new(db).await?;
    loop {
        let page = spans(&mut reader, tenant, basis, &after).await?;
        let full = page.len() == PAGE;
        after = last_key(db, page.iter().map(|r| r.0.as_str()));
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Ranges of the revenue sum run at a time on PostgreSQL (one connection each): the
/// machine's two cores.
const PARALLEL_RANGES: usize = 2;

/// A page of companies' first and last purchase days in `purchase_span`, by company id,
/// after `after`.
async fn spans(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
    after: &str,
) -> Result<Vec<(String, i32, i32)>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT company_ref AS c0, first_on AS c1, last_on AS c2 FROM purchase_span \
             WHERE tenant_id = {} AND table_name = {} AND company_ref > {} \
             ORDER BY company_ref LIMIT {PAGE}",
            ph(1),
            ph(2),
            ph(3)
        )
    };
    fetch_packed!(reader, build, 3, [tenant.as_str(), basis.table(), after])
}

/// The revenue per company of `basis` in days [from, to], companies in (lo, hi].
#[allow(clippy::too_many_arguments)]
async fn window_sums(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
    from: i32,
    to: i32,
    lo: Option<String>,
    hi: Option<String>,
) -> Result<Vec<(String, i64)>> {
    let build = |ph: Ph<'_>| {
        let mut sql = format!(
            "SELECT company_ref AS c0, CAST(SUM(amount) AS BIGINT) AS c1 FROM staged_record \
             WHERE tenant_id = {} AND table_name = {} AND amount IS NOT NULL \
             AND issued_on BETWEEN {} AND {}",
            ph(1),
            ph(2),
            ph(3),
            ph(4)
        );
        let mut n = 4;
        if lo.is_some() {
            n += 1;
            sql += &format!(" AND company_ref > {}", ph(n));
        }
        if hi.is_some() {
            n += 1;
            sql += &format!(" AND company_ref <= {}", ph(n));
        }
        sql + " GROUP BY company_ref"
    };
    // In a block of its own: the SQLite read returns its error early (`?`), and it too
    // must get the message below.
    let rows: Result<Vec<(String, i64)>> = async {
        match (&lo, &hi) {
            (Some(lo), Some(hi)) => fetch_packed!(
                reader,
                build,
                2,
                [
                    tenant.as_str(),
                    basis.table(),
                    from,
                    to,
                    lo.as_str(),
                    hi.as_str()
                ]
            ),
            (Some(b), None) | (None, Some(b)) => {
                fetch_packed!(
                    reader,
                    build,
                    2,
                    [tenant.as_str(), basis.table(), from, to, b.as_str()]
                )
            }
            (None, None) => {
                fetch_packed!(reader, build, 2, [tenant.as_str(), basis.table(), from, to])
            }
        }
    }
    .await;
    let rows = rows.map_err(|e| match e {
        AppError::Database(e)
            if e.to_string().contains("overflow") || e.to_string().contains("out of range") =>
        {
            AppError::Internal(anyhow::anyhow!(
                "a company's revenue is beyond 922 trillion: check the ERP's {} totals ({e})",
                basis.table()
            ))
        }
        other => other,
    })?;
    Ok(rows)
}

fn day(n: Option<i32>) -> Result<Option<NaiveDate>> {
    n.map(|n| {
        from_day_number(i64::from(n))
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored day {n} is corrupt")))
    })
    .transpose()
}

fn date(s: Option<String>) -> Result<Option<NaiveDate>> {
    s.map(|s| {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored date {s:?} is corrupt: {e}")))
    })
    .transpose()
}

/// A live (not deleted) staged company: what categorize needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCompany {
    /// External id.
    pub external_id: String,
    /// The staged version's content hash.
    pub content_hash: i64,
    /// Name.
    pub name: String,
    /// Document.
    pub document: String,
    /// Its portfolio as stored, or else its seller's external id; None without a seller.
    pub portfolio: Option<String>,
    /// Its stored categories, when it has some.
    pub stored: Option<Stored>,
}

/// A staged company (`s`) the CRM has: live, or deleted in the ERP with its deletion
/// held by the delete guard or approved and not yet applied. Until a deletion is applied
/// the company keeps its categories, and its history gains nothing from the outage.
const IN_THE_CRM: &str = "(NOT s.deleted OR EXISTS (SELECT 1 FROM pending_delete p \
     WHERE p.tenant_id = s.tenant_id AND p.table_name = 'company' \
     AND p.external_id = s.external_id AND p.state IN ('HELD', 'APPROVED')))";

/// Every staged company of the tenant the CRM has ([`IN_THE_CRM`]) with its stored
/// categories.
///
/// Page by page (by external id): the staged companies' ids and content hashes, and the
/// stored categories of the same id range, are two ordered range reads merged here (a
/// join would look every company's category up one by one, which cost as much as the
/// whole revenue scan). The JSON fields are read only for companies whose staged version
/// differs from the one their categories were made from; the others' name, document and
/// portfolio come from their categories. A tenant without stored categories (its first
/// categorization) reads every company's fields with its id ([`first_companies`]).
pub async fn live_companies(db: &Db, tenant: &TenantId) -> Result<Vec<LiveCompany>> {
    let staged = |ph: Ph<'_>| {
        format!(
            "SELECT s.external_id AS c0, s.content_hash AS c1, \
             CASE WHEN s.deleted THEN 1 ELSE 0 END AS c2 FROM staged_record s \
             WHERE s.tenant_id = {} AND s.table_name = 'company' AND {IN_THE_CRM} \
             AND s.external_id > {} ORDER BY s.external_id LIMIT {PAGE}",
            ph(1),
            ph(2),
        )
    };
    let stored = |ph: Ph<'_>| {
        format!(
            "SELECT external_id AS c0, company_hash AS c1, name AS c2, document AS c3, \
             portfolio AS c4, abc_class AS c5, lifecycle AS c6, fingerprint AS c7 \
             FROM company_category WHERE tenant_id = {} AND external_id > {} \
             AND external_id <= {} ORDER BY external_id",
            ph(1),
            ph(2),
            ph(3),
        )
    };
    type StoredRow = (
        String,
        Option<i64>,
        String,
        String,
        String,
        Option<String>,
        String,
        i64,
    );
    if !has_categories(db, tenant).await? {
        return first_companies(db, tenant).await;
    }
    let mut reader = Reader::new(db).await?;
    let mut out: Vec<LiveCompany> = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<(String, i64, i64)> =
            fetch_packed!(&mut reader, staged, 3, [tenant.as_str(), after.as_str()])?;
        let full = page.len() == PAGE;
        let last = last_key(db, page.iter().map(|r| r.0.as_str()));
        let categories: Vec<StoredRow> = fetch_packed!(
            &mut reader,
            stored,
            8,
            [tenant.as_str(), after.as_str(), last.as_str()]
        )?;
        let mut categories: HashMap<String, StoredRow> =
            categories.into_iter().map(|c| (c.0.clone(), c)).collect();
        let mut changed = Vec::new();
        out.reserve(page.len());
        for (external_id, content_hash, held) in page {
            let category = categories.remove(&external_id);
            // A company whose deletion is held keeps what it had: its categories, made
            // from the version the CRM still has (the staged tombstone has no fields).
            // One never categorized stays so until the deletion is resolved.
            let held = held != 0;
            let content_hash = match &category {
                None if held => continue,
                Some((_, Some(hash), ..)) if held => *hash,
                _ => content_hash,
            };
            let (stored, current) = match category {
                Some((_, hash, name, document, portfolio, class, lifecycle, fingerprint)) => {
                    let (abc_class, lifecycle) = stored_classes(&external_id, class, &lifecycle)?;
                    let stored = Stored {
                        abc_class,
                        lifecycle,
                        fingerprint,
                        company_hash: hash,
                    };
                    // The categories were made from this very version: its fields are theirs.
                    let current =
                        (held || hash == Some(content_hash)).then_some((name, document, portfolio));
                    (Some(stored), current)
                }
                None => (None, None),
            };
            let (name, document, portfolio) = match current {
                Some((name, document, portfolio)) => (name, document, Some(portfolio)),
                None => {
                    changed.push(out.len());
                    (String::new(), String::new(), None)
                }
            };
            out.push(LiveCompany {
                content_hash,
                name,
                document,
                // The stored portfolio, or the staged seller_id (None without one).
                portfolio: portfolio.filter(|p| !p.is_empty()),
                stored,
                external_id,
            });
        }
        fill_fields(db, &mut reader, tenant, &after, &last, &mut out, &changed).await?;
        after = last;
        if !full {
            return Ok(out);
        }
    }
}

/// Fills name, document and portfolio (the seller) from the staged JSON fields of the
/// companies at `changed` in `out`, all in the id range (`after`, `last`]: by id when they
/// are few, else by one range read.
async fn fill_fields(
    db: &Db,
    reader: &mut Reader,
    tenant: &TenantId,
    after: &str,
    last: &str,
    out: &mut [LiveCompany],
    changed: &[usize],
) -> Result<()> {
    /// Up to this many changed companies in a page are read by id.
    const BY_ID: usize = 1_000;
    if changed.is_empty() {
        return Ok(());
    }
    let (source, [name, document, seller]) = json_fields(db);
    let columns = format!(
        "SELECT external_id AS c0, {name} AS c1, {document} AS c2, {seller} AS c3 \
         FROM {source} WHERE tenant_id = "
    );
    type Fields = (String, Option<String>, Option<String>, Option<String>);
    let mut rows: Vec<Fields> = Vec::new();
    if changed.len() <= BY_ID {
        let ids: Vec<&str> = changed
            .iter()
            .map(|&i| out[i].external_id.as_str())
            .collect();
        let list = serde_json::to_string(&ids)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("ids do not encode: {e}")))?;
        let build = |ph: Ph<'_>| match db.backend() {
            DbBackend::Postgres => format!(
                "{columns}{} AND table_name = 'company' AND external_id IN \
                 (SELECT jsonb_array_elements_text(CAST({} AS jsonb)))",
                ph(1),
                ph(2)
            ),
            _ => format!(
                "{columns}{} AND table_name = 'company' AND external_id IN \
                 (SELECT value FROM json_each({}))",
                ph(1),
                ph(2)
            ),
        };
        rows.extend(fetch_packed!(
            reader,
            build,
            4,
            [tenant.as_str(), list.as_str()]
        )?);
    } else {
        let build = |ph: Ph<'_>| {
            format!(
                "{columns}{} AND table_name = 'company' AND external_id > {} \
                 AND external_id <= {}",
                ph(1),
                ph(2),
                ph(3)
            )
        };
        rows.extend(fetch_packed!(
            reader,
            build,
            4,
            [tenant.as_str(), after, last]
        )?);
    }
    let mut by_id: HashMap<String, Fields> = rows.into_iter().map(|r| (r.0.clone(), r)).collect();
    for &i in changed {
        let c = &mut out[i];
        if let Some((_, name, document, seller)) = by_id.remove(&c.external_id) {
            (c.name, c.document, c.portfolio) = staged_fields(name, document, seller);
        }
    }
    Ok(())
}

/// Whether the tenant has stored categories at all (none before its first
/// categorization).
async fn has_categories(db: &Db, tenant: &TenantId) -> Result<bool> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT 1 FROM company_category WHERE tenant_id = {} LIMIT 1",
            ph(1)
        )
    };
    let rows = fetch_all!(db, build, [tenant.as_str()], |r| col::<_, i32>(r, 0))?;
    Ok(!rows.is_empty())
}

/// Where a staged company's fields are read from, and its name, document and seller as
/// the database extracts them there. PostgreSQL parses each row's JSON once (a lateral
/// subquery that `OFFSET 0` keeps from being inlined into every `->>`; three casts cost
/// 0.77 s for 200 000 companies, one 0.32 s); SQLite caches the parse itself.
fn json_fields(db: &Db) -> (&'static str, [String; 3]) {
    match db.backend() {
        DbBackend::Postgres => (
            "staged_record, LATERAL (SELECT fields::jsonb AS j OFFSET 0) AS parsed",
            ["name", "document", "seller_id"].map(|name| format!("j->>'{name}'")),
        ),
        _ => (
            "staged_record",
            ["name", "document", "seller_id"]
                .map(|name| format!("CAST(json_extract(fields, '$.{name}') AS TEXT)")),
        ),
    }
}

/// A staged company's name, document and portfolio as its categories take them: a
/// missing name or document empty, an empty seller no portfolio.
fn staged_fields(
    name: Option<String>,
    document: Option<String>,
    seller: Option<String>,
) -> (String, String, Option<String>) {
    (
        name.unwrap_or_default(),
        document.unwrap_or_default(),
        seller.filter(|p| !p.is_empty()),
    )
}

/// [`live_companies`] of a tenant without stored categories: every company's fields are
/// needed, so each page reads them with the ids (one range read, no category read).
async fn first_companies(db: &Db, tenant: &TenantId) -> Result<Vec<LiveCompany>> {
    let (source, [name, document, seller]) = json_fields(db);
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT external_id AS c0, content_hash AS c1, {name} AS c2, {document} AS c3, \
             {seller} AS c4 FROM {source} \
             WHERE tenant_id = {} AND table_name = 'company' AND NOT deleted \
             AND external_id > {} ORDER BY external_id LIMIT {PAGE}",
            ph(1),
            ph(2),
        )
    };
    type Row = (String, i64, Option<String>, Option<String>, Option<String>);
    let mut reader = Reader::new(db).await?;
    let mut out: Vec<LiveCompany> = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<Row> =
            fetch_packed!(&mut reader, build, 5, [tenant.as_str(), after.as_str()])?;
        let full = page.len() == PAGE;
        after = last_key(db, page.iter().map(|r| r.0.as_str()));
        out.reserve(page.len());
        out.extend(
            page.into_iter()
                .map(|(external_id, content_hash, name, document, seller)| {
                    let (name, document, portfolio) = staged_fields(name, document, seller);
                    LiveCompany {
                        external_id,
                        content_hash,
                        name,
                        document,
                        portfolio,
                        stored: None,
                    }
                }),
        );
        if !full {
            return Ok(out);
        }
    }
}

/// The companies with stored categories that are no longer live (deleted from the CRM);
/// `live_with_categories` is how many live ones have categories, so the search only runs
/// when some are missing.
pub async fn categorized_but_gone(
    db: &Db,
    tenant: &TenantId,
    live_with_categories: usize,
) -> Result<Vec<String>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT COUNT(*) FROM company_category WHERE tenant_id = {}",
            ph(1)
        )
    };
    let total = fetch_all!(db, build, [tenant.as_str()], |r| col::<_, i64>(r, 0))?;
    if total.first().copied().unwrap_or(0) as usize <= live_with_categories {
        return Ok(Vec::new());
    }
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT c.external_id FROM company_category c WHERE c.tenant_id = {} AND NOT EXISTS \
             (SELECT 1 FROM staged_record s WHERE s.tenant_id = c.tenant_id AND s.table_name = 'company' \
             AND s.external_id = c.external_id AND {IN_THE_CRM})",
            ph(1)
        )
    };
    fetch_all!(db, build, [tenant.as_str()], |r| col::<_, String>(r, 0))
}

const CATEGORY_COLUMNS: &str = "external_id, name, document, abc_class, lifecycle, portfolio, \
    revenue, first_purchase, last_purchase, company_hash";

fn category_values(c: &Category) -> [Value; 10] {
    [
        c.external_id.as_str().into(),
        c.name.as_str().into(),
        c.document.as_str().into(),
        c.abc_class.map(|x| x.as_str().to_owned()).into(),
        c.lifecycle.as_str().into(),
        c.portfolio.as_str().into(),
        c.revenue.into(),
        c.first_purchase.map(|d| d.to_string()).into(),
        c.last_purchase.map(|d| d.to_string()).into(),
        c.company_hash.into(),
    ]
}

fn category_from(r: &QueryResult) -> Result<Category> {
    let external_id: String = r.try_get("", "external_id")?;
    let lifecycle: String = r.try_get("", "lifecycle")?;
    let (abc_class, lifecycle) =
        stored_classes(&external_id, r.try_get("", "abc_class")?, &lifecycle)?;
    Ok(Category {
        external_id,
        name: r.try_get("", "name")?,
        document: r.try_get("", "document")?,
        abc_class,
        lifecycle,
        portfolio: r.try_get("", "portfolio")?,
        revenue: r.try_get("", "revenue")?,
        first_purchase: date(r.try_get("", "first_purchase")?)?,
        last_purchase: date(r.try_get("", "last_purchase")?)?,
        company_hash: r.try_get("", "company_hash")?,
    })
}

/// A stored class and lifecycle, read back (Internal error naming the company when the
/// stored text is none of ours).
fn stored_classes(
    external_id: &str,
    class: Option<String>,
    lifecycle: &str,
) -> Result<(Option<AbcClass>, Lifecycle)> {
    let corrupt = || {
        AppError::Internal(anyhow::anyhow!(
            "stored category of {external_id:?} is corrupt"
        ))
    };
    let class = match class {
        Some(c) => Some(AbcClass::parse(&c).ok_or_else(corrupt)?),
        None => None,
    };
    Ok((class, Lifecycle::parse(lifecycle).ok_or_else(corrupt)?))
}

/// What runs need of the tenant's current categories, by external id.
pub async fn stored(db: &Db, tenant: &TenantId) -> Result<HashMap<String, Stored>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT external_id, abc_class, lifecycle, fingerprint, company_hash FROM company_category \
             WHERE tenant_id = {}",
            ph(1)
        )
    };
    let rows = fetch_all!(db, build, [tenant.as_str()], |r| {
        let id: String = col(r, 0)?;
        let class: Option<String> = col(r, 1)?;
        let lifecycle: String = col(r, 2)?;
        let (abc_class, lifecycle) = stored_classes(&id, class, &lifecycle)?;
        let stored = Stored {
            abc_class,
            lifecycle,
            fingerprint: col(r, 3)?,
            company_hash: col(r, 4)?,
        };
        Ok((id, stored))
    })?;
    Ok(rows.into_iter().collect())
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this class; `Some(None)` for the companies without one.
    pub class: Option<Option<AbcClass>>,
    /// Only this lifecycle.
    pub lifecycle: Option<Lifecycle>,
    /// Only this portfolio.
    pub portfolio: Option<String>,
}

/// A page of the tenant's categorized companies by external id, after `after`.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    filter: &Filter,
    after: &str,
    limit: u64,
) -> Result<Vec<Category>> {
    let mut p = Params::new(db.backend(), 5);
    let mut sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM company_category WHERE tenant_id = {} AND external_id > {}",
        p.push(tenant.as_str()),
        p.push(after)
    );
    match filter.class {
        Some(Some(c)) => sql += &format!(" AND abc_class = {}", p.push(c.as_str())),
        Some(None) => sql += " AND abc_class IS NULL",
        None => {}
    }
    if let Some(l) = filter.lifecycle {
        sql += &format!(" AND lifecycle = {}", p.push(l.as_str()));
    }
    if let Some(pf) = &filter.portfolio {
        sql += &format!(" AND portfolio = {}", p.push(pf.as_str()));
    }
    sql += &format!(" ORDER BY external_id LIMIT {limit}");
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .iter()
        .map(category_from)
        .collect()
}

/// Companies a write transaction covers: each transaction keeps a company's category and
/// its history entry together, and stays short enough not to hold SQLite's writer long.
const COMPANIES_PER_TXN: usize = 10_000;
/// Rows per multi-row statement (17 columns stay under SQLite's 32 766 bind limit).
const ROWS_PER_STATEMENT: usize = 1_800;

/// Which run applies categories, and when (the history's run, instant and civil date).
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// The run whose classification it is.
    pub run_id: &'a str,
    /// When it is applied.
    pub at: DateTime<Utc>,
    /// That instant's civil date in the tenant's zone.
    pub on: NaiveDate,
}

/// Stores new categories with their history entries, and forgets the categories of
/// companies no longer in the CRM. `new` are the companies without stored categories
/// (categorized for the first time: that first entry of their history is kept on their
/// row, `categorized_*`), `changed` the ones whose stored categories change, with
/// `history` their changes.
pub async fn apply(
    db: &Db,
    tenant: &TenantId,
    stamp: &Stamp<'_>,
    new: &[Category],
    changed: &[Category],
    history: &[CategoryChange],
    removed: &[String],
) -> Result<()> {
    let by_company: HashMap<&str, &CategoryChange> = history
        .iter()
        .map(|h| (h.external_id.as_str(), h))
        .collect();
    // The first entries of forgotten companies' histories become rows of their own.
    keep_first_entries(db, tenant, removed).await?;
    if let Pool::Postgres(pool) = db.pool() {
        return pg::apply(pool, tenant, stamp, new, changed, &by_company, removed).await;
    }
    // A first categorization's history entry is kept on its row: `new` writes no
    // history. A new company that has a row after all fails the write (the run holds
    // the tenant's lease, so nothing else wrote it).
    for chunk in new.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        write_categories(&txn, tenant, stamp, chunk, OnConflict::Fail).await?;
        txn.commit().await?;
    }
    for chunk in changed.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        write_categories(&txn, tenant, stamp, chunk, OnConflict::Update).await?;
        let changes: Vec<&CategoryChange> = chunk
            .iter()
            .filter_map(|c| by_company.get(c.external_id.as_str()).copied())
            .collect();
        insert_history(&txn, tenant, &changes).await?;
        txn.commit().await?;
    }
    for chunk in removed.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        for ids in chunk.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new(txn.get_database_backend(), ids.len() + 1);
            let t = p.push(tenant.as_str());
            let list: Vec<String> = ids.iter().map(|id| p.push(id.as_str())).collect();
            let sql = format!(
                "DELETE FROM company_category WHERE tenant_id = {t} AND external_id IN ({})",
                list.join(", ")
            );
            txn.execute(p.statement(sql)).await?;
        }
        txn.commit().await?;
    }
    Ok(())
}

/// Writes, as `category_change` rows, the first history entry of each of `ids` that keeps
/// it on its category row (before the row is deleted).
async fn keep_first_entries(db: &Db, tenant: &TenantId, ids: &[String]) -> Result<()> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let txn = db.begin_write().await?;
        let mut first = Vec::new();
        for id in chunk {
            if let Some(entry) = first_entry(&*txn, tenant, id).await? {
                first.push(entry);
            }
        }
        if first.is_empty() {
            continue;
        }
        insert_history(&txn, tenant, &first.iter().collect::<Vec<_>>()).await?;
        // Kept once: the row no longer holds it (a retried removal writes it again never).
        let mut p = Params::new(txn.get_database_backend(), first.len() + 1);
        let t = p.push(tenant.as_str());
        let list: Vec<String> = first
            .iter()
            .map(|e| p.push(e.external_id.as_str()))
            .collect();
        let sql = format!(
            "UPDATE company_category SET categorized_run_id = NULL WHERE tenant_id = {t} \
             AND external_id IN ({})",
            list.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
        txn.commit().await?;
    }
    Ok(())
}

/// The first entry of a company's history when its category row keeps it: categorized
/// from nothing into the classes before its first change (or its current ones).
async fn first_entry<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    external_id: &str,
) -> Result<Option<CategoryChange>> {
    let mut p = Params::new(conn.get_database_backend(), 2);
    let sql = format!(
        "SELECT abc_class, lifecycle, categorized_run_id, categorized_on, categorized_at \
         FROM company_category WHERE tenant_id = {} AND external_id = {} \
         AND categorized_run_id IS NOT NULL",
        p.push(tenant.as_str()),
        p.push(external_id)
    );
    let Some(row) = conn.query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let at: DateTime<Utc> = row.try_get("", "categorized_at")?;
    let lifecycle: String = row.try_get("", "lifecycle")?;
    let (class, lifecycle) =
        stored_classes(external_id, row.try_get("", "abc_class")?, &lifecycle)?;
    let mut classes = (class, Some(lifecycle));
    // The classes it was first given are those its first later change started from.
    let mut p = Params::new(conn.get_database_backend(), 3);
    let sql = format!(
        "SELECT abc_from, lifecycle_from FROM category_change WHERE tenant_id = {} \
         AND external_id = {} AND changed_at > {} ORDER BY id LIMIT 1",
        p.push(tenant.as_str()),
        p.push(external_id),
        p.push(at)
    );
    if let Some(r) = conn.query_one(p.statement(sql)).await? {
        classes = (
            r.try_get::<Option<String>>("", "abc_from")?
                .as_deref()
                .and_then(AbcClass::parse),
            r.try_get::<Option<String>>("", "lifecycle_from")?
                .as_deref()
                .and_then(Lifecycle::parse),
        );
    }
    Ok(Some(CategoryChange {
        external_id: external_id.to_owned(),
        run_id: row.try_get("", "categorized_run_id")?,
        changed_on: date(row.try_get("", "categorized_on")?)?.unwrap_or_default(),
        changed_at: at,
        abc_from: None,
        abc_to: classes.0,
        lifecycle_from: None,
        lifecycle_to: classes.1,
    }))
}

/// What [`write_categories`] does with a company that has stored categories already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnConflict {
    /// Fails the statement (and so its transaction): the rows are first categorizations.
    Fail,
    /// Updates its categories; its first categorization (`categorized_*`) stays.
    Update,
}

/// Writes categories in multi-row statements inside `txn`, each row with its run's
/// stamp and, for a row inserted, its first categorization. Each statement is built
/// while the database runs the one before.
async fn write_categories(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    stamp: &Stamp<'_>,
    rows: &[Category],
    on_conflict: OnConflict,
) -> Result<()> {
    // The first categorization (categorized_*) is only ever inserted.
    let updates: Vec<String> = CATEGORY_COLUMNS
        .split(", ")
        .skip(1)
        .chain(["run_id", "updated_at", "fingerprint"])
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let build = |chunk: &[Category]| {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 11 + 6);
        // The run's values once per statement, each row's own in its VALUES tuple.
        let run = [
            p.push(tenant.as_str()),
            p.push(stamp.run_id),
            p.push(stamp.at),
            p.push(stamp.run_id),
            p.push(stamp.on.to_string()),
            p.push(stamp.at),
        ];
        let tuples: Vec<String> = chunk
            .iter()
            .map(|c| {
                let mut v: Vec<String> =
                    category_values(c).into_iter().map(|x| p.push(x)).collect();
                v.push(p.push(c.fingerprint()));
                format!("({})", v.join(", "))
            })
            .collect();
        // WHERE true: SQLite would read the ON CONFLICT as a join's ON without it.
        let mut sql = format!(
            "INSERT INTO company_category (tenant_id, run_id, updated_at, categorized_run_id, \
             categorized_on, categorized_at, {CATEGORY_COLUMNS}, fingerprint) \
             SELECT {}, v.* FROM (VALUES {}) AS v WHERE true",
            run.join(", "),
            tuples.join(", ")
        );
        if on_conflict == OnConflict::Update {
            sql += &format!(
                " ON CONFLICT (tenant_id, external_id) DO UPDATE SET {}",
                updates.join(", ")
            );
        }
        p.statement(sql)
    };
    let mut chunks = rows.chunks(ROWS_PER_STATEMENT);
    let mut next = chunks.next().map(build);
    while let Some(statement) = next.take() {
        let (done, following) =
            tokio::join!(txn.execute(statement), async { chunks.next().map(build) });
        done?;
        next = following;
    }
    Ok(())
}

async fn insert_history(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    rows: &[&CategoryChange],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() * 9);
        let tuples: Vec<String> = chunk
            .iter()
            .map(|h| {
                let v = [
                    p.push(tenant.as_str()),
                    p.push(h.external_id.as_str()),
                    p.push(h.run_id.as_str()),
                    p.push(h.changed_on.to_string()),
                    p.push(h.changed_at),
                    p.push(h.abc_from.map(|c| c.as_str().to_owned())),
                    p.push(h.abc_to.map(|c| c.as_str().to_owned())),
                    p.push(h.lifecycle_from.map(|l| l.as_str().to_owned())),
                    p.push(h.lifecycle_to.map(|l| l.as_str().to_owned())),
                ];
                format!("({})", v.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO category_change (tenant_id, external_id, run_id, changed_on, changed_at, \
             abc_from, abc_to, lifecycle_from, lifecycle_to) VALUES {}",
            tuples.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}

/// A company's categorization history, oldest first: its stored changes, and its first
/// categorization where its category row keeps it.
pub async fn history(db: &Db, tenant: &TenantId, external_id: &str) -> Result<Vec<CategoryChange>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT external_id, run_id, changed_on, changed_at, abc_from, abc_to, lifecycle_from, \
         lifecycle_to FROM category_change WHERE tenant_id = {} AND external_id = {} ORDER BY id",
        p.push(tenant.as_str()),
        p.push(external_id)
    );
    let class = |s: Option<String>| s.as_deref().and_then(AbcClass::parse);
    let life = |s: Option<String>| s.as_deref().and_then(Lifecycle::parse);
    let mut out = db
        .conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            Ok(CategoryChange {
                external_id: r.try_get("", "external_id")?,
                run_id: r.try_get("", "run_id")?,
                changed_on: date(r.try_get("", "changed_on")?)?.unwrap_or_default(),
                changed_at: r.try_get("", "changed_at")?,
                abc_from: class(r.try_get("", "abc_from")?),
                abc_to: class(r.try_get("", "abc_to")?),
                lifecycle_from: life(r.try_get("", "lifecycle_from")?),
                lifecycle_to: life(r.try_get("", "lifecycle_to")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(first) = first_entry(db.conn(), tenant, external_id).await? {
        // Before the changes made after it (earlier ones belong to an earlier life of the
        // company, before its categories were forgotten).
        let at = out
            .iter()
            .position(|c| c.changed_at > first.changed_at)
            .unwrap_or(out.len());
        out.insert(at, first);
    }
    Ok(out)
}

/// One company's current categories.
pub async fn category(db: &Db, tenant: &TenantId, external_id: &str) -> Result<Option<Category>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM company_category WHERE tenant_id = {} AND external_id = {}",
        p.push(tenant.as_str()),
        p.push(external_id)
    );
    db.conn()
        .query_one(p.statement(sql))
        .await?
        .as_ref()
        .map(category_from)
        .transpose()
}

/// Keeps a classification held by the shift guard: its report and every company's new
/// category. An earlier held classification of the tenant is superseded.
pub async fn hold(db: &Db, tenant: &TenantId, report: &AbcReport, rows: &[Category]) -> Result<()> {
    supersede_held(db, tenant, report.computed_at).await?;
    if let Pool::Postgres(pool) = db.pool() {
        pg::hold(pool, tenant, &report.run_id, rows).await?;
        return insert_report(db, tenant, report).await;
    }
    for chunk in rows.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        for part in chunk.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new(txn.get_database_backend(), part.len() * 12);
            let tuples: Vec<String> = part
                .iter()
                .map(|c| {
                    let mut v = vec![p.push(report.run_id.as_str()), p.push(tenant.as_str())];
                    v.extend(category_values(c).into_iter().map(|x| p.push(x)));
                    format!("({})", v.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO abc_held (run_id, tenant_id, {CATEGORY_COLUMNS}) VALUES {} \
                 ON CONFLICT (run_id, external_id) DO NOTHING",
                tuples.join(", ")
            );
            txn.execute(p.statement(sql)).await?;
        }
        txn.commit().await?;
    }
    insert_report(db, tenant, report).await
}

/// The companies' categories of a held classification.
pub async fn held_rows(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Vec<Category>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT {CATEGORY_COLUMNS} FROM abc_held WHERE tenant_id = {} AND run_id = {}",
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .iter()
        .map(category_from)
        .collect()
}

/// Marks every held classification of the tenant SUPERSEDED (a later one replaces it)
/// and drops its rows.
pub async fn supersede_held(db: &Db, tenant: &TenantId, now: DateTime<Utc>) -> Result<u64> {
    let held = held_report_ids(db, tenant).await?;
    for run in &held {
        resolve(db, tenant, run, ReportState::Superseded, now).await?;
    }
    Ok(held.len() as u64)
}

async fn held_report_ids(db: &Db, tenant: &TenantId) -> Result<Vec<String>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT run_id FROM abc_report WHERE tenant_id = {} AND state = 'HELD'",
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "run_id").map_err(Into::into))
        .collect()
}

/// Ends a held classification (APPROVED, DISCARDED or SUPERSEDED) and drops its rows;
/// false when it was not held any more.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    run_id: &str,
    state: ReportState,
    now: DateTime<Utc>,
) -> Result<bool> {
    let txn = db.begin_write().await?;
    let mut p = Params::new(txn.get_database_backend(), 4);
    let sql = format!(
        "UPDATE abc_report SET state = {}, resolved_at = {} WHERE tenant_id = {} AND run_id = {} \
         AND state = 'HELD'",
        p.push(state.as_str()),
        p.push(now),
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    let n = txn.execute(p.statement(sql)).await?.rows_affected();
    let mut p = Params::new(txn.get_database_backend(), 2);
    let sql = format!(
        "DELETE FROM abc_held WHERE tenant_id = {} AND run_id = {}",
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    txn.execute(p.statement(sql)).await?;
    txn.commit().await?;
    Ok(n > 0)
}

/// Stores a run's report.
pub async fn insert_report(db: &Db, tenant: &TenantId, r: &AbcReport) -> Result<()> {
    let summary: Vec<serde_json::Value> = r
        .summary
        .iter()
        .map(|s| {
            json!({
                "class": s.class.map(AbcClass::as_str),
                "companies": s.companies,
                "revenue": s.revenue.to_string(),
                "share": s.share.to_string(),
            })
        })
        .collect();
    let curve: Vec<[String; 2]> = r
        .curve
        .iter()
        .map(|(c, v)| [c.to_string(), v.to_string()])
        .collect();
    let mut p = Params::new(db.backend(), 16);
    let v = [
        p.push(r.run_id.as_str()),
        p.push(tenant.as_str()),
        p.push(r.computed_at),
        p.push(r.as_of.to_string()),
        p.push(r.basis.table()),
        p.push(r.window_from.to_string()),
        p.push(r.window_to.to_string()),
        p.push(r.a_threshold.to_string()),
        p.push(r.b_threshold.to_string()),
        p.push(serde_json::Value::from(summary).to_string()),
        p.push(json!(curve).to_string()),
        p.push(i64::try_from(r.companies).unwrap_or(i64::MAX)),
        p.push(i64::try_from(r.changed).unwrap_or(i64::MAX)),
        p.push(i64::try_from(r.base).unwrap_or(i64::MAX)),
        p.push(r.state.as_str()),
    ];
    let sql = format!(
        "INSERT INTO abc_report (run_id, tenant_id, computed_at, as_of, basis, window_from, window_to, \
         a_threshold, b_threshold, summary, curve, companies, changed, base, state) VALUES ({}) \
         ON CONFLICT (run_id) DO UPDATE SET state = excluded.state",
        v.join(", ")
    );
    let txn = db.begin_write().await?;
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
}

/// The classification in force (the last one applied or approved), if any.
pub async fn current_report(db: &Db, tenant: &TenantId) -> Result<Option<AbcReport>> {
    report_where(db, tenant, "state IN ('APPLIED', 'APPROVED')", None).await
}

/// The classification waiting for ResolveAbcShift, if any.
pub async fn held_report(db: &Db, tenant: &TenantId) -> Result<Option<AbcReport>> {
    report_where(db, tenant, "state = 'HELD'", None).await
}

/// The report of one run.
pub async fn report(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Option<AbcReport>> {
    report_where(db, tenant, "1 = 1", Some(run_id)).await
}

async fn report_where(
    db: &Db,
    tenant: &TenantId,
    condition: &str,
    run_id: Option<&str>,
) -> Result<Option<AbcReport>> {
    let mut p = Params::new(db.backend(), 2);
    let mut sql = format!(
        "SELECT run_id, computed_at, as_of, basis, window_from, window_to, a_threshold, b_threshold, \
         summary, curve, companies, changed, base, state FROM abc_report WHERE tenant_id = {} AND {condition}",
        p.push(tenant.as_str())
    );
    if let Some(run) = run_id {
        sql += &format!(" AND run_id = {}", p.push(run));
    }
    sql += " ORDER BY computed_at DESC LIMIT 1";
    let Some(r) = db.conn().query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let corrupt = |what: &str| AppError::Internal(anyhow::anyhow!("stored ABC report: bad {what}"));
    let dec = |s: String, what: &str| s.parse::<Decimal>().map_err(|_| corrupt(what));
    let summary: serde_json::Value = serde_json::from_str(&r.try_get::<String>("", "summary")?)
        .map_err(|_| corrupt("summary"))?;
    let summary = summary
        .as_array()
        .ok_or_else(|| corrupt("summary"))?
        .iter()
        .map(|s| {
            Ok(ClassSummary {
                class: s["class"].as_str().and_then(AbcClass::parse),
                companies: s["companies"].as_u64().unwrap_or(0),
                revenue: s["revenue"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| corrupt("revenue"))?,
                share: s["share"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| corrupt("share"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let curve: Vec<[String; 2]> =
        serde_json::from_str(&r.try_get::<String>("", "curve")?).map_err(|_| corrupt("curve"))?;
    let curve = curve
        .into_iter()
        .map(|[c, v]| Ok((dec(c, "curve")?, dec(v, "curve")?)))
        .collect::<Result<Vec<_>>>()?;
    let day =
        |col: &str| -> Result<NaiveDate> { date(r.try_get("", col)?)?.ok_or_else(|| corrupt(col)) };
    let count =
        |col: &str| -> Result<u64> { Ok(u64::try_from(r.try_get::<i64>("", col)?).unwrap_or(0)) };
    let state: String = r.try_get("", "state")?;
    let basis: String = r.try_get("", "basis")?;
    Ok(Some(AbcReport {
        run_id: r.try_get("", "run_id")?,
        computed_at: r.try_get("", "computed_at")?,
        as_of: day("as_of")?,
        basis: Basis::parse(&basis).ok_or_else(|| corrupt("basis"))?,
        window_from: day("window_from")?,
        window_to: day("window_to")?,
        a_threshold: dec(r.try_get("", "a_threshold")?, "threshold")?,
        b_threshold: dec(r.try_get("", "b_threshold")?, "threshold")?,
        summary,
        curve,
        companies: count("companies")?,
        changed: count("changed")?,
        base: count("base")?,
        state: ReportState::parse(&state).ok_or_else(|| corrupt("state"))?,
    }))
}

/// PostgreSQL writes of many rows: one statement per chunk over arrays (`UNNEST`), which
/// PostgreSQL plans at once, where a multi-row VALUES of 28 000 parameters is re-planned
/// on every execution (`plan_cache_mode = force_custom_plan`).
mod pg {
    use std::collections::HashMap;

    use sqlx::Connection;

    use super::super::pgcopy::{copy_in, Guarded};
    use super::{sqlx_error, Stamp, COMPANIES_PER_TXN};
    use crate::domain::abc::{AbcClass, Category, CategoryChange, Lifecycle};
    use crate::domain::tenant::TenantId;
    use crate::error::Result;

    /// The category columns of `rows` as arrays, in CATEGORY_COLUMNS order.
    struct Columns {
        ids: Vec<String>,
        names: Vec<String>,
        documents: Vec<String>,
        classes: Vec<Option<String>>,
        lifecycles: Vec<String>,
        portfolios: Vec<String>,
        revenues: Vec<i64>,
        firsts: Vec<Option<String>>,
        lasts: Vec<Option<String>>,
        company_hashes: Vec<Option<i64>>,
        fingerprints: Vec<i64>,
    }

    fn columns(rows: &[Category]) -> Columns {
        Columns {
            ids: rows.iter().map(|c| c.external_id.clone()).collect(),
            names: rows.iter().map(|c| c.name.clone()).collect(),
            documents: rows.iter().map(|c| c.document.clone()).collect(),
            classes: rows
                .iter()
                .map(|c| c.abc_class.map(|x| x.as_str().to_owned()))
                .collect(),
            lifecycles: rows
                .iter()
                .map(|c| c.lifecycle.as_str().to_owned())
                .collect(),
            portfolios: rows.iter().map(|c| c.portfolio.clone()).collect(),
            revenues: rows.iter().map(|c| c.revenue).collect(),
            firsts: rows
                .iter()
                .map(|c| c.first_purchase.map(|d| d.to_string()))
                .collect(),
            lasts: rows
                .iter()
                .map(|c| c.last_purchase.map(|d| d.to_string()))
                .collect(),
            company_hashes: rows.iter().map(|c| c.company_hash).collect(),
            fingerprints: rows.iter().map(Category::fingerprint).collect(),
        }
    }

    type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

    /// Binds the columns as `$3` … `$13`, the arrays of [`UNNEST`].
    trait BindColumns<'q> {
        fn bind_columns(self, c: &'q Columns) -> Self;
    }

    impl<'q> BindColumns<'q> for PgQuery<'q> {
        fn bind_columns(self, c: &'q Columns) -> Self {
            self.bind(&c.ids)
                .bind(&c.names)
                .bind(&c.documents)
                .bind(&c.classes)
                .bind(&c.lifecycles)
                .bind(&c.portfolios)
                .bind(&c.revenues)
                .bind(&c.firsts)
                .bind(&c.lasts)
                .bind(&c.company_hashes)
                .bind(&c.fingerprints)
        }
    }

    const UNNEST: &str = "UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
        $8::text[], $9::bigint[], $10::text[], $11::text[], $12::bigint[], $13::bigint[])";

    /// Writes the history entries of `chunk`'s companies with COPY (ids follow the
    /// stream's order).
    async fn copy_history(
        conn: &mut sqlx::PgConnection,
        tenant: &TenantId,
        chunk: &[Category],
        history: &HashMap<&str, &CategoryChange>,
    ) -> Result<()> {
        let entries: Vec<&CategoryChange> = chunk
            .iter()
            .filter_map(|c| history.get(c.external_id.as_str()).copied())
            .collect();
        copy_in(
            conn,
            "COPY category_change (tenant_id, external_id, run_id, changed_on, changed_at, \
             abc_from, abc_to, lifecycle_from, lifecycle_to) FROM STDIN",
            &entries,
            &|out, h| {
                out.text(Some(tenant.as_str()));
                out.text(Some(&h.external_id));
                out.text(Some(&h.run_id));
                out.shown(Some(h.changed_on));
                out.timestamptz(h.changed_at);
                out.text(h.abc_from.map(AbcClass::as_str));
                out.text(h.abc_to.map(AbcClass::as_str));
                out.text(h.lifecycle_from.map(Lifecycle::as_str));
                out.text(h.lifecycle_to.map(Lifecycle::as_str));
            },
        )
        .await
    }

    /// Writes the categories of companies categorized for the first time with COPY, in
    /// one transaction.
    async fn copy_new(
        pool: &sqlx::PgPool,
        tenant: &TenantId,
        stamp: &Stamp<'_>,
        rows: &[Category],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = Guarded::acquire(pool).await?;
        let mut tx = conn.begin().await.map_err(sqlx_error)?;
        copy_in(
            &mut tx,
            "COPY company_category (tenant_id, run_id, external_id, name, document, abc_class, \
             lifecycle, portfolio, revenue, first_purchase, last_purchase, company_hash, \
             fingerprint, updated_at, categorized_run_id, categorized_on, categorized_at) \
             FROM STDIN",
            rows,
            &|out, c| {
                out.text(Some(tenant.as_str()));
                out.text(Some(stamp.run_id));
                out.text(Some(&c.external_id));
                out.text(Some(&c.name));
                out.text(Some(&c.document));
                out.text(c.abc_class.map(AbcClass::as_str));
                out.text(Some(c.lifecycle.as_str()));
                out.text(Some(&c.portfolio));
                out.shown(Some(c.revenue));
                out.shown(c.first_purchase);
                out.shown(c.last_purchase);
                out.shown(c.company_hash);
                out.shown(Some(c.fingerprint()));
                out.timestamptz(stamp.at);
                out.text(Some(stamp.run_id));
                out.shown(Some(stamp.on));
                out.timestamptz(stamp.at);
            },
        )
        .await?;
        tx.commit().await.map_err(sqlx_error)?;
        conn.finish();
        Ok(())
    }

    /// First categorizations from which two COPY streams write them (fewer go in one).
    const TWO_STREAMS_FROM: usize = 4_000;

    /// `new` are companies without stored categories (no row to conflict with: the run
    /// holds the tenant's lease), written with COPY; `changed` have rows, upserted.
    pub(super) async fn apply(
        pool: &sqlx::PgPool,
        tenant: &TenantId,
        stamp: &Stamp<'_>,
        new: &[Category],
        changed: &[Category],
        history: &HashMap<&str, &CategoryChange>,
        removed: &[String],
    ) -> Result<()> {
        let on = stamp.on.to_string();
        // Two COPY streams, one transaction each, on two connections (server
        // processes): the rows are independent, and the server's work is the cost here.
        if new.len() < TWO_STREAMS_FROM {
            copy_new(pool, tenant, stamp, new).await?;
        } else {
            let (a, b) = new.split_at(new.len() / 2);
            tokio::try_join!(
                copy_new(pool, tenant, stamp, a),
                copy_new(pool, tenant, stamp, b)
            )?;
        }
        for chunk in changed.chunks(COMPANIES_PER_TXN) {
            let c = columns(chunk);
            let mut conn = Guarded::acquire(pool).await?;
            let mut tx = conn.begin().await.map_err(sqlx_error)?;
            sqlx::query(&format!(
                "INSERT INTO company_category (tenant_id, run_id, external_id, name, document, abc_class, \
                 lifecycle, portfolio, revenue, first_purchase, last_purchase, company_hash, fingerprint, \
                 updated_at, categorized_run_id, categorized_on, categorized_at) \
                 SELECT $1, $2, u.*, $14, $2, $15, $14 FROM {UNNEST} AS u \
                 ON CONFLICT (tenant_id, external_id) DO UPDATE SET run_id = excluded.run_id, \
                 name = excluded.name, document = excluded.document, abc_class = excluded.abc_class, \
                 lifecycle = excluded.lifecycle, portfolio = excluded.portfolio, revenue = excluded.revenue, \
                 first_purchase = excluded.first_purchase, last_purchase = excluded.last_purchase, \
                 company_hash = excluded.company_hash, fingerprint = excluded.fingerprint, \
                 updated_at = excluded.updated_at"
            ))
            .bind(tenant.as_str())
            .bind(stamp.run_id)
            .bind_columns(&c)
            .bind(stamp.at)
            .bind(&on)
            .execute(&mut *tx)
            .await
            .map_err(sqlx_error)?;
            copy_history(&mut tx, tenant, chunk, history).await?;
            tx.commit().await.map_err(sqlx_error)?;
            conn.finish();
        }
        // No ANALYZE after a large write: every read of the table goes by its key
        // (ranges of external_id), which the planner takes whatever its statistics say
        // (checked with the statistics of an empty table and 200 000 rows in it); and
        // ANALYZE cost 0.35–0.5 s of a first run of 200 000 companies. Autovacuum keeps
        // the statistics for the rest.
        for chunk in removed.chunks(COMPANIES_PER_TXN) {
            sqlx::query(
                "DELETE FROM company_category WHERE tenant_id = $1 AND external_id = ANY($2::text[])",
            )
            .bind(tenant.as_str())
            .bind(chunk)
            .execute(pool)
            .await
            .map_err(sqlx_error)?;
        }
        Ok(())
    }

    pub(super) async fn hold(
        pool: &sqlx::PgPool,
        tenant: &TenantId,
        run_id: &str,
        rows: &[Category],
    ) -> Result<()> {
        for chunk in rows.chunks(COMPANIES_PER_TXN) {
            let c = columns(chunk);
            sqlx::query(&format!(
                "INSERT INTO abc_held (tenant_id, run_id, external_id, name, document, abc_class, \
                 lifecycle, portfolio, revenue, first_purchase, last_purchase, company_hash) \
                 SELECT $1, $2, u.e, u.n, u.d, u.c, u.l, u.p, u.r, u.f, u.la, u.h \
                 FROM {UNNEST} AS u(e, n, d, c, l, p, r, f, la, h, fp) \
                 ON CONFLICT (run_id, external_id) DO NOTHING"
            ))
            .bind(tenant.as_str())
            .bind(run_id)
            .bind_columns(&c)
            .execute(pool)
            .await
            .map_err(sqlx_error)?;
        }
        Ok(())
    }
}
