//! Hostile and malformed input at the edge: every one gets a precise code and a short
//! message, one bad record never costs the good ones, and nothing panics — the same on
//! SQLite and PostgreSQL.

use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, GetOverviewRequest, PushRequest, Record, UpdateScheduleRequest, UpdateSettingsRequest,
};
use erpsync::storage::staging;
use serde_json::{json, Value};
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::{authed, http_post, TestApp};

both_backends!(
    a_mistyped_http_path_answers_404_and_stages_nothing,
    a_nul_character_rejects_its_record_alone_on_every_backend,
    out_of_range_timestamps_and_durations_are_refused_by_name,
    oversized_input_is_never_echoed_whole,
    a_non_finite_number_is_named_as_not_a_number,
    page_tokens_are_opaque_and_checked_on_every_listing,
    schedules_counts_and_thresholds_out_of_bounds_are_refused,
    a_log_stream_of_a_missing_tenant_is_not_found,
    a_push_to_an_over_long_table_name_is_logged_and_compressed_bodies_are_named,
);

async fn page_tokens_are_opaque_and_checked_on_every_listing(app: TestApp) {
    let ctx = setup(app).await;
    let mut history = ctx.app.history().await;
    for token in ["garbage", "c000", "1700000000000000:abc"] {
        let companies = history
            .list_companies(authed(
                pb::ListCompaniesRequest {
                    tenant_id: "acme".into(),
                    page_token: token.into(),
                    ..Default::default()
                },
                &ctx.crm,
            ))
            .await
            .unwrap_err();
        let deletes = history
            .list_pending_deletes(authed(
                pb::ListPendingDeletesRequest {
                    tenant_id: "acme".into(),
                    page_token: token.into(),
                    ..Default::default()
                },
                &ctx.crm,
            ))
            .await
            .unwrap_err();
        let runs = history
            .list_runs(authed(
                pb::ListRunsRequest {
                    tenant_id: "acme".into(),
                    page_token: token.into(),
                    ..Default::default()
                },
                &ctx.crm,
            ))
            .await
            .unwrap_err();
        for err in [companies, deletes, runs] {
            assert_eq!(err.code(), Code::InvalidArgument, "{token}: {err:?}");
            assert!(err.message().contains("page_token"), "{err:?}");
        }
    }
    // A real token pages; the same token given to another listing is refused.
    let records: Vec<Record> = (0..3)
        .map(|i| record(&format!("c{i}"), &valid_fields("company")))
        .collect();
    ctx.push(records).await.unwrap();
    let run = history
        .trigger_sync(authed(
            pb::TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    for _ in 0..600 {
        let got = history
            .get_run(authed(
                pb::GetRunRequest {
                    tenant_id: "acme".into(),
                    run_id: run.run_id.clone(),
                },
                &ctx.crm,
            ))
            .await
            .unwrap()
            .into_inner();
        if got.run.unwrap().status() != pb::RunStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let first = history
        .list_companies(authed(
            pb::ListCompaniesRequest {
                tenant_id: "acme".into(),
                page_size: 2,
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.companies.len(), 2);
    let second = history
        .list_companies(authed(
            pb::ListCompaniesRequest {
                tenant_id: "acme".into(),
                page_size: 2,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.companies.len(), 1);
    let err = history
        .list_pending_deletes(authed(
            pb::ListPendingDeletesRequest {
                tenant_id: "acme".into(),
                page_token: first.next_page_token,
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

async fn schedules_counts_and_thresholds_out_of_bounds_are_refused(app: TestApp) {
    let ctx = setup(app).await;
    let mut history = ctx.app.history().await;
    let schedule = |times: Vec<String>| UpdateScheduleRequest {
        tenant_id: "acme".into(),
        schedule: Some(pb::Schedule {
            daily_times: times,
            cron: String::new(),
        }),
        ..Default::default()
    };
    let every_minute: Vec<String> = (0..10_080)
        .map(|i| format!("{:02}:{:02}", (i / 60) % 24, i % 60))
        .collect();
    let err = history
        .update_schedule(authed(schedule(every_minute), &ctx.crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at most 96"), "{err:?}");
    let err = history
        .update_schedule(authed(
            schedule(vec!["08:00".into(), "12:00".into(), "08:00".into()]),
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("schedule.daily_times[2]: 08:00 is already daily_times[0]"),
        "{err:?}"
    );
    let err = history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                delete_guard_min_rows: Some(u64::MAX),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("delete_guard_min_rows"), "{err:?}");
    let err = ctx
        .app
        .ingest()
        .await
        .report_counts(authed(
            pb::ReportCountsRequest {
                tenant_id: "acme".into(),
                counts: [("company".to_owned(), u64::MAX)].into_iter().collect(),
            },
            &ctx.erp,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("counts[company]"), "{err:?}");
}

async fn a_log_stream_of_a_missing_tenant_is_not_found(app: TestApp) {
    let all = app.token(Role::Crm, &[]).await;
    let err = app
        .history()
        .await
        .stream_logs(authed(
            pb::StreamLogsRequest {
                tenant_id: "ghost".into(),
                ..Default::default()
            },
            &all,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

async fn a_push_to_an_over_long_table_name_is_logged_and_compressed_bodies_are_named(app: TestApp) {
    let ctx = setup(app).await;
    let long = "t".repeat(100);
    let (status, body) = http_post(
        ctx.app.port,
        &format!("/erp/v1/{long}"),
        Some(&ctx.erp),
        &batch(&["c1"]),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let acme = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let now = chrono::Utc::now();
    let logged = erpsync::storage::request_log::list(
        &ctx.app.state.db,
        &acme,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        100,
    )
    .await
    .unwrap();
    assert!(
        logged
            .iter()
            .any(|e| e.table.as_deref().is_some_and(|t| t.starts_with("tttt"))),
        "{logged:#?}"
    );
    // A gzip body, with and without saying so.
    let gzip = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3];
    let (status, body) = http_post(ctx.app.port, "/erp/v1/company", Some(&ctx.erp), &gzip).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("compressed"), "{body}");
    assert!(ctx.staged().await.is_empty());
}

struct Ctx {
    app: TestApp,
    crm: String,
    erp: String,
}

async fn setup(app: TestApp) -> Ctx {
    let t = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&t]).await;
    let erp = app.token(Role::Erp, &[&t]).await;
    Ctx { app, crm, erp }
}

impl Ctx {
    async fn push(&self, records: Vec<Record>) -> Result<pb::PushResponse, tonic::Status> {
        self.app
            .ingest()
            .await
            .push(authed(
                PushRequest {
                    tenant_id: "acme".into(),
                    table: "company".into(),
                    records,
                },
                &self.erp,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn staged(&self) -> Vec<String> {
        let acme = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
        staging::list(&self.app.state.db, &acme, "company")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.external_id)
            .collect()
    }
}

fn batch(ids: &[&str]) -> Vec<u8> {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"external_id": id, "fields": valid_fields("company")}))
        .collect();
    serde_json::to_vec(&json!({ "records": records })).unwrap()
}

async fn a_mistyped_http_path_answers_404_and_stages_nothing(app: TestApp) {
    let ctx = setup(app).await;
    for path in [
        "/erp/v1/company/",
        "/erp/v2/company",
        "/ERP/v1/company",
        "/",
        "/erp/v1",
    ] {
        let (status, body) = http_post(ctx.app.port, path, Some(&ctx.erp), &batch(&["c1"])).await;
        assert_eq!(status, 404, "{path}: {body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(v["error"]["code"], "NOT_FOUND", "{path}: {body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/erp/v1/{table}"),
            "{body}"
        );
    }
    assert!(ctx.staged().await.is_empty());
    // The right path still works.
    let (status, body) = http_post(
        ctx.app.port,
        "/erp/v1/company",
        Some(&ctx.erp),
        &batch(&["c1"]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctx.staged().await, ["c1"]);
}

async fn a_nul_character_rejects_its_record_alone_on_every_backend(app: TestApp) {
    let ctx = setup(app).await;
    let mut bad_name = valid_fields("company");
    bad_name["name"] = json!("ACME\u{0} Ltda");
    let reply = ctx
        .push(vec![
            record("good", &valid_fields("company")),
            record("bad\u{0}id", &valid_fields("company")),
            record("bad-name", &bad_name),
        ])
        .await
        .unwrap();
    assert_eq!(reply.accepted, 1);
    let named: Vec<(String, String)> = reply
        .rejected
        .iter()
        .map(|r| (r.external_id.clone(), r.field.clone()))
        .collect();
    assert_eq!(
        named,
        [
            (String::new(), "external_id".to_owned()),
            ("bad-name".to_owned(), "name".to_owned())
        ]
    );
    // Over HTTP, the same rule.
    let body = serde_json::to_vec(&json!({"records": [
        {"external_id": "http-good", "fields": valid_fields("company")},
        {"external_id": "http\u{0}bad", "fields": valid_fields("company")},
    ]}))
    .unwrap();
    let (status, text) = http_post(ctx.app.port, "/erp/v1/company", Some(&ctx.erp), &body).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["accepted"], 1, "{text}");
    assert_eq!(v["rejected"][0]["field"], "external_id", "{text}");
    let mut staged = ctx.staged().await;
    staged.sort();
    assert_eq!(staged, ["good", "http-good"]);

    // A setting with a NUL is refused by name, and nothing changes.
    let mut history = ctx.app.history().await;
    let err = history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                name: Some("Acme\u{0}".into()),
                business_rule: Some("rule\u{0}".into()),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("name: must not contain the NUL"),
        "{err:?}"
    );
    assert!(
        err.message()
            .contains("business_rule: must not contain the NUL"),
        "{err:?}"
    );
}

async fn out_of_range_timestamps_and_durations_are_refused_by_name(app: TestApp) {
    let ctx = setup(app).await;
    let mut history = ctx.app.history().await;
    let before = history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    for (seconds, nanos) in [
        (10_000_000_000_000_000, 0),
        (i64::MAX, 0),
        (86_400, 2_000_000_000),
        (86_400, -1),
    ] {
        let err = history
            .update_schedule(authed(
                UpdateScheduleRequest {
                    tenant_id: "acme".into(),
                    max_time_without_success: Some(prost_types::Duration { seconds, nanos }),
                    ..Default::default()
                },
                &ctx.crm,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{seconds} {nanos}: {err:?}"
        );
        assert!(
            err.message().contains("max_time_without_success"),
            "{err:?}"
        );
    }
    let after = history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.schedule, after.schedule);

    let at = |seconds, nanos| {
        let mut r = record("r", &valid_fields("company"));
        r.updated_at = Some(prost_types::Timestamp { seconds, nanos });
        r
    };
    for (seconds, nanos) in [
        (1 << 62, 0),
        (1_700_000_000, -5),
        (1_700_000_000, 1_000_000_000),
    ] {
        let reply = ctx.push(vec![at(seconds, nanos)]).await.unwrap();
        assert_eq!(reply.accepted, 0, "{seconds} {nanos}");
        assert_eq!(
            reply.rejected[0].field, "updated_at",
            "{:?}",
            reply.rejected
        );
    }
    let reply = ctx.push(vec![at(1_700_000_000, 5)]).await.unwrap();
    assert_eq!(reply.accepted, 1, "{:?}", reply.rejected);
}

async fn oversized_input_is_never_echoed_whole(app: TestApp) {
    let ctx = setup(app).await;
    let mut history = ctx.app.history().await;
    let huge = "a".repeat(100_000);
    let err = history
        .get_overview(authed(GetOverviewRequest { tenant_id: huge }, &ctx.crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message().len());
    assert!(err.message().len() < 400, "{} bytes", err.message().len());

    let reply = ctx
        .push(vec![record(
            &"x".repeat(1_000_000),
            &valid_fields("company"),
        )])
        .await
        .unwrap();
    let r = &reply.rejected[0];
    assert_eq!(r.field, "external_id");
    assert!(r.external_id.len() < 400 && r.reason.len() < 400, "{r:?}");
}

async fn a_non_finite_number_is_named_as_not_a_number(app: TestApp) {
    let ctx = setup(app).await;
    let mut r = record(
        "n1",
        &json!({"company_id": "c1", "issued_at": "2025-03-15"}),
    );
    r.fields.as_mut().unwrap().fields.insert(
        "total".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
        },
    );
    let reply = ctx
        .app
        .ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: "acme".into(),
                table: "invoice".into(),
                records: vec![r],
            },
            &ctx.erp,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 0);
    let rejected = &reply.rejected[0];
    assert_eq!(rejected.field, "total");
    assert!(
        !rejected.reason.contains("required field is missing"),
        "{rejected:?}"
    );
}
