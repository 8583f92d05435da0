//! A tenant's ABC and lifecycle settings: their defaults, the changes a caller asks for and
//! the validation of the merged result, and the windows they define.

use chrono::{Months, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::tables::Table;
use crate::error::FieldViolation;

/// Where a customer is in its life with the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Never bought.
    Prospect,
    /// First purchase within the "new" window.
    New,
    /// Last purchase within the "active" window.
    Active,
    /// Last purchase between the active and the inactive windows.
    AtRisk,
    /// Last purchase longer ago than the inactive window.
    Inactive,
}

impl Lifecycle {
    /// Every value.
    pub const ALL: [Self; 5] = [
        Self::Prospect,
        Self::New,
        Self::Active,
        Self::AtRisk,
        Self::Inactive,
    ];

    /// PROSPECT, NEW, ACTIVE, AT_RISK or INACTIVE.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prospect => "PROSPECT",
            Self::New => "NEW",
            Self::Active => "ACTIVE",
            Self::AtRisk => "AT_RISK",
            Self::Inactive => "INACTIVE",
        }
    }

    /// Parses what [`Lifecycle::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// Which ERP table revenue is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Fiscal invoices (NF-e) totals; credit notes count negative.
    #[default]
    Invoice,
    /// Order totals.
    Order,
}

impl Basis {
    /// The ERP table: invoices or orders.
    pub fn table(self) -> Table {
        match self {
            Self::Invoice => Table::Invoice,
            Self::Order => Table::Order,
        }
    }

    /// The basis read from `table`, if revenue is read from it.
    pub fn of_table(table: Table) -> Option<Self> {
        match table {
            Table::Invoice => Some(Self::Invoice),
            Table::Order => Some(Self::Order),
            _ => None,
        }
    }

    /// Parses "invoice" or "order" (any case, trimmed).
    pub fn parse(s: &str) -> Option<Self> {
        Table::parse(&s.trim().to_ascii_lowercase()).and_then(Self::of_table)
    }
}

/// A tenant's ABC and lifecycle settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbcSettings {
    /// Revenue from invoices or from orders.
    pub basis: Basis,
    /// Months of revenue counted back from the run's date.
    pub window_months: u32,
    /// Cumulative revenue share (percent) below which a company is A…
    pub a_threshold: Decimal,
    /// …and below which it is B; C after.
    pub b_threshold: Decimal,
    /// A first purchase at most this many days ago makes a customer NEW.
    pub new_days: u32,
    /// A last purchase at most this many days ago makes it ACTIVE…
    pub active_days: u32,
    /// …at most this many days AT_RISK, and INACTIVE after.
    pub inactive_days: u32,
    /// Hold a classification that changes the class of more than this percentage of the
    /// classified companies.
    pub shift_guard_percent: Decimal,
    /// Whether the shift guard is on.
    pub shift_guard: bool,
}

impl Default for AbcSettings {
    fn default() -> Self {
        Self {
            basis: Basis::Invoice,
            window_months: 12,
            a_threshold: Decimal::from(80),
            b_threshold: Decimal::from(95),
            new_days: 90,
            active_days: 180,
            inactive_days: 365,
            shift_guard_percent: Decimal::from(30),
            shift_guard: true,
        }
    }
}

/// Longest accepted revenue window: 100 years.
pub const MAX_WINDOW_MONTHS: u32 = 1200;
/// Longest accepted lifecycle window: 100 years.
pub const MAX_LIFECYCLE_DAYS: u32 = 36_500;
/// Decimal places a threshold may have.
pub(super) const THRESHOLD_DECIMALS: u32 = 2;

/// Requested changes of the ABC settings, as received; unset fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct AbcInput {
    /// "invoice" or "order".
    pub basis: Option<String>,
    /// Months.
    pub window_months: Option<u32>,
    /// Percent.
    pub a_threshold: Option<f64>,
    /// Percent.
    pub b_threshold: Option<f64>,
    /// Days.
    pub new_days: Option<u32>,
    /// Days.
    pub active_days: Option<u32>,
    /// Days.
    pub inactive_days: Option<u32>,
    /// Percent.
    pub shift_guard_percent: Option<f64>,
    /// On or off.
    pub shift_guard: Option<bool>,
}

impl AbcInput {
    /// True when nothing is asked.
    pub fn is_empty(&self) -> bool {
        self.basis.is_none()
            && self.window_months.is_none()
            && self.a_threshold.is_none()
            && self.b_threshold.is_none()
            && self.new_days.is_none()
            && self.active_days.is_none()
            && self.inactive_days.is_none()
            && self.shift_guard_percent.is_none()
            && self.shift_guard.is_none()
    }
}

/// A percentage as sent (a double) made exact: the shortest text that reads back as the
/// same double ("80.5" for 80.5), parsed as a decimal.
fn percent(field: &'static str, v: f64, violations: &mut Vec<FieldViolation>) -> Option<Decimal> {
    let d = if v.is_finite() {
        format!("{v}").parse::<Decimal>().ok()
    } else {
        None
    };
    match d {
        Some(d) if d.scale() <= THRESHOLD_DECIMALS => Some(d),
        Some(_) => {
            violations.push(FieldViolation::new(
                field,
                format!("{v} has more than {THRESHOLD_DECIMALS} decimal places"),
            ));
            None
        }
        None => {
            violations.push(FieldViolation::new(field, format!("{v} is not a number")));
            None
        }
    }
}

impl AbcSettings {
    /// These settings with `input` applied, or every problem found (checked on the merged
    /// result: 0 < A < B < 100 and new ≤ active < inactive).
    pub fn merged(&self, input: &AbcInput) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Vec::new();
        let mut s = self.clone();
        if let Some(b) = &input.basis {
            match Basis::parse(b) {
                Some(b) => s.basis = b,
                None => v.push(FieldViolation::new(
                    "abc_basis",
                    format!(
                        "{} is not a basis: use invoice or order",
                        crate::domain::text::excerpt(b)
                    ),
                )),
            }
        }
        if let Some(m) = input.window_months {
            if m == 0 || m > MAX_WINDOW_MONTHS {
                v.push(FieldViolation::new(
                    "abc_window_months",
                    format!("must be between 1 and {MAX_WINDOW_MONTHS}"),
                ));
            } else {
                s.window_months = m;
            }
        }
        if let Some(a) = input.a_threshold {
            if let Some(d) = percent("abc_a_threshold", a, &mut v) {
                s.a_threshold = d;
            }
        }
        if let Some(b) = input.b_threshold {
            if let Some(d) = percent("abc_b_threshold", b, &mut v) {
                s.b_threshold = d;
            }
        }
        if let Some(p) = input.shift_guard_percent {
            if let Some(d) = percent("abc_shift_guard_percent", p, &mut v) {
                if d <= Decimal::ZERO || d > Decimal::ONE_HUNDRED {
                    v.push(FieldViolation::new(
                        "abc_shift_guard_percent",
                        "must be more than 0 and at most 100",
                    ));
                } else {
                    s.shift_guard_percent = d;
                }
            }
        }
        if let Some(g) = input.shift_guard {
            s.shift_guard = g;
        }
        for (field, value, target) in [
            ("lifecycle_new_days", input.new_days, &mut s.new_days),
            (
                "lifecycle_active_days",
                input.active_days,
                &mut s.active_days,
            ),
            (
                "lifecycle_inactive_days",
                input.inactive_days,
                &mut s.inactive_days,
            ),
        ] {
            if let Some(d) = value {
                if d == 0 || d > MAX_LIFECYCLE_DAYS {
                    v.push(FieldViolation::new(
                        field,
                        format!("must be between 1 and {MAX_LIFECYCLE_DAYS} days"),
                    ));
                } else {
                    *target = d;
                }
            }
        }
        if !v.is_empty() {
            return Err(v);
        }
        if !(s.a_threshold > Decimal::ZERO
            && s.a_threshold < s.b_threshold
            && s.b_threshold < Decimal::ONE_HUNDRED)
        {
            let field = if input.a_threshold.is_some() {
                "abc_a_threshold"
            } else {
                "abc_b_threshold"
            };
            v.push(FieldViolation::new(
                field,
                format!(
                    "the thresholds must satisfy 0 < A < B < 100; they would be A = {} and B = {}",
                    s.a_threshold, s.b_threshold
                ),
            ));
        }
        if !(s.new_days <= s.active_days && s.active_days < s.inactive_days) {
            v.push(FieldViolation::new(
                "lifecycle_active_days",
                format!(
                    "the lifecycle windows must satisfy new ≤ active < inactive; they would be {}, {} and {} days",
                    s.new_days, s.active_days, s.inactive_days
                ),
            ));
        }
        if v.is_empty() {
            Ok(s)
        } else {
            Err(v)
        }
    }

    /// The revenue window of a run on `as_of` (a civil date in the tenant's zone):
    /// `window_months` months ending on `as_of`, both ends included.
    pub fn window(&self, as_of: NaiveDate) -> (NaiveDate, NaiveDate) {
        let from = as_of
            .checked_sub_months(Months::new(self.window_months))
            .and_then(|d| d.succ_opt())
            .unwrap_or(NaiveDate::MIN);
        (from, as_of)
    }

    /// The lifecycle of a customer whose first and last purchases were on these dates.
    pub fn lifecycle(
        &self,
        first: Option<NaiveDate>,
        last: Option<NaiveDate>,
        as_of: NaiveDate,
    ) -> Lifecycle {
        let (Some(first), Some(last)) = (first, last) else {
            return Lifecycle::Prospect;
        };
        let age = |d: NaiveDate| (as_of - d).num_days();
        if age(first) <= i64::from(self.new_days) {
            Lifecycle::New
        } else if age(last) <= i64::from(self.active_days) {
            Lifecycle::Active
        } else if age(last) <= i64::from(self.inactive_days) {
            Lifecycle::AtRisk
        } else {
            Lifecycle::Inactive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_months_up_to_the_run_date_inclusive() {
        let s = AbcSettings::default();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            s.window(d("2026-11-28")),
            (d("2025-11-29"), d("2026-11-28"))
        );
        // Month ends clamp: 12 months before 2024-02-29 is 2023-02-28.
        assert_eq!(s.window(d("2024-02-29")).0, d("2023-03-01"));
    }

    #[test]
    fn lifecycle_windows() {
        let s = AbcSettings::default();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let today = d("2026-11-28");
        let days = |n: i64| Some(today - chrono::Duration::days(n));
        assert_eq!(s.lifecycle(None, None, today), Lifecycle::Prospect);
        assert_eq!(s.lifecycle(days(90), days(90), today), Lifecycle::New);
        assert_eq!(s.lifecycle(days(91), days(10), today), Lifecycle::Active);
        assert_eq!(s.lifecycle(days(400), days(180), today), Lifecycle::Active);
        assert_eq!(s.lifecycle(days(400), days(181), today), Lifecycle::AtRisk);
        assert_eq!(s.lifecycle(days(400), days(365), today), Lifecycle::AtRisk);
        assert_eq!(
            s.lifecycle(days(400), days(366), today),
            Lifecycle::Inactive
        );
    }

    #[test]
    fn settings_are_validated_on_the_merged_result() {
        let s = AbcSettings::default();
        let ok = s
            .merged(&AbcInput {
                a_threshold: Some(70.5),
                basis: Some("order".into()),
                ..AbcInput::default()
            })
            .unwrap();
        assert_eq!(ok.a_threshold, Decimal::new(705, 1));
        assert_eq!(ok.basis, Basis::Order);
        for bad in [
            AbcInput {
                a_threshold: Some(96.0),
                ..AbcInput::default()
            },
            AbcInput {
                b_threshold: Some(100.0),
                ..AbcInput::default()
            },
            AbcInput {
                a_threshold: Some(0.0),
                ..AbcInput::default()
            },
            AbcInput {
                a_threshold: Some(80.123),
                ..AbcInput::default()
            },
            AbcInput {
                a_threshold: Some(f64::NAN),
                ..AbcInput::default()
            },
            AbcInput {
                basis: Some("quote".into()),
                ..AbcInput::default()
            },
            AbcInput {
                window_months: Some(0),
                ..AbcInput::default()
            },
            AbcInput {
                new_days: Some(200),
                ..AbcInput::default()
            },
            AbcInput {
                inactive_days: Some(180),
                ..AbcInput::default()
            },
            AbcInput {
                shift_guard_percent: Some(0.0),
                ..AbcInput::default()
            },
        ] {
            assert!(s.merged(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
