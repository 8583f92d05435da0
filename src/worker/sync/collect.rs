//! The collect stage: a View tenant's views are read into staging first (its count: the
//! rows read); then what waits for delivery is counted per table (its count: the records
//! counted so far, of all of them at the end).

use serde_json::json;

use super::ctx::Ctx;
use super::outcome::Outcome;
use super::view;
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::domain::tenant::IntegrationType;
use crate::error::Result;
use crate::storage::{staging, tenants};

pub(super) async fn collect(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let tenant = tenants::require(&ctx.worker.db, ctx.tenant).await?;
    if tenant.integration_type == IntegrationType::View {
        view::collect(ctx, &tenant).await?;
    }
    // After an onboarding load PostgreSQL has no statistics of the new rows yet; the
    // counts below and the push's statements plan better with them.
    if staging::refresh_statistics(&ctx.worker.db).await? {
        tracing::debug!("staged_record analyzed: its statistics were stale");
    }
    // What waits for delivery, counted table by table: the stage's records.
    let mut total = 0;
    for t in Table::ALL {
        ctx.tick(Stage::Collect, Some(t), total, 0);
        let n = staging::count_pending(&ctx.worker.db, ctx.tenant, t.as_str(), false).await?;
        if n > 0 {
            ctx.counts(t).received = n;
            total += n;
            ctx.event(
                Level::Info,
                Stage::Collect,
                Some(t.as_str()),
                format!("{n} records to deliver"),
                json!({"records": n}),
            )
            .await;
        }
    }
    ctx.tick(Stage::Collect, None, total, total);
    Ok(Outcome::Collected { records: total })
}
