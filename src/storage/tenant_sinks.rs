//! Queries of `tenant_sink` (the CrmSink a tenant delivers to instead of the server's),
//! through `entities::tenant_sink`. The secret is stored as the caller sealed it.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::entities::tenant_sink;
use super::Db;
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// A tenant's sink as stored: its address and its sealed secret, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSink {
    /// `grpc://`, `grpcs://` or `https://` host:port.
    pub address: String,
    /// The secret, sealed.
    pub sealed_secret: Option<String>,
}

impl std::fmt::Debug for StoredSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSink")
            .field("address", &self.address)
            .field("has_secret", &self.sealed_secret.is_some())
            .finish()
    }
}

/// The tenant's own sink, if it has one.
pub async fn get(db: &Db, tenant: &TenantId) -> Result<Option<StoredSink>> {
    Ok(tenant_sink::Entity::find_by_id(tenant.as_str())
        .one(db.conn())
        .await?
        .map(|r| StoredSink {
            address: r.address,
            sealed_secret: r.sealed_secret,
        }))
}

/// Stores the tenant's sink, replacing any earlier one.
pub async fn set(db: &Db, tenant: &TenantId, sink: &StoredSink, now: DateTime<Utc>) -> Result<()> {
    tenant_sink::Entity::insert(tenant_sink::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        address: Set(sink.address.clone()),
        sealed_secret: Set(sink.sealed_secret.clone()),
        updated_at: Set(now),
    })
    .on_conflict(tenant_sink::Entity::replace_earlier())
    .exec_without_returning(db.conn())
    .await?;
    Ok(())
}

/// Removes the tenant's sink; false when it had none.
pub async fn clear(db: &Db, tenant: &TenantId) -> Result<bool> {
    let gone = tenant_sink::Entity::delete_by_id(tenant.as_str())
        .exec(db.conn())
        .await?;
    Ok(gone.rows_affected > 0)
}
