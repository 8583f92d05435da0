//! The overview of one tenant ("Informações Gerais"): settings, next run, size, health
//! and recent runs, gathered from storage and derived by the domain rules.

use chrono::{DateTime, Duration, Utc};

use crate::domain::alert::Alert;
use crate::domain::freshness::TableFreshness;
use crate::domain::run::{RunSummary, TableCounts};
use crate::domain::run_status::RunStatus;
use crate::domain::tenant::{Health, HealthInputs, Tenant, TenantId};
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
    let last_success_at = runs::last_success_at(db, &tenant.id).await?;
    Ok(health_of(
        tenant,
        last_finished.map(|r| r.status),
        last_success_at,
        now,
    ))
}

/// The one rule's inputs gathered: the tenant's switch and window, its runs' outcome.
fn health_of(
    tenant: &Tenant,
    last_finished: Option<RunStatus>,
    last_success_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Health {
    HealthInputs {
        active: tenant.active,
        last_finished,
        last_success_at,
        max_time_without_success: tenant.max_time_without_success,
    }
    .health(now)
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
    let tables = match &last_finished {
        Some(run) => runs::get(db, id, &run.id)
            .await?
            .map(|d| d.tables)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let last_success_at = runs::last_success_at(db, id).await?;
    let health = health_of(
        &tenant,
        last_finished.map(|r| r.status),
        last_success_at,
        now,
    );
    Ok(Overview {
        next_run_at: tenant.next_run_at(now),
        db_size_bytes: usage::tenant_db_size(db, id).await?,
        average_duration: runs::average_duration(db, id).await?,
        last_success_at,
        health,
        open_alerts: alerts::open(db, id).await?,
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
