//! End to end on the Northwind database (tests/data/northwind.sql, Ms-PL): customers as
//! companies (with made-up CNPJs: Northwind has none) and contacts, employees as sellers,
//! orders and their lines, suppliers — pushed over HTTP, synced, and the CRM has every
//! company and contact.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, Utc};
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, GetAbcReportRequest, GetRunRequest, ListCompaniesRequest, TriggerSyncRequest,
    UpdateSettingsRequest,
};
use erpsync::storage::crm;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{authed, http_post, TestApp};

both_backends!(northwind_pushed_and_synced_lands_every_company_and_contact_in_the_crm);

type History = pb::integration_history_client::IntegrationHistoryClient<tonic::transport::Channel>;

/// The Northwind dump the repository carries (tests/data/, with its Ms-PL license).
pub(crate) fn northwind() -> &'static str {
    include_str!("../data/northwind.sql")
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

fn v(row: &[Option<String>], i: usize) -> Value {
    row[i].clone().map_or(Value::Null, Value::from)
}

/// Column `i` of a row, which must not be NULL.
fn col(row: &[Option<String>], i: usize) -> &str {
    row[i].as_deref().expect("a non-NULL column")
}

/// Each customer's seller: the employee of its earliest order (ties: the lowest order
/// id). Orders are (order_id, customer_id, employee_id, order_date, …).
fn first_sellers(orders: &[Vec<Option<String>>]) -> BTreeMap<String, String> {
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

/// What the ABC analysis should find for one customer, worked out from the dump alone.
#[derive(Debug, Default)]
struct Expected {
    /// Σ unit_price × quantity × (1 − discount) over the customer's order lines, exact.
    revenue: Decimal,
    /// How many order lines that is (the ERP side rounds each to cents).
    lines: u32,
    /// The customer's last order date, if it ever ordered.
    last_order: Option<NaiveDate>,
    class: Option<pb::AbcClass>,
}

/// Revenue, lines and last order per customer (every customer, ordered or not).
fn expected_revenue(sql: &str) -> BTreeMap<String, Expected> {
    let mut out: BTreeMap<String, Expected> = rows(sql, "customers")
        .iter()
        .map(|c| (col(c, 0).to_owned(), Expected::default()))
        .collect();
    let mut customer_of = BTreeMap::new();
    for o in rows(sql, "orders") {
        let date: NaiveDate = col(&o, 3).parse().unwrap();
        let e = out
            .get_mut(col(&o, 1))
            .expect("an order of a known customer");
        e.last_order = e.last_order.max(Some(date));
        customer_of.insert(col(&o, 0).to_owned(), col(&o, 1).to_owned());
    }
    // order_details: (order_id, product_id, unit_price, quantity, discount).
    for d in rows(sql, "order_details") {
        let [price, qty, discount] = [2, 3, 4].map(|i| col(&d, i).parse::<Decimal>().unwrap());
        let e = out.get_mut(&customer_of[col(&d, 0)]).unwrap();
        e.revenue += price * qty * (Decimal::ONE - discount);
        e.lines += 1;
    }
    out
}

/// Ranks customers with positive revenue (descending, ties by id) and gives each its
/// class: A while the cumulative share before it is under 80 %, B under 95 %, else C.
fn classify(expected: &mut BTreeMap<String, Expected>) {
    let mut ranked: Vec<(&String, Decimal)> = expected
        .iter()
        .filter(|(_, e)| e.revenue > Decimal::ZERO)
        .map(|(id, e)| (id, e.revenue))
        .collect();
    ranked.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(y.0)));
    let total: Decimal = ranked.iter().map(|r| r.1).sum();
    let mut before = Decimal::ZERO;
    let mut classes = Vec::new();
    for (id, revenue) in ranked {
        // before / total < 80 % ⇔ before × 100 < 80 × total (no division, no rounding).
        let class = if before * Decimal::ONE_HUNDRED < Decimal::from(80) * total {
            pb::AbcClass::A
        } else if before * Decimal::ONE_HUNDRED < Decimal::from(95) * total {
            pb::AbcClass::B
        } else {
            pb::AbcClass::C
        };
        classes.push((id.clone(), class));
        before += revenue;
    }
    for (id, class) in classes {
        expected.get_mut(&id).unwrap().class = Some(class);
    }
}

/// Every company ListCompanies returns, following next_page_token.
async fn list_all_companies(history: &mut History, token: &str) -> Vec<pb::Company> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = history
            .list_companies(authed(
                ListCompaniesRequest {
                    tenant_id: "northwind".into(),
                    page_size: 40,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.companies);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
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

async fn northwind_pushed_and_synced_lands_every_company_and_contact_in_the_crm(app: TestApp) {
    let sql = northwind();
    let tenant = app.create_tenant("northwind").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let crm_token = app.token(Role::Crm, &[&tenant]).await;

    let seller_of = first_sellers(&rows(sql, "orders"));
    let records = erp_records(sql);
    let counts: Vec<(&str, usize)> = records.iter().map(|(t, r)| (*t, r.len())).collect();
    assert_eq!(
        counts,
        [
            ("company", 91),
            ("contact", 91),
            ("seller", 9),
            ("order", 830),
            ("order_item", 2155),
            ("supplier", 29)
        ]
    );
    push_over_http(&app, &erp, &records).await;

    let mut history = app.history().await;
    // The ABC analysis on order totals, over a window reaching back to 1996.
    history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "northwind".into(),
                abc_basis: Some("order".into()),
                abc_window_months: Some(1200),
                ..Default::default()
            },
            &crm_token,
        ))
        .await
        .unwrap();
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

    check_abc(sql, &mut history, &crm_token, &seller_of, &run.run_id).await;
}

/// The run's ABC analysis matches one worked out here from the dump: every company's
/// class, lifecycle, portfolio and revenue, and GetAbcReport's per-class counts.
async fn check_abc(
    sql: &str,
    history: &mut History,
    crm_token: &str,
    seller_of: &BTreeMap<String, String>,
    run_id: &str,
) {
    let mut expected = expected_revenue(sql);
    classify(&mut expected);
    let never_ordered: Vec<&str> = expected
        .iter()
        .filter(|(_, e)| e.last_order.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(never_ordered, ["FISSA", "PARIS"]);
    // Every order is from 1998 or before: more than 365 days ago, so INACTIVE.
    let today = Utc::now()
        .with_timezone(&chrono_tz::America::Sao_Paulo)
        .date_naive();
    let last = expected
        .values()
        .filter_map(|e| e.last_order)
        .max()
        .unwrap();
    assert!(last < today - Duration::days(365), "{last}");

    let companies = list_all_companies(history, crm_token).await;
    let by_id: BTreeMap<&str, &pb::Company> = companies
        .iter()
        .map(|c| (c.external_id.as_str(), c))
        .collect();
    assert_eq!((companies.len(), by_id.len()), (91, 91));
    for (id, want) in &expected {
        let got = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} not listed"));
        let lifecycle = match want.last_order {
            Some(_) => pb::Lifecycle::Inactive,
            None => pb::Lifecycle::Prospect,
        };
        let portfolio = seller_of.get(id).map_or("unassigned", String::as_str);
        assert_eq!(
            (got.abc_class(), got.lifecycle(), got.portfolio.as_str()),
            (
                want.class.unwrap_or(pb::AbcClass::Unspecified),
                lifecycle,
                portfolio
            ),
            "{id}: {got:?}"
        );
        let revenue: Decimal = got.revenue.parse().unwrap();
        let tolerance = Decimal::new(1, 2) * Decimal::from(want.lines);
        assert!(
            (revenue - want.revenue).abs() <= tolerance,
            "{id}: revenue {revenue}, expected {} ± {tolerance}",
            want.revenue
        );
    }

    let mut counts: BTreeMap<pb::AbcClass, u64> = BTreeMap::new();
    for class in expected.values().filter_map(|e| e.class) {
        *counts.entry(class).or_default() += 1;
    }
    // Worked out from the dump (FAMIA, the last B, starts at 94.98 % of the revenue).
    let abc = [
        (pb::AbcClass::A, 34),
        (pb::AbcClass::B, 27),
        (pb::AbcClass::C, 28),
    ];
    assert_eq!(counts, BTreeMap::from(abc));
    assert_eq!(counts.values().sum::<u64>(), 89);
    let report = history
        .get_abc_report(authed(
            GetAbcReportRequest {
                tenant_id: "northwind".into(),
            },
            crm_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let reported: BTreeMap<pb::AbcClass, u64> = report
        .classes
        .iter()
        .filter(|c| c.abc_class() != pb::AbcClass::Unspecified)
        .map(|c| (c.abc_class(), c.companies))
        .collect();
    assert_eq!(reported, counts, "{report:?}");
    assert_eq!(report.companies_without_class, 2);
    assert_eq!(report.basis, "order");
    assert_eq!(report.run_id, run_id);
    let end = report.curve.last().expect("a curve");
    assert_eq!(
        (end.company_share.as_str(), end.revenue_share.as_str()),
        ("100.00", "100.00")
    );
}
