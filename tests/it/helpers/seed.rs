//! Records tests push: a valid record of every table, numbered companies and their
//! tombstones, invoices, valid CNPJs, and days in the tenants' zone.

use chrono::{Duration, NaiveDate, Utc};
use erpsync::grpc::pb::Record;
use serde_json::{json, Value};

/// Valid companies c000, c001, … for the indexes of `range`.
pub(crate) fn companies(range: std::ops::Range<usize>) -> Vec<Record> {
    range
        .map(|i| record(&format!("c{i:03}"), &valid_fields("company")))
        .collect()
}

/// The tombstone of company `c{i:03}`.
pub(crate) fn tombstone(i: usize) -> Record {
    Record {
        external_id: format!("c{i:03}"),
        fields: None,
        updated_at: None,
        deleted: true,
    }
}

/// A valid record of every table (CNPJ 11.222.333/0001-81 and CPF 529.982.247-25 are valid).
pub fn valid_fields(table: &str) -> Value {
    match table {
        "company" => {
            json!({"name": "ACME Ltda", "document": "11.222.333/0001-81", "seller_id": "s1", "city": "Curitiba", "state": "PR"})
        }
        "contact" => {
            json!({"name": "Maria Silva", "document": "529.982.247-25", "company_id": "c1", "email": "maria@acme.com.br"})
        }
        "quote" | "order" | "invoice" => {
            json!({"company_id": "c1", "issued_at": "15/03/2025", "total": "1.234,56"})
        }
        "quote_item" => {
            json!({"quote_id": "q1", "product_code": "P-1", "quantity": "2", "unit_price": "10.50"})
        }
        "order_item" => {
            json!({"order_id": "o1", "product_code": "P-1", "quantity": 3, "unit_price": "9,90", "discount": "0.05"})
        }
        "invoice_item" => {
            json!({"invoice_id": "i1", "product_code": "P-1", "quantity": "1", "unit_price": "100"})
        }
        "receivable" => json!({"company_id": "c1", "due_date": "2025-04-30", "amount": "500.00"}),
        "supplier" => json!({"name": "Fornecedor SA", "document": "11222333000181"}),
        "seller" => json!({"name": "João Vendedor"}),
        "company_brand" => json!({"company_id": "c1", "brand": "Marca X", "status": "ativo"}),
        other => panic!("no sample for {other}"),
    }
}

/// `v` (a JSON object) as the protobuf Struct a record carries.
pub(crate) fn to_struct(v: &Value) -> prost_types::Struct {
    fn value(v: &Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(a) => Kind::ListValue(prost_types::ListValue {
                values: a.iter().map(value).collect(),
            }),
            Value::Object(_) => Kind::StructValue(to_struct(v)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    prost_types::Struct {
        fields: v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, x)| (k.clone(), value(x)))
            .collect(),
    }
}

/// A record `id` with `fields` (a JSON object).
pub fn record(id: &str, fields: &Value) -> Record {
    Record {
        external_id: id.into(),
        fields: Some(to_struct(fields)),
        updated_at: None,
        deleted: false,
    }
}

/// Today in the tenant's zone (America/Sao_Paulo, the default).
pub(crate) fn today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::America::Sao_Paulo)
        .date_naive()
}

/// The date `n` days before [`today`], as `YYYY-MM-DD`.
pub(crate) fn days_ago(n: i64) -> String {
    (today() - Duration::days(n)).to_string()
}

/// An invoice `id` of `company` issued on `issued` for `total`.
pub(crate) fn invoice(id: &str, company: &str, issued: &str, total: &str) -> Record {
    record(
        id,
        &json!({"company_id": company, "issued_at": issued, "total": total}),
    )
}

/// A valid CNPJ (digits only) made from `n`.
pub(crate) fn cnpj(n: u64) -> String {
    let mut d: Vec<u32> = format!("{:08}0001", n)
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    for w in [
        &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2][..],
        &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2][..],
    ] {
        let r = d.iter().zip(w).map(|(a, b)| a * b).sum::<u32>() % 11;
        d.push(if r < 2 { 0 } else { 11 - r });
    }
    d.iter()
        .map(|x| char::from_digit(*x, 10).unwrap())
        .collect()
}
