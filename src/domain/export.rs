//! The Histórico export's rules (ExportHistory): what may be exported, over
//! which days, and how the file is named. The 7-day range rule lives here and only here.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::schedule::resolve_local;
use super::tables::{Table, TableDef, TABLES};
use super::tenant::TenantId;
use crate::error::FieldViolation;

/// The longest range an export covers, in days (both ends included).
pub const MAX_DAYS: u64 = 7;

/// What an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// Every request received on the ingestion endpoints and its response.
    Requests,
    /// Companies and contacts whose deletion the delete guard held.
    ExcessiveDeletes,
    /// The run log with per-table counts.
    Runs,
}

impl ExportKind {
    /// The name used in file names and on the command line.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::ExcessiveDeletes => "excessive-deletes",
            Self::Runs => "runs",
        }
    }
}

/// An export request as it arrives, before any check.
#[derive(Debug, Clone, Copy)]
pub struct ExportInput<'a> {
    /// "YYYY-MM-DD" in the tenant's zone, inclusive.
    pub from_date: &'a str,
    /// "YYYY-MM-DD" in the tenant's zone, inclusive.
    pub to_date: &'a str,
    /// Table ids; empty means all tables.
    pub tables: &'a [String],
    /// What to export.
    pub kind: ExportKind,
}

/// A checked export request: a valid range and known tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// What to export.
    pub kind: ExportKind,
    /// First day, in the tenant's zone.
    pub from: NaiveDate,
    /// Last day (included), in the tenant's zone.
    pub to: NaiveDate,
    /// The selected tables in catalog order; every table the kind covers when none
    /// was named.
    pub tables: Vec<&'static TableDef>,
    /// Whether no table was named (then rows of no table are exported too).
    pub all_tables: bool,
}

impl ExportSpec {
    /// Checks `input` against the range rules: both dates valid, `from ≤ to`, at most
    /// [`MAX_DAYS`] days, nothing after `today` and nothing before the oldest day the
    /// request log keeps (`retention_days` days up to today, today included); tables
    /// known (and guarded, for excessive deletes). Every violation names its field.
    pub fn parse(
        input: ExportInput<'_>,
        today: NaiveDate,
        retention_days: u32,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let from = parse_date("from_date", input.from_date, &mut violations);
        let to = parse_date("to_date", input.to_date, &mut violations);
        let oldest = today
            .checked_sub_days(Days::new(u64::from(retention_days.max(1)) - 1))
            .unwrap_or(NaiveDate::MIN);
        if let Some(from) = from {
            if from > today {
                violations.push(FieldViolation::new(
                    "from_date",
                    format!("{from} is in the future (today is {today} in the tenant's zone)"),
                ));
            } else if from < oldest {
                violations.push(FieldViolation::new(
                    "from_date",
                    format!(
                        "{from} is before the request log's retention: the oldest day kept is {oldest} ({retention_days} days)"
                    ),
                ));
            }
        }
        if let Some(to) = to {
            if to > today {
                violations.push(FieldViolation::new(
                    "to_date",
                    format!("{to} is in the future (today is {today} in the tenant's zone)"),
                ));
            }
        }
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                violations.push(FieldViolation::new(
                    "to_date",
                    format!("{to} is before from_date {from}"),
                ));
            } else {
                let days = to.signed_duration_since(from).num_days() + 1;
                if days.unsigned_abs() > MAX_DAYS {
                    violations.push(FieldViolation::new(
                        "to_date",
                        format!(
                            "{from} to {to} covers {days} days; an export covers at most {MAX_DAYS}"
                        ),
                    ));
                }
            }
        }
        let tables = select_tables(input.kind, input.tables, &mut violations);
        match (from, to) {
            (Some(from), Some(to)) if violations.is_empty() => Ok(Self {
                kind: input.kind,
                from,
                to,
                all_tables: input.tables.is_empty(),
                tables,
            }),
            _ => Err(violations),
        }
    }

    /// The instants the range covers in `tz`: from the start of `from` (included) to the
    /// start of the day after `to` (excluded).
    pub fn bounds(&self, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = self.to.succ_opt().unwrap_or(self.to);
        (day_start(tz, self.from), day_start(tz, next))
    }

    /// Every day of the range, in order.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.from
            .iter_days()
            .take_while(|d| *d <= self.to)
            .collect()
    }

    /// `erpsync-<tenant>-<kind>-<from>_<to>.xlsx`.
    pub fn filename(&self, tenant: &TenantId) -> String {
        format!(
            "erpsync-{tenant}-{}-{}_{}.xlsx",
            self.kind.slug(),
            self.from,
            self.to
        )
    }

    /// The selected table a request of `table` belongs to: None when the export leaves
    /// it out. A request of no table (or of one outside the catalog) is kept, under
    /// None's own sheet, only when no table was named; see [`Placement`].
    pub fn place(&self, table: Option<&str>) -> Placement {
        let table = table.and_then(Table::parse);
        match table.and_then(|t| self.tables.iter().position(|d| d.table == t)) {
            Some(i) => Placement::Table(i),
            None if self.all_tables => Placement::Other,
            None => Placement::Skip,
        }
    }
}

/// Where a request row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// To the sheet of the `n`th selected table.
    Table(usize),
    /// To the sheet of requests of no (known) table.
    Other,
    /// Not exported.
    Skip,
}

/// The first instant of local day `day` in `tz` (after a DST gap when midnight is in one).
pub fn day_start(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = NaiveDateTime::new(day, NaiveTime::MIN);
    resolve_local(tz, midnight).unwrap_or_else(|| midnight.and_utc())
}

/// A local date-time as an Excel date-time serial (days since 1899-12-30, the fraction
/// the time of day): what a date cell holds, so Excel shows and sorts it as a date.
pub fn excel_serial(local: NaiveDateTime) -> f64 {
    const MICROS_PER_DAY: f64 = 86_400_000_000.0;
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)
        .unwrap_or(NaiveDate::MIN)
        .and_time(NaiveTime::MIN);
    let micros = local
        .signed_duration_since(epoch)
        .num_microseconds()
        .unwrap_or(0);
    // Exact enough: a date Excel shows is within f64's 53-bit mantissa in microseconds.
    micros as f64 / MICROS_PER_DAY
}

fn parse_date(
    field: &'static str,
    s: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<NaiveDate> {
    if s.trim().is_empty() {
        violations.push(FieldViolation::new(
            field,
            "required: a date YYYY-MM-DD in the tenant's zone",
        ));
        return None;
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) if s.len() == 10 => Some(d),
        _ => {
            violations.push(FieldViolation::new(
                field,
                format!("{s:?} is not a date: send YYYY-MM-DD, e.g. 2026-11-28"),
            ));
            None
        }
    }
}

fn select_tables(
    kind: ExportKind,
    names: &[String],
    violations: &mut Vec<FieldViolation>,
) -> Vec<&'static TableDef> {
    // The Excessivos Deletes buttons: the tables whose deletions the delete guard holds.
    let covered = |t: Table| kind != ExportKind::ExcessiveDeletes || t.is_crm();
    if names.is_empty() {
        return TABLES.iter().filter(|t| covered(t.table)).collect();
    }
    let mut unknown = Vec::new();
    let mut unguarded = Vec::new();
    let mut chosen = Vec::new();
    for name in names {
        match Table::parse(name) {
            None => unknown.push(format!("{name:?}")),
            Some(t) if !covered(t) => unguarded.push(t.as_str()),
            Some(t) => chosen.push(t),
        }
    }
    if !unknown.is_empty() {
        violations.push(FieldViolation::new(
            "tables",
            format!(
                "unknown table {}: use the ids ListTables answers (company, contact, order, …)",
                unknown.join(", ")
            ),
        ));
    }
    if !unguarded.is_empty() {
        violations.push(FieldViolation::new(
            "tables",
            format!(
                "{}: the delete guard holds deletions of company and contact only",
                unguarded.join(", ")
            ),
        ));
    }
    TABLES
        .iter()
        .filter(|t| chosen.contains(&t.table))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn parse(
        from: &str,
        to: &str,
        tables: &[&str],
        kind: ExportKind,
    ) -> Result<ExportSpec, Vec<FieldViolation>> {
        let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
        ExportSpec::parse(
            ExportInput {
                from_date: from,
                to_date: to,
                tables: &tables,
                kind,
            },
            day("2026-11-28"),
            30,
        )
    }

    fn fields(r: Result<ExportSpec, Vec<FieldViolation>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_seven_day_range_up_to_today_is_accepted_with_all_tables() {
        let spec = parse("2026-11-22", "2026-11-28", &[], ExportKind::Requests).unwrap();
        assert_eq!(spec.tables.len(), 12);
        assert!(spec.all_tables);
        assert_eq!(spec.days().len(), 7);
        assert_eq!(
            spec.filename(&TenantId::parse("acme").unwrap()),
            "erpsync-acme-requests-2026-11-22_2026-11-28.xlsx"
        );
        let one = parse(
            "2026-11-28",
            "2026-11-28",
            &["invoice", "company"],
            ExportKind::Requests,
        )
        .unwrap();
        assert_eq!(
            one.tables.iter().map(|t| t.id).collect::<Vec<_>>(),
            ["company", "invoice"],
            "catalog order"
        );
        assert_eq!(one.place(Some("invoice")), Placement::Table(1));
        assert_eq!(one.place(Some("order")), Placement::Skip);
        assert_eq!(one.place(None), Placement::Skip);
        assert_eq!(spec.place(None), Placement::Other);
        assert_eq!(spec.place(Some("nope")), Placement::Other);
    }

    #[test]
    fn every_invalid_range_names_its_field() {
        let k = ExportKind::Requests;
        assert_eq!(
            fields(parse("2026-11-21", "2026-11-28", &[], k)),
            ["to_date"]
        );
        assert_eq!(
            fields(parse("2026-11-28", "2026-11-27", &[], k)),
            ["to_date"]
        );
        assert_eq!(
            fields(parse("2026-11-28", "2026-11-29", &[], k)),
            ["to_date"]
        );
        assert_eq!(
            fields(parse("2026-11-30", "2026-12-01", &[], k)),
            ["from_date", "to_date"]
        );
        // 30 days kept, today included: the oldest day is 2026-10-30.
        assert!(parse("2026-10-30", "2026-11-01", &[], k).is_ok());
        assert_eq!(
            fields(parse("2026-10-29", "2026-11-01", &[], k)),
            ["from_date"]
        );
        assert_eq!(
            fields(parse("28/11/2026", "2026-11-28", &[], k)),
            ["from_date"]
        );
        assert_eq!(
            fields(parse("2026-11-28", "2026-11-31", &[], k)),
            ["to_date"]
        );
        assert_eq!(fields(parse("", "2026-11-28", &[], k)), ["from_date"]);
        assert_eq!(
            fields(parse("2026-11-28", "2026-11-28", &["orders"], k)),
            ["tables"]
        );
        assert_eq!(
            fields(parse(
                "2026-11-28",
                "2026-11-28",
                &["order"],
                ExportKind::ExcessiveDeletes
            )),
            ["tables"]
        );
    }

    #[test]
    fn excessive_deletes_cover_companies_and_contacts() {
        let spec = parse(
            "2026-11-28",
            "2026-11-28",
            &[],
            ExportKind::ExcessiveDeletes,
        )
        .unwrap();
        assert_eq!(
            spec.tables.iter().map(|t| t.table).collect::<Vec<_>>(),
            Table::CRM
        );
    }

    #[test]
    fn bounds_are_local_midnights_and_serials_are_local_times() {
        let spec = parse("2026-11-27", "2026-11-28", &[], ExportKind::Requests).unwrap();
        let tz = chrono_tz::America::Sao_Paulo;
        let (from, to) = spec.bounds(tz);
        assert_eq!(from.to_rfc3339(), "2026-11-27T03:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-29T03:00:00+00:00");
        // 2026-11-28 12:00 UTC is 09:00 in São Paulo: serial 46354.375.
        let t = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .to_utc();
        let serial = excel_serial(t.with_timezone(&tz).naive_local());
        assert!((serial - 46_354.375).abs() < 1e-9, "{serial}");
    }
}
