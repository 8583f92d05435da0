//! The categorize stage: class + lifecycle + portfolio per company, compared with what
//! the CRM has; only the companies whose categories changed are sent to the sink and
//! stored, each class or lifecycle change with its run and date — unless the shift guard
//! holds the classification (ABC_SHIFT_HELD) until a person approves or discards it
//! (ResolveAbcShift, [`resolve_shift`]).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::analyse::Progress;
use super::ctx::Ctx;
use super::outcome::{Analysis, Applied, Categorized, Outcome};
use crate::domain::abc::{
    change_of, classify, shift, shift_exceeds, AbcReport, Category, CompanyRevenue, Money,
    ReportState, Stamp, Standing,
};
use crate::domain::alert::AlertKind;
use crate::domain::run::{Level, NewEvent, Stage};
use crate::domain::tables::Table;
use crate::domain::tenant::{Tenant, TenantId};
use crate::error::{AppError, Result};
use crate::storage::abc::Stored;
use crate::storage::{abc, alerts, lease, tenants};
use crate::worker::delivery::Delivery;
use crate::worker::RunWorker;

/// Categorization: class + lifecycle + portfolio to the CRM, unless the shift guard
/// holds it.
pub(super) async fn categorize(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let Some((tenant, analysis)) = ctx.analysis.take() else {
        return Ok(Outcome::NotCategorized);
    };
    let now = ctx.worker.clock().now();
    let total = analysis.categories.len() as u64;
    let meter = ctx.meter.clone();
    let progress = move |done: u64, total: u64| {
        meter.set(Stage::Categorize, Some(Table::Company), done, total)
    };
    let categorized =
        companies(ctx.worker, &ctx.delivery, &tenant, analysis, now, &progress).await?;
    // Held or applied, every company was gone through.
    ctx.tick(Stage::Categorize, Some(Table::Company), total, total);
    match categorized {
        Categorized::Applied(_) => {
            if alerts::resolve(&ctx.worker.db, ctx.tenant, AlertKind::AbcShiftHeld, now).await? {
                ctx.event(
                    Level::Info,
                    Stage::Categorize,
                    Some(Table::Company.as_str()),
                    "alert ABC_SHIFT_HELD resolved: this run's classification replaces the held one"
                        .into(),
                    json!({"alert": "ABC_SHIFT_HELD"}),
                )
                .await;
            }
            Ok(Outcome::Categorized(categorized))
        }
        Categorized::Held { changed, base } => {
            ctx.abc_held = true;
            // The alert names the run whose classification waits now.
            alerts::resolve(&ctx.worker.db, ctx.tenant, AlertKind::AbcShiftHeld, now).await?;
            let message = format!(
                "ABC classification held: {changed} of {base} companies would change class (more than {} %); approve or discard it with ResolveAbcShift (run {})",
                tenant.abc.shift_guard_percent, ctx.run_id
            );
            alerts::raise(
                &ctx.worker.db,
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
                Some(Table::Company.as_str()),
                format!("alert ABC_SHIFT_HELD: {message}"),
                json!({"alert": "ABC_SHIFT_HELD", "changed": changed, "base": base}),
            )
            .await;
            Ok(Outcome::Categorized(categorized))
        }
    }
}

/// The categorize stage: applies the analysis, unless it would change the class of more
/// than the tenant's share of companies — then it is held for ResolveAbcShift.
/// `progress` hears of the companies done (unchanged, sent, stored) of the analysis's.
pub async fn companies(
    worker: &RunWorker,
    delivery: &Delivery<'_>,
    tenant: &Tenant,
    mut analysis: Analysis,
    now: DateTime<Utc>,
    progress: Progress<'_>,
) -> Result<Categorized> {
    let previous = std::mem::take(&mut analysis.previous);
    let (changed, base) = shift(
        analysis
            .categories
            .iter()
            .zip(&previous)
            .filter_map(|(c, p)| p.as_ref().map(|p| (p.abc_class, c.abc_class))),
    );
    analysis.report.changed = changed;
    analysis.report.base = base;
    let guard = &tenant.abc;
    if guard.shift_guard && shift_exceeds(changed, base, guard.shift_guard_percent) {
        analysis.report.state = ReportState::Held;
        abc::hold(
            &worker.db,
            &tenant.id,
            &analysis.report,
            &analysis.categories,
        )
        .await?;
        return Ok(Categorized::Held { changed, base });
    }
    let run_id = analysis.report.run_id.clone();
    let removed = std::mem::take(&mut analysis.removed);
    let standings = std::mem::take(&mut analysis.standings);
    let outcome = apply(
        worker,
        delivery,
        tenant,
        &run_id,
        analysis.categories,
        &previous,
        &standings,
        removed,
        now,
        progress,
    )
    .await?;
    abc::supersede_held(&worker.db, &tenant.id, now).await?;
    analysis.report.state = ReportState::Applied;
    abc::insert_report(&worker.db, &tenant.id, &analysis.report).await?;
    Ok(Categorized::Applied(outcome))
}

/// Sends the companies whose categories changed to the CRM, then stores them with their
/// history. The sink goes first: if it fails nothing is stored, and the next run sends
/// the same again (categories are idempotent). `progress` hears of the companies done:
/// the unchanged ones at once, each batch once the CRM acknowledged it, the rest once
/// stored.
#[allow(clippy::too_many_arguments)]
async fn apply(
    worker: &RunWorker,
    delivery: &Delivery<'_>,
    tenant: &Tenant,
    run_id: &str,
    mut categories: Vec<Category>,
    previous: &[Option<Stored>],
    standings: &[Option<Standing>],
    removed: Vec<String>,
    now: DateTime<Utc>,
    progress: Progress<'_>,
) -> Result<Applied> {
    let total = categories.len() as u64;
    let today = now.with_timezone(&tenant.timezone).date_naive();
    let mut history = Vec::new();
    let (mut class_changes, mut lifecycle_changes) = (0, 0);
    // Stored again: what changed for the CRM, and companies whose staged version moved
    // on without changing what the CRM gets (so the next run need not re-read them).
    // Kept in place (no second copy of the categories): 0 leaves, 1 is stored, 2 is
    // stored and sent to the CRM; `is_new` marks companies without stored categories.
    let mut sent = 0;
    let resend_after_upsert = !delivery.sink().reads_stored_categories();
    let mut fate = Vec::with_capacity(categories.len());
    for (i, (c, old)) in categories.iter().zip(previous).enumerate() {
        let old = old.as_ref();
        let standing = standings.get(i).copied().flatten();
        if let Some(h) = change_of(old, c, standing, run_id, now, today) {
            class_changes += u64::from(h.abc_from != h.abc_to);
            lifecycle_changes += u64::from(h.lifecycle_from != h.lifecycle_to);
            // A first categorization is stored with the category itself.
            if old.is_some() {
                history.push(h);
            }
        }
        // A company upserted again (its staged version moved on) gets its categories
        // again too, whatever the host's upsert did to them.
        let upserted = old.is_some_and(|o| o.company_hash != c.company_hash);
        let for_crm = old.is_none_or(|o| o.fingerprint != c.fingerprint())
            || (upserted && resend_after_upsert);
        sent += u64::from(for_crm);
        let store = for_crm || upserted;
        fate.push((u8::from(store) + u8::from(for_crm), old.is_none()));
    }
    let mut done = fate.iter().filter(|f| f.0 == 0).count() as u64;
    progress(done, total);
    if !delivery.sink().reads_stored_categories() {
        let for_crm: Vec<&Category> = categories
            .iter()
            .zip(&fate)
            .filter(|(_, f)| f.0 == 2)
            .map(|(c, _)| c)
            .collect();
        for chunk in for_crm.chunks(delivery.batch_size()) {
            let rows: Vec<Category> = chunk.iter().map(|c| (*c).clone()).collect();
            let versions: Vec<_> = rows.iter().map(Category::version).collect();
            let key = crate::domain::crm::batch_key(
                "ApplyCategories",
                tenant.id.as_str(),
                rows.iter()
                    .zip(&versions)
                    .map(|(c, v)| (c.external_id.as_str(), v)),
            );
            let sent = delivery
                .send(
                    Stage::Categorize,
                    Table::Company,
                    "ApplyCategories",
                    key,
                    |call| delivery.sink().apply_categories(call, rows.clone()),
                )
                .await?;
            if sent.is_none() {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "the server is shutting down: categories not sent; the next run sends them"
                )));
            }
            done += chunk.len() as u64;
            progress(done, total);
        }
    }
    // The companies stored before whose categories are written again are few; the new
    // ones stay where they are.
    let mut i = 0;
    let changed: Vec<Category> = categories
        .extract_if(.., |_| {
            let (store, new) = fate[i];
            i += 1;
            store > 0 && !new
        })
        .collect();
    let mut i = 0;
    categories.retain(|_| {
        let (store, new) = fate[i];
        i += 1;
        store > 0 && new
    });
    let new = categories;
    let stamp = Stamp {
        run_id,
        at: now,
        on: today,
    };
    abc::apply(
        &worker.db, &tenant.id, &stamp, &new, &changed, &history, &removed,
    )
    .await?;
    progress(total, total);
    Ok(Applied {
        sent,
        class_changes,
        lifecycle_changes,
    })
}

/// How long a shift release holds the tenant's lease (no run starts meanwhile).
const RELEASE_LEASE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// APPROVE or DISCARD of a held classification. Not [`crate::domain::crm::Resolution`]:
/// a held deletion can be reopened after a discard, a discarded classification cannot
/// (the next run classifies afresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftAction {
    /// Apply it now.
    Approve,
    /// Drop it; the previous classification stays.
    Discard,
}

/// Releases (applies) or drops the classification of `run_id` held by the shift guard;
/// returns how many companies changed class. NOT_FOUND when the run has no analysis,
/// FAILED_PRECONDITION when it is not held (any more) or a run is in progress.
pub async fn resolve_shift(
    worker: &RunWorker,
    tenant_id: &TenantId,
    run_id: &str,
    action: ShiftAction,
) -> Result<u64> {
    let tenant = tenants::require(&worker.db, tenant_id).await?;
    let report = abc::report(&worker.db, tenant_id, run_id)
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "run {run_id:?} has no ABC analysis: see ListRuns and GetAbcReport"
            ))
        })?;
    if report.state != ReportState::Held {
        return Err(AppError::FailedPrecondition(format!(
            "the classification of run {run_id} is not held: it is {}",
            report.state.as_str()
        )));
    }
    let now = worker.clock().now();
    // The lease names a run id (36 characters); this release has one of its own, which
    // no run has, so the lease counts as live until released.
    let holder = uuid::Uuid::new_v4().to_string();
    if let Err(running) = lease::acquire(
        &worker.db,
        tenant_id,
        &worker.instance,
        &holder,
        RELEASE_LEASE_TTL,
        now,
    )
    .await?
    {
        return Err(AppError::FailedPrecondition(format!(
            "a run of this tenant is in progress ({running}): resolve the ABC shift after it ends"
        )));
    }
    let result = release(worker, &tenant, &report, action, now).await;
    if let Err(e) = lease::release(&worker.db, tenant_id, &holder).await {
        tracing::error!(error = ?anyhow::Error::from(e), "cannot release the lease of an ABC shift release");
    }
    result
}

async fn release(
    worker: &RunWorker,
    tenant: &Tenant,
    report: &AbcReport,
    action: ShiftAction,
    now: DateTime<Utc>,
) -> Result<u64> {
    let db = &worker.db;
    let no_longer_held = || {
        AppError::FailedPrecondition(format!(
            "the classification of run {} is no longer held",
            report.run_id
        ))
    };
    let changed = match action {
        ShiftAction::Approve => {
            let rows = abc::held_rows(db, &tenant.id, &report.run_id).await?;
            let mut stored = abc::stored(db, &tenant.id).await?;
            let previous: Vec<Option<Stored>> =
                rows.iter().map(|c| stored.remove(&c.external_id)).collect();
            // What is left was categorized but is not in the held classification.
            let removed: Vec<String> = stored.into_keys().collect();
            // Ranked again from the revenues the held classes were cut from (the ranking
            // does not depend on the thresholds).
            let standings = standings_of(&rows, report);
            // Retries of the CRM's batches are logged under the run whose
            // classification this is.
            let sink = worker.sinks.of(&tenant.id).await;
            let delivery = Delivery::new(worker, sink, &tenant.id, &report.run_id);
            let outcome = apply(
                worker,
                &delivery,
                tenant,
                &report.run_id,
                rows,
                &previous,
                &standings,
                removed,
                now,
                &|_, _| {},
            )
            .await?;
            if !abc::resolve(db, &tenant.id, &report.run_id, ReportState::Approved, now).await? {
                return Err(no_longer_held());
            }
            outcome.class_changes
        }
        ShiftAction::Discard => {
            if !abc::resolve(db, &tenant.id, &report.run_id, ReportState::Discarded, now).await? {
                return Err(no_longer_held());
            }
            0
        }
    };
    alerts::resolve(db, &tenant.id, AlertKind::AbcShiftHeld, now).await?;
    let verb = match action {
        ShiftAction::Approve => "approved and applied",
        ShiftAction::Discard => "discarded; the previous classification stays",
    };
    let message = format!(
        "ABC classification of run {} {verb} ({changed} companies changed class)",
        report.run_id
    );
    worker
        .logs
        .append(
            NewEvent::new(&tenant.id, Level::Info, Stage::Abc.as_str(), message)
                .run(report.run_id.as_str())
                .table(Table::Company.as_str())
                .field("alert", "ABC_SHIFT_HELD")
                .field("companies_changed", changed),
            now,
        )
        .await?;
    Ok(changed)
}

/// Where the classification ranks each of `rows` by its revenue (same order).
fn standings_of(rows: &[Category], report: &AbcReport) -> Vec<Option<Standing>> {
    let revenues: Vec<CompanyRevenue> = rows
        .iter()
        .map(|c| CompanyRevenue {
            external_id: &c.external_id,
            revenue: Money::from(c.revenue),
        })
        .collect();
    classify(&revenues, report.a_threshold, report.b_threshold).standings
}
