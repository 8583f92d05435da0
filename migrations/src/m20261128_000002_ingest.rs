//! Staging (the intermediate database), the request log, and per-tenant usage counters.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StagedRecord {
    Table,
    TenantId,
    TableName,
    ExternalId,
    Fields,
    ContentHash,
    UpdatedAt,
    Deleted,
    ChangedAt,
    RequestId,
    SizeBytes,
}

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    Id,
    TenantId,
    ReceivedAt,
    Endpoint,
    TableName,
    Transport,
    Status,
    HttpStatus,
    DurationMs,
    Accepted,
    Rejected,
    Error,
    RequestBody,
    RequestBodyLz4,
    RequestTruncated,
    ResponseBody,
    SizeBytes,
}

#[derive(DeriveIden)]
enum TenantUsage {
    Table,
    TenantId,
    StagedRows,
    StagedBytes,
    RequestLogRows,
    RequestLogBytes,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
}

fn tenant_fk(table: impl IntoIden + 'static, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("tenant_id"))
        .to(Tenant::Table, Tenant::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StagedRecord::Table)
                    .col(
                        ColumnDef::new(StagedRecord::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StagedRecord::TableName)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StagedRecord::ExternalId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(StagedRecord::Fields).text().not_null())
                    .col(
                        ColumnDef::new(StagedRecord::ContentHash)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StagedRecord::UpdatedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(StagedRecord::Deleted).boolean().not_null())
                    .col(
                        ColumnDef::new(StagedRecord::ChangedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StagedRecord::RequestId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(StagedRecord::SizeBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(StagedRecord::TenantId)
                            .col(StagedRecord::TableName)
                            .col(StagedRecord::ExternalId),
                    )
                    .foreign_key(&mut tenant_fk(
                        StagedRecord::Table,
                        "fk_staged_record_tenant",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_staged_record_changed")
                    .table(StagedRecord::Table)
                    .col(StagedRecord::TenantId)
                    .col(StagedRecord::ChangedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RequestLog::Table)
                    .col(
                        ColumnDef::new(RequestLog::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RequestLog::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RequestLog::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RequestLog::Endpoint)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestLog::TableName).string_len(64).null())
                    .col(
                        ColumnDef::new(RequestLog::Transport)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestLog::Status).string_len(32).not_null())
                    .col(ColumnDef::new(RequestLog::HttpStatus).integer().not_null())
                    .col(
                        ColumnDef::new(RequestLog::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestLog::Accepted).integer().not_null())
                    .col(ColumnDef::new(RequestLog::Rejected).integer().not_null())
                    .col(ColumnDef::new(RequestLog::Error).text().null())
                    // The request body, LZ4-compressed (size-prepended) when
                    // request_body_lz4 is true, else UTF-8: bodies are the bulk of
                    // the biggest table and compress several times.
                    .col(ColumnDef::new(RequestLog::RequestBody).blob().not_null())
                    .col(
                        ColumnDef::new(RequestLog::RequestBodyLz4)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RequestLog::RequestTruncated)
                            .boolean()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestLog::ResponseBody).text().not_null())
                    .col(
                        ColumnDef::new(RequestLog::SizeBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(&mut tenant_fk(RequestLog::Table, "fk_request_log_tenant"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_request_log_tenant_received")
                    .table(RequestLog::Table)
                    .col(RequestLog::TenantId)
                    .col(RequestLog::ReceivedAt)
                    .to_owned(),
            )
            .await?;
        // Retention deletes by age across tenants.
        manager
            .create_index(
                Index::create()
                    .name("ix_request_log_received")
                    .table(RequestLog::Table)
                    .col(RequestLog::ReceivedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TenantUsage::Table)
                    .col(
                        ColumnDef::new(TenantUsage::TenantId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantUsage::StagedRows)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantUsage::StagedBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantUsage::RequestLogRows)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantUsage::RequestLogBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(&mut tenant_fk(TenantUsage::Table, "fk_tenant_usage_tenant"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TenantUsage::Table.into_iden(),
            RequestLog::Table.into_iden(),
            StagedRecord::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
