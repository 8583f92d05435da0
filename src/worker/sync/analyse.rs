//! The abc stage: revenue per company over the window, classes A/B/C, lifecycle.

use serde_json::json;

use super::outcome::Outcome;
use super::Ctx;
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::error::Result;
use crate::storage::tenants;
use crate::worker::abc;

/// The ABC analysis: revenue per company over the window, classes A/B/C, lifecycle.
pub(super) async fn analyse(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let tenant = tenants::require(&ctx.worker.db, ctx.tenant).await?;
    let meter = ctx.meter.clone();
    let progress =
        move |done: u64, total: u64| meter.set(Stage::Abc, Some(Table::Company), done, total);
    let analysis = abc::analyse(
        ctx.worker,
        &tenant,
        &ctx.run_id,
        ctx.worker.clock.now(),
        &progress,
    )
    .await?;
    let (orphans, orphan_revenue) = analysis.orphans;
    if orphans > 0 {
        ctx.event(
            Level::Warn,
            Stage::Abc,
            Some(tenant.abc.basis.table().as_str()),
            format!(
                "{orphans} companies named by {} records are not in the CRM; their revenue ({}) is left out",
                tenant.abc.basis.table().as_str(),
                orphan_revenue.text()
            ),
            json!({"companies": orphans}),
        )
        .await;
    }
    let description = analysis.describe();
    ctx.analysis = Some((tenant, analysis));
    Ok(Outcome::Analysed { description })
}
