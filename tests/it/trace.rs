//! GetRecordTrace and `erpsync trace`: one company's story — pushed, rejected (bad
//! CNPJ), re-pushed, delivered by a run, renamed in the ERP, re-delivered and
//! re-categorized — in order with the right requests and runs, through gRPC and the
//! binary; and the bad requests (another tenant's record, a record never sent, an
//! unknown table, hostile external ids).

use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, GetRecordTraceRequest, PushRequest, Record, TraceEventKind, UpdateSettingsRequest,
};
use serde_json::json;
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::record;
use crate::helpers::seed::{days_ago, invoice};
use crate::helpers::tenants::{setup, Ctx};
use crate::helpers::{authed, TestApp};

both_backends!(
    a_company_story_is_traced_step_by_step,
    bad_trace_requests_are_refused_naming_the_field,
);

fn company(id: &str, name: &str, document: &str) -> Record {
    record(id, &json!({"name": name, "document": document}))
}

/// Pushes `records` to acme's company table; the request id and the rejected fields.
async fn push_any(ctx: &Ctx, records: Vec<Record>) -> (String, Vec<String>) {
    let reply = ctx
        .app
        .ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                records,
            },
            &ctx.erp,
        ))
        .await
        .unwrap()
        .into_inner();
    (
        reply.request_id,
        reply.rejected.into_iter().map(|r| r.field).collect(),
    )
}

fn request(table: &str, id: &str) -> GetRecordTraceRequest {
    GetRecordTraceRequest {
        tenant_id: "acme".into(),
        table: table.into(),
        external_id: id.into(),
        ..Default::default()
    }
}

async fn trace(
    ctx: &mut Ctx,
    req: GetRecordTraceRequest,
) -> Result<pb::RecordTrace, tonic::Status> {
    ctx.history
        .get_record_trace(authed(req, &ctx.crm))
        .await
        .map(|r| r.into_inner())
}

const CNPJ: &str = "11.222.333/0001-81";

async fn a_company_story_is_traced_step_by_step(app: TestApp) {
    let mut ctx = setup(app).await;
    // Two companies trade places in the ranking: the shift guard would hold that.
    ctx.history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                abc_shift_guard: Some(false),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap();
    let first = ctx.push("company", vec![company("C1", "Alfa", CNPJ)]).await;
    let (rejected, fields) =
        push_any(&ctx, vec![company("C1", "Alfa", "12.345.678/0001-00")]).await;
    assert_eq!(fields, ["document"]);
    let again = ctx
        .push(
            "company",
            vec![company("C1", "Alfa", CNPJ), company("C2", "Beta", CNPJ)],
        )
        .await;
    ctx.push(
        "invoice",
        vec![
            invoice("i1", "C1", &days_ago(5), "50"),
            invoice("i2", "C2", &days_ago(5), "1000"),
        ],
    )
    .await;
    let run1 = ctx.run().await.run.unwrap();
    assert_eq!(run1.status(), pb::RunStatus::Success, "{:?}", run1.errors);
    let renamed = ctx
        .push("company", vec![company("C1", "Alfa Renomeada", CNPJ)])
        .await;
    ctx.push("invoice", vec![invoice("i3", "C1", &days_ago(2), "5000")])
        .await;
    let run2 = ctx.run().await.run.unwrap();
    assert_eq!(run2.status(), pb::RunStatus::Success, "{:?}", run2.errors);

    let got = trace(&mut ctx, request("company", "C1")).await.unwrap();
    let steps: Vec<(TraceEventKind, &str, &str)> = got
        .events
        .iter()
        .map(|e| (e.kind(), e.request_id.as_str(), e.run_id.as_str()))
        .collect();
    use TraceEventKind::{Accepted, Delivered, Rejected};
    assert_eq!(
        steps,
        [
            (Delivered, "", run2.run_id.as_str()),
            (Accepted, renamed.as_str(), ""),
            (Delivered, "", run1.run_id.as_str()),
            (Accepted, again.as_str(), ""),
            (Rejected, rejected.as_str(), ""),
            (Accepted, first.as_str(), ""),
        ],
        "{got:#?}"
    );
    let bad = &got.events[4];
    assert_eq!(bad.field, "document");
    assert!(!bad.reason.is_empty());
    assert_eq!(bad.transport, "grpc");
    assert_eq!(bad.index, Some(0));
    let sent = bad.record.as_ref().expect("the rejected record's slice");
    assert!(
        format!("{sent:?}").contains("12.345.678/0001-00"),
        "{sent:?}"
    );
    let delivered = &got.events[0];
    assert_eq!(delivered.stage, "push");
    assert!(!delivered.idempotency_key.is_empty());
    assert!(
        delivered.sink_answer.contains("acknowledged"),
        "{}",
        delivered.sink_answer
    );
    assert_eq!(delivered.content_hash, got.events[1].content_hash);
    assert_eq!(got.next_page_token, "");

    let staged = got.staged.as_ref().unwrap();
    assert!(staged.delivered);
    assert_eq!(staged.request_id, renamed);
    let name = |s: &Option<prost_types::Struct>| {
        format!("{:?}", s.as_ref().unwrap().fields.get("name").unwrap())
    };
    assert!(name(&staged.fields).contains("Alfa Renomeada"));
    let crm = got.crm.as_ref().unwrap();
    assert!(crm.present);
    assert!(name(&crm.fields).contains("Alfa Renomeada"));
    let company = got.company.as_ref().unwrap();
    assert_eq!(company.abc_class(), pb::AbcClass::A);
    let changes: Vec<(&str, pb::AbcClass, pb::AbcClass)> = got
        .category_changes
        .iter()
        .map(|c| (c.run_id.as_str(), c.abc_from(), c.abc_to()))
        .collect();
    assert_eq!(
        changes,
        [
            (
                run1.run_id.as_str(),
                pb::AbcClass::Unspecified,
                pb::AbcClass::C
            ),
            (run2.run_id.as_str(), pb::AbcClass::C, pb::AbcClass::A),
        ]
    );
    // What each change was computed from. In run 2 C1 has 50 + 5000 and C2 1000: C1
    // ranks first with nothing before it, C2 second with C1's share before it.
    let (c1_revenue, c2_revenue) = (50 + 5000, 1000);
    let share_before =
        |before: u32, total: u32| format!("{:.2}", f64::from(before) * 100.0 / f64::from(total));
    let why =
        |c: &pb::CategoryChange| (c.revenue.clone(), c.rank, c.cumulative_share_before.clone());
    // A first categorization keeps none.
    assert_eq!(
        why(&got.category_changes[0]),
        (String::new(), None, String::new())
    );
    assert_eq!(
        why(&got.category_changes[1]),
        (format!("{c1_revenue}.00"), Some(1), "0.00".to_owned())
    );
    let c2 = trace(&mut ctx, request("company", "C2")).await.unwrap();
    let c2_changes: Vec<_> = c2
        .category_changes
        .iter()
        .map(|c| (c.run_id.as_str(), c.abc_from(), c.abc_to(), why(c)))
        .collect();
    // Run 1: C2 first with 1000 (A), C1 from 1000 / 1050 = 95.24 % (C); run 2: C2 from
    // 5050 / 6050 = 83.47 %, between the default 80 and 95: B.
    let c2_share = share_before(c1_revenue, c1_revenue + c2_revenue);
    assert_eq!(c2_share, "83.47");
    assert_eq!(
        c2_changes,
        [
            (
                run1.run_id.as_str(),
                pb::AbcClass::Unspecified,
                pb::AbcClass::A,
                (String::new(), None, String::new())
            ),
            (
                run2.run_id.as_str(),
                pb::AbcClass::A,
                pb::AbcClass::B,
                (format!("{c2_revenue}.00"), Some(2), c2_share.clone())
            ),
        ]
    );

    // Paged: two events a page, the same six in the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = trace(
            &mut ctx,
            GetRecordTraceRequest {
                page_size: 2,
                page_token: token.clone(),
                ..request("company", "C1")
            },
        )
        .await
        .unwrap();
        paged.extend(page.events);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, got.events);
    // A token of C1's trace does not page C2's.
    let page = trace(
        &mut ctx,
        GetRecordTraceRequest {
            page_size: 2,
            ..request("company", "C1")
        },
    )
    .await
    .unwrap();
    let err = trace(
        &mut ctx,
        GetRecordTraceRequest {
            page_token: page.next_page_token,
            ..request("company", "C2")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(names(&err, "page_token"), "{err:?}");

    // The binary prints the same story, newest first, ending with a newline.
    let (url, token) = (ctx.app.url(), ctx.crm.clone());
    let printed = tokio::task::spawn_blocking(move || {
        crate::helpers::cli::ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_erpsync"))
                .args([
                    "trace", "--tenant", "acme", "--table", "company", "--id", "C1", "--server",
                    &url, "--token", &token,
                ])
                .env("NO_COLOR", "1")
                .output()
                .unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(printed.ends_with('\n'), "{printed}");
    assert!(!printed.contains('\x1b'), "{printed}");
    let at = |needle: &str| {
        printed
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{printed}"))
    };
    assert!(
        at(&format!("DELIVERED  run {}", run2.run_id))
            < at(&format!("ACCEPTED   request {renamed}"))
    );
    assert!(
        at(&format!("ACCEPTED   request {renamed}"))
            < at(&format!("DELIVERED  run {}", run1.run_id))
    );
    assert!(
        at(&format!("DELIVERED  run {}", run1.run_id))
            < at(&format!("REJECTED   request {rejected}"))
    );
    assert!(
        at(&format!("REJECTED   request {rejected}")) < at(&format!("ACCEPTED   request {first}"))
    );
    assert!(printed.contains("document: "), "{printed}");
    let category = format!("CATEGORY   run {}: ABC C -> A", run2.run_id);
    assert!(
        printed.lines().any(|l| l.contains(&category)
            && l.ends_with(&format!(
                ", revenue {c1_revenue}.00, rank 1, 0.00 % before it"
            ))),
        "{printed}"
    );
    assert!(printed.contains("Alfa Renomeada"), "{printed}");
}

/// Whether `status` names `field`: a BadRequest violation of it, or its message.
fn names(status: &tonic::Status, field: &str) -> bool {
    tonic_types::StatusExt::get_details_bad_request(status)
        .is_some_and(|b| b.field_violations.iter().any(|v| v.field == field))
        || status.message().contains(field)
}

async fn bad_trace_requests_are_refused_naming_the_field(app: TestApp) {
    let mut ctx = setup(app).await;
    ctx.push("company", vec![company("C1", "Alfa", CNPJ)]).await;
    // Another tenant with a record of its own, which acme's token does not cover.
    let other = ctx.app.create_tenant("other").await;
    let other_erp = ctx.app.token(Role::Erp, &[&other]).await;
    ctx.app
        .ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: "other".into(),
                table: "company".into(),
                records: vec![company("OTHER1", "Outra", CNPJ)],
            },
            &other_erp,
        ))
        .await
        .unwrap();

    let err = trace(
        &mut ctx,
        GetRecordTraceRequest {
            tenant_id: "other".into(),
            ..request("company", "OTHER1")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // The other tenant's record, asked of acme: as unknown as one never sent.
    let theirs = trace(&mut ctx, request("company", "OTHER1"))
        .await
        .unwrap_err();
    let never = trace(&mut ctx, request("company", "NEVER"))
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    assert_eq!(never.code(), Code::NotFound, "{never:?}");
    assert_eq!(
        theirs.message().replace("OTHER1", "X"),
        never.message().replace("NEVER", "X")
    );
    assert!(names(&never, "external_id"), "{never:?}");
    // A record of another table is not this one.
    let err = trace(&mut ctx, request("contact", "C1")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for table in ["", "companies", "company\0", "x".repeat(100_000).as_str()] {
        let err = trace(&mut ctx, request(table, "C1")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{table:.20?}: {err:?}");
        assert!(names(&err, "table"), "{err:?}");
        assert!(err.message().len() < 2_000, "the message quotes an excerpt");
    }
    for id in ["", "   ", "C\0one", "x".repeat(100_000).as_str()] {
        let err = trace(&mut ctx, request("company", id)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:.20?}: {err:?}");
        assert!(names(&err, "external_id"), "{err:?}");
        assert!(err.message().len() < 2_000);
    }
    // Quotes are an id like any other: not found, and told as sent.
    for id in ["C1' OR '1'='1", "\"C1\"", "C1\\"] {
        let err = trace(&mut ctx, request("company", id)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err:?}");
    }
    for (size, token) in [(501, ""), (0, "not-a-token")] {
        let err = trace(
            &mut ctx,
            GetRecordTraceRequest {
                page_size: size,
                page_token: token.into(),
                ..request("company", "C1")
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let field = if size > 0 { "page_size" } else { "page_token" };
        assert!(names(&err, field), "{err:?}");
    }
    // A quoted id that was pushed is traced.
    let quoted = "Q'1\"";
    ctx.push("company", vec![company(quoted, "Aspas", CNPJ)])
        .await;
    let got = trace(&mut ctx, request("company", quoted)).await.unwrap();
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].kind(), TraceEventKind::Accepted);
}
