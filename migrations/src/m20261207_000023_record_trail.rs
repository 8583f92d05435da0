//! `record_trail`: what happened to each record, one row per event, so a support engineer
//! can follow one record (GetRecordTrace) without reading whole request bodies. Written in
//! bulk: by ingestion, one row per record of a batch that names an external id (accepted
//! or rejected, with the field and reason; `request_id` and `position` lead back to the
//! record's slice of the logged body), in the batch's transaction; by a sync run's delete
//! guard (held) and push stage (delivered or deleted, with the sink's answer and the
//! batch's idempotency key), for the CRM tables only.
//!
//! `id` orders the trail (newest first is `id` descending); the one index readers walk is
//! (tenant_id, table_name, external_id, id), so a trace is an index range however long
//! the request log is. Retention walks (at): rows of requests go with the request log's
//! window, rows of runs with the tenant's run history.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordTrail {
    Table,
    Id,
    TenantId,
    TableName,
    ExternalId,
    At,
    Kind,
    RequestId,
    Position,
    RunId,
    Stage,
    Field,
    Detail,
    IdempotencyKey,
    ContentHash,
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
                    .table(RecordTrail::Table)
                    .col(
                        ColumnDef::new(RecordTrail::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RecordTrail::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordTrail::TableName)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RecordTrail::ExternalId).text().not_null())
                    .col(
                        ColumnDef::new(RecordTrail::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RecordTrail::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(RecordTrail::RequestId).string_len(36).null())
                    .col(ColumnDef::new(RecordTrail::Position).integer().null())
                    .col(ColumnDef::new(RecordTrail::RunId).string_len(36).null())
                    .col(ColumnDef::new(RecordTrail::Stage).string_len(24).null())
                    .col(ColumnDef::new(RecordTrail::Field).text().null())
                    .col(ColumnDef::new(RecordTrail::Detail).text().null())
                    .col(ColumnDef::new(RecordTrail::IdempotencyKey).text().null())
                    .col(
                        ColumnDef::new(RecordTrail::ContentHash)
                            .big_integer()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_record_trail_tenant")
                            .from(RecordTrail::Table, RecordTrail::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_record_trail_record")
                    .table(RecordTrail::Table)
                    .col(RecordTrail::TenantId)
                    .col(RecordTrail::TableName)
                    .col(RecordTrail::ExternalId)
                    .col(RecordTrail::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_record_trail_at")
                    .table(RecordTrail::Table)
                    .col(RecordTrail::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RecordTrail::Table).to_owned())
            .await
    }
}
