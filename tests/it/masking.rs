//! Credentials an ERP puts in a pushed body, in every shape a masker could miss
//! (upper-case, percent-encoded, JSON-escaped, split by invisible characters, `Bearer`
//! JWTs, `Basic` user:password), are masked in the request log, in the Histórico export
//! and in the staged free-text fields; look-alikes ("Basic Foods", "bearer of") are kept.

use erpsync::domain::token::Role;
use erpsync::grpc::pb::{ExportKind, PushRequest};
use erpsync::storage::{request_log, staging};
use serde_json::json;

use crate::both_backends;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::workbooks::{download, request, sheets};
use crate::helpers::{authed, http_post, TestApp};

both_backends!(credentials_in_pushed_bodies_never_reach_the_log_the_export_or_the_crm);

const ID: &str = "0a1b2c3d4e5f";
const SECRET: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
/// base64 of "admin:hunter2".
const BASIC: &str = "YWRtaW46aHVudGVyMg";

/// What must never show, in any case: the token's secret past its first characters (an
/// invisible character may split those), the JWT's signature, the Basic credential.
const NEEDLES: [&str; 3] = [
    "f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "c2lnbmF0dXJl",
    BASIC,
];

/// The shapes, as written inside a JSON string of the HTTP body.
fn http_shapes() -> Vec<String> {
    vec![
        format!("esk_{ID}_{SECRET}"),
        format!("ESK_{}_{}", ID.to_uppercase(), SECRET.to_uppercase()),
        format!("token=esk%5F{ID}_{SECRET}"),
        format!("token=%65sk_{ID}_{SECRET}"),
        format!(r"esk\u005f{ID}_{SECRET}"),
        format!("es\u{200B}k_{ID}\u{200C}_{SECRET}"),
        format!("e\u{2060}sk_\u{FEFF}{ID}_{SECRET}"),
        format!(r"es\u200bk_{ID}_{SECRET}"),
        format!("Authorization: Bearer {JWT}"),
        format!("authorization: bearer {JWT}"),
        format!("BEARER%20{JWT}"),
        "Bearer a.b.c2lnbmF0dXJl".into(),
        format!("Authorization: Basic {BASIC}=="),
        format!(r"basic {BASIC}\u003d\u003d"),
    ]
}

async fn credentials_in_pushed_bodies_never_reach_the_log_the_export_or_the_crm(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let erp = app.token(Role::Erp, &[&acme]).await;

    // HTTP: each shape in an unknown field, one in the free-text name; look-alikes kept.
    let mut records = Vec::new();
    for (i, shape) in http_shapes().iter().enumerate() {
        let mut fields = valid_fields("company").to_string();
        fields.pop();
        fields.push_str(&format!(r#","note":"{shape}"}}"#));
        records.push(format!(r#"{{"external_id":"h{i}","fields":{fields}}}"#));
    }
    let mut named = valid_fields("company");
    named["name"] = json!(format!("Acme Bearer {JWT}"));
    records.push(json!({"external_id": "named", "fields": named}).to_string());
    let mut alike = valid_fields("company");
    alike["name"] = json!("Basic Foods Ltda");
    alike["note"] = json!("the bearer of good news; Bearer Ltda");
    records.push(json!({"external_id": "alike", "fields": alike}).to_string());
    let body = format!(r#"{{"records":[{}]}}"#, records.join(","));
    serde_json::from_str::<serde_json::Value>(&body).expect("the test's body is JSON");
    let (status, answer) =
        http_post(app.port, "/erp/v1/company", Some(&erp), body.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");

    // gRPC: the decoded shapes as field values.
    let mut fields = valid_fields("company");
    fields["note"] = json!(format!(
        "ESK_{ID}_{SECRET} e\u{200D}sk_{ID}_{SECRET} Bearer {JWT} Basic {BASIC}=="
    ));
    app.ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                records: vec![record("g1", &fields)],
            },
            &erp,
        ))
        .await
        .unwrap();

    let leaks = |what: &str, text: &str| {
        let lower = text.to_lowercase();
        for needle in NEEDLES {
            assert!(
                !lower.contains(&needle.to_lowercase()),
                "{what} shows {needle:?}: {text}"
            );
        }
    };
    // The request log.
    let now = chrono::Utc::now();
    let logged = request_log::list(
        &app.state.db,
        &acme,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        100,
    )
    .await
    .unwrap();
    assert_eq!(logged.len(), 2, "{logged:#?}");
    for e in &logged {
        leaks("the request log", &e.request_body);
        assert!(e.request_body.contains("***"), "{}", e.request_body);
        assert!(e.request_body.contains("g1") || e.request_body.contains("Basic Foods Ltda"));
    }
    // The staged records, as the CRM receives them.
    let staged = staging::list(&app.state.db, &acme, "company")
        .await
        .unwrap();
    assert_eq!(staged.len(), http_shapes().len() + 3);
    for r in &staged {
        leaks(
            "a staged record",
            &serde_json::Value::Object(r.fields.clone()).to_string(),
        );
    }
    let alike = staged.iter().find(|r| r.external_id == "alike").unwrap();
    assert_eq!(alike.fields["name"], "Basic Foods Ltda");
    assert_eq!(alike.fields["note"], "the bearer of good news; Bearer Ltda");
    let named = staged.iter().find(|r| r.external_id == "named").unwrap();
    assert_eq!(named.fields["name"], "Acme Bearer ***");
    assert_eq!(named.fields["document"], "11222333000181");

    // The Histórico export, which reads the request log.
    let today = now
        .with_timezone(&chrono_tz::America::Sao_Paulo)
        .date_naive();
    let d = download(&app, &crm, request(today, today, &[], ExportKind::Requests))
        .await
        .unwrap();
    let mut cells = String::new();
    for (_, rows) in sheets(&d.bytes) {
        for row in rows {
            for cell in row {
                cells.push_str(&cell.to_string());
                cells.push('\n');
            }
        }
    }
    assert!(cells.contains("Basic Foods Ltda"), "the push is exported");
    leaks("the export", &cells);
}
