//! Sync runs as the overview sees them: status, trigger and timing.

use chrono::{DateTime, Utc};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Still going.
    Running,
    /// Finished with everything applied.
    Success,
    /// Finished, with something held back or rejected.
    Partial,
    /// Finished without applying its work.
    Failed,
    /// Cut short by a crash or shutdown.
    Interrupted,
}

impl RunStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Partial => "PARTIAL",
            Self::Failed => "FAILED",
            Self::Interrupted => "INTERRUPTED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Success,
            Self::Partial,
            Self::Failed,
            Self::Interrupted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// A PARTIAL run did sync the data (only the held part waits), so it counts as a
    /// success for staleness.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Success | Self::Partial)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    /// The tenant's schedule.
    Schedule,
    /// TriggerSync or `erpsync sync-now`.
    Manual,
}

impl RunTrigger {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "SCHEDULE",
            Self::Manual => "MANUAL",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Schedule, Self::Manual]
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
