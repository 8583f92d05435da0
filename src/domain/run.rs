//! Sync runs as the overview sees them: status, trigger and timing.

use chrono::{DateTime, Utc};

pub use super::run_status::RunStatus;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    /// The tenant's schedule.
    Schedule,
    /// TriggerSync or `erpsync sync-now`.
    Manual,
    /// The scheduler, after a run failed or was interrupted.
    Retry,
}

impl RunTrigger {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "SCHEDULE",
            Self::Manual => "MANUAL",
            Self::Retry => "RETRY",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Schedule, Self::Manual, Self::Retry]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One run, as listed in the overview's run log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Opaque id (a UUID).
    pub id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// What started it.
    pub trigger: RunTrigger,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished; None while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its error, when it failed.
    pub error: Option<String>,
}

impl RunSummary {
    /// Wall time from start to finish; None while running.
    pub fn duration(&self) -> Option<chrono::Duration> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// The stages of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Gather the records staged since the last delivery.
    Collect,
    /// Check the collected records (they were validated at ingestion).
    Validate,
    /// Hold excessive deletions of companies and contacts.
    DeleteGuard,
    /// Deliver to the CRM sink.
    Push,
    /// ABC-curve analysis.
    Abc,
    /// Categorization into class, lifecycle and portfolio.
    Categorize,
    /// Statistics, status and alerts.
    Finish,
}

impl Stage {
    /// Every stage, in run order.
    pub const ALL: [Stage; 7] = [
        Stage::Collect,
        Stage::Validate,
        Stage::DeleteGuard,
        Stage::Push,
        Stage::Abc,
        Stage::Categorize,
        Stage::Finish,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collect => "collect",
            Self::Validate => "validate",
            Self::DeleteGuard => "delete_guard",
            Self::Push => "push",
            Self::Abc => "abc",
            Self::Categorize => "categorize",
            Self::Finish => "finish",
        }
    }
}

/// One ERP table's counts in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// The table id.
    pub table: String,
    /// Records collected.
    pub received: u64,
    /// Records new to the CRM.
    pub inserted: u64,
    /// Records the CRM already had.
    pub updated: u64,
    /// Records deleted from the CRM.
    pub deleted: u64,
    /// Deletions held by the delete guard.
    pub held: u64,
    /// Records refused.
    pub rejected: u64,
    /// Rows the ERP says it has (ErpIngest.ReportCounts); None when never reported.
    pub erp_count: Option<u64>,
    /// Live records staged at the end of the run.
    pub staged_count: u64,
    /// Records in the CRM at the end of the run (companies and contacts only).
    pub crm_count: Option<u64>,
    /// When `crm_count` was read.
    pub crm_counted_at: Option<DateTime<Utc>>,
    /// Where `crm_count` comes from.
    pub crm_count_source: Option<CrmCountSource>,
}

/// Where a run's CRM count comes from, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmCountSource {
    /// The host's answer to CountRecords, asked after the push.
    HostCount,
    /// The host does not count on demand: the last total it reported with an answer.
    HostTotal,
    /// Neither: erpsync's count of what it delivered to the host.
    Delivered,
    /// The embedded sink's table.
    Embedded,
}

impl CrmCountSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostCount => "HOST_COUNT",
            Self::HostTotal => "HOST_TOTAL",
            Self::Delivered => "DELIVERED",
            Self::Embedded => "EMBEDDED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::HostCount,
            Self::HostTotal,
            Self::Delivered,
            Self::Embedded,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// How long a stage took and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageTiming {
    /// Which stage.
    pub stage: String,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
    /// "ok", "skipped: …", or the error.
    pub outcome: String,
}

impl RunDetail {
    /// What a PARTIAL run left for a person, from what it recorded: the deletions its
    /// delete guard held, per table, and every stage that ended held (the shift guard's
    /// classification); empty when it recorded none.
    pub fn partial_cause(&self) -> String {
        let mut causes: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.held > 0)
            .map(|t| format!("{} {} deletions held by the delete guard", t.held, t.table))
            .collect();
        causes.extend(
            self.stages
                .iter()
                .filter(|s| s.outcome.starts_with("held"))
                .map(|s| format!("{} {}", s.stage, s.outcome)),
        );
        causes.join("; ")
    }
}

/// Severity of a log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Detail.
    Debug,
    /// Progress.
    Info,
    /// Something held back or rejected.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Self; 4] = [Self::Debug, Self::Info, Self::Warn, Self::Error];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One event of a tenant's log, as StreamLogs and GetRun serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Strictly increasing across the deployment.
    pub cursor: u64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Severity.
    pub level: Level,
    /// The run it belongs to, if any.
    pub run_id: Option<String>,
    /// The stage (or "alert", …).
    pub stage: String,
    /// The ERP table concerned, if one.
    pub table: Option<String>,
    /// What a person reads.
    pub message: String,
    /// Structured details.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A run with everything GetRun shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    /// Status, trigger, times.
    pub summary: RunSummary,
    /// Per-table counts.
    pub tables: Vec<TableCounts>,
    /// Per-stage timings, in run order (while it runs, the stages it finished).
    pub stages: Vec<StageTiming>,
    /// While it runs, the stage under way and how far it got.
    pub current: Option<StageProgress>,
}

/// The stage a RUNNING run is in, and how far it got: `done` of `total` records (a
/// total of 0 when the stage cannot know it ahead).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageProgress {
    /// Which stage.
    pub stage: String,
    /// The table it works on now, if one.
    pub table: Option<String>,
    /// Records done.
    pub done: u64,
    /// Records the stage has in all (0: unknown).
    pub total: u64,
}

/// Which events of a tenant's log a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this run's events.
    pub run_id: Option<String>,
    /// Only events at or above this level.
    pub min_level: Option<Level>,
    /// Only this stage's events.
    pub stage: Option<String>,
    /// Only events about this ERP table.
    pub table: Option<String>,
}

impl EventFilter {
    /// Whether `e` passes the filter (the live side; storage filters in SQL).
    pub fn matches(&self, e: &LogEvent) -> bool {
        self.run_id
            .as_deref()
            .is_none_or(|r| e.run_id.as_deref() == Some(r))
            && self.min_level.is_none_or(|l| e.level >= l)
            && self.stage.as_deref().is_none_or(|s| e.stage == s)
            && self
                .table
                .as_deref()
                .is_none_or(|t| e.table.as_deref() == Some(t))
    }
}

/// An event to write, built by [`NewEvent::new`] and its `run`, `table` and `field`
/// (or `fields`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewEvent<'a> {
    /// Whose log.
    pub tenant: &'a super::tenant::TenantId,
    /// The run it belongs to.
    pub run_id: Option<&'a str>,
    /// Severity.
    pub level: Level,
    /// Stage name.
    pub stage: &'a str,
    /// ERP table, if one.
    pub table: Option<&'a str>,
    /// The message.
    pub message: String,
    /// Structured details.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl<'a> NewEvent<'a> {
    /// An event of `tenant`'s log at `level` from `stage` saying `message`: of no run,
    /// no table, without details until given.
    pub fn new(
        tenant: &'a super::tenant::TenantId,
        level: Level,
        stage: &'a str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            tenant,
            run_id: None,
            level,
            stage,
            table: None,
            message: message.into(),
            fields: serde_json::Map::new(),
        }
    }

    /// Of the run `id` (None: of none).
    pub fn run(mut self, id: impl Into<Option<&'a str>>) -> Self {
        self.run_id = id.into();
        self
    }

    /// About the ERP table `table` (None: of none).
    pub fn table(mut self, table: impl Into<Option<&'a str>>) -> Self {
        self.table = table.into();
        self
    }

    /// With the detail `key`: `value`.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// With the details of the object `fields` (anything else adds none).
    pub fn fields(mut self, fields: serde_json::Value) -> Self {
        if let serde_json::Value::Object(fields) = fields {
            self.fields.extend(fields);
        }
        self
    }
}

/// Why a run a draining replica could not finish was handed over to another replica (its
/// error, as stored): the retry rule does not count it as a failed attempt.
pub const HANDED_OVER_CAUSE: &str = "the replica shut down; another replica retries it";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_runs_cause_names_its_held_deletions_and_held_stages() {
        let run = RunDetail {
            summary: RunSummary {
                id: "r".into(),
                status: RunStatus::Partial,
                trigger: RunTrigger::Manual,
                started_at: Utc::now(),
                finished_at: Some(Utc::now()),
                error: None,
            },
            tables: vec![
                TableCounts {
                    table: "company".into(),
                    held: 60,
                    ..TableCounts::default()
                },
                TableCounts {
                    table: "invoice".into(),
                    ..TableCounts::default()
                },
            ],
            stages: vec![
                StageTiming {
                    stage: "delete_guard".into(),
                    duration_ms: 1,
                    outcome: "60 company deletions held".into(),
                },
                StageTiming {
                    stage: "categorize".into(),
                    duration_ms: 1,
                    outcome: "held: 7 of 10 companies would change class".into(),
                },
            ],
            current: None,
        };
        assert_eq!(
            run.partial_cause(),
            "60 company deletions held by the delete guard; categorize held: 7 of 10 companies would change class"
        );
        let none = RunDetail {
            tables: vec![],
            stages: vec![],
            ..run
        };
        assert_eq!(none.partial_cause(), "");
    }
}
