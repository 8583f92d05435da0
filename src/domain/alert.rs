//! Alerts raised on a tenant: open until the condition that raised them goes away.

use chrono::{DateTime, Utc};

use super::tenant::TenantId;
use super::text::excerpt;
use crate::error::FieldViolation;

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
    /// A table past its freshness limit without a new accepted record (one per table;
    /// see [`crate::domain::freshness`]).
    StaleTable,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Stale,
        Self::Failing,
        Self::DeletesHeld,
        Self::AbcShiftHeld,
        Self::StaleTable,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stale => "STALE",
            Self::Failing => "FAILING",
            Self::DeletesHeld => "DELETES_HELD",
            Self::AbcShiftHeld => "ABC_SHIFT_HELD",
            Self::StaleTable => "STALE_TABLE",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
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

/// What happened to an alert, as the alert feed tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEventKind {
    /// The alert was raised.
    Opened,
    /// The condition went away.
    Resolved,
    /// The open alert's message changed to state the condition as it is now (how many
    /// deletions are held).
    Restated,
}

impl AlertEventKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "OPENED",
            Self::Resolved => "RESOLVED",
            Self::Restated => "RESTATED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Opened, Self::Resolved, Self::Restated]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A position in the alert feed: the events after it are those not yet received. Callers
/// see it as opaque text ([`AlertCursor::encode`]); it is the database's event number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertCursor(u64);

impl AlertCursor {
    /// Before the first event.
    pub const START: Self = Self(0);

    /// The cursor of the event numbered `n`.
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The event number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The text callers get, and give back as `after_cursor`.
    pub fn encode(self) -> String {
        self.0.to_string()
    }

    /// An `after_cursor` as sent: empty for [`START`](Self::START), else a cursor this
    /// feed gave out (at most 19 digits, within the database's 64-bit numbers).
    pub fn parse(text: &str) -> Result<Self, FieldViolation> {
        if text.is_empty() {
            return Ok(Self::START);
        }
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse::<i64>().ok())
            .flatten()
            .and_then(|n| u64::try_from(n).ok())
            .map(Self)
            .ok_or_else(|| {
                FieldViolation::new(
                    "after_cursor",
                    format!(
                        "{} is not a cursor of the alert feed: send an AlertEvent's cursor as \
                         received, or empty to start from the first event kept",
                        excerpt(text)
                    ),
                )
            })
    }
}

/// One event of the alert feed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// Where the feed resumes after this event.
    pub cursor: AlertCursor,
    /// Whose alert.
    pub tenant: TenantId,
    /// Opened or resolved.
    pub kind: AlertEventKind,
    /// The alert as of the event (`resolved_at` set when resolved).
    pub alert: Alert,
    /// When it happened.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_names_after_cursor() {
        assert_eq!(AlertCursor::parse(""), Ok(AlertCursor::START));
        let c = AlertCursor::new(42);
        assert_eq!(AlertCursor::parse(&c.encode()), Ok(c));
        assert_eq!(
            AlertCursor::parse("9223372036854775807"),
            Ok(AlertCursor::new(i64::MAX as u64))
        );
        for bad in ["-1", "+1", " 1", "1a", "abc", "9223372036854775808", "1.0"] {
            let err = AlertCursor::parse(bad).unwrap_err();
            assert_eq!(err.field, "after_cursor", "{bad}");
        }
    }
}
