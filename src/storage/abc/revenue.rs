//! Revenue per company as the abc stage needs it: sums over the window from the
//! revenue columns of staged invoices or orders, and first and last purchase days from
//! `purchase_span`. Here: how the companies are cut into ranges, summed one after the
//! other (SQLite) or in parallel (PostgreSQL); the keyset reads themselves are
//! [`crate::storage::bulk::abc`]'s.

use std::collections::HashMap;

use chrono::NaiveDate;
use futures_util::StreamExt;
use sea_orm::DbBackend;

use crate::domain::abc::Basis;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::bulk::abc::{self as bulk, Span};
use crate::storage::bulk::read::{last_key, Reader, PAGE};
use crate::storage::days::{day_number, from_day_number};
use crate::storage::Db;

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
    let add_spans = |out: &mut HashMap<String, Purchases>, page: Vec<Span>| {
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
        let page = bulk::spans(&mut reader, tenant, basis, &after).await?;
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
    let n = bulk::count_spans(reader, tenant, basis).await?;
    let parts = (n + PG_RANGE - 1) / PG_RANGE;
    let parts = parts.max(PARALLEL_RANGES as i64);
    let step = (n / parts).max(1);
    if n < 2 * step {
        return Ok(Vec::new());
    }
    bulk::every_nth_span(reader, tenant, basis, step, (parts - 1) * step).await
}

/// Every company's first and last purchase days (all pages of [`bulk::spans`]).
async fn all_spans(db: &Db, tenant: &TenantId, basis: Basis) -> Result<Vec<Span>> {
    let mut out = Vec::new();
    let mut after = String::new();
    let mut reader = Reader::new(db).await?;
    loop {
        let page = bulk::spans(&mut reader, tenant, basis, &after).await?;
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

/// The revenue per company of `basis` in days [from, to], companies in (lo, hi]; a sum
/// beyond the 64-bit range an Internal error that says where to look.
async fn window_sums(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
    from: i32,
    to: i32,
    lo: Option<String>,
    hi: Option<String>,
) -> Result<Vec<(String, i64)>> {
    let rows = bulk::window_sums(
        reader,
        tenant,
        basis,
        from,
        to,
        lo.as_deref(),
        hi.as_deref(),
    )
    .await
    .map_err(|e| match e {
        AppError::Database(e)
            if e.to_string().contains("overflow") || e.to_string().contains("out of range") =>
        {
            AppError::Internal(anyhow::anyhow!(
                "a company's revenue is beyond 922 trillion: check the ERP's {} totals ({e})",
                basis.table().as_str()
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
