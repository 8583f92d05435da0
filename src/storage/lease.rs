//! The per-tenant run lease (`sync_lease`): at most one run of a tenant at a time, across
//! every replica sharing the database. A lease expires unless its holder renews it, so a
//! crashed holder never blocks the tenant for long.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use super::entities::{schedule_claim, sync_lease};
use super::Db;
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
    let taken = acquire_in(&txn, tenant, holder, run_id, ttl, now).await?;
    if taken.is_ok() {
        txn.commit().await?;
    }
    Ok(taken)
}

/// [`acquire`] inside the caller's write transaction: the lease is the caller's once it
/// commits (so what it writes beside the lease, such as the run's row, is seen with it).
pub(crate) async fn acquire_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    holder: &str,
    run_id: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Result<(), String>> {
    loop {
        let current: Option<(String, DateTime<Utc>, Option<String>)> =
            sync_lease::Entity::of_tenant_locked(tenant.as_str())
                .into_tuple()
                .one(txn)
                .await?;
        if let Some((held_by, expires, status)) = &current {
            // A lease whose run has already recorded its end is being released: free to take.
            let running = status.as_deref().is_none_or(|s| s == "RUNNING");
            if *expires > now && running {
                return Ok(Err(held_by.clone()));
            }
        }
        let insert = sync_lease::Entity::insert(sync_lease::ActiveModel {
            tenant_id: Set(tenant.as_str().to_owned()),
            holder: Set(holder.to_owned()),
            run_id: Set(run_id.to_owned()),
            expires_at: Set(now + ttl),
        });
        let taken = if current.is_some() {
            // The row read is locked until the transaction ends: replacing it cannot race.
            insert
                .on_conflict(sync_lease::Entity::replace_earlier())
                .exec_without_returning(txn)
                .await?;
            true
        } else {
            // No row to lock: another replica may be inserting the tenant's first lease at
            // the same moment, and only one of the two inserts may win.
            insert
                .on_conflict(sync_lease::Entity::keep_existing())
                .exec_without_returning(txn)
                .await?
                == 1
        };
        if taken {
            return Ok(Ok(()));
        }
        // The other replica's lease committed first: read it (now visible) and judge it.
    }
}

/// Extends the lease of `run_id`; false when it is no longer this run's.
pub async fn renew(db: &Db, tenant: &TenantId, run_id: &str, until: DateTime<Utc>) -> Result<bool> {
    let txn = db.begin_write().await?;
    let n = sync_lease::Entity::update_many()
        .col_expr(sync_lease::Column::ExpiresAt, Expr::value(until))
        .filter(sync_lease::Entity::of_run(tenant.as_str(), run_id))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(n > 0)
}

/// When the lease of `run_id` expires unless renewed; None when it is not this run's.
pub async fn expiry(db: &Db, tenant: &TenantId, run_id: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(sync_lease::Entity::find()
        .filter(sync_lease::Entity::of_run(tenant.as_str(), run_id))
        .one(db.conn())
        .await?
        .map(|l| l.expires_at))
}

/// Gives the lease of `run_id` up.
pub async fn release(db: &Db, tenant: &TenantId, run_id: &str) -> Result<()> {
    let txn = db.begin_write().await?;
    sync_lease::Entity::delete_many()
        .filter(sync_lease::Entity::of_run(tenant.as_str(), run_id))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Claims the scheduled `slot` of a tenant: true for exactly one caller per slot, across
/// replicas; false when this slot (or a later one) was claimed already.
pub async fn claim_slot(db: &Db, tenant: &TenantId, slot: DateTime<Utc>) -> Result<bool> {
    let txn = db.begin_write().await?;
    let n = schedule_claim::Entity::insert(schedule_claim::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        last_slot: Set(slot),
    })
    .on_conflict(schedule_claim::Entity::only_later())
    .exec_without_returning(&*txn)
    .await?;
    txn.commit().await?;
    Ok(n > 0)
}

/// Drops every lease that expires before `before` (leases of processes known dead).
pub async fn clear(db: &Db, before: DateTime<Utc>) -> Result<u64> {
    let txn = db.begin_write().await?;
    let n = sync_lease::Entity::delete_many()
        .filter(sync_lease::Column::ExpiresAt.lt(before))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::tenant::Tenant;
    use crate::storage::tenants;

    async fn db_with(tenant: &TenantId) -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let t = Tenant::new(tenant.clone(), "T".into(), Utc::now());
        tenants::insert(&db, &t).await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_slot_is_claimed_once_and_never_after_a_later_one() {
        let tenant = TenantId::parse("t1").unwrap();
        let db = db_with(&tenant).await;
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        assert!(claim_slot(&db, &tenant, at(8)).await.unwrap());
        assert!(!claim_slot(&db, &tenant, at(8)).await.unwrap());
        assert!(claim_slot(&db, &tenant, at(12)).await.unwrap());
        assert!(!claim_slot(&db, &tenant, at(8)).await.unwrap());
    }

    #[tokio::test]
    async fn a_live_lease_is_refused_until_it_expires_or_is_released() {
        let tenant = TenantId::parse("t1").unwrap();
        let db = db_with(&tenant).await;
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let ttl = Duration::seconds(60);
        acquire(&db, &tenant, "a", "run-a", ttl, now)
            .await
            .unwrap()
            .unwrap();
        let refused = acquire(&db, &tenant, "b", "run-b", ttl, now).await.unwrap();
        assert_eq!(refused, Err("run-a".to_owned()));
        assert!(renew(&db, &tenant, "run-a", now + ttl * 2).await.unwrap());
        assert!(!renew(&db, &tenant, "run-b", now + ttl * 2).await.unwrap());
        let later = now + ttl * 3;
        acquire(&db, &tenant, "b", "run-b", ttl, later)
            .await
            .unwrap()
            .unwrap();
        release(&db, &tenant, "run-b").await.unwrap();
        acquire(&db, &tenant, "c", "run-c", ttl, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(clear(&db, later + ttl * 2).await.unwrap(), 1);
    }
}
