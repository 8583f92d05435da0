//! A sync run: collect → validate → delete guard → push → abc → categorize → finish.
//! One run per tenant at a time, held by a lease in the database; the run streams each
//! table in pages, and a run that fails halfway leaves undelivered records staged for
//! the next one (deliveries are idempotent).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::app::AppState;
use crate::domain::alert::AlertKind;
use crate::domain::crm::{CrmCompany, CrmContact};
use crate::domain::run::{
    Level, RunDetail, RunStatus, RunSummary, RunTrigger, Stage, StageProgress, StageTiming,
    TableCounts,
};
use crate::domain::tables::TABLES;
use crate::domain::tenant::{IntegrationType, Tenant, TenantId};
use crate::error::{AppError, Result};
use crate::storage::{
    alerts, crm, erp_counts, events, lease, pending_deletes, runs, staging, tenants,
};
use crate::worker::abc;
use crate::worker::delivery::Delivery;

mod view;

pub(crate) use view::{configure as configure_view, status as view_status, ViewStatus};

/// How long a lease lives without renewal by default; a crashed holder frees the tenant
/// after it.
pub const LEASE_TTL: Duration = Duration::seconds(60);
/// Records read and delivered at a time.
const PAGE: u64 = 1_000;

/// This process's runs: shutdown asks them to stop at the next checkpoint (a stage or a
/// page boundary, everything before it delivered and marked) and waits for them.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    inner: Arc<RunsInner>,
}

#[derive(Debug, Default)]
struct RunsInner {
    stopping: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

/// Held by a running run; dropping it counts the run out.
struct Active(Arc<RunsInner>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

impl Runs {
    /// Whether shutdown asked runs to stop.
    pub fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    fn enter(&self) -> Active {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        Active(self.inner.clone())
    }

    /// Asks every run to stop at its next checkpoint and waits for them, at most `limit`;
    /// returns how many were still running then.
    pub async fn stop(&self, limit: std::time::Duration) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.inner.idle.notified();
            let active = self.inner.active.load(Ordering::SeqCst);
            if active == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.inner.active.load(Ordering::SeqCst);
            }
        }
    }
}

/// The answer to a trigger.
#[derive(Debug, Clone)]
pub struct Started {
    /// The run started, or the one already running.
    pub run: RunSummary,
    /// True when a run was already in progress.
    pub already_running: bool,
}

/// Starts a run of `tenant` now, in the background, unless one is running.
pub async fn start(state: &AppState, tenant: &TenantId, trigger: RunTrigger) -> Result<Started> {
    tenants::require(&state.db, tenant).await?;
    let now = Utc::now();
    // A run whose holder died keeps its lease until it expires; after that it is
    // marked INTERRUPTED here (or by the scheduler's next tick), and this run redoes its
    // work.
    interrupt_orphans(state, now, now).await?;
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger,
        started_at: now,
        finished_at: None,
        error: None,
    };
    if let Err(existing) = lease::acquire(
        &state.db,
        tenant,
        &state.instance,
        &run.id,
        state.run_lease,
        now,
    )
    .await?
    {
        let running = runs::get(&state.db, tenant, &existing)
            .await?
            .map(|d| d.summary)
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("lease names unknown run {existing}"))
            })?;
        return Ok(Started {
            run: running,
            already_running: true,
        });
    }
    runs::create(&state.db, tenant, &run).await?;
    let (state, tenant2, run2) = (state.clone(), tenant.clone(), run.clone());
    let active = state.runs.enter();
    tokio::spawn(async move {
        execute(&state, &tenant2, run2).await;
        drop(active);
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
    state: &AppState,
    now: chrono::DateTime<Utc>,
    lease_cutoff: chrono::DateTime<Utc>,
) -> Result<usize> {
    let interrupted = runs::mark_interrupted(&state.db, now, lease_cutoff).await?;
    for (tenant, run_id) in &interrupted {
        tracing::warn!(tenant = %tenant, run = %run_id, "run left RUNNING by a stopped server marked INTERRUPTED");
        let e = events::NewEvent {
            tenant,
            run_id: Some(run_id),
            level: Level::Error,
            stage: Stage::Finish.as_str(),
            table: None,
            message: format!(
                "run finished: INTERRUPTED: {}; what it had not delivered stays staged for the next run",
                runs::INTERRUPTED_CAUSE
            ),
            fields: Map::new(),
        };
        if let Err(err) = state.logs.append(&state.db, e, now).await {
            tracing::error!(error = ?anyhow::Error::from(err), run = %run_id, "cannot write a run event");
        }
    }
    Ok(interrupted.len())
}

struct Ctx<'a> {
    state: &'a AppState,
    tenant: &'a TenantId,
    run_id: String,
    tables: BTreeMap<&'static str, TableCounts>,
    /// Per table, the deletions this run must not apply.
    held: BTreeMap<&'static str, HashSet<String>>,
    /// Stopped at a checkpoint by shutdown.
    interrupted: bool,
    /// What the abc stage computed, with the tenant's settings it used, for categorize.
    analysis: Option<(Tenant, abc::Analysis)>,
    /// The shift guard held this run's classification.
    abc_held: bool,
    /// The run's batches to the sink.
    delivery: Delivery<'a>,
    /// The stages finished so far, in run order.
    finished: Vec<StageTiming>,
    /// Companies and contacts the push stage has been through (delivered or held).
    pushed: AtomicU64,
}

impl Ctx<'_> {
    async fn event(
        &self,
        level: Level,
        stage: Stage,
        table: Option<&str>,
        message: String,
        fields: Value,
    ) {
        let fields = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let e = events::NewEvent {
            tenant: self.tenant,
            run_id: Some(&self.run_id),
            level,
            stage: stage.as_str(),
            table,
            message,
            fields,
        };
        if let Err(err) = self.state.logs.append(&self.state.db, e, Utc::now()).await {
            tracing::error!(error = ?anyhow::Error::from(err), run = %self.run_id, "cannot write a run event");
        }
    }

    fn counts(&mut self, table: &'static str) -> &mut TableCounts {
        self.tables.entry(table).or_insert_with(|| TableCounts {
            table: table.to_owned(),
            ..TableCounts::default()
        })
    }

    /// The companies and contacts (tombstones included) the push stage delivers, as
    /// collect counted them.
    fn to_deliver(&self) -> u64 {
        ["company", "contact"]
            .iter()
            .filter_map(|t| self.tables.get(t).map(|c| c.received))
            .sum()
    }

    /// Counts `more` records gone through by the push stage (on `table`) and records it.
    async fn push_progress(&self, table: &str, more: u64) {
        let done = self.pushed.fetch_add(more, Ordering::SeqCst) + more;
        self.progress(Stage::Push, Some(table), done, self.to_deliver())
            .await;
    }

    /// Records that the run is in `stage` (on `table`), `done` of `total` records; GetRun
    /// shows it while the run lasts. A failure to record it only costs the display.
    async fn progress(&self, stage: Stage, table: Option<&str>, done: u64, total: u64) {
        let current = StageProgress {
            stage: stage.as_str().to_owned(),
            table: table.map(str::to_owned),
            done,
            total,
        };
        if let Err(e) =
            runs::report_progress(&self.state.db, &self.run_id, &self.finished, &current).await
        {
            tracing::warn!(error = ?anyhow::Error::from(e), run = %self.run_id, "cannot record a run's progress");
        }
    }

    async fn renew(&self) -> Result<()> {
        if lease::renew(
            &self.state.db,
            self.tenant,
            &self.run_id,
            Utc::now() + self.state.run_lease,
        )
        .await?
        {
            Ok(())
        } else {
            Err(AppError::Internal(anyhow::anyhow!(
                "the run lost its lease"
            )))
        }
    }
}

/// Runs every stage of `run` and records how it ended; never panics, never leaves the
/// run RUNNING while the process lives.
pub async fn execute(state: &AppState, tenant: &TenantId, run: RunSummary) -> RunDetail {
    // Every log line of the run, in whatever task, carries its tenant and run; no other
    // task's lines do.
    let span = tracing::info_span!("run", tenant = %tenant, run = %run.id);
    run_stages(state, tenant, run).instrument(span).await
}

async fn run_stages(state: &AppState, tenant: &TenantId, run: RunSummary) -> RunDetail {
    let mut ctx = Ctx {
        state,
        tenant,
        run_id: run.id.clone(),
        tables: BTreeMap::new(),
        held: BTreeMap::new(),
        interrupted: false,
        analysis: None,
        abc_held: false,
        delivery: Delivery::new(state, tenant, &run.id),
        finished: Vec::new(),
        pushed: AtomicU64::new(0),
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
    let keeper = tokio::spawn(keep_lease(state.clone(), tenant.clone(), run.id.clone()));
    for stage in Stage::ALL {
        if state.runs.stopping() {
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
            Stage::Collect => collect(&mut ctx).await,
            Stage::Validate => Ok(
                "ok: records were validated when staged; rejections are in the request log"
                    .to_owned(),
            ),
            Stage::DeleteGuard => delete_guard(&mut ctx).await,
            Stage::Push => push(&mut ctx).await,
            Stage::Abc => analyse(&mut ctx).await,
            Stage::Categorize => categorize(&mut ctx).await,
            Stage::Finish => reconcile(&mut ctx).await,
        };
        let duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok(o) => o,
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
                json!({"duration_ms": duration_ms}),
            )
            .await;
        }
        ctx.finished.push(StageTiming {
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
    if (failure.is_some() || ctx.interrupted) && ctx.finished.len() < Stage::ALL.len() {
        if let Err(e) = reconcile(&mut ctx).await {
            tracing::warn!(error = ?anyhow::Error::from(e), "cannot count what is staged");
        }
    }
    keeper.abort();
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
            finished_at: Some(Utc::now()),
            error: failure,
            ..run
        },
        tables: ctx.tables.values().cloned().collect(),
        stages: std::mem::take(&mut ctx.finished),
        current: None,
    };
    let level = if status == RunStatus::Failed {
        Level::Error
    } else {
        Level::Info
    };
    // Alerts first: whoever sees the run finished also sees the alerts it opened or closed.
    if let Err(e) = update_alerts(&ctx, &detail, held).await {
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
    if let Err(e) = runs::finish(&state.db, &detail).await {
        tracing::error!(error = ?anyhow::Error::from(e), "cannot record the end of a run");
    }
    if let Err(e) = lease::release(&state.db, tenant, &detail.summary.id).await {
        tracing::error!(error = ?anyhow::Error::from(e), "cannot release the run lease");
    }
    detail
}

/// Approves or discards the table's waiting deletions (`ids`, or all); returns how many
/// changed state. When none is left HELD in any table, DELETES_HELD closes at once (the
/// approved ones wait only for the next run), so the alert and ListPendingDeletes agree.
pub async fn resolve_pending_deletes(
    state: &AppState,
    tenant: &TenantId,
    table: &str,
    ids: Option<&[String]>,
    resolution: pending_deletes::Resolution,
) -> Result<u64> {
    let now = Utc::now();
    let resolved = pending_deletes::resolve(&state.db, tenant, table, ids, resolution, now).await?;
    let mut still_held = 0;
    for t in ["company", "contact"] {
        still_held += pending_deletes::ids_in_state(&state.db, tenant, t, "HELD")
            .await?
            .len();
    }
    if still_held == 0 && alerts::resolve(&state.db, tenant, AlertKind::DeletesHeld, now).await? {
        let e = events::NewEvent {
            tenant,
            run_id: None,
            level: Level::Info,
            stage: "alert",
            table: Some(table),
            message: "alert DELETES_HELD resolved: every held deletion was approved or discarded"
                .into(),
            fields: Map::from_iter([("alert".to_owned(), Value::from("DELETES_HELD"))]),
        };
        state.logs.append(&state.db, e, now).await?;
    }
    Ok(resolved)
}

/// Renews the lease of `run_id` every quarter of its lifetime until aborted or the lease
/// is no longer the run's (the run notices at its next checkpoint).
async fn keep_lease(state: AppState, tenant: TenantId, run_id: String) {
    let ttl = state.run_lease;
    let every = (ttl / 4)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(15));
    loop {
        tokio::time::sleep(every).await;
        match lease::renew(&state.db, &tenant, &run_id, Utc::now() + ttl).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = ?anyhow::Error::from(e), run = %run_id, "cannot renew a run's lease; trying again");
            }
        }
    }
}

/// FAILING opens on a failed run and closes (with STALE) on a successful one;
/// DELETES_HELD is open while runs hold deletions.
async fn update_alerts(ctx: &Ctx<'_>, run: &RunDetail, held: u64) -> Result<()> {
    let now = Utc::now();
    let db = &ctx.state.db;
    let run_id = Some(run.summary.id.as_str());
    if run.summary.status == RunStatus::Failed {
        let message = format!(
            "the last run failed: {}",
            run.summary.error.as_deref().unwrap_or("unknown error")
        );
        if alerts::raise(db, ctx.tenant, AlertKind::Failing, &message, run_id, now).await? {
            ctx.event(
                Level::Error,
                Stage::Finish,
                None,
                format!("alert FAILING: {message}"),
                json!({"alert": "FAILING"}),
            )
            .await;
        }
        return Ok(());
    }
    for kind in [AlertKind::Failing, AlertKind::Stale] {
        if alerts::resolve(db, ctx.tenant, kind, now).await? {
            ctx.event(
                Level::Info,
                Stage::Finish,
                None,
                format!("alert {} resolved", kind.as_str()),
                json!({"alert": kind.as_str()}),
            )
            .await;
        }
    }
    if held > 0 {
        let message = format!("{held} deletions held by the delete guard wait for approval");
        if alerts::raise(
            db,
            ctx.tenant,
            AlertKind::DeletesHeld,
            &message,
            run_id,
            now,
        )
        .await?
        {
            ctx.event(
                Level::Warn,
                Stage::Finish,
                None,
                format!("alert DELETES_HELD: {message}"),
                json!({"alert": "DELETES_HELD"}),
            )
            .await;
        }
    } else if alerts::resolve(db, ctx.tenant, AlertKind::DeletesHeld, now).await? {
        ctx.event(
            Level::Info,
            Stage::Finish,
            None,
            "alert DELETES_HELD resolved".into(),
            json!({"alert": "DELETES_HELD"}),
        )
        .await;
    }
    Ok(())
}

/// The onboarding reconciliation, per table: what the ERP says it has, what is staged,
/// what the CRM holds.
async fn reconcile(ctx: &mut Ctx<'_>) -> Result<String> {
    let erp = erp_counts::all(&ctx.state.db, ctx.tenant).await?;
    let (companies, contacts) = crm::counts(&ctx.state.db, ctx.tenant).await?;
    for t in TABLES {
        let staged = staging::count_live(&ctx.state.db, ctx.tenant, t.id).await?;
        let erp_count = erp.get(t.id).copied();
        if staged == 0 && erp_count.is_none() && !ctx.tables.contains_key(t.id) {
            continue;
        }
        // The CRM's own count when it reports one with its answers, else what it was
        // delivered (erpsync's record of it).
        let crm_count = match t.id {
            "company" => Some(ctx.delivery.crm_total(t.id).unwrap_or(companies)),
            "contact" => Some(ctx.delivery.crm_total(t.id).unwrap_or(contacts)),
            _ => None,
        };
        let c = ctx.counts(t.id);
        c.staged_count = staged;
        c.erp_count = erp_count;
        c.crm_count = crm_count;
        if let Some(n) = erp_count {
            if n > staged {
                let missing = n - staged;
                ctx.event(
                    Level::Warn,
                    Stage::Finish,
                    Some(t.id),
                    format!("the ERP reports {n} rows, {staged} are staged: {missing} missing"),
                    json!({"erp_count": n, "staged_count": staged}),
                )
                .await;
            }
        }
    }
    Ok("ok".to_owned())
}

/// Sends one page's upserts and deletions to the sink in batches (see
/// [`delivery`](crate::worker::delivery)); false when shutdown stopped it before the end.
async fn deliver(
    ctx: &Ctx<'_>,
    table: &'static str,
    upserts: Vec<staging::Pending>,
    deletes: &[String],
) -> Result<bool> {
    let sink = &ctx.state.sink;
    let d = &ctx.delivery;
    let mut upserts = upserts.into_iter().peekable();
    while upserts.peek().is_some() {
        if ctx.state.runs.stopping() {
            return Ok(false);
        }
        let chunk: Vec<staging::Pending> = upserts.by_ref().take(d.batch_size()).collect();
        let batch_len = chunk.len() as u64;
        let sent = match table {
            "company" => {
                let rows: Vec<CrmCompany> = chunk
                    .into_iter()
                    .map(|r| CrmCompany::from_staged(&r.external_id, r.fields))
                    .collect();
                d.send(Stage::Push, table, "UpsertCompanies", |call| {
                    sink.upsert_companies(call, rows.clone())
                })
                .await?
            }
            _ => {
                let rows: Vec<CrmContact> = chunk
                    .into_iter()
                    .map(|r| CrmContact::from_staged(&r.external_id, r.fields))
                    .collect();
                d.send(Stage::Push, table, "UpsertContacts", |call| {
                    sink.upsert_contacts(call, rows.clone())
                })
                .await?
            }
        };
        if sent.is_none() {
            return Ok(false);
        }
        ctx.push_progress(table, batch_len).await;
    }
    for chunk in deletes.chunks(d.batch_size()) {
        if ctx.state.runs.stopping() {
            return Ok(false);
        }
        let sent = match table {
            "company" => {
                d.send(Stage::Push, table, "DeleteCompanies", |call| {
                    sink.delete_companies(call, chunk.to_vec())
                })
                .await?
            }
            _ => {
                d.send(Stage::Push, table, "DeleteContacts", |call| {
                    sink.delete_contacts(call, chunk.to_vec())
                })
                .await?
            }
        };
        if sent.is_none() {
            return Ok(false);
        }
        pending_deletes::mark_applied(&ctx.state.db, ctx.tenant, table, chunk, Utc::now()).await?;
        ctx.push_progress(table, chunk.len() as u64).await;
    }
    Ok(true)
}

async fn collect(ctx: &mut Ctx<'_>) -> Result<String> {
    let tenant = tenants::require(&ctx.state.db, ctx.tenant).await?;
    if tenant.integration_type == IntegrationType::View {
        view::collect(ctx, &tenant).await?;
    }
    let mut total = 0;
    for t in TABLES {
        let n = staging::count_pending(&ctx.state.db, ctx.tenant, t.id, false).await?;
        if n > 0 {
            ctx.counts(t.id).received = n;
            total += n;
            ctx.event(
                Level::Info,
                Stage::Collect,
                Some(t.id),
                format!("{n} records to deliver"),
                json!({"records": n}),
            )
            .await;
        }
    }
    Ok(format!("ok: {total} records"))
}

/// Holds excessive deletions: when one run would delete more than 5 % of the companies
/// (or contacts) the CRM has, and at least 50, the new deletions are held for a person to
/// approve or discard. Deletions held by an earlier run stay held until resolved;
/// approved ones go through.
async fn delete_guard(ctx: &mut Ctx<'_>) -> Result<String> {
    let guard = tenants::require(&ctx.state.db, ctx.tenant)
        .await?
        .delete_guard;
    let (companies, contacts) = crm::counts(&ctx.state.db, ctx.tenant).await?;
    let mut summary = Vec::new();
    for (table, in_crm) in [("company", companies), ("contact", contacts)] {
        // A waiting deletion whose record the ERP sent again ends by itself.
        let back = pending_deletes::supersede(&ctx.state.db, ctx.tenant, table, Utc::now()).await?;
        if !back.is_empty() {
            ctx.event(
                Level::Info,
                Stage::DeleteGuard,
                Some(table),
                format!(
                    "{} held deletions superseded: the ERP sent their records again ({})",
                    back.len(),
                    examples(&back)
                ),
                json!({"superseded": back.len()}),
            )
            .await;
            summary.push(format!("{} {table} deletions superseded", back.len()));
        }
        let tombstones = staging::pending_tombstones(&ctx.state.db, ctx.tenant, table).await?;
        if tombstones.is_empty() {
            continue;
        }
        let held_before =
            pending_deletes::ids_in_state(&ctx.state.db, ctx.tenant, table, "HELD").await?;
        let approved =
            pending_deletes::ids_in_state(&ctx.state.db, ctx.tenant, table, "APPROVED").await?;
        let new: Vec<String> = tombstones
            .iter()
            .filter(|id| !held_before.contains(*id) && !approved.contains(*id))
            .cloned()
            .collect();
        let share = if in_crm == 0 {
            0.0
        } else {
            new.len() as f64 / in_crm as f64
        };
        let mut held: HashSet<String> = tombstones
            .iter()
            .filter(|id| held_before.contains(*id))
            .cloned()
            .collect();
        if guard.holds(new.len() as u64, in_crm) {
            pending_deletes::hold(
                &ctx.state.db,
                ctx.tenant,
                table,
                &ctx.run_id,
                &new,
                Utc::now(),
            )
            .await?;
            ctx.event(
                Level::Warn,
                Stage::DeleteGuard,
                Some(table),
                format!(
                    "{} deletions held: {:.1} % of the {in_crm} in the CRM (limit {} % and {} rows)",
                    new.len(),
                    share * 100.0,
                    guard.percent,
                    guard.min_rows
                ),
                json!({"deletes": new.len(), "in_crm": in_crm}),
            )
            .await;
            // Only records the CRM has were held; deleting the others changes nothing.
            let now_held =
                pending_deletes::ids_in_state(&ctx.state.db, ctx.tenant, table, "HELD").await?;
            held.extend(new.into_iter().filter(|id| now_held.contains(id)));
        }
        if !held.is_empty() {
            ctx.counts(table).held = held.len() as u64;
            summary.push(format!("{} {table} deletions held", held.len()));
            ctx.held.insert(table, held);
        }
    }
    Ok(if summary.is_empty() {
        "ok".into()
    } else {
        summary.join(", ")
    })
}

/// A few of `ids` for a message, and how many more.
fn examples(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = ids
        .iter()
        .take(SHOWN)
        .map(|id| crate::domain::text::excerpt(id))
        .collect();
    match ids.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{}, and {more} more", shown.join(", ")),
    }
}

async fn push(ctx: &mut Ctx<'_>) -> Result<String> {
    for t in TABLES {
        let table = t.id;
        // Orders, invoices, … are not sent to the CRM: they feed the ABC analysis from
        // staging; delivering them means counting them once.
        if table != "company" && table != "contact" {
            staging::mark_all_delivered(&ctx.state.db, ctx.tenant, table).await?;
            continue;
        }
        let held = ctx.held.remove(table).unwrap_or_default();
        let mut after = String::new();
        ctx.push_progress(table, 0).await;
        loop {
            let page =
                staging::pending_page(&ctx.state.db, ctx.tenant, table, &after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.external_id.clone();
            let page_end = ctx.pushed.load(Ordering::SeqCst) + page.len() as u64;
            let mut delivered = Vec::with_capacity(page.len());
            let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
            let (mut inserted, mut updated) = (0, 0);
            for rec in page {
                if rec.deleted {
                    if !held.contains(&rec.external_id) {
                        deletes.push(rec.external_id.clone());
                        delivered.push((rec.external_id, rec.hash));
                    }
                    continue;
                }
                if rec.delivered_before {
                    updated += 1
                } else {
                    inserted += 1
                }
                delivered.push((rec.external_id.clone(), rec.hash));
                upserts.push(rec);
            }
            let deleted = deletes.len() as u64;
            if !deliver(ctx, table, upserts, &deletes).await? {
                // Stopped by shutdown mid-page: nothing of this page is marked, so the
                // next run sends it again (idempotent upserts absorb the repeat).
                ctx.interrupted = true;
                return Ok(format!("stopped by shutdown in {table}"));
            }
            staging::mark_delivered(&ctx.state.db, ctx.tenant, table, &delivered).await?;
            // Held tombstones were gone through too.
            ctx.pushed.store(page_end, Ordering::SeqCst);
            ctx.push_progress(table, 0).await;
            if table == "company" || table == "contact" {
                let c = ctx.counts(table);
                c.inserted += inserted;
                c.updated += updated;
                c.deleted += deleted;
            }
            ctx.renew().await?;
        }
        if let Some(c) = ctx.tables.get(table).cloned() {
            if c.inserted + c.updated + c.deleted > 0 {
                ctx.event(
                    Level::Info,
                    Stage::Push,
                    Some(table),
                    format!(
                        "delivered: {} new, {} updated, {} deleted",
                        c.inserted, c.updated, c.deleted
                    ),
                    json!({"inserted": c.inserted, "updated": c.updated, "deleted": c.deleted}),
                )
                .await;
            }
        }
    }
    Ok("ok".into())
}

/// The ABC analysis: revenue per company over the window, classes A/B/C, lifecycle.
async fn analyse(ctx: &mut Ctx<'_>) -> Result<String> {
    let tenant = tenants::require(&ctx.state.db, ctx.tenant).await?;
    let analysis = abc::analyse(ctx.state, &tenant, &ctx.run_id, Utc::now()).await?;
    let (orphans, orphan_revenue) = analysis.orphans;
    if orphans > 0 {
        ctx.event(
            Level::Warn,
            Stage::Abc,
            Some(tenant.abc.basis.table()),
            format!(
                "{orphans} companies named by {} records are not in the CRM; their revenue ({}) is left out",
                tenant.abc.basis.table(),
                crate::domain::abc::amount_text(orphan_revenue)
            ),
            json!({"companies": orphans}),
        )
        .await;
    }
    let outcome = format!("ok: {}", analysis.describe());
    ctx.analysis = Some((tenant, analysis));
    Ok(outcome)
}

/// Categorization: class + lifecycle + portfolio to the CRM, unless the shift guard
/// holds it.
async fn categorize(ctx: &mut Ctx<'_>) -> Result<String> {
    let Some((tenant, analysis)) = ctx.analysis.take() else {
        return Ok("skipped: no analysis".into());
    };
    let now = Utc::now();
    match abc::categorize(ctx.state, &ctx.delivery, &tenant, analysis, now).await? {
        abc::Categorized::Applied(abc::Applied {
            sent,
            class_changes,
            lifecycle_changes,
        }) => {
            if alerts::resolve(&ctx.state.db, ctx.tenant, AlertKind::AbcShiftHeld, now).await? {
                ctx.event(
                    Level::Info,
                    Stage::Categorize,
                    Some("company"),
                    "alert ABC_SHIFT_HELD resolved: this run's classification replaces the held one"
                        .into(),
                    json!({"alert": "ABC_SHIFT_HELD"}),
                )
                .await;
            }
            Ok(format!(
                "ok: {sent} companies sent to the CRM ({class_changes} changed class, {lifecycle_changes} changed lifecycle)"
            ))
        }
        abc::Categorized::Held { changed, base } => {
            ctx.abc_held = true;
            // The alert names the run whose classification waits now.
            alerts::resolve(&ctx.state.db, ctx.tenant, AlertKind::AbcShiftHeld, now).await?;
            let message = format!(
                "ABC classification held: {changed} of {base} companies would change class (more than {} %); approve or discard it with ResolveAbcShift (run {})",
                tenant.abc.shift_guard_percent, ctx.run_id
            );
            alerts::raise(
                &ctx.state.db,
                ctx.tenant,
                AlertKind::AbcShiftHeld,
                &message,
                Some(&ctx.run_id),
                now,
            )
            .await?;
            ctx.event(
                Level::Warn,
                Stage::Categorize,
                Some("company"),
                format!("alert ABC_SHIFT_HELD: {message}"),
                json!({"alert": "ABC_SHIFT_HELD", "changed": changed, "base": base}),
            )
            .await;
            Ok(format!(
                "held: {changed} of {base} companies would change class"
            ))
        }
    }
}
