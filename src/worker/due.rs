//! Keeps a tenant's due instant right when its runs change outside a run's own end
//! (which records it with the end, [`crate::storage::runs::finish_and_reschedule`]): a
//! run marked INTERRUPTED is retried at once, and a run started by hand drops a pending
//! retry. The rule is [`crate::domain::due`]; settings changes write it in
//! [`crate::storage::tenants`].

use chrono::{DateTime, Utc};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::runs;
use crate::worker::RunWorker;

/// Stores when the tenant's last run is retried and when it is next due, as of `now`,
/// under the worker's retry policy.
pub async fn after_run(worker: &RunWorker, tenant: &TenantId, now: DateTime<Utc>) -> Result<()> {
    runs::reschedule(&worker.db, tenant, &worker.retries, now).await
}

/// [`after_run`], its error logged: what changed is recorded either way, and the
/// scheduler's next look at the tenant sets its due instant again.
pub async fn after_run_or_report(worker: &RunWorker, tenant: &TenantId, now: DateTime<Utc>) {
    if let Err(e) = after_run(worker, tenant, now).await {
        tracing::error!(tenant = %tenant, error = ?anyhow::Error::from(e), "cannot store when the tenant is next due");
    }
}
