//! `sync_run` gains `progress`: while a run is RUNNING, the stages it finished and the one
//! under way with its records done of its total (JSON), so GetRun shows it from any
//! replica; cleared when the run records its end.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncRun {
    Table,
    Progress,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            SyncRun::Table.into_iden(),
            [ColumnDef::new(SyncRun::Progress).text().null().to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(manager, SyncRun::Table.into_iden(), [SyncRun::Progress]).await
    }
}
