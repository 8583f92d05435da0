//! A run's ABC analysis as GetAbcReport shows it: the state of its classification, the
//! per-class lines and the curve.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::classify::{AbcClass, Classification};
use super::revenue::Money;
use super::settings::Basis;

/// Where a run's classification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// Applied by its run.
    Applied,
    /// Held by the shift guard, waiting for ResolveAbcShift.
    Held,
    /// Held, then approved and applied.
    Approved,
    /// Held, then discarded.
    Discarded,
    /// Held, then replaced by a later run's classification.
    Superseded,
}

impl ReportState {
    /// APPLIED, HELD, APPROVED, DISCARDED or SUPERSEDED.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "APPLIED",
            Self::Held => "HELD",
            Self::Approved => "APPROVED",
            Self::Discarded => "DISCARDED",
            Self::Superseded => "SUPERSEDED",
        }
    }

    /// Parses what [`ReportState::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Applied,
            Self::Held,
            Self::Approved,
            Self::Discarded,
            Self::Superseded,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One class's line of a report; `class` None is the companies without revenue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSummary {
    /// A, B, C, or None for the companies without revenue.
    pub class: Option<AbcClass>,
    /// How many companies.
    pub companies: u64,
    /// Their revenue.
    pub revenue: Money,
    /// Percent of the total revenue, two places.
    pub share: Decimal,
}

/// A run's ABC analysis, as GetAbcReport shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AbcReport {
    /// The run that computed it.
    pub run_id: String,
    /// When.
    pub computed_at: chrono::DateTime<chrono::Utc>,
    /// The run's civil date.
    pub as_of: NaiveDate,
    /// Invoices or orders.
    pub basis: Basis,
    /// First day of the window.
    pub window_from: NaiveDate,
    /// Last day of the window.
    pub window_to: NaiveDate,
    /// A threshold, percent.
    pub a_threshold: Decimal,
    /// B threshold, percent.
    pub b_threshold: Decimal,
    /// Per class A, B, C, then the companies without revenue.
    pub summary: Vec<ClassSummary>,
    /// (percent of companies, cumulative percent of revenue).
    pub curve: Vec<(Decimal, Decimal)>,
    /// Companies categorized.
    pub companies: u64,
    /// Companies classified before whose class changed.
    pub changed: u64,
    /// Companies classified before.
    pub base: u64,
    /// Applied, held, …
    pub state: ReportState,
}

impl Classification {
    /// The per-class lines of a report (A, B, C, then the companies without revenue).
    pub fn summary_lines(&self, unclassified_revenue: Money) -> Vec<ClassSummary> {
        let mut lines: Vec<ClassSummary> = self
            .summary
            .iter()
            .map(|(class, companies, revenue)| ClassSummary {
                class: Some(*class),
                companies: *companies,
                revenue: *revenue,
                share: revenue.share_of(self.total),
            })
            .collect();
        lines.push(ClassSummary {
            class: None,
            companies: self.unclassified,
            revenue: unclassified_revenue,
            share: Decimal::ZERO,
        });
        lines
    }
}
