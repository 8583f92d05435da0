//! Records' trails (`record_trail`): written in bulk by ingestion (each record of a
//! staged batch, accepted or rejected) and by a run's delete guard and push stages
//! (held, delivered, deleted); read one record at a time, newest first, through the
//! (tenant, table, external id, id) index with the requests' transports and the
//! records' slices of their logged bodies; purged with the request log's and the run
//! history's windows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::bulk;
use super::entities::{crm_company, crm_contact, record_trail, request_log, staged_record};
use super::request_body::decode_body;
use super::Db;
use crate::domain::batch::Rejection;
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::domain::trail::{
    record_slice, CrmNow, NewTrail, StagedNow, TrailEvent, TrailKind, TrailSource,
};
use crate::error::Result;

/// A record a request's batch staged (or found staged as sent): its index in the batch,
/// external id and content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRecord {
    /// Its index in the batch.
    pub index: u32,
    /// Its id in the ERP.
    pub external_id: String,
    /// The staged version's content hash.
    pub content_hash: i64,
}

/// Writes the trail of a request's batch in its transaction `txn`: each accepted record,
/// each rejected one that names an external id (a record without one cannot be traced).
pub async fn received(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: &str,
    request_id: &str,
    at: DateTime<Utc>,
    accepted: &[AcceptedRecord],
    rejected: &[Rejection],
) -> Result<()> {
    let mut events = Vec::with_capacity(accepted.len() + rejected.len());
    events.extend(accepted.iter().map(|a| NewTrail {
        position: Some(a.index),
        content_hash: Some(a.content_hash),
        ..NewTrail::new(&a.external_id, TrailKind::Accepted)
    }));
    events.extend(
        rejected
            .iter()
            .filter(|r| !r.external_id.is_empty())
            .map(|r| NewTrail {
                position: Some(r.index),
                field: Some(&r.field),
                detail: Some(&r.reason),
                ..NewTrail::new(&r.external_id, TrailKind::Rejected)
            }),
    );
    if events.is_empty() {
        return Ok(());
    }
    bulk::trail::insert(
        txn,
        tenant,
        table,
        TrailSource::Request(request_id),
        at,
        &events,
    )
    .await
}

/// Writes events a run's `stage` made on the tenant's `table` (held, delivered, deleted),
/// in a transaction of their own.
pub async fn by_run(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    (run_id, stage): (&str, &str),
    at: DateTime<Utc>,
    events: &[NewTrail<'_>],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let txn = db.begin_write().await?;
    let source = TrailSource::Run { run_id, stage };
    bulk::trail::insert(&txn, tenant, table.as_str(), source, at, events).await?;
    txn.commit().await
}

/// Up to `limit` of a record's events below the position `before` (from the newest when
/// None), newest first, each request event with its request's transport and the record's
/// slice of its logged body (while the request is still logged).
pub async fn page(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    external_id: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<TrailEvent>> {
    let rows = record_trail::Entity::of_record(tenant.as_str(), table, external_id, before)
        .limit(limit)
        .all(db.conn())
        .await?;
    let requests = logged_requests(db, tenant, &rows).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let kind = TrailKind::parse(&r.kind)?;
            let position = r.position.and_then(|p| u32::try_from(p).ok());
            let logged = r.request_id.as_deref().and_then(|id| requests.get(id));
            let record = match (logged, position) {
                (Some(l), Some(p)) => record_slice(&l.body, &l.response, p),
                _ => None,
            };
            Some(TrailEvent {
                id: r.id,
                at: r.at,
                kind,
                transport: logged.map(|l| l.transport.clone()),
                request_id: r.request_id,
                position,
                record,
                run_id: r.run_id,
                stage: r.stage,
                field: r.field,
                detail: r.detail,
                idempotency_key: r.idempotency_key,
                content_hash: r.content_hash,
            })
        })
        .collect())
}

/// A logged request as a trace shows it.
struct Logged {
    transport: String,
    body: String,
    response: String,
}

/// The requests of `rows` still in the request log, by id: each looked up by id and
/// arrival (PostgreSQL then reads one day's partition).
async fn logged_requests(
    db: &Db,
    tenant: &TenantId,
    rows: &[record_trail::Model],
) -> Result<HashMap<String, Logged>> {
    use request_log::Column;
    let mut out = HashMap::new();
    for r in rows {
        let Some(id) = r.request_id.as_deref() else {
            continue;
        };
        if out.contains_key(id) {
            continue;
        }
        let mut q = request_log::Entity::find()
            .filter(Column::Id.eq(id))
            .filter(Column::TenantId.eq(tenant.as_str()));
        if db.backend() == sea_orm::DbBackend::Postgres {
            // The arrival names the day's partition; SQLite finds the id by its key.
            q = q.filter(Column::ReceivedAt.eq(r.at));
        }
        let found: Option<(String, Vec<u8>, bool, String)> = q
            .select_only()
            .columns([
                Column::Transport,
                Column::RequestBody,
                Column::RequestBodyLz4,
                Column::ResponseBody,
            ])
            .into_tuple()
            .one(db.conn())
            .await?;
        if let Some((transport, bytes, lz4, response)) = found {
            // A body that does not decode is shown without its slice, not as an error.
            let body = decode_body(&bytes, lz4).unwrap_or_default();
            out.insert(
                id.to_owned(),
                Logged {
                    transport,
                    body,
                    response,
                },
            );
        }
    }
    Ok(out)
}

/// Whether the tenant's record has any trail or is staged: a trace of one that has
/// neither is NOT_FOUND.
pub async fn known(db: &Db, tenant: &TenantId, table: &str, external_id: &str) -> Result<bool> {
    let trail = record_trail::Entity::of_record(tenant.as_str(), table, external_id, None)
        .select_only()
        .column(record_trail::Column::Id)
        .into_tuple::<i64>()
        .one(db.conn())
        .await?;
    Ok(trail.is_some() || staged(db, tenant, table, external_id).await?.is_some())
}

/// The record as staged now.
pub async fn staged(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    external_id: &str,
) -> Result<Option<StagedNow>> {
    use staged_record::Column;
    let row = staged_record::Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::TableName.eq(table))
        .filter(Column::ExternalId.eq(external_id))
        .one(db.conn())
        .await?;
    Ok(row.map(|r| StagedNow {
        fields: object(&r.fields),
        content_hash: r.content_hash,
        deleted: r.deleted,
        updated_at: r.updated_at,
        changed_at: r.changed_at,
        request_id: r.request_id,
        delivered: r.synced_hash == Some(r.content_hash),
    }))
}

/// What the CRM (`sink`) holds of a company or contact: erpsync's row of it (the
/// embedded CRM, or what a host CRM acknowledged).
pub async fn crm(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    external_id: &str,
    sink: String,
) -> Result<CrmNow> {
    let t = tenant.as_str();
    let row = match table {
        Table::Company => crm_company::Entity::of_record(t, external_id)
            .one(db.conn())
            .await?
            .map(|c| {
                let columns = [
                    ("name", c.name),
                    ("document", c.document),
                    ("seller_id", c.seller_id),
                    ("city", c.city),
                    ("state", c.state),
                    ("email", c.email),
                    ("phone", c.phone),
                ];
                (held_fields(&c.fields, columns), c.updated_at)
            }),
        _ => crm_contact::Entity::of_record(t, external_id)
            .one(db.conn())
            .await?
            .map(|c| {
                let columns = [
                    ("name", c.name),
                    ("document", c.document),
                    ("company_id", c.company_id),
                    ("email", c.email),
                    ("phone", c.phone),
                ];
                (held_fields(&c.fields, columns), c.updated_at)
            }),
    };
    Ok(CrmNow {
        sink,
        updated_at: row.as_ref().map(|(_, at)| *at),
        fields: row.map(|(f, _)| f),
    })
}

/// What a CRM row holds: its stored fields, with its own columns filled in where the
/// fields lack them.
fn held_fields<const N: usize>(
    fields: &str,
    columns: [(&str, String); N],
) -> serde_json::Map<String, serde_json::Value> {
    let mut held = object(fields);
    for (name, value) in columns {
        held.entry(name).or_insert(value.into());
    }
    held
}

fn object(json: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// Deletes one batch (at most `batch` rows) of events of `kinds` from before `cutoff`,
/// of the tenant (or of every tenant when None); returns how many went.
pub async fn delete_older_than(
    db: &Db,
    tenant: Option<&TenantId>,
    kinds: &[TrailKind],
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64> {
    use record_trail::Column;
    let txn = db.begin_write().await?;
    let mut oldest = record_trail::Entity::find()
        .filter(Column::At.lt(cutoff))
        .filter(Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
    if let Some(t) = tenant {
        oldest = oldest.filter(Column::TenantId.eq(t.as_str()));
    }
    let ids: Vec<i64> = oldest
        .select_only()
        .column(Column::Id)
        .order_by_asc(Column::At)
        .limit(batch)
        .into_tuple()
        .all(&*txn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let gone = record_trail::Entity::delete_many()
        .filter(Column::Id.is_in(ids))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(gone)
}
