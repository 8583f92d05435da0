//! The only place that maps between domain values and prost types.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::pb;
use crate::domain::abc::{
    amount_text, AbcClass, AbcReport, AbcSettings, Category, CategoryChange, Lifecycle,
};
use crate::domain::alert::{Alert, AlertKind};
use crate::domain::export::ExportKind;
use crate::domain::run::{
    Level, LogEvent, RunDetail, RunStatus, RunSummary, RunTrigger, TableCounts,
};
use crate::domain::schedule::Schedule;
use crate::domain::tables::TableDef;
use crate::domain::tenant::{DeploymentStatus, Health, IntegrationType, ScheduleInput, TenantId};
use crate::domain::view::{Mode as ViewMode, ViewTable};
use crate::error::FieldViolation;
use crate::overview::Overview;
use crate::worker::view_admin::ViewStatus;

/// An instant as a protobuf Timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf Timestamp as an instant, when it is one: nanos within 0..1e9 and the
/// instant within protobuf's range (0001-01-01 to 9999-12-31).
pub fn instant(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let nanos = u32::try_from(at.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    (MIN..=MAX)
        .contains(&at.seconds)
        .then(|| DateTime::from_timestamp(at.seconds, nanos))
        .flatten()
}

/// A span as a protobuf Duration (same sign on both parts, as protobuf requires).
pub fn duration(d: Duration) -> prost_types::Duration {
    let seconds = d.num_seconds();
    let nanos = (d - Duration::seconds(seconds))
        .num_nanoseconds()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0);
    prost_types::Duration { seconds, nanos }
}

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
        open_alerts: o.open_alerts.into_iter().map(alert).collect(),
        recent_runs: o.recent_runs.into_iter().map(run).collect(),
        tables: o.tables.into_iter().map(run_table).collect(),
        delete_guard_percent: t.delete_guard.percent,
        delete_guard_min_rows: t.delete_guard.min_rows,
        abc: Some(abc_settings(&t.abc)),
    }
}

fn abc_settings(a: &AbcSettings) -> pb::AbcSettings {
    pb::AbcSettings {
        basis: a.basis.table().to_owned(),
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

fn schedule(s: &Schedule) -> pb::Schedule {
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

fn integration_type(t: IntegrationType) -> pb::IntegrationType {
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

fn deployment_status(s: DeploymentStatus) -> pb::DeploymentStatus {
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

fn health(h: Health) -> pb::Health {
    match h {
        Health::Healthy => pb::Health::Healthy,
        Health::Stale => pb::Health::Stale,
        Health::Failing => pb::Health::Failing,
        Health::Inactive => pb::Health::Inactive,
        Health::NeverRun => pb::Health::NeverRun,
    }
}

fn alert(a: Alert) -> pb::Alert {
    pb::Alert {
        alert_id: a.id,
        kind: match a.kind {
            AlertKind::Stale => pb::AlertKind::Stale,
            AlertKind::Failing => pb::AlertKind::Failing,
            AlertKind::DeletesHeld => pb::AlertKind::DeletesHeld,
            AlertKind::AbcShiftHeld => pb::AlertKind::AbcShiftHeld,
        } as i32,
        message: a.message,
        opened_at: Some(timestamp(a.opened_at)),
        resolved_at: a.resolved_at.map(timestamp),
        run_id: a.run_id.unwrap_or_default(),
    }
}

/// A run with its counts and timings.
pub fn run_detail(d: RunDetail) -> pb::Run {
    let mut r = run(d.summary);
    r.tables = d.tables.into_iter().map(run_table).collect();
    r.stages = d
        .stages
        .into_iter()
        .map(|s| pb::RunStage {
            stage: s.stage,
            duration: Some(duration(Duration::milliseconds(
                i64::try_from(s.duration_ms).unwrap_or(i64::MAX),
            ))),
            outcome: s.outcome,
        })
        .collect();
    r.current = d.current.map(|c| pb::RunProgress {
        stage: c.stage,
        table: c.table.unwrap_or_default(),
        done: c.done,
        total: c.total,
    });
    r
}

fn run_table(t: TableCounts) -> pb::RunTable {
    pb::RunTable {
        table: t.table,
        received: t.received,
        inserted: t.inserted,
        updated: t.updated,
        deleted: t.deleted,
        held: t.held,
        rejected: t.rejected,
        erp_count: t.erp_count,
        staged_count: t.staged_count,
        crm_count: t.crm_count.unwrap_or_default(),
    }
}

/// A log event.
pub fn log_event(e: LogEvent) -> pb::LogEvent {
    pb::LogEvent {
        cursor: e.cursor,
        at: Some(timestamp(e.at)),
        level: match e.level {
            Level::Debug => pb::LogLevel::Debug,
            Level::Info => pb::LogLevel::Info,
            Level::Warn => pb::LogLevel::Warn,
            Level::Error => pb::LogLevel::Error,
        } as i32,
        run_id: e.run_id.unwrap_or_default(),
        stage: e.stage,
        table: e.table,
        message: e.message,
        fields: Some(prost_types::Struct {
            fields: e
                .fields
                .into_iter()
                .map(|(k, v)| (k, json_value(v)))
                .collect(),
        }),
        heartbeat: false,
    }
}

/// A JSON object as a protobuf Struct.
pub fn json_struct(m: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
    }
}

fn json_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(m) => Kind::StructValue(prost_types::Struct {
            fields: m.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The domain status of a request filter: Some(None) when unspecified, None when unknown.
pub fn run_status_from(v: i32) -> Option<Option<RunStatus>> {
    Some(match pb::RunStatus::try_from(v).ok()? {
        pb::RunStatus::Unspecified => None,
        pb::RunStatus::Running => Some(RunStatus::Running),
        pb::RunStatus::Success => Some(RunStatus::Success),
        pb::RunStatus::Partial => Some(RunStatus::Partial),
        pb::RunStatus::Failed => Some(RunStatus::Failed),
        pb::RunStatus::Interrupted => Some(RunStatus::Interrupted),
    })
}

/// A run as listed.
pub fn run(r: RunSummary) -> pb::Run {
    pb::Run {
        duration: r.duration().map(duration),
        run_id: r.id,
        status: match r.status {
            RunStatus::Running => pb::RunStatus::Running,
            RunStatus::Success => pb::RunStatus::Success,
            RunStatus::Partial => pb::RunStatus::Partial,
            RunStatus::Failed => pb::RunStatus::Failed,
            RunStatus::Interrupted => pb::RunStatus::Interrupted,
        } as i32,
        trigger: match r.trigger {
            RunTrigger::Schedule => pb::RunTrigger::Schedule,
            RunTrigger::Manual => pb::RunTrigger::Manual,
            RunTrigger::Retry => pb::RunTrigger::Retry,
        } as i32,
        started_at: Some(timestamp(r.started_at)),
        finished_at: r.finished_at.map(timestamp),
        tables: Vec::new(),
        stages: Vec::new(),
        errors: r.error.into_iter().collect(),
        current: None,
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

/// One catalog entry.
pub fn table_info(t: &TableDef) -> pb::TableInfo {
    pb::TableInfo {
        id: t.id.to_owned(),
        label: t.label.to_owned(),
        description: t.description.to_owned(),
        required_fields: t.required_fields.iter().map(|f| (*f).to_owned()).collect(),
        window_days: t.window_days,
    }
}

/// A pushed record as the JSON the ingest rules read (the same shape HTTP clients send);
/// consumes the record so its strings move instead of being copied.
pub fn record_json(r: pb::Record) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    if let Some(at) = &r.updated_at {
        // An invalid Timestamp stays visible as text, so the record is rejected naming
        // `updated_at` instead of being staged without it.
        let rendered = match instant(at) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None => format!(
                "Timestamp {{ seconds: {}, nanos: {} }} (outside 0001-01-01..9999-12-31, or nanos outside 0..999999999)",
                at.seconds, at.nanos
            ),
        };
        obj.insert("updated_at".into(), rendered.into());
    }
    obj.insert("external_id".into(), r.external_id.into());
    obj.insert(
        "fields".into(),
        r.fields.map_or_else(
            || serde_json::Value::Object(Default::default()),
            struct_json,
        ),
    );
    obj.insert("deleted".into(), r.deleted.into());
    serde_json::Value::Object(obj)
}

fn struct_json(s: prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_json(v)))
            .collect(),
    )
}

fn value_json(v: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => b.into(),
        // Struct numbers are doubles; integral ones are kept integral so ids and
        // quantities read as the ERP wrote them.
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(n as i64)
            } else {
                // NaN and ±Infinity have no JSON number: kept as their text, the field's
                // rule rejects them by name ("is not a number") instead of as missing.
                serde_json::Number::from_f64(n)
                    .map_or_else(|| n.to_string().into(), serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => s.into(),
        Some(Kind::ListValue(l)) => l
            .values
            .into_iter()
            .map(value_json)
            .collect::<Vec<_>>()
            .into(),
        Some(Kind::StructValue(s)) => struct_json(s),
    }
}

/// The push answer.
pub fn push_response(r: crate::ingest::PushReply) -> pb::PushResponse {
    pb::PushResponse {
        request_id: r.request_id,
        accepted: r.accepted,
        rejected: r
            .rejected
            .into_iter()
            .map(|x| pb::Rejection {
                index: x.index,
                external_id: x.external_id,
                field: x.field,
                reason: x.reason,
            })
            .collect(),
    }
}

/// A held deletion.
pub fn pending_delete(p: crate::domain::crm::PendingDelete) -> pb::PendingDelete {
    pb::PendingDelete {
        table: p.table,
        external_id: p.external_id,
        name: p.name,
        document: p.document,
        detected_run_id: p.detected_run_id,
        detected_at: Some(timestamp(p.detected_at)),
        state: p.state,
        state_changed_at: Some(timestamp(p.state_changed_at)),
    }
}

/// A company's categories as the CRM sink receives them.
pub fn company_category(c: Category) -> pb::CompanyCategory {
    pb::CompanyCategory {
        external_id: c.external_id,
        abc_class: c
            .abc_class
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default(),
        lifecycle: c.lifecycle.as_str().to_owned(),
        portfolio: c.portfolio,
        revenue: amount_text(i128::from(c.revenue)),
    }
}

fn abc_class(c: Option<AbcClass>) -> pb::AbcClass {
    match c {
        Some(AbcClass::A) => pb::AbcClass::A,
        Some(AbcClass::B) => pb::AbcClass::B,
        Some(AbcClass::C) => pb::AbcClass::C,
        None => pb::AbcClass::Unspecified,
    }
}

/// A class filter: None for unspecified, Err for a value this server does not know.
pub fn abc_class_from(v: i32) -> Result<Option<AbcClass>, ()> {
    match pb::AbcClass::try_from(v) {
        Ok(pb::AbcClass::Unspecified) => Ok(None),
        Ok(pb::AbcClass::A) => Ok(Some(AbcClass::A)),
        Ok(pb::AbcClass::B) => Ok(Some(AbcClass::B)),
        Ok(pb::AbcClass::C) => Ok(Some(AbcClass::C)),
        Err(_) => Err(()),
    }
}

fn lifecycle(l: Option<Lifecycle>) -> pb::Lifecycle {
    match l {
        Some(Lifecycle::Prospect) => pb::Lifecycle::Prospect,
        Some(Lifecycle::New) => pb::Lifecycle::New,
        Some(Lifecycle::Active) => pb::Lifecycle::Active,
        Some(Lifecycle::AtRisk) => pb::Lifecycle::AtRisk,
        Some(Lifecycle::Inactive) => pb::Lifecycle::Inactive,
        None => pb::Lifecycle::Unspecified,
    }
}

/// A lifecycle filter: None for unspecified, Err for an unknown value.
pub fn lifecycle_from(v: i32) -> Result<Option<Lifecycle>, ()> {
    match pb::Lifecycle::try_from(v) {
        Ok(pb::Lifecycle::Unspecified) => Ok(None),
        Ok(pb::Lifecycle::Prospect) => Ok(Some(Lifecycle::Prospect)),
        Ok(pb::Lifecycle::New) => Ok(Some(Lifecycle::New)),
        Ok(pb::Lifecycle::Active) => Ok(Some(Lifecycle::Active)),
        Ok(pb::Lifecycle::AtRisk) => Ok(Some(Lifecycle::AtRisk)),
        Ok(pb::Lifecycle::Inactive) => Ok(Some(Lifecycle::Inactive)),
        Err(_) => Err(()),
    }
}

/// A categorized company as ListCompanies shows it.
pub fn company(c: Category) -> pb::Company {
    pb::Company {
        external_id: c.external_id,
        name: c.name,
        document: c.document,
        abc_class: abc_class(c.abc_class) as i32,
        lifecycle: lifecycle(Some(c.lifecycle)) as i32,
        portfolio: c.portfolio,
        revenue: amount_text(i128::from(c.revenue)),
        first_purchase: c.first_purchase.map(|d| d.to_string()).unwrap_or_default(),
        last_purchase: c.last_purchase.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// One change of a company's categorization history.
pub fn category_change(h: CategoryChange) -> pb::CategoryChange {
    pb::CategoryChange {
        run_id: h.run_id,
        date: h.changed_on.to_string(),
        changed_at: Some(timestamp(h.changed_at)),
        abc_from: abc_class(h.abc_from) as i32,
        abc_to: abc_class(h.abc_to) as i32,
        lifecycle_from: lifecycle(h.lifecycle_from) as i32,
        lifecycle_to: lifecycle(h.lifecycle_to) as i32,
    }
}

/// The ABC report, with the run whose classification is held (if any).
pub fn abc_report(tenant: &str, r: AbcReport, held_run_id: Option<String>) -> pb::AbcReport {
    let without = r
        .summary
        .iter()
        .find(|s| s.class.is_none())
        .map_or(0, |s| s.companies);
    pb::AbcReport {
        tenant_id: tenant.to_owned(),
        basis: r.basis.table().to_owned(),
        window_from: r.window_from.to_string(),
        window_to: r.window_to.to_string(),
        a_threshold: r.a_threshold.to_string(),
        b_threshold: r.b_threshold.to_string(),
        classes: r
            .summary
            .into_iter()
            .filter(|s| s.class.is_some())
            .map(|s| pb::AbcClassSummary {
                abc_class: abc_class(s.class) as i32,
                companies: s.companies,
                revenue: amount_text(s.revenue),
                revenue_share: format!("{:.2}", s.share),
            })
            .collect(),
        curve: r
            .curve
            .into_iter()
            .map(|(c, v)| pb::ParetoPoint {
                company_share: format!("{c:.2}"),
                revenue_share: format!("{v:.2}"),
            })
            .collect(),
        computed_at: Some(timestamp(r.computed_at)),
        run_id: r.run_id,
        state: r.state.as_str().to_owned(),
        companies: r.companies,
        companies_changed: r.changed,
        companies_compared: r.base,
        held_run_id: held_run_id.unwrap_or_default(),
        companies_without_class: without,
    }
}

/// The export kind asked for (UNSPECIFIED means REQUESTS); None for an unknown value.
pub fn export_kind_from(v: i32) -> Option<ExportKind> {
    match pb::ExportKind::try_from(v).ok()? {
        pb::ExportKind::Unspecified | pb::ExportKind::Requests => Some(ExportKind::Requests),
        pb::ExportKind::ExcessiveDeletes => Some(ExportKind::ExcessiveDeletes),
        pb::ExportKind::Runs => Some(ExportKind::Runs),
    }
}

/// A piece of an exported file.
pub fn export_chunk(c: crate::export::Chunk) -> pb::ExportChunk {
    pb::ExportChunk {
        filename: c.filename.unwrap_or_default(),
        content_type: c.content_type.unwrap_or_default().to_owned(),
        data: c.data,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost_types::value::Kind;

    fn any_value() -> impl Strategy<Value = prost_types::Value> {
        let leaf = prop_oneof![
            Just(Kind::NullValue(0)),
            any::<bool>().prop_map(Kind::BoolValue),
            any::<f64>().prop_map(Kind::NumberValue),
            Just(Kind::NumberValue(f64::NAN)),
            Just(Kind::NumberValue(f64::INFINITY)),
            ".{0,20}".prop_map(Kind::StringValue),
        ]
        .prop_map(|k| prop_types_value(Some(k)));
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| {
                prop_types_value(Some(Kind::StructValue(prost_types::Struct {
                    fields: m.into_iter().collect(),
                })))
            })
        })
    }

    fn prop_types_value(kind: Option<Kind>) -> prost_types::Value {
        prost_types::Value { kind }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::domain::hostile_props::cases()))]

        /// Any pushed gRPC record (any Struct, any Timestamp) becomes JSON the ingest rules
        /// judge: never a panic, never a record staged with a timestamp it did not send.
        #[test]
        fn any_grpc_record_is_judged(
            id in ".{0,20}",
            fields in prop::collection::btree_map("(name|document|total|.{0,6})", any_value(), 0..6),
            seconds in any::<i64>(),
            nanos in any::<i32>(),
            with_time in any::<bool>(),
        ) {
            let record = pb::Record {
                external_id: id,
                fields: Some(prost_types::Struct { fields: fields.into_iter().collect() }),
                updated_at: with_time.then_some(prost_types::Timestamp { seconds, nanos }),
                deleted: false,
            };
            let valid_time = record.updated_at.as_ref().is_some_and(|t| instant(t).is_some());
            let json = record_json(record);
            let table = crate::domain::tables::find("company").unwrap();
            let judged = crate::domain::batch::judge(table, &[json], chrono_tz::UTC);
            prop_assert_eq!(judged.valid.len() + judged.rejected.len(), 1);
            if with_time && !valid_time {
                prop_assert!(judged.valid.is_empty());
            }
        }
    }
}
