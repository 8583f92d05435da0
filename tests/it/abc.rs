//! The ABC analysis and categorization through a real run: classes, lifecycle and
//! portfolio of every company in the CRM, GetAbcReport's Pareto curve, ListCompanies,
//! the categorization history, and the ABC shift guard with ResolveAbcShift.

use chrono::{Duration, NaiveDate, Utc};
use erpsync::domain::tenant::TenantId;
use erpsync::grpc::pb::{
    self, GetOverviewRequest, ListCompaniesRequest, Record, ResolveAbcShiftRequest,
    UpdateSettingsRequest,
};
use serde_json::json;
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{days_ago, invoice, record, today};
use crate::helpers::tenants::{all_companies, company_history, list_companies, report, setup, Ctx};
use crate::helpers::{authed, Backend, TestApp};

both_backends!(
    a_run_categorizes_every_company_and_reports_the_pareto_curve,
    list_companies_filters_and_pages,
    the_next_run_keeps_the_history_and_sends_only_changes,
    the_shift_guard_holds_until_approved,
    a_discarded_or_superseded_shift_keeps_the_previous_classes,
    abc_settings_are_validated_and_change_the_analysis,
    more_companies_than_a_read_page_are_all_classified,
    names_with_tabs_backslashes_and_line_breaks_are_stored_as_sent,
    first_and_last_purchase_follow_changed_and_deleted_invoices,
    a_forgotten_company_keeps_its_first_categorization_in_its_history,
    a_revenue_beyond_the_integer_range_fails_the_run_and_the_server_goes_on,
    first_categorizations_are_stored_as_written_and_a_failed_write_stores_none,
);

/// A company with a valid CNPJ and, when given, a seller.
fn company(id: &str, seller: Option<&str>) -> Record {
    let mut f = json!({"name": format!("Empresa {id}"), "document": "11.222.333/0001-81"});
    if let Some(s) = seller {
        f["seller_id"] = json!(s);
    }
    record(id, &f)
}

/// c1..c4 with revenue 500, 300, 150, 50 (the last from 100 and a credit note of -50);
/// c5 never bought; c6 bought only 2 years ago.
async fn seed(ctx: &Ctx) {
    ctx.push(
        "company",
        vec![
            company("c1", Some("s1")),
            company("c2", Some("s1")),
            company("c3", Some("s2")),
            company("c4", Some("s2")),
            company("c5", None),
            company("c6", Some("s1")),
        ],
    )
    .await;
    ctx.push(
        "invoice",
        vec![
            // c1: first purchase 400 days ago (outside the window), last 10 days ago →
            // ACTIVE; revenue 500.
            invoice("i1", "c1", &days_ago(400), "0.01"),
            invoice("i2", "c1", &days_ago(10), "499,99"),
            invoice("i2b", "c1", &days_ago(11), "0.01"),
            // c2: first purchase 30 days ago → NEW.
            invoice("i3", "c2", &days_ago(30), "300"),
            // c3: last purchase 200 days ago → AT_RISK.
            invoice("i4", "c3", &days_ago(200), "150.00"),
            // c4: 100 and a credit note of -50 → 50; a credit note is no purchase, so
            // the first and last purchase are 100 days ago → ACTIVE.
            invoice("i5", "c4", &days_ago(100), "100"),
            invoice("i6", "c4", &days_ago(5), "-50"),
            // c6: two years ago, outside the 12-month window → no class, INACTIVE.
            invoice("i7", "c6", &days_ago(730), "9999"),
            // An invoice of a company the CRM does not have: left out.
            invoice("i8", "ghost", &days_ago(3), "123"),
        ],
    )
    .await;
}

/// A stage of a finished run.
fn stage<'a>(got: &'a pb::GetRunResponse, name: &str) -> &'a pb::RunStage {
    got.run
        .as_ref()
        .unwrap()
        .stages
        .iter()
        .find(|s| s.stage == name)
        .unwrap_or_else(|| panic!("no {name} stage"))
}

fn class_of(companies: &[pb::Company], id: &str) -> pb::AbcClass {
    companies
        .iter()
        .find(|c| c.external_id == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
        .abc_class()
}

async fn a_run_categorizes_every_company_and_reports_the_pareto_curve(app: TestApp) {
    let mut ctx = setup(app).await;
    seed(&ctx).await;
    let got = ctx.run().await;
    let run = got.run.clone().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    let abc = stage(&got, "abc");
    assert!(
        abc.outcome.starts_with("ok: 6 companies"),
        "{}",
        abc.outcome
    );
    let cat = stage(&got, "categorize");
    assert!(
        cat.outcome.starts_with("ok: 6 companies sent"),
        "{}",
        cat.outcome
    );
    assert!(
        got.log
            .iter()
            .any(|e| e.stage == "abc" && e.message.starts_with("1 companies named by invoice")),
        "the orphan invoice is reported"
    );

    // Cumulative share before each: c1 0 % → A, c2 50 % → A (ends exactly on 80 %),
    // c3 80 % → B, c4 95 % → C.
    let rows = all_companies(&mut ctx).await;
    let got: Vec<(&str, pb::AbcClass, pb::Lifecycle, &str, &str)> = rows
        .iter()
        .map(|c| {
            (
                c.external_id.as_str(),
                c.abc_class(),
                c.lifecycle(),
                c.portfolio.as_str(),
                c.revenue.as_str(),
            )
        })
        .collect();
    use pb::{AbcClass as K, Lifecycle as L};
    assert_eq!(
        got,
        vec![
            ("c1", K::A, L::Active, "s1", "500.00"),
            ("c2", K::A, L::New, "s1", "300.00"),
            ("c3", K::B, L::AtRisk, "s2", "150.00"),
            ("c4", K::C, L::Active, "s2", "50.00"),
            ("c5", K::Unspecified, L::Prospect, "unassigned", "0.00"),
            ("c6", K::Unspecified, L::Inactive, "s1", "0.00"),
        ]
    );
    assert_eq!(rows[0].name, "Empresa c1");
    assert_eq!(rows[0].document, "11222333000181");
    assert_eq!(rows[1].first_purchase, days_ago(30));
    assert_eq!(rows[4].first_purchase, "");

    // The embedded CRM carries the same categories.
    let tenant = TenantId::parse("acme").unwrap();
    let crm = erpsync::storage::crm::company_categories(&ctx.app.state.db, &tenant)
        .await
        .unwrap();
    type Row = (String, [Option<String>; 4]);
    let crm: Vec<Row> = crm
        .into_iter()
        .map(|c| {
            (
                c.external_id,
                [c.abc_class, c.lifecycle, c.portfolio, c.revenue],
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        crm,
        vec![
            ("c1".into(), [s("A"), s("ACTIVE"), s("s1"), s("500.00")]),
            ("c2".into(), [s("A"), s("NEW"), s("s1"), s("300.00")]),
            ("c3".into(), [s("B"), s("AT_RISK"), s("s2"), s("150.00")]),
            ("c4".into(), [s("C"), s("ACTIVE"), s("s2"), s("50.00")]),
            (
                "c5".into(),
                [None, s("PROSPECT"), s("unassigned"), s("0.00")]
            ),
            ("c6".into(), [None, s("INACTIVE"), s("s1"), s("0.00")]),
        ]
    );

    let r = report(&mut ctx).await;
    assert_eq!(r.run_id, run.run_id);
    assert_eq!(r.state, "APPLIED");
    assert_eq!(r.basis, "invoice");
    assert_eq!(r.window_to, today().to_string());
    let from = today()
        .checked_sub_months(chrono::Months::new(12))
        .unwrap()
        .succ_opt()
        .unwrap();
    assert_eq!(r.window_from, from.to_string());
    assert_eq!(
        (r.a_threshold.as_str(), r.b_threshold.as_str()),
        ("80", "95")
    );
    let classes: Vec<(pb::AbcClass, u64, &str, &str)> = r
        .classes
        .iter()
        .map(|c| {
            (
                c.abc_class(),
                c.companies,
                c.revenue.as_str(),
                c.revenue_share.as_str(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        vec![
            (K::A, 2, "800.00", "80.00"),
            (K::B, 1, "150.00", "15.00"),
            (K::C, 1, "50.00", "5.00"),
        ]
    );
    assert_eq!(r.companies, 6);
    assert_eq!(r.companies_without_class, 2);
    let curve: Vec<(&str, &str)> = r
        .curve
        .iter()
        .map(|p| (p.company_share.as_str(), p.revenue_share.as_str()))
        .collect();
    assert_eq!(
        curve,
        vec![
            ("0.00", "0.00"),
            ("25.00", "50.00"),
            ("50.00", "80.00"),
            ("75.00", "95.00"),
            ("100.00", "100.00"),
        ]
    );

    let h = company_history(&mut ctx, "c2").await.unwrap();
    assert_eq!(h.company.unwrap().abc_class(), K::A);
    assert_eq!(h.changes.len(), 1);
    let first = &h.changes[0];
    assert_eq!(first.run_id, run.run_id);
    assert_eq!(first.date, today().to_string());
    assert_eq!(
        (
            first.abc_from(),
            first.abc_to(),
            first.lifecycle_from(),
            first.lifecycle_to()
        ),
        (K::Unspecified, K::A, L::Unspecified, L::New)
    );
    let err = company_history(&mut ctx, "nope").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn list_companies_filters_and_pages(app: TestApp) {
    let mut ctx = setup(app).await;
    seed(&ctx).await;
    ctx.run().await;
    let ids = |r: pb::ListCompaniesResponse| -> Vec<String> {
        r.companies.into_iter().map(|c| c.external_id).collect()
    };
    let a = list_companies(
        &mut ctx,
        ListCompaniesRequest {
            abc_class: pb::AbcClass::A as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(a), ["c1", "c2"]);
    let none = list_companies(
        &mut ctx,
        ListCompaniesRequest {
            without_abc_class: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(none), ["c5", "c6"]);
    let prospects = list_companies(
        &mut ctx,
        ListCompaniesRequest {
            lifecycle: pb::Lifecycle::Prospect as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(prospects), ["c5"]);
    let s2_active = list_companies(
        &mut ctx,
        ListCompaniesRequest {
            portfolio: Some("s2".into()),
            lifecycle: pb::Lifecycle::Active as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(s2_active), ["c4"]);

    // Pages of 4: c1..c4, then c5, c6 with no further token.
    let first = list_companies(
        &mut ctx,
        ListCompaniesRequest {
            page_size: 4,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(first.clone()), ["c1", "c2", "c3", "c4"]);
    // Tokens are opaque: the next page starts after c4 without naming it.
    assert!(!first.next_page_token.is_empty() && first.next_page_token != "c4");
    let second = list_companies(
        &mut ctx,
        ListCompaniesRequest {
            page_size: 4,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.next_page_token, "");
    assert_eq!(ids(first).len() + ids(second).len(), 6);

    for (bad, field) in [
        (
            ListCompaniesRequest {
                page_size: 5000,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListCompaniesRequest {
                abc_class: 42,
                ..Default::default()
            },
            "abc_class",
        ),
        (
            ListCompaniesRequest {
                lifecycle: 42,
                ..Default::default()
            },
            "lifecycle",
        ),
        (
            ListCompaniesRequest {
                abc_class: pb::AbcClass::A as i32,
                without_abc_class: true,
                ..Default::default()
            },
            "without_abc_class",
        ),
    ] {
        let err = ctx
            .history
            .list_companies(authed(
                ListCompaniesRequest {
                    tenant_id: "acme".into(),
                    ..bad
                },
                &ctx.crm,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{}", err.message());
    }
}

/// Turns the ABC shift guard off, so every run's classification applies at once.
async fn shift_guard_off(ctx: &mut Ctx) {
    let off = UpdateSettingsRequest {
        abc_shift_guard: Some(false),
        ..Default::default()
    };
    update_settings(ctx, off).await.unwrap();
}

async fn update_settings(
    ctx: &mut Ctx,
    req: UpdateSettingsRequest,
) -> Result<pb::Overview, tonic::Status> {
    ctx.history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                ..req
            },
            &ctx.crm,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn the_next_run_keeps_the_history_and_sends_only_changes(app: TestApp) {
    let mut ctx = setup(app).await;
    seed(&ctx).await;
    ctx.run().await;
    // Nothing changed: nothing is sent again.
    let again = ctx.run().await;
    let cat = stage(&again, "categorize");
    assert!(
        cat.outcome.starts_with("ok: 0 companies sent"),
        "{}",
        cat.outcome
    );
    // c4 sells 2000 more and becomes the top A (the shift guard is off for this test).
    shift_guard_off(&mut ctx).await;
    ctx.push("invoice", vec![invoice("i9", "c4", &days_ago(1), "2000")])
        .await;
    let third = ctx.run().await;
    assert_eq!(third.run.as_ref().unwrap().status(), pb::RunStatus::Success);
    // Revenue 2050, 500, 300, 150 of 3000: before-shares 0, 68.3, 85, 95 → A A B C.
    let rows = all_companies(&mut ctx).await;
    use pb::AbcClass as K;
    assert_eq!(class_of(&rows, "c4"), K::A);
    assert_eq!(class_of(&rows, "c1"), K::A);
    assert_eq!(class_of(&rows, "c2"), K::B);
    assert_eq!(class_of(&rows, "c3"), K::C);
    let cat = stage(&third, "categorize");
    // c4 (revenue and class), c2 and c3 (class) are sent; c1, c5 and c6 did not change.
    assert!(
        cat.outcome
            .starts_with("ok: 3 companies sent to the CRM (3 changed class, 0 changed lifecycle)"),
        "{}",
        cat.outcome
    );
    let h = company_history(&mut ctx, "c4").await.unwrap();
    let steps: Vec<(pb::AbcClass, pb::AbcClass)> = h
        .changes
        .iter()
        .map(|c| (c.abc_from(), c.abc_to()))
        .collect();
    assert_eq!(steps, [(K::Unspecified, K::C), (K::C, K::A)]);
    assert_eq!(h.changes[1].run_id, third.run.unwrap().run_id);

    // c2 is renamed and gets a seller: only c2 is sent, with its new name and portfolio
    // (read from the staged fields again, since its categories came from the old version).
    let renamed = record(
        "c2",
        &json!({"name": "Empresa c2 renomeada", "document": "11.222.333/0001-81", "seller_id": "S9"}),
    );
    ctx.push("company", vec![renamed]).await;
    let fourth = ctx.run().await;
    let cat = stage(&fourth, "categorize");
    assert!(
        cat.outcome.starts_with("ok: 1 companies sent"),
        "{}",
        cat.outcome
    );
    let rows = all_companies(&mut ctx).await;
    let c2 = rows.iter().find(|c| c.external_id == "c2").unwrap();
    assert_eq!(
        (c2.name.as_str(), c2.portfolio.as_str()),
        ("Empresa c2 renomeada", "S9")
    );
    let c1 = rows.iter().find(|c| c.external_id == "c1").unwrap();
    assert_eq!(c1.name, "Empresa c1");
}

/// PostgreSQL writes first categorizations with COPY, whose text format escapes these.
async fn names_with_tabs_backslashes_and_line_breaks_are_stored_as_sent(app: TestApp) {
    let mut ctx = setup(app).await;
    let name = "Tab\there \\ back\\slash\nnew line\r\\N end";
    let seller = "S\\1\t2";
    ctx.push(
        "company",
        vec![record(
            "c1",
            &json!({"name": name, "document": "11.222.333/0001-81", "seller_id": seller}),
        )],
    )
    .await;
    ctx.push("invoice", vec![invoice("i1", "c1", &days_ago(3), "10")])
        .await;
    let got = ctx.run().await;
    assert_eq!(got.run.unwrap().status(), pb::RunStatus::Success);
    let rows = all_companies(&mut ctx).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].portfolio.as_str()),
        (name, seller)
    );
    let h = company_history(&mut ctx, "c1").await.unwrap();
    assert_eq!(h.changes.len(), 1);
    assert_eq!(h.changes[0].lifecycle_to(), pb::Lifecycle::New);
    // Nothing changed: the next run reads them back equal and sends nothing.
    let again = ctx.run().await;
    let cat = stage(&again, "categorize");
    assert!(
        cat.outcome.starts_with("ok: 0 companies sent"),
        "{}",
        cat.outcome
    );
}

/// Ten companies with revenue 100, 90, …, 10 (c00 the largest).
async fn ten(ctx: &Ctx) {
    ctx.push(
        "company",
        (0..10)
            .map(|i| company(&format!("c{i:02}"), Some("s1")))
            .collect(),
    )
    .await;
    ctx.push(
        "invoice",
        (0..10)
            .map(|i| {
                invoice(
                    &format!("base{i:02}"),
                    &format!("c{i:02}"),
                    &days_ago(3),
                    &format!("{}", 100 - 10 * i),
                )
            })
            .collect(),
    )
    .await;
}

/// Turns the ranking upside down: the smallest companies get 1000 more each.
async fn flip(ctx: &Ctx, tag: &str) {
    ctx.push(
        "invoice",
        (5..10)
            .map(|i| {
                invoice(
                    &format!("{tag}{i:02}"),
                    &format!("c{i:02}"),
                    &days_ago(1),
                    "1000",
                )
            })
            .collect(),
    )
    .await;
}

async fn resolve(
    ctx: &mut Ctx,
    run_id: &str,
    action: pb::ResolveAction,
) -> Result<pb::ResolveAbcShiftResponse, tonic::Status> {
    ctx.history
        .resolve_abc_shift(authed(
            ResolveAbcShiftRequest {
                tenant_id: "acme".into(),
                run_id: run_id.into(),
                action: action as i32,
            },
            &ctx.crm,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn open_alerts(ctx: &mut Ctx) -> Vec<pb::Alert> {
    ctx.history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .open_alerts
}

fn classes(rows: &[pb::Company]) -> Vec<pb::AbcClass> {
    rows.iter().map(|c| c.abc_class()).collect()
}

async fn the_shift_guard_holds_until_approved(app: TestApp) {
    let mut ctx = setup(app).await;
    ten(&ctx).await;
    let first = ctx.run().await.run.unwrap();
    let before = classes(&all_companies(&mut ctx).await);
    flip(&ctx, "f").await;
    let got = ctx.run().await;
    let held = got.run.clone().unwrap();
    assert_eq!(held.status(), pb::RunStatus::Partial);
    let cat = stage(&got, "categorize");
    assert!(cat.outcome.starts_with("held: "), "{}", cat.outcome);
    // Previous classes stay, the report is still the first run's and names the held one.
    assert_eq!(classes(&all_companies(&mut ctx).await), before);
    let r = report(&mut ctx).await;
    assert_eq!(r.run_id, first.run_id);
    assert_eq!(r.held_run_id, held.run_id);
    let alerts = open_alerts(&mut ctx).await;
    let alert = alerts
        .iter()
        .find(|a| a.kind() == pb::AlertKind::AbcShiftHeld)
        .expect("ABC_SHIFT_HELD open");
    assert_eq!(alert.run_id, held.run_id);

    // Bad requests change nothing.
    let err = resolve(&mut ctx, &held.run_id, pb::ResolveAction::Unspecified)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = resolve(&mut ctx, "no-such-run", pb::ResolveAction::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = resolve(&mut ctx, &first.run_id, pb::ResolveAction::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("APPLIED"), "{}", err.message());
    assert_eq!(classes(&all_companies(&mut ctx).await), before);

    let changed = resolve(&mut ctx, &held.run_id, pb::ResolveAction::Approve)
        .await
        .unwrap()
        .companies_changed;
    assert!(changed >= 4, "{changed}");
    let after = all_companies(&mut ctx).await;
    // c05..c09 now have 1050..1010 (5150 of 5550): the A companies; c00 (100) starts at
    // 92.8 % → B, c04 (60) at 98.9 % → C.
    assert_eq!(class_of(&after, "c05"), pb::AbcClass::A);
    assert_eq!(class_of(&after, "c00"), pb::AbcClass::B);
    assert_eq!(class_of(&after, "c04"), pb::AbcClass::C);
    let r = report(&mut ctx).await;
    assert_eq!(
        (r.run_id.as_str(), r.state.as_str()),
        (held.run_id.as_str(), "APPROVED")
    );
    assert_eq!(r.held_run_id, "");
    assert!(open_alerts(&mut ctx)
        .await
        .iter()
        .all(|a| a.kind() != pb::AlertKind::AbcShiftHeld));
    let err = resolve(&mut ctx, &held.run_id, pb::ResolveAction::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The history of c00 (A → B) names the approved run.
    let h = company_history(&mut ctx, "c00").await.unwrap();
    let last = h.changes.last().unwrap();
    assert_eq!(last.run_id, held.run_id);
    assert_eq!(
        (last.abc_from(), last.abc_to()),
        (pb::AbcClass::A, pb::AbcClass::B)
    );
    // With what the approved classification ranked it from: 100, after the five flipped
    // companies (1000 more each), which hold the share before it.
    let revenue = |i: i64| 100 - 10 * i + if i >= 5 { 1000 } else { 0 };
    let total: i64 = (0..10).map(revenue).sum();
    let ahead: Vec<i64> = (0..10).filter(|&i| revenue(i) > revenue(0)).collect();
    let before: i64 = ahead.iter().map(|&i| revenue(i)).sum();
    assert_eq!(
        (
            last.revenue.as_str(),
            last.rank,
            last.cumulative_share_before.as_str()
        ),
        (
            format!("{}.00", revenue(0)).as_str(),
            Some(ahead.len() as u32 + 1),
            format!("{:.2}", before as f64 * 100.0 / total as f64).as_str()
        )
    );
    // The next run finds nothing to change.
    let next = ctx.run().await.run.unwrap();
    assert_eq!(next.status(), pb::RunStatus::Success);
}

async fn a_discarded_or_superseded_shift_keeps_the_previous_classes(app: TestApp) {
    let mut ctx = setup(app).await;
    ten(&ctx).await;
    ctx.run().await;
    let before = classes(&all_companies(&mut ctx).await);
    flip(&ctx, "f").await;
    let held = ctx.run().await.run.unwrap();
    assert_eq!(held.status(), pb::RunStatus::Partial);
    // A later run with the same data holds again and supersedes the first hold.
    let again = ctx.run().await.run.unwrap();
    assert_eq!(again.status(), pb::RunStatus::Partial);
    let err = resolve(&mut ctx, &held.run_id, pb::ResolveAction::Discard)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("SUPERSEDED"), "{}", err.message());
    let alerts = open_alerts(&mut ctx).await;
    let alert = alerts
        .iter()
        .find(|a| a.kind() == pb::AlertKind::AbcShiftHeld)
        .unwrap();
    assert_eq!(
        alert.run_id, again.run_id,
        "the alert names the newest hold"
    );

    let changed = resolve(&mut ctx, &again.run_id, pb::ResolveAction::Discard)
        .await
        .unwrap()
        .companies_changed;
    assert_eq!(changed, 0);
    assert_eq!(classes(&all_companies(&mut ctx).await), before);
    assert!(open_alerts(&mut ctx)
        .await
        .iter()
        .all(|a| a.kind() != pb::AlertKind::AbcShiftHeld));

    // With the guard off the same shift applies at once.
    shift_guard_off(&mut ctx).await;
    let applied = ctx.run().await.run.unwrap();
    assert_eq!(applied.status(), pb::RunStatus::Success);
    assert_eq!(
        class_of(&all_companies(&mut ctx).await, "c05"),
        pb::AbcClass::A
    );
}

async fn abc_settings_are_validated_and_change_the_analysis(app: TestApp) {
    let mut ctx = setup(app).await;
    for (bad, field) in [
        (
            UpdateSettingsRequest {
                abc_a_threshold: Some(96.0),
                ..Default::default()
            },
            "abc_a_threshold",
        ),
        (
            UpdateSettingsRequest {
                abc_b_threshold: Some(100.0),
                ..Default::default()
            },
            "abc_b_threshold",
        ),
        (
            UpdateSettingsRequest {
                abc_basis: Some("receivable".into()),
                ..Default::default()
            },
            "abc_basis",
        ),
        (
            UpdateSettingsRequest {
                abc_window_months: Some(0),
                ..Default::default()
            },
            "abc_window_months",
        ),
        (
            UpdateSettingsRequest {
                lifecycle_active_days: Some(400),
                ..Default::default()
            },
            "lifecycle_active_days",
        ),
        (
            UpdateSettingsRequest {
                abc_shift_guard_percent: Some(120.0),
                ..Default::default()
            },
            "abc_shift_guard_percent",
        ),
    ] {
        let err = update_settings(
            &mut ctx,
            UpdateSettingsRequest {
                // A valid change in the same request is not applied either.
                erp_name: Some("Protheus".into()),
                ..bad
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{}", err.message());
    }
    let o = update_settings(&mut ctx, UpdateSettingsRequest::default())
        .await
        .unwrap();
    assert_eq!(o.erp_name, "");
    let abc = o.abc.unwrap();
    assert_eq!(
        (
            abc.basis.as_str(),
            abc.window_months,
            abc.a_threshold.as_str(),
            abc.b_threshold.as_str()
        ),
        ("invoice", 12, "80", "95")
    );

    // Orders as the basis, A below 50 %, 24 months.
    let o = update_settings(
        &mut ctx,
        UpdateSettingsRequest {
            abc_basis: Some("order".into()),
            abc_a_threshold: Some(50.0),
            abc_window_months: Some(24),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(o.abc.unwrap().a_threshold, "50");
    ctx.push(
        "company",
        vec![
            company("x1", None),
            company("x2", None),
            company("x3", None),
        ],
    )
    .await;
    ctx.push(
        "order",
        vec![
            record(
                "o1",
                &json!({"company_id": "x1", "issued_at": days_ago(500), "total": "60"}),
            ),
            record(
                "o2",
                &json!({"company_id": "x2", "issued_at": days_ago(3), "total": "40"}),
            ),
        ],
    )
    .await;
    // Invoices do not count with the order basis.
    ctx.push("invoice", vec![invoice("i1", "x3", &days_ago(3), "1000")])
        .await;
    ctx.run().await;
    let rows = all_companies(&mut ctx).await;
    // x1 60 (0 % before → A), x2 40 (60 % before, not below 50 → B).
    assert_eq!(class_of(&rows, "x1"), pb::AbcClass::A);
    assert_eq!(class_of(&rows, "x2"), pb::AbcClass::B);
    assert_eq!(class_of(&rows, "x3"), pb::AbcClass::Unspecified);
    let r = report(&mut ctx).await;
    assert_eq!((r.basis.as_str(), r.a_threshold.as_str()), ("order", "50"));
}

async fn more_companies_than_a_read_page_are_all_classified(app: TestApp) {
    // The bulk reads go by pages of 20 000 companies: 20 005 cross a page boundary.
    let mut ctx = setup(app).await;
    let n = 20_005usize;
    let ids: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
    for chunk in ids.chunks(5_000) {
        ctx.push(
            "company",
            chunk.iter().map(|id| company(id, None)).collect(),
        )
        .await;
        // Revenue i + 1 for company k{i}: every company has some, all different.
        ctx.push(
            "invoice",
            chunk
                .iter()
                .map(|id| {
                    let i: usize = id[1..].parse().unwrap();
                    invoice(
                        &format!("inv-{id}"),
                        id,
                        &days_ago(2),
                        &format!("{}", i + 1),
                    )
                })
                .collect(),
        )
        .await;
    }
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    let r = report(&mut ctx).await;
    assert_eq!(r.companies, n as u64);
    assert_eq!(r.companies_without_class, 0);
    let classified: u64 = r.classes.iter().map(|c| c.companies).sum();
    assert_eq!(classified, n as u64);
    // Total revenue n(n+1)/2, exact.
    let total: rust_decimal::Decimal = r
        .classes
        .iter()
        .map(|c| c.revenue.parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    assert_eq!(total, rust_decimal::Decimal::from(n * (n + 1) / 2));
    // Both sides of the page boundary carry their own revenue.
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let page = list_companies(
            &mut ctx,
            ListCompaniesRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        for c in &page.companies {
            let i: usize = c.external_id[1..].parse().unwrap();
            assert_eq!(c.revenue, format!("{}.00", i + 1), "{}", c.external_id);
            assert_ne!(c.abc_class(), pb::AbcClass::Unspecified);
        }
        seen += page.companies.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, n);
}

/// Invoices and orders staged before the ABC migration get their revenue columns from
/// their stored fields when it runs: an upgrade loses no revenue.
async fn the_abc_migration_backfills_staged_invoices_and_orders(backend: Backend) {
    use sea_orm::{ConnectionTrait, Statement};
    let Some(scratch) = crate::helpers::ScratchDb::create(backend).await else {
        return;
    };
    let conn = sea_orm::Database::connect(scratch.url.as_str())
        .await
        .unwrap();
    // Every migration before the ABC one.
    migration::up(&conn, Some(7)).await.unwrap();
    let b = conn.get_database_backend();
    let (t, f) = match backend {
        Backend::Sqlite => ("1", "0"),
        Backend::Postgres => ("true", "false"),
    };
    let now = "'2026-11-28 12:00:00+00:00'";
    for sql in [
        format!(
            "INSERT INTO tenant (id, name, timezone, erp_name, erp_version, integration_type, \
             deployment_status, business_rule, active, scheduled, schedule_daily, schedule_cron, \
             max_without_success_secs, created_at, updated_at) VALUES ('acme', 'Acme', \
             'America/Sao_Paulo', '', '', 'API', 'NOT_STARTED', '', {t}, {f}, '00:00', NULL, 86400, {now}, {now})"
        ),
        format!(
            "INSERT INTO staged_record (tenant_id, table_name, external_id, fields, content_hash, \
             updated_at, deleted, changed_at, request_id, size_bytes, synced_hash) VALUES \
             ('acme', 'invoice', 'i1', '{{\"company_id\":\"c1\",\"issued_at\":\"2026-03-15\",\"total\":\"1234.5\"}}', 1, NULL, {f}, {now}, 'r', 10, 1), \
             ('acme', 'invoice', 'i2', '{{\"company_id\":\"c1\",\"issued_at\":\"2026-03-16\",\"total\":\"-10.25\"}}', 2, NULL, {f}, {now}, 'r', 10, 2), \
             ('acme', 'order', 'o1', '{{\"company_id\":\"c2\",\"issued_at\":\"2026-03-15T10:30:00\",\"total\":\"7\"}}', 3, NULL, {f}, {now}, 'r', 10, 3), \
             ('acme', 'invoice', 'gone', '{{}}', 4, NULL, {t}, {now}, 'r', 10, 4), \
             ('acme', 'company', 'c1', '{{\"name\":\"X\",\"document\":\"11222333000181\"}}', 5, NULL, {f}, {now}, 'r', 10, 5)"
        ),
    ] {
        conn.execute(Statement::from_string(b, sql)).await.unwrap();
    }
    migration::up(&conn, None).await.unwrap();
    let rows = conn
        .query_all(Statement::from_string(
            b,
            "SELECT external_id, company_ref, issued_on, amount FROM staged_record ORDER BY external_id",
        ))
        .await
        .unwrap();
    type Revenue = (Option<String>, Option<i32>, Option<i64>);
    let got: Vec<(String, Revenue)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "external_id").unwrap(),
                (
                    r.try_get("", "company_ref").unwrap(),
                    r.try_get("", "issued_on").unwrap(),
                    r.try_get("", "amount").unwrap(),
                ),
            )
        })
        .collect();
    let day = |s: &str| {
        erpsync::storage::days::day_number(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    };
    assert_eq!(
        got,
        vec![
            ("c1".into(), (None, None, None)),
            ("gone".into(), (None, None, None)),
            (
                "i1".into(),
                (Some("c1".into()), Some(day("2026-03-15")), Some(12_345_000))
            ),
            (
                "i2".into(),
                (Some("c1".into()), Some(day("2026-03-16")), Some(-102_500))
            ),
            (
                "o1".into(),
                (Some("c2".into()), Some(day("2026-03-15")), Some(70_000))
            ),
        ]
    );
    // The lean-ABC migration's purchase spans: positive totals only, per table.
    let rows = conn
        .query_all(Statement::from_string(
            b,
            "SELECT table_name, company_ref, first_on, last_on FROM purchase_span ORDER BY table_name",
        ))
        .await
        .unwrap();
    let spans: Vec<(String, String, i32, i32)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "table_name").unwrap(),
                r.try_get("", "company_ref").unwrap(),
                r.try_get("", "first_on").unwrap(),
                r.try_get("", "last_on").unwrap(),
            )
        })
        .collect();
    let d = day("2026-03-15");
    assert_eq!(
        spans,
        vec![
            ("invoice".into(), "c1".into(), d, d),
            ("order".into(), "c2".into(), d, d)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abc_migration_backfills_on_sqlite() {
    the_abc_migration_backfills_staged_invoices_and_orders(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abc_migration_backfills_on_postgres() {
    the_abc_migration_backfills_staged_invoices_and_orders(Backend::Postgres).await;
}

/// (first purchase, last purchase, lifecycle, revenue) of a company as ListCompanies shows it.
async fn purchases_of(ctx: &mut Ctx, id: &str) -> (String, String, pb::Lifecycle, String) {
    let rows = all_companies(ctx).await;
    let c = rows
        .iter()
        .find(|c| c.external_id == id)
        .unwrap_or_else(|| panic!("{id} not listed"));
    (
        c.first_purchase.clone(),
        c.last_purchase.clone(),
        c.lifecycle(),
        c.revenue.clone(),
    )
}

/// Staging keeps each company's first and last purchase as invoices arrive, move to
/// another company, change date, turn into credit notes or are deleted (a tombstone that
/// still carries its fields is no revenue either).
async fn first_and_last_purchase_follow_changed_and_deleted_invoices(app: TestApp) {
    use pb::Lifecycle as L;
    let mut ctx = setup(app).await;
    // Every run here changes most classes.
    shift_guard_off(&mut ctx).await;
    ctx.push(
        "company",
        vec![company("c1", Some("s1")), company("c2", Some("s1"))],
    )
    .await;
    ctx.push(
        "invoice",
        vec![
            invoice("i1", "c1", &days_ago(50), "100"),
            invoice("i2", "c1", &days_ago(20), "100"),
            // A credit note is no purchase.
            invoice("i3", "c1", &days_ago(5), "-30"),
        ],
    )
    .await;
    ctx.run().await;
    assert_eq!(
        purchases_of(&mut ctx, "c1").await,
        (days_ago(50), days_ago(20), L::New, "170.00".into())
    );
    assert_eq!(
        purchases_of(&mut ctx, "c2").await,
        (String::new(), String::new(), L::Prospect, "0.00".into())
    );

    // i2 moves to c2; i1 is deleted by a tombstone that still carries its fields.
    let mut gone = invoice("i1", "c1", &days_ago(50), "100");
    gone.deleted = true;
    ctx.push(
        "invoice",
        vec![gone, invoice("i2", "c2", &days_ago(20), "100")],
    )
    .await;
    ctx.run().await;
    assert_eq!(
        purchases_of(&mut ctx, "c1").await,
        (String::new(), String::new(), L::Prospect, "-30.00".into())
    );
    assert_eq!(
        purchases_of(&mut ctx, "c2").await,
        (days_ago(20), days_ago(20), L::New, "100.00".into())
    );

    // i1 comes back 400 days old (outside the window), i2 becomes a credit note, and a
    // new purchase of c2 widens its span.
    ctx.push(
        "invoice",
        vec![
            invoice("i1", "c1", &days_ago(400), "100"),
            invoice("i2", "c2", &days_ago(20), "-100"),
            invoice("i4", "c2", &days_ago(200), "10"),
        ],
    )
    .await;
    ctx.run().await;
    assert_eq!(
        purchases_of(&mut ctx, "c1").await,
        (days_ago(400), days_ago(400), L::Inactive, "-30.00".into())
    );
    assert_eq!(
        purchases_of(&mut ctx, "c2").await,
        (days_ago(200), days_ago(200), L::AtRisk, "-90.00".into())
    );
}

/// A company's first categorization is kept on its category row rather than as a history
/// row; when the company leaves the CRM it becomes a history row, so the history of a
/// company that comes back still starts with it.
async fn a_forgotten_company_keeps_its_first_categorization_in_its_history(app: TestApp) {
    use pb::{AbcClass as K, Lifecycle as L};
    let mut ctx = setup(app).await;
    shift_guard_off(&mut ctx).await;
    seed(&ctx).await;
    let first = ctx.run().await.run.unwrap().run_id;
    let mut gone = company("c2", Some("s1"));
    gone.deleted = true;
    ctx.push("company", vec![gone]).await;
    ctx.run().await;
    // Gone from the CRM, its history is still readable: the first categorization, now a row.
    let h = company_history(&mut ctx, "c2").await.unwrap();
    assert!(h.company.is_none(), "{h:?}");
    assert_eq!(h.changes.len(), 1, "{h:?}");
    assert_eq!(h.changes[0].run_id, first);
    assert_eq!(h.changes[0].abc_to(), K::A);
    ctx.push("company", vec![company("c2", Some("s1"))]).await;
    let back = ctx.run().await.run.unwrap().run_id;
    let h = company_history(&mut ctx, "c2").await.unwrap();
    let steps: Vec<(String, K, K, L, L)> = h
        .changes
        .iter()
        .map(|c| {
            (
                c.run_id.clone(),
                c.abc_from(),
                c.abc_to(),
                c.lifecycle_from(),
                c.lifecycle_to(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (first, K::Unspecified, K::A, L::Unspecified, L::New),
            (back, K::Unspecified, K::A, L::Unspecified, L::New),
        ]
    );
}

/// A company's revenue past 2^63 ten-thousandths fails the run with a clear message (the
/// database's sum overflows); the connections it used keep serving the next requests.
async fn a_revenue_beyond_the_integer_range_fails_the_run_and_the_server_goes_on(app: TestApp) {
    let mut ctx = setup(app).await;
    ctx.push("company", vec![company("c1", Some("s1"))]).await;
    let huge: Vec<Record> = (0..11)
        .map(|i| invoice(&format!("i{i}"), "c1", &days_ago(3), "90000000000000"))
        .collect();
    ctx.push("invoice", huge).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed);
    assert!(
        run.errors.iter().any(|e| e.contains("beyond 922 trillion")),
        "{:?}",
        run.errors
    );
    // Every pooled connection still answers (a COPY that failed midway is not reused).
    for _ in 0..30 {
        all_companies(&mut ctx).await;
        ctx.overview().await;
    }
    ctx.push("invoice", vec![invoice("i0", "c1", &days_ago(3), "10")])
        .await;
    for i in 1..11 {
        let mut gone = invoice(&format!("i{i}"), "c1", &days_ago(3), "1");
        gone.deleted = true;
        ctx.push("invoice", vec![gone]).await;
    }
    let run = ctx.run().await.run.unwrap();
    assert_ne!(run.status(), pb::RunStatus::Failed, "{:?}", run.errors);
    assert_eq!(purchases_of(&mut ctx, "c1").await.3, "10.00");
}

/// A first categorization of `n` companies `prefix`0…: every field filled or left empty
/// in turn, names in several scripts.
fn first_categories(prefix: &str, n: usize) -> Vec<erpsync::domain::abc::Category> {
    use erpsync::domain::abc::{AbcClass, Category, Lifecycle};
    (0..n)
        .map(|i| Category {
            external_id: format!("{prefix}{i:05}"),
            name: format!("Açaí & Cia «{i}» 東京\t\\N"),
            document: if i % 3 == 0 {
                String::new()
            } else {
                format!("{i:014}")
            },
            abc_class: [
                None,
                Some(AbcClass::A),
                Some(AbcClass::B),
                Some(AbcClass::C),
            ][i % 4],
            lifecycle: [Lifecycle::Prospect, Lifecycle::New, Lifecycle::Active][i % 3],
            portfolio: format!("s{}", i % 7),
            revenue: if i % 5 == 0 {
                -(i as i64) * 10_000
            } else {
                i as i64 * 12_345
            },
            first_purchase: (i % 4 != 0).then(|| NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
            last_purchase: (i % 4 != 0).then(|| {
                NaiveDate::from_ymd_opt(2026, 11, 30).unwrap() - Duration::days(i as i64 % 400)
            }),
            company_hash: (i % 6 != 0).then_some(i as i64 * 7_919 - 1_000_000),
        })
        .collect()
}

/// First categorizations read back exactly as written, with their first history entry
/// (run, date and instant); a write that fails midway (a company already categorized)
/// stores none of its companies and leaves the stored ones as they were.
async fn first_categorizations_are_stored_as_written_and_a_failed_write_stores_none(app: TestApp) {
    use erpsync::storage::abc;
    let ctx = setup(app).await;
    let db = &ctx.app.state.db;
    let tenant = TenantId::parse("acme").unwrap();
    // PostgreSQL keeps microseconds.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let on = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let stamp = erpsync::domain::abc::Stamp {
        run_id: "run-1",
        at,
        on,
    };
    // More than one statement of the SQLite writer (1 800 rows).
    let stored = first_categories("c", 2_500);
    abc::apply(db, &tenant, &stamp, &stored, &[], &[], &[])
        .await
        .unwrap();
    for c in stored.iter().step_by(97).chain(stored.last()) {
        let got = abc::category(db, &tenant, &c.external_id).await.unwrap();
        assert_eq!(got.as_ref(), Some(c));
        let h = abc::history(db, &tenant, &c.external_id).await.unwrap();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(
            (h[0].run_id.as_str(), h[0].changed_on, h[0].changed_at),
            ("run-1", on, at)
        );
        assert_eq!(
            (h[0].abc_to, h[0].lifecycle_to),
            (c.abc_class, Some(c.lifecycle))
        );
    }

    // The second write reaches a company categorized already after 1 500 new ones.
    let mut again = first_categories("d", 1_500);
    let mut clash = stored[10].clone();
    clash.name = "changed".into();
    again.push(clash);
    again.extend(first_categories("e", 10));
    let stamp = erpsync::domain::abc::Stamp {
        run_id: "run-2",
        at: at + Duration::minutes(5),
        on,
    };
    let err = abc::apply(db, &tenant, &stamp, &again, &[], &[], &[])
        .await
        .unwrap_err();
    // What the run's log shows names the conflict.
    let message = err.run_message();
    assert!(
        message.contains("UNIQUE constraint failed") || message.contains("duplicate key"),
        "{message}"
    );
    for id in ["d00000", "d01499", "e00009"] {
        assert_eq!(abc::category(db, &tenant, id).await.unwrap(), None, "{id}");
    }
    let kept = abc::category(db, &tenant, &stored[10].external_id)
        .await
        .unwrap();
    assert_eq!(kept.as_ref(), Some(&stored[10]));
    assert_eq!(
        abc::history(db, &tenant, &stored[10].external_id)
            .await
            .unwrap()[0]
            .run_id,
        "run-1"
    );
}
