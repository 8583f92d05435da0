//! Queries of `view_grant`: the View sources the operator granted each tenant (see
//! [`crate::domain::view_source::Grant`]), through `entities::view_grant`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TryInsertResult,
};

use super::entities::view_grant;
use super::Db;
use crate::domain::tenant::TenantId;
use crate::domain::view_source::{Grant, GrantBackend};
use crate::error::{AppError, Result};

/// Grants `source` to the tenant; false when it already had it.
pub async fn grant(db: &Db, tenant: &TenantId, source: &Grant, now: DateTime<Utc>) -> Result<bool> {
    let (host, port, database, path) = match source {
        Grant::Server {
            host,
            port,
            database,
            ..
        } => (
            host.clone(),
            i32::from(*port),
            database.clone(),
            String::new(),
        ),
        Grant::File(path) => (
            String::new(),
            0,
            String::new(),
            path.to_string_lossy().into_owned(),
        ),
    };
    let txn = db.begin_write().await?;
    let inserted = view_grant::Entity::insert(view_grant::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        source: Set(source.to_string()),
        kind: Set(source.kind().to_owned()),
        host: Set(host),
        port: Set(port),
        database_name: Set(database),
        path: Set(path),
        created_at: Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
}

/// Takes `source` back from the tenant; false when it did not have it.
pub async fn revoke(db: &Db, tenant: &TenantId, source: &Grant) -> Result<bool> {
    let txn = db.begin_write().await?;
    let removed = view_grant::Entity::delete_many()
        .filter(view_grant::Column::TenantId.eq(tenant.as_str()))
        .filter(view_grant::Column::Source.eq(source.to_string()))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(removed > 0)
}

/// The sources granted to the tenant, in the order they are shown.
pub async fn of_tenant(db: &Db, tenant: &TenantId) -> Result<Vec<Grant>> {
    view_grant::Entity::find()
        .filter(view_grant::Column::TenantId.eq(tenant.as_str()))
        .order_by_asc(view_grant::Column::Source)
        .all(db.conn())
        .await?
        .into_iter()
        .map(|row| from_row(tenant, row))
        .collect()
}

fn from_row(tenant: &TenantId, row: view_grant::Model) -> Result<Grant> {
    let backend = match row.kind.as_str() {
        "postgres" => GrantBackend::Postgres,
        "mysql" => GrantBackend::MySql,
        "sqlite" => return Ok(Grant::File(row.path.into())),
        other => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "view grant of {tenant} of unknown kind {other:?}"
            )))
        }
    };
    let port = u16::try_from(row.port).map_err(|_| {
        AppError::Internal(anyhow::anyhow!(
            "view grant of {tenant} with port {}",
            row.port
        ))
    })?;
    Ok(Grant::Server {
        backend,
        host: row.host,
        port,
        database: row.database_name,
    })
}
