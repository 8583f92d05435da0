//! Alerts raised on a tenant: open until the condition that raised them goes away.

use chrono::{DateTime, Utc};

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// No successful run within the staleness window.
    Stale,
    /// The last run failed.
    Failing,
    /// Deletions held by the delete guard.
    DeletesHeld,
    /// A classification held by the ABC shift guard.
    AbcShiftHeld,
}

impl AlertKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stale => "STALE",
            Self::Failing => "FAILING",
            Self::DeletesHeld => "DELETES_HELD",
            Self::AbcShiftHeld => "ABC_SHIFT_HELD",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Stale,
            Self::Failing,
            Self::DeletesHeld,
            Self::AbcShiftHeld,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Opaque id.
    pub id: String,
    /// Why it was raised.
    pub kind: AlertKind,
    /// What a person reads.
    pub message: String,
    /// The run that raised it, if one did.
    pub run_id: Option<String>,
    /// When it was raised.
    pub opened_at: DateTime<Utc>,
    /// When it went away; None while open.
    pub resolved_at: Option<DateTime<Utc>>,
}
