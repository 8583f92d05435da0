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

use crate::both_backends;
use crate::helpers::northwind::{col, erp_records, first_sellers, northwind, push_over_http, rows};
use crate::helpers::{authed, TestApp};

both_backends!(northwind_pushed_and_synced_lands_every_company_and_contact_in_the_crm);

type History = pb::integration_history_client::IntegrationHistoryClient<tonic::transport::Channel>;

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
