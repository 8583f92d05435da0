//! Staging's multi-row statements: a staged batch's insert of new records (`INSERT … ON
//! CONFLICT DO NOTHING RETURNING`, so new records need no read), the read of the stored
//! versions of the rest, and the guarded upsert of the changed ones, each in statements
//! of up to [`ROWS_PER_STATEMENT`] rows. What is new, changed or stale is decided by
//! `storage::staging`; these only write and read what it hands over.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};

use crate::domain::abc::RevenueFact;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::days::{day_number, from_day_number};

/// The columns of a staged row, in the order statements bind them.
const ROW_COLUMNS: &str = "tenant_id, table_name, external_id, fields, content_hash, updated_at, \
    deleted, changed_at, request_id, size_bytes, company_ref, issued_on, amount";

/// Rows per multi-row statement: 13 columns a row stays under SQLite's 32 766 bind limit.
const ROWS_PER_STATEMENT: usize = 2_500;

/// Where a batch's versions are staged, and the request that brought them.
pub(crate) struct Target<'a> {
    /// Whose records.
    pub tenant: &'a TenantId,
    /// Which ERP table.
    pub table: &'a str,
    /// The request they came in (kept on each row).
    pub request_id: &'a str,
    /// When the request arrived (the rows' `changed_at`).
    pub received_at: DateTime<Utc>,
}

/// One version of a record to write.
pub(crate) struct Version<'a> {
    /// The record's id in the ERP.
    pub external_id: &'a str,
    /// Normalized fields, as JSON.
    pub fields: &'a str,
    /// See `staging::content_hash`.
    pub content_hash: i64,
    /// The ERP's last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// A tombstone.
    pub deleted: bool,
    /// The row's accounted size.
    pub size_bytes: i64,
    /// Its revenue (None: none).
    pub fact: Option<&'a RevenueFact>,
}

/// The stored version of a record, as staging compares it.
pub(crate) struct Stored {
    /// Its content hash.
    pub content_hash: i64,
    /// The ERP's last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// The row's accounted size.
    pub size_bytes: i64,
    /// The revenue columns of the stored version (None: no revenue).
    pub fact: Option<RevenueFact>,
}

/// Inserts the versions of records not staged yet (the others are left alone); returns
/// the external ids it inserted.
pub(crate) async fn insert_new(
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    versions: &[Version<'_>],
) -> Result<Vec<String>> {
    let mut inserted = Vec::new();
    for chunk in versions.chunks(ROWS_PER_STATEMENT) {
        let (sql, p) = insert_rows(txn, target, chunk);
        let sql = format!(
            "{sql} ON CONFLICT (tenant_id, table_name, external_id) DO NOTHING RETURNING external_id"
        );
        for r in txn.query_all(p.statement(sql)).await? {
            inserted.push(r.try_get("", "external_id")?);
        }
    }
    Ok(inserted)
}

/// Writes `versions` over the staged ones, except over a newer version (which a
/// concurrent batch may have staged since they were read).
pub(crate) async fn upsert(
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    versions: &[Version<'_>],
) -> Result<()> {
    for chunk in versions.chunks(ROWS_PER_STATEMENT) {
        let (sql, p) = insert_rows(txn, target, chunk);
        // The WHERE guards against a concurrent batch that staged a newer version between
        // our read and this write: an older update never overwrites a newer one.
        let sql = format!(
            "{sql} ON CONFLICT (tenant_id, table_name, external_id) DO UPDATE SET \
             fields = excluded.fields, content_hash = excluded.content_hash, \
             updated_at = excluded.updated_at, deleted = excluded.deleted, \
             changed_at = excluded.changed_at, request_id = excluded.request_id, \
             size_bytes = excluded.size_bytes, company_ref = excluded.company_ref, \
             issued_on = excluded.issued_on, amount = excluded.amount \
             WHERE staged_record.updated_at IS NULL OR excluded.updated_at IS NULL \
             OR excluded.updated_at >= staged_record.updated_at"
        );
        txn.execute(p.statement(sql)).await?;
    }
    Ok(())
}

/// `INSERT INTO staged_record (…) VALUES (…), …` for `versions`, and its values.
fn insert_rows(
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    versions: &[Version<'_>],
) -> (String, Params) {
    let mut p = Params::new(txn.get_database_backend(), versions.len() * 13);
    let tuples: Vec<String> = versions
        .iter()
        .map(|v| {
            let ps = [
                p.push(target.tenant.as_str()),
                p.push(target.table),
                p.push(v.external_id),
                p.push(v.fields),
                p.push(v.content_hash),
                p.push(v.updated_at),
                p.push(v.deleted),
                p.push(target.received_at),
                p.push(target.request_id),
                p.push(v.size_bytes),
                p.push(v.fact.map(|f| f.company_ref.clone())),
                p.push(v.fact.map(|f| day_number(f.issued_on))),
                p.push(v.fact.map(|f| f.amount)),
            ];
            format!("({})", ps.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO staged_record ({ROW_COLUMNS}) VALUES {}",
        tuples.join(", ")
    );
    (sql, p)
}

/// The stored versions of the records `ids` of the tenant's table (those staged), with
/// their external ids.
pub(crate) async fn stored(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    ids: &[&str],
) -> Result<Vec<(String, Stored)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT * 5) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 2);
        let (t, n) = (p.push(tenant.as_str()), p.push(table));
        let ids: Vec<String> = chunk.iter().map(|id| p.push(*id)).collect();
        let sql = format!(
            "SELECT external_id, content_hash, updated_at, size_bytes, company_ref, issued_on, \
             amount FROM staged_record \
             WHERE tenant_id = {t} AND table_name = {n} AND external_id IN ({})",
            ids.join(", ")
        );
        for r in txn.query_all(p.statement(sql)).await? {
            let company: Option<String> = r.try_get("", "company_ref")?;
            let day: Option<i32> = r.try_get("", "issued_on")?;
            let amount: Option<i64> = r.try_get("", "amount")?;
            let fact = match (company, day, amount) {
                (Some(company_ref), Some(day), Some(amount)) => from_day_number(i64::from(day))
                    .map(|issued_on| RevenueFact {
                        company_ref,
                        issued_on,
                        amount,
                    }),
                _ => None,
            };
            out.push((
                r.try_get("", "external_id")?,
                Stored {
                    content_hash: r.try_get("", "content_hash")?,
                    updated_at: r.try_get("", "updated_at")?,
                    size_bytes: r.try_get("", "size_bytes")?,
                    fact,
                },
            ));
        }
    }
    Ok(out)
}
