//! Deletions held by the delete guard (`pending_delete`), with the name and document the
//! CRM has, and their life: HELD → APPROVED → APPLIED (by the next run), HELD or APPROVED
//! → DISCARDED (record restored and kept in the CRM), HELD or APPROVED → SUPERSEDED (the
//! ERP sent the record again). APPLIED, DISCARDED and SUPERSEDED are final, but for one
//! way back: a DISCARDED deletion keeps its record in the CRM (`kept_hash`) until the ERP
//! sends the record again (no longer kept) or someone reopens it (HELD again). `resolved_at` is when the state last
//! changed, `decided_by` and `decided_run_id` who changed it.
//!
//! Reads and state changes go through the entity (`entities::pending_delete`); holding (an
//! insert from the CRM's table) and superseding (an update over staging) are statements
//! of [`crate::storage::bulk::pending_delete`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::crm::CrmTable;
use super::entities::pending_delete::{self, Column, Entity};
use super::{bulk, staging, Db};
use crate::domain::crm::{DeleteFilter, DeleteState, PendingDelete, DECIDED_BY_RUN};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

pub use crate::domain::crm::{Resolution, SentAgain};

/// Holds the deletions of `ids` (those the CRM has), recording the CRM's name and document;
/// decided by the run `run_id`.
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

/// The external ids of the table's deletions in `state`.
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

/// The external ids of the table's records kept in the CRM by a discard.
pub async fn kept_ids(db: &Db, tenant: &TenantId, table: Table) -> Result<HashSet<String>> {
    let ids: Vec<String> = Entity::kept(tenant.as_str(), table)
        .select_only()
        .column(Column::ExternalId)
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(ids.into_iter().collect())
}

/// How many of the tenant's deletions are HELD, per guarded table (tables with none left
/// out).
pub async fn held_counts(db: &Db, tenant: &TenantId) -> Result<Vec<(Table, u64)>> {
    let mut counts = Vec::new();
    for table in Table::CRM {
        let n = Entity::in_states(tenant.as_str(), table, &[DeleteState::Held])
            .count(db.conn())
            .await?;
        if n > 0 {
            counts.push((table, n));
        }
    }
    Ok(counts)
}

/// Keeps again records kept in the CRM whose deletion the ERP sent again: each is
/// restored in staging as the CRM has it (nothing is delivered) and its kept version
/// recorded; they stay DISCARDED. Returns how many were restored.
pub async fn keep_again(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<u64> {
    let crm = CrmTable::of(table)?;
    let restored = staging::restore_from_crm(db, tenant, crm, ids, now).await?;
    let txn = db.begin_write().await?;
    for (id, hash) in &restored {
        Entity::update_many()
            .col_expr(Column::KeptHash, Expr::value(*hash))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table.as_str()))
            .filter(Column::ExternalId.eq(id.as_str()))
            .filter(Column::State.eq(DeleteState::Discarded.as_str()))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await?;
    Ok(restored.len() as u64)
}

/// Marks approved deletions applied once the run `run_id` delivered them.
pub async fn mark_applied(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    ids: &[String],
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    for chunk in ids.chunks(2_000) {
        Entity::update_many()
            .col_expr(Column::State, Expr::value(DeleteState::Applied.as_str()))
            .col_expr(Column::ResolvedAt, Expr::value(now))
            .col_expr(Column::DecidedBy, Expr::value(DECIDED_BY_RUN))
            .col_expr(Column::DecidedRunId, Expr::value(run_id))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table.as_str()))
            .filter(Column::State.eq(DeleteState::Approved.as_str()))
            .filter(Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await
}

/// A page of the table's deletions that pass `filter`, newest first: by the time they
/// entered their state (`resolved_at`, else `detected_at`), then by external id, after
/// the (time, id) `after` of the previous page's last one.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    filter: &DeleteFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<PendingDelete>> {
    CrmTable::of(table)?;
    let changed_at = || {
        Expr::expr(Func::coalesce([
            Expr::col(Column::ResolvedAt).into(),
            Expr::col(Column::DetectedAt).into(),
        ]))
    };
    let mut q = Entity::in_states(tenant.as_str(), table, &filter.states);
    if let Some(run) = &filter.run_id {
        q = q.filter(
            Condition::any()
                .add(Column::DetectedRunId.eq(run.as_str()))
                .add(Column::DecidedRunId.eq(run.as_str())),
        );
    }
    if let Some((at, id)) = after {
        q = q.filter(
            Condition::any().add(changed_at().lt(at)).add(
                Condition::all()
                    .add(changed_at().eq(at))
                    .add(Column::ExternalId.gt(id)),
            ),
        );
    }
    let rows = q
        .order_by(changed_at(), Order::Desc)
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

/// Approves, discards or reopens deletions (`ids`, or all when None) as `decided_by`;
/// returns how many changed state. Approving takes HELD ones (an APPROVED one stays so);
/// discarding takes HELD and APPROVED ones, restores each record in staging as the CRM
/// has it, so the ERP's tombstone no longer waits for delivery, and keeps it in the CRM;
/// reopening takes kept ones back to HELD and stages their deletion again. An id in
/// another state is refused with its state; an id never held is not found.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    ids: Option<&[String]>,
    resolution: Resolution,
    decided_by: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    let crm = CrmTable::of(table)?;
    let from = resolution.from_states();
    let waiting = match resolution {
        Resolution::Reopen => kept_ids(db, tenant, table).await?,
        Resolution::Approve | Resolution::Discard => {
            let mut waiting = HashSet::new();
            for &state in from {
                waiting.extend(ids_in_state(db, tenant, table, state).await?);
            }
            waiting
        }
    };
    let chosen: Vec<String> = match ids {
        None => {
            let mut all: Vec<String> = waiting.into_iter().collect();
            all.sort();
            all
        }
        Some(ids) => {
            let approved = match resolution {
                Resolution::Approve => {
                    ids_in_state(db, tenant, table, DeleteState::Approved).await?
                }
                Resolution::Discard | Resolution::Reopen => HashSet::new(),
            };
            let mut chosen = Vec::with_capacity(ids.len());
            for id in ids {
                if waiting.contains(id) {
                    if !chosen.contains(id) {
                        chosen.push(id.clone());
                    }
                } else if !approved.contains(id) {
                    return Err(not_waiting(db, tenant, table, id, resolution).await?);
                }
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Ok(0);
    }
    let kept: HashMap<String, i64> = match resolution {
        Resolution::Discard => staging::restore_from_crm(db, tenant, crm, &chosen, now)
            .await?
            .into_iter()
            .collect(),
        Resolution::Reopen => {
            staging::tombstone_again(db, tenant, table.as_str(), &chosen, now).await?;
            HashMap::new()
        }
        Resolution::Approve => HashMap::new(),
    };
    let to = resolution.to_state();
    let update = || {
        Entity::update_many()
            .col_expr(Column::State, Expr::value(to.as_str()))
            .col_expr(Column::ResolvedAt, Expr::value(now))
            .col_expr(Column::DecidedBy, Expr::value(decided_by))
            .col_expr(Column::DecidedRunId, Expr::value(Option::<String>::None))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::TableName.eq(table.as_str()))
            .filter(Column::State.is_in(from.iter().map(|s| s.as_str())))
    };
    let txn = db.begin_write().await?;
    if resolution == Resolution::Discard {
        // Each record keeps the version restored from the CRM (none when the CRM lacks it).
        for id in &chosen {
            update()
                .col_expr(Column::KeptHash, Expr::value(kept.get(id).copied()))
                .filter(Column::ExternalId.eq(id.as_str()))
                .exec(&*txn)
                .await?;
        }
    } else {
        for chunk in chosen.chunks(2_000) {
            update()
                .col_expr(Column::KeptHash, Expr::value(Option::<i64>::None))
                .filter(Column::ExternalId.is_in(chunk.iter().map(String::as_str)))
                .exec(&*txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(chosen.len() as u64)
}

/// The error for resolving `id` in a state `resolution` does not take: its state and when
/// it was reached, or not found when it was never held.
async fn not_waiting(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    id: &str,
    resolution: Resolution,
) -> Result<AppError> {
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
            let why = match resolution {
                Resolution::Reopen => "only a deletion kept by a discard can be reopened",
                Resolution::Approve | Resolution::Discard => "nothing is left to resolve",
            };
            AppError::FailedPrecondition(format!(
                "the deletion of {table} {quoted} is {}{at}: {why}",
                row.state
            ))
        }
        None => AppError::NotFound(format!(
            "no held deletion of {table} {quoted}: list them with ListPendingDeletes"
        )),
    })
}

/// Ends what the ERP sending a record again ends: the table's waiting (HELD or APPROVED)
/// deletions whose record is live in staging become SUPERSEDED (final, decided by the ERP
/// in run `run_id`); its kept records live in another version than the one restored are
/// no longer kept (still DISCARDED: a later deletion of them is judged by the guard again).
pub async fn supersede(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<SentAgain> {
    CrmTable::of(table)?;
    bulk::pending_delete::supersede_live(db, tenant, table, run_id, now).await
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
        kept: m.state == DeleteState::Discarded.as_str() && m.kept_hash.is_some(),
        decided_by: m.decided_by.unwrap_or_default(),
        decided_run_id: m.decided_run_id.unwrap_or_default(),
    })
}
