//! Queries of `table_freshness` (`entities::table_freshness`): a tenant's per-table
//! freshness limits, the last-accepted instant ingestion keeps (one upsert per batch,
//! in the batch's own transaction), and the table's STALE_TABLE alert, opened by the
//! scheduler's look and resolved by the table's next accepted record — at most one open
//! per tenant and table, its id kept on the row. The rule is
//! [`crate::domain::freshness`].

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    IntoActiveModel, QuerySelect,
};

use super::entities::{alert, table_freshness};
use super::{alert_events, alerts, Db};
use crate::domain::alert::AlertKind;
use crate::domain::freshness::{FreshnessChange, TableFreshness};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// The tenant's tables' freshness, in the catalog's table order.
pub async fn list(db: &Db, tenant: &TenantId) -> Result<Vec<TableFreshness>> {
    list_in(db.conn(), tenant).await
}

/// [`list`] on `conn` (a transaction's own view).
pub(super) async fn list_in(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
) -> Result<Vec<TableFreshness>> {
    let mut rows = table_freshness::Entity::of(tenant.as_str())
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect::<Result<Vec<_>>>()?;
    rows.sort_by_key(|r| r.table);
    Ok(rows)
}

fn from_model(m: table_freshness::Model) -> Result<TableFreshness> {
    Ok(TableFreshness {
        table: Table::parse(&m.table_name).ok_or_else(|| {
            anyhow!(
                "stored freshness of tenant {:?} names an unknown table {:?}",
                m.tenant_id,
                m.table_name
            )
        })?,
        max_age: m.max_age_secs.map(chrono::Duration::seconds),
        watched_since: m.watched_since,
        last_accepted_at: m.last_accepted_at,
        stale_alert: m.stale_alert_id,
    })
}

/// The row of `tenant`'s `table` in `txn`, locked against other writers on PostgreSQL
/// (SQLite has one writer at a time).
async fn locked(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: Table,
) -> Result<Option<table_freshness::Model>> {
    let mut q = table_freshness::Entity::find_by_id((
        tenant.as_str().to_owned(),
        table.as_str().to_owned(),
    ));
    if txn.get_database_backend() == DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    Ok(q.one(txn).await?)
}

/// Records that `table` of `tenant` had records accepted at `at`, within the batch's
/// own transaction: one upsert, whatever the batch's size.
pub(crate) async fn arrived_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    table: Table,
    at: DateTime<Utc>,
) -> Result<()> {
    table_freshness::Entity::insert(table_freshness::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        table_name: Set(table.as_str().to_owned()),
        max_age_secs: Set(None),
        watched_since: Set(None),
        last_accepted_at: Set(Some(at)),
        stale_alert_id: Set(None),
    })
    .on_conflict(
        OnConflict::columns([
            table_freshness::Column::TenantId,
            table_freshness::Column::TableName,
        ])
        .update_column(table_freshness::Column::LastAcceptedAt)
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// After records of `table` were accepted (and committed) at `at`: resolves the table's
/// open STALE_TABLE alert, if it has one. A plain read when none is open (the common
/// case takes no lock). Returns whether it resolved one.
pub async fn resolve_on_arrival(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    at: DateTime<Utc>,
) -> Result<bool> {
    let row = table_freshness::Entity::find_by_id((
        tenant.as_str().to_owned(),
        table.as_str().to_owned(),
    ))
    .one(db.conn())
    .await?;
    if row.and_then(|r| r.stale_alert_id).is_none() {
        return Ok(false);
    }
    let txn = db.begin_write().await?;
    alert_events::serialize(&txn).await?;
    let Some(row) = locked(&txn, tenant, table).await? else {
        return Ok(false);
    };
    if !close_alert_in(&txn, tenant, row, at).await? {
        return Ok(false);
    }
    txn.commit().await?;
    alerts::announce(db, tenant, AlertKind::StaleTable, false);
    Ok(true)
}

/// Resolves the row's open alert within `txn` (which has called
/// [`alert_events::serialize`]) and forgets it on the row; false when it had none.
async fn close_alert_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    row: table_freshness::Model,
    at: DateTime<Utc>,
) -> Result<bool> {
    let Some(id) = row.stale_alert_id.clone() else {
        return Ok(false);
    };
    let which = sea_orm::Condition::all().add(alert::Column::Id.eq(id));
    alerts::resolve_in(txn, tenant, which, at).await?;
    let mut active = row.into_active_model();
    active.stale_alert_id = Set(None);
    table_freshness::Entity::update(active).exec(txn).await?;
    Ok(true)
}

/// Opens the STALE_TABLE alert of `table` when it is past its limit at `now` and has none
/// open, judged again on the locked row (a batch that just arrived wins). Returns the
/// alert's message when it opened one.
pub async fn raise(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let txn = db.begin_write().await?;
    alert_events::serialize(&txn).await?;
    let Some(row) = locked(&txn, tenant, table).await? else {
        return Ok(None);
    };
    let freshness = from_model(row.clone())?;
    if freshness.stale_alert.is_some() || !freshness.is_stale(now) {
        return Ok(None);
    }
    let message = freshness.alert_message();
    let opened = alerts::open_in(&txn, tenant, AlertKind::StaleTable, &message, None, now).await?;
    let mut active = row.into_active_model();
    active.stale_alert_id = Set(Some(opened.id));
    table_freshness::Entity::update(active).exec(&*txn).await?;
    txn.commit().await?;
    alerts::announce(db, tenant, AlertKind::StaleTable, true);
    Ok(Some(message))
}

/// Applies a checked change of the tenant's limits within `txn`, which has called
/// [`alert_events::serialize`] first: a table set gets its limit (counted from now while
/// no record has arrived), a table cleared loses it; an open alert of a changed table
/// that is not past its new limit at `now` is resolved. Returns how many were resolved
/// (the caller calls [`alerts::announce`] for each once committed).
pub(crate) async fn apply_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    change: &FreshnessChange,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut resolved = 0;
    for table in Table::ALL {
        let Some(limit) = change.of(table) else {
            continue;
        };
        let row = locked(txn, tenant, table).await?;
        let Some(row) = row else {
            if let Some(max_age) = limit {
                table_freshness::Entity::insert(table_freshness::ActiveModel {
                    tenant_id: Set(tenant.as_str().to_owned()),
                    table_name: Set(table.as_str().to_owned()),
                    max_age_secs: Set(Some(max_age.num_seconds())),
                    watched_since: Set(Some(now)),
                    last_accepted_at: Set(None),
                    stale_alert_id: Set(None),
                })
                .exec_without_returning(txn)
                .await?;
            }
            continue;
        };
        let mut changed = from_model(row.clone())?;
        changed.max_age = limit;
        changed.watched_since = limit.map(|_| row.watched_since.unwrap_or(now));
        let mut active = row.clone().into_active_model();
        active.max_age_secs = Set(limit.map(|d| d.num_seconds()));
        active.watched_since = Set(changed.watched_since);
        table_freshness::Entity::update(active).exec(txn).await?;
        if changed.stale_alert.is_some() && !changed.is_stale(now) {
            let row = table_freshness::Model {
                max_age_secs: limit.map(|d| d.num_seconds()),
                watched_since: changed.watched_since,
                ..row
            };
            if close_alert_in(txn, tenant, row, now).await? {
                resolved += 1;
            }
        }
    }
    Ok(resolved)
}

/// Announces `n` STALE_TABLE alerts resolved by a committed settings change.
pub(crate) fn announce_resolved(db: &Db, tenant: &TenantId, n: usize) {
    for _ in 0..n {
        alerts::announce(db, tenant, AlertKind::StaleTable, false);
    }
}
