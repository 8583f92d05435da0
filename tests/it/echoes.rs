//! What a bad request gets back: INVALID_ARGUMENT naming the field, a status that quotes
//! at most a short prefix of any value and stays under 4 kB, the same on SQLite and
//! PostgreSQL — for every string field of every RPC (one table, [`fields`]), for a NUL
//! anywhere, for a message that does not decode, and for gRPC paths called over HTTP/1.1.

use std::collections::HashMap;

use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb;
use prost::Message;
use serde_json::json;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::both_backends;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::{authed, http_post_with_head, TestApp};

both_backends!(
    a_megabyte_in_any_string_field_answers_a_short_invalid_argument,
    a_nul_in_any_string_field_is_refused_by_name,
    thousands_of_bad_entries_answer_a_short_status,
    a_nul_anywhere_in_a_record_rejects_that_record_alone_and_the_run_succeeds,
    malformed_messages_and_frames_answer_invalid_argument,
    grpc_paths_over_http_1_answer_415,
);

/// One call of the API, with the value under test in one of its string fields.
enum Call {
    History(Box<dyn FnOnce(String) -> HistoryCall + Send>),
    Ingest(Box<dyn FnOnce(String) -> IngestCall + Send>),
}

enum HistoryCall {
    GetOverview(pb::GetOverviewRequest),
    UpdateSchedule(pb::UpdateScheduleRequest),
    UpdateSettings(pb::UpdateSettingsRequest),
    StreamLogs(pb::StreamLogsRequest),
    ExportHistory(pb::ExportHistoryRequest),
    ListRuns(pb::ListRunsRequest),
    GetRun(pb::GetRunRequest),
    TriggerSync(pb::TriggerSyncRequest),
    ListPendingDeletes(pb::ListPendingDeletesRequest),
    ResolvePendingDeletes(pb::ResolvePendingDeletesRequest),
    GetAbcReport(pb::GetAbcReportRequest),
    ListCompanies(pb::ListCompaniesRequest),
    ResolveAbcShift(pb::ResolveAbcShiftRequest),
    GetCompanyHistory(pb::GetCompanyHistoryRequest),
    SetViewConfig(pb::SetViewConfigRequest),
    GetViewConfig(pb::GetViewConfigRequest),
}

enum IngestCall {
    Push(pb::PushRequest),
    ReportCounts(pb::ReportCountsRequest),
}

fn acme() -> String {
    "acme".into()
}

fn view_table() -> pb::ViewTable {
    pb::ViewTable {
        table: "company".into(),
        view: "erp_companies".into(),
        key_column: "id".into(),
        columns: [("name", "razao"), ("document", "cnpj")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Default::default()
    }
}

fn view_request(t: pb::ViewTable) -> HistoryCall {
    HistoryCall::SetViewConfig(pb::SetViewConfigRequest {
        tenant_id: acme(),
        url: Some("sqlite:///tmp/erp.db".into()),
        tables: vec![t],
        ..Default::default()
    })
}

fn schedule(daily_times: Vec<String>, cron: String) -> HistoryCall {
    HistoryCall::UpdateSchedule(pb::UpdateScheduleRequest {
        tenant_id: acme(),
        schedule: Some(pb::Schedule { daily_times, cron }),
        ..Default::default()
    })
}

fn export(from: String, to: String, tables: Vec<String>) -> HistoryCall {
    HistoryCall::ExportHistory(pb::ExportHistoryRequest {
        tenant_id: acme(),
        from_date: from,
        to_date: to,
        tables,
        kind: 0,
    })
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

macro_rules! history {
    ($f:expr) => {
        Call::History(Box::new($f))
    };
}

macro_rules! ingest {
    ($f:expr) => {
        Call::Ingest(Box::new($f))
    };
}

/// Every string field of every RPC a caller sends: the field as the answer names it, and
/// the call with the value in it (every other field valid). A new string field gets a
/// line here.
fn fields() -> Vec<(&'static str, &'static str, Call)> {
    use HistoryCall as H;
    use IngestCall as I;
    let settings = |f: fn(&mut pb::UpdateSettingsRequest, String)| {
        history!(move |v| {
            let mut r = pb::UpdateSettingsRequest {
                tenant_id: acme(),
                ..Default::default()
            };
            f(&mut r, v);
            H::UpdateSettings(r)
        })
    };
    let view = |f: fn(&mut pb::ViewTable, String)| {
        history!(move |v| {
            let mut t = view_table();
            f(&mut t, v);
            view_request(t)
        })
    };
    vec![
        (
            "GetOverview",
            "tenant_id",
            history!(|v| H::GetOverview(pb::GetOverviewRequest { tenant_id: v })),
        ),
        (
            "UpdateSchedule",
            "tenant_id",
            history!(|v| H::UpdateSchedule(pb::UpdateScheduleRequest {
                tenant_id: v,
                ..Default::default()
            })),
        ),
        (
            "UpdateSchedule",
            "timezone",
            history!(|v| H::UpdateSchedule(pb::UpdateScheduleRequest {
                tenant_id: acme(),
                timezone: Some(v),
                ..Default::default()
            })),
        ),
        (
            "UpdateSchedule",
            "schedule.daily_times[0]",
            history!(|v| schedule(vec![v], String::new())),
        ),
        (
            "UpdateSchedule",
            "schedule.cron",
            history!(|v| schedule(Vec::new(), v)),
        ),
        (
            "UpdateSettings",
            "tenant_id",
            history!(|v| H::UpdateSettings(pb::UpdateSettingsRequest {
                tenant_id: v,
                ..Default::default()
            })),
        ),
        ("UpdateSettings", "name", settings(|r, v| r.name = Some(v))),
        (
            "UpdateSettings",
            "erp_name",
            settings(|r, v| r.erp_name = Some(v)),
        ),
        (
            "UpdateSettings",
            "erp_version",
            settings(|r, v| r.erp_version = Some(v)),
        ),
        (
            "UpdateSettings",
            "business_rule",
            settings(|r, v| r.business_rule = Some(v)),
        ),
        (
            "UpdateSettings",
            "abc_basis",
            settings(|r, v| r.abc_basis = Some(v)),
        ),
        (
            "StreamLogs",
            "tenant_id",
            history!(|v| H::StreamLogs(pb::StreamLogsRequest {
                tenant_id: v,
                ..Default::default()
            })),
        ),
        (
            "StreamLogs",
            "run_id",
            history!(|v| H::StreamLogs(pb::StreamLogsRequest {
                tenant_id: acme(),
                run_id: Some(v),
                ..Default::default()
            })),
        ),
        (
            "StreamLogs",
            "stage",
            history!(|v| H::StreamLogs(pb::StreamLogsRequest {
                tenant_id: acme(),
                stage: Some(v),
                ..Default::default()
            })),
        ),
        (
            "StreamLogs",
            "table",
            history!(|v| H::StreamLogs(pb::StreamLogsRequest {
                tenant_id: acme(),
                table: Some(v),
                ..Default::default()
            })),
        ),
        (
            "ExportHistory",
            "tenant_id",
            history!(|v| H::ExportHistory(pb::ExportHistoryRequest {
                tenant_id: v,
                from_date: today(),
                to_date: today(),
                ..Default::default()
            })),
        ),
        (
            "ExportHistory",
            "from_date",
            history!(|v| export(v, today(), Vec::new())),
        ),
        (
            "ExportHistory",
            "to_date",
            history!(|v| export(today(), v, Vec::new())),
        ),
        (
            "ExportHistory",
            "tables[0]",
            history!(|v| export(today(), today(), vec![v])),
        ),
        (
            "ListRuns",
            "tenant_id",
            history!(|v| H::ListRuns(pb::ListRunsRequest {
                tenant_id: v,
                ..Default::default()
            })),
        ),
        (
            "ListRuns",
            "page_token",
            history!(|v| H::ListRuns(pb::ListRunsRequest {
                tenant_id: acme(),
                page_token: v,
                ..Default::default()
            })),
        ),
        (
            "GetRun",
            "tenant_id",
            history!(|v| H::GetRun(pb::GetRunRequest {
                tenant_id: v,
                run_id: "r".into()
            })),
        ),
        (
            "GetRun",
            "run_id",
            history!(|v| H::GetRun(pb::GetRunRequest {
                tenant_id: acme(),
                run_id: v
            })),
        ),
        (
            "TriggerSync",
            "tenant_id",
            history!(|v| H::TriggerSync(pb::TriggerSyncRequest { tenant_id: v })),
        ),
        (
            "ListPendingDeletes",
            "tenant_id",
            history!(|v| H::ListPendingDeletes(pb::ListPendingDeletesRequest {
                tenant_id: v,
                table: "company".into(),
                ..Default::default()
            })),
        ),
        (
            "ListPendingDeletes",
            "table",
            history!(|v| H::ListPendingDeletes(pb::ListPendingDeletesRequest {
                tenant_id: acme(),
                table: v,
                ..Default::default()
            })),
        ),
        (
            "ListPendingDeletes",
            "page_token",
            history!(|v| H::ListPendingDeletes(pb::ListPendingDeletesRequest {
                tenant_id: acme(),
                table: "company".into(),
                page_token: v,
                ..Default::default()
            })),
        ),
        (
            "ResolvePendingDeletes",
            "tenant_id",
            history!(
                |v| H::ResolvePendingDeletes(pb::ResolvePendingDeletesRequest {
                    tenant_id: v,
                    table: "company".into(),
                    all: true,
                    action: 1,
                    ..Default::default()
                })
            ),
        ),
        (
            "ResolvePendingDeletes",
            "table",
            history!(
                |v| H::ResolvePendingDeletes(pb::ResolvePendingDeletesRequest {
                    tenant_id: acme(),
                    table: v,
                    all: true,
                    action: 1,
                    ..Default::default()
                })
            ),
        ),
        (
            "ResolvePendingDeletes",
            "ids[0]",
            history!(
                |v| H::ResolvePendingDeletes(pb::ResolvePendingDeletesRequest {
                    tenant_id: acme(),
                    table: "company".into(),
                    ids: vec![v],
                    action: 1,
                    ..Default::default()
                })
            ),
        ),
        (
            "GetAbcReport",
            "tenant_id",
            history!(|v| H::GetAbcReport(pb::GetAbcReportRequest { tenant_id: v })),
        ),
        (
            "ListCompanies",
            "tenant_id",
            history!(|v| H::ListCompanies(pb::ListCompaniesRequest {
                tenant_id: v,
                ..Default::default()
            })),
        ),
        (
            "ListCompanies",
            "portfolio",
            history!(|v| H::ListCompanies(pb::ListCompaniesRequest {
                tenant_id: acme(),
                portfolio: Some(v),
                ..Default::default()
            })),
        ),
        (
            "ListCompanies",
            "page_token",
            history!(|v| H::ListCompanies(pb::ListCompaniesRequest {
                tenant_id: acme(),
                page_token: v,
                ..Default::default()
            })),
        ),
        (
            "ResolveAbcShift",
            "tenant_id",
            history!(|v| H::ResolveAbcShift(pb::ResolveAbcShiftRequest {
                tenant_id: v,
                run_id: "r".into(),
                action: 1
            })),
        ),
        (
            "ResolveAbcShift",
            "run_id",
            history!(|v| H::ResolveAbcShift(pb::ResolveAbcShiftRequest {
                tenant_id: acme(),
                run_id: v,
                action: 1
            })),
        ),
        (
            "GetCompanyHistory",
            "tenant_id",
            history!(|v| H::GetCompanyHistory(pb::GetCompanyHistoryRequest {
                tenant_id: v,
                external_id: "c1".into()
            })),
        ),
        (
            "GetCompanyHistory",
            "external_id",
            history!(|v| H::GetCompanyHistory(pb::GetCompanyHistoryRequest {
                tenant_id: acme(),
                external_id: v
            })),
        ),
        (
            "SetViewConfig",
            "tenant_id",
            history!(|v| H::SetViewConfig(pb::SetViewConfigRequest {
                tenant_id: v,
                ..Default::default()
            })),
        ),
        (
            "SetViewConfig",
            "url",
            history!(|v| H::SetViewConfig(pb::SetViewConfigRequest {
                tenant_id: acme(),
                url: Some(v),
                tables: vec![view_table()],
                ..Default::default()
            })),
        ),
        ("SetViewConfig", "tables[0].table", view(|t, v| t.table = v)),
        ("SetViewConfig", "tables[0].view", view(|t, v| t.view = v)),
        (
            "SetViewConfig",
            "tables[0].key_column",
            view(|t, v| t.key_column = v),
        ),
        (
            "SetViewConfig",
            "tables[0].columns",
            view(|t, v| {
                t.columns.insert(v, "x".into());
            }),
        ),
        (
            "SetViewConfig",
            "tables[0].columns",
            view(|t, v| {
                t.columns.insert("name".into(), v);
            }),
        ),
        (
            "SetViewConfig",
            "tables[0].watermark_column",
            view(|t, v| t.watermark_column = v),
        ),
        (
            "SetViewConfig",
            "tables[0].deleted_column",
            view(|t, v| t.deleted_column = v),
        ),
        (
            "SetViewConfig",
            "tables[0].watermark",
            view(|t, v| t.watermark = v),
        ),
        (
            "GetViewConfig",
            "tenant_id",
            history!(|v| H::GetViewConfig(pb::GetViewConfigRequest { tenant_id: v })),
        ),
        (
            "Push",
            "tenant_id",
            ingest!(|v| I::Push(pb::PushRequest {
                tenant_id: v,
                table: "company".into(),
                records: vec![record("c1", &valid_fields("company"))]
            })),
        ),
        (
            "Push",
            "table",
            ingest!(|v| I::Push(pb::PushRequest {
                tenant_id: acme(),
                table: v,
                records: vec![record("c1", &valid_fields("company"))]
            })),
        ),
        (
            "ReportCounts",
            "tenant_id",
            ingest!(|v| I::ReportCounts(pb::ReportCountsRequest {
                tenant_id: v,
                counts: [("company".to_owned(), 1)].into()
            })),
        ),
        (
            "ReportCounts",
            "counts",
            ingest!(|v| I::ReportCounts(pb::ReportCountsRequest {
                tenant_id: acme(),
                counts: [(v, 1)].into()
            })),
        ),
    ]
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
    /// The call's error (a call that succeeds fails the test).
    async fn refused(&self, name: &str, field: &str, call: Call, value: String) -> Status {
        let outcome = match call {
            Call::History(make) => self.history_call(make(value)).await,
            Call::Ingest(make) => self.ingest_call(make(value)).await,
        };
        outcome
            .err()
            .unwrap_or_else(|| panic!("{name}.{field}: the call succeeded"))
    }

    async fn history_call(&self, call: HistoryCall) -> Result<(), Status> {
        use HistoryCall as H;
        let mut c = self.app.history().await;
        let t = &self.crm;
        match call {
            H::GetOverview(r) => c.get_overview(authed(r, t)).await.map(drop),
            H::UpdateSchedule(r) => c.update_schedule(authed(r, t)).await.map(drop),
            H::UpdateSettings(r) => c.update_settings(authed(r, t)).await.map(drop),
            H::StreamLogs(r) => c.stream_logs(authed(r, t)).await.map(drop),
            H::ExportHistory(r) => c.export_history(authed(r, t)).await.map(drop),
            H::ListRuns(r) => c.list_runs(authed(r, t)).await.map(drop),
            H::GetRun(r) => c.get_run(authed(r, t)).await.map(drop),
            H::TriggerSync(r) => c.trigger_sync(authed(r, t)).await.map(drop),
            H::ListPendingDeletes(r) => c.list_pending_deletes(authed(r, t)).await.map(drop),
            H::ResolvePendingDeletes(r) => c.resolve_pending_deletes(authed(r, t)).await.map(drop),
            H::GetAbcReport(r) => c.get_abc_report(authed(r, t)).await.map(drop),
            H::ListCompanies(r) => c.list_companies(authed(r, t)).await.map(drop),
            H::ResolveAbcShift(r) => c.resolve_abc_shift(authed(r, t)).await.map(drop),
            H::GetCompanyHistory(r) => c.get_company_history(authed(r, t)).await.map(drop),
            H::SetViewConfig(r) => c.set_view_config(authed(r, t)).await.map(drop),
            H::GetViewConfig(r) => c.get_view_config(authed(r, t)).await.map(drop),
        }
    }

    async fn ingest_call(&self, call: IngestCall) -> Result<(), Status> {
        let mut c = self.app.ingest().await;
        let t = &self.erp;
        match call {
            IngestCall::Push(r) => c.push(authed(r, t)).await.map(drop),
            IngestCall::ReportCounts(r) => c.report_counts(authed(r, t)).await.map(drop),
        }
    }

    /// A request id the answer carries is that of an entry the tenant's log holds.
    async fn request_id_is_logged(&self, status: &Status) {
        let Some(id) = status.metadata().get("x-request-id") else {
            return;
        };
        let id = id.to_str().unwrap();
        let now = chrono::Utc::now();
        let logged = erpsync::storage::request_log::list(
            &self.app.state.db,
            &TenantId::parse("acme").unwrap(),
            now - chrono::Duration::hours(1),
            now + chrono::Duration::hours(1),
            1000,
        )
        .await
        .unwrap();
        assert!(
            logged.iter().any(|e| e.id == id),
            "x-request-id {id} has no log entry"
        );
    }
}

/// Whether `status` names `field`: a BadRequest violation of it, or its message.
fn names(status: &Status, field: &str) -> bool {
    let in_details = status.get_details_bad_request().is_some_and(|b| {
        b.field_violations
            .iter()
            .any(|v| v.field == field || v.field.starts_with(&format!("{field}.")))
    });
    in_details || status.message().contains(field)
}

/// The longest run of `c` in the status's message and details.
fn longest_run(status: &Status, c: char) -> usize {
    let mut texts = vec![status.message().to_owned()];
    if let Some(b) = status.get_details_bad_request() {
        for v in b.field_violations {
            texts.push(v.field);
            texts.push(v.description);
        }
    }
    texts
        .iter()
        .flat_map(|t| t.split(|x| x != c))
        .map(|run| run.chars().count())
        .max()
        .unwrap_or(0)
}

/// Message and details together: what the caller's headers carry.
fn status_bytes(status: &Status) -> usize {
    status.message().len() + status.details().len()
}

async fn a_megabyte_in_any_string_field_answers_a_short_invalid_argument(app: TestApp) {
    let ctx = setup(app).await;
    let huge = "x".repeat(1_000_000);
    for (rpc, field, call) in fields() {
        let err = ctx.refused(rpc, field, call, huge.clone()).await;
        assert_eq!(err.code(), Code::InvalidArgument, "{rpc}.{field}: {err:?}");
        assert!(names(&err, field), "{rpc}.{field}: {err:?}");
        assert!(
            status_bytes(&err) < 4096,
            "{rpc}.{field}: {} bytes",
            status_bytes(&err)
        );
        assert!(longest_run(&err, 'x') <= 64, "{rpc}.{field}: {err:?}");
        ctx.request_id_is_logged(&err).await;
    }
}

async fn a_nul_in_any_string_field_is_refused_by_name(app: TestApp) {
    let ctx = setup(app).await;
    for (rpc, field, call) in fields() {
        let err = ctx.refused(rpc, field, call, "ab\0c".into()).await;
        assert_eq!(err.code(), Code::InvalidArgument, "{rpc}.{field}: {err:?}");
        assert!(names(&err, field), "{rpc}.{field}: {err:?}");
        ctx.request_id_is_logged(&err).await;
    }
    // Over HTTP too: the table of the path.
    let body = serde_json::to_vec(&json!({"records": [
        {"external_id": "c1", "fields": valid_fields("company")}
    ]}))
    .unwrap();
    let (status, _, body) =
        http_post_with_head(ctx.app.port, "/erp/v1/company%00", Some(&ctx.erp), &body).await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "INVALID_ARGUMENT", "{body}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("table: must not contain the NUL"),
        "{body}"
    );
    let id = v["request_id"].as_str().expect("logged, with its id");
    let mut meta = tonic::metadata::MetadataMap::new();
    meta.insert("x-request-id", id.parse().unwrap());
    ctx.request_id_is_logged(&Status::with_metadata(Code::InvalidArgument, "", meta))
        .await;
}

async fn thousands_of_bad_entries_answer_a_short_status(app: TestApp) {
    let ctx = setup(app).await;
    let tables: Vec<String> = (0..5_000)
        .map(|i| format!("{i}{}", "t".repeat(300)))
        .collect();
    let err = ctx
        .history_call(export(today(), today(), tables))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(status_bytes(&err) < 4096, "{} bytes", status_bytes(&err));
    assert!(err.message().contains("more"), "{err:?}");
    let views: Vec<pb::ViewTable> = (0..5_000)
        .map(|i| pb::ViewTable {
            table: format!("unknown{i}"),
            ..view_table()
        })
        .collect();
    let err = ctx
        .history_call(HistoryCall::SetViewConfig(pb::SetViewConfigRequest {
            tenant_id: acme(),
            url: Some("sqlite:///tmp/erp.db".into()),
            tables: views,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(status_bytes(&err) < 4096, "{} bytes", status_bytes(&err));
}

async fn a_nul_anywhere_in_a_record_rejects_that_record_alone_and_the_run_succeeds(app: TestApp) {
    let mut ctx = crate::helpers::tenants::setup(app).await;
    let mut unknown = valid_fields("company");
    unknown["nota"] = json!("a\u{0}b");
    let mut nested = valid_fields("company");
    nested["extra"] = json!({"deep": ["ok", {"x": "a\u{0}"}]});
    let mut key = valid_fields("company");
    key["k\u{0}"] = json!(1);
    let reply = ctx
        .app
        .ingest()
        .await
        .push(authed(
            pb::PushRequest {
                tenant_id: acme(),
                table: "company".into(),
                records: vec![
                    record("good", &valid_fields("company")),
                    record("unknown", &unknown),
                    record("nested", &nested),
                    record("key", &key),
                ],
            },
            &ctx.erp,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 1, "{:?}", reply.rejected);
    let named: HashMap<&str, &str> = reply
        .rejected
        .iter()
        .map(|r| (r.external_id.as_str(), r.field.as_str()))
        .collect();
    assert_eq!(named["unknown"], "nota", "{named:?}");
    assert_eq!(named["nested"], "extra.deep[1].x", "{named:?}");
    assert!(named["key"].starts_with('k'), "{named:?}");
    assert!(!named["key"].contains('\0'), "{named:?}");
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{run:?}");
}

/// A raw HTTP/2 gRPC call of `path` with `body` (the 5-byte frame header included);
/// returns the status the server answered.
async fn raw_call(port: u16, path: &str, token: &str, body: Vec<u8>) -> Status {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(req, false).unwrap();
    send.send_data(bytes::Bytes::from(body), true).unwrap();
    let response = response.await.unwrap();
    let status = match Status::from_header_map(response.headers()) {
        Some(s) => s,
        None => {
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let trailers = body.trailers().await.unwrap().expect("trailers");
            Status::from_header_map(&trailers).expect("a grpc-status")
        }
    };
    driver.abort();
    status
}

fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    f.extend_from_slice(message);
    f
}

async fn malformed_messages_and_frames_answer_invalid_argument(app: TestApp) {
    let ctx = setup(app).await;
    const GET_RUN: &str = "/erpsync.v1.IntegrationHistory/GetRun";
    const PUSH: &str = "/erpsync.v1.ErpIngest/Push";
    // tenant_id (field 1) with bytes that are not UTF-8.
    let not_utf8 = frame(0, &[0x0a, 2, 0xff, 0xfe]);
    let garbage = frame(0, &[0xff; 12]);
    let mut truncated = frame(
        0,
        &pb::GetRunRequest {
            tenant_id: acme(),
            run_id: "r".into(),
        }
        .encode_to_vec(),
    );
    truncated[4] += 10;
    let compressed = frame(
        1,
        &pb::GetRunRequest {
            tenant_id: acme(),
            run_id: "r".into(),
        }
        .encode_to_vec(),
    );
    let mut deep = prost_types::Struct::default();
    for _ in 0..120 {
        let mut outer = prost_types::Struct::default();
        outer.fields.insert(
            "n".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(deep)),
            },
        );
        deep = outer;
    }
    let nested = frame(
        0,
        &pb::PushRequest {
            tenant_id: acme(),
            table: "company".into(),
            records: vec![pb::Record {
                external_id: "c1".into(),
                fields: Some(deep),
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    );
    for (what, path, token, body) in [
        ("invalid UTF-8", GET_RUN, &ctx.crm, not_utf8.clone()),
        ("invalid UTF-8", PUSH, &ctx.erp, not_utf8),
        ("garbage", GET_RUN, &ctx.crm, garbage.clone()),
        ("garbage", PUSH, &ctx.erp, garbage),
        ("truncated frame", GET_RUN, &ctx.crm, truncated),
        (
            "compressed flag without grpc-encoding",
            GET_RUN,
            &ctx.crm,
            compressed,
        ),
        ("Struct nested 120 deep", PUSH, &ctx.erp, nested),
        ("no message", GET_RUN, &ctx.crm, Vec::new()),
    ] {
        let status = raw_call(ctx.app.port, path, token, body).await;
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{what} to {path}: {status:?}"
        );
        assert!(
            status.message().starts_with("malformed request: "),
            "{what}: {status:?}"
        );
        assert!(status.message().len() < 200, "{what}: {status:?}");
    }
    // A well-formed raw call still reaches its handler.
    let fine = frame(
        0,
        &pb::GetRunRequest {
            tenant_id: acme(),
            run_id: "nope".into(),
        }
        .encode_to_vec(),
    );
    let status = raw_call(ctx.app.port, GET_RUN, &ctx.crm, fine).await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

async fn grpc_paths_over_http_1_answer_415(app: TestApp) {
    let ctx = setup(app).await;
    for (path, token) in [
        ("/erpsync.v1.ErpIngest/Push", &ctx.erp),
        ("/erpsync.v1.IntegrationHistory/GetOverview", &ctx.crm),
        ("/grpc.health.v1.Health/Check", &ctx.crm),
    ] {
        let (status, head, body) =
            http_post_with_head(ctx.app.port, path, Some(token), b"{\"tenant_id\":\"acme\"}").await;
        assert_eq!(status, 415, "{path}: {head}\n{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "INVALID_ARGUMENT", "{body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/grpc"),
            "{body}"
        );
    }
    // Nothing was staged by the HTTP/1.1 call to Push.
    let staged = erpsync::storage::staging::list(
        &ctx.app.state.db,
        &TenantId::parse("acme").unwrap(),
        "company",
    )
    .await
    .unwrap();
    assert!(staged.is_empty());
}
