//! Queries of `alert`, through the entity (`entities::alert`).

use anyhow::anyhow;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryFilter, QueryOrder};

use super::{entities::alert, Db};
use crate::domain::alert::{Alert, AlertKind};
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
    let txn = db.begin_write().await?;
    let open = alert::Entity::find()
        .filter(alert::Entity::open_of_kind(tenant.as_str(), kind.as_str()))
        .one(&*txn)
        .await?;
    if open.is_some() {
        return Ok(false);
    }
    alert::Entity::insert(alert::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.as_str().to_owned()),
        kind: Set(kind.as_str().to_owned()),
        message: Set(message.to_owned()),
        run_id: Set(run_id.map(str::to_owned)),
        opened_at: Set(now),
        resolved_at: Set(None),
    })
    .exec(&*txn)
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Resolves the open alert of `kind`, if any; returns whether there was one.
pub async fn resolve(
    db: &Db,
    tenant: &TenantId,
    kind: AlertKind,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    let txn = db.begin_write().await?;
    let res = alert::Entity::update_many()
        .col_expr(
            alert::Column::ResolvedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(alert::Entity::open_of_kind(tenant.as_str(), kind.as_str()))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(res.rows_affected > 0)
}
