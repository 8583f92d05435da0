//! End to end on the Northwind database (../shared/data/northwind.sql): customers as
//! companies (with made-up CNPJs: Northwind has none) and contacts, employees as sellers,
//! orders and their lines, suppliers — pushed over HTTP, synced, and the CRM has every
//! company and contact.

use std::collections::BTreeMap;

use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{self, GetRunRequest, TriggerSyncRequest};
use erpsync::storage::crm;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{authed, http_post, TestApp};

both_backends!(northwind_pushed_and_synced_lands_every_company_and_contact_in_the_crm);

/// The dump's path: ERPSYNC_NORTHWIND, or shared/ beside the repository.
fn northwind() -> String {
    let path = std::env::var("ERPSYNC_NORTHWIND").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/northwind.sql").to_owned()
    });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Northwind dump {path}: {e} (set ERPSYNC_NORTHWIND)"))
}

/// The values of each `INSERT INTO table VALUES (...)` line.
fn rows(sql: &str, table: &str) -> Vec<Vec<Option<String>>> {
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

/// A valid CNPJ (digits only) made from `n`.
fn cnpj(n: u64) -> String {
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

fn v(row: &[Option<String>], i: usize) -> Value {
    row[i].clone().map_or(Value::Null, Value::from)
}

async fn northwind_pushed_and_synced_lands_every_company_and_contact_in_the_crm(app: TestApp) {
    let sql = northwind();
    let tenant = app.create_tenant("northwind").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let crm_token = app.token(Role::Crm, &[&tenant]).await;

    let customers = rows(&sql, "customers");
    let companies: Vec<Value> = customers
        .iter()
        .enumerate()
        .map(|(n, c)| {
            json!({"external_id": v(c, 0), "fields": {"name": v(c, 1), "document": cnpj(n as u64 + 1),
                   "city": v(c, 5), "state": v(c, 6), "phone": v(c, 9)}})
        })
        .collect();
    let contacts: Vec<Value> = customers
        .iter()
        .map(|c| json!({"external_id": v(c, 0), "fields": {"name": v(c, 2), "company_id": v(c, 0), "phone": v(c, 9)}}))
        .collect();
    let sellers: Vec<Value> = rows(&sql, "employees")
        .iter()
        .map(|e| json!({"external_id": v(e, 0), "fields": {"name": format!("{} {}", e[2].clone().unwrap(), e[1].clone().unwrap())}}))
        .collect();
    let details = rows(&sql, "order_details");
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
    let orders: Vec<Value> = rows(&sql, "orders")
        .iter()
        .map(|o| {
            let id = o[0].clone().unwrap();
            let total = totals.get(&id).copied().unwrap_or_default();
            json!({"external_id": id, "fields": {"company_id": v(o, 1), "seller_id": v(o, 2),
                   "issued_at": v(o, 3), "total": total.to_string()}})
        })
        .collect();
    let suppliers: Vec<Value> = rows(&sql, "suppliers")
        .iter()
        .enumerate()
        .map(|(n, s)| json!({"external_id": v(s, 0), "fields": {"name": v(s, 1), "document": cnpj(900 + n as u64)}}))
        .collect();
    assert_eq!(
        (
            companies.len(),
            sellers.len(),
            orders.len(),
            items.len(),
            suppliers.len()
        ),
        (91, 9, 830, 2155, 29)
    );

    for (table, records) in [
        ("company", &companies),
        ("contact", &contacts),
        ("seller", &sellers),
        ("order", &orders),
        ("order_item", &items),
        ("supplier", &suppliers),
    ] {
        for batch in records.chunks(1000) {
            let body = json!({ "records": batch }).to_string();
            let (status, text) = http_post(
                app.port,
                &format!("/erp/v1/{table}"),
                Some(&erp),
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{table}: {text}");
            let reply: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(reply["rejected"], json!([]), "{table}: {text}");
        }
    }

    let mut history = app.history().await;
    let started = history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "northwind".into(),
            },
            &crm_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let run_id = started.run.unwrap().run_id;
    let mut run = None;
    for _ in 0..800 {
        let got = history
            .get_run(authed(
                GetRunRequest {
                    tenant_id: "northwind".into(),
                    run_id: run_id.clone(),
                },
                &crm_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if got.status() != pb::RunStatus::Running {
            run = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let run = run.expect("the run finishes");
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    let received: BTreeMap<&str, u64> = run
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.received))
        .collect();
    assert_eq!(received["company"], 91);
    assert_eq!(received["contact"], 91);
    assert_eq!(received["order"], 830);
    assert_eq!(received["order_item"], 2155);
    assert_eq!(received["seller"], 9);
    assert_eq!(received["supplier"], 29);

    let tenant = TenantId::parse("northwind").unwrap();
    assert_eq!(crm::counts(&app.state.db, &tenant).await.unwrap(), (91, 91));
    let alfki = crm::companies(&app.state.db, &tenant, "", 1).await.unwrap();
    assert_eq!(
        (alfki[0].external_id.as_str(), alfki[0].name.as_str()),
        ("ALFKI", "Alfreds Futterkiste")
    );
}
