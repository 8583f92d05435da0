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
mod sheets;

use std::io::{self, Write};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::domain::crm::PendingDelete;
use crate::domain::export::{ExportInput, ExportKind, ExportSpec};
use crate::domain::request_log::RequestLogEntry;
use crate::domain::run::{RunSummary, TableCounts};
use crate::domain::tenant::{Tenant, TenantId};
use crate::error::{AppError, FieldViolation, Result};
use crate::storage::{pending_deletes, request_log, runs, tenants, Db};
use crate::throttle::TenantSlots;

/// Largest `data` of one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// The media type of an .xlsx file.
pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// Deflate level of the zip (1 fastest … 9 smallest). Level 1 compresses a request log
/// about twice as fast as the default 6 for a file about 1.6 × larger: the export is CPU
/// work on a machine shared with the sync worker, and the file travels once.
pub const ZIP_COMPRESSION_LEVEL: u8 = 1;

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

/// Sheet and cell limits of the export; the defaults are Excel's, smaller ones let
/// tests reach the overflow paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportLimits {
    /// Data rows a sheet holds under its header before the next sheet starts.
    pub rows_per_sheet: u32,
    /// Characters (UTF-16 units, as Excel counts) a cell holds before it is cut.
    pub max_cell_chars: usize,
}

/// Excel's limits: 1 048 576 rows a sheet (one is the header), 32 767 characters a cell.
impl Default for ExportLimits {
    fn default() -> Self {
        Self {
            rows_per_sheet: 1_048_575,
            max_cell_chars: 32_767,
        }
    }
}

impl ExportLimits {
    /// Checks the limits: a sheet holds 1 to 1 048 575 data rows, a cell 64 to 32 767
    /// characters (room for the cut marker).
    pub fn validate(&self) -> Result<(), String> {
        let excel = Self::default();
        if self.rows_per_sheet == 0 || self.rows_per_sheet > excel.rows_per_sheet {
            return Err(format!(
                "export rows per sheet must be 1 to {}, got {}",
                excel.rows_per_sheet, self.rows_per_sheet
            ));
        }
        if self.max_cell_chars < 64 || self.max_cell_chars > excel.max_cell_chars {
            return Err(format!(
                "export cell limit must be 64 to {} characters, got {}",
                excel.max_cell_chars, self.max_cell_chars
            ));
        }
        Ok(())
    }
}

/// A piece of the file; the first one names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The file name, on the first chunk only.
    pub filename: Option<String>,
    /// The media type, on the first chunk only.
    pub content_type: Option<&'static str>,
    /// At most [`CHUNK_BYTES`] of the file.
    pub data: Vec<u8>,
}

/// A page of rows on its way from the reader to the writer.
enum Page {
    Requests(Vec<RequestLogEntry>),
    Deletes(usize, Vec<PendingDelete>),
    Runs(Vec<(RunSummary, Vec<TableCounts>)>),
}

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

/// Why the writer stopped before the end.
enum Stop {
    /// The caller closed the stream: nobody to tell.
    CallerLeft,
    /// Something failed: the caller gets the error.
    Failed(AppError),
}

impl From<AppError> for Stop {
    fn from(e: AppError) -> Self {
        Self::Failed(e)
    }
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

/// The `Write` the zip is streamed into: cuts it into chunks and hands each to the
/// caller's channel, waiting while the caller is slow (the channel is bounded).
struct ChunkWriter {
    tx: mpsc::Sender<Result<Chunk>>,
    buf: Vec<u8>,
    filename: Option<String>,
    sent: u64,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<Result<Chunk>>, filename: String) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
            filename: Some(filename),
            sent: 0,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.sent += data.len() as u64;
        let filename = self.filename.take();
        let content_type = filename.is_some().then_some(CONTENT_TYPE);
        self.tx
            .blocking_send(Ok(Chunk {
                filename,
                content_type,
                data,
            }))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the caller left"))
    }

    /// Sends what is left; returns the file's size.
    fn finish(mut self) -> io::Result<u64> {
        if !self.buf.is_empty() || self.filename.is_some() {
            self.send()?;
        }
        Ok(self.sent)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK_BYTES - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out full; `finish` sends the last one.
        Ok(())
    }
}
