//! Revenue as a run sums it: the revenue columns kept beside a staged invoice or order,
//! exact amounts in ten-thousandths and exact shares.

use chrono::NaiveDate;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::settings::Basis;
use crate::domain::record::{parse_date, ParsedDate};
use crate::domain::tables::Table;

/// Decimal places of a stored amount: totals are kept as integers of 0.0001.
pub const AMOUNT_SCALE: u32 = 4;

/// An exact amount of money in ten-thousandths of the currency unit ([`AMOUNT_SCALE`]):
/// a company's revenue, a class's, the orphans'. Sums of stored amounts never overflow it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i128);

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// The amount of `v` ten-thousandths.
    pub const fn from_ten_thousandths(v: i128) -> Self {
        Money(v)
    }

    /// The amount in ten-thousandths, as stored and summed.
    pub const fn ten_thousandths(self) -> i128 {
        self.0
    }

    /// Whether the amount is above zero (a company with revenue).
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// This amount as a percentage of `whole`, exact to two places (see [`share`]).
    pub fn share_of(self, whole: Money) -> Decimal {
        share(self.0, whole.0)
    }

    /// The amount as a decimal with at least two places, as reports show it: "1234.50".
    pub fn text(self) -> String {
        amount_text(self.0)
    }
}

impl From<i64> for Money {
    /// A stored amount (ten-thousandths).
    fn from(v: i64) -> Self {
        Money(i128::from(v))
    }
}

impl std::ops::Add for Money {
    type Output = Money;

    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        self.0 += other.0;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        Money(iter.map(|m| m.0).sum())
    }
}

/// A stored amount (ten-thousandths) as a decimal with at least two places: "1234.50".
fn amount_text(v: i128) -> String {
    match Decimal::try_from_i128_with_scale(v, AMOUNT_SCALE) {
        Ok(d) => {
            let mut d = d.normalize();
            if d.scale() < 2 {
                d.rescale(2);
            }
            d.to_string()
        }
        // Beyond 28 digits: print the integer part and the four places by hand.
        Err(_) => {
            let sign = if v < 0 { "-" } else { "" };
            let a = v.unsigned_abs();
            format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
        }
    }
}

/// A total as an exact amount in ten-thousandths (rounded half away from zero past the
/// fourth place); None when it does not fit.
pub fn scaled_amount(d: Decimal) -> Option<i64> {
    let r = d.round_dp_with_strategy(
        AMOUNT_SCALE,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    );
    let mantissa = r.mantissa();
    let factor = 10i128.pow(AMOUNT_SCALE - r.scale());
    i64::try_from(mantissa.checked_mul(factor)?).ok()
}

/// The revenue columns of a staged invoice or order, kept beside its fields so a run
/// sums revenue in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueFact {
    /// The company's external id.
    pub company_ref: String,
    /// The civil date of issue in the tenant's zone.
    pub issued_on: NaiveDate,
    /// The total in ten-thousandths.
    pub amount: i64,
}

/// The revenue columns of a validated (normalized) record of `table`; None for other
/// tables, tombstones and records without a company, a date or a total.
pub fn revenue_fact(table: &str, fields: &Map<String, Value>, zone: Tz) -> Option<RevenueFact> {
    Table::parse(table).and_then(Basis::of_table)?;
    let company_ref = fields.get("company_id")?.as_str()?.to_owned();
    let issued_on = match parse_date(fields.get("issued_at")?.as_str()?).ok()? {
        ParsedDate::Date(d) => d,
        ParsedDate::Naive(dt) => dt.date(),
        ParsedDate::Instant(i) => i.with_timezone(&zone).date_naive(),
    };
    let total: Decimal = fields.get("total")?.as_str()?.parse().ok()?;
    Some(RevenueFact {
        company_ref,
        issued_on,
        amount: scaled_amount(total)?,
    })
}

/// `part` as a percentage of `whole`, exact to two places (0 when `whole` is 0).
pub fn share(part: i128, whole: i128) -> Decimal {
    if whole == 0 {
        return Decimal::ZERO;
    }
    // Both fit a Decimal mantissa (< 7.9e28) for any realistic revenue; past that the
    // share is computed on the amounts divided down, which keeps two exact places.
    let (mut p, mut w) = (part, whole);
    while p.unsigned_abs() > 10u128.pow(26) || w.unsigned_abs() > 10u128.pow(26) {
        p /= 10;
        w /= 10;
    }
    let (p, w) = (
        Decimal::from_i128_with_scale(p, 0),
        Decimal::from_i128_with_scale(w, 0),
    );
    if w.is_zero() {
        return Decimal::ZERO;
    }
    (p * Decimal::ONE_HUNDRED / w)
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_scaled_exactly_and_rounded_half_away_from_zero() {
        assert_eq!(scaled_amount("1234.56".parse().unwrap()), Some(12_345_600));
        assert_eq!(scaled_amount("-0.00005".parse().unwrap()), Some(-1));
        assert_eq!(scaled_amount("0.00004".parse().unwrap()), Some(0));
        assert_eq!(
            scaled_amount("1e20".parse::<Decimal>().ok().unwrap_or(Decimal::MAX)),
            None
        );
        assert_eq!(Money::from(12_345_600).text(), "1234.56");
        assert_eq!(Money::from(10_000).text(), "1.00");
        assert_eq!(Money::from(-5).text(), "-0.0005");
        assert_eq!(Money::ZERO.text(), "0.00");
        let huge = Money::from(i64::MAX) + Money::from(i64::MAX);
        assert_eq!(huge.text(), "1844674407370955.1614");
        assert_eq!(
            [Money::from(1), Money::from(2)].into_iter().sum::<Money>(),
            Money::from_ten_thousandths(3)
        );
    }

    #[test]
    fn revenue_facts_come_from_invoices_and_orders_in_the_tenant_zone() {
        let f = |v: serde_json::Value| v.as_object().unwrap().clone();
        let sp = chrono_tz::America::Sao_Paulo;
        let fact = revenue_fact(
            "invoice",
            &f(serde_json::json!({"company_id": "c1", "issued_at": "2026-01-15T01:00:00Z", "total": "-10.5"})),
            sp,
        )
        .unwrap();
        // 01:00 UTC is 22:00 of the day before in São Paulo.
        assert_eq!(fact.issued_on.to_string(), "2026-01-14");
        assert_eq!(fact.amount, -105_000);
        assert_eq!(fact.company_ref, "c1");
        let naive = revenue_fact(
            "order",
            &f(serde_json::json!({"company_id": "c1", "issued_at": "2026-01-15T23:00:00", "total": "1"})),
            sp,
        )
        .unwrap();
        assert_eq!(naive.issued_on.to_string(), "2026-01-15");
        assert!(revenue_fact(
            "quote",
            &f(serde_json::json!({"company_id": "c1", "issued_at": "2026-01-15", "total": "1"})),
            sp
        )
        .is_none());
        assert!(revenue_fact("invoice", &Map::new(), sp).is_none());
    }
}
