//! The finish stage: the onboarding reconciliation (ERP vs staged vs CRM) and the alerts
//! a run opens or closes.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::ctx::Ctx;
use super::outcome::Outcome;
use crate::domain::alert::AlertKind;
use crate::domain::run::{CrmCountSource, Level, RunDetail, RunStatus, Stage};
use crate::domain::tables::Table;
use crate::error::Result;
use crate::storage::{alerts, crm, erp_counts, staging};
use crate::worker::sink::CrmCounts;

/// The onboarding reconciliation, per table: what the ERP says it has, what is staged,
/// what the CRM holds (see [`crm_count`]).
pub(super) async fn reconcile(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let erp = erp_counts::all(&ctx.worker.db, ctx.tenant).await?;
    let mut counted: Option<Option<(CrmCounts, DateTime<Utc>)>> = None;
    let mut own: Option<(CrmCounts, DateTime<Utc>)> = None;
    for t in Table::ALL {
        let staged = staging::count_live(&ctx.worker.db, ctx.tenant, t.as_str()).await?;
        let erp_count = erp.get(t.as_str()).copied();
        if staged == 0 && erp_count.is_none() && !ctx.tables.contains_key(&t) {
            continue;
        }
        let crm = if t.is_crm() {
            if counted.is_none() {
                counted = Some(ask_crm(ctx).await);
            }
            Some(crm_count(ctx, t, counted.flatten(), &mut own).await?)
        } else {
            None
        };
        let c = ctx.counts(t);
        c.staged_count = staged;
        c.erp_count = erp_count;
        (c.crm_count, c.crm_counted_at, c.crm_count_source) = match crm {
            Some((n, at, source)) => (Some(n), Some(at), Some(source)),
            None => (None, None, None),
        };
        if let Some(n) = erp_count {
            if n > staged {
                let missing = n - staged;
                ctx.event(
                    Level::Warn,
                    Stage::Finish,
                    Some(t.as_str()),
                    format!("the ERP reports {n} rows, {staged} are staged: {missing} missing"),
                    json!({"erp_count": n, "staged_count": staged}),
                )
                .await;
            }
        }
    }
    Ok(Outcome::Reconciled)
}

/// The CRM's own count, asked once after a push that went through (a run that failed
/// or stopped before does not ask); None when it was not asked, does not count on
/// demand, or failed to (a WARN event: the run falls back, see [`crm_count`]).
async fn ask_crm(ctx: &Ctx<'_>) -> Option<(CrmCounts, DateTime<Utc>)> {
    if !ctx.pushed_all {
        return None;
    }
    match ctx.delivery.sink().count_records(ctx.tenant).await {
        Ok(counts) => counts.map(|c| (c, ctx.worker.clock().now())),
        Err(e) => {
            let message = e.run_message();
            ctx.event(
                Level::Warn,
                Stage::Finish,
                None,
                format!("the CRM could not count its records: {message}; the run shows the count it has"),
                json!({"sink_status": message}),
            )
            .await;
            None
        }
    }
}

/// What the CRM holds of `table` (companies or contacts), when it was read and where it
/// comes from, best first: the CRM's count after the push (`counted`), else the last
/// total the host reported with an answer in this run, else erpsync's own count (the
/// embedded sink's table, or the record of what was delivered to a host: read once a
/// run, into `own`).
async fn crm_count(
    ctx: &Ctx<'_>,
    table: Table,
    counted: Option<(CrmCounts, DateTime<Utc>)>,
    own: &mut Option<(CrmCounts, DateTime<Utc>)>,
) -> Result<(u64, DateTime<Utc>, CrmCountSource)> {
    if let Some((c, at)) = counted {
        return Ok((c.of(table), at, c.source));
    }
    if let Some((n, at)) = ctx.delivery.crm_total(table) {
        return Ok((n, at, CrmCountSource::HostTotal));
    }
    let (c, at) = match *own {
        Some(read) => read,
        None => {
            let (companies, contacts) = crm::counts(&ctx.worker.db, ctx.tenant).await?;
            let source = if ctx.delivery.sink().is_embedded() {
                CrmCountSource::Embedded
            } else {
                CrmCountSource::Delivered
            };
            let read = (
                CrmCounts {
                    companies,
                    contacts,
                    source,
                },
                ctx.worker.clock().now(),
            );
            *own = Some(read);
            read
        }
    };
    Ok((c.of(table), at, c.source))
}

/// FAILING opens on a failed run and closes (with STALE) on a successful one;
/// DELETES_HELD is open while deletions are held, stating how many.
pub(super) async fn update_alerts(ctx: &Ctx<'_>, run: &RunDetail) -> Result<()> {
    let now = ctx.worker.clock().now();
    let db = &ctx.worker.db;
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
    // The stored HELD count, not only this run's: the alert says what ListPendingDeletes
    // shows.
    let change = super::delete_guard::update_held_alert(db, ctx.tenant, run_id, now).await?;
    if let Some((level, message)) = change.event() {
        ctx.event(
            level,
            Stage::Finish,
            None,
            message,
            json!({"alert": "DELETES_HELD"}),
        )
        .await;
    }
    Ok(())
}
