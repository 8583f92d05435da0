//! The ABC analysis and categorization:
//! - typed revenue columns on staged invoices and orders (company, civil date, amount in
//!   ten-thousandths) with a partial covering index, so a run aggregates revenue in one
//!   index scan; existing rows are backfilled;
//! - per-tenant ABC settings (JSON; missing keys take their defaults);
//! - each company's current categories, their change history, each run's report, and the
//!   classifications held by the shift guard;
//! - the categories on the embedded CRM's companies.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StagedRecord {
    Table,
    CompanyRef,
    IssuedOn,
    Amount,
}

#[derive(DeriveIden)]
enum Tenant {
    Table,
    Id,
    AbcSettings,
}

#[derive(DeriveIden)]
enum CrmCompany {
    Table,
    AbcClass,
    Lifecycle,
    Portfolio,
    Revenue,
}

#[derive(DeriveIden)]
enum CompanyCategory {
    Table,
    TenantId,
    ExternalId,
    Name,
    Document,
    AbcClass,
    Lifecycle,
    Portfolio,
    Revenue,
    FirstPurchase,
    LastPurchase,
    RunId,
    UpdatedAt,
    Fingerprint,
}

#[derive(DeriveIden)]
enum AbcHeld {
    Table,
    RunId,
    TenantId,
    ExternalId,
    Name,
    Document,
    AbcClass,
    Lifecycle,
    Portfolio,
    Revenue,
    FirstPurchase,
    LastPurchase,
}

#[derive(DeriveIden)]
enum CategoryChange {
    Table,
    Id,
    TenantId,
    ExternalId,
    RunId,
    ChangedOn,
    ChangedAt,
    AbcFrom,
    AbcTo,
    LifecycleFrom,
    LifecycleTo,
}

#[derive(DeriveIden)]
enum AbcReport {
    Table,
    RunId,
    TenantId,
    ComputedAt,
    AsOf,
    Basis,
    WindowFrom,
    WindowTo,
    AThreshold,
    BThreshold,
    Summary,
    Curve,
    Companies,
    Changed,
    Base,
    State,
    ResolvedAt,
}

fn tenant_fk(table: impl IntoIden + 'static, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("tenant_id"))
        .to(Tenant::Table, Tenant::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// The category columns shared by `company_category` and `abc_held`.
fn category_columns(t: &mut TableCreateStatement, iden: [DynIden; 9]) {
    let [name, document, class, lifecycle, portfolio, revenue, first, last, external] = iden;
    // The staged company's content hash when its name, document and seller were read:
    // a run re-reads them only when it differs.
    t.col(
        ColumnDef::new(Alias::new("company_hash"))
            .big_integer()
            .null(),
    );
    t.col(ColumnDef::new(external).string_len(200).not_null())
        .col(ColumnDef::new(name).string().not_null())
        .col(ColumnDef::new(document).string_len(32).not_null())
        .col(ColumnDef::new(class).string_len(1).null())
        .col(ColumnDef::new(lifecycle).string_len(16).not_null())
        .col(ColumnDef::new(portfolio).string_len(200).not_null())
        .col(ColumnDef::new(revenue).big_integer().not_null())
        .col(ColumnDef::new(first).string_len(10).null())
        .col(ColumnDef::new(last).string_len(10).null());
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for col in [
            ColumnDef::new(StagedRecord::CompanyRef)
                .string_len(200)
                .null()
                .to_owned(),
            // Days since 1970-01-01: integers compare and aggregate (MIN, MAX) far faster
            // than date texts over millions of rows.
            ColumnDef::new(StagedRecord::IssuedOn)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(StagedRecord::Amount)
                .big_integer()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(StagedRecord::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        // Existing invoices and orders: the normalized fields hold the company id, an ISO
        // date (or date-time; a UTC instant counts on its UTC date here) and a decimal.
        // issued_on is the number of days since 1970-01-01.
        let backfill = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "UPDATE staged_record SET company_ref = fields::jsonb->>'company_id', \
                 issued_on = CAST(substr(fields::jsonb->>'issued_at', 1, 10) AS date) - DATE '1970-01-01', \
                 amount = ROUND((fields::jsonb->>'total')::numeric * 10000)::bigint \
                 WHERE table_name IN ('invoice', 'order') AND NOT deleted \
                 AND fields::jsonb ? 'total' AND fields::jsonb ? 'company_id' \
                 AND fields::jsonb ? 'issued_at' \
                 AND abs((fields::jsonb->>'total')::numeric) < 100000000000000"
            }
            _ => {
                "UPDATE staged_record SET company_ref = json_extract(fields, '$.company_id'), \
                 issued_on = CAST(julianday(substr(json_extract(fields, '$.issued_at'), 1, 10)) - 2440587.5 AS INTEGER), \
                 amount = CAST(ROUND(CAST(json_extract(fields, '$.total') AS REAL) * 10000) AS INTEGER) \
                 WHERE table_name IN ('invoice', 'order') AND NOT deleted \
                 AND json_extract(fields, '$.total') IS NOT NULL \
                 AND json_extract(fields, '$.company_id') IS NOT NULL \
                 AND json_extract(fields, '$.issued_at') IS NOT NULL \
                 AND abs(CAST(json_extract(fields, '$.total') AS REAL)) < 100000000000000"
            }
        };
        db.execute_unprepared(backfill).await?;
        // Revenue per company is one range scan of this index, in company order.
        db.execute_unprepared(
            "CREATE INDEX idx_staged_revenue ON staged_record \
             (tenant_id, table_name, company_ref, issued_on, amount, deleted) \
             WHERE amount IS NOT NULL",
        )
        .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .add_column(
                        ColumnDef::new(Tenant::AbcSettings)
                            .text()
                            .not_null()
                            .default("{}"),
                    )
                    .to_owned(),
            )
            .await?;

        for col in [
            CrmCompany::AbcClass,
            CrmCompany::Lifecycle,
            CrmCompany::Portfolio,
            CrmCompany::Revenue,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CrmCompany::Table)
                        .add_column(ColumnDef::new(col).string_len(64).null())
                        .to_owned(),
                )
                .await?;
        }

        let mut t = Table::create();
        t.table(CompanyCategory::Table).col(
            ColumnDef::new(CompanyCategory::TenantId)
                .string_len(64)
                .not_null(),
        );
        category_columns(
            &mut t,
            [
                CompanyCategory::Name.into_iden(),
                CompanyCategory::Document.into_iden(),
                CompanyCategory::AbcClass.into_iden(),
                CompanyCategory::Lifecycle.into_iden(),
                CompanyCategory::Portfolio.into_iden(),
                CompanyCategory::Revenue.into_iden(),
                CompanyCategory::FirstPurchase.into_iden(),
                CompanyCategory::LastPurchase.into_iden(),
                CompanyCategory::ExternalId.into_iden(),
            ],
        );
        t.col(
            ColumnDef::new(CompanyCategory::RunId)
                .string_len(36)
                .not_null(),
        )
        .col(
            ColumnDef::new(CompanyCategory::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        // A hash of every column above: a run reads only it to tell what changed.
        .col(
            ColumnDef::new(CompanyCategory::Fingerprint)
                .big_integer()
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(CompanyCategory::TenantId)
                .col(CompanyCategory::ExternalId),
        )
        .foreign_key(&mut tenant_fk(
            CompanyCategory::Table,
            "fk_company_category_tenant",
        ));
        manager.create_table(t.to_owned()).await?;

        let mut t = Table::create();
        t.table(AbcHeld::Table)
            .col(ColumnDef::new(AbcHeld::RunId).string_len(36).not_null())
            .col(ColumnDef::new(AbcHeld::TenantId).string_len(64).not_null());
        category_columns(
            &mut t,
            [
                AbcHeld::Name.into_iden(),
                AbcHeld::Document.into_iden(),
                AbcHeld::AbcClass.into_iden(),
                AbcHeld::Lifecycle.into_iden(),
                AbcHeld::Portfolio.into_iden(),
                AbcHeld::Revenue.into_iden(),
                AbcHeld::FirstPurchase.into_iden(),
                AbcHeld::LastPurchase.into_iden(),
                AbcHeld::ExternalId.into_iden(),
            ],
        );
        t.primary_key(Index::create().col(AbcHeld::RunId).col(AbcHeld::ExternalId))
            .foreign_key(&mut tenant_fk(AbcHeld::Table, "fk_abc_held_tenant"));
        manager.create_table(t.to_owned()).await?;

        manager
            .create_table(
                Table::create()
                    .table(CategoryChange::Table)
                    .col(
                        ColumnDef::new(CategoryChange::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CategoryChange::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CategoryChange::ExternalId)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CategoryChange::RunId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CategoryChange::ChangedOn)
                            .string_len(10)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CategoryChange::ChangedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CategoryChange::AbcFrom).string_len(1).null())
                    .col(ColumnDef::new(CategoryChange::AbcTo).string_len(1).null())
                    .col(
                        ColumnDef::new(CategoryChange::LifecycleFrom)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(CategoryChange::LifecycleTo)
                            .string_len(16)
                            .null(),
                    )
                    .foreign_key(&mut tenant_fk(
                        CategoryChange::Table,
                        "fk_category_change_tenant",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_category_change_company")
                    .table(CategoryChange::Table)
                    .col(CategoryChange::TenantId)
                    .col(CategoryChange::ExternalId)
                    .col(CategoryChange::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AbcReport::Table)
                    .col(
                        ColumnDef::new(AbcReport::RunId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AbcReport::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AbcReport::ComputedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AbcReport::AsOf).string_len(10).not_null())
                    .col(ColumnDef::new(AbcReport::Basis).string_len(16).not_null())
                    .col(
                        ColumnDef::new(AbcReport::WindowFrom)
                            .string_len(10)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AbcReport::WindowTo)
                            .string_len(10)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AbcReport::AThreshold)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AbcReport::BThreshold)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AbcReport::Summary).text().not_null())
                    .col(ColumnDef::new(AbcReport::Curve).text().not_null())
                    .col(
                        ColumnDef::new(AbcReport::Companies)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AbcReport::Changed).big_integer().not_null())
                    .col(ColumnDef::new(AbcReport::Base).big_integer().not_null())
                    .col(ColumnDef::new(AbcReport::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(AbcReport::ResolvedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(&mut tenant_fk(AbcReport::Table, "fk_abc_report_tenant"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_abc_report_tenant")
                    .table(AbcReport::Table)
                    .col(AbcReport::TenantId)
                    .col(AbcReport::ComputedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AbcReport::Table.into_iden(),
            CategoryChange::Table.into_iden(),
            AbcHeld::Table.into_iden(),
            CompanyCategory::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_staged_revenue")
            .await?;
        for col in [
            CrmCompany::AbcClass,
            CrmCompany::Lifecycle,
            CrmCompany::Portfolio,
            CrmCompany::Revenue,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CrmCompany::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Tenant::Table)
                    .drop_column(Tenant::AbcSettings)
                    .to_owned(),
            )
            .await?;
        for col in [
            StagedRecord::CompanyRef,
            StagedRecord::IssuedOn,
            StagedRecord::Amount,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(StagedRecord::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
