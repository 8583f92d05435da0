//! View sources bound to tenants. `view_grant`: the sources (a database on a server, or a
//! SQLite file) the operator allowed one tenant to name; `view_config` gains `named_by`:
//! whether the stored URL was named by the tenant (checked against its grants at every
//! use) or by the operator (`erpsync tenant set-view`, exempt). Configurations stored
//! before count as the tenant's.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ViewGrant {
    Table,
    TenantId,
    Source,
    Kind,
    Host,
    Port,
    DatabaseName,
    Path,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ViewConfig {
    Table,
    NamedBy,
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
                    .table(ViewGrant::Table)
                    .col(
                        ColumnDef::new(ViewGrant::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ViewGrant::Source).text().not_null())
                    .col(ColumnDef::new(ViewGrant::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(ViewGrant::Host).text().not_null())
                    .col(ColumnDef::new(ViewGrant::Port).integer().not_null())
                    .col(ColumnDef::new(ViewGrant::DatabaseName).text().not_null())
                    .col(ColumnDef::new(ViewGrant::Path).text().not_null())
                    .col(
                        ColumnDef::new(ViewGrant::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ViewGrant::TenantId)
                            .col(ViewGrant::Source),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_view_grant_tenant")
                            .from(ViewGrant::Table, ViewGrant::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        add_columns(
            manager,
            ViewConfig::Table.into_iden(),
            [ColumnDef::new(ViewConfig::NamedBy)
                .string_len(16)
                .not_null()
                .default("tenant")
                .to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(
            manager,
            ViewConfig::Table.into_iden(),
            [ViewConfig::NamedBy],
        )
        .await?;
        manager
            .drop_table(Table::drop().table(ViewGrant::Table).to_owned())
            .await
    }
}
