//! The CRM's count in a run's reconciliation says where it came from and when it was
//! read: `run_table` gains `crm_counted_at` and `crm_count_source` (`HOST_COUNT`: the
//! host's CountRecords, `HOST_TOTAL`: its last SinkResponse.total, `DELIVERED`: what
//! erpsync delivered, `EMBEDDED`: the embedded sink's table; null for rows stored before
//! and for tables the CRM does not hold). `tenant_sink`: the CrmSink a tenant delivers to
//! instead of the server's `--crm-sink`, its secret sealed with the operator's key.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RunTable {
    Table,
    CrmCountedAt,
    CrmCountSource,
}

#[derive(DeriveIden)]
enum TenantSink {
    Table,
    TenantId,
    Address,
    SealedSecret,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            RunTable::Table.into_iden(),
            [
                ColumnDef::new(RunTable::CrmCountedAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
                ColumnDef::new(RunTable::CrmCountSource)
                    .string_len(16)
                    .null()
                    .to_owned(),
            ],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(TenantSink::Table)
                    .col(
                        ColumnDef::new(TenantSink::TenantId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TenantSink::Address).text().not_null())
                    .col(ColumnDef::new(TenantSink::SealedSecret).text().null())
                    .col(
                        ColumnDef::new(TenantSink::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_sink_tenant")
                            .from(TenantSink::Table, TenantSink::TenantId)
                            .to(Tenant::Table, Tenant::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TenantSink::Table).to_owned())
            .await?;
        crate::drop_columns(
            manager,
            RunTable::Table.into_iden(),
            [RunTable::CrmCountedAt, RunTable::CrmCountSource],
        )
        .await
    }
}
