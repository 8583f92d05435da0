//! `api_token` gains a per-token salt (tokens issued from now on are stored as
//! SHA-256(salt ‖ token); older rows keep their unsalted hash and a NULL salt), an optional
//! expiry, and the last time the token was used.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiToken {
    Table,
    TokenSalt,
    ExpiresAt,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            ApiToken::Table.into_iden(),
            [
                ColumnDef::new(ApiToken::TokenSalt)
                    .string_len(32)
                    .null()
                    .to_owned(),
                ColumnDef::new(ApiToken::ExpiresAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
                ColumnDef::new(ApiToken::LastUsedAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(
            manager,
            ApiToken::Table.into_iden(),
            [
                ApiToken::TokenSalt,
                ApiToken::ExpiresAt,
                ApiToken::LastUsedAt,
            ],
        )
        .await
    }
}
