//! Why a schedule could not be built, naming the cron field at fault.

use std::fmt;

/// Why a schedule could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A daily time was not of the form "HH:MM" within 00:00-23:59.
    #[error("{0:?} is not a time of day: expected HH:MM between 00:00 and 23:59")]
    InvalidDailyTime(String),
    /// A daily schedule was given no times at all.
    #[error("the schedule has no daily times")]
    NoDailyTimes,
    /// A cron expression did not have exactly five fields.
    #[error("cron: expected 5 fields (minute hour day-of-month month day-of-week), got {0}")]
    CronFieldCount(usize),
    /// One field of a cron expression is malformed.
    #[error("{field}: {reason}")]
    InvalidCronField {
        /// The offending field.
        field: CronField,
        /// What is wrong with it.
        reason: String,
    },
    /// A cron expression is well formed but matches no calendar date.
    #[error("cron expression never fires: {0:?} matches no calendar date")]
    CronNeverFires(String),
}

/// One of the five fields of a cron expression, named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// The first field, 0-59.
    Minute,
    /// The second field, 0-23.
    Hour,
    /// The third field, 1-31.
    DayOfMonth,
    /// The fourth field, 1-12 or JAN-DEC.
    Month,
    /// The fifth field, 0-7 (0 and 7 are Sunday) or SUN-SAT.
    DayOfWeek,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        })
    }
}
