//! `tenant`: one row per tenant with its integration settings.

use sea_orm::entity::prelude::*;

/// A tenant row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub erp_name: String,
    pub erp_version: String,
    pub integration_type: String,
    pub deployment_status: String,
    #[sea_orm(column_type = "Text")]
    pub business_rule: String,
    pub active: bool,
    pub scheduled: bool,
    /// Comma-separated "HH:MM" list, when the schedule is daily.
    pub schedule_daily: Option<String>,
    /// The cron expression, when the schedule is cron.
    pub schedule_cron: Option<String>,
    pub max_without_success_secs: i64,
    pub delete_guard_percent: f64,
    pub delete_guard_min_rows: i64,
    /// The ABC settings as JSON; missing keys take their defaults.
    #[sea_orm(column_type = "Text")]
    pub abc_settings: String,
    /// Days of runs kept; null: the server's `--run-history-days`.
    pub run_history_days: Option<i32>,
    /// Days of ABC reports and category changes kept; null: `--abc-history-days`.
    pub abc_history_days: Option<i32>,
    /// Strict mode: a record with a field its table does not know is rejected.
    pub strict_fields: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
