//! Fewer rows per ABC run:
//! - `purchase_span`: each company's first and last purchase (positive total) per revenue
//!   table, kept by staging as invoices and orders arrive, change and are deleted, so a
//!   run sums the window's revenue and no longer takes MIN/MAX over every invoice;
//!   backfilled from the staged rows;
//! - `company_category` remembers the run that first categorized the company
//!   (`categorized_*`): that first entry of the company's history is no longer written
//!   as a `category_change` row of its own (rows already written stay; theirs is NULL);
//! - the embedded CRM reads its companies' categories from `company_category` instead of
//!   keeping a copy: `crm_company`'s category columns go;
//! - PostgreSQL: `company_category` and `category_change` lose their per-row tenant
//!   foreign key (tenants are never deleted; the check cost a third of writing a row).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PurchaseSpan {
    Table,
    TenantId,
    TableName,
    CompanyRef,
    FirstOn,
    LastOn,
}

#[derive(DeriveIden)]
enum CompanyCategory {
    Table,
    CategorizedRunId,
    CategorizedOn,
    CategorizedAt,
}

#[derive(DeriveIden)]
enum CrmCompany {
    Table,
    AbcClass,
    Lifecycle,
    Portfolio,
    Revenue,
}

/// The category columns the embedded CRM no longer keeps.
const CRM_CATEGORIES: [CrmCompany; 4] = [
    CrmCompany::AbcClass,
    CrmCompany::Lifecycle,
    CrmCompany::Portfolio,
    CrmCompany::Revenue,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PurchaseSpan::Table)
                    .col(
                        ColumnDef::new(PurchaseSpan::TenantId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurchaseSpan::TableName)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PurchaseSpan::CompanyRef)
                            .string_len(200)
                            .not_null(),
                    )
                    // Days since 1970-01-01, as staged_record.issued_on.
                    .col(ColumnDef::new(PurchaseSpan::FirstOn).integer().not_null())
                    .col(ColumnDef::new(PurchaseSpan::LastOn).integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(PurchaseSpan::TenantId)
                            .col(PurchaseSpan::TableName)
                            .col(PurchaseSpan::CompanyRef),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO purchase_span (tenant_id, table_name, company_ref, first_on, last_on) \
             SELECT tenant_id, table_name, company_ref, MIN(issued_on), MAX(issued_on) \
             FROM staged_record WHERE amount > 0 AND NOT deleted AND company_ref IS NOT NULL \
             AND issued_on IS NOT NULL GROUP BY tenant_id, table_name, company_ref",
        )
        .await?;
        // Tombstones kept the revenue columns of the fields they carried: they are no
        // revenue (the run's sum now reads amount alone).
        db.execute_unprepared(
            "UPDATE staged_record SET company_ref = NULL, issued_on = NULL, amount = NULL \
             WHERE deleted AND amount IS NOT NULL",
        )
        .await?;

        add_columns(
            manager,
            CompanyCategory::Table.into_iden(),
            [
                ColumnDef::new(CompanyCategory::CategorizedRunId)
                    .string_len(36)
                    .null()
                    .to_owned(),
                ColumnDef::new(CompanyCategory::CategorizedOn)
                    .string_len(10)
                    .null()
                    .to_owned(),
                ColumnDef::new(CompanyCategory::CategorizedAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ],
        )
        .await?;
        drop_columns(manager, CrmCompany::Table.into_iden(), CRM_CATEGORIES).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE company_category DROP CONSTRAINT fk_company_category_tenant; \
                 ALTER TABLE category_change DROP CONSTRAINT fk_category_change_tenant",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE company_category ADD CONSTRAINT fk_company_category_tenant \
                 FOREIGN KEY (tenant_id) REFERENCES tenant (id) ON DELETE CASCADE; \
                 ALTER TABLE category_change ADD CONSTRAINT fk_category_change_tenant \
                 FOREIGN KEY (tenant_id) REFERENCES tenant (id) ON DELETE CASCADE",
            )
            .await?;
        }
        add_columns(
            manager,
            CrmCompany::Table.into_iden(),
            CRM_CATEGORIES.map(|col| ColumnDef::new(col).string_len(64).null().to_owned()),
        )
        .await?;
        drop_columns(
            manager,
            CompanyCategory::Table.into_iden(),
            [
                CompanyCategory::CategorizedRunId,
                CompanyCategory::CategorizedOn,
                CompanyCategory::CategorizedAt,
            ],
        )
        .await?;
        manager
            .drop_table(Table::drop().table(PurchaseSpan::Table).to_owned())
            .await
    }
}
