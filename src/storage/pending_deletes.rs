//! Deletions held by the delete guard (`pending_delete`), with the name and document the
//! CRM has, until approved (applied by the next run) or discarded (record restored).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{staging, Db, Params};
use crate::domain::crm::PendingDelete;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

/// Approve (the next run deletes) or discard (the record is restored in staging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Apply the deletion at the next run.
    Approve,
    /// Keep the record: restore it in staging as the CRM has it.
    Discard,
}

fn crm_table(table: &str) -> Result<&'static str> {
    match table {
        "company" => Ok("crm_company"),
        "contact" => Ok("crm_contact"),
        other => Err(AppError::InvalidArgument(format!(
            "table {other:?}: deletions are guarded for company and contact only"
        ))),
    }
}

/// Holds the deletions of `ids` (those the CRM has), recording the CRM's name and document.
pub async fn hold(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    run_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let crm = crm_table(table)?;
    let txn = db.begin_write().await?;
    for chunk in ids.chunks(2_000) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 5);
        let (tb, run, at, t) = (
            p.push(table),
            p.push(run_id),
            p.push(now),
            p.push(tenant.as_str()),
        );
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "INSERT INTO pending_delete (tenant_id, table_name, external_id, name, document, detected_run_id, \
             detected_at, state, resolved_at) SELECT tenant_id, {tb}, external_id, name, document, {run}, {at}, \
             'HELD', NULL FROM {crm} WHERE tenant_id = {t} AND external_id IN ({}) \
             ON CONFLICT (tenant_id, table_name, external_id) DO UPDATE SET state = 'HELD', \
             detected_run_id = excluded.detected_run_id, detected_at = excluded.detected_at, resolved_at = NULL",
            list.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// The external ids of the table's deletions in `state` (HELD or APPROVED).
pub async fn ids_in_state(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    state: &str,
) -> Result<HashSet<String>> {
    let mut p = Params::new(db.backend(), 3);
    let sql = format!(
        "SELECT external_id FROM pending_delete WHERE tenant_id = {} AND table_name = {} AND state = {}",
        p.push(tenant.as_str()),
        p.push(table),
        p.push(state)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "external_id").map_err(Into::into))
        .collect()
}

/// Marks approved deletions applied once a run delivered them.
pub async fn mark_applied(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    for chunk in ids.chunks(2_000) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 3);
        let (at, t, tb) = (p.push(now), p.push(tenant.as_str()), p.push(table));
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "UPDATE pending_delete SET state = 'APPLIED', resolved_at = {at} WHERE tenant_id = {t} \
             AND table_name = {tb} AND state = 'APPROVED' AND external_id IN ({})",
            list.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// A page of the table's held (or approved, not yet applied) deletions, by external id.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<PendingDelete>> {
    crm_table(table)?;
    let mut p = Params::new(db.backend(), 3);
    let sql = format!(
        "SELECT table_name, external_id, name, document, detected_run_id, detected_at, state FROM pending_delete \
         WHERE tenant_id = {} AND table_name = {} AND state IN ('HELD', 'APPROVED') AND external_id > {} \
         ORDER BY external_id LIMIT {limit}",
        p.push(tenant.as_str()),
        p.push(table),
        p.push(after)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| pending_from(&r))
        .collect()
}

/// A page of what the Excessivos Deletes export shows of `table`, by external id after
/// `after`: every deletion still waiting (HELD or APPROVED) whatever its date, and every
/// one detected in `[from, to)` whatever became of it.
pub async fn export_page(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    after: &str,
    limit: u64,
) -> Result<Vec<PendingDelete>> {
    crm_table(table)?;
    let mut p = Params::new(db.backend(), 5);
    let sql = format!(
        "SELECT table_name, external_id, name, document, detected_run_id, detected_at, state FROM pending_delete \
         WHERE tenant_id = {} AND table_name = {} AND external_id > {} AND (state IN ('HELD', 'APPROVED') \
         OR (detected_at >= {} AND detected_at < {})) ORDER BY external_id LIMIT {limit}",
        p.push(tenant.as_str()),
        p.push(table),
        p.push(after),
        p.push(from),
        p.push(to)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| pending_from(&r))
        .collect()
}

/// Approves or discards held deletions (`ids`, or all when None); returns how many.
/// A discarded deletion restores the record in staging as the CRM has it, so the ERP's
/// tombstone no longer waits for delivery.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    ids: Option<&[String]>,
    resolution: Resolution,
    now: DateTime<Utc>,
) -> Result<u64> {
    let crm = crm_table(table)?;
    let held: Vec<String> = {
        let all = ids_in_state(db, tenant, table, "HELD").await?;
        match ids {
            None => all.into_iter().collect(),
            Some(ids) => {
                if let Some(unknown) = ids.iter().find(|id| !all.contains(*id)) {
                    return Err(AppError::NotFound(format!(
                        "no held deletion of {table} {unknown:?}: list them with ListPendingDeletes"
                    )));
                }
                ids.to_vec()
            }
        }
    };
    if held.is_empty() {
        return Ok(0);
    }
    if resolution == Resolution::Discard {
        staging::restore_from_crm(db, tenant, table, crm, &held, now).await?;
    }
    let state = match resolution {
        Resolution::Approve => "APPROVED",
        Resolution::Discard => "DISCARDED",
    };
    let txn = db.begin_write().await?;
    for chunk in held.chunks(2_000) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 4);
        // Placeholders are bound in order: push only what the statement uses.
        let st = p.push(state);
        let resolved = if resolution == Resolution::Discard {
            p.push(now)
        } else {
            "NULL".to_owned()
        };
        let (t, tb) = (p.push(tenant.as_str()), p.push(table));
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "UPDATE pending_delete SET state = {st}, resolved_at = {resolved} WHERE tenant_id = {t} \
             AND table_name = {tb} AND state = 'HELD' AND external_id IN ({})",
            list.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await?;
    Ok(held.len() as u64)
}

fn pending_from(r: &sea_orm::QueryResult) -> Result<PendingDelete> {
    Ok(PendingDelete {
        table: r.try_get("", "table_name")?,
        external_id: r.try_get("", "external_id")?,
        name: r.try_get("", "name")?,
        document: r.try_get("", "document")?,
        detected_run_id: r.try_get("", "detected_run_id")?,
        detected_at: r.try_get("", "detected_at")?,
        state: r.try_get("", "state")?,
    })
}
