//! `category_change`: each company's categorization history, in the order the
//! database numbers it (a run writes it in bulk, `storage::bulk::write`).

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

use rust_decimal::Decimal;

use crate::domain::abc::Standing;

/// A change of a company's categories.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "category_change")]
pub struct Model {
    /// Increasing in the order the changes were written.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    pub external_id: String,
    pub run_id: String,
    /// A civil date as `YYYY-MM-DD` text.
    pub changed_on: String,
    pub changed_at: DateTimeUtc,
    pub abc_from: Option<String>,
    pub abc_to: Option<String>,
    pub lifecycle_from: Option<String>,
    pub lifecycle_to: Option<String>,
    /// The company's revenue in the window, in ten-thousandths (NULL in rows written
    /// before it was kept).
    pub revenue: Option<i64>,
    /// Its rank by revenue, 1 = highest (NULL without revenue, or not kept).
    pub revenue_rank: Option<i64>,
    /// The cumulative share of revenue before it, in hundredths of a percent (see
    /// [`share_column`]; NULL without revenue, or not kept).
    pub share_before: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Rank and share before as stored: the share in hundredths of a percent (a share has
/// two places).
pub fn standing_columns(s: Option<Standing>) -> (Option<i64>, Option<i64>) {
    match s {
        Some(s) => (Some(i64::from(s.rank)), Some(share_column(s.share_before))),
        None => (None, None),
    }
}

/// A share in percent as stored: hundredths of a percent.
fn share_column(share: Decimal) -> i64 {
    let mut d = share;
    d.rescale(2);
    i64::try_from(d.mantissa()).unwrap_or(i64::MAX)
}

/// The standing a row keeps (None unless both its rank and its share are set).
pub fn standing_of(rank: Option<i64>, share_before: Option<i64>) -> Option<Standing> {
    Some(Standing {
        rank: u32::try_from(rank?).ok()?,
        share_before: Decimal::new(share_before?, 2),
    })
}

impl Entity {
    /// One company's changes, oldest first.
    pub fn of_company(tenant: &str, external_id: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::ExternalId.eq(external_id))
            .order_by_asc(Column::Id)
    }
}
