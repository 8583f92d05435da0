//! Queries of `sync_event`: the tenant's log, ordered by a cursor the database assigns
//! (strictly increasing), which StreamLogs and GetRun serve. Reads and appends go through
//! the entity (`entities::sync_event`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Map, Value};

use super::entities::sync_event::{self, Column, Entity};
use super::{bulk, notify, Db};
use crate::domain::run::{Level, LogEvent};
use crate::domain::tenant::TenantId;
use crate::error::Result;

pub use crate::domain::run::NewEvent;

/// Appends an event and returns its cursor; it is visible to readers once this returns.
///
/// Within a tenant, events commit in cursor order, so any read sees a prefix of the
/// tenant's log: a reader that resumes after the last cursor it saw never skips an event
/// that committed late. SQLite has one writer; on PostgreSQL a per-tenant advisory lock
/// held to the commit serializes the tenant's appends (the sequence alone would not:
/// two writers could commit cursors 11 then 10). On PostgreSQL the commit also notifies
/// [`notify::LOG_CHANNEL`] with the tenant id, so other replicas' followers read it.
pub async fn append(db: &Db, e: NewEvent<'_>, at: DateTime<Utc>) -> Result<u64> {
    let tenant = e.tenant;
    let txn = db.begin_write().await?;
    bulk::backend::hold_until_commit(&txn, &format!("sync_event:{}", e.tenant.as_str())).await?;
    let cursor = Entity::insert(sync_event::ActiveModel {
        cursor: NotSet,
        tenant_id: Set(e.tenant.as_str().to_owned()),
        run_id: Set(e.run_id.map(str::to_owned)),
        at: Set(at),
        level: Set(e.level.as_str().to_owned()),
        stage: Set(e.stage.to_owned()),
        table_name: Set(e.table.map(str::to_owned)),
        message: Set(e.message),
        fields: Set(Value::Object(e.fields).to_string()),
    })
    .exec(&*txn)
    .await?
    .last_insert_id;
    bulk::backend::notify_at_commit(&txn, notify::LOG_CHANNEL, tenant.as_str()).await?;
    txn.commit().await?;
    Ok(u64::try_from(cursor).unwrap_or(0))
}

pub use crate::domain::run::EventFilter as Filter;

/// The tenant's events after `after` that pass `filter`, oldest first, at most `limit`.
pub async fn page(
    db: &Db,
    tenant: &TenantId,
    after: u64,
    filter: &Filter,
    limit: u64,
) -> Result<Vec<LogEvent>> {
    let mut q = Entity::of_tenant_after(tenant.as_str(), i64::try_from(after).unwrap_or(i64::MAX));
    if let Some(run) = &filter.run_id {
        q = q.filter(Column::RunId.eq(run.as_str()));
    }
    if let Some(min) = filter.min_level {
        let levels = Level::ALL.into_iter().filter(|l| *l >= min);
        q = q.filter(Column::Level.is_in(levels.map(Level::as_str)));
    }
    if let Some(stage) = &filter.stage {
        q = q.filter(Column::Stage.eq(stage.as_str()));
    }
    if let Some(table) = &filter.table {
        q = q.filter(Column::TableName.eq(table.as_str()));
    }
    q.limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(event_from)
        .collect()
}

/// The tenant's last cursor (0 when its log is empty).
pub async fn last_cursor(db: &Db, tenant: &TenantId) -> Result<u64> {
    let c: Option<Option<i64>> = Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .select_only()
        .column_as(Column::Cursor.max(), "c")
        .into_tuple()
        .one(db.conn())
        .await?;
    Ok(c.flatten().map_or(0, |c| u64::try_from(c).unwrap_or(0)))
}

/// The cursor to read after so that reading starts at the first event written at or
/// after `since` (the tenant's last cursor when there is none yet).
pub async fn cursor_before(db: &Db, tenant: &TenantId, since: DateTime<Utc>) -> Result<u64> {
    let first: Option<i64> = Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::At.gte(since))
        .order_by_asc(Column::Cursor)
        .select_only()
        .column(Column::Cursor)
        .into_tuple()
        .one(db.conn())
        .await?;
    match first {
        Some(c) => Ok(u64::try_from(c).unwrap_or(0).saturating_sub(1)),
        None => last_cursor(db, tenant).await,
    }
}

/// The events of a run, oldest first.
pub async fn for_run(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Vec<LogEvent>> {
    Entity::find()
        .filter(Column::RunId.eq(run_id))
        .filter(Column::TenantId.eq(tenant.as_str()))
        .order_by_asc(Column::Cursor)
        .all(db.conn())
        .await?
        .into_iter()
        .map(event_from)
        .collect()
}

fn event_from(m: sync_event::Model) -> Result<LogEvent> {
    Ok(LogEvent {
        cursor: u64::try_from(m.cursor).unwrap_or(0),
        at: m.at,
        level: Level::parse(&m.level)
            .ok_or_else(|| anyhow::anyhow!("stored event has level {:?}", m.level))?,
        run_id: m.run_id,
        stage: m.stage,
        table: m.table_name,
        message: m.message,
        fields: match serde_json::from_str(&m.fields) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
    })
}
