//! Dates and date-times as ERPs write them ("2024-03-05", "05/03/2024", with or without a
//! time and a zone), and their canonical text.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use super::reason::show;

const MIN_YEAR: i32 = 1900;
const MAX_YEAR: i32 = 2100;
/// How to write a date, said in every reason about one.
pub(super) const DATE_HINT: &str = "use YYYY-MM-DD or DD/MM/YYYY";
const TIME_HINT: &str =
    "the time must be HH:MM or HH:MM:SS, optionally followed by Z or an offset like -03:00";

/// A parsed date or date-time, keeping whether it had a time and a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedDate {
    /// A date without a time.
    Date(NaiveDate),
    /// A date-time without a zone.
    Naive(NaiveDateTime),
    /// A date-time that had a zone, converted to UTC.
    Instant(DateTime<Utc>),
}

impl ParsedDate {
    /// The canonical text: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS" or RFC 3339 in UTC ("…Z").
    pub fn to_json_string(&self) -> String {
        match self {
            ParsedDate::Date(d) => d.format("%Y-%m-%d").to_string(),
            // `%.f` prints nothing for whole seconds and 3, 6 or 9 digits otherwise.
            ParsedDate::Naive(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            ParsedDate::Instant(i) => i.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        }
    }
}

/// Parses "YYYY-MM-DD" or "DD/MM/YYYY", optionally followed by a time and a zone.
///
/// The time follows a 'T' or a space: "HH:MM", "HH:MM:SS" or "HH:MM:SS.fff", then optionally
/// "Z" or an offset ("-03:00", "-0300", "-03"). Years must be within 1900..=2100 (for an
/// instant, also once converted to UTC, so the canonical form always parses again).
pub fn parse_date(s: &str) -> Result<ParsedDate, String> {
    let t = s.trim();
    let invalid_date = || format!("{} is not a valid date: {DATE_HINT}", show(t));
    let (date_part, time_part) = match t.split_once(['T', 't', ' ']) {
        Some((d, rest)) => (d, Some(rest)),
        None => (t, None),
    };
    let (year, month, day) = split_date(date_part).ok_or_else(invalid_date)?;
    check_year(t, year)?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(invalid_date)?;
    let Some(time_part) = time_part else {
        return Ok(ParsedDate::Date(date));
    };
    let (time, offset) = split_time(time_part)
        .ok_or_else(|| format!("{} is not a valid date-time: {TIME_HINT}", show(t)))?;
    let local = date.and_time(time);
    let Some(offset) = offset else {
        return Ok(ParsedDate::Naive(local));
    };
    let instant = offset
        .from_local_datetime(&local)
        .single()
        .ok_or_else(invalid_date)?
        .with_timezone(&Utc);
    check_year(t, instant.year())?;
    Ok(ParsedDate::Instant(instant))
}

fn check_year(shown: &str, year: i32) -> Result<(), String> {
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(format!(
            "{} is in year {year}: the year must be between {MIN_YEAR} and {MAX_YEAR}",
            show(shown)
        ))
    }
}

/// Reads a number made only of `min..=max` ASCII digits.
fn number(s: &str, min: usize, max: usize) -> Option<u32> {
    if (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Splits "YYYY-MM-DD" or "DD/MM/YYYY" (day and month may have one digit) into (y, m, d).
fn split_date(s: &str) -> Option<(i32, u32, u32)> {
    let (y, m, d) = if s.contains('/') {
        let mut parts = s.split('/');
        let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        (number(y, 4, 4)?, number(m, 1, 2)?, number(d, 1, 2)?)
    } else {
        let mut parts = s.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        (number(y, 4, 4)?, number(m, 2, 2)?, number(d, 2, 2)?)
    };
    Some((i32::try_from(y).ok()?, m, d))
}

/// Splits "HH:MM[:SS[.fff]][Z|±HH[:MM]]" into the time and the zone, if any.
fn split_time(s: &str) -> Option<(NaiveTime, Option<FixedOffset>)> {
    let (clock, offset) = if let Some(c) = s.strip_suffix(['Z', 'z']) {
        (c, FixedOffset::east_opt(0))
    } else if let Some(at) = s.rfind(['+', '-']) {
        let (c, zone) = s.split_at(at);
        (c, Some(split_offset(zone)?))
    } else {
        (s, None)
    };
    // Some ERPs put a space before the zone ("10:00:00 -03:00").
    let clock = clock.trim_end();
    let (hms, nanos) = match clock.split_once('.') {
        Some((hms, frac)) => {
            let digits = number(frac, 1, 9)?;
            let scale = 10u32.checked_pow(u32::try_from(9 - frac.len()).ok()?)?;
            (hms, digits.checked_mul(scale)?)
        }
        None => (clock, 0),
    };
    let mut parts = hms.split(':');
    let h = number(parts.next()?, 2, 2)?;
    let m = number(parts.next()?, 2, 2)?;
    let sec = match parts.next() {
        Some(sec) => number(sec, 2, 2)?,
        None if !clock.contains('.') => 0,
        None => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((NaiveTime::from_hms_nano_opt(h, m, sec, nanos)?, offset))
}

/// Parses "+HH:MM", "-HHMM" or "+HH".
fn split_offset(zone: &str) -> Option<FixedOffset> {
    let negative = zone.starts_with('-');
    let rest = zone.get(1..)?;
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (number(h, 2, 2)?, number(m, 2, 2)?),
        None if rest.len() == 4 => (number(rest.get(..2)?, 2, 2)?, number(rest.get(2..)?, 2, 2)?),
        None => (number(rest, 2, 2)?, 0),
    };
    if h > 23 || m > 59 {
        return None;
    }
    let seconds = i32::try_from(h * 3600 + m * 60).ok()?;
    if negative {
        FixedOffset::west_opt(seconds)
    } else {
        FixedOffset::east_opt(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date_str(s: &str) -> Result<String, String> {
        parse_date(s).map(|d| d.to_json_string())
    }

    #[test]
    fn date_forms_and_their_canonical_text() {
        for (input, expected) in [
            ("2024-03-05", "2024-03-05"),
            ("05/03/2024", "2024-03-05"),
            ("5/3/2024", "2024-03-05"),
            (" 29/02/2024 ", "2024-02-29"),
            ("2000-02-29", "2000-02-29"),
            ("2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z"),
            ("2024-03-05T10:00:00-03:00", "2024-03-05T13:00:00Z"),
            ("2024-03-05T10:00:00+0530", "2024-03-05T04:30:00Z"),
            ("2024-03-05T10:00-03", "2024-03-05T13:00:00Z"),
            ("2024-03-05 10:00:00 -03:00", "2024-03-05T13:00:00Z"),
            ("2024-03-05T10:00:00.250Z", "2024-03-05T10:00:00.250Z"),
            ("2024-03-05T22:30:00-03:00", "2024-03-06T01:30:00Z"),
            ("2024-03-05T10:00:00", "2024-03-05T10:00:00"),
            ("2024-03-05 10:00:00", "2024-03-05T10:00:00"),
            ("2024-03-05t10:00", "2024-03-05T10:00:00"),
            ("2024-03-05T10:00:00.5", "2024-03-05T10:00:00.500"),
            ("05/03/2024 10:00", "2024-03-05T10:00:00"),
            ("05/03/2024 10:00:59", "2024-03-05T10:00:59"),
            ("1900-01-01", "1900-01-01"),
            ("31/12/2100", "2100-12-31"),
        ] {
            assert_eq!(date_str(input), Ok(expected.to_owned()), "{input}");
        }
    }

    #[test]
    fn impossible_and_malformed_dates_are_rejected() {
        assert_eq!(
            date_str("31/02/2024"),
            Err("\"31/02/2024\" is not a valid date: use YYYY-MM-DD or DD/MM/YYYY".to_owned())
        );
        for bad in [
            "29/02/2023",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-5",
            "00/01/2024",
            "05/03/24",
            "2024/03/05",
            "05-03-2024",
            "",
            "hoje",
            "20240305",
            "2024-03-05-01",
            "05/03/2024/1",
        ] {
            let err = date_str(bad).expect_err(bad);
            assert!(err.contains("not a valid date"), "{bad}: {err}");
        }
        for bad in [
            "2024-03-05T25:00",
            "2024-03-05T10:60",
            "2024-03-05T10:00:60",
            "2024-03-05T",
            "2024-03-05T10",
            "2024-03-05T10:00:00+24:00",
            "2024-03-05T10:00:00.1234567890",
            "2024-03-05T10:00.5",
            "05/03/2024 10h00",
        ] {
            let err = date_str(bad).expect_err(bad);
            assert!(err.contains("not a valid date-time"), "{bad}: {err}");
        }
        for bad in [
            "1899-12-31",
            "01/01/2101",
            "0000-01-01",
            "2100-12-31T23:00:00-03:00",
        ] {
            let err = date_str(bad).expect_err(bad);
            assert!(err.contains("between 1900 and 2100"), "{bad}: {err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic_and_canonical_dates_parse_again(s in super::super::tests::interesting_string()) {
            if let Ok(d) = parse_date(&s) {
                prop_assert_eq!(parse_date(&d.to_json_string()), Ok(d));
            }
        }
    }
}
