//! Queries of the `tenant` table.

use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::due::{self, Retry};
use super::{alert_events, entities::tenant, freshness, Db};
use crate::domain::due::Moment;
use crate::domain::freshness::FreshnessChange;
use crate::domain::retention::Overrides;
use crate::domain::schedule::{DailyTime, Schedule};
use crate::domain::tenant::{
    parse_timezone, DeleteGuard, DeploymentStatus, IntegrationType, Tenant, TenantId,
};
use crate::error::{AppError, Result};

/// Stores a new tenant with its first due instant; `AlreadyExists` when the id is taken.
pub async fn insert(db: &Db, t: &Tenant) -> Result<()> {
    let txn = db.begin_write().await?;
    tenant::Entity::insert(to_active(t))
        .exec(&*txn)
        .await
        .map_err(|e| AppError::on_conflict(e, || format!("tenant {} already exists", t.id)))?;
    due::write_in(
        &txn,
        t,
        Retry::Set(None),
        Moment::Changed(t.created_at),
        None,
    )
    .await?;
    txn.commit().await
}

/// Computes and stores the tenant's next due instant at `moment` from its stored
/// settings (see [`due::write_in`] for `retry` and `claimed`); None when nothing is due
/// or the tenant is gone.
pub async fn refresh_due(
    db: &Db,
    id: &TenantId,
    retry: Retry,
    moment: Moment,
    claimed: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>> {
    let txn = db.begin_write().await?;
    let Some(model) = tenant::Entity::find_by_id(id.as_str()).one(&*txn).await? else {
        return Ok(None);
    };
    let due = due::write_in(&txn, &from_model(model)?, retry, moment, claimed).await?;
    txn.commit().await?;
    Ok(due)
}

/// The tenant with this id, if any.
pub async fn get(db: &Db, id: &TenantId) -> Result<Option<Tenant>> {
    tenant::Entity::find_by_id(id.as_str())
        .one(db.conn())
        .await?
        .map(from_model)
        .transpose()
}

/// [`get`] on `conn` (a transaction's own view).
pub(crate) async fn get_in(conn: &impl ConnectionTrait, id: &TenantId) -> Result<Option<Tenant>> {
    tenant::Entity::find_by_id(id.as_str())
        .one(conn)
        .await?
        .map(from_model)
        .transpose()
}

/// The tenant with this id, or `NotFound`.
pub async fn require(db: &Db, id: &TenantId) -> Result<Tenant> {
    get(db, id).await?.ok_or_else(|| not_found(id))
}

/// Every tenant, by id.
pub async fn list(db: &Db) -> Result<Vec<Tenant>> {
    tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(db.conn())
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Up to `limit` tenants by id after `after` (from the first for None), only those of
/// `integration_type` when given.
pub async fn page(
    db: &Db,
    integration_type: Option<IntegrationType>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Tenant>> {
    let mut q = tenant::Entity::find();
    if let Some(t) = integration_type {
        q = q.filter(tenant::Column::IntegrationType.eq(t.as_str()));
    }
    if let Some(after) = after {
        q = q.filter(tenant::Column::Id.gt(after));
    }
    q.order_by_asc(tenant::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Changes a tenant's settings atomically: `change` sees the stored row and edits it; the
/// result is written in the same transaction, so concurrent edits never lose each other.
/// When `change` fails nothing is written.
pub async fn update<F>(db: &Db, id: &TenantId, change: F) -> Result<Tenant>
where
    F: FnOnce(&mut Tenant) -> Result<()>,
{
    update_with(db, id, &FreshnessChange::default(), change).await
}

/// [`update`], with a checked change of the tenant's per-table freshness limits written
/// in the same transaction (nothing of either when `change` fails); an open STALE_TABLE
/// alert of a table no longer past its limit is resolved with it.
pub async fn update_with<F>(
    db: &Db,
    id: &TenantId,
    freshness: &FreshnessChange,
    change: F,
) -> Result<Tenant>
where
    F: FnOnce(&mut Tenant) -> Result<()>,
{
    let txn = db.begin_write().await?;
    if !freshness.is_empty() {
        // It may resolve alerts: the feed's lock comes first, as for every alert writer.
        alert_events::serialize(&txn).await?;
    }
    let mut query = tenant::Entity::find_by_id(id.as_str());
    if db.backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    let model = query.one(&*txn).await?.ok_or_else(|| not_found(id))?;
    let mut t = from_model(model.clone())?;
    change(&mut t)?;
    let mut active = model.into_active_model();
    let new = to_active(&t);
    active.name = new.name;
    active.timezone = new.timezone;
    active.erp_name = new.erp_name;
    active.erp_version = new.erp_version;
    active.integration_type = new.integration_type;
    active.deployment_status = new.deployment_status;
    active.business_rule = new.business_rule;
    active.active = new.active;
    active.scheduled = new.scheduled;
    active.schedule_daily = new.schedule_daily;
    active.schedule_cron = new.schedule_cron;
    active.max_without_success_secs = new.max_without_success_secs;
    active.delete_guard_percent = new.delete_guard_percent;
    active.delete_guard_min_rows = new.delete_guard_min_rows;
    active.abc_settings = new.abc_settings;
    active.run_history_days = new.run_history_days;
    active.abc_history_days = new.abc_history_days;
    active.strict_fields = new.strict_fields;
    active.updated_at = new.updated_at;
    active.update(&*txn).await?;
    let resolved = freshness::apply_in(&txn, id, freshness, t.updated_at).await?;
    // Schedule, timezone, flags, the STALE window and table limits all move the due
    // instant.
    due::write_in(&txn, &t, Retry::Keep, Moment::Changed(t.updated_at), None).await?;
    txn.commit().await?;
    freshness::announce_resolved(db, id, resolved);
    Ok(t)
}

fn not_found(id: &TenantId) -> AppError {
    AppError::NotFound(format!("tenant {id} not found"))
}

fn to_active(t: &Tenant) -> tenant::ActiveModel {
    let (daily, cron) = match &t.schedule {
        Schedule::Daily(times) => (
            Some(
                times
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            None,
        ),
        Schedule::Cron(expr) => (None, Some(expr.to_string())),
    };
    tenant::ActiveModel {
        id: Set(t.id.as_str().to_owned()),
        name: Set(t.name.clone()),
        timezone: Set(t.timezone.name().to_owned()),
        erp_name: Set(t.erp_name.clone()),
        erp_version: Set(t.erp_version.clone()),
        integration_type: Set(t.integration_type.as_str().to_owned()),
        deployment_status: Set(t.deployment_status.as_str().to_owned()),
        business_rule: Set(t.business_rule.clone()),
        active: Set(t.active),
        scheduled: Set(t.scheduled),
        schedule_daily: Set(daily),
        schedule_cron: Set(cron),
        max_without_success_secs: Set(t.max_time_without_success.num_seconds()),
        delete_guard_percent: Set(t.delete_guard.percent),
        delete_guard_min_rows: Set(i64::try_from(t.delete_guard.min_rows).unwrap_or(i64::MAX)),
        abc_settings: Set(serde_json::to_string(&t.abc).unwrap_or_else(|_| "{}".to_owned())),
        run_history_days: Set(days_column(t.retention.run_history_days)),
        abc_history_days: Set(days_column(t.retention.abc_history_days)),
        strict_fields: Set(t.strict_fields),
        created_at: Set(t.created_at),
        updated_at: Set(t.updated_at),
    }
}

/// Rows are only ever written from validated tenants, so a row that does not parse is
/// corruption: an internal error naming the tenant, never a panic.
fn from_model(m: tenant::Model) -> Result<Tenant> {
    let ctx = || format!("stored tenant {:?} is corrupt", m.id);
    let schedule = match (&m.schedule_daily, &m.schedule_cron) {
        (Some(daily), None) => {
            let times = daily
                .split(',')
                .map(str::parse::<DailyTime>)
                .collect::<Result<Vec<_>, _>>()
                .with_context(ctx)?;
            Schedule::daily(times).with_context(ctx)?
        }
        (None, Some(cron)) => Schedule::cron(cron).with_context(ctx)?,
        _ => return Err(anyhow!("{}: no schedule or two", ctx()).into()),
    };
    Ok(Tenant {
        id: TenantId::parse(&m.id)
            .map_err(|e| anyhow!(e))
            .with_context(ctx)?,
        timezone: parse_timezone(&m.timezone)
            .map_err(|e| anyhow!(e))
            .with_context(ctx)?,
        integration_type: IntegrationType::parse(&m.integration_type)
            .ok_or_else(|| anyhow!("{}: integration type", ctx()))?,
        deployment_status: DeploymentStatus::parse(&m.deployment_status)
            .ok_or_else(|| anyhow!("{}: deployment status", ctx()))?,
        name: m.name,
        erp_name: m.erp_name,
        erp_version: m.erp_version,
        business_rule: m.business_rule,
        active: m.active,
        scheduled: m.scheduled,
        schedule,
        max_time_without_success: Duration::seconds(m.max_without_success_secs),
        delete_guard: DeleteGuard {
            percent: m.delete_guard_percent,
            min_rows: u64::try_from(m.delete_guard_min_rows).unwrap_or(0),
        },
        abc: serde_json::from_str(&m.abc_settings).with_context(ctx)?,
        retention: Overrides {
            run_history_days: days_of(m.run_history_days),
            abc_history_days: days_of(m.abc_history_days),
        },
        strict_fields: m.strict_fields,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// A window in days as stored (validated ones fit an INTEGER).
fn days_column(days: Option<u32>) -> Option<i32> {
    days.map(|d| i32::try_from(d).unwrap_or(i32::MAX))
}

/// A stored window back; a negative one (never written) reads as the default.
fn days_of(days: Option<i32>) -> Option<u32> {
    days.and_then(|d| u32::try_from(d).ok())
}
