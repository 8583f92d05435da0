//! `api_token` gains `label`: what the issuer called the token (free text, at most 200
//! characters, checked before it is stored), so a listing says which is which. NULL for
//! tokens issued without one, and for every token issued before.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiToken {
    Table,
    Label,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            ApiToken::Table.into_iden(),
            [ColumnDef::new(ApiToken::Label).text().null().to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(manager, ApiToken::Table.into_iden(), [ApiToken::Label]).await
    }
}
