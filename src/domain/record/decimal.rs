//! Exact decimals as ERPs write them ("1.234,56", "1,234.56", JSON numbers), parsed without
//! ever going through floating point.

use rust_decimal::Decimal;
use serde_json::Number;

use super::reason::show;

/// 10^28 < 2^96, so any value with at most 28 significant digits fits a `Decimal` mantissa.
const MAX_SIGNIFICANT_DIGITS: usize = 28;
/// `Decimal` cannot hold a scale above 28.
const MAX_DECIMAL_PLACES: usize = 28;
const NUMBER_HINT: &str =
    "use digits with \",\" or \".\" as the decimal separator, e.g. 1234.56 or 1.234,56";

/// Parses an exact decimal as ERPs write it: "1234.56", "1234,56", "1.234,56", "1,234.56", "-5".
///
/// With both '.' and ',' the last one is the decimal separator and the other must group the
/// integer digits by 3. A single '.' or ',' is always the decimal separator (so "1.234" is
/// 1.234, never 1234). Several of the same separator must be valid thousands grouping
/// ("1.234.567"). Exponents, signs other than a leading '-', and more than 28 significant
/// digits or decimal places are rejected.
pub fn parse_decimal(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("{} is not a number: {NUMBER_HINT}", show(t)));
    }
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return Err(format!("{} is not a valid number: {NUMBER_HINT}", show(t)));
    }

    let dots = body.matches('.').count();
    let commas = body.matches(',').count();
    // (decimal separator, thousands separator) as decided by the rules in the doc comment.
    let (decimal_sep, thousands_sep) = match (dots, commas) {
        (0, 0) => (None, None),
        (_, 0) if dots == 1 => (Some('.'), None),
        (_, 0) => (None, Some('.')),
        (0, _) if commas == 1 => (Some(','), None),
        (0, _) => (None, Some(',')),
        _ => {
            let last_dot = body.rfind('.');
            let last_comma = body.rfind(',');
            if last_dot > last_comma {
                (Some('.'), Some(','))
            } else {
                (Some(','), Some('.'))
            }
        }
    };

    let (int_raw, frac) = match decimal_sep {
        Some(sep) => {
            if body.matches(sep).count() > 1 {
                return Err(format!(
                    "{} is ambiguous: with both \".\" and \",\" the last one is the decimal \
                     separator and must appear once; write it like 1.234,56 or 1,234.56",
                    show(t)
                ));
            }
            body.rsplit_once(sep).unwrap_or((body, ""))
        }
        None => (body, ""),
    };
    if decimal_sep.is_some() && frac.is_empty() {
        return Err(format!(
            "{} is not a valid number: a digit must follow the decimal separator",
            show(t)
        ));
    }

    let int_digits: String = match thousands_sep {
        Some(sep) if int_raw.contains(sep) => {
            let mut groups = int_raw.split(sep);
            let first_ok = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
            if !first_ok || !groups.all(|g| g.len() == 3) {
                return Err(format!(
                    "{} is ambiguous: \"{sep}\" must separate groups of 3 digits \
                     (like {}) or appear once as the decimal separator",
                    show(t),
                    if sep == '.' { "1.234.567" } else { "1,234,567" }
                ));
            }
            int_raw.chars().filter(|c| *c != sep).collect()
        }
        _ => int_raw.to_owned(),
    };

    decimal_from_parts(negative, &int_digits, frac, t)
}

/// Builds a decimal from its sign, integer digits and fraction digits (ASCII digits only).
fn decimal_from_parts(
    negative: bool,
    int: &str,
    frac: &str,
    shown: &str,
) -> Result<Decimal, String> {
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut all = String::with_capacity(int.len() + frac.len());
    all.push_str(int);
    all.push_str(frac);
    let significant = all.trim_matches('0').len();
    if significant > MAX_SIGNIFICANT_DIGITS {
        return Err(format!(
            "{} has {significant} significant digits: at most {MAX_SIGNIFICANT_DIGITS} are supported",
            show(shown)
        ));
    }
    if frac.len() > MAX_DECIMAL_PLACES {
        return Err(format!(
            "{} has {} decimal places: at most {MAX_DECIMAL_PLACES} are supported",
            show(shown),
            frac.len()
        ));
    }
    let canonical = format!(
        "{}{}{}{}",
        if negative { "-" } else { "" },
        if int.is_empty() { "0" } else { int },
        if frac.is_empty() { "" } else { "." },
        frac
    );
    // Only the magnitude can still be out of range here (digits and scale were checked above).
    Decimal::from_str_exact(&canonical)
        .map(|d| d.normalize())
        .map_err(|_| format!("{} is too large", show(shown)))
}

/// Converts a JSON number exactly from its textual form, never through arithmetic on `f64`.
///
/// Without serde_json's `arbitrary_precision` the text is the shortest form that reads back as
/// the same `f64`, so numbers with up to 15 significant digits (every realistic amount) come
/// back exactly as the ERP wrote them (0.1 stays 0.1). With `arbitrary_precision` enabled
/// elsewhere in the build, the text is the original one, which this handles too.
pub(super) fn decimal_from_number(n: &Number) -> Result<Decimal, String> {
    let text = n.to_string();
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i64>() {
            Ok(e) => (m, e),
            Err(_) => return Err(format!("{} is too large", show(&text))),
        },
        None => (text.as_str(), 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not a valid number", show(&text)));
    }
    // Beyond this the value cannot fit a Decimal anyway; the bound keeps the zero padding small.
    if exponent.unsigned_abs() > 400 {
        return Err(format!(
            "{} is out of range: at most {MAX_SIGNIFICANT_DIGITS} digits are supported",
            show(&text)
        ));
    }
    // Move the decimal point by `exponent` positions over the digit string.
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exponent;
    let (new_int, new_frac) = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
        (String::new(), format!("{zeros}{digits}"))
    } else if point >= digits.len() as i64 {
        let zeros = "0".repeat(usize::try_from(point - digits.len() as i64).unwrap_or(0));
        (format!("{digits}{zeros}"), String::new())
    } else {
        let at = usize::try_from(point).unwrap_or(0);
        let (i, f) = digits.split_at(at.min(digits.len()));
        (i.to_owned(), f.to_owned())
    };
    decimal_from_parts(negative, &new_int, &new_frac, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn decimal_formats() {
        for (input, expected) in [
            ("1.234,56", "1234.56"),
            ("1,234.56", "1234.56"),
            ("1234.56", "1234.56"),
            ("1234,56", "1234.56"),
            ("0,1", "0.1"),
            ("-5", "-5"),
            (" 42 ", "42"),
            ("1.234.567", "1234567"),
            ("1,234,567", "1234567"),
            ("1.234.567,891", "1234567.891"),
            ("1.234", "1.234"),
            ("1,234", "1.234"),
            (".5", "0.5"),
            ("-,5", "-0.5"),
            ("007", "7"),
            ("10.500", "10.5"),
            ("-0", "0"),
            (
                "9999999999999999999999999999",
                "9999999999999999999999999999",
            ),
            (
                "0.0000000000000000000000000001",
                "0.0000000000000000000000000001",
            ),
            ("1.000.000.000.000,000", "1000000000000"),
        ] {
            let got = parse_decimal(input);
            assert_eq!(
                got.map(|d| d.to_string()),
                Ok(expected.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn decimal_garbage_is_rejected_with_the_value_named() {
        for input in [
            "",
            "  ",
            "12a",
            "1.2.3",
            "1,2,3",
            "NaN",
            "inf",
            "1e400",
            "1e5",
            "+5",
            "--5",
            "- 5",
            "5.",
            "1,234.56.7",
            "1.23,4,5",
            "12,34.5",
            ",234.5",
            "1 234",
            "١٢",
            "0x10",
        ] {
            let err = parse_decimal(input).expect_err(input);
            assert!(
                err.contains(&format!("{:?}", input.trim())),
                "{input}: {err}"
            );
        }
        assert!(parse_decimal("1.2.3").unwrap_err().contains("ambiguous"));
        let too_many = "1234567890123456789012345678.9";
        assert!(parse_decimal(too_many)
            .unwrap_err()
            .contains("29 significant digits"));
        assert!(parse_decimal("0.00000000000000000000000000001")
            .unwrap_err()
            .contains("decimal places"));
        assert!(parse_decimal("99999999999999999999999999990")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_decimal("1000000000000000000000000000000000,000")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn json_numbers_convert_exactly() {
        // Parsed from text as an ERP sends it, not built from Rust float literals.
        let v: Value = serde_json::from_str(
            r#"[0.1, 0.2, 1234.56, 99.99, -0.01, 3, -7, 1e2, 1.5e-7, 123456789012.34, 18446744073709551615, -0.0]"#,
        )
        .expect("json");
        let got: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| match n {
                Value::Number(n) => decimal_from_number(n)
                    .map(|d| d.to_string())
                    .unwrap_or_else(|e| e),
                _ => String::new(),
            })
            .collect();
        assert_eq!(
            got,
            [
                "0.1",
                "0.2",
                "1234.56",
                "99.99",
                "-0.01",
                "3",
                "-7",
                "100",
                "0.00000015",
                "123456789012.34",
                "18446744073709551615",
                "0"
            ]
        );
        let tiny = Number::from_f64(5e-324).expect("finite");
        assert!(decimal_from_number(&tiny)
            .unwrap_err()
            .contains("decimal places"));
        let huge = Number::from_f64(1e300).expect("finite");
        assert!(decimal_from_number(&huge)
            .unwrap_err()
            .contains("too large"));
        assert_eq!(
            decimal_from_number(&Number::from_f64(1e28).expect("finite")).map(|d| d.to_string()),
            Ok("10000000000000000000000000000".to_owned())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parse_decimal_never_panics(s in super::super::tests::interesting_string()) {
            let _ = parse_decimal(&s);
        }

        #[test]
        fn decimals_round_trip_with_either_separator(
            mantissa in -9_999_999_999_999_999_999_999_999_999i128..=9_999_999_999_999_999_999_999_999_999i128,
            scale in 0u32..=28,
        ) {
            let d = Decimal::try_from_i128_with_scale(mantissa, scale).expect("in range");
            let plain = d.to_string();
            prop_assert_eq!(parse_decimal(&plain), Ok(d));
            prop_assert_eq!(parse_decimal(&plain.replace('.', ",")), Ok(d));
            // With thousands grouping, always with a decimal part so a lone group is not
            // mistaken for decimals ("1.234" is 1.234 by design).
            let (int, frac) = plain.split_once('.').unwrap_or((&plain, "0"));
            let (sign, digits) = int.strip_prefix('-').map_or(("", int), |r| ("-", r));
            let groups: Vec<&str> = {
                let first = digits.len() % 3;
                let mut g = Vec::new();
                if first > 0 { g.push(&digits[..first]); }
                g.extend(digits.as_bytes()[first..].chunks(3).filter_map(|c| std::str::from_utf8(c).ok()));
                g
            };
            let br = format!("{sign}{},{frac}", groups.join("."));
            let us = format!("{sign}{}.{frac}", groups.join(","));
            prop_assert_eq!(parse_decimal(&br), Ok(d), "{}", br);
            prop_assert_eq!(parse_decimal(&us), Ok(d), "{}", us);
        }
    }
}
