//! Revenue as a run sums it: the revenue columns kept beside a staged invoice or order,
//! exact amounts in ten-thousandths and exact shares.

use chrono::NaiveDate;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::Basis;
use crate::domain::record::{parse_date, ParsedDate};
use crate::domain::tables::Table;

/// Decimal places of a stored amount: totals are kept as integers of 0.0001.
pub const AMOUNT_SCALE: u32 = 4;

/// A stored amount (ten-thousandths) as a decimal with at least two places: "1234.50".
pub fn amount_text(v: i128) -> String {
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
        assert_eq!(amount_text(12_345_600), "1234.56");
        assert_eq!(amount_text(10_000), "1.00");
        assert_eq!(amount_text(-5), "-0.0005");
        assert_eq!(amount_text(0), "0.00");
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
