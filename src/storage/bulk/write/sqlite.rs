//! SQLite's bulk writes of categories: multi-row statements (`?` placeholders, bound by
//! position) in transactions of [`COMPANIES_PER_TXN`] companies.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};

use super::batch::{insert_history, COMPANIES_PER_TXN, ROWS_PER_STATEMENT};
use crate::domain::abc::{Category, CategoryChange, Stamp};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::db::Db;

/// The columns of a category, in the order of [`category_values`].
const CATEGORY_COLUMNS: &str = "external_id, name, document, abc_class, lifecycle, portfolio, \
    revenue, first_purchase, last_purchase, company_hash";

/// A category's values for [`CATEGORY_COLUMNS`] (dates as `YYYY-MM-DD` text).
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

/// See [`super::categories`].
pub(super) async fn apply(
    db: &Db,
    tenant: &TenantId,
    stamp: &Stamp<'_>,
    new: &[Category],
    changed: &[Category],
    by_company: &HashMap<&str, &CategoryChange>,
    removed: &[String],
) -> Result<()> {
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

/// See [`super::held`].
pub(super) async fn hold(
    db: &Db,
    tenant: &TenantId,
    run_id: &str,
    rows: &[Category],
) -> Result<()> {
    for chunk in rows.chunks(COMPANIES_PER_TXN) {
        let txn = db.begin_write().await?;
        for part in chunk.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new(txn.get_database_backend(), part.len() * 12);
            let tuples: Vec<String> = part
                .iter()
                .map(|c| {
                    let mut v = vec![p.push(run_id), p.push(tenant.as_str())];
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
    Ok(())
}
