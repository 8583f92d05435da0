//! Queries of `sync_run`. All of them walk the (tenant_id, started_at) index from the
//! newest end, so the overview stays fast however long the history.

use anyhow::anyhow;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{entities::sync_run, Db};
use crate::domain::run::{RunStatus, RunSummary, RunTrigger};
use crate::domain::tenant::TenantId;
use crate::error::Result;

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
