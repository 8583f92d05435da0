//! `abc_held`: the companies' categories of a classification held by the shift guard,
//! by run (a run writes them in bulk, `storage::bulk::write`).

use sea_orm::entity::prelude::*;
use sea_orm::Select;

/// A company's category in a held classification.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "abc_held")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub name: String,
    pub document: String,
    /// "A", "B", "C"; NULL without revenue.
    pub abc_class: Option<String>,
    pub lifecycle: String,
    pub portfolio: String,
    /// Ten-thousandths.
    pub revenue: i64,
    /// A civil date as `YYYY-MM-DD` text.
    pub first_purchase: Option<String>,
    /// A civil date as `YYYY-MM-DD` text.
    pub last_purchase: Option<String>,
    pub company_hash: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The rows of the classification run `run_id` holds.
    pub fn of_run(tenant: &str, run_id: &str) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::RunId.eq(run_id))
    }
}
