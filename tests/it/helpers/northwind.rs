//! The Northwind dump (tests/data/northwind.sql, Ms-PL) as an ERP's records, and pushing
//! them over HTTP.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::http::http_post;
use super::seed::cnpj;
use super::servers::TestApp;

/// The Northwind dump the repository carries (tests/data/, with its Ms-PL license).
pub(crate) fn northwind() -> &'static str {
    include_str!("../../data/northwind.sql")
}

/// The values of each `INSERT INTO table VALUES (...)` line.
pub(crate) fn rows(sql: &str, table: &str) -> Vec<Vec<Option<String>>> {
    let prefix = format!("INSERT INTO {table} VALUES (");
    sql.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let mut out = Vec::new();
            let mut chars = rest.chars().peekable();
            loop {
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
                match chars.peek() {
                    Some('\'') => {
                        chars.next();
                        let mut s = String::new();
                        while let Some(c) = chars.next() {
                            if c == '\'' {
                                if chars.peek() == Some(&'\'') {
                                    chars.next();
                                    s.push('\'');
                                } else {
                                    break;
                                }
                            } else {
                                s.push(c);
                            }
                        }
                        out.push(Some(s));
                    }
                    Some(_) => {
                        let token: String = chars
                            .by_ref()
                            .take_while(|c| *c != ',' && *c != ')')
                            .collect();
                        out.push((token.trim() != "NULL").then(|| token.trim().to_owned()));
                        if chars.peek().is_none() {
                            break;
                        }
                        continue;
                    }
                    None => break,
                }
                match chars.next() {
                    Some(',') => continue,
                    _ => break,
                }
            }
            out
        })
        .collect()
}

/// Column `i` of a row as JSON (null for NULL).
fn v(row: &[Option<String>], i: usize) -> Value {
    row[i].clone().map_or(Value::Null, Value::from)
}

/// Column `i` of a row, which must not be NULL.
pub(crate) fn col(row: &[Option<String>], i: usize) -> &str {
    row[i].as_deref().expect("a non-NULL column")
}

/// Each customer's seller: the employee of its earliest order (ties: the lowest order
/// id). Orders are (order_id, customer_id, employee_id, order_date, …).
pub(crate) fn first_sellers(orders: &[Vec<Option<String>>]) -> BTreeMap<String, String> {
    let mut earliest: BTreeMap<&str, ((&str, u32), &str)> = BTreeMap::new();
    for o in orders {
        let key = (col(o, 3), col(o, 0).parse::<u32>().unwrap());
        let entry = earliest.entry(col(o, 1)).or_insert((key, col(o, 2)));
        if key < entry.0 {
            *entry = (key, col(o, 2));
        }
    }
    earliest
        .into_iter()
        .map(|(customer, (_, seller))| (customer.to_owned(), seller.to_owned()))
        .collect()
}

/// The dump as the ERP's records, table by table (in push order): customers as companies
/// (made-up CNPJs) and contacts, employees as sellers, orders with their totals, order
/// lines and suppliers.
pub(crate) fn erp_records(sql: &str) -> Vec<(&'static str, Vec<Value>)> {
    let customers = rows(sql, "customers");
    let seller_of = first_sellers(&rows(sql, "orders"));
    let companies: Vec<Value> = customers
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let mut company = json!({"external_id": v(c, 0), "fields": {"name": v(c, 1),
                "document": cnpj(n as u64 + 1), "city": v(c, 5), "state": v(c, 6), "phone": v(c, 9)}});
            if let Some(seller) = seller_of.get(col(c, 0)) {
                company["fields"]["seller_id"] = json!(seller);
            }
            company
        })
        .collect();
    let contacts: Vec<Value> = customers
        .iter()
        .map(|c| json!({"external_id": v(c, 0), "fields": {"name": v(c, 2), "company_id": v(c, 0), "phone": v(c, 9)}}))
        .collect();
    let sellers: Vec<Value> = rows(sql, "employees")
        .iter()
        .map(|e| json!({"external_id": v(e, 0), "fields": {"name": format!("{} {}", e[2].clone().unwrap(), e[1].clone().unwrap())}}))
        .collect();
    let details = rows(sql, "order_details");
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    let items: Vec<Value> = details
        .iter()
        .map(|d| {
            let (order, product) = (d[0].clone().unwrap(), d[1].clone().unwrap());
            let price: Decimal = d[2].clone().unwrap().parse().unwrap();
            let qty: Decimal = d[3].clone().unwrap().parse().unwrap();
            let discount: Decimal = d[4].clone().unwrap().parse().unwrap();
            *totals.entry(order.clone()).or_default() += (price * qty * (Decimal::ONE - discount)).round_dp(2);
            json!({"external_id": format!("{order}-{product}"), "fields": {"order_id": order, "product_code": product,
                   "quantity": qty.to_string(), "unit_price": price.to_string(), "discount": discount.to_string()}})
        })
        .collect();
    let orders: Vec<Value> = rows(sql, "orders")
        .iter()
        .map(|o| {
            let id = o[0].clone().unwrap();
            let total = totals.get(&id).copied().unwrap_or_default();
            json!({"external_id": id, "fields": {"company_id": v(o, 1), "seller_id": v(o, 2),
                   "issued_at": v(o, 3), "total": total.to_string()}})
        })
        .collect();
    let suppliers: Vec<Value> = rows(sql, "suppliers")
        .iter()
        .enumerate()
        .map(|(n, s)| json!({"external_id": v(s, 0), "fields": {"name": v(s, 1), "document": cnpj(900 + n as u64)}}))
        .collect();
    vec![
        ("company", companies),
        ("contact", contacts),
        ("seller", sellers),
        ("order", orders),
        ("order_item", items),
        ("supplier", suppliers),
    ]
}

/// How many records of a table one push carries.
pub(crate) const PUSH_BATCH: usize = 1000;

/// Pushes `records` over HTTP (POST /erp/v1/{table}) with the ERP token `erp`, in batches
/// of [`PUSH_BATCH`]; every record must be accepted.
pub(crate) async fn push_over_http(app: &TestApp, erp: &str, records: &[(&str, Vec<Value>)]) {
    for (table, records) in records {
        for batch in records.chunks(PUSH_BATCH) {
            let body = json!({ "records": batch }).to_string();
            let (status, text) = http_post(
                app.port,
                &format!("/erp/v1/{table}"),
                Some(erp),
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{table}: {text}");
            let reply: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(reply["rejected"], json!([]), "{table}: {text}");
        }
    }
}
