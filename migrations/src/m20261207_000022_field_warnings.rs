//! Unknown fields reported, not dropped: `request_log.warnings` counts the unknown fields
//! a push's answer warned about (0 for the rows already stored, which were never
//! warned), and `tenant.strict_fields` makes a tenant strict (a record with a field its
//! table does not know is rejected; off by default, as before).
//!
//! On PostgreSQL `request_log` is partitioned by day (migration 000021): the column is
//! added to the parent, which adds it to every partition, the default one included.

use sea_orm_migration::prelude::*;

use crate::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RequestLog {
    Table,
    Warnings,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    StrictFields,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            RequestLog::Table.into_iden(),
            [ColumnDef::new(RequestLog::Warnings)
                .integer()
                .not_null()
                .default(0)
                .to_owned()],
        )
        .await?;
        add_columns(
            manager,
            Tenant::Table.into_iden(),
            [ColumnDef::new(Tenant::StrictFields)
                .boolean()
                .not_null()
                .default(false)
                .to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(manager, Tenant::Table.into_iden(), [Tenant::StrictFields]).await?;
        drop_columns(
            manager,
            RequestLog::Table.into_iden(),
            [RequestLog::Warnings],
        )
        .await
    }
}
