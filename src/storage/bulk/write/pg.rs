//! PostgreSQL writes of many rows: one statement per chunk over arrays (`UNNEST`), which
//! PostgreSQL plans at once, where a multi-row VALUES of 28 000 parameters is re-planned
//! on every execution (`plan_cache_mode = force_custom_plan`).

use std::collections::HashMap;

use sqlx::Connection;

use super::batch::COMPANIES_PER_TXN;
use crate::domain::abc::{AbcClass, Category, CategoryChange, Lifecycle, Stamp};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::pgcopy::{copy_in, Guarded};
use crate::storage::db::sqlx_error;
use crate::storage::entities::category_change::standing_columns;

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
         abc_from, abc_to, lifecycle_from, lifecycle_to, revenue, revenue_rank, share_before) \
         FROM STDIN",
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
            let (rank, share_before) = standing_columns(h.standing);
            out.shown(h.revenue);
            out.shown(rank);
            out.shown(share_before);
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
    // (checked with the statistics of an empty table and of a large one); and
    // ANALYZE would add a scan of the whole table to every first run. Autovacuum
    // keeps the statistics for the rest.
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
