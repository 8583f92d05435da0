//! The abc stage: revenue per company over the window, classes A/B/C, lifecycle and
//! portfolio.
//!
//! Revenue per company is summed by the database in one scan of the revenue index (never
//! loading invoices here), then classified in memory (one entry per company); the
//! categorize stage ([`super::categorize`]) takes the analysis on.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::ctx::Ctx;
use super::outcome::{Analysis, Outcome};
use crate::domain::abc::{
    classify, AbcReport, Category, CompanyRevenue, Money, ReportState, UNASSIGNED,
};
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::domain::tenant::Tenant;
use crate::error::Result;
use crate::storage::abc;
use crate::storage::tenants;
use crate::worker::RunWorker;

/// The ABC analysis of a run: revenue per company over the window, classes A/B/C,
/// lifecycle.
pub(super) async fn analyse(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let tenant = tenants::require(&ctx.worker.db, ctx.tenant).await?;
    let meter = ctx.meter.clone();
    let progress =
        move |done: u64, total: u64| meter.set(Stage::Abc, Some(Table::Company), done, total);
    let now = ctx.worker.clock().now();
    let analysis = companies(ctx.worker, &tenant, &ctx.run_id, now, &progress).await?;
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

/// How far a stage got: `done` of `total` companies (see [`companies`], [`super::categorize::companies`]).
pub type Progress<'p> = &'p (dyn Fn(u64, u64) + Sync);

/// Revenue per company in the window and its ABC class, lifecycle and portfolio;
/// `progress` hears of the companies classified of those read.
pub async fn companies(
    worker: &RunWorker,
    tenant: &Tenant,
    run_id: &str,
    now: DateTime<Utc>,
    progress: Progress<'_>,
) -> Result<Analysis> {
    let settings = &tenant.abc;
    let as_of = now.with_timezone(&tenant.timezone).date_naive();
    let (from, to) = settings.window(as_of);
    // The revenue sums and the companies with their stored categories are read side by
    // side on their own connections (the database's work on one core, the other's, and
    // this side's decoding overlap).
    let purchases = abc::purchases(&worker.db, &tenant.id, settings.basis, from, to);
    let companies = abc::live_companies(&worker.db, &tenant.id);
    let (mut purchases, companies) = tokio::try_join!(purchases, companies)?;
    let read = companies.len() as u64;
    progress(0, read);
    let mut previous = Vec::with_capacity(companies.len());
    let removed = abc::categorized_but_gone(
        &worker.db,
        &tenant.id,
        companies.iter().filter(|c| c.stored.is_some()).count(),
    )
    .await?;
    let revenues: Vec<CompanyRevenue> = companies
        .iter()
        .map(|c| CompanyRevenue {
            external_id: &c.external_id,
            revenue: purchases
                .get(&c.external_id)
                .map_or(Money::ZERO, |p| Money::from(p.revenue)),
        })
        .collect();
    let mut classification = classify(&revenues, settings.a_threshold, settings.b_threshold);
    drop(revenues);
    let standings = std::mem::take(&mut classification.standings);
    let mut unclassified_revenue = Money::ZERO;
    // Mapped in place: a category is no larger than a company (see the test below), so
    // std reuses the companies' buffer for the categories (no second copy in memory).
    let mut classes = classification.classes.iter().copied();
    let categories: Vec<Category> = companies
        .into_iter()
        .map(|c| {
            let abc_class = classes.next().flatten();
            let p = purchases.remove(&c.external_id).unwrap_or_default();
            if abc_class.is_none() {
                unclassified_revenue += Money::from(p.revenue);
            }
            previous.push(c.stored);
            Category {
                lifecycle: settings.lifecycle(p.first, p.last, as_of),
                portfolio: c.portfolio.unwrap_or_else(|| UNASSIGNED.to_owned()),
                abc_class,
                revenue: p.revenue,
                first_purchase: p.first,
                last_purchase: p.last,
                external_id: c.external_id,
                name: c.name,
                document: c.document,
                company_hash: Some(c.content_hash),
            }
        })
        .collect();
    progress(read, read);
    // What is left names companies the CRM does not have.
    let orphans = (
        purchases.len() as u64,
        purchases.values().map(|p| Money::from(p.revenue)).sum(),
    );
    let report = AbcReport {
        run_id: run_id.to_owned(),
        computed_at: now,
        as_of,
        basis: settings.basis,
        window_from: from,
        window_to: to,
        a_threshold: settings.a_threshold,
        b_threshold: settings.b_threshold,
        summary: classification.summary_lines(unclassified_revenue),
        curve: classification.curve,
        companies: categories.len() as u64,
        changed: 0,
        base: 0,
        state: ReportState::Applied,
    };
    Ok(Analysis {
        report,
        categories,
        orphans,
        previous,
        removed,
        standings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_fits_where_its_company_was() {
        use std::mem::{align_of, size_of};
        assert!(size_of::<Category>() <= size_of::<abc::LiveCompany>());
        assert_eq!(align_of::<Category>(), align_of::<abc::LiveCompany>());
    }
}
