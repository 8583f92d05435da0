//! Queries of `sync_run`. All of them walk the (tenant_id, started_at) index from the
//! newest end, so the overview stays fast however long the history.

use anyhow::anyhow;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{entities::sync_run, Db, Params};
use crate::domain::run::{
    RunDetail, RunStatus, RunSummary, RunTrigger, StageProgress, StageTiming, TableCounts,
};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

/// How many finished runs the average duration covers.
pub const AVERAGE_OVER: u64 = 30;

/// The newest `limit` runs, newest first.
pub async fn recent(db: &Db, tenant: &TenantId, limit: u64) -> Result<Vec<RunSummary>> {
    sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(sync_run::Column::StartedAt)
        .limit(limit)
        .all(db.conn())
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
    let run = sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(
            sync_run::Column::Status
                .is_in([RunStatus::Success.as_str(), RunStatus::Partial.as_str()]),
        )
        .order_by_desc(sync_run::Column::StartedAt)
        .one(db.conn())
        .await?;
    Ok(run.and_then(|r| r.finished_at))
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
    sync_run::Entity::insert(sync_run::ActiveModel {
        id: Set(run.id.clone()),
        tenant_id: Set(tenant.as_str().to_owned()),
        status: Set(run.status.as_str().to_owned()),
        trigger: Set(run.trigger.as_str().to_owned()),
        started_at: Set(run.started_at),
        finished_at: Set(None),
        duration_ms: Set(None),
        error: Set(None),
    })
    .exec(&*txn)
    .await?;
    txn.commit().await
}

/// Records how a run ended, with its per-table counts and stage timings, at once.
pub async fn finish(db: &Db, run: &RunDetail) -> Result<()> {
    let s = &run.summary;
    let txn = db.begin_write().await?;
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, Expr::value(s.status.as_str()))
        .col_expr(sync_run::Column::FinishedAt, Expr::value(s.finished_at))
        .col_expr(
            sync_run::Column::DurationMs,
            Expr::value(s.duration().map(|d| d.num_milliseconds())),
        )
        .col_expr(sync_run::Column::Error, Expr::value(s.error.clone()))
        .filter(sync_run::Column::Id.eq(s.id.as_str()))
        .exec(&*txn)
        .await?;
    let backend = txn.get_database_backend();
    // The stages are in run_stage now; a finished run has no progress.
    let mut p = Params::new(backend, 1);
    let sql = format!(
        "UPDATE sync_run SET progress = NULL WHERE id = {}",
        p.push(s.id.as_str())
    );
    txn.execute(p.statement(sql)).await?;
    for t in &run.tables {
        let mut p = Params::new(backend, 11);
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let sql = format!(
            "INSERT INTO run_table (run_id, table_name, received, inserted, updated, deleted, held, \
             rejected, erp_count, staged_count, crm_count) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            p.push(s.id.as_str()),
            p.push(t.table.as_str()),
            p.push(n(t.received)),
            p.push(n(t.inserted)),
            p.push(n(t.updated)),
            p.push(n(t.deleted)),
            p.push(n(t.held)),
            p.push(n(t.rejected)),
            p.push(t.erp_count.map(n)),
            p.push(n(t.staged_count)),
            p.push(t.crm_count.map(n))
        );
        txn.execute(p.statement(sql)).await?;
    }
    for (position, st) in run.stages.iter().enumerate() {
        let mut p = Params::new(backend, 5);
        let sql = format!(
            "INSERT INTO run_stage (run_id, position, stage, duration_ms, outcome) VALUES ({}, {}, {}, {}, {})",
            p.push(s.id.as_str()),
            p.push(i32::try_from(position).unwrap_or(i32::MAX)),
            p.push(st.stage.as_str()),
            p.push(i64::try_from(st.duration_ms).unwrap_or(i64::MAX)),
            p.push(st.outcome.as_str())
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
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
    let summary = from_model(model)?;
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT table_name, received, inserted, updated, deleted, held, rejected, erp_count, \
         staged_count, crm_count FROM run_table WHERE run_id = {} ORDER BY table_name",
        p.push(run_id)
    );
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    let mut tables = Vec::new();
    for r in db.conn().query_all(p.statement(sql)).await? {
        tables.push(table_counts_from(&r)?);
    }
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT stage, duration_ms, outcome FROM run_stage WHERE run_id = {} ORDER BY position",
        p.push(run_id)
    );
    let mut stages = Vec::new();
    for r in db.conn().query_all(p.statement(sql)).await? {
        stages.push(StageTiming {
            stage: r.try_get("", "stage")?,
            duration_ms: u(r.try_get("", "duration_ms")?),
            outcome: r.try_get("", "outcome")?,
        });
    }
    let (mut current, mut stages) = (None, stages);
    if summary.status == RunStatus::Running {
        if let Some(progress) = progress(db, run_id).await? {
            (stages, current) = (progress.stages, progress.current);
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
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "UPDATE sync_run SET progress = {} WHERE id = {} AND status = 'RUNNING'",
        p.push(progress),
        p.push(run_id)
    );
    let txn = db.begin_write().await?;
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
}

async fn progress(db: &Db, run_id: &str) -> Result<Option<Progress>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT progress FROM sync_run WHERE id = {}",
        p.push(run_id)
    );
    let Some(row) = db.conn().query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let text: Option<String> = row.try_get("", "progress")?;
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
    let mut p = Params::new(db.backend(), runs.len() + tables.map_or(0, <[_]>::len));
    let ids: Vec<String> = runs.iter().map(|r| p.push(r.id.as_str())).collect();
    let mut sql = format!(
        "SELECT run_id, table_name, received, inserted, updated, deleted, held, rejected, erp_count, \
         staged_count, crm_count FROM run_table WHERE run_id IN ({})",
        ids.join(", ")
    );
    if let Some(tables) = tables {
        let list: Vec<String> = tables.iter().map(|t| p.push(*t)).collect();
        sql.push_str(&format!(" AND table_name IN ({})", list.join(", ")));
    }
    sql.push_str(" ORDER BY run_id, table_name");
    let mut per_run: std::collections::HashMap<String, Vec<TableCounts>> = Default::default();
    for r in db.conn().query_all(p.statement(sql)).await? {
        let run_id: String = r.try_get("", "run_id")?;
        per_run
            .entry(run_id)
            .or_default()
            .push(table_counts_from(&r)?);
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
pub async fn mark_interrupted(
    db: &Db,
    now: DateTime<Utc>,
    lease_cutoff: DateTime<Utc>,
) -> Result<Vec<(TenantId, String)>> {
    let mut p = Params::new(db.backend(), 4);
    let sql = format!(
        "UPDATE sync_run SET status = {}, finished_at = {}, error = {} WHERE status = 'RUNNING' \
         AND NOT EXISTS (SELECT 1 FROM sync_lease l WHERE l.run_id = sync_run.id AND l.expires_at > {}) \
         RETURNING tenant_id, id",
        p.push(RunStatus::Interrupted.as_str()),
        p.push(now),
        p.push(INTERRUPTED_CAUSE),
        p.push(lease_cutoff)
    );
    let txn = db.begin_write().await?;
    let rows = txn.query_all(p.statement(sql)).await?;
    txn.commit().await?;
    rows.iter()
        .map(|r| {
            let tenant: String = r.try_get("", "tenant_id")?;
            let tenant = TenantId::parse(&tenant)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("stored tenant id: {e}")))?;
            Ok((tenant, r.try_get("", "id")?))
        })
        .collect()
}

/// Why a run was marked INTERRUPTED by [`mark_interrupted`].
pub const INTERRUPTED_CAUSE: &str =
    "the server running it stopped (crashed, killed or lost the database) before it ended";

/// A `run_table` row.
fn table_counts_from(r: &sea_orm::QueryResult) -> Result<TableCounts> {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(TableCounts {
        table: r.try_get("", "table_name")?,
        received: u(r.try_get("", "received")?),
        inserted: u(r.try_get("", "inserted")?),
        updated: u(r.try_get("", "updated")?),
        deleted: u(r.try_get("", "deleted")?),
        held: u(r.try_get("", "held")?),
        rejected: u(r.try_get("", "rejected")?),
        erp_count: r.try_get::<Option<i64>>("", "erp_count")?.map(u),
        staged_count: u(r.try_get("", "staged_count")?),
        crm_count: r.try_get::<Option<i64>>("", "crm_count")?.map(u),
    })
}
