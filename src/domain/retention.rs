//! How long a tenant's history is kept: the server's defaults, a tenant's overrides, and
//! what is kept whatever its age. The retention job (`worker::retention`) asks this module
//! for each tenant's windows; the settings form validates overrides here.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FieldViolation;

/// Default days a run (with its stages, tables and events) is kept: a quarter of traces,
/// far longer than the overview's 30-run average and the request log's 30 days.
pub const DEFAULT_RUN_HISTORY_DAYS: u32 = 90;
/// Default days an ABC report and a category change are kept: a full year of monthly
/// and daily classifications plus a month, so a company's history always shows the same
/// month of last year.
pub const DEFAULT_ABC_HISTORY_DAYS: u32 = 400;
/// Fewest days a window may be: the Histórico export and a week of traces.
pub const MIN_DAYS: u32 = 7;
/// Most days a window may be (ten years); longer is "forever" in practice.
pub const MAX_DAYS: u32 = 3650;
/// A tenant's newest runs kept with their stages, tables and events whatever their age:
/// the overview's average covers 30 finished runs and its run log shows 10.
pub const KEEP_RUNS: u64 = 30;

/// The server's windows, in days (`serve --run-history-days`, `--abc-history-days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Runs, their stages, tables and events.
    pub run_history_days: u32,
    /// ABC reports and category changes.
    pub abc_history_days: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            run_history_days: DEFAULT_RUN_HISTORY_DAYS,
            abc_history_days: DEFAULT_ABC_HISTORY_DAYS,
        }
    }
}

/// A tenant's own windows, where it differs from the server's (None: the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// Days of runs, their stages, tables and events.
    pub run_history_days: Option<u32>,
    /// Days of ABC reports and category changes.
    pub abc_history_days: Option<u32>,
}

/// The instants before which a tenant's history may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Runs started before this (and their stages, tables, events) may go.
    pub runs: DateTime<Utc>,
    /// ABC reports computed and category changes made before this may go.
    pub abc: DateTime<Utc>,
}

impl Overrides {
    /// The windows in force: the tenant's where set, else the server's, as of `now`.
    pub fn cutoffs(&self, defaults: Defaults, now: DateTime<Utc>) -> Cutoffs {
        let before = |days: u32| now - Duration::days(i64::from(days));
        Cutoffs {
            runs: before(self.run_history_days.unwrap_or(defaults.run_history_days)),
            abc: before(self.abc_history_days.unwrap_or(defaults.abc_history_days)),
        }
    }
}

/// A requested change of one override, as the settings form sends it: `Some(0)` goes
/// back to the server's default, `Some(days)` sets it, None leaves it.
pub fn parse_change(field: &str, days: Option<u32>) -> Result<Option<Option<u32>>, FieldViolation> {
    match days {
        None => Ok(None),
        Some(0) => Ok(Some(None)),
        Some(d) if (MIN_DAYS..=MAX_DAYS).contains(&d) => Ok(Some(Some(d))),
        Some(d) => Err(FieldViolation::new(
            field,
            format!(
                "must be 0 (the server's default) or from {MIN_DAYS} to {MAX_DAYS} days, got {d}"
            ),
        )),
    }
}

/// Whether `days` may be a server default.
pub fn valid_default(days: u32) -> bool {
    (MIN_DAYS..=MAX_DAYS).contains(&days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_wins_over_the_default_and_none_falls_back() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let o = Overrides {
            run_history_days: Some(10),
            abc_history_days: None,
        };
        let c = o.cutoffs(Defaults::default(), now);
        assert_eq!(c.runs, now - Duration::days(10));
        assert_eq!(c.abc, now - Duration::days(400));
    }

    #[test]
    fn a_change_is_zero_for_the_default_or_within_bounds() {
        assert_eq!(parse_change("f", None), Ok(None));
        assert_eq!(parse_change("f", Some(0)), Ok(Some(None)));
        assert_eq!(parse_change("f", Some(7)), Ok(Some(Some(7))));
        assert_eq!(parse_change("f", Some(3650)), Ok(Some(Some(3650))));
        for bad in [1, 6, 3651, u32::MAX] {
            let e = parse_change("run_history_days", Some(bad)).err();
            assert!(
                e.as_ref()
                    .is_some_and(|v| v.field == "run_history_days"
                        && v.description.contains("from 7 to 3650")),
                "{bad}: {e:?}"
            );
        }
    }
}
