//! Five-field cron expressions (minute hour day-of-month month day-of-week), parsed the
//! way Vixie cron reads them, with errors that name the field.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveTime};

use super::error::{CronField, ScheduleError};

/// Days in one Gregorian cycle (400 years): the calendar, weekdays included,
/// repeats after it, so a cron day pattern that matches no date in one cycle
/// matches no date ever, and one that does match recurs within that span.
pub(super) const GREGORIAN_CYCLE_DAYS: u64 = 146_097;

/// Parsing rules of one cron field.
struct FieldSpec {
    field: CronField,
    min: u32,
    max: u32,
    /// Three-letter names for `min`, `min + 1`, ... (empty if the field has none).
    names: &'static [&'static str],
    name_kind: &'static str,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELD_SPECS: [FieldSpec; 5] = [
    FieldSpec {
        field: CronField::Minute,
        min: 0,
        max: 59,
        names: &[],
        name_kind: "",
    },
    FieldSpec {
        field: CronField::Hour,
        min: 0,
        max: 23,
        names: &[],
        name_kind: "",
    },
    FieldSpec {
        field: CronField::DayOfMonth,
        min: 1,
        max: 31,
        names: &[],
        name_kind: "",
    },
    FieldSpec {
        field: CronField::Month,
        min: 1,
        max: 12,
        names: &MONTH_NAMES,
        name_kind: "month",
    },
    FieldSpec {
        field: CronField::DayOfWeek,
        min: 0,
        // 7 is accepted as a second spelling of Sunday, as in Vixie cron.
        max: 7,
        names: &DAY_NAMES,
        name_kind: "day",
    },
];

impl FieldSpec {
    fn error(&self, reason: String) -> ScheduleError {
        ScheduleError::InvalidCronField {
            field: self.field,
            reason,
        }
    }

    fn value(&self, token: &str, item: &str) -> Result<u32, ScheduleError> {
        if token.is_empty() {
            return Err(self.error(format!("missing value in {item:?}")));
        }
        if token.bytes().all(|b| b.is_ascii_digit()) {
            // A number too long for u32 is out of range all the same.
            return match token.parse::<u32>() {
                Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
                _ => Err(self.error(format!("{token} is out of range {}-{}", self.min, self.max))),
            };
        }
        let position = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(token));
        match (position, self.names.first(), self.names.last()) {
            (Some(index), _, _) => Ok(self.min + index as u32),
            (None, Some(first), Some(last)) => Err(self.error(format!(
                "{token:?} is not a number or a {} name ({first}-{last})",
                self.name_kind
            ))),
            _ => Err(self.error(format!("{token:?} is not a number"))),
        }
    }

    /// Parses a comma-separated field into a bitset of its values.
    fn parse(&self, text: &str) -> Result<u64, ScheduleError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.error(format!("empty element in list {text:?}")));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(self.step(step, item)?)),
                None => (item, None),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((start, end)) = range.split_once('-') {
                let (low, high) = (self.value(start, item)?, self.value(end, item)?);
                if low > high {
                    return Err(self.error(format!(
                        "{range:?} is a reversed range: the start must not exceed the end"
                    )));
                }
                (low, high)
            } else {
                let value = self.value(range, item)?;
                // Vixie cron rejects "5/10"; accepting it would guess at
                // whether the user meant "5-59/10" or something else.
                if step.is_some() {
                    return Err(self.error(format!(
                        "{item:?}: a step needs `*` or a range before the `/`"
                    )));
                }
                (value, value)
            };
            let mut value = low;
            while value <= high {
                bits |= 1 << value;
                value = value.saturating_add(step.unwrap_or(1));
            }
        }
        Ok(bits)
    }

    fn step(&self, step: &str, item: &str) -> Result<u32, ScheduleError> {
        if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(format!("{item:?}: step {step:?} is not a number")));
        }
        match step.parse::<u32>() {
            Ok(0) => Err(self.error(format!("{item:?}: step must be at least 1"))),
            Ok(step) => Ok(step),
            // A step larger than any field's span selects only the start.
            Err(_) => Ok(u32::MAX),
        }
    }
}

/// A five-field cron expression: minute hour day-of-month month day-of-week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    /// The fields as written, kept for `Display`.
    fields: [String; 5],
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bits 0-6, Sunday = 0; a 7 in the source is folded into bit 0.
    days_of_week: u64,
    /// Vixie cron decides the day-of-month/day-of-week combination by whether
    /// the field *starts with* `*`, so "*/2" counts as unrestricted.
    dom_star: bool,
    dow_star: bool,
}

impl CronExpr {
    /// Whether the expression fires on `date` at all (months, then days of the month and
    /// of the week combined as Vixie cron does).
    pub(super) fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether any calendar date matches ("0 0 30 2 *" never does).
    pub(super) fn fires_on_some_date(&self) -> bool {
        let Some(start) = NaiveDate::from_ymd_opt(2000, 1, 1) else {
            return true;
        };
        start
            .iter_days()
            .take(GREGORIAN_CYCLE_DAYS as usize)
            .any(|date| self.matches_date(date))
    }

    /// The times of day it fires at, in ascending order.
    pub(super) fn times_of_day(&self) -> Vec<NaiveTime> {
        let mut times = Vec::new();
        for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            for minute in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                times.extend(NaiveTime::from_hms_opt(hour, minute, 0));
            }
        }
        times
    }
}

impl FromStr for CronExpr {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = parts[..] else {
            return Err(ScheduleError::CronFieldCount(parts.len()));
        };
        let [minute_spec, hour_spec, dom_spec, month_spec, dow_spec] = &FIELD_SPECS;
        let mut days_of_week = dow_spec.parse(dow)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & !(1 << 7);
        }
        Ok(Self {
            minutes: minute_spec.parse(minute)?,
            hours: hour_spec.parse(hour)?,
            days_of_month: dom_spec.parse(dom)?,
            months: month_spec.parse(month)?,
            days_of_week,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            fields: [minute, hour, dom, month, dow].map(str::to_owned),
        })
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fields.join(" "))
    }
}

#[cfg(test)]
impl CronExpr {
    /// Whether the expression names the local wall-clock minute `local`, read straight from
    /// its fields: the oracle the schedule's property tests compare runs against.
    pub(super) fn fires_at(&self, local: chrono::NaiveDateTime) -> bool {
        use chrono::Timelike;
        local.second() == 0
            && self.matches_date(local.date())
            && self.hours & (1 << local.hour()) != 0
            && self.minutes & (1 << local.minute()) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cron_err(expr: &str) -> String {
        match expr.parse::<CronExpr>() {
            Ok(s) => panic!("{expr:?} unexpectedly parsed as {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn cron_display_normalizes_whitespace() {
        let e: CronExpr = "  */15\t9-17  1,15 JAN-jun   mon-FRI "
            .parse()
            .expect("valid");
        assert_eq!(e.to_string(), "*/15 9-17 1,15 JAN-jun mon-FRI");
        assert_eq!(e.to_string().parse::<CronExpr>(), Ok(e));
    }

    #[test]
    fn cron_steps_ranges_and_lists() {
        let e: CronExpr = "10-50/10 1,2,5 * * *".parse().expect("valid");
        assert_eq!(
            e.minutes,
            (1 << 10) | (1 << 20) | (1 << 30) | (1 << 40) | (1 << 50)
        );
        assert_eq!(e.hours, (1 << 1) | (1 << 2) | (1 << 5));
        let e: CronExpr = "0 0 * * 5-7".parse().expect("valid");
        assert_eq!(e.days_of_week, 1 | (1 << 5) | (1 << 6));
        let e: CronExpr = "0 0 * * */7".parse().expect("valid");
        assert_eq!(e.days_of_week, 1);
        let e: CronExpr = "*/100 0 * * *".parse().expect("valid");
        assert_eq!(e.minutes, 1);
    }

    #[test]
    fn cron_rejections_name_the_field() {
        let cases = [
            ("60 * * * *", "minute: 60 is out of range 0-59"),
            ("* 24 * * *", "hour: 24 is out of range 0-23"),
            ("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
            ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("0 0 * 13 *", "month: 13 is out of range 1-12"),
            ("0 0 * 0 *", "month: 0 is out of range 1-12"),
            ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
            (
                "99999999999 * * * *",
                "minute: 99999999999 is out of range 0-59",
            ),
            ("1,,2 * * * *", "minute: empty element in list \"1,,2\""),
            ("1, * * * *", "minute: empty element in list \"1,\""),
            ("*/0 * * * *", "minute: \"*/0\": step must be at least 1"),
            ("0 */x * * *", "hour: \"*/x\": step \"x\" is not a number"),
            ("0 */ * * *", "hour: \"*/\": step \"\" is not a number"),
            (
                "5-1 * * * *",
                "minute: \"5-1\" is a reversed range: the start must not exceed the end",
            ),
            (
                "0 0 * * FRI-MON",
                "day-of-week: \"FRI-MON\" is a reversed range: the start must not exceed the end",
            ),
            (
                "5/10 * * * *",
                "minute: \"5/10\": a step needs `*` or a range before the `/`",
            ),
            ("1- * * * *", "minute: missing value in \"1-\""),
            ("-1 * * * *", "minute: missing value in \"-1\""),
            ("x * * * *", "minute: \"x\" is not a number"),
            ("0 0 JAN * *", "day-of-month: \"JAN\" is not a number"),
            (
                "0 0 * FOO *",
                "month: \"FOO\" is not a number or a month name (JAN-DEC)",
            ),
            (
                "0 0 * JAN-MON *",
                "month: \"MON\" is not a number or a month name (JAN-DEC)",
            ),
            (
                "0 0 * * MONDAY",
                "day-of-week: \"MONDAY\" is not a number or a day name (SUN-SAT)",
            ),
            (
                "0 0 * * * *",
                "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 6",
            ),
            (
                "",
                "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 0",
            ),
            (
                "0 0 * *",
                "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 4",
            ),
        ];
        for (expr, message) in cases {
            assert_eq!(cron_err(expr), message, "{expr:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn cron_display_round_trips(
            fields in prop::collection::vec(
                prop::sample::select(vec!["*", "1", "1-5", "*/2", "1,3,5", "2-6/2"]),
                5,
            ),
            pad in prop::sample::select(vec![" ", "  ", "\t"]),
        ) {
            let text = fields.join(pad);
            let expr: CronExpr = text.parse().expect("valid");
            prop_assert_eq!(expr.to_string(), fields.join(" "));
            prop_assert_eq!(expr.to_string().parse::<CronExpr>(), Ok(expr));
        }

    }
}
