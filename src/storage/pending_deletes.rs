//! Deletions held by the delete guard (`pending_delete`), with the name and document the
//! CRM has, and their life: HELD → APPROVED → APPLIED (by the next run), HELD or APPROVED
//! → DISCARDED (record restored), HELD or APPROVED → SUPERSEDED (the ERP sent the record
//! again). APPLIED, DISCARDED and SUPERSEDED are final; `resolved_at` is when the state
//! last changed.
//!
//! Reads and state changes go through the entity (`entities::pending_delete`); holding (an
//! insert from the CRM's table) and superseding (an update over staging) are statements
//! of [`crate::storage::bulk::pending_delete`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::crm::CrmTable;
use super::entities::pending_delete::{self, Column, Entity};
use super::{bulk, staging, Db};
use crate::domain::crm::{DeleteState, PendingDelete};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

pub use crate::domain::crm::Resolution;

/// Holds the deletions of `ids` (those the CRM has), recording the CRM's name and document.
pub async fn hold(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    run_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let crm = CrmTable::of(table)?;
    bulk::pending_delete::hold_from_crm(db, crm, tenant, run_id, ids, now).await
}

/// The external ids of the table's deletions in `state` (HELD or APPROVED).
pub async fn ids_in_state(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    state: DeleteState,
) -> Result<HashSet<String>> {
    let ids: Vec<String> = Entity::in_states(tenant.as_str(), table, &[state])
        .select_only()
        .column(Column::ExternalId)
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(ids.into_iter().collect())
}

/// Marks approved deletions applied once a run delivered them.
pub async fn mark_applied(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    for chunk in ids.chunks(2_000) {
        Entity::update_many()
            .col_expr(Column::State, Expr::value(DeleteState::Applied.as_str()))
            .col_expr(Column::ResolvedAt, Expr::value(now))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table.as_str()))
            .filter(Column::State.eq(DeleteState::Approved.as_str()))
            .filter(Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await
}

/// A page of the table's held (or approved, not yet applied) deletions, by external id.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    after: &str,
    limit: u64,
) -> Result<Vec<PendingDelete>> {
    CrmTable::of(table)?;
    let rows = Entity::in_states(tenant.as_str(), table, &DeleteState::WAITING)
        .filter(Column::ExternalId.gt(after))
        .order_by_asc(Column::ExternalId)
        .limit(limit)
        .all(db.conn())
        .await?;
    rows.into_iter().map(pending_from).collect()
}

/// A page of what the Excessivos Deletes export shows of `table`, by external id after
/// `after`: every deletion still waiting (HELD or APPROVED) whatever its date, and every
/// one detected in `[from, to)` whatever became of it.
pub async fn export_page(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    after: &str,
    limit: u64,
) -> Result<Vec<PendingDelete>> {
    CrmTable::of(table)?;
    let rows = Entity::of_table(tenant.as_str(), table)
        .filter(Column::ExternalId.gt(after))
        .filter(
            Condition::any().add(Column::State.is_in(waiting())).add(
                Condition::all()
                    .add(Column::DetectedAt.gte(from))
                    .add(Column::DetectedAt.lt(to)),
            ),
        )
        .order_by_asc(Column::ExternalId)
        .limit(limit)
        .all(db.conn())
        .await?;
    rows.into_iter().map(pending_from).collect()
}

/// Approves or discards waiting deletions (`ids`, or all when None); returns how many
/// changed state. Approving takes HELD ones (an APPROVED one stays so); discarding takes
/// HELD and APPROVED ones and restores each record in staging as the CRM has it, so the
/// ERP's tombstone no longer waits for delivery. An id whose deletion already ended is
/// refused with its final state; an id never held is not found.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    ids: Option<&[String]>,
    resolution: Resolution,
    now: DateTime<Utc>,
) -> Result<u64> {
    let crm = CrmTable::of(table)?;
    let from: &[DeleteState] = match resolution {
        Resolution::Approve => &[DeleteState::Held],
        Resolution::Discard => &DeleteState::WAITING,
    };
    let mut waiting = HashSet::new();
    for &state in from {
        waiting.extend(ids_in_state(db, tenant, table, state).await?);
    }
    let chosen: Vec<String> = match ids {
        None => waiting.into_iter().collect(),
        Some(ids) => {
            let approved = match resolution {
                Resolution::Approve => {
                    ids_in_state(db, tenant, table, DeleteState::Approved).await?
                }
                Resolution::Discard => HashSet::new(),
            };
            let mut chosen = Vec::with_capacity(ids.len());
            for id in ids {
                if waiting.contains(id) {
                    chosen.push(id.clone());
                } else if !approved.contains(id) {
                    return Err(not_waiting(db, tenant, table, id).await?);
                }
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Ok(0);
    }
    if resolution == Resolution::Discard {
        staging::restore_from_crm(db, tenant, crm, &chosen, now).await?;
    }
    let to = match resolution {
        Resolution::Approve => DeleteState::Approved,
        Resolution::Discard => DeleteState::Discarded,
    };
    let txn = db.begin_write().await?;
    for chunk in chosen.chunks(2_000) {
        Entity::update_many()
            .col_expr(Column::State, Expr::value(to.as_str()))
            .col_expr(Column::ResolvedAt, Expr::value(now))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table.as_str()))
            .filter(Column::State.is_in(from.iter().map(|s| s.as_str())))
            .filter(Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await?;
    Ok(chosen.len() as u64)
}

/// The error for resolving `id`, which waits for nothing: its final state and when it
/// was reached, or not found when it was never held.
async fn not_waiting(db: &Db, tenant: &TenantId, table: Table, id: &str) -> Result<AppError> {
    let row = Entity::find_by_id((
        tenant.as_str().to_owned(),
        table.as_str().to_owned(),
        id.to_owned(),
    ))
    .one(db.conn())
    .await?;
    let quoted = crate::domain::text::excerpt(id);
    Ok(match row {
        Some(row) => {
            let at = row
                .resolved_at
                .map_or_else(String::new, |at| format!(" at {}", at.to_rfc3339()));
            AppError::FailedPrecondition(format!(
                "the deletion of {table} {quoted} is {}{at}: nothing is left to resolve",
                row.state
            ))
        }
        None => AppError::NotFound(format!(
            "no held deletion of {table} {quoted}: list them with ListPendingDeletes"
        )),
    })
}

/// Ends the table's waiting (HELD or APPROVED) deletions whose record the ERP sent again
/// (live in staging): SUPERSEDED, final. Returns their external ids.
pub async fn supersede(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    CrmTable::of(table)?;
    bulk::pending_delete::supersede_live(db, tenant, table, now).await
}

/// The waiting states as stored.
fn waiting() -> impl Iterator<Item = &'static str> {
    DeleteState::WAITING.into_iter().map(DeleteState::as_str)
}

fn pending_from(m: pending_delete::Model) -> Result<PendingDelete> {
    let corrupt = |what: &str, value: &str| {
        AppError::Internal(anyhow::anyhow!(
            "stored held deletion {:?} has unknown {what} {value:?}",
            m.external_id
        ))
    };
    Ok(PendingDelete {
        table: Table::parse(&m.table_name).ok_or_else(|| corrupt("table", &m.table_name))?,
        state: DeleteState::parse(&m.state).ok_or_else(|| corrupt("state", &m.state))?,
        external_id: m.external_id,
        name: m.name,
        document: m.document,
        detected_run_id: m.detected_run_id,
        state_changed_at: m.resolved_at.unwrap_or(m.detected_at),
        detected_at: m.detected_at,
    })
}
