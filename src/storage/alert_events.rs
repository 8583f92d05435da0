//! Queries of `alert_event`: the alert feed, one row per alert opened or resolved,
//! appended in the transaction that opens or resolves the alert ([`super::alerts`]), read
//! by cursor (`entities::alert_event`).
//!
//! The cursor is an autoincrement number, and the appends are serialized so that cursors
//! also commit in order: any read sees a prefix of the feed, and a reader that resumes
//! after the last cursor it saw never skips an event that committed late. SQLite has one
//! writer; on PostgreSQL every transaction that may append takes one advisory lock
//! ([`serialize`]) before it reads or writes anything and holds it to the commit (the
//! sequence alone would not do: two writers could commit cursors 11 then 10, and a reader
//! between the two commits would pass 10 by). Alerts are rare, so one lock for the whole
//! feed costs nothing; it also makes an alert's check-then-write atomic (an alert is
//! raised once, resolved once).

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    DatabaseTransaction, EntityTrait, QuerySelect,
};

use super::entities::alert_event::{self, Entity};
use super::{bulk, notify, Db};
use crate::domain::alert::{Alert, AlertCursor, AlertEvent, AlertEventKind, AlertKind};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Serializes the transaction's feed appends with every other's: taken first, held to
/// the commit (a no-op on SQLite, whose writers are serialized already).
pub(super) async fn serialize(txn: &DatabaseTransaction) -> Result<()> {
    bulk::backend::hold_until_commit(txn, "alert_event").await
}

/// Appends that `alert` of `tenant` was opened or resolved at `at`, within `txn`, which
/// has called [`serialize`].
pub(super) async fn append(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    kind: AlertEventKind,
    alert: &Alert,
    at: DateTime<Utc>,
) -> Result<()> {
    Entity::insert(alert_event::ActiveModel {
        cursor: NotSet,
        tenant_id: Set(tenant.as_str().to_owned()),
        alert_id: Set(alert.id.clone()),
        event: Set(kind.as_str().to_owned()),
        kind: Set(alert.kind.as_str().to_owned()),
        message: Set(alert.message.clone()),
        run_id: Set(alert.run_id.clone()),
        opened_at: Set(alert.opened_at),
        at: Set(at),
    })
    .exec(txn)
    .await?;
    // Other replicas' watchers hear of it once the transaction commits.
    bulk::backend::notify_at_commit(txn, notify::ALERT_CHANNEL, tenant.as_str()).await
}

/// The events after `after` (of `tenants` only, when given), oldest first, at most
/// `limit`.
pub async fn page(
    db: &Db,
    tenants: Option<&[TenantId]>,
    after: AlertCursor,
    limit: u64,
) -> Result<Vec<AlertEvent>> {
    let ids: Option<Vec<String>> =
        tenants.map(|t| t.iter().map(|t| t.as_str().to_owned()).collect());
    let after = i64::try_from(after.get()).unwrap_or(i64::MAX);
    Entity::after(after, ids.as_deref())
        .limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(event_from)
        .collect()
}

fn event_from(m: alert_event::Model) -> Result<AlertEvent> {
    let kind = AlertEventKind::parse(&m.event)
        .ok_or_else(|| anyhow!("stored alert event {} is {:?}", m.cursor, m.event))?;
    Ok(AlertEvent {
        cursor: AlertCursor::new(u64::try_from(m.cursor).unwrap_or(0)),
        tenant: TenantId::parse(&m.tenant_id).map_err(|e| anyhow!("stored alert event: {e}"))?,
        kind,
        alert: Alert {
            id: m.alert_id,
            kind: AlertKind::parse(&m.kind).ok_or_else(|| {
                anyhow!(
                    "stored alert event {} has alert kind {:?}",
                    m.cursor,
                    m.kind
                )
            })?,
            message: m.message,
            run_id: m.run_id,
            opened_at: m.opened_at,
            resolved_at: (kind == AlertEventKind::Resolved).then_some(m.at),
        },
        at: m.at,
    })
}
