//! The sync worker: what was delivered to the CRM, the run log (per-table counts, stage
//! durations, events with a cursor), the per-tenant run lease, and the embedded CRM.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StagedRecord {
    Table,
    SyncedHash,
}

#[derive(DeriveIden)]
enum SyncEvent {
    Table,
    Cursor,
    TenantId,
    RunId,
    At,
    Level,
    Stage,
    TableName,
    Message,
    Fields,
}

#[derive(DeriveIden)]
enum RunTable {
    Table,
    RunId,
    TableName,
    Received,
    Inserted,
    Updated,
    Deleted,
    Held,
    Rejected,
}

#[derive(DeriveIden)]
enum RunStage {
    Table,
    RunId,
    Position,
    Stage,
    DurationMs,
    Outcome,
}

#[derive(DeriveIden)]
enum SyncLease {
    Table,
    TenantId,
    Holder,
    RunId,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum CrmCompany {
    Table,
    TenantId,
    ExternalId,
    Name,
    Document,
    SellerId,
    City,
    State,
    Email,
    Phone,
    Fields,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CrmContact {
    Table,
    TenantId,
    ExternalId,
    Name,
    Document,
    CompanyId,
    Email,
    Phone,
    Fields,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SyncRun {
    Table,
    Id,
}

fn tenant_fk(table: impl IntoIden + 'static, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("tenant_id"))
        .to(Tenant::Table, Tenant::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn run_fk(table: impl IntoIden + 'static, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("run_id"))
        .to(SyncRun::Table, SyncRun::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The content hash last delivered to the CRM: a staged record whose hash differs
        // is what the next run collects.
        manager
            .alter_table(
                Table::alter()
                    .table(StagedRecord::Table)
                    .add_column(
                        ColumnDef::new(StagedRecord::SyncedHash)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncEvent::Table)
                    .col(
                        ColumnDef::new(SyncEvent::Cursor)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncEvent::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncEvent::RunId).string_len(36).null())
                    .col(
                        ColumnDef::new(SyncEvent::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncEvent::Level).string_len(8).not_null())
                    .col(ColumnDef::new(SyncEvent::Stage).string_len(16).not_null())
                    .col(ColumnDef::new(SyncEvent::TableName).string_len(32).null())
                    .col(ColumnDef::new(SyncEvent::Message).text().not_null())
                    .col(ColumnDef::new(SyncEvent::Fields).text().not_null())
                    .foreign_key(&mut tenant_fk(SyncEvent::Table, "fk_sync_event_tenant"))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_sync_event_tenant_cursor", SyncEvent::TenantId),
            ("ix_sync_event_run_cursor", SyncEvent::RunId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(SyncEvent::Table)
                        .col(col)
                        .col(SyncEvent::Cursor)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RunTable::Table)
                    .col(ColumnDef::new(RunTable::RunId).string_len(36).not_null())
                    .col(
                        ColumnDef::new(RunTable::TableName)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(RunTable::Received).big_integer().not_null())
                    .col(ColumnDef::new(RunTable::Inserted).big_integer().not_null())
                    .col(ColumnDef::new(RunTable::Updated).big_integer().not_null())
                    .col(ColumnDef::new(RunTable::Deleted).big_integer().not_null())
                    .col(ColumnDef::new(RunTable::Held).big_integer().not_null())
                    .col(ColumnDef::new(RunTable::Rejected).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(RunTable::RunId)
                            .col(RunTable::TableName),
                    )
                    .foreign_key(&mut run_fk(RunTable::Table, "fk_run_table_run"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RunStage::Table)
                    .col(ColumnDef::new(RunStage::RunId).string_len(36).not_null())
                    .col(ColumnDef::new(RunStage::Position).integer().not_null())
                    .col(ColumnDef::new(RunStage::Stage).string_len(16).not_null())
                    .col(
                        ColumnDef::new(RunStage::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RunStage::Outcome).text().not_null())
                    .primary_key(Index::create().col(RunStage::RunId).col(RunStage::Position))
                    .foreign_key(&mut run_fk(RunStage::Table, "fk_run_stage_run"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncLease::Table)
                    .col(
                        ColumnDef::new(SyncLease::TenantId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SyncLease::Holder).string_len(64).not_null())
                    .col(ColumnDef::new(SyncLease::RunId).string_len(36).not_null())
                    .col(
                        ColumnDef::new(SyncLease::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(&mut tenant_fk(SyncLease::Table, "fk_sync_lease_tenant"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CrmCompany::Table)
                    .col(
                        ColumnDef::new(CrmCompany::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CrmCompany::ExternalId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(CrmCompany::Name).string().not_null())
                    .col(
                        ColumnDef::new(CrmCompany::Document)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CrmCompany::SellerId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(CrmCompany::City).string().not_null())
                    .col(ColumnDef::new(CrmCompany::State).string().not_null())
                    .col(ColumnDef::new(CrmCompany::Email).string().not_null())
                    .col(ColumnDef::new(CrmCompany::Phone).string().not_null())
                    .col(ColumnDef::new(CrmCompany::Fields).text().not_null())
                    .col(
                        ColumnDef::new(CrmCompany::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(CrmCompany::TenantId)
                            .col(CrmCompany::ExternalId),
                    )
                    .foreign_key(&mut tenant_fk(CrmCompany::Table, "fk_crm_company_tenant"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CrmContact::Table)
                    .col(
                        ColumnDef::new(CrmContact::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CrmContact::ExternalId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(CrmContact::Name).string().not_null())
                    .col(
                        ColumnDef::new(CrmContact::Document)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CrmContact::CompanyId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(CrmContact::Email).string().not_null())
                    .col(ColumnDef::new(CrmContact::Phone).string().not_null())
                    .col(ColumnDef::new(CrmContact::Fields).text().not_null())
                    .col(
                        ColumnDef::new(CrmContact::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(CrmContact::TenantId)
                            .col(CrmContact::ExternalId),
                    )
                    .foreign_key(&mut tenant_fk(CrmContact::Table, "fk_crm_contact_tenant"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CrmContact::Table.into_iden(),
            CrmCompany::Table.into_iden(),
            SyncLease::Table.into_iden(),
            RunStage::Table.into_iden(),
            RunTable::Table.into_iden(),
            SyncEvent::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(StagedRecord::Table)
                    .drop_column(StagedRecord::SyncedHash)
                    .to_owned(),
            )
            .await
    }
}
