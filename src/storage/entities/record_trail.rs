//! `record_trail`: each record's events (received in a request, held, delivered, deleted
//! by a run), written in bulk (`storage::bulk::trail`), read newest first by record.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Select};

/// One event of one record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "record_trail")]
pub struct Model {
    /// Increasing in the order the events were written.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: String,
    pub table_name: String,
    #[sea_orm(column_type = "Text")]
    pub external_id: String,
    /// When the request arrived, or when the run did it.
    pub at: DateTimeUtc,
    /// accepted, rejected, held, delivered, deleted (`domain::trail::TrailKind`).
    pub kind: String,
    /// The request that carried the record (request events).
    pub request_id: Option<String>,
    /// The record's index in that request's batch.
    pub position: Option<i32>,
    /// The run that held, delivered or deleted it (run events).
    pub run_id: Option<String>,
    /// The run's stage.
    pub stage: Option<String>,
    /// The field a rejection names.
    #[sea_orm(column_type = "Text", nullable)]
    pub field: Option<String>,
    /// A rejection's reason, or the sink's answer.
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
    /// The delivered batch's idempotency key.
    #[sea_orm(column_type = "Text", nullable)]
    pub idempotency_key: Option<String>,
    /// The version's content hash (accepted and delivered versions).
    pub content_hash: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Entity {
    /// One record's events with an id below `before` (all when None), newest first.
    pub fn of_record(
        tenant: &str,
        table: &str,
        external_id: &str,
        before: Option<i64>,
    ) -> Select<Self> {
        let q = Self::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(Column::TableName.eq(table))
            .filter(Column::ExternalId.eq(external_id));
        match before {
            Some(id) => q.filter(Column::Id.lt(id)),
            None => q,
        }
        .order_by_desc(Column::Id)
    }
}
