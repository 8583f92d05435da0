//! Where a run stands: a module of its own, below both the run (`run`) and the tenant
//! (`tenant`, whose health follows its last finished run).

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

    /// The statuses that count as a success for staleness, retries and retention: a
    /// PARTIAL run did sync the data (only the held part waits).
    pub const SUCCESSES: [RunStatus; 2] = [Self::Success, Self::Partial];
}
