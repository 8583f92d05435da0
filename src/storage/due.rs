//! Queries of `tenant_due`: the scheduler's claim of the tenants due now, and the write
//! of a tenant's next due instant by the rule in [`crate::domain::due`]. The tenant's own
//! row is read by the caller ([`super::tenants`]), which writes through here.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict, Order, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QuerySelect,
};

use super::entities::{schedule_claim, sync_run, tenant_due};
use super::{freshness, Db};
use crate::domain::due::{next_due, DueState, Moment};
use crate::domain::freshness::next_stale;
use crate::domain::tenant::{Tenant, TenantId};
use crate::error::{AppError, Result};

/// What a write does with the stored retry instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Keeps it.
    Keep,
    /// Replaces it (None: no retry is pending).
    Set(Option<DateTime<Utc>>),
}

/// Claims up to `limit` tenants due at `now`, earliest first, for one look: each one's
/// due instant moves to `hold` in the same statement, so another replica's tick claims
/// other tenants (on PostgreSQL rows another claim has locked are skipped, not waited
/// for) and a replica that dies mid-look leaves its tenants due again at `hold`.
/// Returns the tenants; each one's row holds [`stored`]`(hold)` until its look settles
/// it (see [`write_in`]).
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    hold: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<TenantId>> {
    use tenant_due::Column;
    let backend = db.backend();
    let mut due = Query::select();
    due.column(Column::TenantId)
        .from(tenant_due::Entity)
        .and_where(Column::DueAt.lte(now))
        .order_by(Column::DueAt, Order::Asc)
        .limit(limit);
    if backend == DbBackend::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let claim = Query::update()
        .table(tenant_due::Entity)
        .value(Column::DueAt, stored(hold))
        .and_where(Column::TenantId.in_subquery(due))
        .returning_col(Column::TenantId)
        .to_owned();
    let txn = db.begin_write().await?;
    let rows = txn.query_all(backend.build(&claim)).await?;
    txn.commit().await?;
    rows.into_iter()
        .map(|r| {
            let id: String = r.try_get("", "tenant_id")?;
            TenantId::parse(&id)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("stored tenant id: {e}")))
        })
        .collect()
}

/// The instant a claim stores (what [`write_in`] compares with), to the microsecond both
/// backends keep ([`crate::clock::stored`]).
pub fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    crate::clock::stored(at)
}

/// Computes `tenant`'s next due instant at `moment` and stores it (with the retry
/// instant `retry` says), inside the caller's write transaction; returns it. With
/// `claimed`, only while the row still holds that claim: whoever rewrote it since (a
/// settings change, a run's end) computed from newer facts, and wins.
pub(crate) async fn write_in(
    txn: &DatabaseTransaction,
    tenant: &Tenant,
    retry: Retry,
    moment: Moment,
    claimed: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>> {
    let id = tenant.id.as_str();
    let mut row = tenant_due::Entity::find_by_id(id);
    if txn.get_database_backend() == DbBackend::Postgres {
        // Serializes with other writers of this tenant's due instant.
        row = row.lock_exclusive();
    }
    let row = row.one(txn).await?;
    if let Some(claimed) = claimed {
        if row.as_ref().and_then(|r| r.due_at) != Some(stored(claimed)) {
            return Ok(None);
        }
    }
    let retry_at = match retry {
        Retry::Keep => row.and_then(|r| r.retry_at),
        Retry::Set(at) => at,
    };
    let last_slot = schedule_claim::Entity::find_by_id(id)
        .one(txn)
        .await?
        .map(|c| c.last_slot);
    let state = DueState {
        last_slot,
        retry_at,
        last_success: last_success_at(txn, id).await?,
        table_stale_at: next_stale(&freshness::list_in(txn, &tenant.id).await?),
    };
    let due = next_due(tenant, &state, moment);
    tenant_due::Entity::insert(tenant_due::ActiveModel {
        tenant_id: Set(id.to_owned()),
        due_at: Set(due.map(stored)),
        retry_at: Set(retry_at.map(stored)),
    })
    .on_conflict(
        OnConflict::column(tenant_due::Column::TenantId)
            .update_columns([tenant_due::Column::DueAt, tenant_due::Column::RetryAt])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(due)
}

/// Forgets the tenant's pending retry: a run just started, and its own end sets the
/// next one.
pub(crate) async fn clear_retry_in(txn: &DatabaseTransaction, tenant: &TenantId) -> Result<()> {
    tenant_due::Entity::update_many()
        .col_expr(
            tenant_due::Column::RetryAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(tenant_due::Column::TenantId.eq(tenant.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// The tenant's stored due and retry instants (None when it has no row).
pub async fn get(
    db: &Db,
    tenant: &TenantId,
) -> Result<Option<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)>> {
    Ok(tenant_due::Entity::find_by_id(tenant.as_str())
        .one(db.conn())
        .await?
        .map(|r| (r.due_at, r.retry_at)))
}

/// When the newest successful (or partial) run finished, walking the (tenant_id,
/// started_at) index from its newest end.
pub(crate) async fn last_success_at(
    conn: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Option<DateTime<Utc>>> {
    let finished: Option<Option<DateTime<Utc>>> = sync_run::Entity::successes_of(tenant)
        .select_only()
        .column(sync_run::Column::FinishedAt)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(finished.flatten())
}
