//! The ABC curve (Pareto analysis) and the customer lifecycle, as pure functions over
//! revenue figures; the sync's abc and categorize stages feed them from the database.
//!
//! Amounts are exact: every invoice or order total is kept as an integer number of
//! ten-thousandths of the currency unit ([`AMOUNT_SCALE`]), and sums are integers ([`Money`]).
//!
//! By concern: `settings.rs` a tenant's settings, their validation and the lifecycle they
//! define, `revenue.rs` the
//! revenue columns of a staged record and exact amounts, `classify.rs` the classification
//! and the shift guard, `category.rs` what the CRM gets for a company and its history,
//! `report.rs` a run's analysis as GetAbcReport shows it.

mod category;
mod classify;
mod report;
mod revenue;
mod settings;

pub use self::category::{
    change_of, Category, CategoryChange, Classes, CompanyFilter, Stamp, UNASSIGNED,
};
pub use self::classify::{
    classify, shift, shift_exceeds, AbcClass, Classification, CompanyRevenue, Standing,
};
pub use self::report::{AbcReport, ClassSummary, ReportState};
pub use self::revenue::{revenue_fact, scaled_amount, share, Money, RevenueFact, AMOUNT_SCALE};
pub use self::settings::{
    AbcInput, AbcSettings, Basis, Lifecycle, MAX_LIFECYCLE_DAYS, MAX_WINDOW_MONTHS,
};
