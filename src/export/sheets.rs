//! What each kind of export puts on its sheets: the columns, one row per request,
//! held deletion or run, and the summary's filter lines.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_xlsxwriter::XlsxError;
use tokio::sync::mpsc;

use super::book::{Book, Column, SummaryInfo, Tally};
use super::flow::{Chunk, ChunkWriter, Page, Stop};
use super::limits::ExportLimits;
use crate::domain::export::{excel_serial, ExportKind, ExportSpec, Placement};
use crate::domain::tables::Table;
use crate::domain::tenant::Tenant;
use crate::error::{AppError, Result};

/// Deflate level of the zip (1 fastest … 9 smallest). Level 1 compresses a request log
/// about twice as fast as the default 6 for a file about 1.6 × larger: the export is CPU
/// work on a machine shared with the sync worker, and the file travels once.
pub const ZIP_COMPRESSION_LEVEL: u8 = 1;

/// Sheet of the requests of no (known) table.
const OTHER: &str = "other";

const fn c(title: &'static str, width: f64) -> Column {
    Column { title, width }
}

/// Columns of a request sheet.
pub(crate) const REQUEST_COLUMNS: &[Column] = &[
    c("received_at", 20.0),
    c("endpoint", 26.0),
    c("transport", 10.0),
    c("status", 20.0),
    c("duration_ms", 12.0),
    c("accepted", 10.0),
    c("rejected", 10.0),
    c("error", 40.0),
    c("request_body", 80.0),
    c("response_body", 60.0),
    c("request_id", 38.0),
    c("warnings", 10.0),
];

/// Columns of a held-deletions sheet.
const DELETE_COLUMNS: &[Column] = &[
    c("external_id", 20.0),
    c("name", 40.0),
    c("document", 22.0),
    c("detected_run_id", 38.0),
    c("detected_at", 20.0),
    c("state", 12.0),
    c("state_changed_at", 20.0),
];

/// Columns of the run sheet.
const RUN_COLUMNS: &[Column] = &[
    c("run_id", 38.0),
    c("started_at", 20.0),
    c("finished_at", 20.0),
    c("duration_s", 12.0),
    c("status", 12.0),
    c("trigger", 10.0),
    c("received", 10.0),
    c("inserted", 10.0),
    c("updated", 10.0),
    c("deleted", 10.0),
    c("held", 10.0),
    c("rejected", 10.0),
    c("error", 60.0),
];

/// Columns of the per-table counts of runs.
const RUN_TABLE_COLUMNS: &[Column] = &[
    c("run_id", 38.0),
    c("started_at", 20.0),
    c("status", 12.0),
    c("table", 16.0),
    c("received", 10.0),
    c("inserted", 10.0),
    c("updated", 10.0),
    c("deleted", 10.0),
    c("held", 10.0),
    c("rejected", 10.0),
    c("erp_count", 12.0),
    c("staged_count", 12.0),
    c("crm_count", 12.0),
];

/// Builds the workbook of `spec` from the pages as they come and writes it to `out`;
/// returns the data rows written. Stops when the caller leaves (`chunks` closed). The
/// summary says it was generated at `now`.
pub(super) fn build(
    tenant: &Tenant,
    spec: &ExportSpec,
    now: DateTime<Utc>,
    limits: ExportLimits,
    mut pages: mpsc::Receiver<Result<Page>>,
    chunks: &mpsc::Sender<Result<Chunk>>,
    out: &mut ChunkWriter,
) -> Result<u64, Stop> {
    let xlsx = |e: XlsxError| match e {
        XlsxError::IoError(_) if chunks.is_closed() => Stop::CallerLeft,
        e => Stop::Failed(AppError::Internal(
            anyhow::Error::new(e).context("building the workbook"),
        )),
    };
    let tz = tenant.timezone;
    let days = spec.days();
    let mut book = Book::new(limits, ZIP_COMPRESSION_LEVEL).map_err(xlsx)?;
    let mut sheets = Sheets::new(&mut book, spec).map_err(xlsx)?;
    while let Some(page) = pages.blocking_recv() {
        if chunks.is_closed() {
            return Err(Stop::CallerLeft);
        }
        match page? {
            Page::Requests(entries) => {
                for e in entries {
                    let group = match spec.place(e.table.as_deref()) {
                        Placement::Table(i) => i,
                        Placement::Other => sheets.labels - 1,
                        Placement::Skip => continue,
                    };
                    let local = e.received_at.with_timezone(&tz).naive_local();
                    sheets.tally.add(
                        group,
                        &e.status,
                        day_index(spec.from, local.date(), days.len()),
                    );
                    let mut row = book.row(group).map_err(xlsx)?;
                    row.datetime(0, excel_serial(local)).map_err(xlsx)?;
                    row.text(1, e.endpoint).map_err(xlsx)?;
                    row.text(2, e.transport.as_str().to_owned()).map_err(xlsx)?;
                    row.text(3, e.status).map_err(xlsx)?;
                    row.number(4, e.duration_ms as f64).map_err(xlsx)?;
                    row.number(5, f64::from(e.accepted)).map_err(xlsx)?;
                    row.number(6, f64::from(e.rejected)).map_err(xlsx)?;
                    row.text(7, e.error.unwrap_or_default()).map_err(xlsx)?;
                    row.text(8, e.request_body).map_err(xlsx)?;
                    row.text(9, e.response_body).map_err(xlsx)?;
                    row.text(10, e.id).map_err(xlsx)?;
                    row.number(11, f64::from(e.warnings)).map_err(xlsx)?;
                }
            }
            Page::Deletes(group, deletes) => {
                for d in deletes {
                    let local = d.detected_at.with_timezone(&tz).naive_local();
                    sheets.tally.add(
                        group,
                        d.state.as_str(),
                        day_index(spec.from, local.date(), days.len()),
                    );
                    let mut row = book.row(group).map_err(xlsx)?;
                    row.text(0, d.external_id).map_err(xlsx)?;
                    row.text(1, d.name).map_err(xlsx)?;
                    row.text(2, d.document).map_err(xlsx)?;
                    row.text(3, d.detected_run_id).map_err(xlsx)?;
                    row.datetime(4, excel_serial(local)).map_err(xlsx)?;
                    row.text(5, d.state.as_str().to_owned()).map_err(xlsx)?;
                    let changed = d.state_changed_at.with_timezone(&tz).naive_local();
                    row.datetime(6, excel_serial(changed)).map_err(xlsx)?;
                }
            }
            Page::Runs(runs) => {
                for (run, tables) in runs {
                    write_run(&mut book, &mut sheets.tally, spec, tz, &days, run, tables)
                        .map_err(xlsx)?;
                }
            }
        }
    }
    let rows = book.rows();
    let summary = SummaryInfo {
        filter: filter_lines(tenant, spec, tz, now),
        chart_title: match spec.kind {
            ExportKind::Requests => "Requests per day by status",
            ExportKind::ExcessiveDeletes => "Held deletions per day by state",
            ExportKind::Runs => "Runs per day by status",
        },
        status_label: match spec.kind {
            ExportKind::ExcessiveDeletes => "state",
            _ => "status",
        },
        days,
        tally: sheets.tally,
    };
    book.finish(summary, out).map_err(xlsx)?;
    Ok(rows)
}

/// The groups of sheets of an export and the tally of their rows.
struct Sheets {
    /// How many labels the tally has (the last one is "other" for requests of all tables).
    labels: usize,
    tally: Tally,
}

impl Sheets {
    fn new(book: &mut Book, spec: &ExportSpec) -> Result<Self, XlsxError> {
        let mut labels: Vec<&'static str> = Vec::new();
        match spec.kind {
            ExportKind::Requests => {
                for t in &spec.tables {
                    book.add_group(t.id, REQUEST_COLUMNS)?;
                    labels.push(t.id);
                }
                if spec.all_tables {
                    book.add_group(OTHER, REQUEST_COLUMNS)?;
                    labels.push(OTHER);
                }
            }
            ExportKind::ExcessiveDeletes => {
                for t in &spec.tables {
                    book.add_group(t.id, DELETE_COLUMNS)?;
                    labels.push(t.id);
                }
            }
            ExportKind::Runs => {
                book.add_group("runs", RUN_COLUMNS)?;
                book.add_group("run tables", RUN_TABLE_COLUMNS)?;
                labels.push("runs");
                // The per-table lines of the summary follow: one per selected table.
                labels.extend(spec.tables.iter().map(|t| t.id));
            }
        }
        Ok(Self {
            labels: labels.len(),
            tally: Tally::new(labels.iter().map(|l| (*l).to_owned()), spec.days().len()),
        })
    }
}

/// One run on the runs sheet (its counts summed over the selected tables) and one row
/// per table on the run tables sheet.
fn write_run(
    book: &mut Book,
    tally: &mut Tally,
    spec: &ExportSpec,
    tz: Tz,
    days: &[NaiveDate],
    run: crate::domain::run::RunSummary,
    tables: Vec<crate::domain::run::TableCounts>,
) -> Result<(), XlsxError> {
    let started = run.started_at.with_timezone(&tz).naive_local();
    let status = run.status.as_str();
    tally.add(0, status, day_index(spec.from, started.date(), days.len()));
    let sum =
        |f: fn(&crate::domain::run::TableCounts) -> u64| tables.iter().map(f).sum::<u64>() as f64;
    {
        let mut row = book.row(0)?;
        row.text(0, run.id.clone())?;
        row.datetime(1, excel_serial(started))?;
        if let Some(finished) = run.finished_at {
            row.datetime(2, excel_serial(finished.with_timezone(&tz).naive_local()))?;
        }
        if let Some(d) = run.duration() {
            row.number(3, d.num_milliseconds() as f64 / 1000.0)?;
        }
        row.text(4, status.to_owned())?;
        row.text(5, run.trigger.as_str().to_owned())?;
        row.number(6, sum(|t| t.received))?;
        row.number(7, sum(|t| t.inserted))?;
        row.number(8, sum(|t| t.updated))?;
        row.number(9, sum(|t| t.deleted))?;
        row.number(10, sum(|t| t.held))?;
        row.number(11, sum(|t| t.rejected))?;
        row.text(12, run.error.clone().unwrap_or_default())?;
    }
    for t in tables {
        let table = Table::parse(&t.table);
        if let Some(i) = spec.tables.iter().position(|d| Some(d.table) == table) {
            tally.add(1 + i, status, None);
        }
        let mut row = book.row(1)?;
        row.text(0, run.id.clone())?;
        row.datetime(1, excel_serial(started))?;
        row.text(2, status.to_owned())?;
        row.text(3, t.table)?;
        row.number(4, t.received as f64)?;
        row.number(5, t.inserted as f64)?;
        row.number(6, t.updated as f64)?;
        row.number(7, t.deleted as f64)?;
        row.number(8, t.held as f64)?;
        row.number(9, t.rejected as f64)?;
        if let Some(n) = t.erp_count {
            row.number(10, n as f64)?;
        }
        row.number(11, t.staged_count as f64)?;
        if let Some(n) = t.crm_count {
            row.number(12, n as f64)?;
        }
    }
    Ok(())
}

/// The index of local day `day` in the range starting at `from`; None outside it.
fn day_index(from: NaiveDate, day: NaiveDate, days: usize) -> Option<usize> {
    usize::try_from(day.signed_duration_since(from).num_days())
        .ok()
        .filter(|i| *i < days)
}

fn filter_lines(
    tenant: &Tenant,
    spec: &ExportSpec,
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let tables = if spec.all_tables {
        "all".to_owned()
    } else {
        spec.tables
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        ("tenant", format!("{} ({})", tenant.id, tenant.name)),
        ("export", spec.kind.slug().to_owned()),
        ("from", spec.from.to_string()),
        ("to", spec.to.to_string()),
        ("time zone", tz.name().to_owned()),
        ("tables", tables),
        (
            "generated at",
            now.with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
        ),
    ]
}
