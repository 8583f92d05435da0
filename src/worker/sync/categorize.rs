//! The categorize stage: classes, lifecycle and portfolio to the CRM, unless the shift
//! guard holds them (ABC_SHIFT_HELD).

use serde_json::json;

use super::outcome::Outcome;
use super::Ctx;
use crate::domain::alert::AlertKind;
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::error::Result;
use crate::storage::alerts;
use crate::worker::abc;

/// Categorization: class + lifecycle + portfolio to the CRM, unless the shift guard
/// holds it.
pub(super) async fn categorize(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let Some((tenant, analysis)) = ctx.analysis.take() else {
        return Ok(Outcome::NotCategorized);
    };
    let now = ctx.worker.clock.now();
    let total = analysis.categories.len() as u64;
    let meter = ctx.meter.clone();
    let progress = move |done: u64, total: u64| {
        meter.set(Stage::Categorize, Some(Table::Company), done, total)
    };
    let categorized =
        abc::categorize(ctx.worker, &ctx.delivery, &tenant, analysis, now, &progress).await?;
    // Held or applied, every company was gone through.
    ctx.tick(Stage::Categorize, Some(Table::Company), total, total);
    match categorized {
        abc::Categorized::Applied(_) => {
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
        abc::Categorized::Held { changed, base } => {
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
