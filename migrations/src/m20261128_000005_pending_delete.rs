//! Deletions held by the delete guard (Excessivos Deletes), one row per record, until a
//! person approves (applied by the next run) or discards (record restored) them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PendingDelete {
    Table,
    TenantId,
    TableName,
    ExternalId,
    Name,
    Document,
    DetectedRunId,
    DetectedAt,
    State,
    ResolvedAt,
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
                    .table(PendingDelete::Table)
                    .col(
                        ColumnDef::new(PendingDelete::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDelete::TableName)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDelete::ExternalId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PendingDelete::Name).string().not_null())
                    .col(
                        ColumnDef::new(PendingDelete::Document)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDelete::DetectedRunId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDelete::DetectedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDelete::State)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PendingDelete::ResolvedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(PendingDelete::TenantId)
                            .col(PendingDelete::TableName)
                            .col(PendingDelete::ExternalId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_pending_delete_tenant")
                            .from(PendingDelete::Table, PendingDelete::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PendingDelete::Table).to_owned())
            .await
    }
}
