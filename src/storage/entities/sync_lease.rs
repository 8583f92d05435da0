//! `sync_lease`: the per-tenant run lease, at most one row per tenant, and the queries on
//! it every caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{LockType, OnConflict};
use sea_orm::{Condition, QuerySelect, QueryTrait, Select};

use super::sync_run;

/// A lease row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_lease")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    pub holder: String,
    pub run_id: String,
    pub expires_at: DateTimeUtc,
}

/// The run holding the lease (no foreign key: a lease may outlive its run's row).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "sync_run::Entity",
        from = "Column::RunId",
        to = "sync_run::Column::Id"
    )]
    SyncRun,
}

impl Related<sync_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SyncRun.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The tenant's lease as (run id, expiry, that run's status if it has a row), its row
    /// locked until the transaction ends on PostgreSQL (SQLite has one writer).
    pub fn of_tenant_locked(tenant: &str) -> Select<Self> {
        let mut q = Self::find()
            .select_only()
            .columns([Column::RunId, Column::ExpiresAt])
            .column(sync_run::Column::Status)
            .left_join(sync_run::Entity)
            .filter(Column::TenantId.eq(tenant));
        // Only the lease's row: PostgreSQL refuses to lock the nullable side of a join.
        QueryTrait::query(&mut q).lock_with_tables(LockType::Update, [Self]);
        q
    }

    /// The lease of one tenant's run.
    pub fn of_run(tenant: &str, run_id: &str) -> Condition {
        Condition::all()
            .add(Column::TenantId.eq(tenant))
            .add(Column::RunId.eq(run_id))
    }

    /// A new lease loses to a row inserted meanwhile (by another replica).
    pub fn keep_existing() -> OnConflict {
        OnConflict::column(Column::TenantId).do_nothing().to_owned()
    }

    /// A new lease replaces the tenant's earlier one.
    pub fn replace_earlier() -> OnConflict {
        OnConflict::column(Column::TenantId)
            .update_columns([Column::Holder, Column::RunId, Column::ExpiresAt])
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, EntityTrait, QueryTrait, Set};

    use super::*;

    #[test]
    fn the_lease_read_locks_only_the_lease_row_on_postgres() {
        let sql = |b| Entity::of_tenant_locked("t").build(b).to_string();
        assert!(sql(DbBackend::Postgres).ends_with(r#"FOR UPDATE OF "sync_lease""#));
        assert!(sql(DbBackend::Postgres).contains(r#"LEFT JOIN "sync_run""#));
        assert!(!sql(DbBackend::Sqlite).contains("FOR UPDATE"));
    }

    #[test]
    fn a_new_lease_replaces_the_tenants_row() {
        let am = ActiveModel {
            tenant_id: Set("t".into()),
            holder: Set("h".into()),
            run_id: Set("r".into()),
            expires_at: Set(chrono::DateTime::UNIX_EPOCH),
        };
        let sql = Entity::insert(am)
            .on_conflict(Entity::replace_earlier())
            .build(DbBackend::Sqlite)
            .to_string();
        assert!(sql.ends_with(
            r#"ON CONFLICT ("tenant_id") DO UPDATE SET "holder" = "excluded"."holder", "run_id" = "excluded"."run_id", "expires_at" = "excluded"."expires_at""#
        ), "{sql}");
    }
}
