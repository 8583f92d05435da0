//! Per-tenant delete-guard thresholds: hold a run's deletions when they exceed this
//! percentage of the table in the CRM and at least this many rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenant {
    Table,
    DeleteGuardPercent,
    DeleteGuardMinRows,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .add_column(
                        ColumnDef::new(Tenant::DeleteGuardPercent)
                            .double()
                            .not_null()
                            .default(5.0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .add_column(
                        ColumnDef::new(Tenant::DeleteGuardMinRows)
                            .big_integer()
                            .not_null()
                            .default(50),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Tenant::DeleteGuardPercent, Tenant::DeleteGuardMinRows] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tenant::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
