//! The scheduler: every few seconds, each active, scheduled tenant whose schedule had a
//! slot since the last look gets a run. A slot is claimed in the database first, so with
//! several replicas exactly one starts it; the run lease keeps one run per tenant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::app::AppState;
use crate::domain::alert::AlertKind;
use crate::domain::run::Level;
use crate::domain::run::RunTrigger;
use crate::domain::tenant::Tenant;
use crate::error::Result;
use crate::storage::{alerts, events, lease, runs, tenants};
use crate::worker::sync;

/// How often the scheduler looks, by default.
pub const TICK: Duration = Duration::from_secs(5);
/// How far back a tick looks for a slot: a few ticks, so a slow tick or a short pause
/// misses nothing, while a server that was down for hours does not replay old slots.
const CATCH_UP: chrono::Duration = chrono::Duration::seconds(30);

/// Starts the runs due at `now`; returns how many it started.
pub async fn tick(state: &AppState, now: DateTime<Utc>) -> Result<usize> {
    let mut started = 0;
    for t in tenants::list(&state.db).await? {
        if !(t.active && t.scheduled) {
            continue;
        }
        check_stale(state, &t, now).await?;
        let Some(slot) = t
            .schedule
            .runs_between(now - CATCH_UP, now, t.timezone)
            .pop()
        else {
            continue;
        };
        if !lease::claim_slot(&state.db, &t.id, slot).await? {
            continue;
        }
        match sync::start(state, &t.id, RunTrigger::Schedule).await {
            Ok(s) if s.already_running => {
                tracing::info!(tenant = %t.id, %slot, "scheduled slot skipped: a run is in progress");
            }
            Ok(s) => {
                tracing::info!(tenant = %t.id, %slot, run = %s.run.id, "scheduled run started");
                started += 1;
            }
            Err(e) => {
                tracing::error!(tenant = %t.id, error = ?anyhow::Error::from(e), "cannot start a scheduled run");
            }
        }
    }
    Ok(started)
}

/// Ticks every `every` until shutdown.
pub async fn run(state: AppState, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = tick(&state, Utc::now()).await {
            tracing::error!(error = ?anyhow::Error::from(e), "scheduler tick failed");
        }
    }
}

/// Raises STALE (once) when an active, scheduled tenant has had no successful run within
/// its window (counted from its creation when it never had one).
async fn check_stale(state: &AppState, t: &Tenant, now: DateTime<Utc>) -> Result<()> {
    let since = runs::last_success_at(&state.db, &t.id).await?;
    let reference = since.unwrap_or(t.created_at);
    if now - reference <= t.max_time_without_success {
        return Ok(());
    }
    let limit = crate::domain::text::human_duration(t.max_time_without_success);
    let message = match since {
        Some(at) => format!(
            "no successful run since {} (limit {limit})",
            at.to_rfc3339()
        ),
        None => format!("no successful run since the tenant was created (limit {limit})"),
    };
    if alerts::raise(&state.db, &t.id, AlertKind::Stale, &message, None, now).await? {
        tracing::warn!(tenant = %t.id, "{message}");
        let e = events::NewEvent {
            tenant: &t.id,
            run_id: None,
            level: Level::Warn,
            stage: "alert",
            table: None,
            message: format!("alert STALE: {message}"),
            fields: serde_json::Map::from_iter([("alert".to_owned(), "STALE".into())]),
        };
        state.logs.append(&state.db, e, now).await?;
    }
    Ok(())
}
