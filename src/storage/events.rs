//! Queries of `sync_event`: the tenant's log, ordered by a cursor the database assigns
//! (strictly increasing), which StreamLogs and GetRun serve.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult};
use serde_json::{Map, Value};

use super::{Db, Params};
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
/// two writers could commit cursors 11 then 10).
pub async fn append(db: &Db, e: NewEvent<'_>, at: DateTime<Utc>) -> Result<u64> {
    let backend = db.backend();
    let txn = db.begin_write().await?;
    if backend == DbBackend::Postgres {
        let mut p = Params::new(backend, 1);
        let sql = format!(
            "SELECT pg_advisory_xact_lock(hashtext({}))",
            p.push(format!("sync_event:{}", e.tenant.as_str()))
        );
        txn.execute(p.statement(sql)).await?;
    }
    let mut p = Params::new(backend, 8);
    let values = [
        p.push(e.tenant.as_str()),
        p.push(e.run_id.map(str::to_owned)),
        p.push(at),
        p.push(e.level.as_str()),
        p.push(e.stage),
        p.push(e.table.map(str::to_owned)),
        p.push(e.message),
        p.push(Value::Object(e.fields).to_string()),
    ];
    let sql = format!(
        "INSERT INTO sync_event (tenant_id, run_id, at, level, stage, table_name, message, fields) \
         VALUES ({}) RETURNING cursor",
        values.join(", ")
    );
    let row = txn
        .query_one(p.statement(sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the event insert returned no cursor"))?;
    let cursor: i64 = row.try_get("", "cursor")?;
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
    let mut p = Params::new(db.backend(), 6);
    let mut sql = format!(
        "SELECT cursor, run_id, at, level, stage, table_name, message, fields FROM sync_event \
         WHERE tenant_id = {} AND cursor > {}",
        p.push(tenant.as_str()),
        p.push(i64::try_from(after).unwrap_or(i64::MAX))
    );
    if let Some(run) = &filter.run_id {
        sql += &format!(" AND run_id = {}", p.push(run.as_str()));
    }
    if let Some(min) = filter.min_level {
        let levels: Vec<String> = Level::ALL
            .into_iter()
            .filter(|l| *l >= min)
            .map(|l| format!("'{}'", l.as_str()))
            .collect();
        sql += &format!(" AND level IN ({})", levels.join(", "));
    }
    if let Some(stage) = &filter.stage {
        sql += &format!(" AND stage = {}", p.push(stage.as_str()));
    }
    if let Some(table) = &filter.table {
        sql += &format!(" AND table_name = {}", p.push(table.as_str()));
    }
    sql += &format!(" ORDER BY cursor LIMIT {limit}");
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .iter()
        .map(event_from)
        .collect()
}

/// The tenant's last cursor (0 when its log is empty).
pub async fn last_cursor(db: &Db, tenant: &TenantId) -> Result<u64> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT MAX(cursor) AS c FROM sync_event WHERE tenant_id = {}",
        p.push(tenant.as_str())
    );
    let c: Option<i64> = match db.conn().query_one(p.statement(sql)).await? {
        Some(r) => r.try_get("", "c")?,
        None => None,
    };
    Ok(c.map_or(0, |c| u64::try_from(c).unwrap_or(0)))
}

/// The cursor to read after so that reading starts at the first event written at or
/// after `since` (the tenant's last cursor when there is none yet).
pub async fn cursor_before(db: &Db, tenant: &TenantId, since: DateTime<Utc>) -> Result<u64> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT cursor FROM sync_event WHERE tenant_id = {} AND at >= {} ORDER BY cursor LIMIT 1",
        p.push(tenant.as_str()),
        p.push(since)
    );
    match db.conn().query_one(p.statement(sql)).await? {
        Some(r) => {
            let c: i64 = r.try_get("", "cursor")?;
            Ok(u64::try_from(c).unwrap_or(0).saturating_sub(1))
        }
        None => last_cursor(db, tenant).await,
    }
}

/// The events of a run, oldest first.
pub async fn for_run(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Vec<LogEvent>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT cursor, run_id, at, level, stage, table_name, message, fields FROM sync_event \
         WHERE run_id = {} AND tenant_id = {} ORDER BY cursor",
        p.push(run_id),
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .iter()
        .map(event_from)
        .collect()
}

fn event_from(r: &QueryResult) -> Result<LogEvent> {
    let level: String = r.try_get("", "level")?;
    let fields: String = r.try_get("", "fields")?;
    let cursor: i64 = r.try_get("", "cursor")?;
    Ok(LogEvent {
        cursor: u64::try_from(cursor).unwrap_or(0),
        at: r.try_get("", "at")?,
        level: Level::parse(&level)
            .ok_or_else(|| anyhow::anyhow!("stored event has level {level:?}"))?,
        run_id: r.try_get("", "run_id")?,
        stage: r.try_get("", "stage")?,
        table: r.try_get("", "table_name")?,
        message: r.try_get("", "message")?,
        fields: match serde_json::from_str(&fields) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
    })
}
