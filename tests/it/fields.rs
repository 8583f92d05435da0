//! The field catalogue and unknown fields: ListTables lists every field with its type in
//! the language asked; what it lists is exactly what validation accepts (cases generated
//! from the served catalogue, every table and field); a field a table does not know comes
//! back as a warning (gRPC and HTTP), is counted in the request log and the Histórico
//! export, and rejects its record on a strict tenant; the OpenAPI document and the host
//! guide describe the catalogue as the code holds it.

use chrono::{Duration, Utc};
use erpsync::domain::tables::{Kind, TABLES};
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, admin_client::AdminClient, ExportKind, FieldType, GetOverviewRequest, ListTablesRequest,
    PushRequest, UpdateSettingsRequest, UpdateTenantRequest,
};
use erpsync::storage::{request_log, staging};
use serde_json::{json, Value};
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{record, today, valid_fields};
use crate::helpers::workbooks::{download, request, sheet, sheets, text};
use crate::helpers::{authed, http_post, TestApp};

both_backends!(
    list_tables_lists_every_field_with_its_type_in_the_language_asked,
    the_served_catalogue_is_what_validation_accepts,
    unknown_fields_are_warned_about_on_both_transports_logged_and_exported,
    a_strict_tenant_rejects_a_record_with_an_unknown_field_and_stores_none_of_it,
);

/// The fields an INVALID_ARGUMENT names.
fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    tonic_types::StatusExt::get_details_bad_request(status)
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

fn list_request(
    language: &str,
    accept_language: Option<&str>,
    token: &str,
) -> tonic::Request<ListTablesRequest> {
    let mut req = authed(
        ListTablesRequest {
            language: language.into(),
        },
        token,
    );
    if let Some(v) = accept_language {
        req.metadata_mut()
            .insert("accept-language", v.parse().unwrap());
    }
    req
}

async fn list_tables_lists_every_field_with_its_type_in_the_language_asked(app: TestApp) {
    let crm = app.token(Role::Crm, &[]).await;
    let client = app.history().await;
    let list = |language: &'static str, header: Option<&'static str>| {
        let mut client = client.clone();
        let req = list_request(language, header, &crm);
        async move { client.list_tables(req).await.map(|r| r.into_inner().tables) }
    };

    // pt-BR by default, as the page is.
    let default = list("", None).await.unwrap();
    let company = &default[0];
    assert_eq!(
        (company.label.as_str(), company.language.as_str()),
        ("Empresa", "pt-BR")
    );
    assert_eq!(company.description, "Clientes pessoa jurídica (CNPJ).");
    assert_eq!(
        company.required_fields,
        ["name", "document"],
        "kept for old hosts"
    );
    let fields: Vec<(&str, i32, bool, &str)> = company
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.r#type, f.required, f.references.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("name", FieldType::Text as i32, true, ""),
            ("document", FieldType::Cnpj as i32, true, ""),
            ("seller_id", FieldType::Reference as i32, false, "seller"),
            ("city", FieldType::Text as i32, false, ""),
            ("state", FieldType::Text as i32, false, ""),
            ("email", FieldType::Text as i32, false, ""),
            ("phone", FieldType::Text as i32, false, ""),
        ]
    );
    assert_eq!(company.fields[1].description, "CNPJ da empresa.");
    assert_eq!(company.fields[1].type_name, "cnpj");
    let order_item = default.iter().find(|t| t.id == "order_item").unwrap();
    let order_id = &order_item.fields[0];
    assert_eq!(
        (order_id.name.as_str(), order_id.references.as_str()),
        ("order_id", "order")
    );
    let invoice = default.iter().find(|t| t.id == "invoice").unwrap();
    let total = invoice.fields.iter().find(|f| f.name == "total").unwrap();
    assert_eq!(
        total.r#type,
        FieldType::Money as i32,
        "credit notes are negative"
    );
    let discount = order_item
        .fields
        .iter()
        .find(|f| f.name == "discount")
        .unwrap();
    assert_eq!(
        (discount.r#type, discount.required),
        (FieldType::Fraction as i32, false)
    );

    // English: by the request's field, or by Accept-Language; the field wins.
    for (language, header) in [
        ("en", None),
        ("", Some("fr-FR, en-US;q=0.9")),
        ("en-GB", Some("pt-BR")),
    ] {
        let tables = list(language, header).await.unwrap();
        assert_eq!(tables[0].label, "Company", "{language:?} {header:?}");
        assert_eq!(tables[0].language, "en");
        assert_eq!(tables[0].fields[1].description, "The company's CNPJ.");
    }
    // A header naming no language erpsync speaks falls back to pt-BR; so does q=0.
    for header in ["de-DE, fr;q=0.5", "en;q=0", "*", ";;;"] {
        let tables = list("", Some(header)).await.unwrap();
        assert_eq!(tables[0].language, "pt-BR", "{header:?}");
    }
    // An unknown explicit language is refused, naming the field.
    let long = "x".repeat(10_000);
    for bad in ["klingon", "es", "pt\u{0}BR", long.as_str()] {
        let mut c = client.clone();
        let err = c
            .list_tables(list_request(bad, None, &crm))
            .await
            .unwrap_err();
        assert_eq!(violations(&err), ["language"], "{bad:?}");
    }

    // Every language lists the same fields with the same types; only the texts differ.
    let english = list("en", None).await.unwrap();
    for (pt, en) in default.iter().zip(&english) {
        let shape = |t: &pb::TableInfo| -> Vec<(String, i32, bool, String)> {
            t.fields
                .iter()
                .map(|f| (f.name.clone(), f.r#type, f.required, f.references.clone()))
                .collect()
        };
        assert_eq!(shape(pt), shape(en), "{}", pt.id);
        for (a, b) in pt.fields.iter().zip(&en.fields) {
            assert!(!a.description.is_empty() && !b.description.is_empty());
            assert!(!a.format.is_empty() && !b.format.is_empty());
        }
    }
}

/// A value of `t` that validation accepts, and one it refuses.
fn good_and_bad(t: FieldType) -> (Value, Value) {
    match t {
        FieldType::Text => (json!("Texto"), json!(12)),
        FieldType::Code => (json!(1001), json!(true)),
        FieldType::Reference => (json!("R-1"), json!(1.5)),
        FieldType::Date => (json!("15/03/2025"), json!("31/02/2025")),
        FieldType::Money => (json!("-150,00"), json!("abc")),
        FieldType::NonNegativeMoney => (json!("10,50"), json!("-1")),
        FieldType::Quantity => (json!("2"), json!("-2")),
        FieldType::Fraction => (json!("0.15"), json!("1.5")),
        FieldType::Cnpj => (json!("11.222.333/0001-81"), json!("11.222.333/0001-82")),
        FieldType::Cpf => (json!("529.982.247-25"), json!("529.982.247-26")),
        FieldType::CnpjOrCpf => (json!("529.982.247-25"), json!("123")),
        FieldType::Unspecified => panic!("a field without a type"),
    }
}

/// Generated cases, from the catalogue as ListTables serves it: for every table, a record
/// with every listed field (required and optional) at a good value of its type is
/// accepted without a warning (so no listed field is unknown to validation); each field
/// at a bad value of its type rejects its record naming that field; each required field
/// left out rejects naming it, each optional one left out does not.
async fn the_served_catalogue_is_what_validation_accepts(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[]).await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let tables = app
        .history()
        .await
        .list_tables(list_request("en", None, &crm))
        .await
        .unwrap()
        .into_inner()
        .tables;
    assert_eq!(tables.len(), TABLES.len());
    let mut cases = 0;
    for table in &tables {
        let full: serde_json::Map<String, Value> = table
            .fields
            .iter()
            .map(|f| {
                let t = FieldType::try_from(f.r#type).unwrap();
                (f.name.clone(), good_and_bad(t).0)
            })
            .collect();
        // (record, the field that must be named, or None when it must be accepted)
        let mut expected: Vec<(Value, Option<String>)> = vec![(Value::Object(full.clone()), None)];
        for f in &table.fields {
            let t = FieldType::try_from(f.r#type).unwrap();
            let mut bad = full.clone();
            bad.insert(f.name.clone(), good_and_bad(t).1);
            expected.push((Value::Object(bad), Some(f.name.clone())));
            let mut without = full.clone();
            without.remove(&f.name);
            expected.push((Value::Object(without), f.required.then(|| f.name.clone())));
        }
        let records: Vec<Value> = expected
            .iter()
            .enumerate()
            .map(|(i, (fields, _))| json!({"external_id": format!("r{i}"), "fields": fields}))
            .collect();
        let (status, body) = http_post(
            app.port,
            &format!("/erp/v1/{}", table.id),
            Some(&erp),
            json!({ "records": records }).to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", table.id);
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            reply["warnings"],
            json!([]),
            "{}: a listed field is unknown: {body}",
            table.id
        );
        let rejected = reply["rejected"].as_array().unwrap();
        for (i, (_, named)) in expected.iter().enumerate() {
            let found = rejected.iter().find(|r| r["index"] == i);
            match (named, found) {
                (None, None) => {}
                (Some(field), Some(r)) => assert_eq!(r["field"], json!(field), "{}: {r}", table.id),
                (want, got) => panic!("{} case {i}: wanted {want:?}, got {got:?}", table.id),
            }
            cases += 1;
        }
    }
    assert!(cases > 100, "{cases} cases");

    // The served types are the catalog's kinds, references included.
    for (served, def) in tables.iter().zip(TABLES) {
        for (f, d) in served.fields.iter().zip(def.fields) {
            assert_eq!(f.type_name, d.kind.type_name(), "{}.{}", def.id, d.name);
            let references = match d.kind {
                Kind::Ref(t) => t.as_str(),
                _ => "",
            };
            assert_eq!(f.references, references);
        }
    }
}

async fn unknown_fields_are_warned_about_on_both_transports_logged_and_exported(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let crm = app.token(Role::Crm, &[&tenant]).await;

    // gRPC: an ERP that renamed `document` to `cnpj` keeps sending the real one too.
    let mut fields = valid_fields("company");
    fields["cnpj"] = json!("11.222.333/0001-81");
    let reply = app
        .ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                records: vec![
                    record("c1", &fields),
                    record("c2", &valid_fields("company")),
                ],
            },
            &erp,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 2);
    assert_eq!(reply.warnings.len(), 1, "{reply:?}");
    let w = &reply.warnings[0];
    assert_eq!(
        (
            w.index,
            w.external_id.as_str(),
            w.field.as_str(),
            w.suggestion.as_str()
        ),
        (0, "c1", "cnpj", "document")
    );
    assert_eq!(
        w.message,
        "unknown field; did you mean \"document\"? this table accepts: \
         name, document, seller_id, city, state, email, phone"
    );

    // HTTP: the same answer shape, with a pt-BR name and a field no table knows.
    let body = json!({"records": [
        {"external_id": "s1", "fields": {"name": "Ana", "nome": "Ana", "erp_flag": 1}},
    ]});
    let (status, answer) = http_post(
        app.port,
        "/erp/v1/seller",
        Some(&erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(
        answer["warnings"],
        json!([
            {"index": 0, "external_id": "s1", "field": "erp_flag",
             "message": "unknown field; this table accepts: name, email", "suggestion": ""},
            {"index": 0, "external_id": "s1", "field": "nome",
             "message": "unknown field; did you mean \"name\"? this table accepts: name, email",
             "suggestion": "name"},
        ])
    );
    // Kept out of what reaches the CRM as before, but the record is staged.
    let staged = staging::list(&app.state.db, &tenant, "seller")
        .await
        .unwrap();
    assert_eq!(staged.len(), 1);

    // The request log counts them, and keeps the answer with them.
    let now = Utc::now();
    let log = request_log::list(
        &app.state.db,
        &tenant,
        now - Duration::days(1),
        now + Duration::days(1),
        100,
    )
    .await
    .unwrap();
    let counts: Vec<(Option<&str>, u32)> = log
        .iter()
        .map(|e| (e.table.as_deref(), e.warnings))
        .collect();
    assert_eq!(counts, [(Some("company"), 1), (Some("seller"), 2)]);
    let logged: Value = serde_json::from_str(&log[1].response_body).unwrap();
    assert_eq!(logged["warnings"], answer["warnings"]);

    // The Histórico export shows the count on each table's request sheet.
    let d = download(
        &app,
        &crm,
        request(
            today(),
            today(),
            &["company", "seller"],
            ExportKind::Requests,
        ),
    )
    .await
    .unwrap();
    let all = sheets(&d.bytes);
    for (table, want) in [("company", 1.0), ("seller", 2.0)] {
        let rows = sheet(&all, table);
        assert_eq!(text(&rows[0][11]), "warnings", "{table}");
        let cell = &rows[1][11];
        let got = match cell {
            calamine::Data::Float(f) => *f,
            calamine::Data::Int(i) => *i as f64,
            other => panic!("{table}: warnings is not a number: {other:?}"),
        };
        assert_eq!(got, want, "{table}");
    }
}

async fn a_strict_tenant_rejects_a_record_with_an_unknown_field_and_stores_none_of_it(
    app: TestApp,
) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let crm = app.token(Role::Crm, &[]).await;
    let admin = app.token(Role::Admin, &[]).await;
    let mut history = app.history().await;
    let overview =
        |mut h: erpsync::grpc::pb::integration_history_client::IntegrationHistoryClient<_>| {
            let crm = crm.clone();
            async move {
                h.get_overview(authed(
                    GetOverviewRequest {
                        tenant_id: "acme".into(),
                    },
                    &crm,
                ))
                .await
                .unwrap()
                .into_inner()
            }
        };
    assert!(
        !overview(history.clone()).await.strict_fields,
        "off by default"
    );
    history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                strict_fields: Some(true),
                ..Default::default()
            },
            &crm,
        ))
        .await
        .unwrap();
    assert!(overview(history.clone()).await.strict_fields);

    let mut with_cnpj = valid_fields("company");
    with_cnpj["cnpj"] = json!("11.222.333/0001-81");
    let body = json!({"records": [
        {"external_id": "bad", "fields": with_cnpj},
        {"external_id": "good", "fields": valid_fields("company")},
    ]});
    let (status, answer) = http_post(
        app.port,
        "/erp/v1/company",
        Some(&erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["warnings"], json!([]));
    let r = &answer["rejected"][0];
    assert_eq!(
        (r["index"].as_u64(), r["field"].as_str()),
        (Some(0), Some("cnpj"))
    );
    assert_eq!(
        r["reason"],
        "unknown field; did you mean \"document\"? this table accepts: \
         name, document, seller_id, city, state, email, phone"
    );
    let staged: Vec<String> = staging::list(&app.state.db, &tenant, "company")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.external_id)
        .collect();
    assert_eq!(staged, ["good"], "nothing of the rejected record is stored");

    // Admin turns it off again: the same record is kept, with a warning.
    let mut admin_client = AdminClient::connect(app.url()).await.unwrap();
    let t = admin_client
        .update_tenant(authed(
            UpdateTenantRequest {
                tenant_id: "acme".into(),
                settings: Some(UpdateSettingsRequest {
                    strict_fields: Some(false),
                    ..Default::default()
                }),
                schedule: None,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!t.strict_fields);
    let (_, answer) = http_post(
        app.port,
        "/erp/v1/company",
        Some(&erp),
        body.to_string().as_bytes(),
    )
    .await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["warnings"][0]["field"], "cnpj");

    // A record sent bare (not in {"records": [...]}) is a 400 naming the table's fields.
    let (status, answer) = http_post(
        app.port,
        "/erp/v1/company",
        Some(&erp),
        valid_fields("company").to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("company accepts: name, document, seller_id, city, state, email, phone"),
        "{answer}"
    );

    // Strict mode of a tenant that does not exist: NOT_FOUND, nothing created.
    for err in [
        history
            .update_settings(authed(
                UpdateSettingsRequest {
                    tenant_id: "nope".into(),
                    strict_fields: Some(true),
                    ..Default::default()
                },
                &crm,
            ))
            .await
            .unwrap_err(),
        admin_client
            .update_tenant(authed(
                UpdateTenantRequest {
                    tenant_id: "nope".into(),
                    settings: Some(UpdateSettingsRequest {
                        strict_fields: Some(true),
                        ..Default::default()
                    }),
                    schedule: None,
                },
                &admin,
            ))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
}

/// `erpsync tenant update --strict-fields` sets it and `tenant show` prints it; a value
/// that is not true or false, or an unknown tenant, fails and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_strict_mode() {
    use crate::helpers::cli::erpsync;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let created = erpsync(
        &url,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    );
    assert!(created.status.success(), "{created:?}");
    let out = erpsync(
        &url,
        &[
            "tenant",
            "update",
            "--id",
            "acme",
            "--strict-fields",
            "true",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("strict_fields: on"), "{printed}");
    let bad = erpsync(
        &url,
        &[
            "tenant",
            "update",
            "--id",
            "acme",
            "--strict-fields",
            "maybe",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--strict-fields"));
    let unknown = erpsync(
        &url,
        &[
            "tenant",
            "update",
            "--id",
            "nope",
            "--strict-fields",
            "true",
        ],
    );
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("not found"),
        "{unknown:?}"
    );
    let off = erpsync(
        &url,
        &[
            "tenant",
            "update",
            "--id",
            "acme",
            "--strict-fields",
            "false",
        ],
    );
    assert!(
        String::from_utf8_lossy(&off.stdout).contains("strict_fields: off"),
        "{off:?}"
    );
}

// ---- documents ---------------------------------------------------------------------------

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The OpenAPI schema name of a table's fields: company_brand → CompanyBrandFields.
fn schema_name(id: &str) -> String {
    let camel: String = id
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    format!("{camel}Fields")
}

/// The JSON types a value of `kind` may be sent as.
fn json_types(kind: Kind, required: bool) -> Value {
    let mut types: Vec<&str> = match kind {
        Kind::Text | Kind::Date | Kind::Cnpj | Kind::Cpf | Kind::CnpjOrCpf => vec!["string"],
        Kind::Code | Kind::Ref(_) => vec!["string", "integer"],
        Kind::Money | Kind::NonNegativeMoney | Kind::Quantity | Kind::Fraction => {
            vec!["string", "number"]
        }
    };
    // A null (or blank) optional field counts as not sent.
    if !required {
        types.push("null");
    }
    if types.len() == 1 {
        json!(types[0])
    } else {
        json!(types)
    }
}

/// The OpenAPI schemas of every table's fields, as the catalog says.
fn expected_openapi_schemas() -> serde_json::Map<String, Value> {
    TABLES
        .iter()
        .map(|t| {
            let properties: serde_json::Map<String, Value> = t
                .fields
                .iter()
                .map(|f| {
                    let mut title = f.kind.type_name().to_owned();
                    if let Kind::Ref(to) = f.kind {
                        title = format!("reference to {to}");
                    }
                    let description = format!(
                        "{} {}: {}.",
                        f.description.en,
                        if f.required { "Required" } else { "Optional" },
                        f.kind.format().en
                    );
                    (
                        f.name.to_owned(),
                        json!({"type": json_types(f.kind, f.required), "title": title,
                               "description": description}),
                    )
                })
                .collect();
            let schema = json!({
                "type": "object",
                "title": format!("{} ({})", t.id, t.label.pt_br),
                "description": format!(
                    "The fields of a `{}` record: {} A field not listed here is unknown: \
                     the record is kept without it reaching the CRM and the answer's \
                     `warnings` name it (a strict tenant rejects the record instead).",
                    t.id, t.description.en
                ),
                "required": t.required_fields,
                "properties": properties,
            });
            (schema_name(t.id), schema)
        })
        .collect()
}

/// The host guide's catalogue, as the catalog says (between its markers).
fn expected_guide_catalogue() -> String {
    let mut out = String::new();
    for t in TABLES {
        out.push_str(&format!(
            "\n**`{}`** — {} / {}: {}\n\n| field | type | required | description |\n|---|---|---|---|\n",
            t.id, t.label.pt_br, t.label.en, t.description.en
        ));
        for f in t.fields {
            let kind = match f.kind {
                Kind::Ref(to) => format!("reference → `{to}`"),
                k => k.type_name().to_owned(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} / {} |\n",
                f.name,
                kind,
                if f.required { "yes" } else { "no" },
                f.description.en,
                f.description.pt_br
            ));
        }
    }
    out.push('\n');
    out
}

const GUIDE_START: &str = "<!-- field catalogue: generated from src/domain/tables.rs, checked by tests/it/fields.rs -->\n";
const GUIDE_END: &str = "<!-- end of the field catalogue -->";

/// docs/openapi.json's `<Table>Fields` schemas and docs/host-guide.md's field catalogue
/// are the catalog's: a change to `domain/tables.rs` fails here until both follow. With
/// ERPSYNC_BLESS=1 the guide is rewritten and the expected schemas are written to
/// openapi-fields.json in the temporary directory, to paste into the document.
#[test]
fn the_openapi_document_and_the_host_guide_describe_the_catalog() {
    let expected = expected_openapi_schemas();
    let guide = read("docs/host-guide.md");
    let want_guide = expected_guide_catalogue();
    if std::env::var("ERPSYNC_BLESS").is_ok() {
        let out = std::env::temp_dir().join("openapi-fields.json");
        std::fs::write(&out, serde_json::to_string_pretty(&expected).unwrap()).unwrap();
        let (head, rest) = guide
            .split_once(GUIDE_START)
            .expect("the guide has the start marker");
        let (_, tail) = rest
            .split_once(GUIDE_END)
            .expect("the guide has the end marker");
        let blessed = format!("{head}{GUIDE_START}{want_guide}{GUIDE_END}{tail}");
        std::fs::write(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/host-guide.md"),
            blessed,
        )
        .unwrap();
        return;
    }
    let doc: Value = serde_json::from_str(&read("docs/openapi.json")).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, want) in &expected {
        assert_eq!(
            schemas.get(name),
            Some(want),
            "docs/openapi.json's {name} is not the catalog's; it should be:\n{}",
            serde_json::to_string_pretty(want).unwrap()
        );
    }
    let listed: Vec<&String> = schemas.keys().filter(|k| k.ends_with("Fields")).collect();
    assert_eq!(
        listed.len(),
        expected.len(),
        "a Fields schema of no table: {listed:?}"
    );
    // The push answer declares the warnings.
    let response = &schemas["PushResponse"];
    assert!(response["required"]
        .as_array()
        .unwrap()
        .contains(&json!("warnings")));
    assert_eq!(
        response["properties"]["warnings"]["items"]["$ref"],
        "#/components/schemas/Warning"
    );

    let section = guide
        .split_once(GUIDE_START)
        .and_then(|(_, rest)| rest.split_once(GUIDE_END))
        .map(|(s, _)| s)
        .expect("docs/host-guide.md has the field catalogue's markers");
    assert_eq!(
        section, want_guide,
        "docs/host-guide.md's field catalogue is not the catalog's (ERPSYNC_BLESS=1 rewrites it)"
    );
}
