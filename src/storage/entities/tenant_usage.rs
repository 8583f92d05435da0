//! `tenant_usage`: running counters of what a tenant's big or growing tables (staging,
//! the request log, runs, alerts) hold, and the upsert that adds to them.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Alias, OnConflict};

/// A tenant's counters.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_usage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub staged_rows: i64,
    pub staged_bytes: i64,
    pub request_log_rows: i64,
    pub request_log_bytes: i64,
    /// Bytes of its runs (`sync_run`), measured as written.
    pub run_bytes: i64,
    /// Bytes of its alerts, measured as written.
    pub alert_bytes: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The counters, in column order.
const COUNTERS: [Column; 6] = [
    Column::StagedRows,
    Column::StagedBytes,
    Column::RequestLogRows,
    Column::RequestLogBytes,
    Column::RunBytes,
    Column::AlertBytes,
];

impl Entity {
    /// An insert of counters adds them to the tenant's row when it has one.
    pub fn add_to_existing() -> OnConflict {
        OnConflict::column(Column::TenantId)
            .values(COUNTERS.map(|c| {
                (
                    c,
                    Expr::col((Self, c)).add(Expr::col((Alias::new("excluded"), c))),
                )
            }))
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, EntityTrait, QueryTrait, Set};

    use super::*;

    #[test]
    fn counters_add_to_the_existing_row_on_both_backends() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let sql = Entity::insert(ActiveModel {
                tenant_id: Set("t".into()),
                staged_rows: Set(1),
                staged_bytes: Set(2),
                request_log_rows: Set(3),
                request_log_bytes: Set(4),
                run_bytes: Set(5),
                alert_bytes: Set(6),
            })
            .on_conflict(Entity::add_to_existing())
            .build(backend)
            .to_string();
            assert!(sql.ends_with(
                r#"ON CONFLICT ("tenant_id") DO UPDATE SET "staged_rows" = "tenant_usage"."staged_rows" + "excluded"."staged_rows", "staged_bytes" = "tenant_usage"."staged_bytes" + "excluded"."staged_bytes", "request_log_rows" = "tenant_usage"."request_log_rows" + "excluded"."request_log_rows", "request_log_bytes" = "tenant_usage"."request_log_bytes" + "excluded"."request_log_bytes", "run_bytes" = "tenant_usage"."run_bytes" + "excluded"."run_bytes", "alert_bytes" = "tenant_usage"."alert_bytes" + "excluded"."alert_bytes""#
            ), "{sql}");
        }
    }
}
