//! `abc_report`: each run's ABC report. Dates, thresholds, summary and curve are kept as
//! text (`YYYY-MM-DD`, decimals, JSON).

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

/// A run's report.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "abc_report")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    pub tenant_id: String,
    pub computed_at: DateTimeUtc,
    /// A civil date as `YYYY-MM-DD` text.
    pub as_of: String,
    pub basis: String,
    /// A civil date as `YYYY-MM-DD` text.
    pub window_from: String,
    /// A civil date as `YYYY-MM-DD` text.
    pub window_to: String,
    /// A decimal as text.
    pub a_threshold: String,
    /// A decimal as text.
    pub b_threshold: String,
    /// A JSON array of the class summaries.
    #[sea_orm(column_type = "Text")]
    pub summary: String,
    /// A JSON array of the curve's points, pairs of decimal texts.
    #[sea_orm(column_type = "Text")]
    pub curve: String,
    pub companies: i64,
    pub changed: i64,
    pub base: i64,
    /// APPLIED, HELD, APPROVED, DISCARDED or SUPERSEDED.
    pub state: String,
    pub resolved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's reports, the latest computed first.
    pub fn of_tenant_latest_first(tenant: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .order_by_desc(Column::ComputedAt)
    }
}
