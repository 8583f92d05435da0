//! Deletes of a tenant's old history, one bounded batch per transaction: runs with their
//! stages and tables, events, ABC reports and category changes older than the tenant's
//! windows, never what the overview, a run's trace or the ABC page still shows (see
//! [`crate::domain::retention`]). Every query walks an index from its old end and stops
//! at its LIMIT or at the cutoff: runs by (tenant_id, started_at), events by (tenant_id,
//! cursor), stages and tables by their run's key, reports by (tenant_id, computed_at),
//! category changes by (tenant_id, changed_at) and, for "a later change exists", by
//! (tenant_id, external_id, id).
//!
//! Of these tables only the runs count in the tenant's size (`tenant_usage.run_bytes`):
//! a batch measures the runs it deletes and takes them off in the same transaction. On
//! PostgreSQL each batch holds a per-tenant advisory lock until it commits: a second
//! replica waits, then reads what is left, so the two never lock the same rows in
//! different orders and never take the same run off the counter twice. (SQLite has one
//! writer: the batches of two purges follow each other.)

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::bulk::backend::hold_until_commit;
use super::entities::{abc_report, category_change, run_stage, run_table, sync_event, sync_run};
use super::usage::{self, Counted};
use super::Db;
use crate::domain::abc::ReportState;
use crate::domain::retention::{Overrides, KEEP_RUNS};
use crate::domain::run::RunStatus;
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Runs deleted per batch: with their stages and tables (a dozen rows each) a batch
/// stays near the events' [`crate::worker::retention::BATCH`].
const RUNS_PER_BATCH: u64 = 200;

/// Rows one batch deleted, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// `sync_run` rows.
    pub runs: u64,
    /// `run_stage` rows.
    pub stages: u64,
    /// `run_table` rows.
    pub tables: u64,
    /// `sync_event` rows.
    pub events: u64,
    /// `abc_report` rows.
    pub reports: u64,
    /// `category_change` rows.
    pub category_changes: u64,
}

impl Deleted {
    /// Every table with its count, as the metric labels them.
    pub fn by_table(&self) -> [(&'static str, u64); 6] {
        [
            ("sync_run", self.runs),
            ("run_stage", self.stages),
            ("run_table", self.tables),
            ("sync_event", self.events),
            ("abc_report", self.reports),
            ("category_change", self.category_changes),
        ]
    }

    /// Rows in all.
    pub fn total(&self) -> u64 {
        self.by_table().iter().map(|(_, n)| n).sum()
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, o: Deleted) {
        self.runs += o.runs;
        self.stages += o.stages;
        self.tables += o.tables;
        self.events += o.events;
        self.reports += o.reports;
        self.category_changes += o.category_changes;
    }
}

/// A page of tenants with their overrides, by id after `after` (None: from the first).
pub async fn tenants_page(
    db: &Db,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<(TenantId, Overrides)>> {
    use super::entities::tenant::{Column, Entity};
    let mut q = Entity::find()
        .select_only()
        .columns([Column::Id, Column::RunHistoryDays, Column::AbcHistoryDays])
        .order_by_asc(Column::Id)
        .limit(limit);
    if let Some(after) = after {
        q = q.filter(Column::Id.gt(after));
    }
    let rows: Vec<(String, Option<i32>, Option<i32>)> = q.into_tuple().all(db.conn()).await?;
    rows.into_iter()
        .map(|(id, runs, abc)| {
            let id =
                TenantId::parse(&id).map_err(|e| anyhow::anyhow!("stored tenant {id:?}: {e}"))?;
            let days = |d: Option<i32>| d.and_then(|d| u32::try_from(d).ok());
            Ok((
                id,
                Overrides {
                    run_history_days: days(runs),
                    abc_history_days: days(abc),
                },
            ))
        })
        .collect()
}

/// Deletes one batch of the tenant's run history from before `cutoff`: at most `batch`
/// events and [`RUNS_PER_BATCH`] runs with their stages and tables. Kept whatever their
/// age: the newest [`KEEP_RUNS`] runs and the newest successful one (the overview's run
/// log, average, reconciliation and health) with their events, and running runs. The
/// batch is full when either count reached its bound.
pub async fn purge_runs(
    db: &Db,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<(Deleted, bool)> {
    let txn = db.begin_write().await?;
    hold_until_commit(&txn, &lock_key(tenant)).await?;
    let kept = kept_runs(&txn, tenant).await?;
    let events = old_events(&txn, tenant, cutoff, &kept, batch).await?;
    let mut deleted = Deleted::default();
    if !events.is_empty() {
        deleted.events = sync_event::Entity::delete_many()
            .filter(sync_event::Column::Cursor.is_in(events.iter().copied()))
            .exec(&*txn)
            .await?
            .rows_affected;
    }
    let runs: Vec<String> = sync_run::Entity::find()
        .select_only()
        .column(sync_run::Column::Id)
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::StartedAt.lt(cutoff))
        .filter(sync_run::Column::Status.ne(RunStatus::Running.as_str()))
        .filter(sync_run::Column::Id.is_not_in(kept.iter().map(String::as_str)))
        .order_by_asc(sync_run::Column::StartedAt)
        .limit(RUNS_PER_BATCH)
        .into_tuple()
        .all(&*txn)
        .await?;
    if !runs.is_empty() {
        let ids = || runs.iter().map(String::as_str);
        let all: Vec<&str> = ids().collect();
        let before = usage::measure(&*txn, Counted::Runs, &all).await?;
        usage::add_changes(&txn, Counted::Runs, &before, &HashMap::new()).await?;
        deleted.stages = run_stage::Entity::delete_many()
            .filter(run_stage::Column::RunId.is_in(ids()))
            .exec(&*txn)
            .await?
            .rows_affected;
        deleted.tables = run_table::Entity::delete_many()
            .filter(run_table::Column::RunId.is_in(ids()))
            .exec(&*txn)
            .await?
            .rows_affected;
        deleted.runs = sync_run::Entity::delete_many()
            .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
            .filter(sync_run::Column::Id.is_in(ids()))
            .exec(&*txn)
            .await?
            .rows_affected;
    }
    txn.commit().await?;
    let full = events.len() as u64 >= batch || runs.len() as u64 >= RUNS_PER_BATCH;
    Ok((deleted, full))
}

/// The runs kept whatever their age: the newest [`KEEP_RUNS`] and the newest that
/// succeeded (its end is the overview's "last success" and the health rule's input).
async fn kept_runs(txn: &DatabaseTransaction, tenant: &TenantId) -> Result<Vec<String>> {
    let mut kept: Vec<String> = sync_run::Entity::find()
        .select_only()
        .column(sync_run::Column::Id)
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(sync_run::Column::StartedAt)
        .limit(KEEP_RUNS)
        .into_tuple()
        .all(txn)
        .await?;
    let success: Option<String> = sync_run::Entity::successes_of(tenant.as_str())
        .select_only()
        .column(sync_run::Column::Id)
        .into_tuple()
        .one(txn)
        .await?;
    kept.extend(success);
    Ok(kept)
}

/// Cursors of at most `batch` of the tenant's events written before `cutoff`, oldest
/// first, none of a kept run. Bounded by the first cursor at or after the cutoff, so the
/// walk never reaches the recent events (a `LIMIT` alone would scan them all once the
/// old ones are gone).
async fn old_events(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    kept: &[String],
    batch: u64,
) -> Result<Vec<i64>> {
    use sync_event::{Column, Entity};
    let first_recent: Option<i64> = Entity::find()
        .select_only()
        .column(Column::Cursor)
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::At.gte(cutoff))
        .order_by_asc(Column::Cursor)
        .into_tuple()
        .one(txn)
        .await?;
    let mut q = Entity::find()
        .select_only()
        .column(Column::Cursor)
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::At.lt(cutoff))
        .filter(
            Column::RunId
                .is_null()
                .or(Column::RunId.is_not_in(kept.iter().map(String::as_str))),
        )
        .order_by_asc(Column::Cursor)
        .limit(batch);
    if let Some(c) = first_recent {
        q = q.filter(Column::Cursor.lt(c));
    }
    Ok(q.into_tuple().all(txn).await?)
}

/// Deletes one batch of the tenant's ABC history from before `cutoff`: at most `batch`
/// reports and `batch` category changes. Kept whatever their age: the classification in
/// force, the newest report whatever its state, every held one (its `abc_held` rows
/// refer to it), and each company's latest category change (its current entry in the
/// category history). The batch is full when either count reached `batch`.
pub async fn purge_abc(
    db: &Db,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<(Deleted, bool)> {
    let txn = db.begin_write().await?;
    hold_until_commit(&txn, &lock_key(tenant)).await?;
    let kept = kept_reports(&txn, tenant).await?;
    let reports: Vec<String> = abc_report::Entity::find()
        .select_only()
        .column(abc_report::Column::RunId)
        .filter(abc_report::Column::TenantId.eq(tenant.as_str()))
        .filter(abc_report::Column::ComputedAt.lt(cutoff))
        .filter(abc_report::Column::State.ne(ReportState::Held.as_str()))
        .filter(abc_report::Column::RunId.is_not_in(kept.iter().map(String::as_str)))
        .order_by_asc(abc_report::Column::ComputedAt)
        .limit(batch)
        .into_tuple()
        .all(&*txn)
        .await?;
    let mut deleted = Deleted::default();
    if !reports.is_empty() {
        deleted.reports = abc_report::Entity::delete_many()
            .filter(abc_report::Column::TenantId.eq(tenant.as_str()))
            .filter(abc_report::Column::RunId.is_in(reports.iter().map(String::as_str)))
            .exec(&*txn)
            .await?
            .rows_affected;
    }
    let changes = superseded_changes(&txn, tenant, cutoff, batch).await?;
    if !changes.is_empty() {
        deleted.category_changes = category_change::Entity::delete_many()
            .filter(category_change::Column::Id.is_in(changes.iter().copied()))
            .exec(&*txn)
            .await?
            .rows_affected;
    }
    txn.commit().await?;
    let full = reports.len() as u64 >= batch || changes.len() as u64 >= batch;
    Ok((deleted, full))
}

/// The reports kept whatever their age (held ones are left out by their state): the
/// newest whatever its state, and the classification in force.
async fn kept_reports(txn: &DatabaseTransaction, tenant: &TenantId) -> Result<Vec<String>> {
    let newest = |states: Option<[&'static str; 2]>| {
        let mut q = abc_report::Entity::of_tenant_latest_first(tenant.as_str())
            .select_only()
            .column(abc_report::Column::RunId);
        if let Some(states) = states {
            q = q.filter(abc_report::Column::State.is_in(states));
        }
        q.into_tuple::<String>()
    };
    let in_force = [ReportState::Applied, ReportState::Approved].map(ReportState::as_str);
    let mut kept: Vec<String> = newest(None).one(txn).await?.into_iter().collect();
    kept.extend(newest(Some(in_force)).one(txn).await?);
    Ok(kept)
}

/// Ids of at most `batch` of the tenant's category changes made before `cutoff` for
/// which the same company has a later change, oldest first.
async fn superseded_changes(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<Vec<i64>> {
    use category_change::{Column, Entity};
    let later = Alias::new("later");
    let a_later_change = Query::select()
        .expr(Expr::val(1))
        .from_as(Entity, later.clone())
        .and_where(Expr::col((later.clone(), Column::TenantId)).equals((Entity, Column::TenantId)))
        .and_where(
            Expr::col((later.clone(), Column::ExternalId)).equals((Entity, Column::ExternalId)),
        )
        .and_where(Expr::col((later, Column::Id)).gt(Expr::col((Entity, Column::Id))))
        .to_owned();
    Ok(Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::ChangedAt.lt(cutoff))
        .filter(Expr::exists(a_later_change))
        .order_by_asc(Column::ChangedAt)
        .limit(batch)
        .into_tuple()
        .all(txn)
        .await?)
}

/// The advisory lock a tenant's retention batches hold on PostgreSQL.
fn lock_key(tenant: &TenantId) -> String {
    format!("erpsync.retention.{tenant}")
}
