//! Tenants: the overview, settings, schedules and View configurations.

use chrono::{DateTime, SecondsFormat, Utc};

use super::super::pb;
use super::runs::{run, run_table};
use super::values::{duration, timestamp};
use crate::domain::abc::{AbcInput, AbcSettings};
use crate::domain::alert::{Alert, AlertKind};
use crate::domain::freshness::{FreshnessInput, TableFreshness};
use crate::domain::schedule::Schedule;
use crate::domain::tenant::{
    DeploymentStatus, Health, IntegrationType, ScheduleInput, SettingsInput, SettingsUpdate,
    TenantId,
};
use crate::domain::view::{Mode as ViewMode, ViewTable};
use crate::error::FieldViolation;
use crate::overview::Overview;
use crate::view_admin::ViewStatus;

/// The overview message.
pub fn overview(o: Overview) -> pb::Overview {
    let t = o.tenant;
    pb::Overview {
        tenant_id: t.id.to_string(),
        tenant_name: t.name,
        integration_type: integration_type(t.integration_type) as i32,
        erp_name: t.erp_name,
        erp_version: t.erp_version,
        deployment_status: deployment_status(t.deployment_status) as i32,
        active: t.active,
        scheduled: t.scheduled,
        next_run_at: o.next_run_at.map(timestamp),
        next_run_local: o
            .next_run_at
            .map(|at| {
                at.with_timezone(&t.timezone)
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            })
            .unwrap_or_default(),
        timezone: t.timezone.name().to_owned(),
        schedule: Some(schedule(&t.schedule)),
        max_time_without_success: Some(duration(t.max_time_without_success)),
        db_size_bytes: o.db_size_bytes,
        average_duration: o.average_duration.map(duration),
        business_rule: t.business_rule,
        last_success_at: o.last_success_at.map(timestamp),
        health: health(o.health) as i32,
        health_reason: o.health_reason,
        open_alerts: o.open_alerts.into_iter().map(alert).collect(),
        recent_runs: o.recent_runs.into_iter().map(run).collect(),
        tables: o.tables.into_iter().map(run_table).collect(),
        delete_guard_percent: t.delete_guard.percent,
        delete_guard_min_rows: t.delete_guard.min_rows,
        abc: Some(abc_settings(&t.abc)),
        crm_sink: o.crm_sink,
        run_history_days: t.retention.run_history_days,
        abc_history_days: t.retention.abc_history_days,
        table_freshness: o
            .table_freshness
            .iter()
            .map(|f| table_freshness(f, o.as_of))
            .collect(),
        strict_fields: t.strict_fields,
    }
}

/// A table's freshness as of `now`, for the overview.
fn table_freshness(f: &TableFreshness, now: DateTime<Utc>) -> pb::TableFreshnessStatus {
    pb::TableFreshnessStatus {
        table: f.table.as_str().to_owned(),
        max_age: f.max_age.map(duration),
        last_accepted_at: f.last_accepted_at.map(timestamp),
        stale_at: f.stale_at().map(timestamp),
        // Its alert is open (the scheduler's clock said so), or it opens at the next look.
        stale: f.stale_alert.is_some() || f.is_stale(now),
    }
}

pub(super) fn abc_settings(a: &AbcSettings) -> pb::AbcSettings {
    pb::AbcSettings {
        basis: a.basis.table().as_str().to_owned(),
        window_months: a.window_months,
        a_threshold: a.a_threshold.to_string(),
        b_threshold: a.b_threshold.to_string(),
        lifecycle_new_days: a.new_days,
        lifecycle_active_days: a.active_days,
        lifecycle_inactive_days: a.inactive_days,
        shift_guard_percent: a.shift_guard_percent.to_string(),
        shift_guard: a.shift_guard,
    }
}

pub(super) fn schedule(s: &Schedule) -> pb::Schedule {
    match s {
        Schedule::Daily(times) => pb::Schedule {
            daily_times: times.iter().map(ToString::to_string).collect(),
            cron: String::new(),
        },
        Schedule::Cron(expr) => pb::Schedule {
            daily_times: Vec::new(),
            cron: expr.to_string(),
        },
    }
}

/// The wire form of an integration type.
pub fn integration_type(t: IntegrationType) -> pb::IntegrationType {
    match t {
        IntegrationType::Api => pb::IntegrationType::Api,
        IntegrationType::View => pb::IntegrationType::View,
    }
}

/// The domain integration type of a request field; None when unspecified.
pub fn integration_type_from(v: i32) -> Option<Option<IntegrationType>> {
    match pb::IntegrationType::try_from(v).ok()? {
        pb::IntegrationType::Unspecified => Some(None),
        pb::IntegrationType::Api => Some(Some(IntegrationType::Api)),
        pb::IntegrationType::View => Some(Some(IntegrationType::View)),
    }
}

/// The wire form of a deployment status.
pub fn deployment_status(s: DeploymentStatus) -> pb::DeploymentStatus {
    match s {
        DeploymentStatus::NotStarted => pb::DeploymentStatus::NotStarted,
        DeploymentStatus::InProgress => pb::DeploymentStatus::InProgress,
        DeploymentStatus::Completed => pb::DeploymentStatus::Completed,
    }
}

/// The domain deployment status of a request field: Some(None) when unspecified, None
/// when the number is not a value of the enum.
pub fn deployment_status_from(v: i32) -> Option<Option<DeploymentStatus>> {
    match pb::DeploymentStatus::try_from(v).ok()? {
        pb::DeploymentStatus::Unspecified => Some(None),
        pb::DeploymentStatus::NotStarted => Some(Some(DeploymentStatus::NotStarted)),
        pb::DeploymentStatus::InProgress => Some(Some(DeploymentStatus::InProgress)),
        pb::DeploymentStatus::Completed => Some(Some(DeploymentStatus::Completed)),
    }
}

pub(super) fn health(h: Health) -> pb::Health {
    match h {
        Health::Healthy => pb::Health::Healthy,
        Health::Stale => pb::Health::Stale,
        Health::Failing => pb::Health::Failing,
        Health::Inactive => pb::Health::Inactive,
        Health::NeverRun => pb::Health::NeverRun,
        Health::Degraded => pb::Health::Degraded,
    }
}

pub(super) fn alert(a: Alert) -> pb::Alert {
    pb::Alert {
        alert_id: a.id,
        kind: match a.kind {
            AlertKind::Stale => pb::AlertKind::Stale,
            AlertKind::Failing => pb::AlertKind::Failing,
            AlertKind::DeletesHeld => pb::AlertKind::DeletesHeld,
            AlertKind::AbcShiftHeld => pb::AlertKind::AbcShiftHeld,
            AlertKind::StaleTable => pb::AlertKind::StaleTable,
        } as i32,
        message: a.message,
        opened_at: Some(timestamp(a.opened_at)),
        resolved_at: a.resolved_at.map(timestamp),
        run_id: a.run_id.unwrap_or_default(),
    }
}

/// The settings form as sent, validated by the domain's rule: every bad field named (an
/// enum number that is no value of its enum, and the settings' own rules).
pub fn settings_update(
    req: pb::UpdateSettingsRequest,
) -> Result<SettingsUpdate, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let deployment_status = deployment_status_from(req.deployment_status).unwrap_or_else(|| {
        violations.push(FieldViolation::new("deployment_status", "unknown value"));
        None
    });
    let integration_type = integration_type_from(req.integration_type).unwrap_or_else(|| {
        violations.push(FieldViolation::new("integration_type", "unknown value"));
        None
    });
    let parsed = SettingsUpdate::parse(SettingsInput {
        name: req.name,
        erp_name: req.erp_name,
        erp_version: req.erp_version,
        deployment_status,
        business_rule: req.business_rule,
        integration_type,
        delete_guard_percent: req.delete_guard_percent,
        delete_guard_min_rows: req.delete_guard_min_rows,
        abc: AbcInput {
            basis: req.abc_basis,
            window_months: req.abc_window_months,
            a_threshold: req.abc_a_threshold,
            b_threshold: req.abc_b_threshold,
            new_days: req.lifecycle_new_days,
            active_days: req.lifecycle_active_days,
            inactive_days: req.lifecycle_inactive_days,
            shift_guard_percent: req.abc_shift_guard_percent,
            shift_guard: req.abc_shift_guard,
        },
        run_history_days: req.run_history_days,
        abc_history_days: req.abc_history_days,
        table_freshness: req
            .table_freshness
            .into_iter()
            .map(|f| FreshnessInput {
                table: f.table,
                max_age: f.max_age.map(|d| (d.seconds, d.nanos)),
            })
            .collect(),
        clear_table_freshness: req.clear_table_freshness,
        strict_fields: req.strict_fields,
    });
    match parsed {
        Ok(u) if violations.is_empty() => Ok(u),
        Ok(_) => Err(violations),
        Err(mut more) => {
            violations.append(&mut more);
            Err(violations)
        }
    }
}

/// The schedule form as sent, for the domain to validate.
pub fn schedule_input(req: pb::UpdateScheduleRequest) -> ScheduleInput {
    ScheduleInput {
        schedule: req.schedule.map(|s| (s.daily_times, s.cron)),
        timezone: req.timezone,
        max_time_without_success: req.max_time_without_success.map(|d| (d.seconds, d.nanos)),
        active: req.active,
        scheduled: req.scheduled,
    }
}

/// A tenant's View configuration as answered: the URL's password masked, each
/// incremental table with its watermark.
pub fn view_config(tenant: &TenantId, status: &ViewStatus) -> pb::ViewConfig {
    let (integration, watermarks) = (status.integration_type, &status.watermarks);
    let Some(cfg) = &status.config else {
        return pb::ViewConfig {
            tenant_id: tenant.to_string(),
            integration_type: integration_type(integration) as i32,
            ..Default::default()
        };
    };
    pb::ViewConfig {
        tenant_id: tenant.to_string(),
        configured: true,
        url: cfg.redacted_url(),
        backend: cfg
            .backend()
            .map(|b| b.as_str())
            .unwrap_or_default()
            .to_owned(),
        page_size: cfg.page_size,
        tables: cfg
            .tables
            .iter()
            .map(|t| pb::ViewTable {
                table: t.table.clone(),
                view: t.view.clone(),
                mode: match t.mode {
                    ViewMode::Full => pb::ViewMode::Full,
                    ViewMode::Incremental => pb::ViewMode::Incremental,
                } as i32,
                key_column: t.key.clone(),
                columns: t.columns.clone().into_iter().collect(),
                watermark_column: t.watermark.clone().unwrap_or_default(),
                deleted_column: t.deleted.clone().unwrap_or_default(),
                watermark: watermarks
                    .iter()
                    .find(|(table, _)| *table == t.table)
                    .map(|(_, w)| w.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        integration_type: integration_type(integration) as i32,
    }
}

/// A requested view table; an unknown mode is a violation of `tables[i].mode`.
pub fn view_table_from(
    i: usize,
    t: pb::ViewTable,
    violations: &mut Vec<FieldViolation>,
) -> ViewTable {
    let mode = match pb::ViewMode::try_from(t.mode) {
        Ok(pb::ViewMode::Unspecified | pb::ViewMode::Full) => ViewMode::Full,
        Ok(pb::ViewMode::Incremental) => ViewMode::Incremental,
        Err(_) => {
            violations.push(FieldViolation::new(
                format!("tables[{i}].mode"),
                "unknown value: use VIEW_MODE_FULL or VIEW_MODE_INCREMENTAL",
            ));
            ViewMode::Full
        }
    };
    let optional = |s: String| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    ViewTable {
        table: t.table.trim().to_owned(),
        view: t.view.trim().to_owned(),
        mode,
        key: t.key_column.trim().to_owned(),
        columns: t
            .columns
            .into_iter()
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
        watermark: optional(t.watermark_column),
        deleted: optional(t.deleted_column),
    }
}
