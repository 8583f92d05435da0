//! Keeps a tenant's due instant right when its runs change: a run that ends (or is
//! marked INTERRUPTED) sets when it is retried, under the worker's retry policy, and
//! with it when the scheduler next looks at the tenant. The rule is
//! [`crate::domain::due`]; settings changes write it in [`crate::storage::tenants`].

use chrono::{DateTime, Utc};

use crate::domain::due::Moment;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::due::Retry;
use crate::storage::{runs, tenants};
use crate::worker::RunWorker;

/// Stores when the tenant's last run is retried and when it is next due, as of `now`
/// (after one of its runs ended or was marked INTERRUPTED).
pub async fn after_run(worker: &RunWorker, tenant: &TenantId, now: DateTime<Utc>) -> Result<()> {
    let recent = runs::recent(&worker.db, tenant, u64::from(worker.retries.max) + 1).await?;
    let retry = worker.retries.retry_at(&recent).map(|(at, _)| at);
    tenants::refresh_due(
        &worker.db,
        tenant,
        Retry::Set(retry),
        Moment::Changed(now),
        None,
    )
    .await?;
    Ok(())
}

/// [`after_run`], its error logged: the run's end is recorded either way, and the
/// scheduler's next look at the tenant sets its due instant again.
pub async fn after_run_or_report(worker: &RunWorker, tenant: &TenantId, now: DateTime<Utc>) {
    if let Err(e) = after_run(worker, tenant, now).await {
        tracing::error!(tenant = %tenant, error = ?anyhow::Error::from(e), "cannot store when the tenant is next due");
    }
}
