//! Queries of `alert`, through the entity (`entities::alert`). Every alert opened or
//! resolved is also appended to the alert feed ([`alert_events`]) in the same
//! transaction, and wakes the feed's followers in this process once committed.

use anyhow::anyhow;
use sea_orm::{
    ActiveValue::Set, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};

use super::usage::{self, Counted};
use super::{alert_events, entities::alert, Db};
use crate::domain::alert::{Alert, AlertEventKind, AlertKind};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// The tenant's open alerts, oldest first.
pub async fn open(db: &Db, tenant: &TenantId) -> Result<Vec<Alert>> {
    alert::Entity::find()
        .filter(alert::Entity::open_of(tenant.as_str()))
        .order_by_asc(alert::Column::OpenedAt)
        .all(db.conn())
        .await?
        .into_iter()
        .map(alert_from)
        .collect()
}

/// How many alerts are open, of every tenant, by kind (kinds with none left out).
pub async fn open_by_kind(db: &Db) -> Result<Vec<(AlertKind, u64)>> {
    use sea_orm::{ColumnTrait, QuerySelect};
    let rows: Vec<(String, i64)> = alert::Entity::find()
        .select_only()
        .column(alert::Column::Kind)
        .column_as(alert::Column::Id.count(), "open")
        .filter(alert::Column::ResolvedAt.is_null())
        .group_by(alert::Column::Kind)
        .into_tuple()
        .all(db.conn())
        .await?;
    rows.into_iter()
        .map(|(kind, n)| {
            let kind = AlertKind::parse(&kind)
                .ok_or_else(|| anyhow!("a stored alert has unknown kind {kind:?}"))?;
            Ok((kind, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

fn alert_from(m: alert::Model) -> Result<Alert> {
    Ok(Alert {
        kind: AlertKind::parse(&m.kind)
            .ok_or_else(|| anyhow!("stored alert {} has unknown kind {:?}", m.id, m.kind))?,
        id: m.id,
        message: m.message,
        run_id: m.run_id,
        opened_at: m.opened_at,
        resolved_at: m.resolved_at,
    })
}

/// Whether an alert of `kind` is open: a plain read, so the common case (nothing to
/// change) takes neither the writer lock nor the feed's lock.
async fn is_open(db: &Db, tenant: &TenantId, kind: AlertKind) -> Result<bool> {
    let open = alert::Entity::find()
        .filter(alert::Entity::open_of_kind(tenant.as_str(), kind.as_str()))
        .one(db.conn())
        .await?;
    Ok(open.is_some())
}

/// Opens an alert of `kind` unless one is open already (an alert is raised once);
/// returns whether it opened one.
pub async fn raise(
    db: &Db,
    tenant: &TenantId,
    kind: AlertKind,
    message: &str,
    run_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    if is_open(db, tenant, kind).await? {
        return Ok(false);
    }
    let txn = db.begin_write().await?;
    alert_events::serialize(&txn).await?;
    let open = alert::Entity::find()
        .filter(alert::Entity::open_of_kind(tenant.as_str(), kind.as_str()))
        .one(&*txn)
        .await?;
    if open.is_some() {
        return Ok(false);
    }
    open_in(&txn, tenant, kind, message, run_id, now).await?;
    txn.commit().await?;
    announce(db, tenant, kind, true);
    Ok(true)
}

/// Opens an alert within `txn`, which has called [`alert_events::serialize`]: its row,
/// its bytes in the tenant's usage, its event in the feed. The caller decided it is not
/// open already, and calls [`announce`] once committed.
pub(super) async fn open_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    kind: AlertKind,
    message: &str,
    run_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Alert> {
    let raised = Alert {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        message: message.to_owned(),
        run_id: run_id.map(str::to_owned),
        opened_at: now,
        resolved_at: None,
    };
    alert::Entity::insert(alert::ActiveModel {
        id: Set(raised.id.clone()),
        tenant_id: Set(tenant.as_str().to_owned()),
        kind: Set(kind.as_str().to_owned()),
        message: Set(raised.message.clone()),
        run_id: Set(raised.run_id.clone()),
        opened_at: Set(now),
        resolved_at: Set(None),
    })
    .exec(txn)
    .await?;
    let after = usage::measure(txn, Counted::Alerts, &[raised.id.as_str()]).await?;
    usage::add_changes(txn, Counted::Alerts, &Default::default(), &after).await?;
    alert_events::append(txn, tenant, AlertEventKind::Opened, &raised, now).await?;
    Ok(raised)
}

/// Resolves the open alert of `kind`, if any; returns whether there was one.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    kind: AlertKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    if !is_open(db, tenant, kind).await? {
        return Ok(false);
    }
    let txn = db.begin_write().await?;
    alert_events::serialize(&txn).await?;
    let which = alert::Entity::open_of_kind(tenant.as_str(), kind.as_str());
    if resolve_in(&txn, tenant, which, now).await? == 0 {
        return Ok(false);
    }
    txn.commit().await?;
    announce(db, tenant, kind, false);
    Ok(true)
}

/// Resolves the tenant's open alerts `which` selects within `txn`, which has called
/// [`alert_events::serialize`]: their rows, their bytes in the tenant's usage, their
/// events in the feed. Returns how many; the caller calls [`announce`] once committed.
pub(super) async fn resolve_in(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    which: Condition,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize> {
    let which = which.add(alert::Entity::open_of(tenant.as_str()));
    let open = alert::Entity::find().filter(which.clone()).all(txn).await?;
    if open.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = open.iter().map(|m| m.id.as_str()).collect();
    let before = usage::measure(txn, Counted::Alerts, &ids).await?;
    alert::Entity::update_many()
        .col_expr(
            alert::Column::ResolvedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(which)
        .exec(txn)
        .await?;
    let after = usage::measure(txn, Counted::Alerts, &ids).await?;
    usage::add_changes(txn, Counted::Alerts, &before, &after).await?;
    let n = open.len();
    for m in open {
        let resolved = Alert {
            resolved_at: Some(now),
            ..alert_from(m)?
        };
        alert_events::append(txn, tenant, AlertEventKind::Resolved, &resolved, now).await?;
    }
    Ok(n)
}

/// After the commit that opened or resolved an alert of `kind`: wakes the feed's
/// followers in this process and counts it in the metrics.
pub(super) fn announce(db: &Db, tenant: &TenantId, kind: AlertKind, opened: bool) {
    db.alert_events_appended();
    crate::metrics::alert(tenant.as_str(), kind.as_str(), opened);
}

/// Rewrites the message of the open alert of `kind`, if any and if it says something
/// else, so it states the condition as it is now (e.g. how many deletions are held);
/// returns whether it changed one. The alert keeps its id and opening time; the feed
/// records a RESTATED event at `now` with the new message.
pub async fn restate(
    db: &Db,
    tenant: &TenantId,
    kind: AlertKind,
    message: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    use sea_orm::ColumnTrait;
    let stale = || {
        alert::Entity::find()
            .filter(alert::Entity::open_of_kind(tenant.as_str(), kind.as_str()))
            .filter(alert::Column::Message.ne(message))
    };
    if stale().one(db.conn()).await?.is_none() {
        return Ok(false);
    }
    let txn = db.begin_write().await?;
    alert_events::serialize(&txn).await?;
    let restated: Vec<Alert> = stale()
        .all(&*txn)
        .await?
        .into_iter()
        .map(alert_from)
        .collect::<Result<_>>()?;
    if restated.is_empty() {
        return Ok(false);
    }
    let ids: Vec<&str> = restated.iter().map(|a| a.id.as_str()).collect();
    let before = usage::measure(&*txn, Counted::Alerts, &ids).await?;
    alert::Entity::update_many()
        .col_expr(
            alert::Column::Message,
            sea_orm::sea_query::Expr::value(message),
        )
        .filter(alert::Column::Id.is_in(ids.iter().copied()))
        .exec(&*txn)
        .await?;
    let after = usage::measure(&*txn, Counted::Alerts, &ids).await?;
    usage::add_changes(&txn, Counted::Alerts, &before, &after).await?;
    for alert in restated {
        let now_said = Alert {
            message: message.to_owned(),
            ..alert
        };
        alert_events::append(&txn, tenant, AlertEventKind::Restated, &now_said, now).await?;
    }
    txn.commit().await?;
    db.alert_events_appended();
    Ok(true)
}
