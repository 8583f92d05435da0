//! Request-log retention: removes rows older than the retention window, hourly, so the
//! big table stays the size the operator chose: whole days of it at once where it is
//! partitioned (PostgreSQL, `storage::log_partitions`), the rest in bounded batches.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::error::Result;
use crate::storage::{log_partitions, request_log, Db};

/// Rows deleted per transaction: small enough never to stall ingestion for long.
pub const BATCH: u64 = 5_000;
/// How often the job wakes.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Removes every request-log row older than `days` days; returns how many went. Stops
/// early (between batches) when `shutdown` turns true.
pub async fn purge(db: &Db, days: u32, shutdown: &watch::Receiver<bool>) -> Result<u64> {
    purge_at(db, Utc::now(), days, shutdown).await
}

/// [`purge`] as of `now`. On PostgreSQL the log is partitioned by day: the coming days'
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
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Runs [`purge`] at start and then every [`INTERVAL`] until shutdown.
pub async fn run(db: Db, days: u32, mut shutdown: watch::Receiver<bool>) {
    loop {
        match purge(&db, days, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, days, "request-log retention"),
            Err(e) => {
                tracing::error!(error = ?anyhow::Error::from(e), "request-log retention failed")
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
