//! Validation and normalization of one ERP record (one JSON object pushed for one table).
//!
//! Each table has its fields in the catalog ([`crate::domain::tables`]); [`validate()`] checks the
//! known fields against their [`Kind`], rewrites them in a canonical form (trimmed text, exact decimals
//! as strings, ISO dates, bare-digit documents) and keeps unknown fields untouched, so the
//! rest of erpsync never has to deal with the many ways ERPs format the same value.
//!
//! Reasons are written for the person configuring the ERP: they name the bad value and say
//! what to send instead.
//!
//! This file holds the record as a whole (its problems, known and unknown fields); the rules
//! for one value live by concern: `validate.rs` the rule each kind of field applies (the
//! kinds and each table's fields are in `domain::tables`), `decimal.rs` exact decimals, `date.rs` dates and date-times,
//! `document.rs` CNPJs and CPFs; `reason.rs` how a reason quotes what it got.

mod date;
mod decimal;
mod document;
mod reason;
mod validate;

use std::fmt;

use serde_json::{Map, Value};

use self::reason::show;
use self::validate::{normalize_field, MISSING};
use super::tables::TableDef;

pub use self::date::{parse_date, ParsedDate};
pub use self::decimal::parse_decimal;
pub use self::document::{Cnpj, CnpjOrCpf, Cpf};
pub use self::reason::json_type;
pub use self::validate::{Kind, MAX_MONEY};

/// One problem with a record: the field (or "" for the record as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field the problem is about, or "" for the record as a whole.
    pub field: String,
    /// What is wrong, written for a person at the ERP.
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for FieldError {}

/// Validates `fields` of a record of `table` and returns them normalized, or every problem found.
///
/// Known fields come back in canonical form and unknown fields as received (the batch
/// reports them as warnings, see `domain::batch`), except that
/// credentials in free text (`Text` fields, texts of unknown fields) come back masked
/// ([`crate::domain::credential`]). A JSON null or a
/// blank string counts as absent: an absent optional field is left out of the result and an
/// absent required one is reported as missing. Problems come in the table's field order, then
/// unknown-field problems.
pub fn validate(
    table: &TableDef,
    fields: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut out = Map::new();
    let mut errors = Vec::new();

    for field in table.fields {
        let name = field.name;
        match normalize_field(field.kind, fields.get(name)) {
            Ok(Some(value)) => {
                out.insert(name.to_owned(), value);
            }
            Ok(None) if field.required => errors.push(FieldError::new(name, MISSING)),
            Ok(None) => {}
            Err(reason) => errors.push(FieldError::new(name, reason)),
        }
    }

    for (key, value) in fields {
        if table.field(key).is_some() {
            continue;
        }
        match unknown_field_problem(table, fields, key) {
            Some(reason) => errors.push(FieldError::new(key, reason)),
            None => {
                out.insert(key.clone(), crate::domain::credential::redact_json(value));
            }
        }
    }

    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Unknown fields are kept as received, except names that cannot be right: an empty name, or
/// a known name in another case or with spaces ("Total", " name"), which would otherwise
/// silently land among the extras while the real field stays empty.
fn unknown_field_problem(
    table: &TableDef,
    fields: &Map<String, Value>,
    key: &str,
) -> Option<String> {
    let trimmed = key.trim();
    if trimmed.is_empty() {
        return Some("a field name must not be empty".to_owned());
    }
    for name in table.fields.iter().map(|f| f.name) {
        if trimmed.eq_ignore_ascii_case(name) && !fields.contains_key(name) {
            return Some(format!(
                "unknown field {}: did you mean \"{name}\"? field names are case-sensitive; \
                 this table accepts: {}",
                show(key),
                table.accepted_fields()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    // The fixtures here (valid sample records, interesting strings) serve the tests of the
    // files beside this one as well.

    use super::super::tables::{find, TABLES};
    use super::validate::is_absent;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    pub(super) fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    pub(super) fn table(id: &str) -> &'static TableDef {
        find(id).expect("table in catalog")
    }

    /// A valid record for each table, with every schema field filled.
    fn sample(id: &str) -> Map<String, Value> {
        obj(match id {
            "company" => json!({"name": "ACME Ltda", "document": "11.222.333/0001-81",
                "seller_id": 42, "city": "Curitiba", "state": "PR",
                "email": "compras@acme.com.br", "phone": "(41) 3333-4444"}),
            "contact" => json!({"name": "Maria", "document": "529.982.247-25",
                "company_id": "C-1", "email": "maria@x.com", "phone": "41999998888"}),
            "quote" => json!({"company_id": "C-1", "issued_at": "05/03/2024",
                "total": "1.234,56", "seller_id": 7}),
            "quote_item" => json!({"quote_id": "Q-1", "product_code": 1001, "quantity": 2,
                "unit_price": "10,50", "discount": 0.1}),
            "order" => json!({"company_id": "C-1", "issued_at": "2024-03-05T10:00:00-03:00",
                "total": 99.9, "seller_id": "7", "status": "open"}),
            "order_item" => json!({"order_id": 5, "product_code": "P-1", "quantity": "1,5",
                "unit_price": 3, "discount": "0"}),
            "invoice" => json!({"company_id": "C-1", "issued_at": "2024-03-05",
                "total": "-150,00", "seller_id": 7, "number": "000123"}),
            "invoice_item" => json!({"invoice_id": "N-1", "product_code": "P-1",
                "quantity": 1, "unit_price": "0", "discount": 1}),
            "receivable" => json!({"company_id": "C-1", "due_date": "2024-04-05",
                "amount": "500", "paid_at": ""}),
            "supplier" => json!({"name": "Fornecedor SA", "document": "11222333000181"}),
            "seller" => json!({"name": "João", "email": "joao@acme.com.br"}),
            "company_brand" => json!({"company_id": 1, "brand": "Marca X", "status": "ativo"}),
            _ => json!({}),
        })
    }

    fn errors(id: &str, record: Value) -> Vec<FieldError> {
        validate(table(id), &obj(record)).err().unwrap_or_default()
    }

    pub(super) fn one_error(id: &str, record: Value) -> FieldError {
        let errs = errors(id, record);
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().expect("one error")
    }

    pub(super) fn ok(id: &str, record: Value) -> Map<String, Value> {
        match validate(table(id), &obj(record)) {
            Ok(m) => m,
            Err(e) => panic!("expected valid, got {e:?}"),
        }
    }

    // ---- schema ----------------------------------------------------------------------------

    #[test]
    fn every_table_has_a_schema_covering_its_required_fields() {
        for t in TABLES {
            let kinds = t.table.def().fields;
            assert!(!kinds.is_empty(), "{}", t.id);
            for r in t.required_fields {
                assert!(
                    kinds.iter().any(|f| f.name == *r && f.required),
                    "{}.{r}",
                    t.id
                );
            }
        }
    }

    #[test]
    fn every_table_accepts_a_valid_record() {
        for t in TABLES {
            let out = validate(t, &sample(t.id));
            assert!(out.is_ok(), "{}: {out:?}", t.id);
        }
    }

    #[test]
    fn each_removed_required_field_is_reported_alone_as_missing() {
        for t in TABLES {
            for &field in t.required_fields {
                for absent in [None, Some(Value::Null), Some(json!("   "))] {
                    let mut record = sample(t.id);
                    match &absent {
                        None => record.remove(field),
                        Some(v) => record.insert(field.to_owned(), v.clone()),
                    };
                    let errs = validate(t, &record).err().unwrap_or_default();
                    assert_eq!(
                        errs,
                        vec![FieldError::new(field, MISSING)],
                        "{}.{field} as {absent:?}",
                        t.id
                    );
                }
            }
        }
    }

    #[test]
    fn normalizes_known_fields_and_keeps_unknown_ones() {
        let out = ok(
            "company",
            json!({"name": "  ACME  ", "document": "11.222.333/0001-81", "seller_id": 42,
                   "email": null, "phone": "", "erp_flag": [1, {"a": null}]}),
        );
        assert_eq!(
            Value::Object(out),
            json!({"name": "ACME", "document": "11222333000181", "seller_id": "42",
                   "erp_flag": [1, {"a": null}]})
        );
        let out = ok(
            "quote_item",
            json!({"quote_id": " Q-1 ", "product_code": 1001, "quantity": "1.000,50",
                   "unit_price": 0.1, "discount": "0,15"}),
        );
        assert_eq!(
            Value::Object(out),
            json!({"quote_id": "Q-1", "product_code": "1001", "quantity": "1000.5",
                   "unit_price": "0.1", "discount": "0.15"})
        );
        let out = ok(
            "order",
            json!({"company_id": "C", "issued_at": "05/03/2024 10:00", "total": 0}),
        );
        assert_eq!(out.get("issued_at"), Some(&json!("2024-03-05T10:00:00")));
        assert_eq!(out.get("total"), Some(&json!("0")));
    }

    #[test]
    fn errors_come_in_schema_order_then_unknown_fields() {
        let errs = errors(
            "quote",
            json!({"Total": 5, "seller_id": true, "issued_at": "31/02/2024", "": 1}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["company_id", "issued_at", "total", "seller_id", "", "Total"]
        );
        assert_eq!(
            errs.get(1).map(|e| e.reason.as_str()),
            Some("\"31/02/2024\" is not a valid date: use YYYY-MM-DD or DD/MM/YYYY")
        );
        assert_eq!(
            errs.get(3).map(|e| e.reason.as_str()),
            Some("expected a text or a whole number, got a boolean")
        );
        assert!(errs
            .get(5)
            .is_some_and(|e| e.reason.contains("did you mean \"total\"")));
        assert_eq!(
            errs.first().map(ToString::to_string).as_deref(),
            Some("company_id: required field is missing")
        );
    }

    #[test]
    fn a_near_miss_name_is_kept_when_the_real_field_is_there() {
        let out = ok("seller", json!({"name": "A", "Name": "B"}));
        assert_eq!(out.get("Name"), Some(&json!("B")));
    }

    // ---- properties ------------------------------------------------------------------------

    fn all_field_names() -> Vec<String> {
        let mut names: Vec<String> = TABLES
            .iter()
            .flat_map(|t| t.table.def().fields.iter().map(|f| f.name.to_owned()))
            .collect();
        names.extend(["Name", " total", "external_id", "", "extra"].map(String::from));
        names.sort();
        names.dedup();
        names
    }

    pub(super) fn interesting_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9.,/ :TZ+-]{0,24}",
            prop::sample::select(vec![
                "1.234,56",
                "-5",
                "0,1",
                "1e400",
                "31/02/2024",
                "29/02/2024",
                "2024-03-05T10:00:00-03:00",
                "11.222.333/0001-81",
                "529.982.247-25",
                "11111111111",
                "  ",
                "",
                "9999999999999999999999999999999",
            ])
            .prop_map(String::from),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            interesting_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_record() -> impl Strategy<Value = (&'static TableDef, Map<String, Value>)> {
        let key = prop_oneof![4 => prop::sample::select(all_field_names()), 1 => ".{0,6}"];
        (
            prop::sample::select(TABLES.iter().collect::<Vec<_>>()),
            prop::collection::btree_map(key, arb_json(), 0..10),
        )
            .prop_map(|(t, m)| (t, m.into_iter().collect()))
    }

    /// A valid sample with some of its schema fields replaced by arbitrary values or removed,
    /// so the accepting path (and its idempotence) is exercised, not only rejections.
    fn arb_near_valid_record() -> impl Strategy<Value = (&'static TableDef, Map<String, Value>)> {
        prop::sample::select(TABLES.iter().collect::<Vec<_>>()).prop_flat_map(|t| {
            let names: Vec<&'static str> = t.table.def().fields.iter().map(|f| f.name).collect();
            let change = (
                prop::sample::select(names),
                prop::option::weighted(0.8, arb_json()),
            );
            prop::collection::vec(change, 0..3).prop_map(move |changes| {
                let mut record = sample(t.id);
                for (name, value) in changes {
                    match value {
                        Some(v) => record.insert(name.to_owned(), v),
                        None => record.remove(name),
                    };
                }
                (t, record)
            })
        })
    }

    fn check_validate(t: &TableDef, record: &Map<String, Value>) -> Result<(), TestCaseError> {
        match validate(t, record) {
            Ok(out) => {
                for r in t.required_fields {
                    prop_assert!(out.get(*r).is_some_and(|v| !is_absent(v)), "{} missing", r);
                }
                // Normalizing a normalized record changes nothing.
                prop_assert_eq!(validate(t, &out), Ok(out.clone()));
            }
            Err(errs) => {
                prop_assert!(!errs.is_empty());
                for e in &errs {
                    prop_assert!(!e.reason.is_empty());
                    prop_assert!(
                        record.contains_key(&e.field)
                            || t.required_fields.contains(&e.field.as_str()),
                        "error for a field that is neither sent nor required: {:?}",
                        e
                    );
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn validate_never_panics_on_arbitrary_records((t, record) in arb_record()) {
            check_validate(t, &record)?;
        }

        #[test]
        fn validate_accepts_stably_around_valid_records((t, record) in arb_near_valid_record()) {
            check_validate(t, &record)?;
        }
    }
}
