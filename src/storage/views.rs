//! Queries of `view_config` (a tenant's View configuration, as JSON) and `view_watermark`
//! (where an incremental view read stopped). The source URL is stored sealed with the
//! operator's key when one is configured (see [`crate::domain::secret`]).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{Db, Params};
use crate::domain::secret::{is_sealed, SecretKey};
use crate::domain::tenant::TenantId;
use crate::domain::view::ViewConfig;
use crate::domain::view::{Cursor, Param};
use crate::error::{AppError, Result};

/// The tenant's View configuration, if it has one, its URL opened with `key`.
pub async fn get(
    db: &Db,
    tenant: &TenantId,
    key: Option<&SecretKey>,
) -> Result<Option<ViewConfig>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT config FROM view_config WHERE tenant_id = {}",
        p.push(tenant.as_str())
    );
    let Some(row) = db.conn().query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let text: String = row.try_get("", "config")?;
    let mut cfg: ViewConfig = serde_json::from_str(&text)
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
    Ok(Some(cfg))
}

/// Stores the configuration and makes the tenant a VIEW integration, in one transaction.
/// Watermarks of tables whose view, key or watermark column changed stop applying (their
/// fingerprint no longer matches), so those tables are read whole again.
/// With `key`, the URL is stored sealed.
pub async fn set(
    db: &Db,
    tenant: &TenantId,
    cfg: &ViewConfig,
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
    let mut p = Params::new(txn.get_database_backend(), 3);
    let sql = format!(
        "INSERT INTO view_config (tenant_id, config, updated_at) VALUES ({}, {}, {}) \
         ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        p.push(tenant.as_str()),
        p.push(json),
        p.push(now)
    );
    txn.execute(p.statement(sql)).await?;
    let mut p = Params::new(txn.get_database_backend(), 2);
    let sql = format!(
        "UPDATE tenant SET integration_type = 'VIEW', updated_at = {} WHERE id = {}",
        p.push(now),
        p.push(tenant.as_str())
    );
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
}

/// Removes the configuration and its watermarks; the tenant becomes an API integration.
/// True when there was one.
pub async fn clear(db: &Db, tenant: &TenantId, now: DateTime<Utc>) -> Result<bool> {
    let txn = db.begin_write().await?;
    let mut removed = 0;
    for table in ["view_config", "view_watermark"] {
        let mut p = Params::new(txn.get_database_backend(), 1);
        let sql = format!(
            "DELETE FROM {table} WHERE tenant_id = {}",
            p.push(tenant.as_str())
        );
        let n = txn.execute(p.statement(sql)).await?.rows_affected();
        if table == "view_config" {
            removed = n;
        }
    }
    let mut p = Params::new(txn.get_database_backend(), 2);
    let sql = format!(
        "UPDATE tenant SET integration_type = 'API', updated_at = {} WHERE id = {}",
        p.push(now),
        p.push(tenant.as_str())
    );
    txn.execute(p.statement(sql)).await?;
    txn.commit().await?;
    Ok(removed > 0)
}

/// Where the last incremental read of `table` stopped, if it read with the same
/// `fingerprint` (view, key and watermark column).
pub async fn watermark(
    db: &Db,
    tenant: &TenantId,
    table: &str,
    fingerprint: &str,
) -> Result<Option<Cursor>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT fingerprint, watermark, last_key FROM view_watermark WHERE tenant_id = {} AND table_name = {}",
        p.push(tenant.as_str()),
        p.push(table)
    );
    let Some(row) = db.conn().query_one(p.statement(sql)).await? else {
        return Ok(None);
    };
    let stored: String = row.try_get("", "fingerprint")?;
    if stored != fingerprint {
        return Ok(None);
    }
    let key: String = row.try_get("", "last_key")?;
    Ok(Some(Cursor {
        watermark: Some(row.try_get("", "watermark")?),
        key: decode_key(&key),
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
    let mut p = Params::new(txn.get_database_backend(), 6);
    let sql = format!(
        "INSERT INTO view_watermark (tenant_id, table_name, fingerprint, watermark, last_key, updated_at) \
         VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (tenant_id, table_name) DO UPDATE SET \
         fingerprint = excluded.fingerprint, watermark = excluded.watermark, \
         last_key = excluded.last_key, updated_at = excluded.updated_at",
        p.push(tenant.as_str()),
        p.push(table),
        p.push(fingerprint),
        p.push(at.watermark.clone().unwrap_or_default()),
        p.push(encode_key(&at.key)),
        p.push(now)
    );
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
}

/// Every table's stored watermark: (table, watermark).
pub async fn watermarks(db: &Db, tenant: &TenantId) -> Result<Vec<(String, String)>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT table_name, watermark FROM view_watermark WHERE tenant_id = {} ORDER BY table_name",
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("", "table_name")?, r.try_get("", "watermark")?)))
        .collect()
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
