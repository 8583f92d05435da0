//! `erpsync_instance` gains `page_key`: the key page tokens are signed with (HMAC-SHA256),
//! 64 hex digits of the operating system's randomness. Every server on the database reads
//! the same key, so a token one replica issued pages on another and across restarts. The
//! column starts empty; the first server that needs the key fills it (see
//! `storage::instance`), so this migration needs no randomness of its own.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ErpsyncInstance {
    Table,
    PageKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            ErpsyncInstance::Table.into_iden(),
            [ColumnDef::new(ErpsyncInstance::PageKey)
                .string_len(64)
                .null()
                .to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(
            manager,
            ErpsyncInstance::Table.into_iden(),
            [ErpsyncInstance::PageKey],
        )
        .await
    }
}
