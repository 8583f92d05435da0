//! Which databases a tenant may read through a View integration: only those the operator
//! allows, never erpsync's own (the attack: a View over `staged_record` of the server's
//! own database read every tenant's companies into the attacker's staging), refusals that
//! tell nothing about what exists on the server, and source passwords sealed at rest.

use chrono::Utc;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::domain::view::{Mode, ViewConfig, ViewTable as StoredTable};
use erpsync::domain::view_source::REFUSED;
use erpsync::grpc::pb::{self, GetViewConfigRequest, ViewMode, ViewTable};
use erpsync::storage::{staging, views};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

use crate::both_backends;
use crate::helpers::{authed, spawn_app_with, Backend, TestApp};
use crate::sync::{companies, setup, Ctx};
use crate::view::{clientes, company_view, set_view, SqliteErp};

both_backends!(
    a_tenant_cannot_read_erpsyncs_own_database_through_a_view,
    a_view_stored_over_erpsyncs_own_database_fails_its_run_without_reading_it,
);

/// The attacker's mapping: erpsync's own staging table as an ERP "view".
fn staged_record_view() -> ViewTable {
    ViewTable {
        table: "company".into(),
        view: "staged_record".into(),
        mode: ViewMode::Full as i32,
        key_column: "external_id".into(),
        columns: [("name", "external_id"), ("document", "fields")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        ..Default::default()
    }
}

/// Tenant "other", with companies staged: what the attacker is after.
async fn victim(ctx: &Ctx) -> TenantId {
    let other = ctx.app.create_tenant("other").await;
    let erp = ctx.app.token(Role::Erp, &[&other]).await;
    let reply = ctx
        .app
        .ingest()
        .await
        .push(authed(
            pb::PushRequest {
                tenant_id: "other".into(),
                table: "company".into(),
                records: companies(0..5),
            },
            &erp,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 5);
    other
}

/// Names of erpsync's own database a tenant could try: the URL itself, and aliases.
fn own_database_names(app: &TestApp, scratch: &std::path::Path) -> Vec<String> {
    let own = app.database_url().to_owned();
    match app.backend {
        Backend::Sqlite => {
            let path = own
                .strip_prefix("sqlite://")
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            let file = std::path::Path::new(&path);
            let link = scratch.join("innocent.db");
            std::os::unix::fs::symlink(file, &link).unwrap();
            let hard = file.parent().unwrap().join("hard-link.db");
            std::fs::hard_link(file, &hard).unwrap();
            let dir = file.parent().unwrap();
            let dotted = format!(
                "{}/../{}/{}",
                dir.display(),
                dir.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy()
            );
            vec![
                own.clone(),
                format!("sqlite://{path}"),
                format!("sqlite:{path}?mode=ro"),
                format!("sqlite://{dotted}"),
                format!("sqlite://{}", link.display()),
                format!("sqlite://{}", hard.display()),
            ]
        }
        Backend::Postgres => vec![
            own.clone(),
            own.replacen("127.0.0.1", "localhost", 1),
            own.replacen("@127.0.0.1", "@127.0.0.2", 1),
            own.replacen("@127.0.0.1:5432", "@localhost", 1),
        ],
    }
}

async fn a_tenant_cannot_read_erpsyncs_own_database_through_a_view(app: TestApp) {
    let mut ctx = setup(app).await;
    victim(&ctx).await;
    let scratch = tempfile::tempdir().unwrap();
    for url in own_database_names(&ctx.app, scratch.path()) {
        for check in [false, true] {
            let mut req = pb::SetViewConfigRequest {
                tenant_id: "acme".into(),
                url: Some(url.clone()),
                tables: vec![staged_record_view()],
                page_size: 0,
                check,
                clear: false,
            };
            req.check = check;
            let err = ctx
                .history
                .set_view_config(authed(req, &ctx.crm))
                .await
                .expect_err(&url);
            assert_eq!(err.code(), Code::PermissionDenied, "{url}: {err:?}");
            assert_eq!(err.message(), REFUSED, "{url}");
        }
    }
    // Nothing was stored: acme is still an API integration without a View.
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
    assert!(!cfg.configured, "{cfg:?}");
    assert_eq!(cfg.integration_type(), pb::IntegrationType::Api);
    let acme = TenantId::parse("acme").unwrap();
    assert!(staging::list(&ctx.app.state.db, &acme, "company")
        .await
        .unwrap()
        .is_empty());
}

/// A configuration stored before the check existed (or written to the database by hand)
/// over erpsync's own database: the run fails at the gate, nothing is read or staged.
/// On SQLite also a copy of the database (same `erpsync_instance` id, a path the address
/// check cannot know).
async fn a_view_stored_over_erpsyncs_own_database_fails_its_run_without_reading_it(app: TestApp) {
    let mut ctx = setup(app).await;
    victim(&ctx).await;
    let scratch = tempfile::tempdir().unwrap();
    let mut urls = vec![ctx.app.database_url().to_owned()];
    if matches!(ctx.app.backend, Backend::Sqlite) {
        let copy = scratch.path().join("copy.db");
        let own = sea_orm::Database::connect(ctx.app.database_url())
            .await
            .unwrap();
        own.execute(Statement::from_string(
            own.get_database_backend(),
            format!("VACUUM INTO '{}'", copy.display()),
        ))
        .await
        .unwrap();
        urls.push(format!("sqlite://{}", copy.display()));
    }
    let acme = TenantId::parse("acme").unwrap();
    for url in urls {
        let cfg = ViewConfig {
            url: url.clone(),
            page_size: 100,
            tables: vec![StoredTable {
                table: "company".into(),
                view: "staged_record".into(),
                mode: Mode::Full,
                key: "external_id".into(),
                columns: [("name", "external_id"), ("document", "fields")]
                    .into_iter()
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .collect(),
                watermark: None,
                deleted: None,
            }],
        };
        views::set(&ctx.app.state.db, &acme, &cfg, None, Utc::now())
            .await
            .unwrap();
        let run = ctx.run().await;
        let summary = run.run.as_ref().unwrap();
        assert_eq!(summary.status(), pb::RunStatus::Failed, "{url}: {run:?}");
        assert!(
            summary.errors.iter().any(|e| e.contains(REFUSED)),
            "{url}: {:?}",
            summary.errors
        );
        assert!(staging::list(&ctx.app.state.db, &acme, "company")
            .await
            .unwrap()
            .is_empty());
    }
}

/// Every source off the operator's list is refused with the same words, without a
/// connection: whether a file exists, is a database, or a port answers is not told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_off_the_operators_list_are_refused_alike_and_unreached() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.unwrap();
    let mut ctx = setup(app).await;
    let inside = SqliteErp::new(&clientes(1)).await;
    let listed_dir = std::env::temp_dir();
    for url in [
        "sqlite:///etc/shadow".to_owned(),
        "sqlite:///etc/passwd?mode=ro".to_owned(),
        "sqlite:///no/such/folder/erp.db".to_owned(),
        format!("sqlite://{}/no-such-file.db", listed_dir.display()),
        format!("sqlite://{}/../etc/shadow", listed_dir.display()),
        "postgres://postgres@127.0.0.1:2/erp".to_owned(),
        "postgres://postgres@127.0.0.2:5432/erp".to_owned(),
        "postgres://postgres@allowed.invalid/erp?host=/var/run/postgresql".to_owned(),
        "mysql://root@127.0.0.1:2/erp".to_owned(),
    ] {
        let err = set_view(
            &mut ctx,
            Some(&url),
            vec![company_view("v", ViewMode::Full)],
            0,
        )
        .await
        .expect_err(&url);
        assert_eq!(err.code(), Code::PermissionDenied, "{url}: {err:?}");
        assert_eq!(err.message(), REFUSED, "{url}");
    }
    // The same file the list allows is refused by a server whose operator allows nothing.
    let closed = spawn_app_with(Backend::Sqlite, |c| {
        c.view_sources = Default::default();
    })
    .await
    .unwrap();
    let mut closed = setup(closed).await;
    let err = set_view(
        &mut closed,
        Some(&inside.url),
        vec![company_view("v_clientes", ViewMode::Full)],
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.message(), REFUSED);
    // And the server that allows it takes it.
    set_view(
        &mut ctx,
        Some(&inside.url),
        vec![company_view("v_clientes", ViewMode::Full)],
        0,
    )
    .await
    .unwrap();
}

/// A source URL's password is stored sealed with the operator's key, shown masked, and
/// refused outright by a server that has no key to seal it with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_password_is_sealed_at_rest_and_needs_a_key() {
    let allow = |c: &mut erpsync::config::Config| {
        c.view_sources.hosts = vec!["erp.example.com:5432".parse().unwrap()];
    };
    let url = "postgres://erp:s3cr3t-pw@erp.example.com:5432/erp";
    let app = spawn_app_with(Backend::Sqlite, allow).await.unwrap();
    let mut ctx = setup(app).await;
    let shown = set_view(
        &mut ctx,
        Some(url),
        vec![company_view("v_clientes", ViewMode::Full)],
        0,
    )
    .await
    .unwrap();
    assert_eq!(shown.url, "postgres://erp:***@erp.example.com:5432/erp");
    let db = &ctx.app.state.db;
    let own = sea_orm::Database::connect(ctx.app.database_url())
        .await
        .unwrap();
    let rows = own
        .query_all(Statement::from_string(
            own.get_database_backend(),
            "SELECT config FROM view_config",
        ))
        .await
        .unwrap();
    let stored: String = rows[0].try_get("", "config").unwrap();
    assert!(!stored.contains("s3cr3t-pw"), "{stored}");
    assert!(!stored.contains("erp.example.com"), "{stored}");
    let acme = TenantId::parse("acme").unwrap();
    let opened = views::get(db, &acme, ctx.app.state.worker.views.key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.url, url);

    let keyless = spawn_app_with(Backend::Sqlite, |c| {
        allow(c);
        c.secret_key = None;
    })
    .await
    .unwrap();
    let mut keyless = setup(keyless).await;
    let err = set_view(
        &mut keyless,
        Some(url),
        vec![company_view("v_clientes", ViewMode::Full)],
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("ERPSYNC_SECRET_KEY"), "{err:?}");
    assert!(!err.message().contains("s3cr3t-pw"));
}
