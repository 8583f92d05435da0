//! `pending_delete` gains who decided each state change and what a discard keeps:
//! `decided_by` (the deciding token's label, else its id; "run" for a run's hold or
//! application; "erp" when the ERP sent the record again), `decided_run_id` (the run that
//! made the change, NULL for a person's decision) and `kept_hash` (set by a discard: the
//! content hash of the version restored from the CRM; while the row is DISCARDED with it
//! set, the record is kept in the CRM and later runs do not hold its deletion again).
//! NULL in every row written before; a discard made before keeps nothing.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PendingDelete {
    Table,
    DecidedBy,
    DecidedRunId,
    KeptHash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            PendingDelete::Table.into_iden(),
            [
                ColumnDef::new(PendingDelete::DecidedBy)
                    .text()
                    .null()
                    .to_owned(),
                ColumnDef::new(PendingDelete::DecidedRunId)
                    .string_len(36)
                    .null()
                    .to_owned(),
                ColumnDef::new(PendingDelete::KeptHash)
                    .big_integer()
                    .null()
                    .to_owned(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_columns(
            manager,
            PendingDelete::Table.into_iden(),
            [
                PendingDelete::DecidedBy,
                PendingDelete::DecidedRunId,
                PendingDelete::KeptHash,
            ],
        )
        .await
    }
}
