//! A tenant (one customer company of the CRM) and its integration settings: the
//! "Informações Gerais" form and the rules that derive its next run and health.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::abc::{AbcInput, AbcSettings};
use super::freshness::{FreshnessChange, FreshnessInput};
use super::run_status::RunStatus;
use super::schedule::{DailyTime, Schedule};
use super::window::parse_window;
use crate::error::FieldViolation;

/// The zone a tenant gets when none is given.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::America::Sao_Paulo;
/// The product's default for "tempo máximo sem sucesso na integração".
pub const DEFAULT_MAX_WITHOUT_SUCCESS: Duration = Duration::hours(24);
pub use super::window::{MAX_MAX_WITHOUT_SUCCESS, MIN_MAX_WITHOUT_SUCCESS};

/// A tenant id: 1–64 of `a-z 0-9 _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Parses a tenant id, with a message a person can act on.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("tenant_id is required".into());
        }
        let ok_first = s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if s.len() > 64 || !ok_first || !ok_rest {
            return Err(format!(
                "tenant_id {} is not valid: use 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit",
                super::text::excerpt(s)
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the ERP's data reaches erpsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationType {
    /// The ERP pushes to the ingestion endpoints.
    Api,
    /// erpsync reads the ERP's SQL views.
    View,
}

impl IntegrationType {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "API",
            Self::View => "VIEW",
        }
    }

    /// Parses "API"/"VIEW", in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "API" => Some(Self::Api),
            "VIEW" => Some(Self::View),
            _ => None,
        }
    }
}

/// Situação da implantação.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// Onboarding has not begun.
    NotStarted,
    /// Onboarding under way.
    InProgress,
    /// Onboarding done: daily operation.
    Completed,
}

impl DeploymentStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "NOT_STARTED",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
        }
    }

    /// Parses the stored spelling, in any case, with `-` or `_`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().replace('-', "_").as_str() {
            "NOT_STARTED" => Some(Self::NotStarted),
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            _ => None,
        }
    }
}

/// Parses an IANA zone name ("America/Sao_Paulo").
pub fn parse_timezone(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>().map_err(|_| {
        format!(
            "{} is not an IANA time zone (e.g. America/Sao_Paulo)",
            super::text::excerpt(s)
        )
    })
}

/// A tenant and its integration settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Every local time and civil date of this tenant is in this zone.
    pub timezone: Tz,
    /// ERP product name.
    pub erp_name: String,
    /// ERP version.
    pub erp_version: String,
    /// API or View.
    pub integration_type: IntegrationType,
    /// Onboarding state.
    pub deployment_status: DeploymentStatus,
    /// Free text shown as "Regra de negócio da integração".
    pub business_rule: String,
    /// Whether the integration runs at all.
    pub active: bool,
    /// Whether the schedule starts runs.
    pub scheduled: bool,
    /// When runs start, in `timezone`.
    pub schedule: Schedule,
    /// Past this without a successful run, the integration is stale.
    pub max_time_without_success: Duration,
    /// When a run's deletions are held (Excessivos Deletes).
    pub delete_guard: DeleteGuard,
    /// The ABC analysis, lifecycle windows and shift guard.
    pub abc: AbcSettings,
    /// How long its history is kept, where it differs from the server's defaults.
    pub retention: super::retention::Overrides,
    /// Strict mode: a pushed record with a field its table does not know is rejected
    /// (by default it is kept, and the answer warns about the field).
    pub strict_fields: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its settings last changed.
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    /// A new tenant with the product's defaults: active, not yet scheduled, schedule
    /// 00:00, 24 h without success, API integration, onboarding not started.
    pub fn new(id: TenantId, name: String, now: DateTime<Utc>) -> Self {
        let midnight = DailyTime::new(0, 0).expect("00:00 is a time of day");
        Self {
            id,
            name,
            timezone: DEFAULT_TIMEZONE,
            erp_name: String::new(),
            erp_version: String::new(),
            integration_type: IntegrationType::Api,
            deployment_status: DeploymentStatus::NotStarted,
            business_rule: String::new(),
            active: true,
            scheduled: false,
            schedule: Schedule::daily(vec![midnight]).expect("one daily time is a schedule"),
            max_time_without_success: DEFAULT_MAX_WITHOUT_SUCCESS,
            delete_guard: DeleteGuard::default(),
            abc: AbcSettings::default(),
            retention: super::retention::Overrides::default(),
            strict_fields: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// The next scheduled run after `now`; None unless active and scheduled.
    pub fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.active && self.scheduled {
            self.schedule.next_after(now, self.timezone)
        } else {
            None
        }
    }
}

/// Delete-guard thresholds: a run's deletions of a table are held when they are more than
/// `percent` of the rows the CRM has and at least `min_rows`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteGuard {
    /// Share of the table, in percent (0 < percent ≤ 100).
    pub percent: f64,
    /// Fewer deletions than this are never held.
    pub min_rows: u64,
}

impl Default for DeleteGuard {
    fn default() -> Self {
        Self {
            percent: 5.0,
            min_rows: 50,
        }
    }
}

impl DeleteGuard {
    /// Whether deleting `deletes` of the `in_crm` rows must be held (an empty CRM table
    /// has nothing to protect).
    pub fn holds(&self, deletes: u64, in_crm: u64) -> bool {
        if in_crm == 0 {
            return false;
        }
        let share = deletes as f64 * 100.0 / in_crm as f64;
        deletes >= self.min_rows && share > self.percent
    }
}

/// The integration's state at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Last run fine and recent enough.
    Healthy,
    /// No success within the window.
    Stale,
    /// Last finished run failed.
    Failing,
    /// Switched off.
    Inactive,
    /// Nothing finished yet.
    NeverRun,
    /// The last finished run ended PARTIAL (deletions or a classification held for a
    /// person): recent, but not all of it went through.
    Degraded,
}

/// What health is derived from.
#[derive(Debug, Clone, Copy)]
pub struct HealthInputs<'a> {
    /// Whether the integration is on.
    pub active: bool,
    /// Status of the newest finished run, if any.
    pub last_finished: Option<RunStatus>,
    /// What the newest finished run left undone or failed with, in its own words (its
    /// error, or what it held): the reason's detail.
    pub last_cause: Option<&'a str>,
    /// When a run last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The staleness window.
    pub max_time_without_success: Duration,
    /// The message of an open STALE_TABLE alert, if any: a table whose data stopped
    /// arriving degrades an integration whose runs succeed.
    pub stale_table: Option<&'a str>,
}

/// A tenant's health and why, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAssessment {
    /// The state.
    pub health: Health,
    /// Why it is not HEALTHY ("the last run was PARTIAL: …"); empty when it is.
    pub reason: String,
}

impl HealthInputs<'_> {
    /// Derives health, the first that applies winning: INACTIVE, NEVER_RUN, FAILING,
    /// STALE, DEGRADED (the last run PARTIAL, or a table past its freshness limit), HEALTHY.
    pub fn health(&self, now: DateTime<Utc>) -> Health {
        self.assess(now).health
    }

    /// [`health`](Self::health), with the reason a person reads.
    pub fn assess(&self, now: DateTime<Utc>) -> HealthAssessment {
        let cause = |what: &str| match self.last_cause.filter(|c| !c.is_empty()) {
            Some(c) => format!("{what}: {c}"),
            None => what.to_owned(),
        };
        let (health, reason) = if !self.active {
            (
                Health::Inactive,
                "the integration is switched off".to_owned(),
            )
        } else if let Some(last) = self.last_finished {
            let recent = self
                .last_success_at
                .filter(|at| now - *at <= self.max_time_without_success);
            match (last, recent) {
                (RunStatus::Failed, _) => (Health::Failing, cause("the last run failed")),
                (_, None) => (
                    Health::Stale,
                    match self.last_success_at {
                        Some(at) => format!(
                            "no successful run since {} (more than {} minutes ago)",
                            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            self.max_time_without_success.num_minutes()
                        ),
                        None => "no run has succeeded yet".to_owned(),
                    },
                ),
                (RunStatus::Partial, Some(_)) => {
                    (Health::Degraded, cause("the last run was PARTIAL"))
                }
                (_, Some(_)) => match self.stale_table {
                    Some(stale) => (Health::Degraded, stale.to_owned()),
                    None => (Health::Healthy, String::new()),
                },
            }
        } else {
            (Health::NeverRun, "no run has finished yet".to_owned())
        };
        HealthAssessment { health, reason }
    }
}

/// A requested change of the schedule form, as received (unvalidated).
#[derive(Debug, Clone, Default)]
pub struct ScheduleInput {
    /// `Some((daily_times, cron))` when a schedule was sent.
    pub schedule: Option<(Vec<String>, String)>,
    /// A new zone name.
    pub timezone: Option<String>,
    /// A new staleness window, as (seconds, nanos) of a protobuf Duration.
    pub max_time_without_success: Option<(i64, i32)>,
    /// Switch the integration on or off.
    pub active: Option<bool>,
    /// Switch the schedule on or off.
    pub scheduled: Option<bool>,
}

/// A validated change of the schedule form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleUpdate {
    schedule: Option<Schedule>,
    timezone: Option<Tz>,
    max_time_without_success: Option<Duration>,
    active: Option<bool>,
    scheduled: Option<bool>,
}

impl ScheduleUpdate {
    /// Validates every field at once, so one answer names every problem.
    pub fn parse(input: ScheduleInput) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut update = Self {
            active: input.active,
            scheduled: input.scheduled,
            ..Self::default()
        };
        if let Some((daily, cron)) = input.schedule {
            update.schedule = parse_schedule(&daily, &cron, &mut violations);
        }
        if let Some(tz) = input.timezone {
            match parse_timezone(&tz) {
                Ok(tz) => update.timezone = Some(tz),
                Err(e) => violations.push(FieldViolation::new("timezone", e)),
            }
        }
        if let Some((secs, nanos)) = input.max_time_without_success {
            match parse_window(secs, nanos) {
                Ok(d) => update.max_time_without_success = Some(d),
                Err(e) => violations.push(FieldViolation::new("max_time_without_success", e)),
            }
        }
        if violations.is_empty() {
            Ok(update)
        } else {
            Err(violations)
        }
    }

    /// Applies the change. Sending a schedule turns scheduling on unless the same
    /// request says `scheduled: false`: saving a time in the form means "run at it".
    pub fn apply(self, tenant: &mut Tenant, now: DateTime<Utc>) {
        if let Some(s) = self.schedule {
            tenant.schedule = s;
            tenant.scheduled = true;
        }
        if let Some(tz) = self.timezone {
            tenant.timezone = tz;
        }
        if let Some(d) = self.max_time_without_success {
            tenant.max_time_without_success = d;
        }
        if let Some(a) = self.active {
            tenant.active = a;
        }
        if let Some(s) = self.scheduled {
            tenant.scheduled = s;
        }
        tenant.updated_at = now;
    }
}

/// Requested changes of the tenant's other settings, as received.
#[derive(Debug, Clone, Default)]
pub struct SettingsInput {
    /// Display name.
    pub name: Option<String>,
    /// ERP product name.
    pub erp_name: Option<String>,
    /// ERP version.
    pub erp_version: Option<String>,
    /// Onboarding state.
    pub deployment_status: Option<DeploymentStatus>,
    /// Business-rule text.
    pub business_rule: Option<String>,
    /// API or View.
    pub integration_type: Option<IntegrationType>,
    /// Delete-guard share, in percent.
    pub delete_guard_percent: Option<f64>,
    /// Delete-guard minimum rows.
    pub delete_guard_min_rows: Option<u64>,
    /// ABC analysis, lifecycle and shift-guard settings.
    pub abc: AbcInput,
    /// Days of runs kept (0: back to the server's default).
    pub run_history_days: Option<u32>,
    /// Days of ABC reports and category changes kept (0: back to the server's default).
    pub abc_history_days: Option<u32>,
    /// Per-table freshness limits to set.
    pub table_freshness: Vec<FreshnessInput>,
    /// Tables whose freshness limit is removed.
    pub clear_table_freshness: Vec<String>,
    /// Strict mode (see [`Tenant::strict_fields`]).
    pub strict_fields: Option<bool>,
}

/// Longest accepted name, ERP name and ERP version, in characters.
const MAX_NAME: usize = 200;
/// Longest accepted business rule, in characters.
const MAX_BUSINESS_RULE: usize = 10_000;

/// Validated changes of the tenant's other settings, with its per-table freshness limits
/// (stored apart from the tenant row: see [`SettingsUpdate::table_freshness`]).
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate(SettingsInput, FreshnessChange);

impl SettingsUpdate {
    /// Validates every field at once.
    pub fn parse(mut input: SettingsInput) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if let Some(name) = input.name.as_mut() {
            *name = name.trim().to_owned();
            if name.is_empty() {
                violations.push(FieldViolation::new("name", "must not be empty"));
            }
        }
        for (field, value, max) in [
            ("name", &input.name, MAX_NAME),
            ("erp_name", &input.erp_name, MAX_NAME),
            ("erp_version", &input.erp_version, MAX_NAME),
            ("business_rule", &input.business_rule, MAX_BUSINESS_RULE),
        ] {
            if let Some(Err(v)) = value.as_deref().map(|v| super::text::check(field, v, max)) {
                violations.push(v);
            }
        }
        if let Some(p) = input.delete_guard_percent {
            if !(p > 0.0 && p <= 100.0) {
                violations.push(FieldViolation::new(
                    "delete_guard_percent",
                    "must be more than 0 and at most 100",
                ));
            }
        }
        if input
            .delete_guard_min_rows
            .is_some_and(|n| n > super::tables::MAX_ROW_COUNT)
        {
            violations.push(FieldViolation::new(
                "delete_guard_min_rows",
                format!("must be at most {}", super::tables::MAX_ROW_COUNT),
            ));
        }
        if input.delete_guard_min_rows == Some(0) {
            violations.push(FieldViolation::new(
                "delete_guard_min_rows",
                "must be at least 1",
            ));
        }
        for (field, days) in [
            ("run_history_days", input.run_history_days),
            ("abc_history_days", input.abc_history_days),
        ] {
            if let Err(v) = super::retention::parse_change(field, days) {
                violations.push(v);
            }
        }
        let freshness = FreshnessChange::parse(
            std::mem::take(&mut input.table_freshness),
            std::mem::take(&mut input.clear_table_freshness),
        )
        .unwrap_or_else(|mut v| {
            violations.append(&mut v);
            FreshnessChange::default()
        });
        if violations.is_empty() {
            Ok(Self(input, freshness))
        } else {
            Err(violations)
        }
    }

    /// The per-table freshness limits it sets and clears: not part of the tenant row, so
    /// [`apply`](Self::apply) leaves them to the caller, who stores them in the same
    /// transaction.
    pub fn table_freshness(&self) -> &FreshnessChange {
        &self.1
    }

    /// Applies the changes; the ABC settings are checked against the stored ones (A < B
    /// whichever of the two changes), and on a violation nothing is applied.
    pub fn apply(self, t: &mut Tenant, now: DateTime<Utc>) -> Result<(), Vec<FieldViolation>> {
        let i = self.0;
        if !i.abc.is_empty() {
            t.abc = t.abc.merged(&i.abc)?;
        }
        if let Some(v) = i.name {
            t.name = v;
        }
        if let Some(v) = i.erp_name {
            t.erp_name = v;
        }
        if let Some(v) = i.erp_version {
            t.erp_version = v;
        }
        if let Some(v) = i.deployment_status {
            t.deployment_status = v;
        }
        if let Some(v) = i.business_rule {
            t.business_rule = v;
        }
        if let Some(v) = i.integration_type {
            t.integration_type = v;
        }
        if let Some(v) = i.delete_guard_percent {
            t.delete_guard.percent = v;
        }
        if let Some(v) = i.delete_guard_min_rows {
            t.delete_guard.min_rows = v;
        }
        // Validated by `parse`: a value that got here is 0 (the default) or in bounds.
        if let Ok(Some(v)) = super::retention::parse_change("run_history_days", i.run_history_days)
        {
            t.retention.run_history_days = v;
        }
        if let Ok(Some(v)) = super::retention::parse_change("abc_history_days", i.abc_history_days)
        {
            t.retention.abc_history_days = v;
        }
        if let Some(v) = i.strict_fields {
            t.strict_fields = v;
        }
        t.updated_at = now;
        Ok(())
    }
}

/// A tenant to create, as asked (the operator's command or Admin.CreateTenant alike).
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    /// Its id, as sent.
    pub id: String,
    /// Display name (required).
    pub name: String,
    /// IANA zone; [`DEFAULT_TIMEZONE`] when None.
    pub timezone: Option<String>,
    /// ERP product name, version, onboarding state, business rule, integration type:
    /// the settings form's fields (defaults for None).
    pub settings: SettingsInput,
}

impl NewTenant {
    /// The tenant with the product's defaults and the fields asked for, or every violation
    /// at once (`tenant_id`, `timezone`, the settings' fields).
    pub fn tenant(self, now: DateTime<Utc>) -> Result<Tenant, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let id = TenantId::parse(&self.id)
            .map_err(|e| violations.push(FieldViolation::new("tenant_id", e)))
            .ok();
        let timezone = match self.timezone.as_deref() {
            None => Some(DEFAULT_TIMEZONE),
            Some(tz) => parse_timezone(tz)
                .map_err(|e| violations.push(FieldViolation::new("timezone", e)))
                .ok(),
        };
        let settings = SettingsUpdate::parse(SettingsInput {
            name: Some(self.name),
            ..self.settings
        })
        .map_err(|mut v| violations.append(&mut v))
        .ok();
        let (Some(id), Some(timezone), Some(settings)) = (id, timezone, settings) else {
            return Err(violations);
        };
        let mut t = Tenant::new(id, String::new(), now);
        t.timezone = timezone;
        settings.apply(&mut t, now)?;
        Ok(t)
    }
}

/// Most daily run times a schedule may list (every 15 minutes); cron says more.
pub const MAX_DAILY_TIMES: usize = 96;

fn parse_schedule(
    daily: &[String],
    cron: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<Schedule> {
    let cron = cron.trim();
    match (daily.is_empty(), cron.is_empty()) {
        (true, true) => {
            violations.push(FieldViolation::new(
                "schedule",
                "set either daily_times (\"HH:MM\" list) or cron",
            ));
            None
        }
        (false, false) => {
            violations.push(FieldViolation::new(
                "schedule",
                "set daily_times or cron, not both",
            ));
            None
        }
        (false, true) => {
            if daily.len() > MAX_DAILY_TIMES {
                violations.push(FieldViolation::new(
                    "schedule.daily_times",
                    format!(
                        "at most {MAX_DAILY_TIMES} times a day, got {}: use cron for more",
                        daily.len()
                    ),
                ));
                return None;
            }
            let before = violations.len();
            let times: Vec<DailyTime> = daily
                .iter()
                .enumerate()
                .filter_map(|(i, t)| match t.parse::<DailyTime>() {
                    Ok(t) => Some(t),
                    Err(e) => {
                        violations.push(FieldViolation::new(
                            format!("schedule.daily_times[{i}]"),
                            e.to_string(),
                        ));
                        None
                    }
                })
                .collect();
            if violations.len() > before {
                return None;
            }
            for (j, t) in times.iter().enumerate() {
                if let Some(i) = times[..j].iter().position(|u| u == t) {
                    violations.push(FieldViolation::new(
                        format!("schedule.daily_times[{j}]"),
                        format!("{t} is already daily_times[{i}]"),
                    ));
                }
            }
            if violations.len() > before {
                return None;
            }
            Schedule::daily(times)
                .map_err(|e| {
                    violations.push(FieldViolation::new("schedule.daily_times", e.to_string()))
                })
                .ok()
        }
        (true, false) => Schedule::cron(cron)
            .map_err(|e| violations.push(FieldViolation::new("schedule.cron", e.to_string())))
            .ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_tenant_takes_the_defaults_or_names_every_bad_field() {
        let now = at("2026-12-07T10:00:00Z");
        let t = NewTenant {
            id: "acme".into(),
            name: " ACME ".into(),
            ..NewTenant::default()
        }
        .tenant(now)
        .unwrap();
        let defaults = Tenant::new(TenantId::parse("acme").unwrap(), "ACME".into(), now);
        assert_eq!(t, defaults);
        let bad = NewTenant {
            id: "Not an id".into(),
            name: String::new(),
            timezone: Some("Mars/Base".into()),
            settings: SettingsInput {
                delete_guard_percent: Some(0.0),
                ..SettingsInput::default()
            },
        };
        let fields: Vec<String> = bad
            .tenant(now)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            ["tenant_id", "timezone", "name", "delete_guard_percent"]
        );
    }

    #[test]
    fn a_window_out_of_any_range_is_refused_not_panicked_on() {
        for (secs, nanos) in [
            (i64::MAX, 0),
            (10_000_000_000_000_000, 0),
            (86_400, 2_000_000_000),
            (86_400, i32::MAX),
            (-1, 0),
            (0, -1),
        ] {
            assert!(parse_window(secs, nanos).is_err(), "{secs} s {nanos} ns");
        }
        assert_eq!(parse_window(86_400, 0), Ok(Duration::hours(24)));
    }

    #[test]
    fn the_delete_guard_holds_more_than_its_share_and_at_least_its_rows() {
        let g = DeleteGuard::default();
        assert!(g.holds(60, 200));
        assert!(!g.holds(10, 200), "5 %: not more than 5 %");
        assert!(!g.holds(49, 100), "under 50 rows");
        assert!(!g.holds(50, 0), "an empty CRM table has nothing to protect");
    }

    #[test]
    fn tenant_ids_are_checked() {
        assert!(TenantId::parse("acme-01_x").is_ok());
        for bad in ["", "Acme", "-acme", "a b", "ação", &"a".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn new_tenant_is_not_scheduled_so_has_no_next_run() {
        let t = Tenant::new(
            TenantId::parse("t").unwrap(),
            "T".into(),
            at("2026-11-28T12:00:00Z"),
        );
        assert_eq!(t.next_run_at(at("2026-11-28T12:00:00Z")), None);
        assert_eq!(t.timezone, DEFAULT_TIMEZONE);
    }

    #[test]
    fn health_is_derived_in_order_inactive_never_failing_stale() {
        let now = at("2026-11-28T12:00:00Z");
        let base = HealthInputs {
            active: true,
            last_finished: None,
            last_cause: None,
            last_success_at: None,
            max_time_without_success: Duration::hours(24),
            stale_table: None,
        };
        assert_eq!(base.health(now), Health::NeverRun);
        assert_eq!(
            HealthInputs {
                active: false,
                ..base
            }
            .health(now),
            Health::Inactive
        );
        let ok = HealthInputs {
            last_finished: Some(RunStatus::Success),
            last_success_at: Some(now - Duration::hours(1)),
            ..base
        };
        assert_eq!(ok.health(now), Health::Healthy);
        assert_eq!(
            HealthInputs {
                last_finished: Some(RunStatus::Failed),
                ..ok
            }
            .health(now),
            Health::Failing
        );
        assert_eq!(
            HealthInputs {
                last_success_at: Some(now - Duration::hours(25)),
                ..ok
            }
            .health(now),
            Health::Stale
        );
    }

    #[test]
    fn a_recent_partial_run_degrades_health_with_its_cause_below_failing_and_stale() {
        let now = at("2026-11-28T12:00:00Z");
        let partial = HealthInputs {
            active: true,
            last_finished: Some(RunStatus::Partial),
            last_cause: Some("60 company deletions held by the delete guard"),
            last_success_at: Some(now - Duration::hours(1)),
            max_time_without_success: Duration::hours(24),
            stale_table: None,
        };
        assert_eq!(
            partial.assess(now),
            HealthAssessment {
                health: Health::Degraded,
                reason: "the last run was PARTIAL: 60 company deletions held by the delete guard"
                    .into()
            }
        );
        // Staleness and the switch come first.
        let old = HealthInputs {
            last_success_at: Some(now - Duration::hours(25)),
            ..partial
        };
        assert_eq!(old.health(now), Health::Stale);
        assert!(old
            .assess(now)
            .reason
            .starts_with("no successful run since 2026-11-27T11:00:00Z"));
        let off = HealthInputs {
            active: false,
            ..partial
        };
        assert_eq!(off.health(now), Health::Inactive);
        // A success after it: healthy, no reason.
        let ok = HealthInputs {
            last_finished: Some(RunStatus::Success),
            last_cause: None,
            ..partial
        };
        assert_eq!(
            ok.assess(now),
            HealthAssessment {
                health: Health::Healthy,
                reason: String::new()
            }
        );
        let failed = HealthInputs {
            last_finished: Some(RunStatus::Failed),
            last_cause: Some("push: the CRM is down"),
            ..partial
        };
        assert_eq!(
            failed.assess(now).reason,
            "the last run failed: push: the CRM is down"
        );
    }

    #[test]
    fn a_stale_table_degrades_an_integration_whose_runs_succeed() {
        let now = at("2026-11-28T12:00:00Z");
        let stale_invoices = "no new invoice records accepted since 2026-11-21T12:00:00+00:00";
        let ok = HealthInputs {
            active: true,
            last_finished: Some(RunStatus::Success),
            last_cause: None,
            last_success_at: Some(now - Duration::hours(1)),
            max_time_without_success: Duration::hours(24),
            stale_table: Some(stale_invoices),
        };
        assert_eq!(
            ok.assess(now),
            HealthAssessment {
                health: Health::Degraded,
                reason: stale_invoices.into()
            }
        );
        // A failing or stale integration says so first.
        let failed = HealthInputs {
            last_finished: Some(RunStatus::Failed),
            ..ok
        };
        assert_eq!(failed.health(now), Health::Failing);
        assert_eq!(
            HealthInputs {
                stale_table: None,
                ..ok
            }
            .health(now),
            Health::Healthy
        );
    }

    #[test]
    fn schedule_update_names_every_bad_field() {
        let err = ScheduleUpdate::parse(ScheduleInput {
            schedule: Some((vec!["25:00".into(), "12:00".into()], String::new())),
            timezone: Some("Mars/Olympus".into()),
            max_time_without_success: Some((0, 0)),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "schedule.daily_times[0]",
                "timezone",
                "max_time_without_success"
            ]
        );
    }

    #[test]
    fn sending_a_schedule_turns_scheduling_on_unless_told_otherwise() {
        let now = at("2026-11-28T12:00:00Z");
        let mut t = Tenant::new(TenantId::parse("t").unwrap(), "T".into(), now);
        let input = |scheduled| ScheduleInput {
            schedule: Some((vec!["00:00".into()], String::new())),
            scheduled,
            ..Default::default()
        };
        ScheduleUpdate::parse(input(None))
            .unwrap()
            .apply(&mut t, now);
        assert!(t.scheduled);
        ScheduleUpdate::parse(input(Some(false)))
            .unwrap()
            .apply(&mut t, now);
        assert!(!t.scheduled);
    }
}
