//! The delete guard stage, and the decisions on what it held (ResolvePendingDeletes):
//! excessive deletions wait for a person; a held deletion whose record came back ends
//! by itself (SUPERSEDED); a discarded one keeps its record in the CRM, and later runs
//! ignore the ERP's deletion of it, until the ERP sends the record again (the keep ends)
//! or someone reopens it. DELETES_HELD states how many deletions are HELD now
//! ([`update_held_alert`]), whoever changed that count.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::ctx::Ctx;
use super::outcome::{Guarded, Outcome};
use crate::domain::alert::AlertKind;
use crate::domain::crm::{guarded_table, DeleteState};
use crate::domain::run::{Level, NewEvent, Stage};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::domain::trail::{NewTrail, TrailKind};
use crate::error::Result;
use crate::storage::{alerts, crm, pending_deletes, staging, tenants, tokens, trail, Db};
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
    // The stage's count: the deletions judged, of those waiting in both tables.
    let (mut done, mut total) = (0, 0);
    for table in Table::CRM {
        total += staging::count_pending(&ctx.worker.db, ctx.tenant, table.as_str(), true).await?;
    }
    for (table, in_crm) in [(Table::Company, companies), (Table::Contact, contacts)] {
        ctx.tick(Stage::DeleteGuard, Some(table), done, total);
        let mut this = Guarded {
            table,
            superseded: 0,
            held: 0,
            kept: 0,
        };
        // A waiting deletion whose record the ERP sent again ends by itself, and so does
        // a keep. (Instants of state changes are stored to the microsecond: listings page
        // by them.)
        let back = pending_deletes::supersede(
            &ctx.worker.db,
            ctx.tenant,
            table,
            &ctx.run_id,
            ctx.worker.clock().now(),
        )
        .await?;
        if !back.superseded.is_empty() {
            ctx.event(
                Level::Info,
                Stage::DeleteGuard,
                Some(table.as_str()),
                format!(
                    "{} held deletions superseded: the ERP sent their records again ({})",
                    back.superseded.len(),
                    examples(&back.superseded)
                ),
                json!({"superseded": back.superseded.len()}),
            )
            .await;
            this.superseded = back.superseded.len();
        }
        if !back.unkept.is_empty() {
            ctx.event(
                Level::Info,
                Stage::DeleteGuard,
                Some(table.as_str()),
                format!(
                    "{} records kept in the CRM by a discard are no longer kept: the ERP sent them \
                     again ({}); a later deletion of them is judged by the guard again",
                    back.unkept.len(),
                    examples(&back.unkept)
                ),
                json!({"unkept": back.unkept.len()}),
            )
            .await;
        }
        let tombstones =
            staging::pending_tombstones(&ctx.worker.db, ctx.tenant, table.as_str()).await?;
        done += tombstones.len() as u64;
        // Deletions staged since they were counted are judged too.
        total = total.max(done);
        if tombstones.is_empty() {
            guarded.push(this);
            continue;
        }
        // A record a discard keeps stays in the CRM: its deletion is neither held again
        // nor delivered, and its staged version goes back to the CRM's.
        let kept = pending_deletes::kept_ids(&ctx.worker.db, ctx.tenant, table).await?;
        let (kept, tombstones): (Vec<String>, Vec<String>) =
            tombstones.into_iter().partition(|id| kept.contains(id));
        if !kept.is_empty() {
            pending_deletes::keep_again(
                &ctx.worker.db,
                ctx.tenant,
                table,
                &kept,
                ctx.worker.clock().now(),
            )
            .await?;
            ctx.event(
                Level::Info,
                Stage::DeleteGuard,
                Some(table.as_str()),
                format!(
                    "{} deletions ignored: their records are kept in the CRM by a discard ({}); \
                     ResolvePendingDeletes with REOPEN makes them deletable again",
                    kept.len(),
                    examples(&kept)
                ),
                json!({"kept": kept.len()}),
            )
            .await;
            this.kept = kept.len();
        }
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
                ctx.worker.clock().now(),
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
                ctx.worker.clock().now(),
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
    ctx.tick(Stage::DeleteGuard, None, done, total);
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

/// Approves, discards or reopens the table's deletions (`ids`, or all) for the token
/// `token_id` (recorded as deciding by its label, else its id); returns how many changed
/// state.
/// DELETES_HELD then says how many are still HELD, or closes when none is (the approved
/// ones wait only for the next run), so the alert and ListPendingDeletes agree.
pub async fn resolve_pending_deletes(
    worker: &RunWorker,
    tenant: &TenantId,
    table: &str,
    ids: Option<&[String]>,
    resolution: pending_deletes::Resolution,
    token_id: &str,
) -> Result<u64> {
    let table = guarded_table(table)?;
    let now = worker.clock().now();
    let decided_by = tokens::decider_name(&worker.db, token_id).await?;
    let resolved =
        pending_deletes::resolve(&worker.db, tenant, table, ids, resolution, &decided_by, now)
            .await?;
    if resolved > 0 {
        let change = update_held_alert(&worker.db, tenant, None, now).await?;
        if let Some((level, message)) = change.event() {
            let e = NewEvent::new(tenant, level, "alert", message)
                .table(table.as_str())
                .field("alert", "DELETES_HELD");
            worker.logs.append(e, now).await?;
        }
    }
    Ok(resolved)
}

/// What [`update_held_alert`] did to DELETES_HELD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeldAlert {
    /// Nothing changed.
    Unchanged,
    /// Opened with this message.
    Opened(String),
    /// Still open; its message now says this.
    Restated(String),
    /// Closed: nothing is held any more.
    Resolved,
}

impl HeldAlert {
    /// The log event that tells of the change, if any.
    pub(crate) fn event(&self) -> Option<(Level, String)> {
        match self {
            Self::Unchanged => None,
            Self::Opened(m) => Some((Level::Warn, format!("alert DELETES_HELD: {m}"))),
            Self::Restated(m) => Some((Level::Info, format!("alert DELETES_HELD now: {m}"))),
            Self::Resolved => Some((
                Level::Info,
                "alert DELETES_HELD resolved: no deletion is held any more".into(),
            )),
        }
    }
}

/// The one place DELETES_HELD follows the held count: open (raised by `run_id`, when a
/// run holds) while deletions are HELD, its message stating how many are now, closed
/// when none is.
pub(crate) async fn update_held_alert(
    db: &Db,
    tenant: &TenantId,
    run_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<HeldAlert> {
    let counts = pending_deletes::held_counts(db, tenant).await?;
    let Some(message) = held_message(&counts) else {
        return Ok(
            if alerts::resolve(db, tenant, AlertKind::DeletesHeld, now).await? {
                HeldAlert::Resolved
            } else {
                HeldAlert::Unchanged
            },
        );
    };
    if alerts::raise(db, tenant, AlertKind::DeletesHeld, &message, run_id, now).await? {
        return Ok(HeldAlert::Opened(message));
    }
    Ok(
        if alerts::restate(db, tenant, AlertKind::DeletesHeld, &message, now).await? {
            HeldAlert::Restated(message)
        } else {
            HeldAlert::Unchanged
        },
    )
}

/// DELETES_HELD's message for the HELD counts per table; None when none is held.
fn held_message(counts: &[(Table, u64)]) -> Option<String> {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let mut message = format!("{total} deletions held by the delete guard wait for approval");
    if counts.len() > 1 {
        let per: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
        message.push_str(&format!(" ({})", per.join(", ")));
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_states_the_held_count_per_table_when_both_hold() {
        assert_eq!(held_message(&[]), None);
        assert_eq!(held_message(&[(Table::Company, 0)]), None);
        assert_eq!(
            held_message(&[(Table::Company, 100)]).unwrap(),
            "100 deletions held by the delete guard wait for approval"
        );
        assert_eq!(
            held_message(&[(Table::Company, 80), (Table::Contact, 20)]).unwrap(),
            "100 deletions held by the delete guard wait for approval (company 80, contact 20)"
        );
    }
}
