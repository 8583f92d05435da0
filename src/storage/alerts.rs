//! Queries of `alert`.

use anyhow::anyhow;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{entities::alert, Db};
use crate::domain::alert::{Alert, AlertKind};
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// The tenant's open alerts, oldest first.
pub async fn open(db: &Db, tenant: &TenantId) -> Result<Vec<Alert>> {
    alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tenant.as_str()))
        .filter(alert::Column::ResolvedAt.is_null())
        .order_by_asc(alert::Column::OpenedAt)
        .all(db.conn())
        .await?
        .into_iter()
        .map(|m| {
            Ok(Alert {
                kind: AlertKind::parse(&m.kind).ok_or_else(|| {
                    anyhow!("stored alert {} has unknown kind {:?}", m.id, m.kind)
                })?,
                id: m.id,
                message: m.message,
                run_id: m.run_id,
                opened_at: m.opened_at,
                resolved_at: m.resolved_at,
            })
        })
        .collect()
}
