//! A sync run: collect → validate → delete guard → push → abc → categorize → finish, one
//! file per stage (`collect`, `view` for a View tenant's collect, `delete_guard`, `push`,
//! `analyse`, `categorize`, `finish`); this file starts a run, drives its stages with
//! their progress and lease, and records how it ended. One run per tenant at a time, held
//! by a lease in the database; the run streams each table in pages, and a run that fails
//! halfway leaves undelivered records staged for the next one (deliveries are
//! idempotent).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use tracing::Instrument;

use crate::domain::run::{
    Level, NewEvent, RunDetail, RunStatus, RunSummary, RunTrigger, Stage, StageTiming,
};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::{lease, runs, tenants};
use crate::worker::delivery::Delivery;
use crate::worker::due;
use crate::worker::RunWorker;
use ctx::Ctx;
use outcome::Outcome;
use progress::Meter;

pub mod analyse;
pub mod categorize;
mod collect;
mod ctx;
mod delete_guard;
mod finish;
mod outcome;
mod progress;
mod push;
pub(super) mod registry;
pub(crate) mod view;

pub use categorize::{resolve_shift, ShiftAction};
pub use delete_guard::resolve_pending_deletes;
pub use registry::Runs;

/// The answer to a trigger.
#[derive(Debug, Clone)]
pub struct Started {
    /// The run started, or the one already running.
    pub run: RunSummary,
    /// True when a run was already in progress.
    pub already_running: bool,
}

/// Starts a run of `tenant` now, in the background, unless one is running.
pub async fn start(worker: &RunWorker, tenant: &TenantId, trigger: RunTrigger) -> Result<Started> {
    // A draining replica is about to go: the run is started by another one.
    if worker.runs.draining() {
        return Err(AppError::Draining);
    }
    tenants::require(&worker.db, tenant).await?;
    let now = worker.clock().now();
    // A run whose holder died keeps its lease until it expires; after that it is
    // marked INTERRUPTED here (or by the scheduler's next tick), and this run redoes its
    // work.
    interrupt_orphans(worker, now, now).await?;
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger,
        started_at: now,
        finished_at: None,
        error: None,
    };
    let started = runs::start(
        &worker.db,
        tenant,
        &worker.instance,
        &run,
        worker.run_lease,
        now,
    )
    .await?;
    match started {
        // The scheduler settles the due instant of the runs it starts after its look.
        Ok(()) if trigger == RunTrigger::Manual => {
            due::after_run_or_report(worker, tenant, now).await;
        }
        Ok(()) => {}
        Err(Some(running)) => {
            return Ok(Started {
                run: running,
                already_running: true,
            })
        }
        Err(None) => {
            return Err(AppError::FailedPrecondition(
                "the tenant's ABC shift is being resolved: start the run after it ends".into(),
            ))
        }
    }
    let (worker2, tenant2, run2) = (worker.clone(), tenant.clone(), run.clone());
    worker
        .runs
        .spawn(tenant.clone(), run.id.clone(), async move {
            execute(&worker2, &tenant2, run2).await;
        });
    Ok(Started {
        run,
        already_running: false,
    })
}

/// Marks the runs whose holder died — RUNNING with no lease live at `lease_cutoff` — as
/// INTERRUPTED, each with an event in its tenant's log; returns how many. The
/// scheduler runs them again (trigger RETRY).
pub async fn interrupt_orphans(
    worker: &RunWorker,
    now: chrono::DateTime<Utc>,
    lease_cutoff: chrono::DateTime<Utc>,
) -> Result<usize> {
    let interrupted = runs::mark_interrupted(&worker.db, now, lease_cutoff).await?;
    crate::metrics::runs_interrupted(interrupted.len());
    for (tenant, run_id) in &interrupted {
        tracing::warn!(tenant = %tenant, run = %run_id, "run left RUNNING by a stopped server marked INTERRUPTED");
        let message = format!(
            "run finished: INTERRUPTED: {}; what it had not delivered stays staged for the next run",
            runs::INTERRUPTED_CAUSE
        );
        let e = NewEvent::new(tenant, Level::Error, Stage::Finish.as_str(), message)
            .run(run_id.as_str());
        worker.logs.append_or_report(e, now).await;
        // Retried at once: the tenant is due now, for whichever replica ticks first.
        due::after_run_or_report(worker, tenant, now).await;
    }
    Ok(interrupted.len())
}

/// Runs every stage of `run` and records how it ended; never panics, never leaves the
/// run RUNNING while the process lives.
pub async fn execute(worker: &RunWorker, tenant: &TenantId, run: RunSummary) -> RunDetail {
    // Every log line of the run, in whatever task, carries its tenant and run; no other
    // task's lines do.
    let span = tracing::info_span!("run", tenant = %tenant, run = %run.id);
    run_stages(worker, tenant, run).instrument(span).await
}

async fn run_stages(worker: &RunWorker, tenant: &TenantId, run: RunSummary) -> RunDetail {
    let sink = worker.sinks.of(tenant).await;
    let meter = Arc::new(Meter::new(worker.db.clone(), run.id.clone()));
    let mut ctx = Ctx {
        worker,
        tenant,
        run_id: run.id.clone(),
        tables: BTreeMap::new(),
        held: BTreeMap::new(),
        interrupted: false,
        analysis: None,
        abc_held: false,
        delivery: Delivery::new(worker, sink, tenant, &run.id),
        meter: meter.clone(),
        pushed: AtomicU64::new(0),
        pushed_all: false,
    };
    ctx.event(
        Level::Info,
        Stage::Collect,
        None,
        format!("run started ({})", run.trigger.as_str().to_lowercase()),
        json!({}),
    )
    .await;
    let mut failure = None;
    // The lease is renewed in the background too, so a stage that waits long (a CRM
    // being retried, a large analysis) is not taken for a dead server's run.
    // Aborted when dropped: also when the run's own task is aborted (a drain that ended
    // hands the run over, and its lease must not be renewed after that).
    let keeper = AbortOnDrop(tokio::spawn(keep_lease(
        worker.clone(),
        tenant.clone(),
        run.id.clone(),
    )));
    // The counts stages move are written by this, at most every FLUSH_EVERY.
    let flusher = AbortOnDrop(tokio::spawn(async move {
        meter.flush_every(progress::FLUSH_EVERY).await;
    }));
    for stage in Stage::ALL {
        if worker.runs.stopping() {
            ctx.interrupted = true;
            ctx.event(
                Level::Warn,
                stage,
                None,
                format!(
                    "server shutting down: stopped before {}; the next run resumes",
                    stage.as_str()
                ),
                json!({}),
            )
            .await;
            break;
        }
        let t0 = Instant::now();
        let total = match stage {
            Stage::Push => ctx.to_deliver(),
            Stage::Categorize => ctx
                .analysis
                .as_ref()
                .map_or(0, |(_, a)| a.categories.len() as u64),
            _ => 0,
        };
        ctx.progress(stage, None, 0, total).await;
        let result = match stage {
            Stage::Collect => collect::collect(&mut ctx).await,
            Stage::Validate => Ok(Outcome::Validated),
            Stage::DeleteGuard => delete_guard::delete_guard(&mut ctx).await,
            Stage::Push => push::push(&mut ctx).await,
            Stage::Abc => analyse::analyse(&mut ctx).await,
            Stage::Categorize => categorize::categorize(&mut ctx).await,
            Stage::Finish => finish::reconcile(&mut ctx).await,
        };
        let took = t0.elapsed();
        crate::metrics::stage_ended(stage.as_str(), took);
        let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        // How far the stage got, as its last count said: in its "done" event.
        let (done, total) = ctx
            .meter
            .current()
            .filter(|c| c.stage == stage.as_str())
            .map_or((0, 0), |c| (c.done, c.total));
        let outcome = match result {
            Ok(o) => o.to_string(),
            Err(e) => {
                let message = e.run_message();
                ctx.event(
                    Level::Error,
                    stage,
                    None,
                    format!("{} failed: {message}", stage.as_str()),
                    json!({}),
                )
                .await;
                failure = Some(format!("{}: {message}", stage.as_str()));
                message
            }
        };
        if failure.is_none() {
            ctx.event(
                Level::Info,
                stage,
                None,
                format!("{} done in {duration_ms} ms: {outcome}", stage.as_str()),
                json!({"duration_ms": duration_ms, "done": done, "total": total}),
            )
            .await;
        }
        ctx.meter.finished(StageTiming {
            stage: stage.as_str().to_owned(),
            duration_ms,
            outcome,
        });
        if failure.is_some() {
            break;
        }
        if let Err(e) = ctx.renew().await {
            failure = Some(e.run_message());
            break;
        }
    }
    // A run that ended early still says what is staged beside what it delivered.
    if (failure.is_some() || ctx.interrupted) && ctx.meter.finished_count() < Stage::ALL.len() {
        if let Err(e) = finish::reconcile(&mut ctx).await {
            tracing::warn!(error = ?anyhow::Error::from(e), "cannot count what is staged");
        }
    }
    drop(keeper);
    drop(flusher);
    let held: u64 = ctx.tables.values().map(|t| t.held).sum();
    let status = match (&failure, held) {
        _ if ctx.interrupted && failure.is_none() => RunStatus::Interrupted,
        (Some(_), _) => RunStatus::Failed,
        (None, 0) if !ctx.abc_held => RunStatus::Success,
        (None, _) => RunStatus::Partial,
    };
    let detail = RunDetail {
        summary: RunSummary {
            status,
            finished_at: Some(worker.clock().now()),
            error: failure,
            ..run
        },
        tables: ctx.tables.values().cloned().collect(),
        stages: ctx.meter.stages(),
        current: None,
    };
    let level = if status == RunStatus::Failed {
        Level::Error
    } else {
        Level::Info
    };
    // Alerts first: whoever sees the run finished also sees the alerts it opened or closed.
    if let Err(e) = finish::update_alerts(&ctx, &detail).await {
        tracing::error!(error = ?anyhow::Error::from(e), "cannot update the tenant's alerts");
    }
    ctx.event(
        level,
        Stage::Finish,
        None,
        format!("run finished: {}", status.as_str()),
        json!({"duration_ms": detail.summary.duration().map(|d| d.num_milliseconds())}),
    )
    .await;
    // How it ended sets its retry, and a success moves the STALE instant: recorded with it.
    if let Err(e) = runs::finish_and_reschedule(&worker.db, tenant, &detail, &worker.retries).await
    {
        tracing::error!(error = ?anyhow::Error::from(e), "cannot record the end of a run");
    }
    crate::metrics::run_ended(
        tenant.as_str(),
        status.as_str(),
        detail.summary.trigger.as_str(),
        detail.summary.duration().and_then(|d| d.to_std().ok()),
    );
    if let Err(e) = lease::release(&worker.db, tenant, &detail.summary.id).await {
        tracing::error!(error = ?anyhow::Error::from(e), "cannot release the run lease");
    }
    detail
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands the runs a drain aborted over to the other replicas: each is marked INTERRUPTED
/// with [`runs::HANDED_OVER_CAUSE`] and its lease dropped at once, its tenant due at once
/// (the scheduler of any replica retries an interrupted run at its next tick), with the
/// end in its tenant's log. Returns how many were handed over; one that cannot be is logged, and its lease
/// expires as a dead server's would.
pub async fn hand_over(worker: &RunWorker, aborted: &[(TenantId, String)]) -> usize {
    let now = worker.clock().now();
    let mut handed = 0;
    for (tenant, run_id) in aborted {
        match runs::hand_over(&worker.db, tenant, run_id, now, runs::HANDED_OVER_CAUSE).await {
            Ok(true) => {
                handed += 1;
                tracing::warn!(tenant = %tenant, run = %run_id, "run handed over: INTERRUPTED, its lease released");
                let message = format!(
                    "run finished: INTERRUPTED: {}; what it had not delivered stays staged",
                    runs::HANDED_OVER_CAUSE
                );
                let e = NewEvent::new(tenant, Level::Warn, Stage::Finish.as_str(), message)
                    .run(run_id.as_str());
                worker.logs.append_or_report(e, now).await;
                // Retried at once: the tenant is due now, for whichever replica ticks first.
                due::after_run_or_report(worker, tenant, now).await;
            }
            // It ended on its own meanwhile: its lease went with it.
            Ok(false) => {}
            Err(e) => {
                tracing::error!(tenant = %tenant, run = %run_id, error = ?anyhow::Error::from(e), "cannot hand a run over; another replica takes it when its lease expires");
            }
        }
    }
    crate::metrics::runs_interrupted(handed);
    handed
}

/// Renews the lease of `run_id` every quarter of its lifetime until aborted or the lease
/// is no longer the run's (the run notices at its next checkpoint).
async fn keep_lease(worker: RunWorker, tenant: TenantId, run_id: String) {
    let ttl = worker.run_lease;
    let every = (ttl / 4)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(15));
    loop {
        tokio::time::sleep(every).await;
        match lease::renew(&worker.db, &tenant, &run_id, worker.clock().now() + ttl).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = ?anyhow::Error::from(e), run = %run_id, "cannot renew a run's lease; trying again");
            }
        }
    }
}
