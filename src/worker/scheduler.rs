//! The scheduler: every few seconds, the tenants due now — a schedule slot, the retry of
//! a failed or interrupted run (trigger RETRY, after its backoff, a bounded number of
//! times), the instant a STALE alert opens, or the instant a table goes past its
//! freshness limit (STALE_TABLE) — are claimed from the indexed
//! `tenant_due` and looked at; the others are not read at all, so a tick costs what is
//! due, not how many tenants there are. Replicas claim different tenants (a claim moves
//! the due instant on, PostgreSQL skips rows another claim holds); a slot is still
//! claimed in the database first, so exactly one replica starts it, and the run lease
//! keeps one run per tenant. A tick also marks runs whose server died INTERRUPTED, which
//! makes their tenants due at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::domain::alert::AlertKind;
use crate::domain::due::{Moment, CATCH_UP};
use crate::domain::run::{Level, NewEvent, RunTrigger};
use crate::domain::tenant::{Tenant, TenantId};
use crate::error::Result;
use crate::storage::due::{self, Retry};
use crate::storage::{alerts, freshness, lease, runs, tenants};
use crate::worker::sync;
use crate::worker::RunWorker;

/// How often the scheduler looks, by default.
pub const TICK: Duration = Duration::from_secs(5);
/// Tenants claimed at a time; a tick claims again while a whole batch was due.
const BATCH: u64 = 100;
/// How long a claim keeps a tenant from other replicas' ticks: the look takes far less;
/// a replica that dies mid-look, or a look that fails, leaves the tenant due again after
/// it.
const HOLD: chrono::Duration = chrono::Duration::seconds(30);

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickStats {
    /// Tenants read and looked at: the due ones this replica claimed.
    pub looked: usize,
    /// Runs started.
    pub started: usize,
    /// Runs marked INTERRUPTED (their server died).
    pub interrupted: usize,
}

/// Starts the runs due at `now` — scheduled slots, and retries of failed or interrupted
/// runs — raises STALE and STALE_TABLE alerts that came due, and marks the runs whose server died
/// INTERRUPTED. Reads only the tenants due at `now`. One tenant's error is logged and
/// never keeps the others from their runs (the tenant is looked at again after [`HOLD`]).
pub async fn tick(worker: &RunWorker, now: DateTime<Utc>) -> Result<TickStats> {
    let mut stats = TickStats {
        // A run whose lease expired lost its server: INTERRUPTED now, its tenant due now.
        interrupted: sync::interrupt_orphans(worker, now, now).await?,
        ..TickStats::default()
    };
    let hold = due::stored(now + HOLD);
    loop {
        // A draining replica starts nothing: the other replicas' ticks take the runs.
        if worker.runs.draining() {
            return Ok(stats);
        }
        let claimed = due::claim(&worker.db, now, hold, BATCH).await?;
        for id in &claimed {
            stats.looked += 1;
            match look(worker, id, now, hold).await {
                Ok(true) => stats.started += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(tenant = %id, error = ?anyhow::Error::from(e), "scheduler: cannot look at a tenant; it is due again in {}s", HOLD.num_seconds());
                }
            }
        }
        if (claimed.len() as u64) < BATCH {
            return Ok(stats);
        }
    }
}

/// Looks at a claimed tenant: its tables' freshness, its STALE window, its due slot,
/// else its due retry; then
/// stores when it is next due (unless something rewrote that since the claim). True
/// when a run started.
async fn look(
    worker: &RunWorker,
    id: &TenantId,
    now: DateTime<Utc>,
    claimed: DateTime<Utc>,
) -> Result<bool> {
    // A tenant deleted since its claim took its due row with it.
    let Some(t) = tenants::get(&worker.db, id).await? else {
        return Ok(false);
    };
    let started = if t.active {
        tick_tenant(worker, &t, now).await?
    } else {
        false
    };
    tenants::refresh_due(
        &worker.db,
        id,
        Retry::Keep,
        Moment::Looked(now),
        Some(claimed),
    )
    .await?;
    Ok(started)
}

/// The tenant's tables past their freshness limit, then its due slot, else its due
/// retry; true when a run started.
async fn tick_tenant(worker: &RunWorker, t: &Tenant, now: DateTime<Utc>) -> Result<bool> {
    check_stale_tables(worker, t, now).await?;
    if t.scheduled {
        check_stale(worker, t, now).await?;
        let slot = t
            .schedule
            .runs_between(now - CATCH_UP, now, t.timezone)
            .pop();
        if let Some(slot) = slot {
            // A slot is claimed once across replicas; a retry never takes its place.
            if lease::claim_slot(&worker.db, &t.id, slot).await? {
                return start(worker, t, RunTrigger::Schedule, &format!("slot {slot}")).await;
            }
        }
    }
    let recent = runs::recent(&worker.db, &t.id, u64::from(worker.retries.max) + 1).await?;
    match worker.retries.due(&recent, now) {
        Some(after) => {
            start(
                worker,
                t,
                RunTrigger::Retry,
                &format!("retry of run {after}"),
            )
            .await
        }
        None => Ok(false),
    }
}

async fn start(worker: &RunWorker, t: &Tenant, trigger: RunTrigger, why: &str) -> Result<bool> {
    let s = sync::start(worker, &t.id, trigger).await?;
    if s.already_running {
        tracing::info!(tenant = %t.id, "{why} skipped: a run is in progress");
        return Ok(false);
    }
    tracing::info!(tenant = %t.id, run = %s.run.id, trigger = trigger.as_str(), "{why}: run started");
    Ok(true)
}

/// Where the scheduler reads the time: the system's in a server, a test's own in tests.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// One tick at the clock's now: [`tick`], its error logged (the next tick tries again);
/// returns how many runs it started.
pub async fn run_once(worker: &RunWorker, clock: &dyn Clock) -> usize {
    match tick(worker, clock.now()).await {
        Ok(stats) => stats.started,
        Err(e) => {
            tracing::error!(error = ?anyhow::Error::from(e), "scheduler tick failed");
            0
        }
    }
}

/// Ticks every `every` by `clock` until shutdown.
pub async fn run(
    worker: RunWorker,
    clock: std::sync::Arc<dyn Clock>,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) {
    every_tick(every, shutdown, || run_once(&worker, clock.as_ref())).await;
}

/// Calls `tick` every `every` (the first after one `every`) until `shutdown` turns true; a
/// tick in progress finishes first.
async fn every_tick<F, Fut>(every: Duration, mut shutdown: watch::Receiver<bool>, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        if *shutdown.borrow() {
            return;
        }
        tick().await;
    }
}

/// Raises STALE (once) when an active, scheduled tenant has had no successful run within
/// its window (counted from its creation when it never had one).
async fn check_stale(worker: &RunWorker, t: &Tenant, now: DateTime<Utc>) -> Result<()> {
    let since = runs::last_success_at(&worker.db, &t.id).await?;
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
    if alerts::raise(&worker.db, &t.id, AlertKind::Stale, &message, None, now).await? {
        tracing::warn!(tenant = %t.id, "{message}");
        let e = NewEvent::new(
            &t.id,
            Level::Warn,
            "alert",
            format!("alert STALE: {message}"),
        )
        .field("alert", "STALE");
        worker.logs.append(e, now).await?;
    }
    Ok(())
}

/// Raises STALE_TABLE (once per table) for each of an active tenant's tables past its
/// freshness limit at `now` without an open alert (the rule:
/// [`crate::domain::freshness::TableFreshness::is_stale`]).
async fn check_stale_tables(worker: &RunWorker, t: &Tenant, now: DateTime<Utc>) -> Result<()> {
    let rows = freshness::list(&worker.db, &t.id).await?;
    for row in rows
        .iter()
        .filter(|r| r.stale_alert.is_none() && r.is_stale(now))
    {
        let Some(message) = freshness::raise(&worker.db, &t.id, row.table, now).await? else {
            continue;
        };
        tracing::warn!(tenant = %t.id, table = %row.table, "{message}");
        let message = format!("alert STALE_TABLE: {message}");
        let e = NewEvent::new(&t.id, Level::Warn, "alert", message)
            .table(row.table.as_str())
            .field("alert", AlertKind::StaleTable.as_str())
            .field("table", row.table.as_str());
        worker.logs.append(e, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop ticks once per period under paused tokio time, never before its first
    /// period, and stops at shutdown without another tick.
    #[tokio::test(start_paused = true)]
    async fn the_loop_ticks_every_period_and_stops_at_shutdown() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let ticks = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        let every = Duration::from_secs(5);
        let counted = ticks.clone();
        let job = tokio::spawn(every_tick(every, stopped, move || {
            let counted = counted.clone();
            async move { counted.fetch_add(1, Ordering::SeqCst) }
        }));
        // Sleeping in paused time moves the clock; yielding lets the loop take its turn.
        let after = |d: Duration| async move {
            tokio::time::sleep(d).await;
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        };
        after(every - Duration::from_millis(1)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            0,
            "no tick before the first period"
        );
        after(Duration::from_millis(2)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1);
        after(every * 3).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 4);
        stop.send(true).unwrap();
        job.await.unwrap();
        after(every * 3).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 4, "no tick after shutdown");
    }
}
