//! The scheduler: every few seconds, each active, scheduled tenant whose schedule had a
//! slot since the last look gets a run. A slot is claimed in the database first, so with
//! several replicas exactly one starts it; the run lease keeps one run per tenant. It also
//! marks runs whose server died INTERRUPTED, and retries failed and interrupted runs
//! (trigger RETRY) after their backoff, a bounded number of times.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::domain::alert::AlertKind;
use crate::domain::run::{Level, RunStatus, RunSummary, RunTrigger};
use crate::domain::tenant::Tenant;
use crate::error::Result;
use crate::storage::{alerts, lease, runs, tenants};
use crate::worker::delivery::RunRetries;
use crate::worker::sync;
use crate::worker::RunWorker;

/// How often the scheduler looks, by default.
pub const TICK: Duration = Duration::from_secs(5);
/// How far back a tick looks for a slot: a few ticks, so a slow tick or a short pause
/// misses nothing, while a server that was down for hours does not replay old slots.
const CATCH_UP: chrono::Duration = chrono::Duration::seconds(30);

/// Starts the runs due at `now` — scheduled slots, and retries of failed or interrupted
/// runs — and marks the runs whose server died INTERRUPTED; returns how many it started.
/// One tenant's error is logged and never keeps the others from their runs.
pub async fn tick(worker: &RunWorker, now: DateTime<Utc>) -> Result<usize> {
    // A run whose lease expired lost its server: INTERRUPTED now, retried below.
    sync::interrupt_orphans(worker, now, now).await?;
    let mut started = 0;
    for t in tenants::list(&worker.db).await? {
        // A draining replica starts nothing: the other replicas' ticks take the runs.
        if worker.runs.draining() {
            break;
        }
        if !t.active {
            continue;
        }
        match tick_tenant(worker, &t, now).await {
            Ok(true) => started += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(tenant = %t.id, error = ?anyhow::Error::from(e), "scheduler: cannot look at a tenant");
            }
        }
    }
    Ok(started)
}

/// The tenant's due slot, else its due retry; true when a run started.
async fn tick_tenant(worker: &RunWorker, t: &Tenant, now: DateTime<Utc>) -> Result<bool> {
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
    match retry_due(&worker.retries, &recent, now) {
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

/// The run to retry at `now`, given the tenant's newest runs (newest first): the newest
/// one when it FAILED, once its backoff passed, or was INTERRUPTED (its server died: at
/// once), while retries are left — each retry that failed again counts one.
fn retry_due(retries: &RunRetries, recent: &[RunSummary], now: DateTime<Utc>) -> Option<String> {
    let ended_badly =
        |r: &RunSummary| matches!(r.status, RunStatus::Failed | RunStatus::Interrupted);
    let last = recent.first().filter(|r| ended_badly(r))?;
    let done = recent
        .iter()
        .take_while(|r| r.trigger == RunTrigger::Retry && ended_badly(r))
        .count();
    let wait = retries.next(u32::try_from(done).unwrap_or(u32::MAX))?;
    let wait = match last.status {
        RunStatus::Interrupted => chrono::Duration::zero(),
        _ => chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
    };
    let ended = last.finished_at.unwrap_or(last.started_at);
    (now >= ended + wait).then(|| last.id.clone())
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

/// One tick at the clock's now: [`tick`], its error logged (the next tick tries again).
pub async fn run_once(worker: &RunWorker, clock: &dyn Clock) -> usize {
    match tick(worker, clock.now()).await {
        Ok(started) => started,
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
        let e = crate::domain::run::NewEvent {
            tenant: &t.id,
            run_id: None,
            level: Level::Warn,
            stage: "alert",
            table: None,
            message: format!("alert STALE: {message}"),
            fields: serde_json::Map::from_iter([("alert".to_owned(), "STALE".into())]),
        };
        worker.logs.append(e, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {

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

    use super::*;

    fn run(id: &str, status: RunStatus, trigger: RunTrigger, ended: DateTime<Utc>) -> RunSummary {
        RunSummary {
            id: id.into(),
            status,
            trigger,
            started_at: ended - chrono::Duration::seconds(5),
            finished_at: Some(ended),
            error: None,
        }
    }

    #[test]
    fn failed_runs_are_retried_after_a_growing_backoff_a_bounded_number_of_times() {
        let r = RunRetries::default();
        let t0 = Utc::now();
        let min = chrono::Duration::minutes;
        let failed = run("m", RunStatus::Failed, RunTrigger::Manual, t0);
        assert_eq!(
            retry_due(
                &r,
                std::slice::from_ref(&failed),
                t0 + min(1) - chrono::Duration::seconds(1)
            ),
            None
        );
        assert_eq!(
            retry_due(&r, std::slice::from_ref(&failed), t0 + min(1)),
            Some("m".into())
        );
        let r1 = run("r1", RunStatus::Failed, RunTrigger::Retry, t0 + min(2));
        assert_eq!(
            retry_due(&r, &[r1.clone(), failed.clone()], t0 + min(3)),
            None
        );
        assert_eq!(
            retry_due(&r, &[r1.clone(), failed.clone()], t0 + min(4)),
            Some("r1".into())
        );
        let r2 = run("r2", RunStatus::Failed, RunTrigger::Retry, t0 + min(5));
        let r3 = run("r3", RunStatus::Failed, RunTrigger::Retry, t0 + min(10));
        assert_eq!(
            retry_due(&r, &[r2.clone(), r1.clone(), failed.clone()], t0 + min(9)),
            Some("r2".into())
        );
        assert_eq!(
            retry_due(&r, &[r3, r2, r1, failed], t0 + min(600)),
            None,
            "three retries, then none"
        );
    }

    #[test]
    fn interrupted_runs_are_retried_at_once_and_good_runs_never() {
        let r = RunRetries::default();
        let t0 = Utc::now();
        let gone = run("i", RunStatus::Interrupted, RunTrigger::Schedule, t0);
        assert_eq!(retry_due(&r, &[gone], t0), Some("i".into()));
        for status in [RunStatus::Success, RunStatus::Partial, RunStatus::Running] {
            let ok = run("s", status, RunTrigger::Manual, t0);
            assert_eq!(retry_due(&r, &[ok], t0 + chrono::Duration::days(1)), None);
        }
        assert_eq!(
            retry_due(
                &RunRetries { max: 0, ..r },
                &[run("f", RunStatus::Failed, RunTrigger::Manual, t0)],
                t0 + chrono::Duration::days(1)
            ),
            None
        );
        assert_eq!(retry_due(&r, &[], t0), None);
    }
}
