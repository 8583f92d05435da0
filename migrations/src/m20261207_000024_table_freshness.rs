//! Per-table freshness. `table_freshness`: one row per tenant and ERP table, with the
//! table's freshness limit (`max_age_secs`, null: none), when the limit was set
//! (`watched_since`: the reference while no record has arrived since), when a record of
//! the table was last accepted (`last_accepted_at`, written by ingestion once per batch),
//! and the table's open STALE_TABLE alert (`stale_alert_id`, null when none is open), so
//! there is at most one per tenant and table. Removed with its tenant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TableFreshness {
    Table,
    TenantId,
    TableName,
    MaxAgeSecs,
    WatchedSince,
    LastAcceptedAt,
    StaleAlertId,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TableFreshness::Table)
                    .col(
                        ColumnDef::new(TableFreshness::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TableFreshness::TableName)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TableFreshness::MaxAgeSecs)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TableFreshness::WatchedSince)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TableFreshness::LastAcceptedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TableFreshness::StaleAlertId)
                            .string_len(36)
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(TableFreshness::TenantId)
                            .col(TableFreshness::TableName),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_table_freshness_tenant")
                            .from(TableFreshness::Table, TableFreshness::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TableFreshness::Table).to_owned())
            .await
    }
}
