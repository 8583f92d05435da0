//! `category_change` gains what each change was computed from: `revenue` (the company's
//! revenue in the window, in ten-thousandths), `revenue_rank` (its rank among the
//! tenant's companies by revenue, 1 = highest; NULL without revenue) and `share_before`
//! (the cumulative share of revenue of the companies ranked before it, in hundredths of
//! a percent: what the A/B/C cut compares; NULL without revenue). NULL in every row
//! written before.

use sea_orm_migration::prelude::*;

use crate::add_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CategoryChange {
    Table,
    Revenue,
    RevenueRank,
    ShareBefore,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            CategoryChange::Table.into_iden(),
            [
                ColumnDef::new(CategoryChange::Revenue)
                    .big_integer()
                    .null()
                    .to_owned(),
                ColumnDef::new(CategoryChange::RevenueRank)
                    .big_integer()
                    .null()
                    .to_owned(),
                ColumnDef::new(CategoryChange::ShareBefore)
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
            CategoryChange::Table.into_iden(),
            [
                CategoryChange::Revenue,
                CategoryChange::RevenueRank,
                CategoryChange::ShareBefore,
            ],
        )
        .await
    }
}
