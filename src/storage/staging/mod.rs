//! The intermediate database: staged ERP records, upserted by (tenant, table,
//! external_id). A batch is staged in its caller's transaction (the ingest service logs
//! the request in the same one, so a client that got an answer can rely on both).
//!
//! Delivery to the CRM (which versions wait, marking them delivered) is in
//! [`delivery`]; what tells one version from another, its content hash, in [`hash`].
//!
//! This module keeps the rules (what is new, changed or stale; content hashes; usage
//! deltas; purchase-span changes). A batch's multi-row statements are in `bulk::staging`;
//! the other reads go through the `staged_record` entity.

mod delivery;
mod hash;

pub use self::delivery::{
    count_pending, mark_all_delivered, mark_delivered, pending_page, pending_tombstones,
    refresh_statistics, restore_from_crm, tombstone_again, Pending,
};

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, QueryFilter, QueryOrder, QuerySelect};

use chrono_tz::Tz;

use self::hash::content_hash;
use super::bulk::staging::{self as bulk, Target, Version};
use super::entities;
use super::entities::staged_record::{Column, Entity};
use super::spans::SpanChanges;
use super::trail::AcceptedRecord;
use super::{usage, Db};
use crate::domain::abc::{revenue_fact, RevenueFact};
use crate::domain::batch::{Rejection, ValidRecord};
use crate::domain::tenant::TenantId;
use crate::error::Result;

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
    /// Every record not stale (new, changed or unchanged), for its trail.
    pub accepted: Vec<AcceptedRecord>,
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

struct Row {
    record: ValidRecord,
    fields: String,
    hash: i64,
    size: i64,
    fact: Option<RevenueFact>,
}

impl Row {
    /// The record as its trail keeps it accepted.
    fn accepted(&self) -> AcceptedRecord {
        AcceptedRecord {
            index: self.record.index,
            external_id: self.record.external_id.clone(),
            content_hash: self.hash,
        }
    }

    /// The version to write.
    fn version(&self) -> Version<'_> {
        Version {
            external_id: &self.record.external_id,
            fields: &self.fields,
            content_hash: self.hash,
            updated_at: self.record.updated_at,
            deleted: self.record.deleted,
            size_bytes: self.size,
            fact: self.fact.as_ref(),
        }
    }
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
    let versions: Vec<Version<'_>> = rows.iter().map(Row::version).collect();
    let inserted: HashSet<String> = bulk::insert_new(txn, &target, &versions)
        .await?
        .into_iter()
        .collect();
    drop(versions);
    let (new_rows, rows): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|r| inserted.contains(r.record.external_id.as_str()));
    let mut spans = SpanChanges::default();
    outcome.accepted.reserve(new_rows.len() + rows.len());
    for row in &new_rows {
        spans.inserted(row.fact.as_ref());
        outcome.accepted.push(row.accepted());
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
                outcome.accepted.push(row.accepted());
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
            Some(old) if old.content_hash == row.hash => {
                outcome.accepted.push(row.accepted());
                outcome.unchanged += 1;
            }
            Some(old) => {
                outcome.accepted.push(row.accepted());
                outcome.updated += 1;
                delta.staged_bytes += row.size - old.size_bytes;
                spans.replaced(old.fact.as_ref(), row.fact.as_ref());
                to_write.push(row);
            }
        }
    }
    if !to_write.is_empty() {
        let versions: Vec<Version<'_>> = to_write.iter().map(Row::version).collect();
        bulk::upsert(txn, &target, &versions).await?;
    }
    usage::add(txn, tenant, delta).await?;
    spans.apply(txn, tenant, table).await?;
    Ok(outcome)
}

fn is_older(incoming: Option<DateTime<Utc>>, stored: Option<DateTime<Utc>>) -> bool {
    matches!((incoming, stored), (Some(i), Some(s)) if i < s)
}

/// The stored versions of `rows`' records (those staged), by external id.
async fn load_stored(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    rows: &[Row],
) -> Result<HashMap<String, bulk::Stored>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.record.external_id.as_str()).collect();
    Ok(bulk::stored(txn, tenant, table, &ids)
        .await?
        .into_iter()
        .collect())
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
    let rows: Vec<(String, String, Option<DateTime<Utc>>, bool)> =
        Entity::of_table(tenant.as_str(), table)
            .select_only()
            .columns([
                Column::ExternalId,
                Column::Fields,
                Column::UpdatedAt,
                Column::Deleted,
            ])
            .order_by_asc(Column::ExternalId)
            .into_tuple()
            .all(db.conn())
            .await?;
    rows.into_iter()
        .map(|(external_id, fields, updated_at, deleted)| {
            let fields = match serde_json::from_str(&fields) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    return Err(
                        anyhow::anyhow!("stored record fields are not a JSON object").into(),
                    )
                }
            };
            Ok(StagedRecord {
                external_id,
                fields,
                updated_at,
                deleted,
            })
        })
        .collect()
}

/// How many live (not deleted) records of the table are staged.
pub async fn count_live(db: &Db, tenant: &TenantId, table: &str) -> Result<u64> {
    let live = Entity::of_table(tenant.as_str(), table).filter(Column::Deleted.eq(false));
    Ok(entities::count(live, db.conn()).await?)
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
    Ok(Entity::of_table(tenant.as_str(), table)
        .filter(Column::ExternalId.gt(after))
        .filter(Column::Deleted.eq(false))
        .select_only()
        .column(Column::ExternalId)
        .order_by_asc(Column::ExternalId)
        .limit(limit)
        .into_tuple()
        .all(db.conn())
        .await?)
}
