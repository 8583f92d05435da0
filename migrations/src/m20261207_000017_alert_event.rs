//! The alert feed. `alert_event`: append-only, one row per alert opened or resolved,
//! written in the transaction that opens or resolves the alert; `cursor` orders the
//! feed (appends are serialized, so cursors commit in order: see
//! `storage::alert_events`). Alerts that exist before this migration have no events:
//! the feed starts with the first change after it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AlertEvent {
    Table,
    Cursor,
    TenantId,
    AlertId,
    Event,
    Kind,
    Message,
    RunId,
    OpenedAt,
    At,
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
                    .table(AlertEvent::Table)
                    .col(
                        ColumnDef::new(AlertEvent::Cursor)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AlertEvent::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertEvent::AlertId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AlertEvent::Event).string_len(16).not_null())
                    .col(ColumnDef::new(AlertEvent::Kind).string_len(24).not_null())
                    .col(ColumnDef::new(AlertEvent::Message).text().not_null())
                    .col(ColumnDef::new(AlertEvent::RunId).string_len(36).null())
                    .col(
                        ColumnDef::new(AlertEvent::OpenedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertEvent::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_alert_event_tenant")
                            .from(AlertEvent::Table, AlertEvent::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_alert_event_tenant_cursor")
                    .table(AlertEvent::Table)
                    .col(AlertEvent::TenantId)
                    .col(AlertEvent::Cursor)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AlertEvent::Table).to_owned())
            .await
    }
}
