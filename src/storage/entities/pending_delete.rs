//! `pending_delete`: deletions held by the delete guard, one row per record, and the
//! queries on it every caller shares.

use sea_orm::entity::prelude::*;
use sea_orm::Select;

use crate::domain::crm::DeleteState;
use crate::domain::tables::Table;

/// A held deletion row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_delete")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub external_id: String,
    pub name: String,
    pub document: String,
    pub detected_run_id: String,
    pub detected_at: DateTimeUtc,
    pub state: String,
    pub resolved_at: Option<DateTimeUtc>,
    /// Who made the last state change: a token's label (else its id), "run" or "erp";
    /// None in rows written before it was recorded.
    pub decided_by: Option<String>,
    /// The run that made the last state change; None for a person's decision.
    pub decided_run_id: Option<String>,
    /// Set by a discard: the content hash of the version restored from the CRM. While the
    /// row is DISCARDED with it set, the record is kept in the CRM; cleared when the ERP
    /// sends the record again or the deletion is reopened.
    pub kept_hash: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// The deletions of one tenant's table.
    pub fn of_table(tenant: &str, table: Table) -> Select<Self> {
        Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::TableName.eq(table.as_str()))
    }

    /// The deletions of one tenant's table in one of `states`.
    pub fn in_states(tenant: &str, table: Table, states: &[DeleteState]) -> Select<Self> {
        Self::of_table(tenant, table).filter(Column::State.is_in(states.iter().map(|s| s.as_str())))
    }

    /// The deletions of one tenant's table kept in the CRM by a discard.
    pub fn kept(tenant: &str, table: Table) -> Select<Self> {
        Self::in_states(tenant, table, &[DeleteState::Discarded])
            .filter(Column::KeptHash.is_not_null())
    }
}
