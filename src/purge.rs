//! Removing a tenant with every row of it, and exporting its data (Admin.DeleteTenant
//! and ExportTenant, `erpsync tenant delete|export`): the service over
//! [`crate::storage::purge`], which holds the one list of a tenant's tables.
//!
//! Both are logged by tenant and row count only, never with the data.

use serde_json::Value;
use tokio::sync::mpsc;

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::{purge, tenants, Db};

/// Rows read from the database at a time by an export.
const EXPORT_PAGE_ROWS: u64 = 500;
/// An export chunk is sent once it holds this many bytes (whole lines: one row's line
/// can make it larger).
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks an export reads ahead of its reader.
const EXPORT_CHUNKS_AHEAD: usize = 2;

/// Removal and export of tenants; cheap to clone.
#[derive(Clone, Debug)]
pub struct Purge {
    db: Db,
}

/// What a removal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// False when there was no such tenant (nothing to do).
    pub deleted: bool,
    /// Rows removed, every table together.
    pub rows: u64,
}

impl Purge {
    /// Removal and export over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Removes the tenant and every row of it in every table, in one transaction; its
    /// tokens stop working at once. An unknown tenant is no error (`deleted` false).
    /// FAILED_PRECONDITION while a run of the tenant is RUNNING, unless `force`: the run
    /// then loses its lease and stops at its next checkpoint, and what it still writes
    /// fails (the tenant is gone).
    pub async fn delete(&self, id: &TenantId, force: bool) -> Result<Deleted> {
        let Some(removed) = purge::delete(&self.db, id, force).await? else {
            tracing::info!(tenant = %id, "tenant delete: no such tenant, nothing removed");
            return Ok(Deleted {
                deleted: false,
                rows: 0,
            });
        };
        if let Some(run) = &removed.cut_short {
            tracing::warn!(tenant = %id, run = %run, "tenant deleted while a run was RUNNING (force): the run is cut short");
        }
        tracing::info!(tenant = %id, rows = removed.rows, "tenant deleted with every row of it");
        Ok(Deleted {
            deleted: true,
            rows: removed.rows,
        })
    }

    /// The tenant's data as newline-delimited JSON, `{"table": …, "row": {…}}` per row,
    /// the tenant's settings first, in chunks of whole lines read a page at a time
    /// (never the whole tenant in memory). NOT_FOUND for an unknown tenant. A failure
    /// midway ends the stream with it.
    pub async fn export(&self, id: &TenantId) -> Result<mpsc::Receiver<Result<Vec<u8>>>> {
        tenants::require(&self.db, id).await?;
        let (tx, rx) = mpsc::channel(EXPORT_CHUNKS_AHEAD);
        let (db, id) = (self.db.clone(), id.clone());
        tokio::spawn(async move {
            match write_export(&db, &id, &tx).await {
                Ok(Some(rows)) => tracing::info!(tenant = %id, rows, "tenant exported"),
                Ok(None) => tracing::info!(tenant = %id, "tenant export left by its reader"),
                Err(e) => {
                    tracing::warn!(tenant = %id, error = %e, "tenant export failed");
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Ok(rx)
    }
}

/// Sends every line of the tenant's export through `tx`; the rows sent, or None when
/// the reader went away.
async fn write_export(
    db: &Db,
    id: &TenantId,
    tx: &mpsc::Sender<Result<Vec<u8>>>,
) -> Result<Option<u64>> {
    let mut chunk = Vec::with_capacity(EXPORT_CHUNK_BYTES * 2);
    let mut rows = 0u64;
    for part in purge::export_order() {
        let mut after: Option<Vec<Value>> = None;
        loop {
            let page = purge::export_page(db, id, part, after.as_deref(), EXPORT_PAGE_ROWS).await?;
            for line in &page.lines {
                serde_json::to_writer(&mut chunk, line).map_err(anyhow::Error::from)?;
                chunk.push(b'\n');
                rows += 1;
                if chunk.len() >= EXPORT_CHUNK_BYTES
                    && tx.send(Ok(std::mem::take(&mut chunk))).await.is_err()
                {
                    return Ok(None);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
        return Ok(None);
    }
    Ok(Some(rows))
}
