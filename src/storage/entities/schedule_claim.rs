//! `schedule_claim`: the last scheduled slot claimed per tenant, and the claim every
//! replica's scheduler makes.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Alias, OnConflict};

/// A tenant's last claimed slot.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "schedule_claim")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub last_slot: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// An insert of a claim moves the tenant's row to a later slot only: the statement
    /// changes no row when this slot (or a later one) is claimed already, so exactly one
    /// caller per slot sees a row affected.
    pub fn only_later() -> OnConflict {
        OnConflict::column(Column::TenantId)
            .update_column(Column::LastSlot)
            .action_and_where(
                Expr::col((Self, Column::LastSlot))
                    .lt(Expr::col((Alias::new("excluded"), Column::LastSlot))),
            )
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, EntityTrait, QueryTrait, Set};

    use super::*;

    #[test]
    fn a_claim_updates_the_row_only_to_a_later_slot_on_both_backends() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let sql = Entity::insert(ActiveModel {
                tenant_id: Set("t".into()),
                last_slot: Set(chrono::DateTime::UNIX_EPOCH),
            })
            .on_conflict(Entity::only_later())
            .build(backend)
            .to_string();
            assert!(sql.ends_with(
                r#"ON CONFLICT ("tenant_id") DO UPDATE SET "last_slot" = "excluded"."last_slot" WHERE "schedule_claim"."last_slot" < "excluded"."last_slot""#
            ), "{sql}");
        }
    }
}
