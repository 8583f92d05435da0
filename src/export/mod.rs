//! The Histórico export (ExportHistory, `erpsync export`): an .xlsx workbook built while
//! the rows are read and streamed to the caller in chunks.
//!
//! Two tasks overlap on the two cores: an async reader takes keyset pages from the
//! database (bodies decompressed there) and passes them through a bounded channel to the
//! writer, which builds the workbook in `spawn_blocking` (rust_xlsxwriter is synchronous
//! CPU work). Data sheets are written in constant-memory mode, so memory stays flat
//! however many rows. rust_xlsxwriter can only assemble the zip once every row is in,
//! and it writes it to any `Write` (a stream, no `Seek`): the zip goes to the caller
//! chunk by chunk as it is compressed, with no copy of the file kept anywhere. A caller
//! that leaves closes the chunk channel; both tasks then stop at their next page and the
//! writer's temporary files are removed with the workbook.

mod book;
mod flow;
mod limits;
mod sheets;

pub use flow::{Chunk, CHUNK_BYTES, CONTENT_TYPE};
pub use limits::ExportLimits;
pub use sheets::ZIP_COMPRESSION_LEVEL;

use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::Instrument;

use self::flow::{ChunkWriter, Page, Stop};
use crate::clock::SharedClock;
use crate::domain::export::{ExportInput, ExportKind, ExportSpec};
use crate::domain::tenant::{Tenant, TenantId};
use crate::error::{AppError, FieldViolation, Result};
use crate::storage::{pending_deletes, request_log, runs, tenants, Db};
use crate::throttle::TenantSlots;

/// Rows of the first page read; later pages are sized to [`PAGE_BYTES`].
const FIRST_PAGE_ROWS: usize = 32;
/// Most rows a page holds.
const MAX_PAGE_ROWS: usize = 2_000;
/// About how many bytes of row data a page holds (bodies may be up to the log's cap).
const PAGE_BYTES: usize = 1 << 20;
/// Pages read ahead of the writer.
const PAGES_AHEAD: usize = 4;
/// Chunks buffered towards the caller.
const CHUNKS_AHEAD: usize = 4;

/// The export service: checks what a caller asks for and builds the workbook while it
/// reads; cheap to clone.
#[derive(Clone, Debug)]
pub struct Exporter {
    db: Db,
    limits: ExportLimits,
    retention_days: u32,
    slots: TenantSlots,
    clock: SharedClock,
}

/// An export under way: its chunks, and the tenant's export slot, held as long as this is.
#[derive(Debug)]
pub struct Export {
    /// The file, in chunks of at most [`CHUNK_BYTES`], the first carrying its name; an
    /// error ends the stream as its last item. Dropping the receiver stops the export.
    pub chunks: mpsc::Receiver<Result<Chunk>>,
    /// The tenant's slot: freed when the export ends or its caller leaves.
    pub slot: tokio::sync::OwnedSemaphorePermit,
}

impl Exporter {
    /// Exports from `db` under `limits`, of the last `retention_days` days, at most as
    /// many at once per tenant as `slots` allows, "today" by `clock`.
    pub fn new(
        db: Db,
        limits: ExportLimits,
        retention_days: u32,
        slots: TenantSlots,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            limits,
            retention_days,
            slots,
            clock,
        }
    }

    /// Starts the export `kind` (None: a kind the caller named that does not exist) of
    /// the days `from_date` to `to_date` and `tables` (all when empty) for `tenant`:
    /// NOT_FOUND for an unknown tenant, a tenant's cap of open exports, then every bad
    /// field named.
    pub async fn export(
        &self,
        tenant: &TenantId,
        kind: Option<ExportKind>,
        (from_date, to_date): (&str, &str),
        tables: &[String],
    ) -> Result<Export> {
        let tenant = tenants::require(&self.db, tenant).await?;
        let slot = self.slots.take(&tenant.id)?;
        let now = self.clock.now();
        let today = now.with_timezone(&tenant.timezone).date_naive();
        let parsed = ExportSpec::parse(
            ExportInput {
                from_date,
                to_date,
                tables,
                kind: kind.unwrap_or(ExportKind::Requests),
            },
            today,
            self.retention_days,
        );
        let spec = match (parsed, kind) {
            (Ok(spec), Some(_)) => spec,
            (parsed, kind) => {
                let mut violations = parsed.err().unwrap_or_default();
                if kind.is_none() {
                    violations.insert(
                        0,
                        FieldViolation::new(
                            "kind",
                            "unknown value: REQUESTS, EXCESSIVE_DELETES or RUNS",
                        ),
                    );
                }
                return Err(AppError::InvalidFields(violations));
            }
        };
        tracing::info!(tenant = %tenant.id, kind = spec.kind.slug(), from = %spec.from, to = %spec.to, "export started");
        Ok(Export {
            chunks: start(self.db.clone(), self.limits, tenant, spec, now),
            slot,
        })
    }
}

/// Starts exporting `spec` of `tenant`, generated at `now`; the file arrives on the
/// receiver in chunks of at most [`CHUNK_BYTES`], the first carrying the file name. An
/// error ends the stream as its last item. Dropping the receiver stops the export.
fn start(
    db: Db,
    limits: ExportLimits,
    tenant: Tenant,
    spec: ExportSpec,
    now: DateTime<Utc>,
) -> mpsc::Receiver<Result<Chunk>> {
    let (out_tx, out_rx) = mpsc::channel(CHUNKS_AHEAD);
    let (page_tx, page_rx) = mpsc::channel(PAGES_AHEAD);
    let span = tracing::info_span!("export", tenant = %tenant.id, kind = spec.kind.slug(), from = %spec.from, to = %spec.to);
    let bounds = spec.bounds(tenant.timezone);
    tokio::spawn({
        let (tenant, spec) = (tenant.clone(), spec.clone());
        async move { read(&db, &tenant, &spec, bounds, &page_tx).await }.instrument(span.clone())
    });
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let started = Instant::now();
        let filename = spec.filename(&tenant.id);
        let mut out = ChunkWriter::new(out_tx.clone(), filename.clone());
        match sheets::build(&tenant, &spec, now, limits, page_rx, &out_tx, &mut out) {
            Ok(rows) => match out.finish() {
                Ok(bytes) => tracing::info!(
                    rows,
                    bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    file = %filename,
                    "export written"
                ),
                Err(_) => tracing::info!("export stopped: the caller left"),
            },
            Err(Stop::CallerLeft) => tracing::info!("export stopped: the caller left"),
            Err(Stop::Failed(e)) => {
                let _ = out_tx.blocking_send(Err(e));
            }
        }
    });
    out_rx
}

/// Reads the pages of `spec` in order and sends them to the writer; stops when the
/// writer is gone. A read error is sent as the last item.
async fn read(
    db: &Db,
    tenant: &Tenant,
    spec: &ExportSpec,
    bounds: (DateTime<Utc>, DateTime<Utc>),
    pages: &mpsc::Sender<Result<Page>>,
) {
    if let Err(e) = read_pages(db, tenant, spec, bounds, pages).await {
        let _ = pages.send(Err(e)).await;
    }
}

async fn read_pages(
    db: &Db,
    tenant: &Tenant,
    spec: &ExportSpec,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    pages: &mpsc::Sender<Result<Page>>,
) -> Result<()> {
    let ids: Vec<&str> = spec.tables.iter().map(|t| t.id).collect();
    // No filter when every table is exported: requests of no table come too.
    let filter = (!spec.all_tables).then_some(ids.as_slice());
    match spec.kind {
        ExportKind::Requests => {
            let mut reader = request_log::PageReader::new(db).await?;
            let mut after = None;
            let mut limit = FIRST_PAGE_ROWS;
            loop {
                let page = reader
                    .page(&tenant.id, from, to, filter, after.as_ref(), limit)
                    .await?;
                let full = page.len() == limit;
                let Some(last) = page.last() else {
                    return Ok(());
                };
                after = Some((last.received_at, last.id.clone()));
                let bytes: usize = page
                    .iter()
                    .map(|e| 200 + e.request_body.len() + e.response_body.len())
                    .sum();
                limit =
                    (PAGE_BYTES * page.len() / bytes.max(1)).clamp(FIRST_PAGE_ROWS, MAX_PAGE_ROWS);
                if pages.send(Ok(Page::Requests(page))).await.is_err() || !full {
                    return Ok(());
                }
            }
        }
        ExportKind::ExcessiveDeletes => {
            for (group, t) in spec.tables.iter().enumerate() {
                let mut after = String::new();
                loop {
                    let page = pending_deletes::export_page(
                        db,
                        &tenant.id,
                        t.table,
                        (from, to),
                        &after,
                        2_000,
                    )
                    .await?;
                    let full = page.len() == 2_000;
                    let Some(last) = page.last() else { break };
                    after = last.external_id.clone();
                    if pages.send(Ok(Page::Deletes(group, page))).await.is_err() {
                        return Ok(());
                    }
                    if !full {
                        break;
                    }
                }
            }
            Ok(())
        }
        ExportKind::Runs => {
            let mut after = None;
            loop {
                let page =
                    runs::export_page(db, &tenant.id, (from, to), filter, after.as_ref(), 500)
                        .await?;
                let full = page.len() == 500;
                let Some((last, _)) = page.last() else {
                    return Ok(());
                };
                after = Some((last.started_at, last.id.clone()));
                if pages.send(Ok(Page::Runs(page))).await.is_err() || !full {
                    return Ok(());
                }
            }
        }
    }
}
