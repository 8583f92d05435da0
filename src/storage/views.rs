//! Queries of `view_config` (a tenant's View configuration, as JSON, and who named its
//! URL) and `view_watermark` (where an incremental view read stopped). The source URL is
//! stored sealed with the operator's key when one is configured, the tenant's id its
//! associated data, so a sealed URL opens only as the tenant's it was sealed for (see
//! [`crate::domain::secret`]). Both go through their entities (`entities::view_config`,
//! `entities::view_watermark`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{tenant, view_config, view_watermark};
use super::Db;
use crate::domain::secret::{is_sealed, SecretKey};
use crate::domain::tenant::TenantId;
use crate::domain::view::ViewConfig;
use crate::domain::view::{Cursor, Param};
use crate::domain::view_source::Naming;
use crate::error::{AppError, Result};

/// The tenant's View configuration, if it has one, its URL opened with `key`.
pub async fn get(
    db: &Db,
    tenant: &TenantId,
    key: Option<&SecretKey>,
) -> Result<Option<ViewConfig>> {
    Ok(stored(db, tenant, key).await?.map(|(cfg, _)| cfg))
}

/// The tenant's View configuration, if it has one, its URL opened with `key`, and who
/// named that URL.
pub async fn stored(
    db: &Db,
    tenant: &TenantId,
    key: Option<&SecretKey>,
) -> Result<Option<(ViewConfig, Naming)>> {
    let Some(row) = view_config::Entity::find_by_id(tenant.as_str())
        .one(db.conn())
        .await?
    else {
        return Ok(None);
    };
    let mut cfg: ViewConfig = serde_json::from_str(&row.config)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored view config of {tenant}: {e}")))?;
    if is_sealed(&cfg.url) {
        let key = key.ok_or_else(|| {
            AppError::FailedPrecondition(format!(
                "the View URL of {tenant} is sealed: the server needs the ERPSYNC_SECRET_KEY it was sealed with"
            ))
        })?;
        cfg.url = key
            .open(&cfg.url, tenant.as_str())
            .map_err(|e| AppError::FailedPrecondition(format!("the View URL of {tenant}: {e}")))?;
    }
    Ok(Some((cfg, Naming::parse(&row.named_by))))
}

/// Stores the configuration and makes the tenant a VIEW integration, in one transaction.
/// Watermarks of tables whose view, key or watermark column changed stop applying (their
/// fingerprint no longer matches), so those tables are read whole again.
/// With `key`, the URL is stored sealed; `named_by` is who named it.
pub async fn set(
    db: &Db,
    tenant: &TenantId,
    cfg: &ViewConfig,
    named_by: Naming,
    key: Option<&SecretKey>,
    now: DateTime<Utc>,
) -> Result<()> {
    let stored = ViewConfig {
        url: match key {
            Some(key) => key.seal(&cfg.url, tenant.as_str()),
            None => cfg.url.clone(),
        },
        ..cfg.clone()
    };
    let json = serde_json::to_string(&stored).map_err(anyhow::Error::from)?;
    let txn = db.begin_write().await?;
    view_config::Entity::insert(view_config::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        config: Set(json),
        named_by: Set(named_by.as_str().to_owned()),
        updated_at: Set(now),
    })
    .on_conflict(view_config::Entity::replace_earlier())
    .exec_without_returning(&*txn)
    .await?;
    set_integration_type(&*txn, tenant, "VIEW", now).await?;
    txn.commit().await
}

/// Removes the configuration and its watermarks; the tenant becomes an API integration.
/// True when there was one.
pub async fn clear(db: &Db, tenant: &TenantId, now: DateTime<Utc>) -> Result<bool> {
    let txn = db.begin_write().await?;
    let removed = view_config::Entity::delete_many()
        .filter(view_config::Column::TenantId.eq(tenant.as_str()))
        .exec(&*txn)
        .await?
        .rows_affected;
    view_watermark::Entity::delete_many()
        .filter(view_watermark::Column::TenantId.eq(tenant.as_str()))
        .exec(&*txn)
        .await?;
    set_integration_type(&*txn, tenant, "API", now).await?;
    txn.commit().await?;
    Ok(removed > 0)
}

/// Makes the tenant an integration of `kind` (VIEW or API).
async fn set_integration_type(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    tenant::Entity::update_many()
        .col_expr(tenant::Column::IntegrationType, Expr::value(kind))
        .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
        .filter(tenant::Column::Id.eq(tenant.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Where the last incremental read of `table` stopped, if it read with the same
/// `fingerprint` (view, key and watermark column).
pub async fn watermark(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    fingerprint: &str,
) -> Result<Option<Cursor>> {
    let Some(row) =
        view_watermark::Entity::find_by_id((tenant.as_str().to_owned(), table.to_owned()))
            .one(db.conn())
            .await?
    else {
        return Ok(None);
    };
    if row.fingerprint != fingerprint {
        return Ok(None);
    }
    Ok(Some(Cursor {
        watermark: Some(row.watermark),
        key: decode_key(&row.last_key),
    }))
}

/// Records where an incremental read of `table` got to.
pub async fn save_watermark(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    fingerprint: &str,
    at: &Cursor,
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    view_watermark::Entity::insert(view_watermark::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        table_name: Set(table.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        watermark: Set(at.watermark.clone().unwrap_or_default()),
        last_key: Set(encode_key(&at.key)),
        updated_at: Set(now),
    })
    .on_conflict(view_watermark::Entity::replace_earlier())
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await
}

/// Every table's stored watermark: (table, watermark).
pub async fn watermarks(db: &Db, tenant: &TenantId) -> Result<Vec<(String, String)>> {
    Ok(view_watermark::Entity::of_tenant(tenant.as_str())
        .select_only()
        .columns([
            view_watermark::Column::TableName,
            view_watermark::Column::Watermark,
        ])
        .order_by_asc(view_watermark::Column::TableName)
        .into_tuple()
        .all(db.conn())
        .await?)
}

fn encode_key(k: &Param) -> String {
    match k {
        Param::Text(s) => format!("t:{s}"),
        Param::Int(i) => format!("i:{i}"),
        Param::Real(f) => format!("r:{f}"),
    }
}

fn decode_key(s: &str) -> Param {
    match s.split_at_checked(2) {
        Some(("i:", rest)) => rest
            .parse()
            .map_or_else(|_| Param::Text(rest.to_owned()), Param::Int),
        Some(("r:", rest)) => rest
            .parse()
            .map_or_else(|_| Param::Text(rest.to_owned()), Param::Real),
        Some(("t:", rest)) => Param::Text(rest.to_owned()),
        _ => Param::Text(s.to_owned()),
    }
}
