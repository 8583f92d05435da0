//! SQLite WAL checkpoints off the request path: every few hundred milliseconds the
//! write-ahead log is copied into the database file in the background, so no push waits
//! for a checkpoint and the WAL stays small. Nothing to do on PostgreSQL.

use std::time::Duration;

use sea_orm::DbBackend;
use tokio::sync::watch;

use crate::storage::Db;

/// How often the WAL is checkpointed.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Checkpoints until shutdown, then once more.
pub async fn run(db: Db, mut shutdown: watch::Receiver<bool>) {
    if db.backend() != DbBackend::Sqlite {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(INTERVAL) => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = db.checkpoint().await {
            tracing::warn!(error = ?anyhow::Error::from(e), "WAL checkpoint failed");
        }
    }
    if let Err(e) = db.checkpoint().await {
        tracing::warn!(error = ?anyhow::Error::from(e), "final WAL checkpoint failed");
    }
}
