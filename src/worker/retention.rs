//! Retention of everything that grows, hourly and at start, in bounded batches so
//! ingestion never waits long: the request log (older than its window: whole days of it
//! at once where it is partitioned, PostgreSQL's `storage::log_partitions`, the rest in
//! batches), and each tenant's run and ABC history (older than the tenant's windows, never
//! what the page still shows: see [`crate::domain::retention`] and
//! [`crate::storage::retention`]). Every replica may run it: the deletes are idempotent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::domain::retention::Defaults;
use crate::domain::tenant::TenantId;
use crate::domain::trail::TrailKind;
use crate::error::Result;
use crate::storage::retention::Deleted;
use crate::storage::{log_partitions, request_log, retention, trail, Db};

/// Rows deleted per transaction: small enough never to stall ingestion for long.
pub const BATCH: u64 = 5_000;
/// How often the job wakes.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Removes every request-log row older than `days` days before `now`; returns how many
/// went. Stops early (between batches) when `shutdown` turns true. On PostgreSQL the log is partitioned by day: the coming days'
/// partitions are made first (a failure there is logged, not fatal: rows of a day without
/// one land in the default partition), then the days wholly outside the window are
/// dropped. What remains before the cutoff (part of the day it falls in, old rows in the
/// default partition, every old row on SQLite) goes batch by batch.
pub async fn purge_at(
    db: &Db,
    now: DateTime<Utc>,
    days: u32,
    shutdown: &watch::Receiver<bool>,
) -> Result<u64> {
    let cutoff = now - chrono::Duration::days(i64::from(days));
    if let Err(e) = log_partitions::ensure_ahead(db, now.date_naive()).await {
        tracing::warn!(error = ?anyhow::Error::from(e), "request-log partitions not made ahead");
    }
    let dropped = log_partitions::drop_older_than(db, cutoff).await?;
    if dropped.partitions > 0 {
        tracing::info!(
            partitions = dropped.partitions,
            rows = dropped.rows,
            "request-log retention dropped old days"
        );
    }
    let mut total = dropped.rows;
    loop {
        let n = request_log::delete_older_than(db, cutoff, BATCH).await?;
        total += n;
        if n < BATCH || *shutdown.borrow() {
            break;
        }
        tokio::task::yield_now().await;
    }
    // Records' trails of the requests gone with them.
    purge_trail(db, None, &TrailKind::OF_REQUEST, cutoff, shutdown).await?;
    Ok(total)
}

/// Deletes the trail events of `kinds` from before `cutoff` (of `tenant`, or of every
/// tenant), batch by batch until a batch is not full or shutdown; returns how many went.
async fn purge_trail(
    db: &Db,
    tenant: Option<&TenantId>,
    kinds: &[TrailKind],
    cutoff: DateTime<Utc>,
    shutdown: &watch::Receiver<bool>,
) -> Result<u64> {
    let mut total = 0;
    loop {
        let n = trail::delete_older_than(db, tenant, kinds, cutoff, BATCH).await?;
        crate::metrics::retention_deleted("record_trail", n);
        total += n;
        if n < BATCH || *shutdown.borrow() {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Tenants read per page while the history purge walks them.
const TENANT_PAGE: u64 = 500;

/// Deletes every tenant's run and ABC history older than its windows (its overrides,
/// else `defaults`) as of `now`, batch by batch; returns how many rows went, by table.
/// Stops early (between batches) when `shutdown` turns true. A tenant whose purge fails
/// is logged and skipped; the others go on.
pub async fn purge_history(
    db: &Db,
    defaults: Defaults,
    now: DateTime<Utc>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Deleted> {
    let mut total = Deleted::default();
    let mut after: Option<String> = None;
    loop {
        let page = retention::tenants_page(db, after.as_deref(), TENANT_PAGE).await?;
        for (tenant, overrides) in &page {
            if *shutdown.borrow() {
                return Ok(total);
            }
            let cutoffs = overrides.cutoffs(defaults, now);
            match purge_tenant(db, tenant, cutoffs, shutdown).await {
                Ok(d) => total.add(d),
                Err(e) => tracing::error!(
                    tenant = %tenant,
                    error = ?anyhow::Error::from(e),
                    "history retention failed for a tenant"
                ),
            }
        }
        match page.last() {
            Some((last, _)) if page.len() as u64 == TENANT_PAGE => {
                after = Some(last.as_str().to_owned());
            }
            _ => return Ok(total),
        }
    }
}

/// One tenant's history, batch by batch until a batch is not full or shutdown.
async fn purge_tenant(
    db: &Db,
    tenant: &TenantId,
    cutoffs: crate::domain::retention::Cutoffs,
    shutdown: &watch::Receiver<bool>,
) -> Result<Deleted> {
    let mut total = Deleted::default();
    // The records' trail events of runs go with the run history.
    purge_trail(db, Some(tenant), &TrailKind::OF_RUN, cutoffs.runs, shutdown).await?;
    let mut runs_left = true;
    let mut abc_left = true;
    while runs_left || abc_left {
        if runs_left {
            let (d, full) = retention::purge_runs(db, tenant, cutoffs.runs, BATCH).await?;
            counted(d);
            total.add(d);
            runs_left = full;
        }
        if abc_left {
            let (d, full) = retention::purge_abc(db, tenant, cutoffs.abc, BATCH).await?;
            counted(d);
            total.add(d);
            abc_left = full;
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(total)
}

fn counted(d: Deleted) {
    for (table, n) in d.by_table() {
        crate::metrics::retention_deleted(table, n);
    }
}

/// Runs [`purge_at`] and [`purge_history`] as of `clock`'s now at start and then every
/// [`INTERVAL`] until shutdown.
pub async fn run(
    db: Db,
    days: u32,
    history: Defaults,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match purge_at(&db, clock.now(), days, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, days, "request-log retention"),
            Err(e) => {
                tracing::error!(error = ?anyhow::Error::from(e), "request-log retention failed")
            }
        }
        match purge_history(&db, history, clock.now(), &shutdown).await {
            Ok(d) if d.total() == 0 => {}
            Ok(d) => tracing::info!(
                runs = d.runs,
                stages = d.stages,
                tables = d.tables,
                events = d.events,
                abc_reports = d.reports,
                category_changes = d.category_changes,
                run_history_days = history.run_history_days,
                abc_history_days = history.abc_history_days,
                "history retention"
            ),
            Err(e) => {
                tracing::error!(error = ?anyhow::Error::from(e), "history retention failed")
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
