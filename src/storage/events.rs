//! Queries of `sync_event`: the tenant's log, ordered by a cursor the database assigns
//! (strictly increasing), which StreamLogs and GetRun serve.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Map, Value};

use super::{Db, Params};
use crate::domain::run::{Level, LogEvent};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// An event to write.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Whose log.
    pub tenant: &'a TenantId,
    /// The run it belongs to.
    pub run_id: Option<&'a str>,
    /// Severity.
    pub level: Level,
    /// Stage name.
    pub stage: &'a str,
    /// ERP table, if one.
    pub table: Option<&'a str>,
    /// The message.
    pub message: String,
    /// Structured details.
    pub fields: Map<String, Value>,
}

/// Appends an event; it is visible to readers once this returns.
pub async fn append(db: &Db, e: NewEvent<'_>, at: DateTime<Utc>) -> Result<()> {
    let mut p = Params::new(db.backend(), 8);
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
         VALUES ({})",
        values.join(", ")
    );
    let txn = db.begin_write().await?;
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
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
        .into_iter()
        .map(|r| {
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
        })
        .collect()
}
