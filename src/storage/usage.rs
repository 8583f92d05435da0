//! How much of the intermediate database a tenant takes (the overview's "Tamanho do
//! banco de dados da integração").
//!
//! A tenant's share is the sum, over every row it owns, of the stored text form of each
//! column: the same definition on SQLite and PostgreSQL. Small tables are measured by the
//! database itself through the tenant indexes; the big ones (staging, request log) keep
//! running counters in `tenant_usage`, updated in the same transaction as the rows, so the
//! overview never scans millions of rows. Runs and alerts grow with history too: their
//! writes measure the rows they change and move `run_bytes` / `alert_bytes` by the
//! difference ([`measure`], [`add_changes`]).

use std::collections::HashMap;

use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};

use super::entities::tenant_usage;
use crate::domain::tenant::TenantId;
use crate::error::Result;

pub(crate) use super::bulk::usage::{measure, Counted};
pub use super::bulk::usage::{tenant_db_size, tenant_db_size_measured};

/// A change of a tenant's counted usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    /// Staged rows added (negative: removed).
    pub staged_rows: i64,
    /// Staged bytes added.
    pub staged_bytes: i64,
    /// Request-log rows added.
    pub request_log_rows: i64,
    /// Request-log bytes added.
    pub request_log_bytes: i64,
    /// Run bytes added.
    pub run_bytes: i64,
    /// Alert bytes added.
    pub alert_bytes: i64,
}

/// Adds `d` to the tenant's counters, inside the caller's transaction.
pub async fn add(conn: &DatabaseTransaction, tenant: &TenantId, d: Delta) -> Result<()> {
    if d == Delta::default() {
        return Ok(());
    }
    tenant_usage::Entity::insert(tenant_usage::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        staged_rows: Set(d.staged_rows),
        staged_bytes: Set(d.staged_bytes),
        request_log_rows: Set(d.request_log_rows),
        request_log_bytes: Set(d.request_log_bytes),
        run_bytes: Set(d.run_bytes),
        alert_bytes: Set(d.alert_bytes),
    })
    .on_conflict(tenant_usage::Entity::add_to_existing())
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Moves each tenant's `which` counter by what its rows measured `after` a write less
/// what they measured `before` it (both from [`measure`], in the write's transaction).
pub(crate) async fn add_changes(
    txn: &DatabaseTransaction,
    which: Counted,
    before: &HashMap<String, i64>,
    after: &HashMap<String, i64>,
) -> Result<()> {
    let tenants = before
        .keys()
        .chain(after.keys().filter(|t| !before.contains_key(*t)));
    for tenant in tenants {
        let change =
            after.get(tenant).copied().unwrap_or(0) - before.get(tenant).copied().unwrap_or(0);
        let id = TenantId::parse(tenant)
            .map_err(|e| anyhow::anyhow!("stored tenant {tenant:?}: {e}"))?;
        let d = match which {
            Counted::Runs => Delta {
                run_bytes: change,
                ..Delta::default()
            },
            Counted::Alerts => Delta {
                alert_bytes: change,
                ..Delta::default()
            },
        };
        add(txn, &id, d).await?;
    }
    Ok(())
}
