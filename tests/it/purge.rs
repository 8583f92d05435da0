//! Admin.DeleteTenant and Admin.ExportTenant: every row of a tenant in every table goes
//! (checked against the database's own catalog), nothing of another tenant does, runs
//! and pushes racing the delete leave nothing behind, the tenant's tokens stop at once;
//! the export holds the tenant's rows and no secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use erpsync::domain::run::{RunStatus, RunSummary, RunTrigger};
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::domain::view::{Cursor, Param, ViewConfig};
use erpsync::domain::view_source::Naming;
use erpsync::grpc::pb::{
    self, admin_client::AdminClient, DeleteTenantRequest, ExportTenantRequest, GetOverviewRequest,
    GetRunRequest, PushRequest, Record, ReportCountsRequest, TriggerSyncRequest,
    UpdateSettingsRequest,
};
use erpsync::storage::{lease, purge, runs, views};
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;

use crate::abc::{days_ago, invoice};
use crate::both_backends;
use crate::helpers::{authed, spawn_app_full, Backend, Gate, GatedCrm, TestApp};
use crate::ingest::{record, valid_fields};

both_backends!(
    deleting_a_tenant_removes_every_row_of_it_and_only_of_it,
    deleting_an_unknown_tenant_changes_nothing_and_a_malformed_id_is_refused,
    a_running_run_refuses_the_delete_unless_forced,
    only_an_admin_token_deletes_or_exports,
    pushes_racing_the_delete_leave_nothing_behind,
    the_export_holds_the_tenants_rows_and_no_secret,
    the_cli_exports_and_deletes_a_tenant_on_the_database,
    the_cli_exports_and_deletes_a_tenant_through_admin_with_server,
);

/// A client of Admin.
async fn admin(app: &TestApp) -> AdminClient<Channel> {
    let channel = Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .expect("connects to the test server");
    AdminClient::new(channel)
}

/// A tenant of the test with its tokens.
struct Tenant {
    id: TenantId,
    crm: String,
    erp: String,
}

async fn tenant(app: &TestApp, id: &str) -> Tenant {
    let id = app.create_tenant(id).await;
    Tenant {
        crm: app.token(Role::Crm, &[&id]).await,
        erp: app.token(Role::Erp, &[&id]).await,
        id,
    }
}

async fn push(
    app: &TestApp,
    t: &Tenant,
    table: &str,
    records: Vec<Record>,
) -> Result<(), tonic::Status> {
    let reply = app
        .ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: t.id.to_string(),
                table: table.into(),
                records,
            },
            &t.erp,
        ))
        .await?
        .into_inner();
    assert!(reply.rejected.is_empty(), "{:?}", reply.rejected);
    Ok(())
}

/// Triggers a run of `t` and waits for its end (bounded); its id.
async fn run(app: &TestApp, t: &Tenant) -> String {
    let mut history = app.history().await;
    let started = history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: t.id.to_string(),
            },
            &t.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let run_id = started.run.unwrap().run_id;
    for _ in 0..2400 {
        let got = history
            .get_run(authed(
                GetRunRequest {
                    tenant_id: t.id.to_string(),
                    run_id: run_id.clone(),
                },
                &t.crm,
            ))
            .await
            .unwrap()
            .into_inner();
        if got.run.unwrap().status() != pb::RunStatus::Running {
            return run_id;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run_id} did not finish in 60 s");
}

fn company(id: &str) -> Record {
    record(
        id,
        &json!({"name": format!("Empresa {id}"), "document": "11.222.333/0001-81", "seller_id": "s1"}),
    )
}

fn tombstone(id: &str) -> Record {
    Record {
        deleted: true,
        ..company(id)
    }
}

/// Fills every table with rows of `t`: three runs with ABC data (a held classification,
/// a held deletion, an alert), CRM rows, the request log and usage, ERP counts, a View
/// configuration with a watermark and a granted source, a schedule claim and a lease.
async fn populate(app: &TestApp, t: &Tenant, view_file: &std::path::Path) {
    let db = &app.state.db;
    let mut contact = valid_fields("contact");
    contact["company_id"] = json!("c00");
    push(
        app,
        t,
        "company",
        (0..10).map(|i| company(&format!("c{i:02}"))).collect(),
    )
    .await
    .unwrap();
    push(app, t, "contact", vec![record("p1", &contact)])
        .await
        .unwrap();
    let invoices = (0..10)
        .map(|i| {
            let (id, c, total) = (format!("i{i:02}"), format!("c{i:02}"), 100 - 10 * i);
            invoice(&id, &c, &days_ago(3), &total.to_string())
        })
        .collect();
    push(app, t, "invoice", invoices).await.unwrap();
    app.ingest()
        .await
        .report_counts(authed(
            ReportCountsRequest {
                tenant_id: t.id.to_string(),
                counts: [("company".to_owned(), 10)].into(),
            },
            &t.erp,
        ))
        .await
        .unwrap();
    run(app, t).await;

    // A second run changes classes (the shift guard off: applied, in the history); a
    // third holds a deletion (guard at 1 %, 1 row) and an ABC shift the other way.
    settings(
        app,
        t,
        UpdateSettingsRequest {
            abc_shift_guard: Some(false),
            ..Default::default()
        },
    )
    .await;
    let flip = |tag: &str, range: std::ops::Range<i32>, total: &str| -> Vec<Record> {
        range
            .map(|i| {
                invoice(
                    &format!("{tag}{i:02}"),
                    &format!("c{i:02}"),
                    &days_ago(1),
                    total,
                )
            })
            .collect()
    };
    push(app, t, "invoice", flip("f", 5..10, "1000"))
        .await
        .unwrap();
    run(app, t).await;
    settings(
        app,
        t,
        UpdateSettingsRequest {
            abc_shift_guard: Some(true),
            delete_guard_percent: Some(1.0),
            delete_guard_min_rows: Some(1),
            ..Default::default()
        },
    )
    .await;
    push(app, t, "company", vec![tombstone("c01")])
        .await
        .unwrap();
    push(app, t, "invoice", flip("g", 0..5, "5000"))
        .await
        .unwrap();
    run(app, t).await;

    std::fs::File::create(view_file).unwrap();
    let source = format!("sqlite://{}", view_file.display());
    app.grant_view_source(t.id.as_str(), &source).await;
    let cfg = ViewConfig {
        url: format!("postgres://reader:view-password-{}@erp-db/erp", t.id),
        page_size: 1000,
        tables: Vec::new(),
    };
    let key = erpsync::domain::secret::SecretKey::generate();
    views::set(db, &t.id, &cfg, Naming::Operator, Some(&key), Utc::now())
        .await
        .unwrap();
    let at = Cursor {
        watermark: Some("2025-01-01".into()),
        key: Param::Text("k1".into()),
    };
    views::save_watermark(db, &t.id, "company", "fp", &at, Utc::now())
        .await
        .unwrap();
    let root = app.token(Role::Admin, &[]).await;
    admin(app)
        .await
        .set_tenant_sink(authed(
            pb::SetTenantSinkRequest {
                tenant_id: t.id.to_string(),
                address: "grpcs://crm.example:443".into(),
                secret: format!("sink-secret-{}", t.id),
                clear: false,
            },
            &root,
        ))
        .await
        .unwrap();
    assert!(lease::claim_slot(db, &t.id, Utc::now()).await.unwrap());
    let ttl = chrono::Duration::hours(1);
    lease::acquire(db, &t.id, "elsewhere", "no-such-run", ttl, Utc::now())
        .await
        .unwrap()
        .unwrap();
}

async fn settings(app: &TestApp, t: &Tenant, req: UpdateSettingsRequest) {
    app.history()
        .await
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: t.id.to_string(),
                ..req
            },
            &t.crm,
        ))
        .await
        .unwrap();
}

/// The database's own catalog, read directly.
enum Catalog {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// How a table's rows are counted for a tenant: by its own column, or by run id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Column(String),
    Run,
}

impl Catalog {
    async fn open(app: &TestApp) -> Self {
        match app.backend {
            Backend::Sqlite => {
                Self::Sqlite(sqlx::SqlitePool::connect(app.database_url()).await.unwrap())
            }
            Backend::Postgres => {
                Self::Postgres(sqlx::PgPool::connect(app.database_url()).await.unwrap())
            }
        }
    }

    /// Every table with its columns.
    async fn columns(&self) -> BTreeMap<String, BTreeSet<String>> {
        let rows: Vec<(String, String)> = match self {
            Self::Sqlite(pool) => sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table'",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
            // A partition's rows are its parent's (request_log's days): the parent only.
            Self::Postgres(pool) => sqlx::query_as(
                "SELECT CAST(c.table_name AS TEXT), CAST(c.column_name AS TEXT) \
                 FROM information_schema.columns c \
                 JOIN pg_class t ON t.relname = c.table_name \
                 AND t.relnamespace = CAST(current_schema() AS regnamespace) \
                 WHERE c.table_schema = current_schema() AND NOT t.relispartition",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        };
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (table, column) in rows {
            out.entry(table).or_default().insert(column);
        }
        out
    }

    /// Every table holding tenants' rows, and how they reach their tenant: a
    /// `tenant_id` column (`tenant`: its `id`), or else a `run_id`.
    async fn tenant_tables(&self) -> BTreeMap<String, Key> {
        self.columns()
            .await
            .into_iter()
            .filter_map(|(table, columns)| {
                let key = if table == "tenant" {
                    Key::Column("id".into())
                } else if columns.contains("tenant_id") {
                    Key::Column("tenant_id".into())
                } else if columns.contains("run_id") {
                    Key::Run
                } else {
                    return None;
                };
                Some((table, key))
            })
            .collect()
    }

    async fn count(&self, sql: &str, value: &str) -> i64 {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).bind(value).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).bind(value).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn ids(&self, sql: &str, value: &str) -> Vec<String> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).bind(value).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).bind(value).fetch_all(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The tenant's rows in every tenant table (by run id where the table has no tenant
    /// column: `runs` are the tenant's run ids, read before any delete).
    async fn counts(&self, tenant: &str, runs: &[String]) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for (table, key) in self.tenant_tables().await {
            let n = match key {
                Key::Column(c) => {
                    self.count(
                        &format!("SELECT COUNT(*) FROM \"{table}\" WHERE \"{c}\" = $1"),
                        tenant,
                    )
                    .await
                }
                Key::Run => {
                    let mut n = 0;
                    for run in runs {
                        n += self
                            .count(
                                &format!("SELECT COUNT(*) FROM \"{table}\" WHERE run_id = $1"),
                                run,
                            )
                            .await;
                    }
                    n
                }
            };
            out.insert(table, n);
        }
        out
    }

    async fn runs(&self, tenant: &str) -> Vec<String> {
        self.ids("SELECT id FROM sync_run WHERE tenant_id = $1", tenant)
            .await
    }

    async fn token_exists(&self, secret: &str) -> bool {
        let id = token_id(secret);
        self.count("SELECT COUNT(*) FROM api_token WHERE id = $1", &id)
            .await
            == 1
    }
}

/// The token id a secret carries (`esk_<id>_…`, see domain::token).
fn token_id(secret: &str) -> String {
    match erpsync::domain::token::presented(secret) {
        Some(erpsync::domain::token::Presented::Salted { id, .. }) => id,
        other => panic!("not a salted token: {other:?}"),
    }
}

async fn delete(
    app: &TestApp,
    token: &str,
    tenant: &str,
    force: bool,
) -> Result<pb::DeleteTenantResponse, tonic::Status> {
    admin(app)
        .await
        .delete_tenant(authed(
            DeleteTenantRequest {
                tenant_id: tenant.into(),
                force,
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn export(app: &TestApp, token: &str, tenant: &str) -> Result<String, tonic::Status> {
    let mut stream = admin(app)
        .await
        .export_tenant(authed(
            ExportTenantRequest {
                tenant_id: tenant.into(),
            },
            token,
        ))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        assert!(chunk.ndjson.ends_with(b"\n"), "a chunk holds whole lines");
        out.extend_from_slice(&chunk.ndjson);
    }
    Ok(String::from_utf8(out).unwrap())
}

async fn overview_code(app: &TestApp, t: &Tenant, token: &str) -> Code {
    match app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: t.id.to_string(),
            },
            token,
        ))
        .await
    {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

async fn deleting_a_tenant_removes_every_row_of_it_and_only_of_it(app: TestApp) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let (a, b) = (tenant(&app, "gone").await, tenant(&app, "stays").await);
    for (t, file) in [(&a, "a.db"), (&b, "b.db")] {
        populate(&app, t, &dir.path().join(file)).await;
    }
    let shared = app.token(Role::Crm, &[&a.id, &b.id]).await;
    let all = app.token(Role::Crm, &[]).await;
    let root = app.token(Role::Admin, &[]).await;
    let catalog = Catalog::open(&app).await;

    // The list the delete and the export share covers every table of the catalog that
    // holds tenants' rows.
    let tables = catalog.tenant_tables().await;
    let listed: BTreeSet<&str> = purge::TABLES.iter().map(|p| p.name()).collect();
    for table in tables.keys() {
        assert!(
            listed.contains(table.as_str()),
            "{table} is not in storage::purge::TABLES"
        );
    }

    let (runs_a, runs_b) = (catalog.runs("gone").await, catalog.runs("stays").await);
    assert_eq!((runs_a.len(), runs_b.len()), (3, 3));
    let before_a = catalog.counts("gone", &runs_a).await;
    let before_b = catalog.counts("stays", &runs_b).await;
    for (table, n) in before_a.iter().chain(&before_b) {
        assert!(*n > 0, "the test leaves {table} empty for a tenant");
    }

    let done = delete(&app, &root, "gone", false).await.unwrap();
    assert!(done.deleted);
    let api_token_rows = 2; // its own crm and erp tokens
    let expected: i64 = before_a.values().sum::<i64>() + api_token_rows;
    assert_eq!(done.rows_deleted, expected as u64, "{before_a:?}");

    let after_a = catalog.counts("gone", &runs_a).await;
    assert!(
        after_a.values().all(|n| *n == 0),
        "left of the deleted tenant: {after_a:?}"
    );
    assert_eq!(catalog.counts("stays", &runs_b).await, before_b);

    // Its tokens are gone; the shared crm token lost only this tenant; all-tenant and
    // admin tokens stay.
    assert!(!catalog.token_exists(&a.crm).await && !catalog.token_exists(&a.erp).await);
    for token in [&shared, &all, &root, &b.crm, &b.erp] {
        assert!(catalog.token_exists(token).await);
    }
    assert_eq!(overview_code(&app, &a, &a.crm).await, Code::Unauthenticated);
    let pushed = push(&app, &a, "company", vec![company("x")])
        .await
        .unwrap_err();
    assert_eq!(pushed.code(), Code::Unauthenticated);
    assert_eq!(overview_code(&app, &b, &shared).await, Code::Ok);
    assert_eq!(
        overview_code(&app, &a, &shared).await,
        Code::PermissionDenied
    );
    assert_eq!(overview_code(&app, &a, &all).await, Code::NotFound);
    assert_eq!(overview_code(&app, &b, &b.crm).await, Code::Ok);

    // Again: nothing to do.
    let again = delete(&app, &root, "gone", false).await.unwrap();
    assert_eq!((again.deleted, again.rows_deleted), (false, 0));
}

async fn deleting_an_unknown_tenant_changes_nothing_and_a_malformed_id_is_refused(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let t = tenant(&app, "kept").await;
    let done = delete(&app, &root, "never-was", false).await.unwrap();
    assert_eq!((done.deleted, done.rows_deleted), (false, 0));
    for bad in ["", "Não Válido", "../x"] {
        let err = delete(&app, &root, bad, true).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        let err = export(&app, &root, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    let err = export(&app, &root, "never-was").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(overview_code(&app, &t, &t.crm).await, Code::Ok);
}

async fn only_an_admin_token_deletes_or_exports(app: TestApp) {
    let t = tenant(&app, "acme").await;
    let all = app.token(Role::Crm, &[]).await;
    for token in [&t.crm, &t.erp, &all] {
        let err = delete(&app, token, "acme", true).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let err = export(&app, token, "acme").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = delete(&app, "esk_not_a_token", "acme", true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(overview_code(&app, &t, &t.crm).await, Code::Ok);
}

/// A run RUNNING elsewhere (another replica's): its row and lease, as a start writes them.
async fn running_elsewhere(app: &TestApp, t: &Tenant) -> String {
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger: RunTrigger::Manual,
        started_at: Utc::now(),
        finished_at: None,
        error: None,
    };
    let ttl = chrono::Duration::hours(1);
    runs::start(&app.state.db, &t.id, "elsewhere", &run, ttl, Utc::now())
        .await
        .unwrap()
        .unwrap();
    run.id
}

async fn a_running_run_refuses_the_delete_unless_forced(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let companies = Gate::default();
    let gate = companies.clone();
    let app = spawn_app_full(
        backend,
        |_| {},
        move |db| {
            Arc::new(GatedCrm {
                inner: erpsync::worker::sink::EmbeddedSink::new(db),
                companies: gate,
                contacts: Gate::default(),
            })
        },
    )
    .await
    .unwrap();
    let root = app.token(Role::Admin, &[]).await;
    let catalog = Catalog::open(&app).await;

    // A run of another replica, RUNNING: refused, naming it; forced, gone.
    let other = tenant(&app, "other").await;
    let run_id = running_elsewhere(&app, &other).await;
    let err = delete(&app, &root, "other", false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&run_id), "{}", err.message());
    assert!(err.message().contains("force"), "{}", err.message());
    assert_eq!(
        catalog.counts("other", std::slice::from_ref(&run_id)).await["sync_run"],
        1
    );
    assert!(delete(&app, &root, "other", true).await.unwrap().deleted);
    let left = catalog.counts("other", &[run_id]).await;
    assert!(left.values().all(|n| *n == 0), "{left:?}");

    // A run of this server, held in its push: forced, it is cut short and what it
    // writes afterwards leaves nothing.
    let t = tenant(&app, "acme").await;
    push(
        &app,
        &t,
        "company",
        (0..5).map(|i| company(&format!("c{i}"))).collect(),
    )
    .await
    .unwrap();
    push(
        &app,
        &t,
        "invoice",
        vec![invoice("i1", "c1", &days_ago(2), "10")],
    )
    .await
    .unwrap();
    let started = app
        .history()
        .await
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &t.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let run_id = started.run.unwrap().run_id;
    companies.reached.notified().await;
    let err = delete(&app, &root, "acme", false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&run_id), "{}", err.message());
    let done = delete(&app, &root, "acme", true).await.unwrap();
    assert!(done.deleted && done.rows_deleted > 0);
    companies.open.notify_one();
    assert_eq!(
        app.state.worker.runs().stop(Duration::from_secs(30)).await,
        0,
        "the run ends"
    );
    let left = catalog.counts("acme", &[run_id]).await;
    assert!(
        left.values().all(|n| *n == 0),
        "the cut-short run left {left:?}"
    );
}

async fn pushes_racing_the_delete_leave_nothing_behind(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let t = tenant(&app, "racy").await;
    let app = Arc::new(app);
    let t = Arc::new(t);
    let pushers: Vec<_> = (0..4)
        .map(|n| {
            let (app, t) = (app.clone(), t.clone());
            tokio::spawn(async move {
                let mut refused = None;
                for round in 0..40 {
                    let records = (0..20)
                        .map(|i| invoice(&format!("p{n}-{round}-{i}"), "c1", &days_ago(1), "10"))
                        .chain([company(&format!("c{n}-{round}"))])
                        .collect::<Vec<_>>();
                    let (table, records) = if round % 2 == 0 {
                        ("invoice", records[..20].to_vec())
                    } else {
                        ("company", records[20..].to_vec())
                    };
                    if let Err(s) = push(&app, &t, table, records).await {
                        refused = Some(s.code());
                        break;
                    }
                }
                refused
            })
        })
        .collect();
    // Some pushes land first.
    let catalog = Catalog::open(&app).await;
    for _ in 0..400 {
        if catalog
            .count(
                "SELECT COUNT(*) FROM staged_record WHERE tenant_id = $1",
                "racy",
            )
            .await
            > 20
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let runner = {
        let (app, t) = (app.clone(), t.clone());
        tokio::spawn(async move {
            app.history()
                .await
                .trigger_sync(authed(
                    TriggerSyncRequest {
                        tenant_id: t.id.to_string(),
                    },
                    &t.crm,
                ))
                .await
        })
    };
    let done = delete(&app, &root, "racy", true).await.unwrap();
    assert!(done.deleted);
    for p in pushers {
        let code = p.await.unwrap();
        // A push after the delete: its token is gone; one under way: its tenant is.
        assert!(
            matches!(
                code,
                None | Some(Code::Unauthenticated) | Some(Code::NotFound)
            ),
            "{code:?}"
        );
    }
    let _ = runner.await.unwrap();
    assert_eq!(
        app.state.worker.runs().stop(Duration::from_secs(30)).await,
        0
    );
    let runs = catalog.runs("racy").await;
    assert!(runs.is_empty(), "{runs:?}");
    let left = catalog.counts("racy", &[]).await;
    assert!(left.values().all(|n| *n == 0), "left behind: {left:?}");
}

/// The export's lines, parsed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn the_export_holds_the_tenants_rows_and_no_secret(app: TestApp) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let (a, b) = (tenant(&app, "exported").await, tenant(&app, "other").await);
    for (t, file) in [(&a, "a.db"), (&b, "b.db")] {
        populate(&app, t, &dir.path().join(file)).await;
    }
    let root = app.token(Role::Admin, &[]).await;
    let text = export(&app, &root, "exported").await.unwrap();
    let rows = lines(&text);
    assert_eq!(rows[0]["table"], "tenant");
    assert_eq!(rows[0]["row"]["id"], "exported");
    let of = |table: &str| -> Vec<&Value> {
        rows.iter()
            .filter(|r| r["table"] == table)
            .map(|r| &r["row"])
            .collect()
    };
    assert_eq!(of("tenant").len(), 1);
    assert!(
        of("staged_record").len() >= 21,
        "{}",
        of("staged_record").len()
    );
    assert_eq!(of("sync_run").len(), 3);
    assert!(!of("run_table").is_empty() && !of("run_stage").is_empty());
    assert!(!of("sync_event").is_empty());
    assert!(of("company_category").len() >= 10);
    assert!(!of("category_change").is_empty() && !of("abc_held").is_empty());
    assert!(!of("pending_delete").is_empty() && !of("alert").is_empty());
    assert_eq!(of("api_token").len(), 2);
    // Request bodies decoded: the pushed records are there as JSON.
    let logged = of("request_log");
    assert!(logged.len() >= 5);
    assert!(
        logged
            .iter()
            .any(|r| r["request_body"].to_string().contains("Empresa c03")),
        "{:?}",
        logged[0]
    );
    assert!(logged.iter().all(|r| r.get("request_body_lz4").is_none()));
    // Nothing of the other tenant: every row with a tenant names this one, every run
    // row is of its runs.
    let runs: BTreeSet<&str> = of("sync_run")
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for line in &rows {
        let row = &line["row"];
        if let Some(tenant) = row.get("tenant_id") {
            assert_eq!(tenant, "exported", "{line}");
        }
        if line["table"] == "run_table" || line["table"] == "run_stage" {
            assert!(runs.contains(row["run_id"].as_str().unwrap()), "{line}");
        }
    }
    assert!(!text.contains("\"other\""), "the other tenant's rows leak");
    // No secret: no token secret, hash or salt, no View URL (plain or sealed).
    let catalog = Catalog::open(&app).await;
    for token in [&a.crm, &a.erp] {
        assert!(!text.contains(token.as_str()));
        let id = token_id(token);
        let secrets = catalog
            .ids("SELECT token_hash FROM api_token WHERE id = $1", &id)
            .await
            .into_iter()
            .chain(
                catalog
                    .ids("SELECT token_salt FROM api_token WHERE id = $1", &id)
                    .await,
            );
        for s in secrets {
            assert!(!text.contains(&s), "a token hash or salt is exported");
        }
    }
    for row in of("api_token") {
        assert!(row.get("token_hash").is_none() && row.get("token_salt").is_none());
    }
    assert!(!text.contains("view-password"), "the View URL is exported");
    let sealed = catalog
        .ids(
            "SELECT config FROM view_config WHERE tenant_id = $1",
            "exported",
        )
        .await;
    let sealed: Value = serde_json::from_str(&sealed[0]).unwrap();
    assert!(
        !text.contains(sealed["url"].as_str().unwrap()),
        "the sealed View URL is exported"
    );
    assert_eq!(of("view_config").len(), 1);
    assert!(
        !text.contains("sink-secret"),
        "the tenant sink's secret is exported"
    );
    let sealed = catalog
        .ids(
            "SELECT sealed_secret FROM tenant_sink WHERE tenant_id = $1",
            "exported",
        )
        .await;
    assert!(
        !text.contains(&sealed[0]),
        "the sealed sink secret is exported"
    );
    let sinks = of("tenant_sink");
    assert_eq!(sinks.len(), 1);
    assert_eq!(sinks[0]["address"], "grpcs://crm.example:443");
}

async fn the_cli_exports_and_deletes_a_tenant_on_the_database(app: TestApp) {
    use crate::cli::{erpsync, ok};
    let t = tenant(&app, "leaving").await;
    push(&app, &t, "company", vec![company("c1")])
        .await
        .unwrap();
    let url = app.database_url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leaving.ndjson");
    let path = file.to_str().unwrap();
    ok(erpsync(
        &url,
        &["tenant", "export", "--id", "leaving", "--output", path],
    ));
    let rows = lines(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(rows[0]["row"]["id"], "leaving");
    assert!(rows
        .iter()
        .any(|r| r["table"] == "staged_record" && r["row"]["external_id"] == "c1"));
    // Standard output without --output.
    let printed = ok(erpsync(&url, &["tenant", "export", "--id", "leaving"]));
    assert_eq!(lines(&printed).len(), rows.len());

    let out = ok(erpsync(&url, &["tenant", "delete", "--id", "leaving"]));
    assert!(out.starts_with("tenant leaving deleted: "), "{out}");
    let out = ok(erpsync(&url, &["tenant", "delete", "--id", "leaving"]));
    assert!(out.contains("nothing to delete"), "{out}");
    let failed = erpsync(&url, &["tenant", "export", "--id", "leaving"]);
    assert!(!failed.status.success());
    assert_eq!(overview_code(&app, &t, &t.crm).await, Code::Unauthenticated);
}

/// The export's lines without the tokens' last use, which a call writes in the background.
fn settled(text: &str) -> Vec<Value> {
    let mut rows = lines(text);
    for row in &mut rows {
        if let Some(columns) = row["row"].as_object_mut() {
            columns.remove("last_used_at");
        }
    }
    rows
}

async fn the_cli_exports_and_deletes_a_tenant_through_admin_with_server(app: TestApp) {
    use crate::admin::remote;
    use crate::cli::ok;
    let t = tenant(&app, "leaving").await;
    push(&app, &t, "company", vec![company("c1")])
        .await
        .unwrap();
    let root = app.token(Role::Admin, &[]).await;
    let url = app.url();
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_owned())
            .chain([
                "--server".into(),
                url.clone(),
                "--token".into(),
                root.clone(),
            ])
            .collect()
    };

    // The lines Admin.ExportTenant streams, to a file and to standard output.
    let streamed = settled(&export(&app, &root, "leaving").await.unwrap());
    assert!(streamed
        .iter()
        .any(|r| r["table"] == "staged_record" && r["row"]["external_id"] == "c1"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leaving.ndjson");
    let path = file.to_str().unwrap();
    let written = remote(with(&[
        "tenant", "export", "--id", "leaving", "--output", path,
    ]))
    .await;
    assert!(String::from_utf8_lossy(&written.stderr).contains("tenant leaving exported to"));
    assert!(ok(written).is_empty());
    assert_eq!(settled(&std::fs::read_to_string(&file).unwrap()), streamed);
    let printed = ok(remote(with(&["tenant", "export", "--id", "leaving"])).await);
    assert_eq!(settled(&printed), streamed);

    // A run RUNNING refuses the delete, --force passes through.
    let catalog = Catalog::open(&app).await;
    let run_id = running_elsewhere(&app, &t).await;
    let before = catalog
        .counts("leaving", std::slice::from_ref(&run_id))
        .await;
    let refused = remote(with(&["tenant", "delete", "--id", "leaving"])).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("FailedPrecondition") && stderr.contains(&run_id),
        "{stderr}"
    );
    let out = ok(remote(with(&["tenant", "delete", "--id", "leaving", "--force"])).await);
    let api_token_rows = 2; // its own crm and erp tokens
    let rows = before.values().sum::<i64>() + api_token_rows;
    assert_eq!(
        out,
        format!("tenant leaving deleted: {rows} rows removed\n")
    );
    let after = catalog.counts("leaving", &[run_id]).await;
    assert!(after.values().all(|n| *n == 0), "left: {after:?}");
    assert_eq!(overview_code(&app, &t, &t.crm).await, Code::Unauthenticated);

    let out = ok(remote(with(&["tenant", "delete", "--id", "leaving"])).await);
    assert_eq!(out, "no tenant leaving: nothing to delete\n");
    let missing = remote(with(&["tenant", "export", "--id", "leaving"])).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
}
