//! Queries of `sync_run`. All of them walk the (tenant_id, started_at) index from the
//! newest end, so the overview stays fast however long the history.

use anyhow::anyhow;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use super::due::Retry;
use super::entities::{run_stage, run_table, sync_lease, sync_run};
use super::usage::{self, Counted};
use super::{lease, Db};
use crate::domain::due::{Moment, RunRetries};
use crate::domain::run::{
    CrmCountSource, RunDetail, RunStatus, RunSummary, RunTrigger, StageProgress, StageTiming,
    TableCounts,
};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

/// How many finished runs the average duration covers.
pub const AVERAGE_OVER: u64 = 30;

/// The newest `limit` runs, newest first.
pub async fn recent(db: &Db, tenant: &TenantId, limit: u64) -> Result<Vec<RunSummary>> {
    recent_in(db.conn(), tenant, limit).await
}

/// [`recent`] on `conn` (a transaction's own view).
async fn recent_in(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    limit: u64,
) -> Result<Vec<RunSummary>> {
    sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(sync_run::Column::StartedAt)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// The newest run that is not running any more.
pub async fn last_finished(db: &Db, tenant: &TenantId) -> Result<Option<RunSummary>> {
    sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Status.ne(RunStatus::Running.as_str()))
        .order_by_desc(sync_run::Column::StartedAt)
        .one(db.conn())
        .await?
        .map(from_model)
        .transpose()
}

/// When the newest successful (or partial) run finished.
pub async fn last_success_at(db: &Db, tenant: &TenantId) -> Result<Option<DateTime<Utc>>> {
    super::due::last_success_at(db.conn(), tenant.as_str()).await
}

/// Mean duration of the last [`AVERAGE_OVER`] runs that ran to their end (interrupted
/// runs are left out: their time says nothing of a run's length); None when none.
pub async fn average_duration(db: &Db, tenant: &TenantId) -> Result<Option<Duration>> {
    let durations: Vec<Option<i64>> = sync_run::Entity::find()
        .select_only()
        .column(sync_run::Column::DurationMs)
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Status.is_in([
            RunStatus::Success.as_str(),
            RunStatus::Partial.as_str(),
            RunStatus::Failed.as_str(),
        ]))
        .filter(sync_run::Column::DurationMs.is_not_null())
        .order_by_desc(sync_run::Column::StartedAt)
        .limit(AVERAGE_OVER)
        .into_tuple()
        .all(db.conn())
        .await?;
    let ms: Vec<i64> = durations.into_iter().flatten().collect();
    if ms.is_empty() {
        return Ok(None);
    }
    let count = i64::try_from(ms.len()).unwrap_or(i64::MAX);
    Ok(Some(Duration::milliseconds(ms.iter().sum::<i64>() / count)))
}

fn from_model(m: sync_run::Model) -> Result<RunSummary> {
    Ok(RunSummary {
        status: RunStatus::parse(&m.status)
            .ok_or_else(|| anyhow!("stored run {} has unknown status {:?}", m.id, m.status))?,
        trigger: RunTrigger::parse(&m.trigger)
            .ok_or_else(|| anyhow!("stored run {} has unknown trigger {:?}", m.id, m.trigger))?,
        id: m.id,
        started_at: m.started_at,
        finished_at: m.finished_at,
        error: m.error,
    })
}

/// Records a new RUNNING run.
pub async fn create(db: &Db, tenant: &TenantId, run: &RunSummary) -> Result<()> {
    let txn = db.begin_write().await?;
    insert(&txn, tenant, run).await?;
    txn.commit().await
}

/// Starts `run` if the tenant's lease is free: takes the lease for `holder` and inserts
/// the run's row in one transaction, so whoever finds the lease taken finds its run too.
/// When the lease is held, returns the run holding it (None when what holds it is no run,
/// such as an ABC shift being resolved).
pub async fn start(
    db: &Db,
    tenant: &TenantId,
    holder: &str,
    run: &RunSummary,
    lease_ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Result<(), Option<RunSummary>>> {
    let txn = db.begin_write().await?;
    if let Err(existing) = lease::acquire_in(&txn, tenant, holder, &run.id, lease_ttl, now).await? {
        let running = sync_run::Entity::find_by_id(existing)
            .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
            .one(&*txn)
            .await?
            .map(from_model)
            .transpose()?;
        return Ok(Err(running));
    }
    insert(&txn, tenant, run).await?;
    super::due::clear_retry_in(&txn, tenant).await?;
    txn.commit().await?;
    Ok(Ok(()))
}

async fn insert(txn: &DatabaseTransaction, tenant: &TenantId, run: &RunSummary) -> Result<()> {
    sync_run::Entity::insert(sync_run::ActiveModel {
        id: Set(run.id.clone()),
        tenant_id: Set(tenant.as_str().to_owned()),
        status: Set(run.status.as_str().to_owned()),
        trigger: Set(run.trigger.as_str().to_owned()),
        started_at: Set(run.started_at),
        finished_at: Set(None),
        duration_ms: Set(None),
        error: Set(None),
        progress: Set(None),
    })
    .exec_without_returning(txn)
    .await?;
    let after = usage::measure(txn, Counted::Runs, &[run.id.as_str()]).await?;
    usage::add_changes(txn, Counted::Runs, &Default::default(), &after).await
}

/// Records how a run ended, with its per-table counts and stage timings, at once.
pub async fn finish(db: &Db, run: &RunDetail) -> Result<()> {
    let txn = db.begin_write().await?;
    finish_in(&txn, run).await?;
    txn.commit().await
}

/// [`finish`], and in the same transaction [`reschedule`] as the run's end leaves the
/// tenant: whoever sees the run ended sees its retry too, and a tick meanwhile never finds
/// the tenant's due row held by this write.
pub async fn finish_and_reschedule(
    db: &Db,
    tenant: &TenantId,
    run: &RunDetail,
    retries: &RunRetries,
) -> Result<()> {
    let txn = db.begin_write().await?;
    finish_in(&txn, run).await?;
    let ended = run.summary.finished_at.unwrap_or_else(Utc::now);
    reschedule_in(&txn, tenant, retries, ended).await?;
    txn.commit().await
}

/// Stores when the tenant's last run is retried (under `retries`) and when the scheduler
/// next looks at the tenant, as its runs stand at `now` (one ended, or was marked
/// INTERRUPTED, or started).
pub async fn reschedule(
    db: &Db,
    tenant: &TenantId,
    retries: &RunRetries,
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    reschedule_in(&txn, tenant, retries, now).await?;
    txn.commit().await
}

async fn reschedule_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    retries: &RunRetries,
    now: DateTime<Utc>,
) -> Result<()> {
    let recent = recent_in(txn, tenant, u64::from(retries.max) + 1).await?;
    let retry = retries.retry_at(&recent).map(|(at, _)| at);
    if let Some(t) = super::tenants::get_in(txn, tenant).await? {
        super::due::write_in(txn, &t, Retry::Set(retry), Moment::Changed(now), None).await?;
    }
    Ok(())
}

async fn finish_in(txn: &DatabaseTransaction, run: &RunDetail) -> Result<()> {
    let s = &run.summary;
    let before = usage::measure(txn, Counted::Runs, &[s.id.as_str()]).await?;
    let ended = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, Expr::value(s.status.as_str()))
        .col_expr(sync_run::Column::FinishedAt, Expr::value(s.finished_at))
        .col_expr(
            sync_run::Column::DurationMs,
            Expr::value(s.duration().map(|d| d.num_milliseconds())),
        )
        .col_expr(sync_run::Column::Error, Expr::value(s.error.clone()))
        // The stages are in run_stage now; a finished run has no progress.
        .col_expr(
            sync_run::Column::Progress,
            Expr::value(Option::<String>::None),
        )
        .filter(sync_run::Column::Id.eq(s.id.as_str()))
        // A run another replica marked INTERRUPTED meanwhile (its lease had expired)
        // keeps that end, and the stages recorded with it.
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .exec(txn)
        .await?
        .rows_affected;
    if ended == 0 {
        tracing::warn!(run = %s.id, status = s.status.as_str(), "the run had already been ended elsewhere (INTERRUPTED); its own end is not recorded");
        return Ok(());
    }
    let after = usage::measure(txn, Counted::Runs, &[s.id.as_str()]).await?;
    usage::add_changes(txn, Counted::Runs, &before, &after).await?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let tables = run.tables.iter().map(|t| run_table::ActiveModel {
        run_id: Set(s.id.clone()),
        table_name: Set(t.table.clone()),
        received: Set(n(t.received)),
        inserted: Set(n(t.inserted)),
        updated: Set(n(t.updated)),
        deleted: Set(n(t.deleted)),
        held: Set(n(t.held)),
        rejected: Set(n(t.rejected)),
        erp_count: Set(t.erp_count.map(n)),
        staged_count: Set(n(t.staged_count)),
        crm_count: Set(t.crm_count.map(n)),
        crm_counted_at: Set(t.crm_counted_at),
        crm_count_source: Set(t.crm_count_source.map(|s| s.as_str().to_owned())),
    });
    run_table::Entity::insert_many(tables)
        .on_empty_do_nothing()
        .exec_without_returning(txn)
        .await?;
    insert_stages(txn, &s.id, &run.stages).await
}

/// Records the stages `run_id` went through, in run order.
async fn insert_stages(
    txn: &DatabaseTransaction,
    run_id: &str,
    stages: &[StageTiming],
) -> Result<()> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let rows = stages
        .iter()
        .enumerate()
        .map(|(position, st)| run_stage::ActiveModel {
            run_id: Set(run_id.to_owned()),
            position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
            stage: Set(st.stage.clone()),
            duration_ms: Set(n(st.duration_ms)),
            outcome: Set(st.outcome.clone()),
        });
    run_stage::Entity::insert_many(rows)
        .on_empty_do_nothing()
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// A run ended by someone else than itself (marked INTERRUPTED): the stages its stored
/// progress says it finished become its recorded stages, with their times and outcomes,
/// as its own end would have recorded them. A progress that does not decode is left out
/// (logged): the run's end is recorded all the same.
async fn keep_finished_stages(
    txn: &DatabaseTransaction,
    run_id: &str,
    progress: Option<String>,
) -> Result<()> {
    let stages = match decode_progress(progress) {
        Ok(p) => p.map(|p| p.stages).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(run = %run_id, error = ?anyhow::Error::from(e), "an interrupted run's progress does not decode; its stages are not kept");
            Vec::new()
        }
    };
    insert_stages(txn, run_id, &stages).await
}

/// One run of the tenant with its counts and timings; None when there is no such run.
pub async fn get(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Option<RunDetail>> {
    let Some(model) = sync_run::Entity::find_by_id(run_id)
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .one(db.conn())
        .await?
    else {
        return Ok(None);
    };
    let progress = model.progress.clone();
    let summary = from_model(model)?;
    let tables = run_table::Entity::of_run(run_id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(counts)
        .collect();
    let stages = run_stage::Entity::of_run(run_id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(|r| StageTiming {
            stage: r.stage,
            duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
            outcome: r.outcome,
        })
        .collect();
    let (mut current, mut stages) = (None, stages);
    if summary.status == RunStatus::Running {
        if let Some(progress) = decode_progress(progress)? {
            (stages, current) = (progress.stages, progress.current);
        }
    } else if stages.is_empty() {
        // A run marked INTERRUPTED before its stages were kept at that moment still
        // shows the ones its progress recorded.
        if let Ok(Some(progress)) = decode_progress(progress) {
            stages = progress.stages;
        }
    }
    Ok(Some(RunDetail {
        summary,
        tables,
        stages,
        current,
    }))
}

/// What a RUNNING run stores of its progress.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Progress {
    stages: Vec<StageTiming>,
    current: Option<StageProgress>,
}

/// Records how far the RUNNING run `run_id` got: the stages it finished and the one
/// under way.
pub async fn report_progress(
    db: &Db,
    run_id: &str,
    stages: &[StageTiming],
    current: &StageProgress,
) -> Result<()> {
    let progress = serde_json::to_string(&Progress {
        stages: stages.to_vec(),
        current: Some(current.clone()),
    })
    .map_err(|e| AppError::Internal(anyhow!("run progress does not encode: {e}")))?;
    let txn = db.begin_write().await?;
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Progress, Expr::value(progress))
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// A RUNNING run's stored progress, decoded.
fn decode_progress(text: Option<String>) -> Result<Option<Progress>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| AppError::Internal(anyhow!("stored run progress is corrupt: {e}")))
    })
    .transpose()
}

/// A page of the tenant's runs, newest first, optionally of one status, started before
/// the (started_at, id) of the previous page's last run.
pub async fn page(
    db: &Db,
    tenant: &TenantId,
    status: Option<RunStatus>,
    before: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<RunSummary>> {
    let mut q = sync_run::Entity::find().filter(sync_run::Column::TenantId.eq(tenant.as_str()));
    if let Some(s) = status {
        q = q.filter(sync_run::Column::Status.eq(s.as_str()));
    }
    if let Some((at, id)) = before {
        q = q.filter(
            Condition::any()
                .add(sync_run::Column::StartedAt.lt(at))
                .add(
                    Condition::all()
                        .add(sync_run::Column::StartedAt.eq(at))
                        .add(sync_run::Column::Id.lt(id)),
                ),
        );
    }
    q.order_by_desc(sync_run::Column::StartedAt)
        .order_by_desc(sync_run::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// A page of the tenant's runs started in `[from, to)`, oldest first, after the
/// (started_at, id) `after`, each with its per-table counts (of `tables` only, when
/// given); for the RUNS export.
pub async fn export_page(
    db: &Db,
    tenant: &TenantId,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    tables: Option<&[&str]>,
    after: Option<&(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<(RunSummary, Vec<TableCounts>)>> {
    let mut q = sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::StartedAt.gte(from))
        .filter(sync_run::Column::StartedAt.lt(to));
    if let Some((at, id)) = after {
        q = q.filter(
            Condition::any()
                .add(sync_run::Column::StartedAt.gt(*at))
                .add(
                    Condition::all()
                        .add(sync_run::Column::StartedAt.eq(*at))
                        .add(sync_run::Column::Id.gt(id.as_str())),
                ),
        );
    }
    let runs: Vec<RunSummary> = q
        .order_by_asc(sync_run::Column::StartedAt)
        .order_by_asc(sync_run::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(from_model)
        .collect::<Result<_>>()?;
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = run_table::Entity::find()
        .filter(run_table::Column::RunId.is_in(runs.iter().map(|r| r.id.as_str())));
    if let Some(tables) = tables {
        q = q.filter(run_table::Column::TableName.is_in(tables.iter().copied()));
    }
    let rows = q
        .order_by_asc(run_table::Column::RunId)
        .order_by_asc(run_table::Column::TableName)
        .all(db.conn())
        .await?;
    let mut per_run: std::collections::HashMap<String, Vec<TableCounts>> = Default::default();
    for r in rows {
        per_run.entry(r.run_id.clone()).or_default().push(counts(r));
    }
    Ok(runs
        .into_iter()
        .map(|run| {
            let tables = per_run.remove(&run.id).unwrap_or_default();
            (run, tables)
        })
        .collect())
}

/// Marks RUNNING runs whose lease is gone or expires before `lease_cutoff` as
/// INTERRUPTED at `now` (their holder crashed or stopped); returns them (tenant, run id).
///
/// Each run is marked by an update that re-checks the condition, so when two servers
/// sweep at once a run is marked, and returned, by one of them.
pub async fn mark_interrupted(
    db: &Db,
    now: DateTime<Utc>,
    lease_cutoff: DateTime<Utc>,
) -> Result<Vec<(TenantId, String)>> {
    use sync_run::Column;
    let live_lease = sync_lease::Entity::find()
        .select_only()
        .expr(Expr::value(1))
        .filter(
            Expr::col((sync_lease::Entity, sync_lease::Column::RunId))
                .equals((sync_run::Entity, Column::Id)),
        )
        .filter(sync_lease::Column::ExpiresAt.gt(lease_cutoff))
        .into_query();
    let orphaned = Condition::all()
        .add(Column::Status.eq(RunStatus::Running.as_str()))
        .add(Expr::exists(live_lease).not());
    let txn = db.begin_write().await?;
    let candidates: Vec<(String, String, Option<String>)> = sync_run::Entity::find()
        .select_only()
        .columns([Column::TenantId, Column::Id, Column::Progress])
        .filter(orphaned.clone())
        .into_tuple()
        .all(&*txn)
        .await?;
    let mut marked = Vec::with_capacity(candidates.len());
    for (tenant, id, progress) in candidates {
        let before = usage::measure(&*txn, Counted::Runs, &[id.as_str()]).await?;
        let n = sync_run::Entity::update_many()
            .col_expr(Column::Status, Expr::value(RunStatus::Interrupted.as_str()))
            .col_expr(Column::FinishedAt, Expr::value(now))
            .col_expr(Column::Error, Expr::value(INTERRUPTED_CAUSE))
            .col_expr(Column::Progress, Expr::value(Option::<String>::None))
            .filter(Column::Id.eq(id.as_str()))
            .filter(orphaned.clone())
            .exec(&*txn)
            .await?
            .rows_affected;
        if n == 1 {
            keep_finished_stages(&txn, &id, progress).await?;
            let after = usage::measure(&*txn, Counted::Runs, &[id.as_str()]).await?;
            usage::add_changes(&txn, Counted::Runs, &before, &after).await?;
            let tenant = TenantId::parse(&tenant)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("stored tenant id: {e}")))?;
            marked.push((tenant, id));
        }
    }
    txn.commit().await?;
    Ok(marked)
}

/// Hands a run this process stops over to the other replicas: marks it INTERRUPTED with
/// `cause` (if it is still RUNNING) and drops its lease in the same transaction, so the
/// next scheduler tick of any replica retries it at once instead of waiting for the
/// lease to expire. True when the run was still RUNNING.
pub async fn hand_over(
    db: &Db,
    tenant: &TenantId,
    run_id: &str,
    now: DateTime<Utc>,
    cause: &str,
) -> Result<bool> {
    use sync_run::Column;
    let txn = db.begin_write().await?;
    let progress: Option<Option<String>> = sync_run::Entity::find_by_id(run_id)
        .select_only()
        .column(Column::Progress)
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::Status.eq(RunStatus::Running.as_str()))
        .into_tuple()
        .one(&*txn)
        .await?;
    let n = sync_run::Entity::update_many()
        .col_expr(Column::Status, Expr::value(RunStatus::Interrupted.as_str()))
        .col_expr(Column::FinishedAt, Expr::value(now))
        .col_expr(Column::Error, Expr::value(cause))
        .col_expr(Column::Progress, Expr::value(Option::<String>::None))
        .filter(Column::Id.eq(run_id))
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::Status.eq(RunStatus::Running.as_str()))
        .exec(&*txn)
        .await?
        .rows_affected;
    if n == 1 {
        keep_finished_stages(&txn, run_id, progress.flatten()).await?;
    }
    sync_lease::Entity::delete_many()
        .filter(sync_lease::Entity::of_run(tenant.as_str(), run_id))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(n == 1)
}

pub use crate::domain::run::HANDED_OVER_CAUSE;

/// Why a run was marked INTERRUPTED by [`mark_interrupted`].
pub const INTERRUPTED_CAUSE: &str =
    "the server running it stopped (crashed, killed or lost the database) before it ended";

/// A `run_table` row as the domain counts it.
fn counts(r: run_table::Model) -> TableCounts {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    TableCounts {
        table: r.table_name,
        received: u(r.received),
        inserted: u(r.inserted),
        updated: u(r.updated),
        deleted: u(r.deleted),
        held: u(r.held),
        rejected: u(r.rejected),
        erp_count: r.erp_count.map(u),
        staged_count: u(r.staged_count),
        crm_count: r.crm_count.map(u),
        crm_counted_at: r.crm_counted_at,
        crm_count_source: r
            .crm_count_source
            .as_deref()
            .and_then(CrmCountSource::parse),
    }
}
