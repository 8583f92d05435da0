//! The intermediate database: staged ERP records, upserted by (tenant, table,
//! external_id). A batch is staged in its caller's transaction (the ingest service logs
//! the request in the same one, so a client that got an answer can rely on both).
//!
//! Delivery to the CRM (which versions wait, marking them delivered) is in
//! [`delivery`].

mod delivery;

pub use self::delivery::{
    count_pending, mark_all_delivered, mark_delivered, pending_page, pending_tombstones,
    restore_from_crm, Pending,
};

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};

use chrono_tz::Tz;

use super::spans::SpanChanges;
use super::{usage, Db, Params};
use crate::domain::abc::{revenue_fact, RevenueFact};
use crate::domain::batch::{Rejection, ValidRecord};
use crate::domain::hash::Fnv1a;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::days::{day_number, from_day_number};

/// The columns of a staged row, in the order statements bind them.
const ROW_COLUMNS: &str = "tenant_id, table_name, external_id, fields, content_hash, updated_at, \
    deleted, changed_at, request_id, size_bytes, company_ref, issued_on, amount";

/// Rows per multi-row statement: 13 columns a row stays under SQLite's 32 766 bind limit.
const ROWS_PER_STATEMENT: usize = 2_500;

/// What staging a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageOutcome {
    /// New records.
    pub inserted: u32,
    /// Changed records (tombstones included).
    pub updated: u32,
    /// Records identical to the stored ones (re-sent batches).
    pub unchanged: u32,
    /// Records older than the stored version, not applied.
    pub stale: Vec<Rejection>,
}

/// One batch to stage.
pub struct StageBatch<'a> {
    /// Whose records.
    pub tenant: &'a TenantId,
    /// Which ERP table.
    pub table: &'a str,
    /// The records that passed validation, one per external id.
    pub records: Vec<ValidRecord>,
    /// The request they came in (kept on each row, for tracing a record to its request).
    pub request_id: &'a str,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// The tenant's zone: an invoice's civil date of issue is taken in it.
    pub zone: Tz,
}

struct Stored {
    hash: i64,
    updated_at: Option<DateTime<Utc>>,
    size: i64,
    /// The revenue columns of the stored version (None: no revenue).
    fact: Option<RevenueFact>,
}

#[derive(Clone)]
struct Row {
    record: ValidRecord,
    fields: String,
    hash: i64,
    size: i64,
    fact: Option<RevenueFact>,
}

/// Stages `batch` in the write transaction `txn` (which the caller commits).
pub async fn stage(txn: &DatabaseTransaction, batch: StageBatch<'_>) -> Result<StageOutcome> {
    let StageBatch {
        tenant,
        table,
        records,
        request_id,
        received_at,
        zone,
    } = batch;
    let rows: Vec<Row> = records
        .into_iter()
        .map(|record| {
            let fields = serde_json::to_string(&record.fields).unwrap_or_default();
            let hash = content_hash(&fields, record.updated_at, record.deleted);
            let size =
                i64::try_from(fields.len() + record.external_id.len() + 90).unwrap_or(i64::MAX);
            // A tombstone is no revenue, whatever fields it carries.
            let fact = if record.deleted {
                None
            } else {
                revenue_fact(table, &record.fields, zone)
            };
            Row {
                record,
                fields,
                hash,
                size,
                fact,
            }
        })
        .collect();

    let target = Target {
        tenant,
        table,
        request_id,
        received_at,
    };
    let mut outcome = StageOutcome::default();
    let mut delta = usage::Delta::default();
    // New records (the bulk of an onboarding load) go in with one statement and no read;
    // only the ones already staged are read and compared.
    let mut inserted = HashSet::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        inserted.extend(insert_new(txn, &target, chunk).await?);
    }
    let (new_rows, rows): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|r| inserted.contains(r.record.external_id.as_str()));
    let mut spans = SpanChanges::default();
    for row in &new_rows {
        spans.inserted(row.fact.as_ref());
    }
    outcome.inserted = u32::try_from(new_rows.len()).unwrap_or(u32::MAX);
    delta.staged_rows += i64::from(outcome.inserted);
    delta.staged_bytes += new_rows.iter().map(|r| r.size).sum::<i64>();
    let stored = if rows.is_empty() {
        HashMap::new()
    } else {
        load_stored(txn, tenant, table, &rows).await?
    };
    let mut to_write = Vec::with_capacity(rows.len());
    for row in rows {
        match stored.get(row.record.external_id.as_str()) {
            None => {
                outcome.inserted += 1;
                delta.staged_rows += 1;
                delta.staged_bytes += row.size;
                spans.replaced(None, row.fact.as_ref());
                to_write.push(row);
            }
            Some(old) if is_older(row.record.updated_at, old.updated_at) => {
                outcome.stale.push(Rejection {
                    index: row.record.index,
                    external_id: row.record.external_id.clone(),
                    field: "updated_at".into(),
                    reason: format!(
                        "older than the stored version (updated_at {}); not applied",
                        old.updated_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                    ),
                });
            }
            Some(old) if old.hash == row.hash => outcome.unchanged += 1,
            Some(old) => {
                outcome.updated += 1;
                delta.staged_bytes += row.size - old.size;
                spans.replaced(old.fact.as_ref(), row.fact.as_ref());
                to_write.push(row);
            }
        }
    }
    while !to_write.is_empty() {
        let rest = to_write.split_off(to_write.len().min(ROWS_PER_STATEMENT));
        upsert(txn, &target, std::mem::replace(&mut to_write, rest)).await?;
    }
    usage::add(txn, tenant, delta).await?;
    spans.apply(txn, tenant, table).await?;
    Ok(outcome)
}

fn is_older(incoming: Option<DateTime<Utc>>, stored: Option<DateTime<Utc>>) -> bool {
    matches!((incoming, stored), (Some(i), Some(s)) if i < s)
}

async fn load_stored(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    rows: &[Row],
) -> Result<HashMap<String, Stored>> {
    let mut out = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT * 5) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 2);
        let (t, n) = (p.push(tenant.as_str()), p.push(table));
        let ids: Vec<String> = chunk
            .iter()
            .map(|r| p.push(r.record.external_id.clone()))
            .collect();
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
            out.insert(
                r.try_get("", "external_id")?,
                Stored {
                    hash: r.try_get("", "content_hash")?,
                    updated_at: r.try_get("", "updated_at")?,
                    size: r.try_get("", "size_bytes")?,
                    fact,
                },
            );
        }
    }
    Ok(out)
}

struct Target<'a> {
    tenant: &'a TenantId,
    table: &'a str,
    request_id: &'a str,
    received_at: DateTime<Utc>,
}

/// `INSERT INTO staged_record (…) VALUES (…), …` for `rows`, and its values.
fn insert_rows(txn: &DatabaseTransaction, batch: &Target<'_>, rows: Vec<Row>) -> (String, Params) {
    let mut p = Params::new(txn.get_database_backend(), rows.len() * 13);
    let tuples: Vec<String> = rows
        .into_iter()
        .map(|row| {
            let ps = [
                p.push(batch.tenant.as_str()),
                p.push(batch.table),
                p.push(row.record.external_id),
                p.push(row.fields),
                p.push(row.hash),
                p.push(row.record.updated_at),
                p.push(row.record.deleted),
                p.push(batch.received_at),
                p.push(batch.request_id),
                p.push(row.size),
                p.push(row.fact.as_ref().map(|f| f.company_ref.clone())),
                p.push(row.fact.as_ref().map(|f| day_number(f.issued_on))),
                p.push(row.fact.as_ref().map(|f| f.amount)),
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

/// Inserts the rows not staged yet; returns the external ids it inserted.
async fn insert_new(
    txn: &DatabaseTransaction,
    batch: &Target<'_>,
    rows: &[Row],
) -> Result<Vec<String>> {
    let (sql, p) = insert_rows(txn, batch, rows.to_vec());
    let sql = format!(
        "{sql} ON CONFLICT (tenant_id, table_name, external_id) DO NOTHING RETURNING external_id"
    );
    txn.query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "external_id").map_err(Into::into))
        .collect()
}

async fn upsert(txn: &DatabaseTransaction, batch: &Target<'_>, rows: Vec<Row>) -> Result<()> {
    let (sql, p) = insert_rows(txn, batch, rows);
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
    Ok(())
}

/// FNV-1a over what makes a version distinct: stable across builds and platforms, so a
/// re-sent batch is recognised as unchanged after an upgrade too.
fn content_hash(fields: &str, updated_at: Option<DateTime<Utc>>, deleted: bool) -> i64 {
    let mut h = Fnv1a::default();
    h.feed(fields.as_bytes());
    h.feed(
        &updated_at
            .map_or(i64::MIN, |t| t.timestamp_micros())
            .to_le_bytes(),
    );
    h.feed(&[u8::from(deleted)]);
    h.finish()
}

/// A staged record as the sync will read it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRecord {
    /// The record's id in the ERP.
    pub external_id: String,
    /// Normalized fields, as JSON.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The ERP's last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// A tombstone.
    pub deleted: bool,
}

/// Every staged record of a tenant's table, by external id.
pub async fn list(db: &Db, tenant: &TenantId, table: &str) -> Result<Vec<StagedRecord>> {
    let rows = db
        .conn()
        .query_all(Statement::from_sql_and_values(
            db.backend(),
            "SELECT external_id, fields, updated_at, deleted FROM staged_record \
             WHERE tenant_id = $1 AND table_name = $2 ORDER BY external_id",
            [tenant.as_str().into(), table.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            let fields: String = r.try_get("", "fields")?;
            let fields = match serde_json::from_str(&fields) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    return Err(
                        anyhow::anyhow!("stored record fields are not a JSON object").into(),
                    )
                }
            };
            Ok(StagedRecord {
                external_id: r.try_get("", "external_id")?,
                fields,
                updated_at: r.try_get("", "updated_at")?,
                deleted: r.try_get("", "deleted")?,
            })
        })
        .collect()
}

/// How many live (not deleted) records of the table are staged.
pub async fn count_live(db: &Db, tenant: &TenantId, table: &str) -> Result<u64> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT COUNT(*) AS n FROM staged_record WHERE tenant_id = {} AND table_name = {} AND deleted = FALSE",
        p.push(tenant.as_str()),
        p.push(table)
    );
    let row = db.conn().query_one(p.statement(sql)).await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// The external ids of live (not deleted) staged records of `table` after `after`, in
/// order, at most `limit`: a full View snapshot compares them with what it read.
pub async fn live_ids_after(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<String>> {
    let mut p = Params::new(db.backend(), 3);
    let sql = format!(
        "SELECT external_id FROM staged_record WHERE tenant_id = {} AND table_name = {} \
         AND external_id > {} AND deleted = FALSE ORDER BY external_id LIMIT {limit}",
        p.push(tenant.as_str()),
        p.push(table),
        p.push(after)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "external_id").map_err(Into::into))
        .collect()
}
