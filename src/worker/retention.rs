//! Request-log retention: deletes rows older than the retention window in bounded
//! batches, hourly, so the big table stays the size the operator chose.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::error::Result;
use crate::storage::{request_log, Db};

/// Rows deleted per transaction: small enough never to stall ingestion for long.
pub const BATCH: u64 = 5_000;
/// How often the job wakes.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes every request-log row older than `days` days, batch by batch; returns how
/// many went. Stops early (between batches) when `shutdown` turns true.
pub async fn purge(db: &Db, days: u32, shutdown: &watch::Receiver<bool>) -> Result<u64> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let mut total = 0;
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
