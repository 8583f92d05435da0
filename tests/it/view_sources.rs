//! Which databases a tenant may read through a View integration: only those the operator
//! allows, never erpsync's own (the attack: a View over `staged_record` of the server's
//! own database read every tenant's companies into the attacker's staging), refusals that
//! tell nothing about what exists on the server, and source passwords sealed at rest.

use chrono::Utc;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::domain::view::{Mode, ViewConfig, ViewTable as StoredTable};
use erpsync::domain::view_source::{Naming, REFUSED};
use erpsync::grpc::pb::{self, GetViewConfigRequest, ViewMode, ViewTable};
use erpsync::storage::{staging, views};
use sea_orm::{ConnectionTrait, Statement};
use sqlx::Connection;
use tonic::Code;

use crate::both_backends;
use crate::helpers::{authed, spawn_app_with, with_database, Backend, PgDatabase, TestApp, PG_ENV};
use crate::sync::{companies, setup, Ctx};
use crate::view::{clientes, company_view, set_view, DropMysql, SqliteErp, MYSQL_ENV};

both_backends!(
    a_tenant_cannot_read_erpsyncs_own_database_through_a_view,
    a_view_stored_over_erpsyncs_own_database_fails_its_run_without_reading_it,
    the_cross_tenant_view_source_matrix,
    a_sealed_view_url_opens_only_as_the_tenants_it_was_sealed_for,
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
        views::set(
            &ctx.app.state.db,
            &acme,
            &cfg,
            Naming::Operator,
            None,
            Utc::now(),
        )
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
    // And the server that allows it takes it, once it is granted to the tenant.
    ctx.app.grant_view_source("acme", &inside.url).await;
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
    ctx.app.grant_view_source("acme", url).await;
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
    let opened = views::get(db, &acme, ctx.app.state.worker.views().key())
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
    keyless.app.grant_view_source("acme", url).await;
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

// ---------------------------------------------------------------------------------------
// Sources bound to tenants

/// SetViewConfig for `tenant` with `token`, naming `url` (None keeps the stored one).
async fn name_source(
    ctx: &mut Ctx,
    tenant: &str,
    token: &str,
    url: Option<&str>,
    tables: Vec<ViewTable>,
    check: bool,
) -> Result<pb::ViewConfig, tonic::Status> {
    ctx.history
        .set_view_config(authed(
            pb::SetViewConfigRequest {
                tenant_id: tenant.into(),
                url: url.map(str::to_owned),
                tables,
                page_size: 0,
                check,
                clear: false,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn refused(result: Result<pb::ViewConfig, tonic::Status>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.code(), Code::PermissionDenied, "{what}: {err:?}");
    assert_eq!(err.message(), REFUSED, "{what}");
}

/// Tenant B ("acme") is granted a SQLite file, a PostgreSQL database and a MariaDB
/// database (on the test servers when they are set; otherwise on 127.0.0.1:1, where
/// nothing answers, and B's configuration is stored unchecked). Tenant C names each of
/// them and is refused with the one sentence, before any connection (a checked request
/// would otherwise fail to connect, or succeed); B names them and is taken. A grant
/// outside the server-wide list, of a host without a database or of erpsync's own
/// database is refused when made. B's MariaDB grant does not reach another database on
/// the server (`mysql`, whether by URL or by a qualified view). Revoked, B's grant stops
/// its next SetViewConfig and its next run.
async fn the_cross_tenant_view_source_matrix(app: TestApp) {
    let mut ctx = setup(app).await;
    let b = TenantId::parse("acme").unwrap();
    let c = ctx.app.create_tenant("tenant_c").await;
    let c_crm = ctx.app.token(Role::Crm, &[&c]).await;
    let b_crm = ctx.crm.clone();
    let table = || vec![company_view("v_clientes", ViewMode::Full)];

    let sqlite = SqliteErp::new(&clientes(3)).await;
    let pg = match std::env::var(PG_ENV).ok().filter(|v| !v.is_empty()) {
        Some(admin) => {
            let db = PgDatabase::create(&admin).await;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(&clientes(3))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            Some(db)
        }
        None => None,
    };
    let pg_url = pg.as_ref().map_or_else(
        || "postgres://erp@127.0.0.1:1/erp_b".to_owned(),
        |db| db.url.clone(),
    );
    let (my_url, my_database, _drop_mysql) =
        match std::env::var(MYSQL_ENV).ok().filter(|v| !v.is_empty()) {
            Some(admin) => {
                let name = format!("erp_b_{}", uuid::Uuid::new_v4().simple());
                let mut root = sqlx::MySqlConnection::connect(&admin).await.unwrap();
                sqlx::raw_sql(&format!("CREATE DATABASE `{name}`"))
                    .execute(&mut root)
                    .await
                    .unwrap();
                let drop = DropMysql {
                    admin: admin.clone(),
                    name: name.clone(),
                };
                let url = with_database(&admin, &name);
                let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&clientes(3))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                (url, name, Some(drop))
            }
            None => (
                "mysql://erp@127.0.0.1:1/erp_b".to_owned(),
                "erp_b".to_owned(),
                None,
            ),
        };
    let sources = [
        (sqlite.url.clone(), true),
        (pg_url, pg.is_some()),
        (my_url.clone(), _drop_mysql.is_some()),
    ];
    for (url, _) in &sources {
        ctx.app.grant_view_source("acme", url).await;
    }

    // C names B's sources: refused alike, checked or not, and nothing is stored.
    for (url, _) in &sources {
        for check in [false, true] {
            refused(
                name_source(&mut ctx, "tenant_c", &c_crm, Some(url), table(), check).await,
                url,
            );
        }
    }
    let c_cfg = ctx
        .history
        .get_view_config(authed(
            GetViewConfigRequest {
                tenant_id: "tenant_c".into(),
            },
            &c_crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!c_cfg.configured, "{c_cfg:?}");

    // B names them: taken, checked against the database where one stands behind it.
    for (url, real) in &sources {
        let cfg = name_source(&mut ctx, "acme", &b_crm, Some(url), table(), *real)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert!(cfg.configured);
    }

    // B's MariaDB grant is for its database only: not `mysql` by URL, nor by a view
    // qualified with another database; qualified with its own, it is taken.
    let mysql_db = my_url.replacen(&format!("/{my_database}"), "/mysql", 1);
    assert_ne!(mysql_db, my_url);
    refused(
        name_source(&mut ctx, "acme", &b_crm, Some(&mysql_db), table(), true).await,
        &mysql_db,
    );
    let mut user = company_view("mysql.user", ViewMode::Full);
    user.key_column = "User".into();
    refused(
        name_source(&mut ctx, "acme", &b_crm, Some(&my_url), vec![user], true).await,
        "mysql.user",
    );
    let own = company_view(&format!("{my_database}.v_clientes"), ViewMode::Full);
    name_source(
        &mut ctx,
        "acme",
        &b_crm,
        Some(&my_url),
        vec![own],
        _drop_mysql.is_some(),
    )
    .await
    .unwrap();

    // Grants the operator may not make, each with its reason; nothing granted.
    let granted = ctx.app.state.views.grants(&b).await.unwrap();
    assert_eq!(granted.len(), 3, "{granted:?}");
    for (url, reason) in [
        (
            "postgres://erp@db.elsewhere.example:5432/erp_b".to_owned(),
            "outside the server-wide list",
        ),
        (
            "sqlite:///etc/passwd".to_owned(),
            "outside the server-wide list",
        ),
        ("mysql://root@127.0.0.1:1".to_owned(), "names one database"),
        (ctx.app.database_url().to_owned(), "erpsync's own database"),
    ] {
        match ctx.app.state.views.grant(&b, &url).await {
            Err(erpsync::error::AppError::InvalidArgument(m)) => {
                assert!(m.contains(reason), "{url}: {m}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(ctx.app.state.views.grants(&b).await.unwrap(), granted);

    // B's SQLite source read by a run; revoked, the kept URL is refused by the next
    // SetViewConfig and the next run fails at the gate, reading nothing.
    name_source(&mut ctx, "acme", &b_crm, Some(&sqlite.url), table(), true)
        .await
        .unwrap();
    let run = ctx.run().await;
    assert_eq!(
        run.run.as_ref().unwrap().status(),
        pb::RunStatus::Success,
        "{run:?}"
    );
    let (grant, had) = ctx.app.state.views.revoke(&b, &sqlite.url).await.unwrap();
    assert!(had, "{grant}");
    refused(
        name_source(&mut ctx, "acme", &b_crm, None, table(), false).await,
        "the kept URL",
    );
    let since = Utc::now();
    let run = ctx.run().await;
    let summary = run.run.as_ref().unwrap();
    assert_eq!(summary.status(), pb::RunStatus::Failed, "{run:?}");
    assert!(
        summary.errors.iter().any(|e| e.contains(REFUSED)),
        "{:?}",
        summary.errors
    );
    // The run logged its refusal and read no view.
    let logged = erpsync::storage::request_log::list(
        &ctx.app.state.db,
        &b,
        since,
        Utc::now() + chrono::Duration::seconds(1),
        100,
    )
    .await
    .unwrap();
    assert!(!logged.is_empty());
    assert!(
        logged
            .iter()
            .all(|e| e.endpoint == "view:*" && e.accepted == 0),
        "{logged:?}"
    );
}

/// A sealed View URL carries its tenant as associated data: B's sealed row copied into
/// C's does not open (and shows nothing of B's URL).
async fn a_sealed_view_url_opens_only_as_the_tenants_it_was_sealed_for(app: TestApp) {
    let mut ctx = setup(app).await;
    let c = ctx.app.create_tenant("tenant_c").await;
    let c_crm = ctx.app.token(Role::Crm, &[&c]).await;
    let url = "postgres://erp:b-s3cret@127.0.0.1:1/erp_b";
    ctx.app.grant_view_source("acme", url).await;
    let b_crm = ctx.crm.clone();
    name_source(
        &mut ctx,
        "acme",
        &b_crm,
        Some(url),
        vec![company_view("v_clientes", ViewMode::Full)],
        false,
    )
    .await
    .unwrap();
    let own = sea_orm::Database::connect(ctx.app.database_url())
        .await
        .unwrap();
    let backend = own.get_database_backend();
    let row = own
        .query_one(Statement::from_string(
            backend,
            "SELECT config FROM view_config WHERE tenant_id = 'acme'",
        ))
        .await
        .unwrap()
        .unwrap();
    let sealed: String = row.try_get("", "config").unwrap();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "INSERT INTO view_config (tenant_id, config, named_by, updated_at) \
             VALUES ($1, $2, 'operator', $3)"
        }
        _ => {
            "INSERT INTO view_config (tenant_id, config, named_by, updated_at) \
             VALUES (?, ?, 'operator', ?)"
        }
    };
    own.execute(Statement::from_sql_and_values(
        backend,
        sql,
        [
            "tenant_c".into(),
            sealed.into(),
            sea_orm::Value::from(Utc::now()),
        ],
    ))
    .await
    .unwrap();
    let key = ctx.app.state.worker.views().key();
    assert_eq!(
        views::get(&ctx.app.state.db, &TenantId::parse("acme").unwrap(), key)
            .await
            .unwrap()
            .unwrap()
            .url,
        url
    );
    let err = views::get(&ctx.app.state.db, &c, key).await.unwrap_err();
    assert!(
        matches!(&err, erpsync::error::AppError::FailedPrecondition(m) if m.contains("does not open")),
        "{err:?}"
    );
    let err = ctx
        .history
        .get_view_config(authed(
            GetViewConfigRequest {
                tenant_id: "tenant_c".into(),
            },
            &c_crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(!err.message().contains("b-s3cret") && !err.message().contains("erp_b"));
}
