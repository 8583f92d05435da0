//! The ABC analysis's tables: revenue aggregated from staged invoices or orders, each
//! company's current categories (`company_category`), their history (`category_change`),
//! each run's report (`abc_report`) and the classifications held by the shift guard
//! (`abc_held`).
//!
//! By concern: `revenue.rs` the revenue sums, `companies.rs` the companies a run
//! categorizes, `categories.rs` the current categories and their history, `held.rs`
//! the classifications held by the shift guard, `report.rs` the reports, `rows.rs` how a
//! category is kept in a row. The large reads and writes run through
//! [`crate::storage::bulk`] (their SQL there, the rules here); the rest through the
//! tables' sea-orm entities.

mod categories;
mod companies;
mod held;
mod report;
mod revenue;
pub(in crate::storage) mod rows;

pub use self::categories::{apply, category, history, list, stored, Filter};
pub use self::companies::{categorized_but_gone, live_companies, LiveCompany};
pub use self::held::{held_rows, hold, resolve, supersede_held};
pub use self::report::{current_report, held_report, insert_report, report};
pub use self::revenue::{purchases, Purchases};
pub use self::rows::Stored;
