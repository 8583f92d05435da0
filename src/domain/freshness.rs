//! Per-table freshness: per tenant and ERP table, the longest the table may go without a
//! newly accepted record (none by default). Past it a STALE_TABLE alert opens, naming the
//! table and when its data last arrived; the table's next accepted record resolves it.
//! The one rule is [`TableFreshness::stale_at`]: the scheduler's due instant
//! ([`next_stale`], in [`super::due`]), its check and the overview all read it.

use chrono::{DateTime, Duration, Utc};

use super::tables::Table;
use super::text::{check, excerpt, human_duration, MAX_ID_CHARS};
use crate::error::FieldViolation;

/// One table's freshness, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFreshness {
    /// The table.
    pub table: Table,
    /// Its limit; None: none.
    pub max_age: Option<Duration>,
    /// When the limit was set (the reference while no record has arrived).
    pub watched_since: Option<DateTime<Utc>>,
    /// When a record of it was last accepted.
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// Its open STALE_TABLE alert, if one is open.
    pub stale_alert: Option<String>,
}

impl TableFreshness {
    /// When the table goes past its limit: `max_age` after its last accepted record, or
    /// after the limit was set while none has arrived; None without a limit.
    pub fn stale_at(&self) -> Option<DateTime<Utc>> {
        let max_age = self.max_age?;
        let since = self.last_accepted_at.or(self.watched_since)?;
        Some(
            since
                .checked_add_signed(max_age)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Whether the table is past its limit at `now` (from [`stale_at`](Self::stale_at)
    /// on, so a look at exactly that instant sees it).
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.stale_at().is_some_and(|at| now >= at)
    }

    /// What the STALE_TABLE alert says: the table, when its data last arrived, the limit.
    pub fn alert_message(&self) -> String {
        let limit = self.max_age.map(human_duration).unwrap_or_default();
        match (self.last_accepted_at, self.watched_since) {
            (Some(at), _) => format!(
                "no new {} records accepted since {} (last arrival; limit {limit})",
                self.table,
                at.to_rfc3339()
            ),
            (None, Some(set)) => format!(
                "no {} record accepted since its limit was set at {} (none has arrived; limit {limit})",
                self.table,
                set.to_rfc3339()
            ),
            (None, None) => format!("no {} record accepted (limit {limit})", self.table),
        }
    }

    /// Whether the overview lists it: it has a limit, or records of it arrived.
    pub fn is_shown(&self) -> bool {
        self.max_age.is_some() || self.last_accepted_at.is_some()
    }
}

/// The earliest instant a table of `rows` goes past its limit while no STALE_TABLE alert
/// of it is open: when the scheduler must look at the tenant for them.
pub fn next_stale(rows: &[TableFreshness]) -> Option<DateTime<Utc>> {
    rows.iter()
        .filter(|r| r.stale_alert.is_none())
        .filter_map(TableFreshness::stale_at)
        .min()
}

/// A table's limit as sent: its table id and its `max_age` as (seconds, nanos) of a
/// protobuf Duration (None when the Duration was left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshnessInput {
    /// The table id.
    pub table: String,
    /// The limit.
    pub max_age: Option<(i64, i32)>,
}

/// A checked change of a tenant's freshness limits: tables to set, tables to clear; every
/// table at most once in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreshnessChange {
    /// Tables whose limit is set (or changed).
    pub set: Vec<(Table, Duration)>,
    /// Tables whose limit is removed.
    pub clear: Vec<Table>,
}

/// The request field of the limits to set.
pub const SET_FIELD: &str = "table_freshness";
/// The request field of the tables to clear.
pub const CLEAR_FIELD: &str = "clear_table_freshness";

impl FreshnessChange {
    /// Checks limits to `set` and tables to `clear` (the request's fields
    /// [`SET_FIELD`] and [`CLEAR_FIELD`]); every bad entry named by its field and table.
    pub fn parse(
        set: Vec<FreshnessInput>,
        clear: Vec<String>,
    ) -> Result<Self, Vec<FieldViolation>> {
        // Each table at most once: a longer list is refused whole, not entry by entry.
        for (field, n) in [(SET_FIELD, set.len()), (CLEAR_FIELD, clear.len())] {
            if n > Table::ALL.len() {
                return Err(vec![FieldViolation::new(
                    field,
                    format!(
                        "{n} entries: there are {} tables, name each at most once",
                        Table::ALL.len()
                    ),
                )]);
            }
        }
        let mut violations = Vec::new();
        let mut change = Self::default();
        let mut named: Vec<Table> = Vec::new();
        for (i, input) in set.into_iter().enumerate() {
            let field = format!("{SET_FIELD}[{i}]");
            let table = table_of(
                &format!("{field}.table"),
                &input.table,
                &named,
                &mut violations,
            );
            let max_age = match input.max_age {
                None => Err(
                    "required: the longest the table may go without new records (e.g. 86400s)"
                        .to_owned(),
                ),
                Some((secs, nanos)) => super::window::parse_window(secs, nanos),
            };
            match (table, max_age) {
                (Some(t), Ok(d)) => {
                    named.push(t);
                    change.set.push((t, d));
                }
                (t, Err(e)) => {
                    named.extend(t);
                    violations.push(FieldViolation::new(
                        format!("{field}.max_age"),
                        format!("{}: {e}", excerpt(&input.table)),
                    ));
                }
                (None, Ok(_)) => {}
            }
        }
        for (i, id) in clear.into_iter().enumerate() {
            if let Some(t) = table_of(&format!("{CLEAR_FIELD}[{i}]"), &id, &named, &mut violations)
            {
                named.push(t);
                change.clear.push(t);
            }
        }
        if violations.is_empty() {
            Ok(change)
        } else {
            Err(violations)
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.clear.is_empty()
    }

    /// The limit it gives `table`: `Some(Some(d))` set, `Some(None)` cleared, None when it
    /// leaves the table alone.
    pub fn of(&self, table: Table) -> Option<Option<Duration>> {
        if self.clear.contains(&table) {
            return Some(None);
        }
        self.set
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, d)| Some(*d))
    }
}

/// The table `id` names, unless it is malformed, unknown or named already (a violation
/// of `field` each).
fn table_of(
    field: &str,
    id: &str,
    named: &[Table],
    violations: &mut Vec<FieldViolation>,
) -> Option<Table> {
    if let Err(v) = check(field, id, MAX_ID_CHARS) {
        violations.push(v);
        return None;
    }
    let Some(table) = Table::parse(id) else {
        let valid: Vec<&str> = Table::ALL.iter().map(|t| t.as_str()).collect();
        violations.push(FieldViolation::new(
            field,
            format!(
                "unknown table {}: valid tables are {}",
                excerpt(id),
                valid.join(", ")
            ),
        ));
        return None;
    };
    if named.contains(&table) {
        violations.push(FieldViolation::new(
            field,
            format!(
                "{table} is named twice: set its limit in {SET_FIELD} or clear it in \
                 {CLEAR_FIELD}, once"
            ),
        ));
        return None;
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn row(max_age: Option<Duration>, last: Option<&str>) -> TableFreshness {
        TableFreshness {
            table: Table::Invoice,
            max_age,
            watched_since: max_age.map(|_| at("2026-12-01T00:00:00Z")),
            last_accepted_at: last.map(at),
            stale_alert: None,
        }
    }

    #[test]
    fn a_table_is_stale_from_its_last_arrival_plus_its_limit() {
        let r = row(Some(Duration::hours(24)), Some("2026-12-07T10:00:00Z"));
        assert_eq!(r.stale_at(), Some(at("2026-12-08T10:00:00Z")));
        assert!(!r.is_stale(at("2026-12-08T09:59:59Z")));
        assert!(r.is_stale(at("2026-12-08T10:00:00Z")), "due at the instant");
        let message = r.alert_message();
        assert!(message.contains("invoice"), "{message}");
        assert!(message.contains("2026-12-07T10:00:00+00:00"), "{message}");
        assert!(message.contains("24 h"), "{message}");
        // Nothing arrived yet: counted from when the limit was set.
        let none = row(Some(Duration::days(7)), None);
        assert_eq!(none.stale_at(), Some(at("2026-12-08T00:00:00Z")));
        assert!(none.alert_message().contains("none has arrived"));
        // No limit: never stale.
        let free = row(None, Some("2026-12-07T10:00:00Z"));
        assert_eq!(free.stale_at(), None);
        assert!(!free.is_stale(DateTime::<Utc>::MAX_UTC));
        assert!(free.is_shown() && none.is_shown() && !row(None, None).is_shown());
    }

    #[test]
    fn the_next_stale_instant_skips_tables_whose_alert_is_open() {
        let soon = row(Some(Duration::hours(1)), Some("2026-12-07T10:00:00Z"));
        let later = TableFreshness {
            table: Table::Company,
            ..row(Some(Duration::hours(5)), Some("2026-12-07T10:00:00Z"))
        };
        assert_eq!(
            next_stale(&[later.clone(), soon.clone()]),
            Some(at("2026-12-07T11:00:00Z"))
        );
        let alerted = TableFreshness {
            stale_alert: Some("a".into()),
            ..soon
        };
        assert_eq!(
            next_stale(&[alerted, later, row(None, None)]),
            Some(at("2026-12-07T15:00:00Z"))
        );
        assert_eq!(next_stale(&[]), None);
    }

    fn set(table: &str, secs: Option<i64>) -> FreshnessInput {
        FreshnessInput {
            table: table.into(),
            max_age: secs.map(|s| (s, 0)),
        }
    }

    #[test]
    fn a_change_sets_and_clears_known_tables_within_bounds() {
        let change = FreshnessChange::parse(
            vec![
                set("invoice", Some(86_400)),
                set("company", Some(7 * 86_400)),
            ],
            vec!["order".into()],
        )
        .unwrap();
        assert_eq!(change.of(Table::Invoice), Some(Some(Duration::hours(24))));
        assert_eq!(change.of(Table::Order), Some(None));
        assert_eq!(change.of(Table::Contact), None);
        assert!(FreshnessChange::parse(vec![], vec![]).unwrap().is_empty());
    }

    #[test]
    fn bad_limits_and_tables_name_their_field_and_table() {
        for secs in [Some(0), Some(-1), Some(10_i64.pow(16)), Some(59), None] {
            let v = FreshnessChange::parse(vec![set("invoice", secs)], vec![]).unwrap_err();
            assert_eq!(v.len(), 1, "{secs:?}");
            assert_eq!(v[0].field, "table_freshness[0].max_age", "{secs:?}");
            assert!(v[0].description.contains("\"invoice\""), "{:?}", v[0]);
        }
        let v = FreshnessChange::parse(
            vec![set("invoice", Some(3600)), set("nope", Some(3600))],
            vec!["invoice".into(), "bad\0".into(), "ghost".into()],
        )
        .unwrap_err();
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "table_freshness[1].table",
                "clear_table_freshness[0]",
                "clear_table_freshness[1]",
                "clear_table_freshness[2]",
            ]
        );
        assert!(v[0].description.contains("\"nope\""), "{:?}", v[0]);
        assert!(v[0].description.contains("invoice"), "lists the valid ones");
        assert!(v[1].description.contains("twice"), "{:?}", v[1]);
        assert!(v[3].description.contains("\"ghost\""), "{:?}", v[3]);
        let v = FreshnessChange::parse(
            vec![set("company", Some(3600)), set("company", Some(7200))],
            vec![],
        )
        .unwrap_err();
        assert_eq!(v[0].field, "table_freshness[1].table");
        // A flood is refused whole, in one violation.
        let flood: Vec<FreshnessInput> = (0..100_000).map(|_| set("invoice", Some(60))).collect();
        let v = FreshnessChange::parse(flood, vec![]).unwrap_err();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "table_freshness");
    }
}
