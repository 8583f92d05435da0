//! Tenants, API tokens, sync runs and alerts: what the overview is drawn from.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
    Name,
    Timezone,
    ErpName,
    ErpVersion,
    IntegrationType,
    DeploymentStatus,
    BusinessRule,
    Active,
    Scheduled,
    ScheduleDaily,
    ScheduleCron,
    MaxWithoutSuccessSecs,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiToken {
    Table,
    Id,
    TokenHash,
    Role,
    AllTenants,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ApiTokenTenant {
    Table,
    TokenId,
    TenantId,
}

#[derive(DeriveIden)]
enum SyncRun {
    Table,
    Id,
    TenantId,
    Status,
    Trigger,
    StartedAt,
    FinishedAt,
    DurationMs,
    Error,
}

#[derive(DeriveIden)]
enum Alert {
    Table,
    Id,
    TenantId,
    Kind,
    Message,
    RunId,
    OpenedAt,
    ResolvedAt,
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
                    .table(Tenant::Table)
                    .col(
                        ColumnDef::new(Tenant::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Tenant::Name).string().not_null())
                    .col(ColumnDef::new(Tenant::Timezone).string_len(64).not_null())
                    .col(ColumnDef::new(Tenant::ErpName).string().not_null())
                    .col(ColumnDef::new(Tenant::ErpVersion).string().not_null())
                    .col(
                        ColumnDef::new(Tenant::IntegrationType)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenant::DeploymentStatus)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Tenant::BusinessRule).text().not_null())
                    .col(ColumnDef::new(Tenant::Active).boolean().not_null())
                    .col(ColumnDef::new(Tenant::Scheduled).boolean().not_null())
                    .col(ColumnDef::new(Tenant::ScheduleDaily).string().null())
                    .col(ColumnDef::new(Tenant::ScheduleCron).string().null())
                    .col(
                        ColumnDef::new(Tenant::MaxWithoutSuccessSecs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenant::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Tenant::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiToken::Table)
                    .col(
                        ColumnDef::new(ApiToken::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ApiToken::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiToken::Role).string_len(8).not_null())
                    .col(ColumnDef::new(ApiToken::AllTenants).boolean().not_null())
                    .col(
                        ColumnDef::new(ApiToken::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiToken::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokenTenant::Table)
                    .col(
                        ColumnDef::new(ApiTokenTenant::TokenId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiTokenTenant::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ApiTokenTenant::TokenId)
                            .col(ApiTokenTenant::TenantId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_token_tenant_token")
                            .from(ApiTokenTenant::Table, ApiTokenTenant::TokenId)
                            .to(ApiToken::Table, ApiToken::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(&mut tenant_fk(
                        ApiTokenTenant::Table,
                        "fk_api_token_tenant_tenant",
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncRun::Table)
                    .col(
                        ColumnDef::new(SyncRun::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SyncRun::TenantId).string_len(64).not_null())
                    .col(ColumnDef::new(SyncRun::Status).string_len(16).not_null())
                    .col(ColumnDef::new(SyncRun::Trigger).string_len(16).not_null())
                    .col(
                        ColumnDef::new(SyncRun::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncRun::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(SyncRun::DurationMs).big_integer().null())
                    .col(ColumnDef::new(SyncRun::Error).text().null())
                    .foreign_key(&mut tenant_fk(SyncRun::Table, "fk_sync_run_tenant"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_run_tenant_started")
                    .table(SyncRun::Table)
                    .col(SyncRun::TenantId)
                    .col(SyncRun::StartedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alert::Table)
                    .col(
                        ColumnDef::new(Alert::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Alert::TenantId).string_len(64).not_null())
                    .col(ColumnDef::new(Alert::Kind).string_len(24).not_null())
                    .col(ColumnDef::new(Alert::Message).text().not_null())
                    .col(ColumnDef::new(Alert::RunId).string_len(36).null())
                    .col(
                        ColumnDef::new(Alert::OpenedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alert::ResolvedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(&mut tenant_fk(Alert::Table, "fk_alert_tenant"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_alert_tenant_resolved")
                    .table(Alert::Table)
                    .col(Alert::TenantId)
                    .col(Alert::ResolvedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Alert::Table.into_iden(),
            SyncRun::Table.into_iden(),
            ApiTokenTenant::Table.into_iden(),
            ApiToken::Table.into_iden(),
            Tenant::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
