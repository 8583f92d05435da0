//! The scheduler reads only the tenants that are due. `tenant_due`: one row per tenant
//! with the instant the scheduler must next look at it (`due_at`, indexed; null: never,
//! until something changes) and the instant its last run is retried (`retry_at`, kept by
//! the run worker, which knows the backoff). Existing tenants are due at their creation,
//! so the first tick after the upgrade looks at each once and stores its real instant.
//! `ix_sync_run_running`: a partial index on the few RUNNING runs, so the sweep for runs
//! whose server died reads them and not the whole run history.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantDue {
    Table,
    TenantId,
    DueAt,
    RetryAt,
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
                    .table(TenantDue::Table)
                    .col(
                        ColumnDef::new(TenantDue::TenantId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TenantDue::DueAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(TenantDue::RetryAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_due_tenant")
                            .from(TenantDue::Table, TenantDue::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tenant_due_due_at")
                    .table(TenantDue::Table)
                    .col(TenantDue::DueAt)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // created_at is stored in the application's own encoding of instants, which the
        // scheduler's `due_at <= now` compares against (SQLite compares text).
        db.execute_unprepared(
            "INSERT INTO tenant_due (tenant_id, due_at, retry_at) \
             SELECT id, created_at, NULL FROM tenant",
        )
        .await?;
        // The same statement on both backends: each knows partial indexes.
        db.execute_unprepared(
            "CREATE INDEX ix_sync_run_running ON sync_run (tenant_id, id) \
             WHERE status = 'RUNNING'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX ix_sync_run_running")
            .await?;
        manager
            .drop_table(Table::drop().table(TenantDue::Table).to_owned())
            .await
    }
}
