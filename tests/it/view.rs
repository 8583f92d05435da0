//! The View integration type: erpsync reads the ERP's own SQL views. Sources are real
//! databases: a SQLite file (always), the local PostgreSQL (ERPSYNC_TEST_DATABASE_URL)
//! with the Northwind database loaded, and MariaDB (ERPSYNC_TEST_MYSQL_URL).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use erpsync::domain::request_log::{RequestLogEntry, Transport};
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, GetOverviewRequest, GetViewConfigRequest, ListCompaniesRequest,
    ListPendingDeletesRequest, SetViewConfigRequest, UpdateSettingsRequest, ViewMode, ViewTable,
};
use erpsync::storage::{crm, request_log, staging};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tonic::Code;

use crate::both_backends;
use crate::helpers::databases::{DropMysql, MYSQL_ENV};
use crate::helpers::northwind::{northwind, rows};
use crate::helpers::seed::cnpj;
use crate::helpers::tenants::{acme, setup, Ctx};
use crate::helpers::views::{clientes, company_view, set_view, SqliteErp};
use crate::helpers::{authed, http_post, with_database, PgDatabase, TestApp, PG_ENV};

both_backends!(
    a_full_snapshot_stages_pages_deletes_what_vanished_and_holds_an_empty_view,
    an_incremental_view_reads_only_rows_past_its_watermark,
    a_broken_source_fails_the_run_naming_view_and_column_and_leaves_staging_alone,
    the_view_configuration_is_validated_masked_and_checked,
    a_northwind_view_tenant_matches_an_api_tenant_fed_the_same_data,
    northwind_companies_and_orders_are_read_from_mariadb,
);

// ---------------------------------------------------------------------------------------
// Sources

/// The view reads logged since `since`, oldest first.
async fn view_reads(app: &TestApp, since: chrono::DateTime<Utc>) -> Vec<RequestLogEntry> {
    request_log::list(
        &app.state.db,
        &acme(),
        since,
        Utc::now() + Duration::seconds(1),
        10_000,
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|e| e.transport == Transport::View)
    .collect()
}

/// Rows the logged reads returned.
fn rows_read(entries: &[RequestLogEntry]) -> u64 {
    entries
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.response_body).unwrap();
            v["rows_read"].as_u64().unwrap_or(0)
        })
        .sum()
}

async fn crm_names(app: &TestApp) -> BTreeMap<String, String> {
    crm::companies(&app.state.db, &acme(), "", 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.external_id, c.name))
        .collect()
}

fn received(run: &pb::GetRunResponse, table: &str) -> u64 {
    run.run
        .as_ref()
        .unwrap()
        .tables
        .iter()
        .find(|t| t.table == table)
        .map_or(0, |t| t.received)
}

// ---------------------------------------------------------------------------------------
// SQLite source: full, incremental, failures, configuration

async fn a_full_snapshot_stages_pages_deletes_what_vanished_and_holds_an_empty_view(app: TestApp) {
    let mut erp = SqliteErp::new(&clientes(60)).await;
    let mut ctx = setup(app).await;
    ctx.app.grant_view_source("acme", &erp.url).await;
    // Pages of 7 over integer keys: the keyset cursor must compare them as integers.
    set_view(
        &mut ctx,
        Some(&erp.url),
        vec![company_view("v_clientes", ViewMode::Full)],
        7,
    )
    .await
    .unwrap();
    let since = Utc::now() - Duration::seconds(1);
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    assert_eq!(received(&run, "company"), 60);
    let names = crm_names(&ctx.app).await;
    assert_eq!(names.len(), 60);
    assert_eq!(names["17"], "Cliente 17 Ltda");
    let reads = view_reads(&ctx.app, since).await;
    // 9 pages (8 full, one of 4), every one logged like an ingestion request.
    assert_eq!(reads.len(), 9, "{reads:#?}");
    assert_eq!(rows_read(&reads), 60);
    assert!(reads.iter().all(|e| e.endpoint == "view:v_clientes"
        && e.table.as_deref() == Some("company")
        && e.status == "OK"));
    let first: Value = serde_json::from_str(&reads[0].response_body).unwrap();
    assert_eq!(first["accepted"], 7);
    assert_eq!(first["records"][0]["external_id"], "1");
    let second_query: Value = serde_json::from_str(&reads[1].request_body).unwrap();
    assert!(
        second_query["query"]
            .as_str()
            .unwrap()
            .contains("\"id\" > ?1"),
        "{second_query}"
    );
    assert_eq!(second_query["params"], json!([7]));
    // The Histórico export has the view reads like any request.
    let today = crate::helpers::seed::today();
    let workbook = crate::helpers::workbooks::download(
        &ctx.app,
        &ctx.crm,
        crate::helpers::workbooks::request(today, today, &["company"], pb::ExportKind::Requests),
    )
    .await
    .unwrap();
    let cells: Vec<String> = crate::helpers::workbooks::sheets(&workbook.bytes)
        .into_iter()
        .flat_map(|(_, rows)| rows.into_iter().flatten())
        .map(|d| d.to_string())
        .collect();
    assert_eq!(cells.iter().filter(|c| *c == "view:v_clientes").count(), 9);
    assert!(cells.iter().any(|c| c.contains("Cliente 17 Ltda")));

    // Two rows go away, one changes, one turns invalid: the run applies the deletions
    // (under the guard's threshold) and the change, and rejects the bad row alone.
    erp.exec("DELETE FROM clientes WHERE id IN (5, 6); UPDATE clientes SET razao = 'Renomeada SA' WHERE id = 9; \
              UPDATE clientes SET cnpj = '123' WHERE id = 10;")
        .await;
    let since = Utc::now();
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    let names = crm_names(&ctx.app).await;
    assert_eq!(names.len(), 58);
    assert!(!names.contains_key("5") && !names.contains_key("6"));
    assert_eq!(names["9"], "Renomeada SA");
    assert_eq!(
        names["10"], "Cliente 10 Ltda",
        "a rejected row keeps the staged record"
    );
    let reads = view_reads(&ctx.app, since).await;
    let rejected: u32 = reads.iter().map(|e| e.rejected).sum();
    assert_eq!(rejected, 1);
    assert!(reads
        .iter()
        .any(|e| e.response_body.contains("\"field\":\"document\"")));

    // The ERP "loses" every row: nothing leaves the CRM, the delete guard holds it all.
    erp.exec("DELETE FROM clientes").await;
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Partial,
        "{run:?}"
    );
    assert_eq!(crm_names(&ctx.app).await.len(), 58);
    let held = ctx
        .history
        .list_pending_deletes(authed(
            ListPendingDeletesRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.pending_deletes.len(), 58);
    let overview = ctx.overview().await;
    assert_eq!(overview.integration_type(), pb::IntegrationType::View);
    assert!(overview
        .open_alerts
        .iter()
        .any(|a| a.kind() == pb::AlertKind::DeletesHeld));
}

async fn an_incremental_view_reads_only_rows_past_its_watermark(app: TestApp) {
    // Ten rows, several sharing a watermark, read in pages of 2: the cursor is
    // (watermark, key), so rows tied on the watermark are neither skipped nor repeated.
    let mut erp = SqliteErp::new(&clientes(10)).await;
    erp.exec("UPDATE clientes SET alterado_em = '2026-01-02 08:00:00' WHERE id > 6")
        .await;
    let mut ctx = setup(app).await;
    let mut view = company_view("v_clientes", ViewMode::Incremental);
    view.deleted_column = "excluido".into();
    ctx.app.grant_view_source("acme", &erp.url).await;
    set_view(&mut ctx, Some(&erp.url), vec![view], 2)
        .await
        .unwrap();
    let since = Utc::now() - Duration::seconds(1);
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    assert_eq!(crm_names(&ctx.app).await.len(), 10);
    assert_eq!(rows_read(&view_reads(&ctx.app, since).await), 10);

    // Two rows change after the watermark; one is marked deleted.
    erp.exec(
        "UPDATE clientes SET razao = 'Nova Razao', alterado_em = '2026-02-01 09:00:00' WHERE id IN (2, 8); \
         UPDATE clientes SET excluido = 1, alterado_em = '2026-02-01 09:30:00' WHERE id = 4;",
    )
    .await;
    let since = Utc::now();
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    let reads = view_reads(&ctx.app, since).await;
    assert_eq!(
        rows_read(&reads),
        3,
        "only the changed rows are read: {reads:#?}"
    );
    let names = crm_names(&ctx.app).await;
    assert_eq!(
        (names["2"].as_str(), names["8"].as_str()),
        ("Nova Razao", "Nova Razao")
    );
    assert_eq!(names["3"], "Cliente 3 Ltda");
    assert!(
        !names.contains_key("4"),
        "a row flagged deleted leaves the CRM"
    );
    // The watermark is shown, and a run with nothing new reads nothing.
    let cfg = ctx
        .history
        .get_view_config(authed(
            GetViewConfigRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cfg.tables[0].watermark, "2026-02-01 09:30:00");
    let since = Utc::now();
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    assert_eq!(rows_read(&view_reads(&ctx.app, since).await), 0);
    assert_eq!(received(&run, "company"), 0);
}

async fn a_broken_source_fails_the_run_naming_view_and_column_and_leaves_staging_alone(
    app: TestApp,
) {
    let erp = SqliteErp::new(&clientes(10)).await;
    let mut ctx = setup(app).await;
    ctx.app.grant_view_source("acme", &erp.url).await;
    set_view(
        &mut ctx,
        Some(&erp.url),
        vec![company_view("v_clientes", ViewMode::Full)],
        0,
    )
    .await
    .unwrap();
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    let staged = staging::list(&ctx.app.state.db, &acme(), "company")
        .await
        .unwrap();
    assert_eq!(staged.len(), 10);

    let missing_view = company_view("v_sumiu", ViewMode::Full);
    let mut missing_column = company_view("v_clientes", ViewMode::Full);
    missing_column
        .columns
        .insert("name".into(), "razao_x".into());
    let mut wrong_type = company_view("v_clientes", ViewMode::Full);
    wrong_type
        .columns
        .insert("name".into(), "fundada_em".into());
    let secret_url = "postgres://erp:s3cretpw@127.0.0.1:1/erp";
    let gone = SqliteErp::new(&clientes(1)).await;
    let gone_url = gone.url.clone();
    ctx.app.grant_view_source("acme", secret_url).await;
    ctx.app.grant_view_source("acme", &gone_url).await;
    let cases: Vec<(Option<&str>, ViewTable, Vec<&str>)> = vec![
        (
            Some(erp.url.as_str()),
            missing_view,
            vec!["v_sumiu", "does not exist"],
        ),
        (
            Some(erp.url.as_str()),
            missing_column,
            vec!["v_clientes", "column razao_x (field name) is missing"],
        ),
        (
            Some(erp.url.as_str()),
            wrong_type,
            vec![
                "v_clientes",
                "column fundada_em (field name) is of type DATE",
            ],
        ),
        (
            Some(secret_url),
            company_view("v_clientes", ViewMode::Full),
            vec!["cannot connect to the ERP database postgres://erp:***@127.0.0.1:1/erp"],
        ),
        (
            Some(gone_url.as_str()),
            company_view("v_clientes", ViewMode::Full),
            vec!["cannot connect to the ERP database sqlite://"],
        ),
    ];
    for (url, table, wants) in cases {
        set_view(&mut ctx, url, vec![table], 0).await.unwrap();
        if url == Some(gone_url.as_str()) {
            // The ERP's file goes away after it was configured.
            std::fs::remove_file(gone_url.strip_prefix("sqlite://").unwrap()).unwrap();
        }
        let since = Utc::now();
        let run = ctx.run().await;
        let r = run.run.as_ref().unwrap();
        assert_eq!(r.status(), pb::RunStatus::Failed, "{run:?}");
        let error = r.errors.join("; ");
        for want in &wants {
            assert!(error.contains(want), "{want:?} not in {error:?}");
        }
        assert!(!error.contains("s3cretpw"), "{error}");
        // Nothing staged was touched, nothing reached the CRM.
        assert_eq!(
            staging::list(&ctx.app.state.db, &acme(), "company")
                .await
                .unwrap(),
            staged
        );
        assert_eq!(crm_names(&ctx.app).await.len(), 10);
        // The failed read is in the request log, for the Histórico export.
        let reads = view_reads(&ctx.app, since).await;
        assert_eq!(reads.len(), 1, "{reads:#?}");
        assert_eq!(reads[0].status, "FAILED_PRECONDITION");
        assert!(reads[0].error.as_deref().unwrap().contains(wants[0]));
        assert!(!reads[0].response_body.contains("s3cretpw"));
    }
    let overview = ctx.overview().await;
    assert!(overview
        .open_alerts
        .iter()
        .any(|a| a.kind() == pb::AlertKind::Failing));
    // No event of any run carries the password.
    let events = erpsync::storage::events::page(
        &ctx.app.state.db,
        &acme(),
        0,
        &erpsync::storage::events::Filter::default(),
        10_000,
    )
    .await
    .unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| !e.message.contains("s3cretpw")));
}

async fn the_view_configuration_is_validated_masked_and_checked(app: TestApp) {
    let erp = SqliteErp::new(&clientes(3)).await;
    let mut ctx = setup(app).await;
    ctx.app.grant_view_source("acme", &erp.url).await;
    let get = |ctx: &mut Ctx| {
        let mut h = ctx.history.clone();
        let crm = ctx.crm.clone();
        async move {
            h.get_view_config(authed(
                GetViewConfigRequest {
                    tenant_id: "acme".into(),
                },
                &crm,
            ))
            .await
            .unwrap()
            .into_inner()
        }
    };
    // No URL the first time, an unknown table, a required field not mapped, a bad
    // identifier: every problem named, nothing stored.
    let mut bad = company_view("v_clientes; drop", ViewMode::Incremental);
    bad.columns.remove("document");
    bad.watermark_column.clear();
    let unknown = ViewTable {
        table: "produto".into(),
        ..company_view("v", ViewMode::Full)
    };
    let err = set_view(&mut ctx, None, vec![bad, unknown], 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in [
        "url",
        "tables[0].view",
        "tables[0].columns",
        "tables[0].watermark",
        "tables[1].table",
    ] {
        assert!(
            err.message().contains(&format!("{field}:")),
            "{field} in {}",
            err.message()
        );
    }
    let cfg = get(&mut ctx).await;
    assert!(!cfg.configured);
    assert_eq!(cfg.integration_type(), pb::IntegrationType::Api);

    // A URL with a password: stored, never answered.
    let secret_url = "postgres://erp:s3cretpw@127.0.0.1:1/erp?sslmode=disable&password=s3cretpw";
    ctx.app.grant_view_source("acme", secret_url).await;
    let cfg = set_view(
        &mut ctx,
        Some(secret_url),
        vec![company_view("v", ViewMode::Full)],
        0,
    )
    .await
    .unwrap();
    assert!(cfg.configured);
    assert_eq!(
        cfg.url,
        "postgres://erp:***@127.0.0.1:1/erp?sslmode=disable&password=***"
    );
    assert_eq!((cfg.backend.as_str(), cfg.page_size), ("postgres", 1000));
    assert_eq!(cfg.integration_type(), pb::IntegrationType::View);
    assert!(!format!("{:?}", get(&mut ctx).await).contains("s3cretpw"));

    // Checked against the ERP database: a missing view is refused and nothing changes.
    let mut req = SetViewConfigRequest {
        tenant_id: "acme".into(),
        url: Some(erp.url.clone()),
        tables: vec![company_view("v_sumiu", ViewMode::Full)],
        page_size: 0,
        check: true,
        clear: false,
    };
    let err = ctx
        .history
        .set_view_config(authed(req.clone(), &ctx.crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("v_sumiu"), "{}", err.message());
    assert_eq!(get(&mut ctx).await.url, cfg.url);
    req.tables = vec![company_view("v_clientes", ViewMode::Full)];
    let checked = ctx
        .history
        .set_view_config(authed(req, &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.tables[0].view, "v_clientes");
    // Without a URL the stored one is kept.
    let kept = set_view(
        &mut ctx,
        None,
        vec![company_view("v_clientes", ViewMode::Full)],
        50,
    )
    .await
    .unwrap();
    assert_eq!((kept.url.as_str(), kept.page_size), (erp.url.as_str(), 50));
    // Cleared: an API integration again.
    let cleared = ctx
        .history
        .set_view_config(authed(
            SetViewConfigRequest {
                tenant_id: "acme".into(),
                clear: true,
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!cleared.configured);
    assert_eq!(cleared.integration_type(), pb::IntegrationType::Api);
    // Another tenant's token does not reach it.
    let other = ctx.app.create_tenant("other").await;
    let token = ctx.app.token(Role::Crm, &[&other]).await;
    let err = ctx
        .history
        .get_view_config(authed(
            GetViewConfigRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

// ---------------------------------------------------------------------------------------
// Northwind on PostgreSQL: a View tenant and an API tenant fed the same rows

/// A throw-away database on the test PostgreSQL server, dropped at the end.
struct PgSource(Option<PgDatabase>);

impl PgSource {
    fn url(&self) -> &str {
        &self.0.as_ref().expect("not dropped yet").url
    }
}

impl Drop for PgSource {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            db.drop_blocking();
        }
    }
}

/// The ERP's views over Northwind, shaped like erpsync's tables (documents come from a
/// side table: Northwind has none).
const NORTHWIND_VIEWS: &str = "
CREATE TABLE erp_document (id text PRIMARY KEY, document text NOT NULL);
CREATE VIEW v_company AS
  SELECT c.customer_id, c.company_name, d.document, c.city, c.region, c.phone,
         (SELECT o.employee_id FROM orders o WHERE o.customer_id = c.customer_id
           ORDER BY o.order_date, o.order_id LIMIT 1) AS seller_id
  FROM customers c JOIN erp_document d ON d.id = 'C' || c.customer_id;
CREATE VIEW v_contact AS
  SELECT customer_id, contact_name, customer_id AS company_id, phone FROM customers;
CREATE VIEW v_seller AS
  SELECT employee_id, first_name || ' ' || last_name AS full_name FROM employees;
CREATE VIEW v_order AS
  SELECT o.order_id, o.customer_id, o.employee_id, o.order_date,
         (SELECT SUM(CAST(d.unit_price AS numeric) * d.quantity * (1 - CAST(d.discount AS numeric)))
            FROM order_details d WHERE d.order_id = o.order_id) AS total
  FROM orders o;
CREATE VIEW v_order_item AS
  SELECT order_id || '-' || product_id AS line_id, order_id, product_id, quantity, unit_price, discount
  FROM order_details;
CREATE VIEW v_supplier AS
  SELECT s.supplier_id, s.company_name, d.document
  FROM suppliers s JOIN erp_document d ON d.id = 'S' || s.supplier_id;
";

fn map(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn northwind_tables() -> Vec<ViewTable> {
    let t = |table: &str, view: &str, key: &str, columns: &[(&str, &str)]| ViewTable {
        table: table.into(),
        view: view.into(),
        mode: ViewMode::Full as i32,
        key_column: key.into(),
        columns: map(columns),
        ..Default::default()
    };
    vec![
        t(
            "company",
            "v_company",
            "customer_id",
            &[
                ("name", "company_name"),
                ("document", "document"),
                ("city", "city"),
                ("state", "region"),
                ("phone", "phone"),
                ("seller_id", "seller_id"),
            ],
        ),
        t(
            "contact",
            "v_contact",
            "customer_id",
            &[
                ("name", "contact_name"),
                ("company_id", "company_id"),
                ("phone", "phone"),
            ],
        ),
        t(
            "seller",
            "v_seller",
            "employee_id",
            &[("name", "full_name")],
        ),
        t(
            "order",
            "v_order",
            "order_id",
            &[
                ("company_id", "customer_id"),
                ("seller_id", "employee_id"),
                ("issued_at", "order_date"),
                ("total", "total"),
            ],
        ),
        t(
            "order_item",
            "v_order_item",
            "line_id",
            &[
                ("order_id", "order_id"),
                ("product_code", "product_id"),
                ("quantity", "quantity"),
                ("unit_price", "unit_price"),
                ("discount", "discount"),
            ],
        ),
        t(
            "supplier",
            "public.v_supplier",
            "supplier_id",
            &[("name", "company_name"), ("document", "document")],
        ),
    ]
}

/// Every row of a configured view as the record an ERP would push: the same text values.
async fn as_pushed(conn: &mut sqlx::PgConnection, t: &ViewTable) -> Vec<Value> {
    let fields: Vec<(&String, &String)> = t.columns.iter().collect();
    let select: Vec<String> = std::iter::once(&t.key_column)
        .chain(fields.iter().map(|(_, c)| *c))
        .map(|c| format!("CAST(\"{c}\" AS text)"))
        .collect();
    let sql = format!("SELECT {} FROM {}", select.join(", "), t.view);
    let rows = sqlx::query(&sql).fetch_all(conn).await.unwrap();
    rows.iter()
        .map(|r| {
            use sqlx::Row;
            let mut f = serde_json::Map::new();
            for (i, (field, _)) in fields.iter().enumerate() {
                if let Some(v) = r.get::<Option<String>, _>(i + 1) {
                    f.insert((*field).clone(), Value::String(v));
                }
            }
            json!({"external_id": r.get::<String, _>(0), "fields": f})
        })
        .collect()
}

async fn sync_tenant(
    history: &mut pb::integration_history_client::IntegrationHistoryClient<
        tonic::transport::Channel,
    >,
    tenant: &str,
    token: &str,
) -> pb::Run {
    let started = history
        .trigger_sync(authed(
            pb::TriggerSyncRequest {
                tenant_id: tenant.into(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    let run_id = started.run.unwrap().run_id;
    for _ in 0..2400 {
        let run = history
            .get_run(authed(
                pb::GetRunRequest {
                    tenant_id: tenant.into(),
                    run_id: run_id.clone(),
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if run.status() != pb::RunStatus::Running {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("run {run_id} of {tenant} did not finish");
}

async fn companies_of(
    history: &mut pb::integration_history_client::IntegrationHistoryClient<
        tonic::transport::Channel,
    >,
    tenant: &str,
    token: &str,
) -> Vec<pb::Company> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = history
            .list_companies(authed(
                ListCompaniesRequest {
                    tenant_id: tenant.into(),
                    page_size: 50,
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

async fn abc_by_order_totals(
    history: &mut pb::integration_history_client::IntegrationHistoryClient<
        tonic::transport::Channel,
    >,
    tenant: &str,
    token: &str,
) {
    history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: tenant.into(),
                abc_basis: Some("order".into()),
                abc_window_months: Some(1200),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap();
}

fn class_counts(companies: &[pb::Company]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in companies {
        *out.entry(format!("{:?}", c.abc_class())).or_default() += 1;
    }
    out
}

async fn a_northwind_view_tenant_matches_an_api_tenant_fed_the_same_data(app: TestApp) {
    let Some(admin) = std::env::var(PG_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!("{PG_ENV} unset: the PostgreSQL View source is not tested");
        return;
    };
    let source = PgSource(Some(PgDatabase::create(&admin).await));
    let mut conn = sqlx::postgres::PgConnection::connect(source.url())
        .await
        .unwrap();
    sqlx::raw_sql(northwind()).execute(&mut conn).await.unwrap();
    sqlx::raw_sql(NORTHWIND_VIEWS)
        .execute(&mut conn)
        .await
        .unwrap();
    let customers: Vec<(String,)> =
        sqlx::query_as("SELECT customer_id FROM customers ORDER BY customer_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (n, (id,)) in customers.iter().enumerate() {
        sqlx::query("INSERT INTO erp_document VALUES ($1, $2)")
            .bind(format!("C{id}"))
            .bind(cnpj(n as u64 + 1))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let suppliers: Vec<(i16,)> =
        sqlx::query_as("SELECT supplier_id FROM suppliers ORDER BY supplier_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (n, (id,)) in suppliers.iter().enumerate() {
        sqlx::query("INSERT INTO erp_document VALUES ($1, $2)")
            .bind(format!("S{id}"))
            .bind(cnpj(900 + n as u64))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    let view_id = app.create_tenant("northwind_view").await;
    let api_id = app.create_tenant("northwind_api").await;
    let crm = app.token(Role::Crm, &[&view_id, &api_id]).await;
    let erp = app.token(Role::Erp, &[&api_id]).await;
    let mut history = app.history().await;
    let tables = northwind_tables();
    app.grant_view_source("northwind_view", source.url()).await;
    let cfg = history
        .set_view_config(authed(
            SetViewConfigRequest {
                tenant_id: "northwind_view".into(),
                url: Some(source.url().to_owned()),
                tables: tables.clone(),
                page_size: 500,
                check: true,
                clear: false,
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cfg.tables.len(), 6);
    // The API tenant gets the very rows the views hold, pushed over HTTP.
    for t in &tables {
        let records = as_pushed(&mut conn, t).await;
        for batch in records.chunks(1000) {
            let body = json!({ "records": batch }).to_string();
            let (status, text) = http_post(
                app.port,
                &format!("/erp/v1/{}", t.table),
                Some(&erp),
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{}: {text}", t.table);
            let reply: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(reply["rejected"], json!([]), "{}: {text}", t.table);
        }
    }
    for tenant in ["northwind_view", "northwind_api"] {
        abc_by_order_totals(&mut history, tenant, &crm).await;
    }
    let view_run = sync_tenant(&mut history, "northwind_view", &crm).await;
    let api_run = sync_tenant(&mut history, "northwind_api", &crm).await;
    assert_eq!(view_run.status(), pb::RunStatus::Success, "{view_run:?}");
    assert_eq!(api_run.status(), pb::RunStatus::Success, "{api_run:?}");
    let counts = |run: &pb::Run| -> BTreeMap<String, (u64, u64)> {
        run.tables
            .iter()
            .map(|t| (t.table.clone(), (t.received, t.staged_count)))
            .collect()
    };
    assert_eq!(counts(&view_run), counts(&api_run));
    assert_eq!(counts(&view_run)["company"], (91, 91));
    assert_eq!(counts(&view_run)["order_item"], (2155, 2155));

    // The same CRM: every company with the same name, document, class, lifecycle,
    // portfolio and revenue.
    let view_companies = companies_of(&mut history, "northwind_view", &crm).await;
    let api_companies = companies_of(&mut history, "northwind_api", &crm).await;
    assert_eq!(view_companies.len(), 91);
    assert_eq!(view_companies, api_companies);
    assert_eq!(
        class_counts(&view_companies),
        BTreeMap::from([
            ("A".to_owned(), 34),
            ("B".to_owned(), 27),
            ("C".to_owned(), 28),
            ("Unspecified".to_owned(), 2)
        ])
    );
    assert_eq!(
        crm::counts(&app.state.db, &view_id).await.unwrap(),
        crm::counts(&app.state.db, &api_id).await.unwrap()
    );

    // The two overviews side by side (shown with --no-capture).
    let mut overviews = Vec::new();
    for tenant in ["northwind_api", "northwind_view"] {
        overviews.push(
            history
                .get_overview(authed(
                    GetOverviewRequest {
                        tenant_id: tenant.into(),
                    },
                    &crm,
                ))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    println!("{}", side_by_side(&overviews[0], &overviews[1]));
    assert_eq!(overviews[1].integration_type(), pb::IntegrationType::View);
    assert_eq!(overviews[0].health(), overviews[1].health());
    drop(conn);
}

/// Two overviews as a text table: field, API tenant, View tenant.
fn side_by_side(api: &pb::Overview, view: &pb::Overview) -> String {
    let line = |o: &pb::Overview| -> Vec<(String, String)> {
        let mut v = vec![
            ("tenant".to_owned(), o.tenant_id.clone()),
            (
                "integration_type".into(),
                format!("{:?}", o.integration_type()),
            ),
            ("health".into(), format!("{:?}", o.health())),
            ("open_alerts".into(), o.open_alerts.len().to_string()),
            (
                "last run".into(),
                o.recent_runs
                    .first()
                    .map(|r| format!("{:?}", r.status()))
                    .unwrap_or_default(),
            ),
        ];
        for t in &o.tables {
            v.push((
                format!("{} erp/staged/crm", t.table),
                format!(
                    "{}/{}/{}",
                    t.erp_count.map_or("-".into(), |n| n.to_string()),
                    t.staged_count,
                    t.crm_count
                ),
            ));
        }
        v
    };
    let (a, b) = (line(api), line(view));
    let mut out = format!("{:<28} {:<22} {:<22}\n", "overview", "API", "VIEW");
    for ((k, x), (_, y)) in a.iter().zip(&b) {
        out.push_str(&format!("{k:<28} {x:<22} {y:<22}\n"));
    }
    out
}

// ---------------------------------------------------------------------------------------
// MariaDB

async fn northwind_companies_and_orders_are_read_from_mariadb(app: TestApp) {
    let Some(admin) = std::env::var(MYSQL_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!("{MYSQL_ENV} unset: the MariaDB View source is not tested");
        return;
    };
    let name = format!("erp_view_{}", uuid::Uuid::new_v4().simple());
    let mut root = sqlx::mysql::MySqlConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{MYSQL_ENV} is set but MariaDB is unreachable: {e}"));
    root.execute(format!("CREATE DATABASE `{name}`").as_str())
        .await
        .unwrap();
    let _drop = DropMysql {
        admin: admin.clone(),
        name: name.clone(),
    };
    let url = with_database(&admin, &name);
    let mut conn = sqlx::mysql::MySqlConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE customers (customer_id VARCHAR(5) PRIMARY KEY, company_name VARCHAR(40) NOT NULL, \
           cnpj BIGINT NOT NULL, city VARCHAR(15)); \
         CREATE TABLE orders (order_id INT PRIMARY KEY, customer_id VARCHAR(5), employee_id INT, \
           order_date DATETIME, total DECIMAL(14,4), changed_at TIMESTAMP NULL); \
         CREATE VIEW v_company AS SELECT customer_id, company_name, cnpj, city FROM customers; \
         CREATE VIEW v_order AS SELECT order_id, customer_id, employee_id, order_date, total, changed_at FROM orders;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let sql = northwind();
    for (n, c) in rows(sql, "customers").iter().enumerate() {
        // Documents kept as numbers lose their leading zeros; erpsync pads them back.
        let doc: u64 = cnpj(n as u64 + 1).parse().unwrap();
        sqlx::query("INSERT INTO customers VALUES (?, ?, ?, ?)")
            .bind(c[0].clone())
            .bind(c[1].clone())
            .bind(doc)
            .bind(c[5].clone())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let mut totals: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
    for d in rows(sql, "order_details") {
        let [price, qty, discount] = [2, 3, 4].map(|i| {
            d[i].as_deref()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        });
        *totals.entry(d[0].clone().unwrap()).or_default() +=
            price * qty * (rust_decimal::Decimal::ONE - discount);
    }
    for o in rows(sql, "orders") {
        let id = o[0].clone().unwrap();
        sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?, ?, '2026-03-04 05:06:07')")
            .bind(id.parse::<i32>().unwrap())
            .bind(o[1].clone())
            .bind(o[2].as_deref().map(|e| e.parse::<i32>().unwrap()))
            .bind(format!("{} 00:00:00", o[3].as_deref().unwrap()))
            .bind(totals[&id].to_string())
            .execute(&mut conn)
            .await
            .unwrap();
    }

    let tenant = app.create_tenant("acme").await;
    let crm_token = app.token(Role::Crm, &[&tenant]).await;
    app.grant_view_source("acme", &url).await;
    let mut history = app.history().await;
    let company = ViewTable {
        table: "company".into(),
        view: "v_company".into(),
        key_column: "customer_id".into(),
        columns: map(&[
            ("name", "company_name"),
            ("document", "cnpj"),
            ("city", "city"),
        ]),
        ..Default::default()
    };
    let order = ViewTable {
        table: "order".into(),
        view: "v_order".into(),
        mode: ViewMode::Incremental as i32,
        key_column: "order_id".into(),
        columns: map(&[
            ("company_id", "customer_id"),
            ("seller_id", "employee_id"),
            ("issued_at", "order_date"),
            ("total", "total"),
        ]),
        watermark_column: "changed_at".into(),
        ..Default::default()
    };
    history
        .set_view_config(authed(
            SetViewConfigRequest {
                tenant_id: "acme".into(),
                url: Some(url.replacen("mysql://", "mariadb://", 1)),
                tables: vec![company, order],
                page_size: 200,
                check: true,
                clear: false,
            },
            &crm_token,
        ))
        .await
        .unwrap();
    abc_by_order_totals(&mut history, "acme", &crm_token).await;
    let run = sync_tenant(&mut history, "acme", &crm_token).await;
    assert_eq!(run.status(), pb::RunStatus::Success, "{run:?}");
    let received: BTreeMap<&str, u64> = run
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.received))
        .collect();
    assert_eq!((received["company"], received["order"]), (91, 830));
    let companies = companies_of(&mut history, "acme", &crm_token).await;
    assert_eq!(companies.len(), 91);
    let alfki = companies.iter().find(|c| c.external_id == "ALFKI").unwrap();
    assert_eq!(
        (alfki.name.as_str(), alfki.document.as_str()),
        ("Alfreds Futterkiste", cnpj(1).as_str())
    );
    assert_eq!(
        class_counts(&companies),
        BTreeMap::from([
            ("A".to_owned(), 34),
            ("B".to_owned(), 27),
            ("C".to_owned(), 28),
            ("Unspecified".to_owned(), 2)
        ])
    );
    // MySQL TIMESTAMPs are instants: the watermark is read in UTC.
    let staged = staging::list(&app.state.db, &tenant, "order")
        .await
        .unwrap();
    assert_eq!(
        staged[0].updated_at.unwrap().to_rfc3339(),
        "2026-03-04T05:06:07+00:00"
    );
    // One order changes: the next run reads it alone.
    sqlx::query("UPDATE orders SET total = total + 1, changed_at = '2026-03-05 00:00:00' WHERE order_id = 10250")
        .execute(&mut conn)
        .await
        .unwrap();
    let run = sync_tenant(&mut history, "acme", &crm_token).await;
    assert_eq!(run.status(), pb::RunStatus::Success, "{run:?}");
    let received: BTreeMap<&str, u64> = run
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.received))
        .collect();
    assert_eq!(received.get("order"), Some(&1));
    let _ = conn.close().await;
    let _ = root.close().await;
}
