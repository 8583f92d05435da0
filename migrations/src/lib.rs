//! Schema migrations of erpsync's database (SQLite and PostgreSQL alike).
//! Only ever add a migration; never edit one that has shipped: `migrations/shipped.sha256`
//! holds every migration file's hash, and the suite fails when one changes
//! (`tests/it/migrate.rs`); a new migration adds its line there.

#![forbid(unsafe_code)]

pub use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend, Statement, TransactionTrait};

mod m20261128_000001_foundation;
mod m20261128_000002_ingest;
mod m20261128_000003_sync;
mod m20261128_000004_schedule_claim;
mod m20261128_000005_pending_delete;
mod m20261128_000006_reconciliation;
mod m20261128_000007_delete_guard_settings;
mod m20261128_000008_abc;
mod m20261130_000009_view;
mod m20261201_000010_abc_lean;
mod m20261203_000011_instance;
mod m20261203_000012_token_salt;
mod m20261204_000013_run_progress;
mod m20261205_000014_page_key;
mod m20261207_000015_view_grant;
mod m20261207_000016_token_label;
mod m20261207_000017_alert_event;
mod m20261207_000018_crm_count;
mod m20261207_000019_tenant_due;
mod m20261207_000020_retention;
mod m20261207_000021_request_log_partitions;
mod m20261207_000022_field_warnings;
mod m20261207_000023_record_trail;
mod m20261207_000024_table_freshness;
mod m20261207_000025_pending_delete_decisions;
mod m20261207_000026_category_change_why;

/// Adds `columns` to `table`, one ALTER TABLE each (SQLite alters one column at a time).
/// For migrations from 000010 on; shipped ones keep their own loops.
async fn add_columns(
    manager: &SchemaManager<'_>,
    table: DynIden,
    columns: impl IntoIterator<Item = ColumnDef>,
) -> Result<(), DbErr> {
    for mut col in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(&mut col)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops `columns` from `table`, one ALTER TABLE each (see [`add_columns`]).
async fn drop_columns<C: IntoIden>(
    manager: &SchemaManager<'_>,
    table: DynIden,
    columns: impl IntoIterator<Item = C>,
) -> Result<(), DbErr> {
    for col in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_foundation::Migration),
            Box::new(m20261128_000002_ingest::Migration),
            Box::new(m20261128_000003_sync::Migration),
            Box::new(m20261128_000004_schedule_claim::Migration),
            Box::new(m20261128_000005_pending_delete::Migration),
            Box::new(m20261128_000006_reconciliation::Migration),
            Box::new(m20261128_000007_delete_guard_settings::Migration),
            Box::new(m20261128_000008_abc::Migration),
            Box::new(m20261130_000009_view::Migration),
            Box::new(m20261201_000010_abc_lean::Migration),
            Box::new(m20261203_000011_instance::Migration),
            Box::new(m20261203_000012_token_salt::Migration),
            Box::new(m20261204_000013_run_progress::Migration),
            Box::new(m20261205_000014_page_key::Migration),
            Box::new(m20261207_000015_view_grant::Migration),
            Box::new(m20261207_000016_token_label::Migration),
            Box::new(m20261207_000017_alert_event::Migration),
            Box::new(m20261207_000018_crm_count::Migration),
            Box::new(m20261207_000019_tenant_due::Migration),
            Box::new(m20261207_000020_retention::Migration),
            Box::new(m20261207_000021_request_log_partitions::Migration),
            Box::new(m20261207_000022_field_warnings::Migration),
            Box::new(m20261207_000023_record_trail::Migration),
            Box::new(m20261207_000024_table_freshness::Migration),
            Box::new(m20261207_000025_pending_delete_decisions::Migration),
            Box::new(m20261207_000026_category_change_why::Migration),
        ]
    }
}

/// Applies the pending migrations (all of them, or the next `steps`) in one transaction
/// on one connection, after any other migrator of the same database has finished.
///
/// `Migrator::up` on a pool sends each statement to whichever connection is free; on
/// SQLite a connection that read the schema before an earlier migration prepares an
/// `ALTER TABLE` against its stale copy (ALTER checks columns while it is prepared, before
/// SQLite notices the schema changed) and fails with "no such column". One transaction
/// also means a failed migration leaves nothing half done. Two servers starting on one
/// database wait for each other: SQLite through its write lock (the first statement
/// writes), PostgreSQL through an advisory lock held until the transaction ends.
pub async fn up(db: &DatabaseConnection, steps: Option<u32>) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"),
        ))
        .await?;
    }
    Migrator::up(&txn, steps).await?;
    txn.commit().await
}

/// The PostgreSQL advisory lock key migrations hold: "erpsync\0" as a big-endian integer.
const MIGRATION_LOCK: i64 = 0x6572_7073_796e_6300;
