//! The rule each kind of field applies: how a known field is checked and rewritten in its
//! canonical form. The kinds and each table's fields are in the catalog (`domain::tables`).

use rust_decimal::Decimal;
use serde_json::Value;

use super::date::{parse_date, DATE_HINT};
use super::decimal::{decimal_from_number, parse_decimal};
use super::document;
use super::reason::{json_type, show};
use crate::domain::credential::redact_credentials;

pub use crate::domain::tables::Kind;

const MAX_TEXT_CHARS: usize = 1000;
const MAX_REF_CHARS: usize = 200;
/// Amounts must be below this in absolute value: revenue is summed exactly in integers of
/// 0.0001 (see `domain::abc`), and no real invoice, order or price comes near it.
pub const MAX_MONEY: i64 = 100_000_000_000_000;

/// What a missing required field reads as.
pub(super) const MISSING: &str = "required field is missing";

/// A JSON null or a blank string: the field counts as not sent.
pub(super) fn is_absent(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Checks one known field; `Ok(None)` means absent (not sent, null or blank).
pub(super) fn normalize_field(kind: Kind, value: Option<&Value>) -> Result<Option<Value>, String> {
    let value = match value {
        Some(v) if !is_absent(v) => v,
        _ => return Ok(None),
    };
    let normalized = match kind {
        // Free text may carry a credential pasted by mistake: it is masked before it is
        // staged and delivered. Codes and references are identifiers, kept exact.
        Kind::Text => {
            Value::String(redact_credentials(&text(value, MAX_TEXT_CHARS, false)?).into_owned())
        }
        Kind::Code => Value::String(text(value, MAX_TEXT_CHARS, true)?),
        Kind::Ref(_) => Value::String(text(value, MAX_REF_CHARS, true)?),
        Kind::Date => match value {
            Value::String(s) => Value::String(parse_date(s)?.to_json_string()),
            other => {
                return Err(format!(
                    "expected a date as a text ({DATE_HINT}), got {}",
                    json_type(other)
                ))
            }
        },
        Kind::Money | Kind::NonNegativeMoney | Kind::Quantity | Kind::Fraction => {
            let d = match value {
                Value::String(s) => parse_decimal(s)?,
                Value::Number(n) => decimal_from_number(n)?,
                other => return Err(format!("expected a number, got {}", json_type(other))),
            };
            check_range(kind, d)?;
            Value::String(d.normalize().to_string())
        }
        Kind::Cnpj => Value::String(document::Cnpj::parse(document_text(value)?)?.to_string()),
        Kind::Cpf => Value::String(document::Cpf::parse(document_text(value)?)?.to_string()),
        Kind::CnpjOrCpf => {
            Value::String(document::CnpjOrCpf::parse(document_text(value)?)?.to_string())
        }
    };
    Ok(Some(normalized))
}

fn text(value: &Value, max_chars: usize, integer_ok: bool) -> Result<String, String> {
    let s = match value {
        Value::String(s) => s.trim(),
        // ERPs often keep ids and product codes as integer columns; their decimal form is the id.
        Value::Number(n) if integer_ok => {
            return if n.is_i64() || n.is_u64() {
                Ok(n.to_string())
            } else {
                Err(format!(
                    "expected a text or a whole number, got the number {n}"
                ))
            };
        }
        other if integer_ok => {
            return Err(format!(
                "expected a text or a whole number, got {}",
                json_type(other)
            ))
        }
        other => return Err(format!("expected a text, got {}", json_type(other))),
    };
    let chars = s.chars().count();
    if chars > max_chars {
        return Err(format!(
            "{} is too long: {chars} characters, at most {max_chars} are allowed",
            show(s)
        ));
    }
    // PostgreSQL text columns reject NUL, so it would fail later, far from the ERP that sent it.
    if s.contains('\0') {
        return Err(format!(
            "{} contains a NUL character (\\u0000), which is not allowed",
            show(s)
        ));
    }
    Ok(s.to_owned())
}

fn check_range(kind: Kind, d: Decimal) -> Result<(), String> {
    let shown = d.normalize();
    match kind {
        Kind::NonNegativeMoney if d.is_sign_negative() && !d.is_zero() => Err(format!(
            "{shown} is negative: this amount must not be negative"
        )),
        Kind::Quantity if d.is_sign_negative() && !d.is_zero() => Err(format!(
            "{shown} is negative: a quantity must not be negative"
        )),
        Kind::Money | Kind::NonNegativeMoney if d.abs() >= Decimal::from(MAX_MONEY) => {
            Err(format!(
                "{shown} is too large: an amount must be below 100 000 000 000 000 (10^14) in absolute value"
            ))
        }
        Kind::Fraction if d < Decimal::ZERO || d > Decimal::ONE => Err(format!(
            "{shown} is not between 0 and 1: send a fraction, e.g. 0.15 for 15%"
        )),
        _ => Ok(()),
    }
}

/// The text of a document field; a JSON number is refused, having lost the leading zeros
/// many CNPJs and CPFs have.
fn document_text(value: &Value) -> Result<&str, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Err(format!(
            "expected a text, got the number {n}: send the document as a string \
             (e.g. \"11.222.333/0001-81\") so leading zeros are kept"
        )),
        other => Err(format!("expected a text, got {}", json_type(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{obj, ok, one_error, table};
    use super::super::validate;
    use serde_json::{json, Value};

    #[test]
    fn wrong_json_types_name_expected_and_got() {
        let e = one_error("seller", json!({"name": 12}));
        assert_eq!(e.reason, "expected a text, got a number");
        let e = one_error("seller", json!({"name": "A", "email": ["x"]}));
        assert_eq!(
            (e.field.as_str(), e.reason.as_str()),
            ("email", "expected a text, got a list")
        );
        let e = one_error(
            "quote",
            json!({"company_id": 1.5, "issued_at": "2024-01-01", "total": 1}),
        );
        assert!(
            e.reason.contains("whole number") && e.reason.contains("1.5"),
            "{e}"
        );
        let e = one_error(
            "quote",
            json!({"company_id": 1, "issued_at": 20240101, "total": 1}),
        );
        assert!(e.reason.starts_with("expected a date as a text"), "{e}");
        let e = one_error(
            "quote",
            json!({"company_id": 1, "issued_at": "2024-01-01", "total": {}}),
        );
        assert_eq!(e.reason, "expected a number, got an object");
    }

    #[test]
    fn text_limits() {
        let long = "x".repeat(1001);
        let e = one_error("seller", json!({"name": long}));
        assert!(
            e.reason.contains("1001 characters") && e.reason.contains('…'),
            "{e}"
        );
        assert!(validate(table("seller"), &obj(json!({"name": "é".repeat(1000)}))).is_ok());
        let e = one_error(
            "company_brand",
            json!({"company_id": "r".repeat(201), "brand": "b", "status": "s"}),
        );
        assert!(e.reason.contains("at most 200"), "{e}");
        let e = one_error("seller", json!({"name": "a\u{0}b"}));
        assert!(e.reason.contains("NUL"), "{e}");
    }

    #[test]
    fn sign_and_range_rules() {
        let base =
            |q: Value| json!({"order_id": 1, "product_code": "P", "quantity": q, "unit_price": 1});
        let e = one_error("order_item", base(json!("-2")));
        assert_eq!(e.field, "quantity");
        assert!(
            e.reason.contains("negative") && e.reason.contains("-2"),
            "{e}"
        );
        assert!(validate(table("order_item"), &obj(base(json!(0)))).is_ok());
        assert!(validate(table("order_item"), &obj(base(json!("-0")))).is_ok());

        let e = one_error(
            "quote",
            json!({"company_id": 1, "issued_at": "2024-01-01", "total": -0.01}),
        );
        assert!(e.reason.contains("negative"), "{e}");
        let e = one_error(
            "receivable",
            json!({"company_id": 1, "due_date": "2024-01-01", "amount": "-1"}),
        );
        assert!(e.reason.contains("negative"), "{e}");
        let out = ok(
            "invoice",
            json!({"company_id": 1, "issued_at": "2024-01-01", "total": "-1.234,50"}),
        );
        assert_eq!(out.get("total"), Some(&json!("-1234.5")));

        let item = |d: Value| json!({"invoice_id": 1, "product_code": "P", "quantity": 1, "unit_price": 1, "discount": d});
        let e = one_error("invoice_item", item(json!(15)));
        assert!(
            e.reason.contains("between 0 and 1") && e.reason.contains("15"),
            "{e}"
        );
        assert_eq!(
            one_error("invoice_item", item(json!("-0,1"))).field,
            "discount"
        );
        assert!(validate(table("invoice_item"), &obj(item(json!("1,0")))).is_ok());
    }
}
