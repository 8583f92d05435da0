//! The per-tenant run lease (`sync_lease`): at most one run of a tenant at a time, across
//! every replica sharing the database. A lease expires unless its holder renews it, so a
//! crashed holder never blocks the tenant for long.

use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;

use super::{Db, Params};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Takes the tenant's lease for `run_id` unless another holder has a live one; returns
/// the run id of that live lease when it is taken.
pub async fn acquire(
    db: &Db,
    tenant: &TenantId,
    holder: &str,
    run_id: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Result<(), String>> {
    let txn = db.begin_write().await?;
    let backend = txn.get_database_backend();
    let mut p = Params::new(backend, 1);
    // A lease whose run has already recorded its end is being released: free to take.
    let sql = format!(
        "SELECT l.run_id, l.expires_at, r.status FROM sync_lease l \
         LEFT JOIN sync_run r ON r.id = l.run_id WHERE l.tenant_id = {}{}",
        p.push(tenant.as_str()),
        if backend == sea_orm::DbBackend::Postgres {
            " FOR UPDATE OF l"
        } else {
            ""
        }
    );
    if let Some(row) = txn.query_one(p.statement(sql)).await? {
        let expires: DateTime<Utc> = row.try_get("", "expires_at")?;
        let status: Option<String> = row.try_get("", "status")?;
        let running = status.as_deref().is_none_or(|s| s == "RUNNING");
        if expires > now && running {
            return Ok(Err(row.try_get("", "run_id")?));
        }
    }
    let mut p = Params::new(backend, 4);
    let sql = format!(
        "INSERT INTO sync_lease (tenant_id, holder, run_id, expires_at) VALUES ({}, {}, {}, {}) \
         ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id, \
         expires_at = excluded.expires_at",
        p.push(tenant.as_str()),
        p.push(holder),
        p.push(run_id),
        p.push(now + ttl)
    );
    txn.execute(p.statement(sql)).await?;
    txn.commit().await?;
    Ok(Ok(()))
}

/// Extends the lease of `run_id`; false when it is no longer this run's.
pub async fn renew(db: &Db, tenant: &TenantId, run_id: &str, until: DateTime<Utc>) -> Result<bool> {
    let mut p = Params::new(db.backend(), 3);
    let sql = format!(
        "UPDATE sync_lease SET expires_at = {} WHERE tenant_id = {} AND run_id = {}",
        p.push(until),
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    let txn = db.begin_write().await?;
    let n = txn.execute(p.statement(sql)).await?.rows_affected();
    txn.commit().await?;
    Ok(n > 0)
}

/// Gives the lease of `run_id` up.
pub async fn release(db: &Db, tenant: &TenantId, run_id: &str) -> Result<()> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "DELETE FROM sync_lease WHERE tenant_id = {} AND run_id = {}",
        p.push(tenant.as_str()),
        p.push(run_id)
    );
    let txn = db.begin_write().await?;
    txn.execute(p.statement(sql)).await?;
    txn.commit().await
}

/// Claims the scheduled `slot` of a tenant: true for exactly one caller per slot, across
/// replicas; false when this slot (or a later one) was claimed already.
pub async fn claim_slot(db: &Db, tenant: &TenantId, slot: DateTime<Utc>) -> Result<bool> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "INSERT INTO schedule_claim (tenant_id, last_slot) VALUES ({}, {}) ON CONFLICT (tenant_id) \
         DO UPDATE SET last_slot = excluded.last_slot WHERE schedule_claim.last_slot < excluded.last_slot",
        p.push(tenant.as_str()),
        p.push(slot)
    );
    let txn = db.begin_write().await?;
    let n = txn.execute(p.statement(sql)).await?.rows_affected();
    txn.commit().await?;
    Ok(n > 0)
}

/// Drops every lease that expires before `before` (leases of processes known dead).
pub async fn clear(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "DELETE FROM sync_lease WHERE expires_at < {}",
        p.push(before)
    );
    let txn = db.begin_write().await?;
    let n = txn.execute(p.statement(sql)).await?.rows_affected();
    txn.commit().await?;
    Ok(n)
}
