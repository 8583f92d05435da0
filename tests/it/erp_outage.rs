//! An ERP outage: its snapshot goes empty (every company and contact arrives deleted),
//! the delete guard holds the deletions, and the records come back. What the CRM shows —
//! companies, classes, the ABC report, each company's history — is what it would be
//! without the outage, and every held deletion ends by itself (SUPERSEDED), visibly.

use erpsync::grpc::pb::{
    self, ListPendingDeletesRequest, Record, ResolvePendingDeletesRequest, ViewMode, ViewTable,
};
use tonic::Code;

use crate::both_backends;
use crate::helpers::runs::table;
use crate::helpers::seed::record;
use crate::helpers::seed::{days_ago, invoice, today};
use crate::helpers::tenants::{all_companies, company_history, report};
use crate::helpers::tenants::{setup, Ctx};
use crate::helpers::views::{clientes, company_view, set_view, SqliteErp};
use crate::helpers::workbooks::{download, request, sheet, sheets, text};
use crate::helpers::{authed, TestApp};

both_backends!(
    an_emptied_erp_snapshot_leaves_the_crm_as_it_was_and_its_deletions_end_when_it_comes_back,
    a_view_that_empties_and_comes_back_leaves_the_crm_as_it_was,
);

const COMPANIES: usize = 60;

fn company(i: usize) -> Record {
    record(
        &format!("c{i:03}"),
        &serde_json::json!({
            "name": format!("Empresa {i}"),
            "document": "11.222.333/0001-81",
            "seller_id": format!("s{}", i % 3),
        }),
    )
}

fn contact(i: usize) -> Record {
    record(
        &format!("p{i:03}"),
        &serde_json::json!({"name": format!("Pessoa {i}"), "company_id": format!("c{i:03}")}),
    )
}

fn deleted(id: String) -> Record {
    Record {
        external_id: id,
        fields: None,
        updated_at: None,
        deleted: true,
    }
}

/// What the CRM shows of acme's companies: id, class, lifecycle, portfolio, revenue.
async fn shown(ctx: &mut Ctx) -> Vec<(String, i32, i32, String, String)> {
    all_companies(ctx)
        .await
        .into_iter()
        .map(|c| {
            (
                c.external_id,
                c.abc_class,
                c.lifecycle,
                c.portfolio,
                c.revenue,
            )
        })
        .collect()
}

/// The ABC report without what differs from run to run (its run, its time, and how many
/// companies had classes to compare with).
async fn abc(ctx: &mut Ctx) -> pb::AbcReport {
    pb::AbcReport {
        run_id: String::new(),
        computed_at: None,
        companies_compared: 0,
        ..report(ctx).await
    }
}

async fn histories(ctx: &mut Ctx, ids: &[&str]) -> Vec<pb::GetCompanyHistoryResponse> {
    let mut out = Vec::new();
    for id in ids {
        out.push(company_history(ctx, id).await.unwrap());
    }
    out
}

const SAMPLE: [&str; 5] = ["c000", "c001", "c002", "c030", "c059"];

async fn pending(ctx: &mut Ctx, table: &str) -> Vec<pb::PendingDelete> {
    ctx.history
        .list_pending_deletes(authed(
            ListPendingDeletesRequest {
                tenant_id: "acme".into(),
                table: table.into(),
                page_size: 1000,
                page_token: String::new(),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .pending_deletes
}

async fn resolve(
    ctx: &mut Ctx,
    ids: &[&str],
    action: pb::ResolveAction,
) -> Result<u64, tonic::Status> {
    ctx.history
        .resolve_pending_deletes(authed(
            ResolvePendingDeletesRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                all: false,
                action: action as i32,
            },
            &ctx.crm,
        ))
        .await
        .map(|r| r.into_inner().resolved)
}

async fn open_alerts(ctx: &mut Ctx) -> Vec<pb::AlertKind> {
    ctx.overview()
        .await
        .open_alerts
        .iter()
        .map(|a| a.kind())
        .collect()
}

async fn an_emptied_erp_snapshot_leaves_the_crm_as_it_was_and_its_deletions_end_when_it_comes_back(
    app: TestApp,
) {
    let mut ctx = setup(app).await;
    ctx.push("company", (0..COMPANIES).map(company).collect())
        .await;
    ctx.push("contact", (0..COMPANIES).map(contact).collect())
        .await;
    // Revenue 1, 2, … 60 (thousands) over the last months: classes A, B and C.
    ctx.push(
        "invoice",
        (0..COMPANIES)
            .map(|i| {
                invoice(
                    &format!("i{i:03}"),
                    &format!("c{i:03}"),
                    &days_ago(10 + i as i64),
                    &format!("{}000", i + 1),
                )
            })
            .collect(),
    )
    .await;
    let first = ctx.run().await.run.unwrap();
    assert_eq!(first.status(), pb::RunStatus::Success);
    let before = (shown(&mut ctx).await, abc(&mut ctx).await);
    let histories_before = histories(&mut ctx, &SAMPLE).await;
    assert_eq!(before.0.len(), COMPANIES);
    assert!(before.0.iter().any(|c| c.1 == pb::AbcClass::A as i32));

    // The outage: every company and contact arrives deleted.
    let ids = |prefix: char| (0..COMPANIES).map(move |i| format!("{prefix}{i:03}"));
    ctx.push("company", ids('c').map(deleted).collect()).await;
    ctx.push("contact", ids('p').map(deleted).collect()).await;
    let outage = ctx.run().await;
    let run = outage.run.as_ref().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Partial);
    assert_eq!(table(run, "company").held, COMPANIES as u64);
    assert_eq!(table(run, "contact").held, COMPANIES as u64);
    assert_eq!(
        (shown(&mut ctx).await, abc(&mut ctx).await),
        before,
        "held deletions keep every company, its categories and the report"
    );
    assert_eq!(
        histories(&mut ctx, &SAMPLE).await,
        histories_before,
        "the outage adds nothing to any company's history"
    );
    assert!(!outage
        .log
        .iter()
        .any(|e| e.message.contains("not in the CRM")));
    assert!(open_alerts(&mut ctx)
        .await
        .contains(&pb::AlertKind::DeletesHeld));
    assert_eq!(pending(&mut ctx, "company").await.len(), COMPANIES);

    // Someone approves two deletions and discards one approved before the ERP is back.
    assert_eq!(
        resolve(
            &mut ctx,
            &["c000", "c001", "c002"],
            pb::ResolveAction::Approve
        )
        .await
        .unwrap(),
        3
    );
    assert_eq!(
        resolve(&mut ctx, &["c002"], pb::ResolveAction::Discard)
            .await
            .unwrap(),
        1,
        "an approved deletion can still be discarded"
    );

    // The ERP is back with every record as it was.
    ctx.push("company", (0..COMPANIES).map(company).collect())
        .await;
    ctx.push("contact", (0..COMPANIES).map(contact).collect())
        .await;
    let back = ctx.run().await;
    let run = back.run.as_ref().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", back.log);
    assert!(run.tables.iter().all(|t| t.held == 0 && t.deleted == 0));
    assert!(
        back.log.iter().any(|e| e.message
            == format!(
                "{} held deletions superseded: the ERP sent their records again (\"c000\", \"c001\", \"c003\", \"c004\", \"c005\", and {} more)",
                COMPANIES - 1,
                COMPANIES - 6
            )),
        "{:#?}",
        back.log
    );
    assert!(pending(&mut ctx, "company").await.is_empty());
    assert!(pending(&mut ctx, "contact").await.is_empty());
    assert!(!open_alerts(&mut ctx)
        .await
        .contains(&pb::AlertKind::DeletesHeld));
    assert_eq!((shown(&mut ctx).await, abc(&mut ctx).await), before);
    assert_eq!(histories(&mut ctx, &SAMPLE).await, histories_before);

    // Every state is final now, and says so.
    let err = resolve(&mut ctx, &["c000"], pb::ResolveAction::Discard)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("is SUPERSEDED at "), "{err:?}");
    let err = resolve(&mut ctx, &["c002"], pb::ResolveAction::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("is DISCARDED at "), "{err:?}");
    let err = resolve(&mut ctx, &["c999"], pb::ResolveAction::Approve)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // The export shows each deletion's state and when it changed.
    let d = download(
        &ctx.app,
        &ctx.crm,
        request(today(), today(), &[], pb::ExportKind::ExcessiveDeletes),
    )
    .await
    .unwrap();
    let all = sheets(&d.bytes);
    let company = sheet(&all, "company");
    assert_eq!(company.len(), COMPANIES + 1);
    let states: Vec<(String, String)> = company[1..4]
        .iter()
        .map(|r| (text(&r[0]), text(&r[5])))
        .collect();
    assert_eq!(
        states,
        [
            ("c000".to_owned(), "SUPERSEDED".to_owned()),
            ("c001".to_owned(), "SUPERSEDED".to_owned()),
            ("c002".to_owned(), "DISCARDED".to_owned()),
        ]
    );
    for row in &company[1..] {
        let serial = |d: &calamine::Data| match d {
            calamine::Data::DateTime(d) => d.as_f64(),
            other => panic!("not a date-time: {other:?}"),
        };
        let (detected, changed) = (serial(&row[4]), serial(&row[6]));
        assert!(changed > detected, "{row:?}");
    }
    let contacts = sheet(&all, "contact");
    assert!(contacts[1..].iter().all(|r| text(&r[5]) == "SUPERSEDED"));
}

/// The same outage on a View tenant: the ERP's company view returns no rows for a run,
/// then every row again.
async fn a_view_that_empties_and_comes_back_leaves_the_crm_as_it_was(app: TestApp) {
    let mut setup_sql = clientes(COMPANIES);
    setup_sql.push_str(
        "CREATE TABLE notas (id INTEGER PRIMARY KEY, cliente TEXT NOT NULL, emitida_em TEXT NOT NULL, \
         valor TEXT NOT NULL); CREATE VIEW v_notas AS SELECT id, cliente, emitida_em, valor FROM notas;",
    );
    for i in 1..=COMPANIES {
        setup_sql.push_str(&format!(
            "INSERT INTO notas VALUES ({i}, '{i}', '{}', '{i}000');",
            days_ago(5 + i as i64)
        ));
    }
    let mut erp = SqliteErp::new(&setup_sql).await;
    let mut ctx = setup(app).await;
    let invoices = ViewTable {
        table: "invoice".into(),
        view: "v_notas".into(),
        mode: ViewMode::Full as i32,
        key_column: "id".into(),
        columns: [
            ("company_id", "cliente"),
            ("issued_at", "emitida_em"),
            ("total", "valor"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect(),
        ..Default::default()
    };
    ctx.app.grant_view_source("acme", &erp.url).await;
    set_view(
        &mut ctx,
        Some(&erp.url),
        vec![company_view("v_clientes", ViewMode::Full), invoices],
        100,
    )
    .await
    .unwrap();
    let first = ctx.run().await;
    assert_eq!(first.run.unwrap().status(), pb::RunStatus::Success);
    let sample = ["1", "2", "30", "60"];
    let before = (shown(&mut ctx).await, abc(&mut ctx).await);
    let histories_before = histories(&mut ctx, &sample).await;
    assert_eq!(before.0.len(), COMPANIES);
    assert!(before.0.iter().any(|c| c.1 == pb::AbcClass::A as i32));

    erp.exec("CREATE TABLE kept AS SELECT * FROM clientes; DELETE FROM clientes;")
        .await;
    let outage = ctx.run().await;
    let run = outage.run.as_ref().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Partial);
    assert_eq!(table(run, "company").held, COMPANIES as u64);
    assert_eq!((shown(&mut ctx).await, abc(&mut ctx).await), before);
    assert_eq!(histories(&mut ctx, &sample).await, histories_before);

    erp.exec("INSERT INTO clientes SELECT * FROM kept;").await;
    let back = ctx.run().await;
    let run = back.run.as_ref().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", back.log);
    assert!(back.log.iter().any(|e| e
        .message
        .starts_with(&format!("{COMPANIES} held deletions superseded"))));
    assert!(pending(&mut ctx, "company").await.is_empty());
    assert!(!open_alerts(&mut ctx)
        .await
        .contains(&pb::AlertKind::DeletesHeld));
    assert_eq!((shown(&mut ctx).await, abc(&mut ctx).await), before);
    assert_eq!(histories(&mut ctx, &sample).await, histories_before);
}
