//! A local time of day ("HH:MM"), the unit of a daily schedule.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;

use super::error::ScheduleError;

/// A local time of day "HH:MM", 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DailyTime {
    // Field order matters: the derived `Ord` compares hour first.
    hour: u32,
    minute: u32,
}

impl DailyTime {
    /// Returns the time `hour:minute`, or `None` unless 0 <= hour < 24 and 0 <= minute < 60.
    pub fn new(hour: u32, minute: u32) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(Self { hour, minute })
    }

    /// The hour, 0-23.
    pub fn hour(&self) -> u32 {
        self.hour
    }

    /// The minute, 0-59.
    pub fn minute(&self) -> u32 {
        self.minute
    }

    /// The time as chrono's, at second 0.
    pub(super) fn naive_time(self) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(self.hour, self.minute, 0)
    }
}

impl FromStr for DailyTime {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ScheduleError::InvalidDailyTime(s.to_owned());
        // Exactly "HH:MM": a lenient parse would let "7:00" and "07:00" both
        // into stored configuration and make it ambiguous to compare.
        let &[h1, h2, b':', m1, m2] = s.as_bytes() else {
            return Err(invalid());
        };
        let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
        match (digit(h1), digit(h2), digit(m1), digit(m2)) {
            (Some(h1), Some(h2), Some(m1), Some(m2)) => {
                Self::new(h1 * 10 + h2, m1 * 10 + m2).ok_or_else(invalid)
            }
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for DailyTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_time_round_trips_all_1440_values() {
        for hour in 0..24 {
            for minute in 0..60 {
                let t = DailyTime::new(hour, minute).expect("in range");
                let text = t.to_string();
                assert_eq!(text, format!("{hour:02}:{minute:02}"));
                assert_eq!(text.parse::<DailyTime>(), Ok(t));
                assert_eq!((t.hour(), t.minute()), (hour, minute));
            }
        }
    }

    #[test]
    fn daily_time_rejects_garbage() {
        for bad in [
            "",
            "7:00",
            "07:0",
            "25:00",
            "24:00",
            "12:60",
            " 12:00",
            "12:00 ",
            "12:00:00",
            "12-00",
            "ab:cd",
            "+1:00",
            "1:000",
            "１２:００",
            "12：00",
        ] {
            assert_eq!(
                bad.parse::<DailyTime>(),
                Err(ScheduleError::InvalidDailyTime(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(
            "25:00".parse::<DailyTime>().unwrap_err().to_string(),
            "\"25:00\" is not a time of day: expected HH:MM between 00:00 and 23:59"
        );
        assert_eq!(DailyTime::new(24, 0), None);
        assert_eq!(DailyTime::new(0, 60), None);
    }
}
