//! ErpIngest.Push and POST /erp/v1/{table}: validation, staging, the request log.

use chrono::{Duration, Utc};
use erpsync::domain::tables::TABLES;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{GetOverviewRequest, PushRequest, PushResponse, Record};
use erpsync::storage::{request_log, staging};
use serde_json::{json, Value};
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{record, to_struct, valid_fields};
use crate::helpers::{authed, http_post, spawn_app_with, TestApp};

both_backends!(
    every_table_accepts_a_valid_record_and_names_each_missing_field,
    push_keeps_good_records_when_others_are_invalid,
    resending_a_batch_changes_nothing_and_older_updates_are_not_applied,
    deletions_are_kept_as_tombstones,
    duplicated_external_id_in_a_batch_keeps_the_last_and_reports_the_others,
    whole_batch_errors_answer_precise_codes_and_keep_what_was_stored,
    http_answers_the_same_shape_with_http_statuses,
    request_log_holds_one_row_per_request_with_the_answer_sent,
    bad_tokens_are_refused_and_logged_to_no_tenant,
    db_size_counts_staged_records_and_the_request_log,
    concurrent_pushes_of_overlapping_batches_all_succeed,
);

fn push_req(table: &str, records: Vec<Record>) -> PushRequest {
    PushRequest {
        tenant_id: "acme".into(),
        table: table.into(),
        records,
    }
}

struct Ctx {
    app: TestApp,
    tenant: TenantId,
    erp: String,
}

async fn setup(app: TestApp) -> Ctx {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    Ctx { app, tenant, erp }
}

impl Ctx {
    async fn push(&self, table: &str, records: Vec<Record>) -> Result<PushResponse, tonic::Status> {
        self.app
            .ingest()
            .await
            .push(authed(push_req(table, records), &self.erp))
            .await
            .map(|r| r.into_inner())
    }

    async fn staged(&self, table: &str) -> Vec<staging::StagedRecord> {
        staging::list(&self.app.state.db, &self.tenant, table)
            .await
            .unwrap()
    }

    async fn log(&self) -> Vec<erpsync::domain::request_log::RequestLogEntry> {
        let now = Utc::now();
        request_log::list(
            &self.app.state.db,
            &self.tenant,
            now - Duration::days(1),
            now + Duration::days(1),
            10_000,
        )
        .await
        .unwrap()
    }
}

async fn every_table_accepts_a_valid_record_and_names_each_missing_field(app: TestApp) {
    let ctx = setup(app).await;
    for table in TABLES {
        let good = valid_fields(table.id);
        let mut records = vec![record("ok", &good)];
        for field in table.required_fields {
            let mut fields = good.clone();
            fields.as_object_mut().unwrap().remove(*field);
            records.push(record(&format!("no-{field}"), &fields));
        }
        let reply = ctx.push(table.id, records).await.unwrap();
        assert_eq!(reply.accepted, 1, "{}: {:?}", table.id, reply.rejected);
        let missing: Vec<(&str, &str)> = reply
            .rejected
            .iter()
            .map(|r| (r.field.as_str(), r.reason.as_str()))
            .collect();
        let expected: Vec<(&str, &str)> = table
            .required_fields
            .iter()
            .map(|f| (*f, "required field is missing"))
            .collect();
        assert_eq!(missing, expected, "{}", table.id);
        for (i, r) in reply.rejected.iter().enumerate() {
            assert_eq!(r.index as usize, i + 1);
            assert_eq!(r.external_id, format!("no-{}", r.field));
        }
        let staged = ctx.staged(table.id).await;
        assert_eq!(
            staged.len(),
            1,
            "{}: only the good record is staged",
            table.id
        );
    }
}

async fn push_keeps_good_records_when_others_are_invalid(app: TestApp) {
    let ctx = setup(app).await;
    let mut bad_cnpj = valid_fields("company");
    bad_cnpj["document"] = json!("11.222.333/0001-82");
    let mut name_number = valid_fields("company");
    name_number["name"] = json!(42);
    let reply = ctx
        .push(
            "company",
            vec![
                record("c1", &valid_fields("company")),
                record("c2", &bad_cnpj),
                record("c3", &name_number),
            ],
        )
        .await
        .unwrap();
    assert_eq!(reply.accepted, 1);
    assert_eq!(reply.rejected.len(), 2);
    assert_eq!(
        (reply.rejected[0].index, reply.rejected[0].field.as_str()),
        (1, "document")
    );
    assert!(
        reply.rejected[0].reason.contains("CNPJ"),
        "{}",
        reply.rejected[0].reason
    );
    assert_eq!(
        (reply.rejected[1].index, reply.rejected[1].field.as_str()),
        (2, "name")
    );
    assert!(
        reply.rejected[1].reason.contains("number"),
        "{}",
        reply.rejected[1].reason
    );

    let mut bad_cpf = valid_fields("contact");
    bad_cpf["document"] = json!("529.982.247-26");
    let reply = ctx
        .push("contact", vec![record("p1", &bad_cpf)])
        .await
        .unwrap();
    assert_eq!(reply.rejected[0].field, "document");
    assert!(
        reply.rejected[0].reason.contains("CPF"),
        "{}",
        reply.rejected[0].reason
    );

    let mut negative = valid_fields("order_item");
    negative["quantity"] = json!("-1");
    let mut bad_date = valid_fields("order");
    bad_date["issued_at"] = json!("31/02/2025");
    let mut garbage = valid_fields("invoice_item");
    garbage["unit_price"] = json!("12,5x");
    let reply = ctx
        .push("order_item", vec![record("i1", &negative)])
        .await
        .unwrap();
    assert_eq!(reply.rejected[0].field, "quantity");
    assert!(
        reply.rejected[0].reason.contains("negative"),
        "{}",
        reply.rejected[0].reason
    );
    let reply = ctx
        .push("order", vec![record("o1", &bad_date)])
        .await
        .unwrap();
    assert_eq!(reply.rejected[0].field, "issued_at");
    assert!(
        reply.rejected[0].reason.contains("31/02/2025"),
        "{}",
        reply.rejected[0].reason
    );
    let reply = ctx
        .push("invoice_item", vec![record("n1", &garbage)])
        .await
        .unwrap();
    assert_eq!(reply.rejected[0].field, "unit_price");
    assert!(
        reply.rejected[0].reason.contains("12,5x"),
        "{}",
        reply.rejected[0].reason
    );

    // What was kept is normalized: document digits only, Brazilian decimals exact.
    let staged = ctx.staged("company").await;
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].fields["document"], "11222333000181");
    let reply = ctx
        .push("order", vec![record("o2", &valid_fields("order"))])
        .await
        .unwrap();
    assert_eq!(reply.accepted, 1);
    let order = &ctx.staged("order").await[0];
    assert_eq!(order.fields["total"], "1234.56");
    assert_eq!(order.fields["issued_at"], "2025-03-15");
}

async fn resending_a_batch_changes_nothing_and_older_updates_are_not_applied(app: TestApp) {
    let ctx = setup(app).await;
    let at = |s: &str| {
        Some(prost_types::Timestamp {
            seconds: s.parse::<chrono::DateTime<Utc>>().unwrap().timestamp(),
            nanos: 0,
        })
    };
    let mut v1 = record("c1", &valid_fields("company"));
    v1.updated_at = at("2025-01-02T10:00:00Z");
    let first = ctx.push("company", vec![v1.clone()]).await.unwrap();
    assert_eq!(first.accepted, 1);
    let staged = ctx.staged("company").await;

    let again = ctx.push("company", vec![v1.clone()]).await.unwrap();
    assert_eq!((again.accepted, again.rejected.len()), (1, 0));
    assert_eq!(ctx.staged("company").await, staged, "idempotent");

    let mut older = v1.clone();
    let mut renamed = valid_fields("company");
    renamed["name"] = json!("Old Name");
    older.fields = Some(to_struct(&renamed));
    older.updated_at = at("2025-01-01T10:00:00Z");
    let reply = ctx.push("company", vec![older]).await.unwrap();
    assert_eq!(reply.accepted, 0);
    assert_eq!(reply.rejected[0].field, "updated_at");
    assert!(
        reply.rejected[0]
            .reason
            .contains("older than the stored version"),
        "{}",
        reply.rejected[0].reason
    );
    assert_eq!(
        ctx.staged("company").await,
        staged,
        "the older version is not applied"
    );

    let mut newer = v1;
    renamed["name"] = json!("New Name");
    newer.fields = Some(to_struct(&renamed));
    newer.updated_at = at("2025-01-03T10:00:00Z");
    assert_eq!(ctx.push("company", vec![newer]).await.unwrap().accepted, 1);
    assert_eq!(ctx.staged("company").await[0].fields["name"], "New Name");
}

async fn deletions_are_kept_as_tombstones(app: TestApp) {
    let ctx = setup(app).await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await
        .unwrap();
    let tombstone = Record {
        external_id: "c1".into(),
        fields: None,
        updated_at: None,
        deleted: true,
    };
    let reply = ctx.push("company", vec![tombstone]).await.unwrap();
    assert_eq!(reply.accepted, 1, "{:?}", reply.rejected);
    let staged = ctx.staged("company").await;
    assert_eq!(staged.len(), 1, "kept for the next sync to delete");
    assert!(staged[0].deleted);
}

async fn duplicated_external_id_in_a_batch_keeps_the_last_and_reports_the_others(app: TestApp) {
    let ctx = setup(app).await;
    let mut second = valid_fields("company");
    second["name"] = json!("Second");
    let reply = ctx
        .push(
            "company",
            vec![
                record("c1", &valid_fields("company")),
                record("c2", &valid_fields("company")),
                record("c1", &second),
            ],
        )
        .await
        .unwrap();
    assert_eq!(reply.accepted, 2);
    assert_eq!(reply.rejected.len(), 1);
    assert_eq!(
        (
            reply.rejected[0].index,
            reply.rejected[0].external_id.as_str()
        ),
        (0, "c1")
    );
    assert!(
        reply.rejected[0].reason.contains("record 2"),
        "{}",
        reply.rejected[0].reason
    );
    let staged = ctx.staged("company").await;
    assert_eq!(
        staged
            .iter()
            .find(|r| r.external_id == "c1")
            .unwrap()
            .fields["name"],
        "Second"
    );
}

async fn whole_batch_errors_answer_precise_codes_and_keep_what_was_stored(app: TestApp) {
    // Small limits make the limit paths cheap to reach: a server of the same backend.
    let backend = app.backend;
    drop(app);
    let app = spawn_app_with(backend, |c| {
        c.limits.max_records = 5;
        c.limits.max_body_bytes = 4096;
        c.limits.log_body_cap = 1024;
    })
    .await
    .unwrap();
    let ctx = setup(app).await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await
        .unwrap();
    let before = ctx.staged("company").await;

    let err = ctx
        .push("companies", vec![record("x", &valid_fields("company"))])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("unknown table \"companies\""),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("company, contact, quote"),
        "lists the valid ids: {}",
        err.message()
    );

    let err = ctx.push("company", vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("empty batch"),
        "{}",
        err.message()
    );
    let request_id = err
        .metadata()
        .get("x-request-id")
        .expect("a logged failure names its request")
        .to_str()
        .unwrap()
        .to_owned();

    let six = (0..6)
        .map(|i| record(&format!("n{i}"), &valid_fields("company")))
        .collect();
    let err = ctx.push("company", six).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "too many records: 6 in one batch, the limit is 5; split the batch"
    );

    let mut big = valid_fields("company");
    big["notes"] = json!("x".repeat(5000));
    let err = ctx
        .push("company", vec![record("big", &big)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("over the 4096 byte limit"),
        "{}",
        err.message()
    );

    assert_eq!(
        ctx.staged("company").await,
        before,
        "nothing stored before is lost or changed"
    );
    let log = ctx.log().await;
    let statuses: Vec<&str> = log.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "OK",
            "NOT_FOUND",
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "RESOURCE_EXHAUSTED"
        ]
    );
    assert_eq!(
        log[2].id, request_id,
        "x-request-id names the logged request"
    );
    assert!(
        log[4].request_body.contains("over the limit"),
        "{}",
        log[4].request_body
    );
}

async fn http_answers_the_same_shape_with_http_statuses(app: TestApp) {
    let ctx = setup(app).await;
    let port = ctx.app.port;
    let body = json!({"records": [
        {"external_id": "c1", "fields": valid_fields("company"), "updated_at": "02/01/2025", "deleted": false},
        {"external_id": "c2", "fields": {"name": "No document"}}
    ]});
    let (status, text) = http_post(
        port,
        "/erp/v1/company",
        Some(&ctx.erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["accepted"], 1);
    assert_eq!(
        reply["rejected"][0],
        json!({"index": 1, "external_id": "c2", "field": "document", "reason": "required field is missing"})
    );
    assert!(reply["request_id"].as_str().unwrap().len() == 36);
    let before = ctx.staged("company").await;
    assert_eq!(before.len(), 1);

    // (case, token, body, HTTP status, error code, words of the message)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            Some(ctx.erp.as_str()),
            b"{\"records\": [".to_vec(),
            400,
            "INVALID_ARGUMENT",
            "malformed JSON",
        ),
        (
            "records not a list",
            Some(ctx.erp.as_str()),
            br#"{"records": {"a": 1}}"#.to_vec(),
            400,
            "INVALID_ARGUMENT",
            "must be a list",
        ),
        (
            "no records key",
            Some(ctx.erp.as_str()),
            br#"[1, 2]"#.to_vec(),
            400,
            "INVALID_ARGUMENT",
            "expected a JSON object",
        ),
        (
            "empty batch",
            Some(ctx.erp.as_str()),
            br#"{"records": []}"#.to_vec(),
            400,
            "INVALID_ARGUMENT",
            "empty batch",
        ),
        (
            "no token",
            None,
            body.to_string().into_bytes(),
            401,
            "UNAUTHENTICATED",
            "missing authorization",
        ),
        (
            "bad token",
            Some("esk_nope"),
            body.to_string().into_bytes(),
            401,
            "UNAUTHENTICATED",
            "invalid or revoked token",
        ),
    ];
    for (case, token, payload, code, name, needle) in cases {
        let (status, text) = http_post(port, "/erp/v1/company", token, &payload).await;
        assert_eq!(status, code, "{case}: {text}");
        let err: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{case}: JSON error body, got {text}"));
        assert_eq!(err["error"]["code"], name, "{case}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{case}: {text}"
        );
    }
    let (status, text) = http_post(
        port,
        "/erp/v1/companies",
        Some(&ctx.erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("valid tables are company, contact"), "{text}");

    let crm = ctx.app.token(Role::Crm, &[&ctx.tenant]).await;
    let (status, text) = http_post(
        port,
        "/erp/v1/company",
        Some(&crm),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 403, "{text}");

    let too_big = json!({"records": [{"external_id": "x", "fields": {"name": "y".repeat(17 * 1024 * 1024)}}]});
    let (status, text) = http_post(
        port,
        "/erp/v1/company",
        Some(&ctx.erp),
        too_big.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("RESOURCE_EXHAUSTED"), "{text}");

    assert_eq!(
        ctx.staged("company").await,
        before,
        "rejected requests change nothing"
    );
}

async fn request_log_holds_one_row_per_request_with_the_answer_sent(app: TestApp) {
    let ctx = setup(app).await;
    let grpc_reply = ctx
        .push(
            "company",
            vec![
                record("c1", &valid_fields("company")),
                record("c2", &json!({"name": "x"})),
            ],
        )
        .await
        .unwrap();
    let body =
        json!({"records": [{"external_id": "s1", "fields": valid_fields("seller")}]}).to_string();
    let (_, http_reply) = http_post(
        ctx.app.port,
        "/erp/v1/seller",
        Some(&ctx.erp),
        body.as_bytes(),
    )
    .await;
    let (_, http_error) =
        http_post(ctx.app.port, "/erp/v1/seller", Some(&ctx.erp), b"not json").await;

    let log = ctx.log().await;
    assert_eq!(log.len(), 3, "one row per request");
    let grpc = log
        .iter()
        .find(|e| e.id == grpc_reply.request_id)
        .expect("the gRPC request is logged under its request_id");
    assert_eq!(grpc.endpoint, "ErpIngest/Push");
    assert_eq!(grpc.transport.as_str(), "grpc");
    assert_eq!((grpc.accepted, grpc.rejected), (1, 1));
    assert_eq!(grpc.table.as_deref(), Some("company"));
    let logged: Value = serde_json::from_str(&grpc.response_body).unwrap();
    assert_eq!(logged["request_id"], grpc_reply.request_id.as_str());
    assert_eq!(logged["accepted"], grpc_reply.accepted);
    assert_eq!(
        logged["rejected"][0]["reason"],
        grpc_reply.rejected[0].reason.as_str()
    );
    let request: Value = serde_json::from_str(&grpc.request_body).unwrap();
    assert_eq!(request["records"][0]["external_id"], "c1");
    assert_eq!(
        request["records"][0]["fields"]["document"], "11.222.333/0001-81",
        "as received"
    );

    let http = log
        .iter()
        .find(|e| e.endpoint == "POST /erp/v1/seller" && e.status == "OK")
        .unwrap();
    assert_eq!(
        http.response_body, http_reply,
        "byte for byte what the client received"
    );
    assert_eq!(http.request_body, body);
    let failed = log.iter().find(|e| e.status == "INVALID_ARGUMENT").unwrap();
    assert_eq!(failed.response_body, http_error);
    let answered: Value = serde_json::from_str(&http_error).unwrap();
    assert_eq!(
        answered["request_id"],
        failed.id.as_str(),
        "the client can quote its request id"
    );
    assert_eq!(failed.http_status, 400);
    assert_eq!(failed.request_body, "not json");
    assert!(failed
        .error
        .as_deref()
        .unwrap()
        .starts_with("malformed JSON"));
}

async fn bad_tokens_are_refused_and_logged_to_no_tenant(app: TestApp) {
    let ctx = setup(app).await;
    let other = ctx.app.create_tenant("globex").await;
    let other_erp = ctx.app.token(Role::Erp, &[&other]).await;
    let mut client = ctx.app.ingest().await;
    let req = || push_req("company", vec![record("c1", &valid_fields("company"))]);
    let err = client.push(tonic::Request::new(req())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client.push(authed(req(), "esk_forged")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client.push(authed(req(), &other_erp)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("tenant acme"), "{}", err.message());
    assert!(ctx.log().await.is_empty(), "nothing logged to the tenant");
    assert!(ctx.staged("company").await.is_empty());
    let now = Utc::now();
    let other_log = request_log::list(
        &ctx.app.state.db,
        &other,
        now - Duration::days(1),
        now + Duration::days(1),
        10,
    )
    .await
    .unwrap();
    assert!(other_log.is_empty(), "nor to the token's own tenant");
}

async fn db_size_counts_staged_records_and_the_request_log(app: TestApp) {
    let ctx = setup(app).await;
    let crm = ctx.app.token(Role::Crm, &[&ctx.tenant]).await;
    let size = || async {
        ctx.app
            .history()
            .await
            .get_overview(authed(
                GetOverviewRequest {
                    tenant_id: "acme".into(),
                },
                &crm,
            ))
            .await
            .unwrap()
            .into_inner()
            .db_size_bytes
    };
    let before = size().await;
    let records: Vec<Record> = (0..200)
        .map(|i| record(&format!("c{i}"), &valid_fields("company")))
        .collect();
    ctx.push("company", records).await.unwrap();
    let after = size().await;
    let logged = ctx.log().await;
    let body: Value = serde_json::from_str(&logged[0].request_body).unwrap();
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        200,
        "the whole body comes back"
    );
    // 200 staged rows of ~120 bytes of fields, plus the logged request and response.
    assert!(after > before + 200 * 120, "{before} → {after}");

    // Retention takes the old rows off the count as it deletes them.
    let mut entry = ctx.log().await.remove(0);
    entry.id = uuid::Uuid::new_v4().to_string();
    entry.received_at = Utc::now() - Duration::days(40);
    request_log::insert_alone(&ctx.app.state.db, &entry)
        .await
        .unwrap();
    let with_old = size().await;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let deleted = erpsync::worker::retention::purge_at(&ctx.app.state.db, Utc::now(), 30, &rx)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(
        size().await,
        after,
        "back to the size before the old row ({with_old} with it)"
    );
    assert_eq!(ctx.log().await.len(), 1, "the recent row stays");
}

async fn concurrent_pushes_of_overlapping_batches_all_succeed(app: TestApp) {
    let ctx = setup(app).await;
    let mut tasks = Vec::new();
    for client in 0..4 {
        let mut ingest = ctx.app.ingest().await;
        let token = ctx.erp.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5 {
                // Half of each batch overlaps the other clients' ids.
                let records = (0..40)
                    .map(|i| {
                        let id = if i % 2 == 0 {
                            format!("shared{i}")
                        } else {
                            format!("c{client}-{round}-{i}")
                        };
                        record(&id, &valid_fields("company"))
                    })
                    .collect();
                let reply = ingest
                    .push(authed(push_req("company", records), &token))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(reply.accepted, 40, "{:?}", reply.rejected);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ctx.staged("company").await.len(), 20 + 4 * 5 * 20);
    assert_eq!(ctx.log().await.len(), 20);
}
