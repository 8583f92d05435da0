//! ExportHistory and `erpsync export`: the workbook read back by real readers (calamine,
//! and openpyxl when Python has it), the range rules, the overflow paths on small limits,
//! the Excessivos Deletes and run sheets, and the chunked stream.

use std::collections::HashSet;

use calamine::Data;
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use erpsync::domain::export::{day_start, excel_serial};
use erpsync::domain::request_log::{RequestLogEntry, Transport};
use erpsync::domain::tables::TABLES;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{self, ExportHistoryRequest, ExportKind, GetRunRequest, Record};
use erpsync::storage::request_log;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{record, today, valid_fields};
use crate::helpers::workbooks::{download, request, sheet, sheets, text, Download};
use crate::helpers::{authed, spawn_app_with, TestApp};

both_backends!(
    the_workbook_has_every_request_of_the_range_and_nothing_else,
    a_table_filter_exports_only_those_tables,
    requests_at_the_same_instant_are_each_exported_once_in_id_order,
    full_sheets_continue_on_a_next_sheet_and_long_cells_are_cut,
    every_invalid_request_is_rejected_naming_its_field,
    excessive_deletes_and_runs_have_their_rows,
    a_caller_that_leaves_mid_stream_does_not_stop_the_next_export,
    openpyxl_reads_the_workbook_with_its_row_counts,
    report_counts_requests_are_logged_and_exported_on_the_other_sheet,
);

/// ReportCounts reaches a tenant like a push: it is in the request log, answered well or
/// not, and so on the export's `other` sheet (read back from the workbook).
async fn report_counts_requests_are_logged_and_exported_on_the_other_sheet(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&acme]).await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let mut ingest = app.ingest().await;
    let report = |counts: Vec<(&str, u64)>| {
        authed(
            pb::ReportCountsRequest {
                tenant_id: "acme".into(),
                counts: counts.into_iter().map(|(t, n)| (t.to_owned(), n)).collect(),
            },
            &erp,
        )
    };
    ingest
        .report_counts(report(vec![("company", 91), ("contact", 40)]))
        .await
        .unwrap();
    let err = ingest
        .report_counts(report(vec![("nota_fiscal", 3)]))
        .await
        .unwrap_err();
    let today = Utc::now().with_timezone(&TZ).date_naive();
    let d = download(&app, &crm, request(today, today, &[], ExportKind::Requests))
        .await
        .unwrap();
    let all = sheets(&d.bytes);
    let other = sheet(&all, "other");
    let rows: Vec<(String, String)> = other[1..]
        .iter()
        .map(|r| (text(&r[1]), text(&r[3])))
        .collect();
    assert_eq!(
        rows,
        [
            ("ErpIngest/ReportCounts".to_owned(), "OK".to_owned()),
            ("ErpIngest/ReportCounts".to_owned(), "NOT_FOUND".to_owned()),
        ],
        "{other:?}"
    );
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let bodies: Vec<String> = other[1..]
        .iter()
        .map(|r| {
            r.iter()
                .filter_map(|c| match c {
                    Data::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    assert!(bodies[0].contains("\"company\":91"), "{bodies:?}");
    assert!(bodies[1].contains("nota_fiscal"), "{bodies:?}");
}

const TZ: chrono_tz::Tz = chrono_tz::America::Sao_Paulo;
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const REQUEST_HEADER: [&str; 12] = [
    "received_at",
    "endpoint",
    "transport",
    "status",
    "duration_ms",
    "accepted",
    "rejected",
    "error",
    "request_body",
    "response_body",
    "request_id",
    "warnings",
];

/// `minutes` ago, but not before today's midnight in the tenant's zone: the tests that
/// export "today" run at any hour, also in the first minutes of a day.
fn ago_today(minutes: i64) -> DateTime<Utc> {
    (Utc::now() - Duration::minutes(minutes)).max(day_start(TZ, today()))
}

fn days_before(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_sub_days(Days::new(n)).unwrap()
}

/// A logged request of `tenant` received at `at`.
fn entry(tenant: &TenantId, at: DateTime<Utc>, table: Option<&str>, body: &str) -> RequestLogEntry {
    RequestLogEntry {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.clone(),
        received_at: at,
        endpoint: match table {
            Some(t) => format!("POST /erp/v1/{t}"),
            None => "ErpIngest/ReportCounts".into(),
        },
        table: table.map(str::to_owned),
        transport: if table.is_some() {
            Transport::Http
        } else {
            Transport::Grpc
        },
        status: "OK".into(),
        http_status: 200,
        duration_ms: 12,
        accepted: 1,
        rejected: 0,
        warnings: 0,
        error: None,
        request_body: body.to_owned(),
        request_truncated: false,
        response_body: r#"{"accepted":1,"rejected":[],"mensagem":"recebido às 10h"}"#.into(),
    }
}

async fn log(app: &TestApp, e: &RequestLogEntry) {
    request_log::insert_alone(&app.state.db, e).await.unwrap();
}

fn number(d: &Data) -> f64 {
    match d {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

/// The summary's value on the line labelled `label`.
fn summary_value(all: &[(String, Vec<Vec<Data>>)], label: &str) -> Data {
    sheet(all, "summary")
        .iter()
        .find(|r| {
            r.first()
                .is_some_and(|c| matches!(c, Data::String(s) if s == label))
        })
        .unwrap_or_else(|| panic!("no summary line {label}"))[1]
        .clone()
}

fn assert_chunks(d: &Download, name: &str) {
    assert_eq!(d.filename, name);
    assert_eq!(d.content_type, XLSX);
    assert!(!d.later_chunks_named, "only the first chunk names the file");
    assert!(
        d.chunk_sizes.iter().all(|n| *n <= 1 << 20),
        "chunks of at most 1 MiB: {:?}",
        d.chunk_sizes
    );
    assert!(d.bytes.starts_with(b"PK"), "a zip");
}

async fn the_workbook_has_every_request_of_the_range_and_nothing_else(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let beta = app.create_tenant("beta").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let (to, from) = (today(), days_before(today(), 1));
    let start = day_start(TZ, from);

    let first = entry(
        &acme,
        start,
        Some("company"),
        r#"{"records":[{"external_id":"C1","fields":{"name":"Açúcar & Café Ltda — São Paulo ✓","document":"11.222.333/0001-81"}}]}"#,
    );
    // ≥ 1 KiB: stored LZ4-compressed, must come back whole.
    let big_body = format!(
        r#"{{"records":[{}]}}"#,
        (0..30)
            .map(|i| format!(r#"{{"external_id":"NF{i}","fields":{{"descrição":"Nota fiscal eletrônica nº {i} — operação de saída, São José dos Pinhais/PR","total":"1.234,56"}}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(big_body.len() >= 1024);
    let mut invoice = entry(
        &acme,
        Utc::now() - Duration::minutes(2),
        Some("invoice"),
        &big_body,
    );
    invoice.status = "INVALID_ARGUMENT".into();
    invoice.http_status = 400;
    invoice.accepted = 29;
    invoice.rejected = 1;
    invoice.error = Some("registro 3: total não é um número".into());
    let counts = entry(
        &acme,
        start + Duration::hours(1),
        None,
        r#"{"counts":{"company":10}}"#,
    );
    let before = entry(&acme, start - Duration::seconds(1), Some("company"), "{}");
    let older = entry(
        &acme,
        Utc::now() - Duration::days(10),
        Some("company"),
        "{}",
    );
    let other_tenant = entry(
        &beta,
        Utc::now() - Duration::minutes(1),
        Some("company"),
        "{}",
    );
    for e in [&first, &invoice, &counts, &before, &older, &other_tenant] {
        log(&app, e).await;
    }

    let d = download(&app, &crm, request(from, to, &[], ExportKind::Requests))
        .await
        .unwrap();
    assert_chunks(&d, &format!("erpsync-acme-requests-{from}_{to}.xlsx"));
    let all = sheets(&d.bytes);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec!["summary"];
    expected.extend(TABLES.iter().map(|t| t.id));
    expected.push("other");
    assert_eq!(names, expected);
    for (name, rows) in &all[1..] {
        let header: Vec<String> = rows[0].iter().map(text).collect();
        assert_eq!(header, REQUEST_HEADER, "{name}");
    }

    let company = sheet(&all, "company");
    assert_eq!(
        company.len(),
        2,
        "header + the one company request in range"
    );
    let row = &company[1];
    let Data::DateTime(at) = &row[0] else {
        panic!("received_at is a date cell: {:?}", row[0])
    };
    assert!(at.is_datetime());
    let local = first.received_at.with_timezone(&TZ).naive_local();
    assert!((at.as_f64() - excel_serial(local)).abs() < 1e-9);
    assert_eq!(at.as_f64().fract(), 0.0, "local midnight of from_date");
    assert_eq!(text(&row[1]), "POST /erp/v1/company");
    assert_eq!(text(&row[2]), "http");
    assert_eq!(text(&row[3]), "OK");
    assert_eq!(number(&row[4]), 12.0);
    assert_eq!(text(&row[8]), first.request_body);
    assert_eq!(text(&row[9]), first.response_body);
    assert_eq!(text(&row[10]), first.id);

    let inv = &sheet(&all, "invoice")[1];
    assert_eq!(text(&inv[3]), "INVALID_ARGUMENT");
    assert_eq!((number(&inv[5]), number(&inv[6])), (29.0, 1.0));
    assert_eq!(text(&inv[7]), "registro 3: total não é um número");
    assert_eq!(
        text(&inv[8]),
        big_body,
        "the compressed body comes back whole"
    );
    let other = sheet(&all, "other");
    assert_eq!(other.len(), 2);
    assert_eq!(text(&other[1][1]), "ErpIngest/ReportCounts");

    let ids: HashSet<String> = all[1..]
        .iter()
        .flat_map(|(_, rows)| rows[1..].iter().map(|r| text(&r[10])))
        .collect();
    let want: HashSet<String> = [&first.id, &invoice.id, &counts.id]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(
        ids, want,
        "outside the range or of another tenant: not exported"
    );

    assert_eq!(number(&summary_value(&all, "rows exported")), 3.0);
    assert_eq!(text(&summary_value(&all, "time zone")), "America/Sao_Paulo");
    assert_eq!(text(&summary_value(&all, "tables")), "all");
    assert_eq!(text(&summary_value(&all, "from")), from.to_string());
    let summary = sheet(&all, "summary");
    let header = summary
        .iter()
        .find(|r| matches!(&r[0], Data::String(s) if s == "table"))
        .expect("the totals table");
    let col = |name: &str| {
        header
            .iter()
            .position(|c| matches!(c, Data::String(s) if s == name))
            .unwrap()
    };
    let invoice_line = summary
        .iter()
        .find(|r| matches!(&r[0], Data::String(s) if s == "invoice"))
        .unwrap();
    assert_eq!(number(&invoice_line[col("INVALID_ARGUMENT")]), 1.0);
    assert_eq!(number(&invoice_line[col("total")]), 1.0);
    let day_line = summary
        .iter()
        .find(|r| matches!(&r[0], Data::String(s) if *s == from.to_string()))
        .expect("a line per day for the chart");
    assert_eq!(
        number(&day_line[col("OK")]),
        2.0,
        "company and counts on from_date"
    );
    assert!(
        d.bytes.windows(20).any(|w| w == b"xl/charts/chart1.xml"),
        "the summary's chart is in the file"
    );
}

async fn a_table_filter_exports_only_those_tables(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let at = ago_today(5);
    let company = entry(&acme, at, Some("company"), "{}");
    let invoice = entry(&acme, at, Some("invoice"), "{}");
    let order = entry(&acme, at, Some("order"), "{}");
    let counts = entry(&acme, at, None, "{}");
    for e in [&company, &invoice, &order, &counts] {
        log(&app, e).await;
    }
    let to = today();
    let d = download(
        &app,
        &crm,
        request(
            to,
            to,
            &["invoice", "company", "invoice"],
            ExportKind::Unspecified,
        ),
    )
    .await
    .unwrap();
    assert_chunks(&d, &format!("erpsync-acme-requests-{to}_{to}.xlsx"));
    let all = sheets(&d.bytes);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["summary", "company", "invoice"],
        "catalog order, no other"
    );
    assert_eq!(text(&sheet(&all, "company")[1][10]), company.id);
    assert_eq!(text(&sheet(&all, "invoice")[1][10]), invoice.id);
    assert_eq!(text(&summary_value(&all, "tables")), "company, invoice");
    assert_eq!(number(&summary_value(&all, "rows exported")), 2.0);
}

async fn requests_at_the_same_instant_are_each_exported_once_in_id_order(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    // More than a first page (32 rows) at one instant: pages split the tie.
    let at = ago_today(3);
    let mut ids = Vec::new();
    for _ in 0..100 {
        let e = entry(&acme, at, Some("seller"), "{}");
        log(&app, &e).await;
        ids.push(e.id);
    }
    ids.sort();
    let to = today();
    let d = download(
        &app,
        &crm,
        request(to, to, &["seller"], ExportKind::Requests),
    )
    .await
    .unwrap();
    let all = sheets(&d.bytes);
    let got: Vec<String> = sheet(&all, "seller")[1..]
        .iter()
        .map(|r| text(&r[10]))
        .collect();
    assert_eq!(got, ids);
}

/// A server of `app`'s backend whose sheets hold 2 rows and cells 100 characters.
async fn small_limits(app: TestApp) -> TestApp {
    let backend = app.backend;
    drop(app);
    spawn_app_with(backend, |c| {
        c.export.rows_per_sheet = 2;
        c.export.max_cell_chars = 100;
    })
    .await
    .unwrap()
}

async fn full_sheets_continue_on_a_next_sheet_and_long_cells_are_cut(app: TestApp) {
    let app = small_limits(app).await;
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let base = ago_today(30);
    let mut logged = Vec::new();
    for i in 0..7 {
        let body = match i {
            3 => "ç".repeat(150),
            // ≥ 1 KiB: compressed in the log, cut in the sheet.
            5 => "São Paulo ".repeat(4_000),
            _ => format!(r#"{{"n":{i}}}"#),
        };
        let e = entry(&acme, base + Duration::seconds(i), Some("company"), &body);
        log(&app, &e).await;
        logged.push(e);
    }
    let to = today();
    let d = download(
        &app,
        &crm,
        request(to, to, &["company"], ExportKind::Requests),
    )
    .await
    .unwrap();
    let all = sheets(&d.bytes);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "summary",
            "company",
            "company (2)",
            "company (3)",
            "company (4)"
        ]
    );
    let rows: Vec<&Vec<Data>> = all[1..]
        .iter()
        .flat_map(|(_, rows)| {
            assert_eq!(
                text(&rows[0][0]),
                "received_at",
                "every sheet has the header"
            );
            assert!(rows.len() <= 3, "at most 2 data rows a sheet");
            rows[1..].iter()
        })
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| text(&r[10])).collect();
    let want: Vec<String> = logged.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want, "in received order, continued across sheets");
    let cut = text(&rows[3][8]);
    assert_eq!(cut.encode_utf16().count(), 100, "{cut}");
    assert!(cut.starts_with("ççç"), "{cut}");
    assert!(cut.ends_with("…[cut: 150 characters in all]"), "{cut}");
    let cut = text(&rows[5][8]);
    assert_eq!(cut.encode_utf16().count(), 100);
    assert!(cut.starts_with("São Paulo São Paulo"));
    assert!(cut.ends_with("…[cut: 40000 characters in all]"), "{cut}");
    assert_eq!(text(&rows[6][8]), r#"{"n":6}"#);
    assert_eq!(
        number(&summary_value(&all, "cells cut at 100 characters")),
        2.0
    );
    assert_eq!(number(&summary_value(&all, "data sheets")), 4.0);
    assert_eq!(number(&summary_value(&all, "rows exported")), 7.0);
}

async fn every_invalid_request_is_rejected_naming_its_field(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let all_tenants = app.token(Role::Crm, &[]).await;
    let erp = app.token(Role::Erp, &[&acme]).await;
    let today = today();
    let day = |n: u64| days_before(today, n).to_string();
    let tomorrow = today.succ_opt().unwrap().to_string();
    let t = today.to_string();
    let cases: Vec<(&str, ExportHistoryRequest, &str, &str)> = vec![
        ("8 days", req(&day(7), &t, &[], 0), "to_date", "at most 7"),
        (
            "reversed",
            req(&t, &day(1), &[], 0),
            "to_date",
            "before from_date",
        ),
        (
            "future",
            req(&t, &tomorrow, &[], 0),
            "to_date",
            "in the future",
        ),
        (
            "before retention",
            req(&day(30), &day(28), &[], 0),
            "from_date",
            "retention",
        ),
        (
            "malformed",
            req("28/11/2026", &t, &[], 0),
            "from_date",
            "YYYY-MM-DD",
        ),
        ("no date", req(&t, "", &[], 0), "to_date", "required"),
        (
            "unknown table",
            req(&t, &t, &["company", "orders"], 0),
            "tables",
            "\"orders\"",
        ),
        (
            "unguarded table",
            req(&t, &t, &["invoice"], 2),
            "tables",
            "company and contact",
        ),
        ("unknown kind", req(&t, &t, &[], 9), "kind", "unknown"),
    ];
    let mut client = app.history().await;
    for (case, r, field, needle) in cases {
        let err = client
            .export_history(authed(r, &crm))
            .await
            .map(|_| ())
            .expect_err(case);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{case}: {}",
            err.message()
        );
        let details = tonic_types::StatusExt::get_details_bad_request(&err)
            .unwrap_or_else(|| panic!("{case}: BadRequest details"));
        assert_eq!(details.field_violations.len(), 1, "{case}: {details:?}");
        assert_eq!(details.field_violations[0].field, field, "{case}");
        assert!(
            details.field_violations[0].description.contains(needle),
            "{case}: {}",
            details.field_violations[0].description
        );
    }
    // The oldest day the 30-day retention keeps is fine.
    download(&app, &crm, req(&day(29), &day(23), &[], 0))
        .await
        .unwrap();

    // Tenants and tokens as every other call.
    let mut other = req(&t, &t, &[], 0);
    other.tenant_id = "ghost".into();
    let err = client
        .export_history(authed(other.clone(), &crm))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .export_history(authed(other, &all_tenants))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .export_history(authed(req(&t, &t, &[], 0), &erp))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .export_history(tonic::Request::new(req(&t, &t, &[], 0)))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

fn req(from: &str, to: &str, tables: &[&str], kind: i32) -> ExportHistoryRequest {
    ExportHistoryRequest {
        tenant_id: "acme".into(),
        from_date: from.into(),
        to_date: to.into(),
        tables: tables.iter().map(|t| (*t).to_owned()).collect(),
        kind,
    }
}

async fn excessive_deletes_and_runs_have_their_rows(app: TestApp) {
    let mut ctx = crate::helpers::tenants::setup(app).await;
    ctx.push(
        "company",
        (0..60)
            .map(|i| record(&format!("c{i:03}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    ctx.push("contact", vec![record("p1", &valid_fields("contact"))])
        .await;
    let first = ctx.run().await.run.unwrap();
    assert_eq!(first.status(), pb::RunStatus::Success);
    ctx.push(
        "company",
        (0..60)
            .map(|i| Record {
                external_id: format!("c{i:03}"),
                fields: None,
                updated_at: None,
                deleted: true,
            })
            .collect(),
    )
    .await;
    let second = ctx.run().await.run.unwrap();
    assert_eq!(second.status(), pb::RunStatus::Partial, "60 deletions held");
    let to = today();
    let from = days_before(to, 1);

    let d = download(
        &ctx.app,
        &ctx.crm,
        request(from, to, &[], ExportKind::ExcessiveDeletes),
    )
    .await
    .unwrap();
    assert_chunks(
        &d,
        &format!("erpsync-acme-excessive-deletes-{from}_{to}.xlsx"),
    );
    let all = sheets(&d.bytes);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["summary", "company", "contact"]);
    let company = sheet(&all, "company");
    let header: Vec<String> = company[0].iter().map(text).collect();
    assert_eq!(
        header,
        [
            "external_id",
            "name",
            "document",
            "detected_run_id",
            "detected_at",
            "state",
            "state_changed_at"
        ]
    );
    assert_eq!(company.len(), 61);
    for (i, row) in company[1..].iter().enumerate() {
        assert_eq!(text(&row[0]), format!("c{i:03}"));
        assert_eq!(text(&row[1]), "ACME Ltda");
        assert!(!text(&row[2]).is_empty(), "the CRM's document");
        assert_eq!(text(&row[3]), second.run_id);
        assert!(matches!(&row[4], Data::DateTime(d) if d.is_datetime()));
        assert_eq!(text(&row[5]), "HELD");
        assert_eq!(row[6], row[4], "held since it was detected");
    }
    assert_eq!(
        sheet(&all, "contact").len(),
        1,
        "no contact held: the header only"
    );
    let contact_only = download(
        &ctx.app,
        &ctx.crm,
        request(from, to, &["contact"], ExportKind::ExcessiveDeletes),
    )
    .await
    .unwrap();
    let names: Vec<String> = sheets(&contact_only.bytes)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["summary", "contact"]);

    let d = download(&ctx.app, &ctx.crm, request(from, to, &[], ExportKind::Runs))
        .await
        .unwrap();
    assert_chunks(&d, &format!("erpsync-acme-runs-{from}_{to}.xlsx"));
    let all = sheets(&d.bytes);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["summary", "runs", "run tables"]);
    let runs = sheet(&all, "runs");
    assert_eq!(runs.len(), 3);
    assert_eq!(text(&runs[1][0]), first.run_id, "oldest first");
    assert_eq!(text(&runs[1][4]), "SUCCESS");
    assert_eq!(text(&runs[2][0]), second.run_id);
    assert_eq!(text(&runs[2][4]), "PARTIAL");
    assert!(matches!(&runs[2][1], Data::DateTime(_)));
    assert_eq!(number(&runs[2][10]), 60.0, "held, summed over tables");
    let run_tables = sheet(&all, "run tables");
    for run in [&first, &second] {
        let detail = ctx
            .history
            .get_run(authed(
                GetRunRequest {
                    tenant_id: "acme".into(),
                    run_id: run.run_id.clone(),
                },
                &ctx.crm,
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        let rows: Vec<(String, f64, f64)> = run_tables[1..]
            .iter()
            .filter(|r| text(&r[0]) == run.run_id)
            .map(|r| (text(&r[3]), number(&r[4]), number(&r[8])))
            .collect();
        let want: Vec<(String, f64, f64)> = detail
            .tables
            .iter()
            .map(|t| (t.table.clone(), t.received as f64, t.held as f64))
            .collect();
        assert_eq!(rows, want, "GetRun's counts");
    }
    let summary = sheet(&all, "summary");
    assert!(summary
        .iter()
        .any(|r| matches!(&r[0], Data::String(s) if s == "Runs per day by status")));
}

async fn a_caller_that_leaves_mid_stream_does_not_stop_the_next_export(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let base = ago_today(60);
    // ~3 MB of bodies that deflate poorly: several chunks.
    for i in 0..1_000 {
        let noise: String = (0..100)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        log(
            &app,
            &entry(
                &acme,
                base + Duration::milliseconds(i),
                Some("order"),
                &noise,
            ),
        )
        .await;
    }
    let to = today();
    let mut stream = app
        .history()
        .await
        .export_history(authed(request(to, to, &[], ExportKind::Requests), &crm))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.data.len(), 1 << 20, "a full first chunk");
    drop(stream);
    let d = download(
        &app,
        &crm,
        request(to, to, &["order"], ExportKind::Requests),
    )
    .await
    .unwrap();
    assert!(d.chunk_sizes.len() > 1, "{:?}", d.chunk_sizes);
    assert_eq!(sheet(&sheets(&d.bytes), "order").len(), 1_001);
}

async fn openpyxl_reads_the_workbook_with_its_row_counts(app: TestApp) {
    let required = std::env::var("ERPSYNC_TEST_OPENPYXL").is_ok_and(|v| v == "1");
    let available = std::process::Command::new("python3")
        .args(["-c", "import openpyxl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required,
            "ERPSYNC_TEST_OPENPYXL=1 but python3 cannot import openpyxl"
        );
        eprintln!("openpyxl not installed: the openpyxl check is skipped");
        return;
    }
    let app = small_limits(app).await;
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let base = ago_today(30);
    for i in 0..5 {
        log(
            &app,
            &entry(
                &acme,
                base + Duration::seconds(i),
                Some("contact"),
                "{\"nome\":\"João\"}",
            ),
        )
        .await;
    }
    log(&app, &entry(&acme, base, None, "{}")).await;
    let to = today();
    let d = download(&app, &crm, request(to, to, &[], ExportKind::Requests))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&d.filename);
    std::fs::write(&path, &d.bytes).unwrap();
    let script = r#"
import json, sys, datetime, openpyxl
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
out = {}
for ws in wb.worksheets:
    rows = list(ws.iter_rows(values_only=True))
    out[ws.title] = len(rows)
    if ws.title == "contact (2)":
        assert isinstance(rows[1][0], datetime.datetime), rows[1][0]
        assert rows[1][8] == '{"nome":"João"}', rows[1][8]
print(json.dumps({"sheets": wb.sheetnames, "rows": out}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = &got["rows"];
    assert_eq!(got["sheets"][0], "summary");
    assert_eq!(rows["contact"], 3, "header + 2");
    assert_eq!(rows["contact (2)"], 3);
    assert_eq!(rows["contact (3)"], 2);
    assert_eq!(rows["other"], 2);
    assert_eq!(rows["company"], 1, "header only");
    assert_eq!(got["sheets"].as_array().unwrap().len(), 1 + 12 + 1 + 2);
}

/// `erpsync export` against a served binary: the file lands whole under its name (or the
/// server's name in a folder), and a refused export leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erpsync_export_writes_the_workbook_or_nothing() {
    use crate::helpers::cli::{erpsync, ok, serve_with};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let issued = ok(erpsync(
        &db,
        &["token", "issue", "--role", "crm", "--tenant", "acme"],
    ));
    let token = issued.lines().last().unwrap().to_owned();
    let erp_issued = ok(erpsync(
        &db,
        &["token", "issue", "--role", "erp", "--tenant", "acme"],
    ));
    let erp = erp_issued.lines().last().unwrap().to_owned();
    let (mut child, port) = serve_with(&db, &[]);
    let url = format!("http://127.0.0.1:{port}");
    let body = serde_json::json!({"records": [{"external_id": "C1", "fields": {"name": "Padaria Pão de Açúcar", "document": "11.222.333/0001-81"}}]});
    let (status, _) = crate::helpers::http_post(
        port,
        "/erp/v1/company",
        Some(&erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let out_dir = tempfile::tempdir().unwrap();
    let (to, from) = (today(), days_before(today(), 1));
    let file = out_dir.path().join("historico.xlsx");
    let run = |args: Vec<String>| {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            erpsync(&db, &args)
        })
    };
    let args = |from: &str, output: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "export",
            "--tenant",
            "acme",
            "--from",
            from,
            "--to",
            &to.to_string(),
            "--server",
            &url,
            "--token",
            &token,
            "-o",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.push(output.display().to_string());
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let out = run(args(&from.to_string(), &file, &["--table", "company"]))
        .await
        .unwrap();
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    let printed = ok(out);
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(printed.trim(), format!("{} ({size} bytes)", file.display()));
    // Not a terminal: the progress is plain lines on stderr.
    assert!(
        progress.contains("progress: the server is building the workbook\n")
            && progress.contains(&format!("progress: received {size} bytes\n")),
        "{progress}"
    );
    let all = sheets(&std::fs::read(&file).unwrap());
    let company = sheet(&all, "company");
    assert_eq!(company.len(), 2);
    assert!(text(&company[1][8]).contains("Padaria Pão de Açúcar"));

    // Into a folder: the server's file name.
    let printed = ok(
        run(args(&from.to_string(), out_dir.path(), &["--kind", "runs"]))
            .await
            .unwrap(),
    );
    let named = out_dir
        .path()
        .join(format!("erpsync-acme-runs-{from}_{to}.xlsx"));
    assert!(
        printed.starts_with(&named.display().to_string()),
        "{printed}"
    );
    assert!(named.exists());

    // Refused: an error naming the field, and no file.
    let refused = out_dir.path().join("refused.xlsx");
    let out = run(args("2020-01-01", &refused, &[])).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidArgument") && err.contains("from_date"),
        "{err}"
    );
    assert!(!refused.exists());
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    child.kill().unwrap();
    let _ = child.wait();
}
