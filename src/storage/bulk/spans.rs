//! `purchase_span`'s statements, all on staging's write path (`storage::spans` decides
//! which companies' spans widen and which are recomputed, under a lock per tenant and
//! table): the multi-row widening upsert, and the recompute (`DELETE`, then `INSERT … SELECT MIN/MAX` over the staged facts), in
//! statements of up to [`PER_STATEMENT`] companies.

use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;

/// Companies per statement (5 values a row stays far under SQLite's bind limit).
const PER_STATEMENT: usize = 2_000;

/// Widens (or creates) each company's span to include its (first, last) day.
pub(crate) async fn widen(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    spans: &[(String, (i32, i32))],
) -> Result<()> {
    let backend = txn.get_database_backend();
    for chunk in spans.chunks(PER_STATEMENT) {
        let mut p = Params::new(backend, chunk.len() * 5);
        let tuples: Vec<String> = chunk
            .iter()
            .map(|(company, (first, last))| {
                format!(
                    "({}, {}, {}, {}, {})",
                    p.push(tenant.as_str()),
                    p.push(table),
                    p.push(company.as_str()),
                    p.push(*first),
                    p.push(*last)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO purchase_span (tenant_id, table_name, company_ref, first_on, last_on) \
             VALUES {} ON CONFLICT (tenant_id, table_name, company_ref) DO UPDATE SET \
             first_on = CASE WHEN excluded.first_on < purchase_span.first_on \
             THEN excluded.first_on ELSE purchase_span.first_on END, \
             last_on = CASE WHEN excluded.last_on > purchase_span.last_on \
             THEN excluded.last_on ELSE purchase_span.last_on END",
            tuples.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}

/// Recomputes the spans of `companies` from their staged facts (positive totals, not
/// deleted): a company left without a purchase has no span.
pub(crate) async fn recompute(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    companies: &[String],
) -> Result<()> {
    let backend = txn.get_database_backend();
    for chunk in companies.chunks(PER_STATEMENT) {
        // The tenant, table and company placeholders of `… WHERE tenant_id = t AND
        // table_name = n AND company_ref IN (ids)` (and the values behind them).
        let scope = |p: &mut Params| {
            let (t, n) = (p.push(tenant.as_str()), p.push(table));
            let ids: Vec<String> = chunk.iter().map(|c| p.push(c.as_str())).collect();
            format!(
                "tenant_id = {t} AND table_name = {n} AND company_ref IN ({})",
                ids.join(", ")
            )
        };
        let mut p = Params::new(backend, chunk.len() + 2);
        let sql = format!("DELETE FROM purchase_span WHERE {}", scope(&mut p));
        txn.execute(p.statement(sql)).await?;
        let mut p = Params::new(backend, chunk.len() + 4);
        let (t, n) = (p.push(tenant.as_str()), p.push(table));
        let sql = format!(
            "INSERT INTO purchase_span (tenant_id, table_name, company_ref, first_on, last_on) \
             SELECT {t}, {n}, company_ref, MIN(issued_on), MAX(issued_on) FROM staged_record \
             WHERE {} AND amount > 0 AND NOT deleted GROUP BY company_ref",
            scope(&mut p)
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}
