//! The overview of one tenant ("Informações Gerais"): settings, next run, size, health
//! and recent runs, gathered from storage and derived by the domain rules.

use chrono::{DateTime, Duration, Utc};

use crate::domain::alert::{Alert, AlertKind};
use crate::domain::freshness::TableFreshness;
use crate::domain::run::{RunDetail, RunSummary, TableCounts};
use crate::domain::run_status::RunStatus;
use crate::domain::tenant::{Health, HealthAssessment, HealthInputs, Tenant, TenantId};
use crate::error::Result;
use crate::storage::{alerts, freshness, runs, tenants, usage, Db};

/// How many runs the overview's run log shows.
pub const RECENT_RUNS: u64 = 10;

/// Everything the overview tab shows.
#[derive(Debug, Clone)]
pub struct Overview {
    /// The tenant and its settings.
    pub tenant: Tenant,
    /// The next scheduled run; None when not active or not scheduled.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The tenant's share of the database.
    pub db_size_bytes: u64,
    /// Mean of the last finished runs; None when none.
    pub average_duration: Option<Duration>,
    /// When a run last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Derived state at a glance.
    pub health: Health,
    /// Why it is not HEALTHY, for a person; empty when it is.
    pub health_reason: String,
    /// Alerts still open.
    pub open_alerts: Vec<Alert>,
    /// Newest first.
    pub recent_runs: Vec<RunSummary>,
    /// Per-table counts and reconciliation of the last finished run.
    pub tables: Vec<TableCounts>,
    /// The address of the sink the tenant delivers to ("embedded" for none); no secret.
    pub crm_sink: String,
    /// Per-table freshness: the tables with a limit or with accepted records, in the
    /// catalog's order.
    pub table_freshness: Vec<TableFreshness>,
    /// The instant it describes (a table is stale as of it).
    pub as_of: DateTime<Utc>,
}

/// The health of `tenant` as of `now`, as its overview shows it (the tenant listing
/// filters by it).
pub async fn health(db: &Db, tenant: &Tenant, now: DateTime<Utc>) -> Result<Health> {
    let last_finished = runs::last_finished(db, &tenant.id).await?;
    // Only its status counts here: the reason is not shown.
    let last = last_finished.map(|r| (r.status, None));
    let last_success_at = runs::last_success_at(db, &tenant.id).await?;
    let open_alerts = alerts::open(db, &tenant.id).await?;
    Ok(assess(tenant, last, last_success_at, &open_alerts, now).health)
}

/// Why the newest finished run did not end SUCCESS, in its own words: a PARTIAL run's
/// held deletions and classification (from its recorded tables and stages), another's
/// error.
fn cause_of(run: &RunSummary, detail: Option<&RunDetail>) -> Option<String> {
    match run.status {
        RunStatus::Partial => detail
            .map(RunDetail::partial_cause)
            .filter(|c| !c.is_empty()),
        _ => run.error.clone(),
    }
}

/// The one rule's inputs gathered: the tenant's switch and window, its last run's
/// outcome (status and cause), its last success and its open STALE_TABLE alerts.
fn assess(
    tenant: &Tenant,
    last_finished: Option<(RunStatus, Option<String>)>,
    last_success_at: Option<DateTime<Utc>>,
    open_alerts: &[Alert],
    now: DateTime<Utc>,
) -> HealthAssessment {
    HealthInputs {
        active: tenant.active,
        last_finished: last_finished.as_ref().map(|(s, _)| *s),
        last_cause: last_finished.as_ref().and_then(|(_, c)| c.as_deref()),
        last_success_at,
        max_time_without_success: tenant.max_time_without_success,
        stale_table: open_alerts
            .iter()
            .find(|a| a.kind == AlertKind::StaleTable)
            .map(|a| a.message.as_str()),
    }
    .assess(now)
}

/// Loads the overview of `id` as of `now`, delivering to `crm_sink`; `NotFound` for an
/// unknown tenant.
pub async fn load(
    db: &Db,
    id: &TenantId,
    now: DateTime<Utc>,
    crm_sink: String,
) -> Result<Overview> {
    let tenant = tenants::require(db, id).await?;
    let last_finished = runs::last_finished(db, id).await?;
    let (tables, last) = match &last_finished {
        Some(run) => {
            let detail = runs::get(db, id, &run.id).await?;
            let cause = cause_of(run, detail.as_ref());
            (
                detail.map(|d| d.tables).unwrap_or_default(),
                Some((run.status, cause)),
            )
        }
        None => (Vec::new(), None),
    };
    let last_success_at = runs::last_success_at(db, id).await?;
    let open_alerts = alerts::open(db, id).await?;
    let HealthAssessment {
        health,
        reason: health_reason,
    } = assess(&tenant, last, last_success_at, &open_alerts, now);
    Ok(Overview {
        next_run_at: tenant.next_run_at(now),
        db_size_bytes: usage::tenant_db_size(db, id).await?,
        average_duration: runs::average_duration(db, id).await?,
        last_success_at,
        health,
        health_reason,
        open_alerts,
        recent_runs: runs::recent(db, id, RECENT_RUNS).await?,
        tables,
        table_freshness: freshness::list(db, id)
            .await?
            .into_iter()
            .filter(TableFreshness::is_shown)
            .collect(),
        as_of: now,
        tenant,
        crm_sink,
    })
}
