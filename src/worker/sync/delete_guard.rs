//! The delete guard stage, and the decisions on what it held (ResolvePendingDeletes):
//! excessive deletions wait for a person; a held deletion whose record came back ends
//! by itself (SUPERSEDED).

use std::collections::HashSet;

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::outcome::{Guarded, Outcome};
use super::Ctx;
use crate::domain::alert::AlertKind;
use crate::domain::crm::{guarded_table, DeleteState};
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::domain::trail::{NewTrail, TrailKind};
use crate::error::Result;
use crate::storage::{alerts, crm, pending_deletes, staging, tenants, trail};
use crate::worker::RunWorker;

/// Holds excessive deletions: when one run would delete more than 5 % of the companies
/// (or contacts) the CRM has, and at least 50, the new deletions are held for a person to
/// approve or discard. Deletions held by an earlier run stay held until resolved;
/// approved ones go through.
pub(super) async fn delete_guard(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let guard = tenants::require(&ctx.worker.db, ctx.tenant)
        .await?
        .delete_guard;
    let (companies, contacts) = crm::counts(&ctx.worker.db, ctx.tenant).await?;
    let mut guarded = Vec::new();
    for (table, in_crm) in [(Table::Company, companies), (Table::Contact, contacts)] {
        let mut this = Guarded {
            table,
            superseded: 0,
            held: 0,
        };
        // A waiting deletion whose record the ERP sent again ends by itself.
        let back =
            pending_deletes::supersede(&ctx.worker.db, ctx.tenant, table, Utc::now()).await?;
        if !back.is_empty() {
            ctx.event(
                Level::Info,
                Stage::DeleteGuard,
                Some(table.as_str()),
                format!(
                    "{} held deletions superseded: the ERP sent their records again ({})",
                    back.len(),
                    examples(&back)
                ),
                json!({"superseded": back.len()}),
            )
            .await;
            this.superseded = back.len();
        }
        let tombstones =
            staging::pending_tombstones(&ctx.worker.db, ctx.tenant, table.as_str()).await?;
        if tombstones.is_empty() {
            guarded.push(this);
            continue;
        }
        let held_before =
            pending_deletes::ids_in_state(&ctx.worker.db, ctx.tenant, table, DeleteState::Held)
                .await?;
        let approved =
            pending_deletes::ids_in_state(&ctx.worker.db, ctx.tenant, table, DeleteState::Approved)
                .await?;
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
                &ctx.worker.db,
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
                Some(table.as_str()),
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
                pending_deletes::ids_in_state(&ctx.worker.db, ctx.tenant, table, DeleteState::Held)
                    .await?;
            let newly: Vec<String> = new.into_iter().filter(|id| now_held.contains(id)).collect();
            let reason = format!(
                "deletion held: {} deletions are {:.1} % of the {in_crm} in the CRM; approve or discard it",
                newly.len(),
                share * 100.0
            );
            let events: Vec<NewTrail<'_>> = newly
                .iter()
                .map(|id| NewTrail {
                    detail: Some(&reason),
                    ..NewTrail::new(id, TrailKind::Held)
                })
                .collect();
            trail::by_run(
                &ctx.worker.db,
                ctx.tenant,
                table,
                (ctx.run_id.as_str(), Stage::DeleteGuard.as_str()),
                Utc::now(),
                &events,
            )
            .await?;
            drop(events);
            held.extend(newly);
        }
        if !held.is_empty() {
            ctx.counts(table).held = held.len() as u64;
            this.held = held.len();
            ctx.held.insert(table, held);
        }
        guarded.push(this);
    }
    Ok(Outcome::Guarded(guarded))
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

/// Approves or discards the table's waiting deletions (`ids`, or all); returns how many
/// changed state. When none is left HELD in any table, DELETES_HELD closes at once (the
/// approved ones wait only for the next run), so the alert and ListPendingDeletes agree.
pub async fn resolve_pending_deletes(
    worker: &RunWorker,
    tenant: &TenantId,
    table: &str,
    ids: Option<&[String]>,
    resolution: pending_deletes::Resolution,
) -> Result<u64> {
    let table = guarded_table(table)?;
    let now = Utc::now();
    let resolved =
        pending_deletes::resolve(&worker.db, tenant, table, ids, resolution, now).await?;
    let mut still_held = 0;
    for t in Table::CRM {
        still_held += pending_deletes::ids_in_state(&worker.db, tenant, t, DeleteState::Held)
            .await?
            .len();
    }
    if still_held == 0 && alerts::resolve(&worker.db, tenant, AlertKind::DeletesHeld, now).await? {
        let e = crate::domain::run::NewEvent {
            tenant,
            run_id: None,
            level: Level::Info,
            stage: "alert",
            table: Some(table.as_str()),
            message: "alert DELETES_HELD resolved: every held deletion was approved or discarded"
                .into(),
            fields: Map::from_iter([("alert".to_owned(), Value::from("DELETES_HELD"))]),
        };
        worker.logs.append(e, now).await?;
    }
    Ok(resolved)
}
