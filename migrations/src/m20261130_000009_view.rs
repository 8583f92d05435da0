//! The View integration type: each tenant's View configuration (connection URL and the
//! views read per ERP table, as JSON) and, per table read incrementally, the watermark
//! and key of the last row read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ViewConfig {
    Table,
    TenantId,
    Config,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ViewWatermark {
    Table,
    TenantId,
    TableName,
    Fingerprint,
    Watermark,
    LastKey,
    UpdatedAt,
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
                    .table(ViewConfig::Table)
                    .col(
                        ColumnDef::new(ViewConfig::TenantId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ViewConfig::Config).text().not_null())
                    .col(
                        ColumnDef::new(ViewConfig::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_view_config_tenant")
                            .from(ViewConfig::Table, ViewConfig::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ViewWatermark::Table)
                    .col(
                        ColumnDef::new(ViewWatermark::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ViewWatermark::TableName)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ViewWatermark::Fingerprint).text().not_null())
                    .col(ColumnDef::new(ViewWatermark::Watermark).text().not_null())
                    .col(ColumnDef::new(ViewWatermark::LastKey).text().not_null())
                    .col(
                        ColumnDef::new(ViewWatermark::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ViewWatermark::TenantId)
                            .col(ViewWatermark::TableName),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_view_watermark_tenant")
                            .from(ViewWatermark::Table, ViewWatermark::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ViewWatermark::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ViewConfig::Table).to_owned())
            .await
    }
}
