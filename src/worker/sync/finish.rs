//! The finish stage: the onboarding reconciliation (ERP vs staged vs CRM) and the alerts
//! a run opens or closes.

use chrono::Utc;
use serde_json::json;

use super::outcome::Outcome;
use super::Ctx;
use crate::domain::alert::AlertKind;
use crate::domain::run::{Level, RunDetail, RunStatus, Stage};
use crate::domain::tables::Table;
use crate::error::Result;
use crate::storage::{alerts, crm, erp_counts, staging};

/// The onboarding reconciliation, per table: what the ERP says it has, what is staged,
/// what the CRM holds.
pub(super) async fn reconcile(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let erp = erp_counts::all(&ctx.worker.db, ctx.tenant).await?;
    let (companies, contacts) = crm::counts(&ctx.worker.db, ctx.tenant).await?;
    for t in Table::ALL {
        let staged = staging::count_live(&ctx.worker.db, ctx.tenant, t.as_str()).await?;
        let erp_count = erp.get(t.as_str()).copied();
        if staged == 0 && erp_count.is_none() && !ctx.tables.contains_key(&t) {
            continue;
        }
        // The CRM's own count when it reports one with its answers, else what it was
        // delivered (erpsync's record of it).
        let crm_count = match t {
            Table::Company => Some(ctx.delivery.crm_total(t).unwrap_or(companies)),
            Table::Contact => Some(ctx.delivery.crm_total(t).unwrap_or(contacts)),
            _ => None,
        };
        let c = ctx.counts(t);
        c.staged_count = staged;
        c.erp_count = erp_count;
        c.crm_count = crm_count;
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

/// FAILING opens on a failed run and closes (with STALE) on a successful one;
/// DELETES_HELD is open while runs hold deletions.
pub(super) async fn update_alerts(ctx: &Ctx<'_>, run: &RunDetail, held: u64) -> Result<()> {
    let now = Utc::now();
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
