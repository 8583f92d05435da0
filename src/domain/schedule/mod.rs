//! The schedule of a tenant's sync runs, evaluated in the tenant's IANA time
//! zone so that runs follow the tenant's wall clock across DST changes.
//!
//! DST rules:
//! * a local time that does not exist on a day (spring-forward gap) runs once,
//!   at the transition instant; several scheduled times in one gap collapse
//!   into that single run;
//! * a local time that occurs twice (fall-back overlap) runs once, at the
//!   earlier instant.
//!
//! Both rules are the same thing: a scheduled local time `L` runs at the first
//! instant whose local time is `L` or later. That mapping never decreases as
//! `L` grows, which is what lets the search below stop at the first hit.
//!
//! The parts a schedule is made of have their own files: `daily_time.rs` ("HH:MM") and
//! `cron.rs` (five-field expressions); `error.rs` says why one could not be built.

mod cron;
mod daily_time;
mod error;

use chrono::{
    DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone,
    Utc,
};
use chrono_tz::Tz;

use self::cron::GREGORIAN_CYCLE_DAYS;

pub use self::cron::CronExpr;
pub use self::daily_time::DailyTime;
pub use self::error::{CronField, ScheduleError};

/// The longest clock jump to step over when a local time does not exist.
/// Samoa skipped a whole day in 2011; a little slack keeps that case covered.
const MAX_GAP_MINUTES: u32 = 26 * 60;

/// When the sync runs: daily local times or a cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at each of these local times.
    Daily(Vec<DailyTime>),
    /// Whenever the cron expression matches the local wall clock.
    Cron(CronExpr),
}

impl Schedule {
    /// Daily times, sorted and deduplicated; rejects an empty list.
    pub fn daily(mut times: Vec<DailyTime>) -> Result<Self, ScheduleError> {
        if times.is_empty() {
            return Err(ScheduleError::NoDailyTimes);
        }
        times.sort_unstable();
        times.dedup();
        Ok(Self::Daily(times))
    }

    /// Parses a cron expression and rejects one that never fires (e.g. "0 0 30 2 *", "0 0 31 4 *").
    pub fn cron(expr: &str) -> Result<Self, ScheduleError> {
        let expr: CronExpr = expr.parse()?;
        if !expr.fires_on_some_date() {
            return Err(ScheduleError::CronNeverFires(expr.to_string()));
        }
        Ok(Self::Cron(expr))
    }

    /// The first run strictly after `now`, in `tz`. None only if it can never fire (cannot happen for a value built by the constructors, but must not panic).
    pub fn next_after(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        // A cron pattern that fires at all fires within one Gregorian cycle,
        // so this bound only cuts off searches that could never succeed.
        let start = scan_start(now);
        let end = start
            .checked_add_days(Days::new(GREGORIAN_CYCLE_DAYS + 3))
            .unwrap_or(NaiveDate::MAX);
        let mut next = None;
        self.scan(tz, start, end, |run| {
            if run > now {
                next = Some(run);
                false
            } else {
                true
            }
        });
        next
    }

    /// All runs in (from, to], in order (used by the scheduler and by tests).
    pub fn runs_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: Tz,
    ) -> Vec<DateTime<Utc>> {
        let mut runs: Vec<DateTime<Utc>> = Vec::new();
        if to <= from {
            return runs;
        }
        // Local dates lie within a day of UTC dates; two days of slack also
        // covers a run pushed forward past midnight by a gap.
        let end = to
            .date_naive()
            .checked_add_days(Days::new(2))
            .unwrap_or(NaiveDate::MAX);
        self.scan(tz, scan_start(from), end, |run| {
            if run > to {
                return false;
            }
            // Times inside one gap map to the same instant; keep it once.
            if run > from && runs.last().is_none_or(|last| run > *last) {
                runs.push(run);
            }
            true
        });
        runs
    }

    /// Feeds `visit` the run instant of every scheduled local time on the
    /// local dates `start..=end`, in order, until `visit` returns false.
    fn scan(
        &self,
        tz: Tz,
        start: NaiveDate,
        end: NaiveDate,
        mut visit: impl FnMut(DateTime<Utc>) -> bool,
    ) {
        let times: Vec<NaiveTime> = match self {
            Self::Daily(times) => {
                // The variant is public, so it may hold an unsorted list; the
                // early stop in callers relies on ascending order.
                let mut times: Vec<NaiveTime> =
                    times.iter().filter_map(|t| t.naive_time()).collect();
                times.sort_unstable();
                times.dedup();
                times
            }
            Self::Cron(expr) => expr.times_of_day(),
        };
        if times.is_empty() {
            return;
        }
        for date in start.iter_days().take_while(|date| *date <= end) {
            if matches!(self, Self::Cron(expr) if !expr.matches_date(date)) {
                continue;
            }
            for time in &times {
                if resolve_local(tz, date.and_time(*time)).is_some_and(|run| !visit(run)) {
                    return;
                }
            }
        }
    }
}

/// The local date to start searching from for runs after `now`.
fn scan_start(now: DateTime<Utc>) -> NaiveDate {
    // Offsets are under a day, so the local date of `now` is at least the UTC
    // date minus one; one more day absorbs runs pushed forward by a gap.
    let date = now.date_naive();
    date.checked_sub_days(Days::new(2)).unwrap_or(date)
}

/// The local wall-clock time at instant `t`, or `None` past chrono's range.
fn local_time(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = t.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// The instant a run scheduled at local time `local` happens: the first
/// instant whose local time is `local` or later (also where a local day starts).
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.to_utc()),
        LocalResult::None => gap_end(tz, local),
    }
}

/// The transition instant that ends the gap containing `local`.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut candidate = local;
    for _ in 0..MAX_GAP_MINUTES {
        candidate = candidate.checked_add_signed(TimeDelta::minutes(1))?;
        let mut run = match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.to_utc(),
            LocalResult::None => continue,
        };
        // Historical offsets with seconds (local mean time) end gaps between
        // whole minutes; walk back to the exact transition.
        for _ in 0..60 {
            let Some(earlier) = run.checked_sub_signed(TimeDelta::seconds(1)) else {
                break;
            };
            match local_time(tz, earlier) {
                Some(earlier_local) if earlier_local >= local => run = earlier,
                _ => break,
            }
        }
        return Some(run);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test literal is RFC 3339")
            .to_utc()
    }

    fn daily(times: &[&str]) -> Schedule {
        Schedule::daily(
            times
                .iter()
                .map(|t| t.parse().expect("test literal is HH:MM"))
                .collect(),
        )
        .expect("non-empty")
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::cron(expr).expect("test expression is valid")
    }

    fn cron_err(expr: &str) -> String {
        match Schedule::cron(expr) {
            Ok(s) => panic!("{expr:?} unexpectedly parsed as {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn local_start_of(tz: Tz, y: i32, m: u32, d: u32) -> DateTime<Utc> {
        let midnight = NaiveDate::from_ymd_opt(y, m, d)
            .expect("valid date")
            .and_hms_opt(0, 0, 0)
            .expect("valid time");
        resolve_local(tz, midnight).expect("resolvable")
    }

    // ---- DailyTime ----

    #[test]
    fn daily_sorts_dedups_and_rejects_empty() {
        assert_eq!(
            Schedule::daily(vec![]).unwrap_err().to_string(),
            "the schedule has no daily times"
        );
        let s = daily(&["18:00", "06:30", "18:00"]);
        let expected: Vec<DailyTime> = ["06:30", "18:00"]
            .iter()
            .map(|t| t.parse().expect("valid"))
            .collect();
        assert_eq!(s, Schedule::Daily(expected));
    }

    // ---- daily schedules and DST ----

    #[test]
    fn daily_whole_year_one_run_per_local_date() {
        for tz in [Tz::America__New_York, Tz::Europe__Berlin] {
            for (year, days) in [(2023, 365), (2024, 366)] {
                for time in ["00:00", "02:30"] {
                    let from = local_start_of(tz, year, 1, 1) - TimeDelta::seconds(1);
                    let to = local_start_of(tz, year + 1, 1, 1) - TimeDelta::seconds(1);
                    let runs = daily(&[time]).runs_between(from, to, tz);
                    assert_eq!(runs.len(), days, "{tz} {year} {time}");
                    let dates: BTreeSet<NaiveDate> = runs
                        .iter()
                        .map(|r| r.with_timezone(&tz).date_naive())
                        .collect();
                    assert_eq!(dates.len(), days, "{tz} {year} {time}");
                    assert!(dates.iter().all(|d| d.year() == year));
                    assert!(runs.windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }

    #[test]
    fn spring_forward_gap_runs_at_transition() {
        let ny = Tz::America__New_York;
        // 2024-03-10: 02:00 EST -> 03:00 EDT, at 07:00Z.
        let s = daily(&["02:30"]);
        assert_eq!(
            s.next_after(utc("2024-03-10T00:00:00Z"), ny),
            Some(utc("2024-03-10T07:00:00Z"))
        );
        // Several times inside the gap collapse into one run.
        let s = daily(&["01:59", "02:00", "02:15", "02:45", "03:00", "03:01"]);
        let runs = s.runs_between(utc("2024-03-10T06:00:00Z"), utc("2024-03-10T08:00:00Z"), ny);
        assert_eq!(
            runs,
            vec![
                utc("2024-03-10T06:59:00Z"),
                utc("2024-03-10T07:00:00Z"),
                utc("2024-03-10T07:01:00Z"),
            ]
        );

        let berlin = Tz::Europe__Berlin;
        // 2024-03-31: 02:00 CET -> 03:00 CEST, at 01:00Z.
        assert_eq!(
            daily(&["02:30"]).next_after(utc("2024-03-30T12:00:00Z"), berlin),
            Some(utc("2024-03-31T01:00:00Z"))
        );
        let local = utc("2024-03-31T01:00:00Z").with_timezone(&berlin);
        assert_eq!((local.hour(), local.minute()), (3, 0));
    }

    #[test]
    fn fall_back_overlap_runs_once_at_earlier_instant() {
        let ny = Tz::America__New_York;
        // 2024-11-03: 01:00-02:00 happens twice; first pass is EDT (-4).
        let s = daily(&["01:30"]);
        let runs = s.runs_between(utc("2024-11-02T12:00:00Z"), utc("2024-11-03T12:00:00Z"), ny);
        assert_eq!(runs, vec![utc("2024-11-03T05:30:00Z")]);
        // Asked during the second pass of 01:30, the run already happened.
        assert_eq!(
            s.next_after(utc("2024-11-03T06:10:00Z"), ny),
            Some(utc("2024-11-04T06:30:00Z"))
        );

        let berlin = Tz::Europe__Berlin;
        // 2024-10-27: 02:00-03:00 happens twice; first pass is CEST (+2).
        let runs = daily(&["02:30"]).runs_between(
            utc("2024-10-26T12:00:00Z"),
            utc("2024-10-27T12:00:00Z"),
            berlin,
        );
        assert_eq!(runs, vec![utc("2024-10-27T00:30:00Z")]);
    }

    #[test]
    fn sao_paulo_missing_midnight() {
        let sp = Tz::America__Sao_Paulo;
        // 2018-11-04: clocks went 00:00 -> 01:00 (-03 -> -02).
        assert_eq!(
            daily(&["00:00"]).next_after(utc("2018-11-03T12:00:00Z"), sp),
            Some(utc("2018-11-04T03:00:00Z"))
        );
        assert_eq!(
            utc("2018-11-04T03:00:00Z").with_timezone(&sp).to_rfc3339(),
            "2018-11-04T01:00:00-02:00"
        );
        // No DST since 2019.
        assert_eq!(
            daily(&["00:00"]).next_after(utc("2026-11-28T12:00:00Z"), sp),
            Some(utc("2026-11-29T03:00:00Z"))
        );
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        let lh = Tz::Australia__Lord_Howe;
        // 2024-10-06: 02:00 +10:30 -> 02:30 +11, at 2024-10-05T15:30Z.
        let runs = daily(&["02:00", "02:15", "02:30"]).runs_between(
            utc("2024-10-05T12:00:00Z"),
            utc("2024-10-06T12:00:00Z"),
            lh,
        );
        assert_eq!(runs, vec![utc("2024-10-05T15:30:00Z")]);
        // 2024-04-07: 02:00 +11 -> 01:30 +10:30; 01:45 happens twice.
        let runs = daily(&["01:45"]).runs_between(
            utc("2024-04-06T00:00:00Z"),
            utc("2024-04-07T00:00:00Z"),
            lh,
        );
        assert_eq!(runs, vec![utc("2024-04-06T14:45:00Z")]);
    }

    #[test]
    fn next_after_is_strict() {
        let s = daily(&["09:00", "17:00"]);
        let tz = Tz::Asia__Kolkata;
        let run = utc("2024-05-01T03:30:00Z"); // 09:00 IST
        assert_eq!(s.next_after(run, tz), Some(utc("2024-05-01T11:30:00Z")));
        assert_eq!(s.next_after(run - TimeDelta::seconds(1), tz), Some(run));
        assert!(s.runs_between(run, run, tz).is_empty());
        let earlier = run - TimeDelta::hours(1);
        assert!(s.runs_between(run, earlier, tz).is_empty());
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let schedules = [
            daily(&["00:00", "23:59"]),
            cron("*/15 * * * *"),
            cron("0 0 29 2 *"),
            Schedule::Daily(vec![]),
            Schedule::Cron("0 0 30 2 *".parse().expect("well formed")),
        ];
        for s in &schedules {
            for tz in [
                Tz::UTC,
                Tz::Pacific__Kiritimati,
                Tz::Etc__GMTPlus12,
                Tz::Asia__Kolkata,
            ] {
                for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                    let _ = s.next_after(now, tz);
                    let _ = s.runs_between(now, now, tz);
                }
                let _ = s.runs_between(
                    DateTime::<Utc>::MIN_UTC,
                    DateTime::<Utc>::MIN_UTC + TimeDelta::days(3),
                    tz,
                );
                let _ = s.runs_between(
                    DateTime::<Utc>::MAX_UTC - TimeDelta::days(3),
                    DateTime::<Utc>::MAX_UTC,
                    tz,
                );
            }
        }
        assert_eq!(
            Schedule::Daily(vec![]).next_after(utc("2024-01-01T00:00:00Z"), Tz::UTC),
            None
        );
        assert_eq!(
            Schedule::Cron("0 0 30 2 *".parse().expect("well formed"))
                .next_after(utc("2024-01-01T00:00:00Z"), Tz::UTC),
            None
        );
    }

    #[test]
    fn unsorted_daily_variant_still_ordered() {
        let t = |s: &str| s.parse::<DailyTime>().expect("valid");
        let s = Schedule::Daily(vec![t("18:00"), t("06:00"), t("18:00")]);
        let runs = s.runs_between(
            utc("2024-01-01T00:00:00Z"),
            utc("2024-01-02T00:00:00Z"),
            Tz::UTC,
        );
        assert_eq!(
            runs,
            vec![utc("2024-01-01T06:00:00Z"), utc("2024-01-01T18:00:00Z")]
        );
    }

    #[test]
    fn samoa_skipped_day() {
        // Pacific/Apia skipped 2011-12-30 entirely (-10 -> +14).
        let apia = Tz::Pacific__Apia;
        let runs = daily(&["12:00"]).runs_between(
            utc("2011-12-28T00:00:00Z"),
            utc("2011-12-31T12:00:00Z"),
            apia,
        );
        let locals: Vec<String> = runs
            .iter()
            .map(|r| r.with_timezone(&apia).format("%Y-%m-%d %H:%M").to_string())
            .collect();
        // The skipped day's noon collapses into the transition at 00:00 on
        // 2011-12-31, just before that day's own noon run.
        assert_eq!(
            locals,
            [
                "2011-12-28 12:00",
                "2011-12-29 12:00",
                "2011-12-31 00:00",
                "2011-12-31 12:00",
            ]
        );
    }

    // ---- cron ----

    #[test]
    fn cron_every_quarter_hour_across_dst() {
        let ny = Tz::America__New_York;
        let s = cron("*/15 * * * *");
        // Spring forward: 02:00-02:45 collapse into 03:00 EDT (07:00Z).
        let runs = s.runs_between(utc("2024-03-10T06:00:00Z"), utc("2024-03-10T08:00:00Z"), ny);
        let expected: Vec<_> = (1..=8)
            .map(|i| utc("2024-03-10T06:00:00Z") + TimeDelta::minutes(15 * i))
            .collect();
        assert_eq!(runs, expected);
        // Fall back: the repeated hour runs once, so 75 minutes pass between
        // 01:45 EDT and 02:00 EST.
        let runs = s.runs_between(utc("2024-11-03T05:30:00Z"), utc("2024-11-03T07:30:00Z"), ny);
        assert_eq!(
            runs,
            vec![
                utc("2024-11-03T05:45:00Z"),
                utc("2024-11-03T07:00:00Z"),
                utc("2024-11-03T07:15:00Z"),
                utc("2024-11-03T07:30:00Z"),
            ]
        );
    }

    #[test]
    fn cron_weekdays_at_nine() {
        let berlin = Tz::Europe__Berlin;
        let s = cron("0 9 * * MON-FRI");
        let runs = s.runs_between(
            utc("2024-06-02T00:00:00Z"),
            utc("2024-06-09T00:00:00Z"),
            berlin,
        );
        let expected: Vec<_> = (3..=7)
            .map(|d| utc(&format!("2024-06-{d:02}T07:00:00Z")))
            .collect();
        assert_eq!(runs, expected);
        // Names are case-insensitive; equality still compares the text.
        assert_eq!(
            cron("0 9 * * mon-fri").runs_between(
                utc("2024-06-02T00:00:00Z"),
                utc("2024-06-09T00:00:00Z"),
                berlin
            ),
            runs
        );
    }

    #[test]
    fn cron_first_of_month() {
        let s = cron("0 0 1 * *");
        let runs = s.runs_between(
            utc("2023-12-31T23:00:00Z"),
            utc("2024-12-31T23:00:00Z"),
            Tz::UTC,
        );
        assert_eq!(runs.len(), 12);
        assert!(runs.iter().all(|r| r.day() == 1 && r.hour() == 0));
    }

    #[test]
    fn cron_sunday_half_past_two_across_dst() {
        for (tz, spring_day, spring_run, fall_day, fall_run) in [
            (
                Tz::America__New_York,
                "2024-03-10T00:00:00Z",
                "2024-03-10T07:00:00Z",
                "2024-11-03T00:00:00Z",
                "2024-11-03T07:30:00Z",
            ),
            (
                Tz::Europe__Berlin,
                "2024-03-30T12:00:00Z",
                "2024-03-31T01:00:00Z",
                "2024-10-26T12:00:00Z",
                "2024-10-27T00:30:00Z",
            ),
        ] {
            for expr in ["30 2 * * 0", "30 2 * * 7", "30 2 * * sun"] {
                let s = cron(expr);
                assert_eq!(s.next_after(utc(spring_day), tz), Some(utc(spring_run)));
                assert_eq!(s.next_after(utc(fall_day), tz), Some(utc(fall_run)));
            }
        }
    }

    #[test]
    fn cron_leap_day() {
        let s = cron("0 0 29 2 *");
        assert_eq!(
            s.next_after(utc("2025-01-01T00:00:00Z"), Tz::UTC),
            Some(utc("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2028-02-29T00:00:00Z"), Tz::UTC),
            Some(utc("2032-02-29T00:00:00Z"))
        );
        // 2100 is not a leap year.
        assert_eq!(
            s.next_after(utc("2097-01-01T00:00:00Z"), Tz::UTC),
            Some(utc("2104-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn cron_day_of_month_or_day_of_week() {
        let from = utc("2024-09-30T12:00:00Z");
        let to = utc("2024-10-31T12:00:00Z");
        let days = |expr: &str| -> Vec<u32> {
            cron(expr)
                .runs_between(from, to, Tz::UTC)
                .iter()
                .map(|r| r.day())
                .collect()
        };
        // Both restricted: either matches (Oct 2024 Fridays: 4, 11, 18, 25).
        assert_eq!(days("0 0 13 * FRI"), [4, 11, 13, 18, 25]);
        // Only one restricted: that one decides.
        assert_eq!(days("0 0 13 * *"), [13]);
        assert_eq!(days("0 0 * * FRI"), [4, 11, 18, 25]);
        // A field starting with `*` counts as unrestricted, as in Vixie cron,
        // so this is "odd days that are Fridays".
        assert_eq!(days("0 0 */2 * FRI"), [11, 25]);
        // Never-firing day-of-month is rescued by the day-of-week alternative.
        assert!(Schedule::cron("0 0 30 2 MON").is_ok());
    }

    #[test]
    fn cron_that_never_fires_is_rejected() {
        for expr in [
            "0 0 30 2 *",
            "0 0 31 4 *",
            "0 0 31 2,4,6,9,11 *",
            "0 0 30-31 FEB *",
        ] {
            assert_eq!(
                cron_err(expr),
                format!("cron expression never fires: {expr:?} matches no calendar date")
            );
        }
    }

    #[test]
    fn cron_rare_and_weekday_restricted_dates_are_found() {
        // February 1st on a Monday: gaps between occurrences exceed 8 years
        // (2010 -> 2016 -> 2021 -> 2027 -> 2038), so an 8-year search window
        // would not do.
        let s = cron("0 0 */31 2 MON");
        assert_eq!(
            s.next_after(utc("2027-02-02T00:00:00Z"), Tz::UTC),
            Some(utc("2038-02-01T00:00:00Z"))
        );
    }

    // ---- property tests ----

    const ZONES: [Tz; 8] = [
        Tz::America__Sao_Paulo,
        Tz::America__New_York,
        Tz::Europe__Berlin,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kolkata,
        Tz::UTC,
        Tz::America__Santiago,
        Tz::Pacific__Auckland,
    ];

    /// 2000-01-01T00:00Z and 2040-01-01T00:00Z.
    const START_2000: i64 = 946_684_800;
    const START_2040: i64 = 2_208_988_800;

    fn instant(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("in range")
    }

    /// The first offset change in `year`, or Jan 1 if the zone has none.
    fn first_transition(tz: Tz, year: i32, which: usize) -> DateTime<Utc> {
        let offset_at = |t: DateTime<Utc>| {
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
        };
        let jan1 = utc(&format!("{year}-01-01T00:00:00Z"));
        let mut transitions = Vec::new();
        let mut day = jan1;
        for _ in 0..366 {
            let next_day = day + TimeDelta::days(1);
            if offset_at(day) != offset_at(next_day) {
                let (mut lo, mut hi) = (day, next_day);
                while hi - lo > TimeDelta::seconds(1) {
                    let mid = lo + (hi - lo) / 2;
                    if offset_at(mid) == offset_at(lo) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                transitions.push(hi);
            }
            day = next_day;
        }
        if transitions.is_empty() {
            jan1
        } else {
            transitions[which % transitions.len()]
        }
    }

    /// Independent oracle: is the whole-minute instant `t` a run?
    fn oracle_is_run(tz: Tz, t: DateTime<Utc>, scheduled: &dyn Fn(NaiveDateTime) -> bool) -> bool {
        let local = local_time(tz, t).expect("in range");
        let prev = local_time(tz, t - TimeDelta::minutes(1)).expect("in range");
        let first_occurrence = tz
            .from_local_datetime(&local)
            .earliest()
            .map(|e| e.to_utc())
            == Some(t);
        if scheduled(local) && first_occurrence {
            return true;
        }
        // The clock jumped over (prev, local): times in there run now.
        let mut skipped = prev + TimeDelta::minutes(1);
        while skipped < local {
            if scheduled(skipped) {
                return true;
            }
            skipped += TimeDelta::minutes(1);
        }
        false
    }

    fn check_next(
        s: &Schedule,
        tz: Tz,
        now: DateTime<Utc>,
        scheduled: &dyn Fn(NaiveDateTime) -> bool,
    ) -> Result<(), TestCaseError> {
        let next = s.next_after(now, tz).expect("schedule fires");
        prop_assert!(next > now);
        prop_assert_eq!(next.second(), 0);
        // Nothing scheduled in (now, next), by the oracle and by runs_between.
        let mut t = now.with_second(0).expect("0 is a valid second") + TimeDelta::minutes(1);
        while t < next {
            prop_assert!(!oracle_is_run(tz, t, scheduled), "missed run at {}", t);
            t += TimeDelta::minutes(1);
        }
        prop_assert!(oracle_is_run(tz, next, scheduled), "{} is not a run", next);
        prop_assert_eq!(s.runs_between(now, next, tz), vec![next]);
        prop_assert_eq!(s.next_after(next - TimeDelta::seconds(1), tz), Some(next));

        let runs = s.runs_between(now, next + TimeDelta::days(2), tz);
        prop_assert_eq!(runs.first(), Some(&next));
        // next_after is not incremental, so only spot-check the first pairs.
        for pair in runs.windows(2).take(40) {
            prop_assert!(pair[0] < pair[1]);
            prop_assert_eq!(s.next_after(pair[0], tz), Some(pair[1]));
        }
        Ok(())
    }

    fn daily_times() -> impl Strategy<Value = Vec<DailyTime>> {
        // Half the cases use times around the hours where DST changes happen.
        let any = (0u32..24, 0u32..60);
        let dst_prone = (
            prop::sample::select(vec![0u32, 1, 2, 3, 23]),
            prop::sample::select(vec![0u32, 15, 30, 45, 59]),
        );
        prop::collection::vec(prop_oneof![any, dst_prone], 1..5).prop_map(|v| {
            v.into_iter()
                .filter_map(|(h, m)| DailyTime::new(h, m))
                .collect()
        })
    }

    fn daily_predicate(times: &[DailyTime]) -> impl Fn(NaiveDateTime) -> bool + '_ {
        move |local: NaiveDateTime| {
            local.second() == 0
                && times
                    .iter()
                    .any(|t| t.hour() == local.hour() && t.minute() == local.minute())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn daily_next_after_random_instants(
            times in daily_times(),
            tz in prop::sample::select(ZONES.to_vec()),
            secs in START_2000..START_2040,
        ) {
            let s = Schedule::daily(times.clone()).expect("non-empty");
            check_next(&s, tz, instant(secs), &daily_predicate(&times))?;
        }

        #[test]
        fn daily_next_after_near_transitions(
            times in daily_times(),
            tz in prop::sample::select(ZONES.to_vec()),
            year in 2000i32..2040,
            which in 0usize..2,
            delta in -30 * 3600i64..30 * 3600,
        ) {
            let s = Schedule::daily(times.clone()).expect("non-empty");
            let now = first_transition(tz, year, which) + TimeDelta::seconds(delta);
            check_next(&s, tz, now, &daily_predicate(&times))?;
        }

        #[test]
        fn cron_next_after_near_transitions(
            minute in prop::sample::select(vec!["*", "0", "*/15", "0,30", "10-50/20", "59"]),
            hour in prop::sample::select(vec!["*", "0", "2", "1-3", "*/6", "23", "0,2,3"]),
            dow in prop::sample::select(vec!["*", "0", "SUN", "1-5", "sat", "7"]),
            tz in prop::sample::select(ZONES.to_vec()),
            year in 2000i32..2040,
            which in 0usize..2,
            delta in -30 * 3600i64..30 * 3600,
        ) {
            let text = format!("{minute} {hour} * * {dow}");
            let s = Schedule::cron(&text).expect("valid");
            let Schedule::Cron(expr) = &s else { unreachable!("built by Schedule::cron") };
            let scheduled = |local: NaiveDateTime| expr.fires_at(local);
            let now = first_transition(tz, year, which) + TimeDelta::seconds(delta);
            check_next(&s, tz, now, &scheduled)?;
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,24}") {
            let _ = text.parse::<DailyTime>();
            let _ = Schedule::cron(&text);
        }

        #[test]
        fn cron_parser_never_panics_on_cron_like_text(
            text in "[0-9*/,A-Za-z -]{0,30}",
            secs in START_2000..START_2040,
        ) {
            if let Ok(s) = Schedule::cron(&text) {
                let now = instant(secs);
                let next = s.next_after(now, Tz::Europe__Berlin);
                prop_assert!(next.is_some_and(|n| n > now));
            }
        }
    }
}
