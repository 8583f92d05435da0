//! Reconciliation for onboarding: the ERP's own row counts, and per run the ERP count vs
//! staged vs in the CRM for each table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ErpCount {
    Table,
    TenantId,
    TableName,
    Count,
    ReportedAt,
}

#[derive(DeriveIden)]
enum RunTable {
    Table,
    ErpCount,
    StagedCount,
    CrmCount,
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
                    .table(ErpCount::Table)
                    .col(ColumnDef::new(ErpCount::TenantId).string_len(64).not_null())
                    .col(
                        ColumnDef::new(ErpCount::TableName)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ErpCount::Count).big_integer().not_null())
                    .col(
                        ColumnDef::new(ErpCount::ReportedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ErpCount::TenantId)
                            .col(ErpCount::TableName),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_erp_count_tenant")
                            .from(ErpCount::Table, ErpCount::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for col in [
            ColumnDef::new(RunTable::ErpCount)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(RunTable::StagedCount)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(RunTable::CrmCount)
                .big_integer()
                .null()
                .to_owned(),
        ] {
            let mut col = col;
            manager
                .alter_table(
                    Table::alter()
                        .table(RunTable::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            RunTable::ErpCount,
            RunTable::StagedCount,
            RunTable::CrmCount,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(RunTable::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ErpCount::Table).to_owned())
            .await
    }
}
