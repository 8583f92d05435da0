//! `erpsync_instance`: one random id per erpsync database, made when it is created. A View
//! source that holds the same id is erpsync's own database reached by another name (an
//! alias of the host, a link to the file), which a tenant must never read.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ErpsyncInstance {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ErpsyncInstance::Table)
                    .col(
                        ColumnDef::new(ErpsyncInstance::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .to_owned(),
            )
            .await?;
        let random = match manager.get_database_backend() {
            DbBackend::Postgres => "md5(random()::text || clock_timestamp()::text)",
            _ => "lower(hex(randomblob(16)))",
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO erpsync_instance (id) VALUES ({random})"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ErpsyncInstance::Table).to_owned())
            .await
    }
}
