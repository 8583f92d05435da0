//! Schema migrations of erpsync's database (SQLite and PostgreSQL alike).
//! Only ever add a migration; never edit one that has shipped.

pub use sea_orm_migration::prelude::*;

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
        ]
    }
}
