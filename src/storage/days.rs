//! How a civil date is kept in the revenue columns (`staged_record.issued_on`,
//! `purchase_span.first_on` / `last_on`): an integer, days since 1970-01-01, which both
//! backends compare and range over alike.

use chrono::NaiveDate;

/// A civil date as stored: days since 1970-01-01.
pub fn day_number(d: NaiveDate) -> i32 {
    i32::try_from((d - NaiveDate::default()).num_days()).unwrap_or(i32::MAX)
}

/// The civil date of a stored day number.
pub fn from_day_number(n: i64) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(chrono::Duration::try_days(n)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_count_from_1970() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(day_number(d("1970-01-01")), 0);
        assert_eq!(day_number(d("2026-11-28")), 20_785);
        assert_eq!(day_number(d("1900-01-01")), -25_567);
        for s in ["1900-01-01", "1996-07-04", "2026-11-28", "2100-12-31"] {
            assert_eq!(from_day_number(i64::from(day_number(d(s)))), Some(d(s)));
        }
    }
}
