//! Retention of what grows with history: a tenant's own windows beside the server's
//! defaults (`tenant.run_history_days`, `tenant.abc_history_days`; null: the default),
//! and the index the category-history purge walks (`category_change` by tenant and age;
//! the existing one is by company). The other purges walk indexes that exist: runs by
//! (tenant_id, started_at), events by (tenant_id, cursor), stages and tables by their
//! run's primary key, ABC reports by (tenant_id, computed_at).
//!
//! The overview's database size stops summing a tenant's runs and alerts (they grow with
//! history): `tenant_usage` gains `run_bytes` and `alert_bytes`, kept current by the
//! writes, filled here from the rows as they are (the same measure the server used).

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    RunHistoryDays,
    AbcHistoryDays,
}

#[derive(DeriveIden)]
enum TenantUsage {
    Table,
    RunBytes,
    AlertBytes,
}

#[derive(DeriveIden)]
enum CategoryChange {
    Table,
    TenantId,
    ChangedAt,
}

const CATEGORY_CHANGE_AGE: &str = "ix_category_change_tenant_changed";

/// The measured columns of a run and of an alert, as the server counted them live.
const RUN_COLUMNS: &[&str] = &[
    "id",
    "tenant_id",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "duration_ms",
    "error",
];
const ALERT_COLUMNS: &[&str] = &[
    "id",
    "tenant_id",
    "kind",
    "message",
    "run_id",
    "opened_at",
    "resolved_at",
];

/// The sum over `table`'s rows of the tenant of `tenant_usage`'s row.
fn measured(table: &str, columns: &[&str]) -> String {
    let row = columns
        .iter()
        .map(|c| format!("COALESCE(LENGTH(CAST(\"{c}\" AS TEXT)), 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "(SELECT COALESCE(SUM({row}), 0) FROM \"{table}\" WHERE \"{table}\".tenant_id = tenant_usage.tenant_id)"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            Tenant::Table.into_iden(),
            [
                ColumnDef::new(Tenant::RunHistoryDays)
                    .integer()
                    .null()
                    .to_owned(),
                ColumnDef::new(Tenant::AbcHistoryDays)
                    .integer()
                    .null()
                    .to_owned(),
            ],
        )
        .await?;
        add_columns(
            manager,
            TenantUsage::Table.into_iden(),
            [
                ColumnDef::new(TenantUsage::RunBytes)
                    .big_integer()
                    .not_null()
                    .default(0)
                    .to_owned(),
                ColumnDef::new(TenantUsage::AlertBytes)
                    .big_integer()
                    .not_null()
                    .default(0)
                    .to_owned(),
            ],
        )
        .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO tenant_usage (tenant_id, staged_rows, staged_bytes, request_log_rows, \
             request_log_bytes, run_bytes, alert_bytes) \
             SELECT id, 0, 0, 0, 0, 0, 0 FROM tenant \
             WHERE id NOT IN (SELECT tenant_id FROM tenant_usage)",
        )
        .await?;
        db.execute_unprepared(&format!(
            "UPDATE tenant_usage SET run_bytes = {}, alert_bytes = {}",
            measured("sync_run", RUN_COLUMNS),
            measured("alert", ALERT_COLUMNS)
        ))
        .await?;
        manager
            .create_index(
                Index::create()
                    .name(CATEGORY_CHANGE_AGE)
                    .table(CategoryChange::Table)
                    .col(CategoryChange::TenantId)
                    .col(CategoryChange::ChangedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(CATEGORY_CHANGE_AGE)
                    .table(CategoryChange::Table)
                    .to_owned(),
            )
            .await?;
        crate::drop_columns(
            manager,
            TenantUsage::Table.into_iden(),
            [TenantUsage::RunBytes, TenantUsage::AlertBytes],
        )
        .await?;
        crate::drop_columns(
            manager,
            Tenant::Table.into_iden(),
            [Tenant::RunHistoryDays, Tenant::AbcHistoryDays],
        )
        .await
    }
}
