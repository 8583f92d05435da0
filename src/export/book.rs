//! The workbook as the exporter sees it: a summary sheet first, then groups of data
//! sheets (one group per table) written in constant-memory mode, a group continuing on
//! a next sheet when one is full, cells cut to Excel's limit with a marker, and the
//! figures the summary shows counted from the rows actually written.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_xlsxwriter::{Chart, ChartType, ColNum, Format, RowNum, Workbook, Worksheet, XlsxError};

use super::limits::ExportLimits;

/// One column of a data sheet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    /// Header text.
    pub title: &'static str,
    /// Width in Excel character units.
    pub width: f64,
}

/// A sheet of the workbook and its continuations ("invoice", "invoice (2)", …).
struct Group {
    name: &'static str,
    columns: &'static [Column],
    /// Index of the sheet being written in the workbook.
    sheet: usize,
    /// Data rows on that sheet.
    rows: RowNum,
    /// How many sheets the group has.
    parts: u32,
    /// Data rows over every part, for the summary.
    total: u64,
}

/// The formats every sheet shares.
struct Formats {
    header: Format,
    datetime: Format,
    title: Format,
}

/// The workbook being built. Its methods are blocking work: call them from
/// `spawn_blocking`.
pub(crate) struct Book {
    wb: Workbook,
    formats: Formats,
    limits: ExportLimits,
    groups: Vec<Group>,
    cells_cut: u64,
}

/// What the summary sheet reports besides the counts.
pub(crate) struct SummaryInfo {
    /// (label, value) lines of the filter used, in order.
    pub filter: Vec<(&'static str, String)>,
    /// The days of the range, for the per-day table and chart.
    pub days: Vec<NaiveDate>,
    /// Title of the per-day chart ("Requests per day by status").
    pub chart_title: &'static str,
    /// What the statuses are called in the tables ("status", "state").
    pub status_label: &'static str,
    /// The per-(label, status) totals and per-day counts.
    pub tally: Tally,
}

/// Rows counted per (label, status) and per (day, status).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    labels: Vec<(String, BTreeMap<String, u64>)>,
    per_day: Vec<BTreeMap<String, u64>>,
}

impl Tally {
    /// A tally over `labels` (in the order the summary lists them) and `days` days.
    pub fn new(labels: impl IntoIterator<Item = String>, days: usize) -> Self {
        Self {
            labels: labels.into_iter().map(|l| (l, BTreeMap::new())).collect(),
            per_day: vec![BTreeMap::new(); days],
        }
    }

    /// Counts a row of label `label` (an index into the labels) with `status`, on day
    /// `day` (an index into the days; None for rows the chart leaves out).
    pub fn add(&mut self, label: usize, status: &str, day: Option<usize>) {
        if let Some((_, m)) = self.labels.get_mut(label) {
            bump(m, status);
        }
        if let Some(m) = day.and_then(|d| self.per_day.get_mut(d)) {
            bump(m, status);
        }
    }

    fn statuses(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .labels
            .iter()
            .flat_map(|(_, m)| m.keys())
            .chain(self.per_day.iter().flat_map(BTreeMap::keys))
            .map(String::as_str)
            .collect();
        all.sort_unstable();
        all.dedup();
        // The success statuses first: what a reader looks for before the failures.
        all.sort_by_key(|s| !matches!(*s, "OK" | "SUCCESS" | "HELD"));
        all
    }
}

fn bump(m: &mut BTreeMap<String, u64>, status: &str) {
    match m.get_mut(status) {
        Some(n) => *n += 1,
        None => {
            m.insert(status.to_owned(), 1);
        }
    }
}

/// Writes the cells of one row of a data sheet.
pub(crate) struct RowWriter<'a> {
    ws: &'a mut Worksheet,
    row: RowNum,
    formats: &'a Formats,
    max_chars: usize,
    cells_cut: &'a mut u64,
}

impl RowWriter<'_> {
    /// A text cell, cut to the cell limit with a marker; empty text leaves it blank.
    pub fn text(&mut self, col: ColNum, s: String) -> Result<(), XlsxError> {
        if s.is_empty() {
            return Ok(());
        }
        let (s, cut) = cut_cell(s, self.max_chars);
        *self.cells_cut += u64::from(cut);
        self.ws.write_string(self.row, col, s)?;
        Ok(())
    }

    /// A number cell.
    pub fn number(&mut self, col: ColNum, v: f64) -> Result<(), XlsxError> {
        self.ws.write_number(self.row, col, v)?;
        Ok(())
    }

    /// A date-time cell holding an Excel serial (see `domain::export::excel_serial`).
    pub fn datetime(&mut self, col: ColNum, serial: f64) -> Result<(), XlsxError> {
        self.ws
            .write_number_with_format(self.row, col, serial, &self.formats.datetime)?;
        Ok(())
    }
}

impl Book {
    /// A workbook with its (still empty) summary sheet first.
    pub fn new(limits: ExportLimits, zip_level: u8) -> Result<Self, XlsxError> {
        let mut wb = Workbook::new();
        wb.set_zip_compression_level(zip_level);
        wb.add_worksheet().set_name("summary")?;
        Ok(Self {
            wb,
            formats: Formats {
                header: Format::new().set_bold(),
                datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
                title: Format::new().set_bold().set_font_size(14),
            },
            limits,
            groups: Vec::new(),
            cells_cut: 0,
        })
    }

    /// Adds a group of data sheets named `name` (a valid sheet name of at most 26
    /// characters, so that " (NN)" still fits Excel's 31); returns its index.
    pub fn add_group(
        &mut self,
        name: &'static str,
        columns: &'static [Column],
    ) -> Result<usize, XlsxError> {
        let sheet = self.add_sheet(name, columns)?;
        self.groups.push(Group {
            name,
            columns,
            sheet,
            rows: 0,
            parts: 1,
            total: 0,
        });
        Ok(self.groups.len() - 1)
    }

    /// A constant-memory sheet with a bold, frozen header row and its column widths.
    fn add_sheet(&mut self, name: &str, columns: &[Column]) -> Result<usize, XlsxError> {
        let header = &self.formats.header;
        let ws = self.wb.add_worksheet_with_constant_memory()?;
        ws.set_name(name)?;
        for (col, c) in (0..).zip(columns) {
            ws.set_column_width(col, c.width)?;
            ws.write_string_with_format(0, col, c.title, header)?;
        }
        ws.set_freeze_panes(1, 0)?;
        Ok(self.wb.worksheets().len() - 1)
    }

    /// The next row of group `group`, on a new sheet when the current one is full.
    pub fn row(&mut self, group: usize) -> Result<RowWriter<'_>, XlsxError> {
        let Some(g) = self.groups.get(group) else {
            return Err(XlsxError::ParameterError(format!("no sheet group {group}")));
        };
        if g.rows >= self.limits.rows_per_sheet {
            let (name, columns, parts, sheet, rows) = (g.name, g.columns, g.parts, g.sheet, g.rows);
            close_part(self.wb.worksheet_from_index(sheet)?, rows, columns)?;
            let next = self.add_sheet(&format!("{name} ({})", parts + 1), columns)?;
            if let Some(g) = self.groups.get_mut(group) {
                g.sheet = next;
                g.rows = 0;
                g.parts += 1;
            }
        }
        let Some(g) = self.groups.get_mut(group) else {
            return Err(XlsxError::ParameterError(format!("no sheet group {group}")));
        };
        g.rows += 1;
        g.total += 1;
        let row = g.rows;
        let sheet = g.sheet;
        Ok(RowWriter {
            ws: self.wb.worksheet_from_index(sheet)?,
            row,
            formats: &self.formats,
            max_chars: self.limits.max_cell_chars,
            cells_cut: &mut self.cells_cut,
        })
    }

    /// Data rows written over every group.
    pub fn rows(&self) -> u64 {
        self.groups.iter().map(|g| g.total).sum()
    }

    /// Fills the summary sheet, closes the data sheets (autofilters) and writes the
    /// .xlsx to `out` (streamed: the zip goes out as it is compressed).
    pub fn finish(
        mut self,
        summary: SummaryInfo,
        out: impl std::io::Write + Send,
    ) -> Result<(), XlsxError> {
        for g in &self.groups {
            let ws = self.wb.worksheet_from_index(g.sheet)?;
            close_part(ws, g.rows, g.columns)?;
        }
        let sheets = self.wb.worksheets().len() - 1;
        let rows = self.rows();
        let cells_cut = self.cells_cut;
        let max_chars = self.limits.max_cell_chars;
        let ws = self.wb.worksheet_from_index(0)?;
        write_summary(
            ws,
            &self.formats,
            summary,
            rows,
            sheets,
            cells_cut,
            max_chars,
        )?;
        self.wb.save_to_writer(out)
    }
}

/// Autofilter over a full (or the last) sheet of a group: its rows are known now.
fn close_part(ws: &mut Worksheet, rows: RowNum, columns: &[Column]) -> Result<(), XlsxError> {
    let last_col = ColNum::try_from(columns.len().saturating_sub(1)).unwrap_or(0);
    ws.autofilter(0, 0, rows, last_col)?;
    Ok(())
}

fn write_summary(
    ws: &mut Worksheet,
    f: &Formats,
    s: SummaryInfo,
    rows: u64,
    sheets: usize,
    cells_cut: u64,
    max_chars: usize,
) -> Result<(), XlsxError> {
    ws.set_column_width(0, 30)?;
    ws.write_string_with_format(0, 0, "erpsync — Histórico export", &f.title)?;
    let mut r: RowNum = 2;
    for (label, value) in &s.filter {
        ws.write_string_with_format(r, 0, *label, &f.header)?;
        ws.write_string(r, 1, value.as_str())?;
        r += 1;
    }
    ws.write_string_with_format(r, 0, "rows exported", &f.header)?;
    ws.write_number(r, 1, rows as f64)?;
    r += 1;
    ws.write_string_with_format(r, 0, "data sheets", &f.header)?;
    ws.write_number(r, 1, sheets as f64)?;
    r += 1;
    ws.write_string_with_format(
        r,
        0,
        format!("cells cut at {max_chars} characters"),
        &f.header,
    )?;
    ws.write_number(r, 1, cells_cut as f64)?;
    r += 2;

    let statuses = s.tally.statuses();
    let last_col = ColNum::try_from(statuses.len() + 1).unwrap_or(ColNum::MAX);
    for col in 1..=last_col {
        ws.set_column_width(col, 18)?;
    }
    ws.write_string_with_format(
        r,
        0,
        format!("Totals per table and {}", s.status_label),
        &f.title,
    )?;
    r += 1;
    ws.write_string_with_format(r, 0, "table", &f.header)?;
    for (col, st) in (1..).zip(&statuses) {
        ws.write_string_with_format(r, col, *st, &f.header)?;
    }
    ws.write_string_with_format(r, last_col, "total", &f.header)?;
    r += 1;
    let mut column_totals = vec![0u64; statuses.len()];
    for (label, counts) in &s.tally.labels {
        ws.write_string(r, 0, label.as_str())?;
        let mut total = 0;
        for (i, st) in statuses.iter().enumerate() {
            let n = counts.get(*st).copied().unwrap_or(0);
            ws.write_number(r, col(i + 1), n as f64)?;
            total += n;
            if let Some(t) = column_totals.get_mut(i) {
                *t += n;
            }
        }
        ws.write_number(r, last_col, total as f64)?;
        r += 1;
    }
    ws.write_string_with_format(r, 0, "total", &f.header)?;
    for (i, n) in column_totals.iter().enumerate() {
        ws.write_number_with_format(r, col(i + 1), *n as f64, &f.header)?;
    }
    ws.write_number_with_format(
        r,
        last_col,
        column_totals.iter().sum::<u64>() as f64,
        &f.header,
    )?;
    r += 2;

    ws.write_string_with_format(r, 0, s.chart_title, &f.title)?;
    r += 1;
    let header_row = r;
    ws.write_string_with_format(r, 0, "day", &f.header)?;
    for (c, st) in (1..).zip(&statuses) {
        ws.write_string_with_format(r, c, *st, &f.header)?;
    }
    r += 1;
    let first_day_row = r;
    for (day, counts) in s.days.iter().zip(&s.tally.per_day) {
        ws.write_string(r, 0, day.format("%Y-%m-%d").to_string())?;
        for (i, st) in statuses.iter().enumerate() {
            let n = counts.get(*st).copied().unwrap_or(0);
            ws.write_number(r, col(i + 1), n as f64)?;
        }
        r += 1;
    }
    let last_day_row = r.saturating_sub(1);
    // A chart needs at least one series: an export with no rows has none.
    if !statuses.is_empty() && !s.days.is_empty() {
        let name = ws.name();
        let mut chart = Chart::new(ChartType::Column);
        chart.title().set_name(s.chart_title);
        chart.x_axis().set_name("day");
        chart.y_axis().set_name("rows");
        for i in 0..statuses.len() {
            let c = col(i + 1);
            chart
                .add_series()
                .set_name((name.as_str(), header_row, c))
                .set_categories((name.as_str(), first_day_row, 0, last_day_row, 0))
                .set_values((name.as_str(), first_day_row, c, last_day_row, c));
        }
        chart.set_width(720).set_height(360);
        ws.insert_chart(2, last_col + 2, &chart)?;
    }
    Ok(())
}

fn col(i: usize) -> ColNum {
    ColNum::try_from(i).unwrap_or(ColNum::MAX)
}

/// `s` cut to at most `max` characters as Excel counts them (UTF-16 code units), the
/// cut marked with how long the text was; returns whether it was cut.
pub(crate) fn cut_cell(mut s: String, max: usize) -> (String, bool) {
    // A UTF-8 string never has more UTF-16 units than bytes.
    if s.len() <= max {
        return (s, false);
    }
    let units = s.encode_utf16().count();
    if units <= max {
        return (s, false);
    }
    let marker = format!("…[cut: {units} characters in all]");
    let keep = max.saturating_sub(marker.encode_utf16().count());
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if used + c.len_utf16() > keep {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    s.truncate(end);
    s.push_str(&marker);
    (s, true)
}

#[cfg(test)]
mod tests {
    use super::cut_cell;

    #[test]
    fn cells_past_the_limit_are_cut_to_it_with_a_marker() {
        assert_eq!(cut_cell("abc".into(), 3), ("abc".to_owned(), false));
        let long = "ação ".repeat(40);
        let (cut, was) = cut_cell(long.clone(), 64);
        assert!(was);
        assert_eq!(cut.encode_utf16().count(), 64, "{cut}");
        assert!(cut.ends_with("…[cut: 200 characters in all]"), "{cut}");
        assert!(long.starts_with(cut.split('…').next().unwrap()));
        // Characters outside the BMP count twice and are never split.
        let emoji = "😀".repeat(100);
        let (cut, was) = cut_cell(emoji, 64);
        assert!(was && cut.encode_utf16().count() <= 64);
        // Multi-byte text under the limit in characters stays whole.
        let pt = "é".repeat(60);
        assert_eq!(cut_cell(pt.clone(), 64), (pt, false));
    }
}
