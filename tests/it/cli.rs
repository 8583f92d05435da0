//! The `erpsync` binary: provisioning commands, the overview client, and `serve` with its
//! graceful shutdown.

use std::process::Command;

use erpsync::grpc::pb::{
    integration_history_client::IntegrationHistoryClient, GetOverviewRequest, Health,
};

use crate::helpers::authed;
use crate::helpers::cli::{erpsync, ok, serve_with, CLI_SECRET_KEY};

/// Starts `erpsync serve` on a free port; returns the child and its port, read from the
/// JSON "ready" log line.
fn serve(db_url: &str) -> (std::process::Child, u16) {
    serve_with(db_url, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_tenant_and_token_work_against_the_served_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());

    let created = ok(erpsync(
        &db,
        &[
            "tenant",
            "create",
            "--id",
            "acme",
            "--name",
            "ACME Ltda",
            "--erp-name",
            "Protheus",
        ],
    ));
    assert!(
        created.contains("id: acme") && created.contains("timezone: America/Sao_Paulo"),
        "{created}"
    );
    assert!(created.contains("next_run: none"), "{created}");

    let dup = erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "Again"],
    );
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("tenant acme already exists"));

    let bad = erpsync(
        &db,
        &[
            "tenant",
            "create",
            "--id",
            "x",
            "--name",
            "X",
            "--timezone",
            "Mars/Base",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Mars/Base"));

    let issued = ok(erpsync(
        &db,
        &["token", "issue", "--role", "crm", "--tenant", "acme"],
    ));
    let token = issued.lines().last().unwrap().to_owned();
    assert!(
        token.starts_with("esk_"),
        "the token alone on the last line: {issued}"
    );
    let token_id = issued
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("token_id: ")
        .to_owned();

    let listed = ok(erpsync(&db, &["token", "list"]));
    assert!(
        listed.contains(&token_id) && !listed.contains(&token),
        "ids listed, secrets never"
    );

    let missing = erpsync(
        &db,
        &["token", "issue", "--role", "erp", "--tenant", "ghost"],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("tenant ghost not found"));

    let (mut child, port) = serve(&db);
    let url = format!("http://127.0.0.1:{port}");
    let mut client = IntegrationHistoryClient::connect(url.clone())
        .await
        .unwrap();
    let o = client
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.tenant_name, "ACME Ltda");
    assert_eq!(o.erp_name, "Protheus");
    assert_eq!(o.health(), Health::NeverRun);

    let printed = tokio::task::spawn_blocking({
        let (url, token, db) = (url.clone(), token.clone(), db.clone());
        move || {
            ok(erpsync(
                &db,
                &[
                    "overview", "--tenant", "acme", "--server", &url, "--token", &token,
                ],
            ))
        }
    })
    .await
    .unwrap();
    assert!(
        printed.contains("health:            NEVER_RUN"),
        "{printed}"
    );
    assert!(printed.contains("next run:          none"), "{printed}");

    // Push a company, run a sync from the CLI and follow it to its end.
    let erp_issued = ok(erpsync(
        &db,
        &["token", "issue", "--role", "erp", "--tenant", "acme"],
    ));
    let erp = erp_issued.lines().last().unwrap().to_owned();
    let body = serde_json::json!({"records": [{"external_id": "C1", "fields": {"name": "ACME", "document": "11.222.333/0001-81"}}]});
    let (status, _) = crate::helpers::http_post(
        port,
        "/erp/v1/company",
        Some(&erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let synced = tokio::task::spawn_blocking({
        let (url, token, db) = (url.clone(), token.clone(), db.clone());
        move || {
            ok(erpsync(
                &db,
                &[
                    "sync-now", "--tenant", "acme", "--server", &url, "--token", &token,
                ],
            ))
        }
    })
    .await
    .unwrap();
    assert!(synced.contains("status: SUCCESS"), "{synced}");
    assert!(synced.contains("[company] delivered: 1 new"), "{synced}");

    ok(erpsync(&db, &["token", "revoke", &token_id]));
    let err = client
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // SIGTERM: a graceful stop with exit code 0.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn serve_creates_the_sqlite_folder_and_applies_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/deeper/erpsync.db");
    let db = format!("sqlite://{}?mode=rwc", file.display());
    let (mut child, _port) = serve(&db);
    assert!(file.exists());
    child.kill().unwrap();
    let _ = child.wait();
    // The same file is reused (migrations are idempotent) by the next command.
    ok(erpsync(&db, &["tenant", "list"]));
}

#[test]
fn unsupported_database_url_is_a_clear_error() {
    let out = erpsync("mysql://root@127.0.0.1/x", &["tenant", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL"), "{err}");
}

#[test]
fn tenant_set_view_checks_masks_shows_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("erpsync.db").display()
    );
    // The ERP's database: a SQLite file with one view.
    let erp_path = dir.path().join("erp.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::{ConnectOptions, Executor};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&erp_path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        c.execute(
            "CREATE TABLE clientes (id INTEGER PRIMARY KEY, razao TEXT, cnpj TEXT); \
             CREATE VIEW v_clientes AS SELECT id, razao, cnpj FROM clientes;",
        )
        .await
        .unwrap();
    });
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let config = dir.path().join("view.json");
    let write = |view: &str| {
        std::fs::write(
            &config,
            serde_json::json!({"page_size": 500, "tables": [{"table": "company", "view": view,
                "key": "id", "columns": {"name": "razao", "document": "cnpj"}}]})
            .to_string(),
        )
        .unwrap();
    };
    let config_arg = config.to_str().unwrap();

    // A missing view is refused with --check, naming it; nothing is stored.
    write("v_sumiu");
    let erp_url = format!("sqlite://{}", erp_path.display());
    let refused = erpsync(
        &db,
        &[
            "tenant", "set-view", "--id", "acme", "--url", &erp_url, "--config", config_arg,
            "--check",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("view v_sumiu"));
    assert!(ok(erpsync(&db, &["tenant", "show-view", "acme"])).contains("no View configuration"));

    // A URL with a password is stored and never printed.
    write("v_clientes");
    let set = ok(erpsync(
        &db,
        &[
            "tenant",
            "set-view",
            "--id",
            "acme",
            "--url",
            "postgres://erp:s3cretpw@db.example/erp",
            "--config",
            config_arg,
        ],
    ));
    assert!(
        set.contains("url: postgres://erp:***@db.example/erp"),
        "{set}"
    );
    assert!(set.contains("integration_type: VIEW"), "{set}");
    assert!(!set.contains("s3cretpw"));
    // Checked and saved; the URL can come from the environment.
    let checked = Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args([
            "tenant", "set-view", "--id", "acme", "--config", config_arg, "--check",
        ])
        .env("DATABASE_URL", &db)
        .env("ERPSYNC_SECRET_KEY", CLI_SECRET_KEY)
        .env("ERPSYNC_VIEW_URL", &erp_url)
        .output()
        .unwrap();
    let shown = ok(checked);
    assert!(
        shown.contains("company: v_clientes (full), key id, document=cnpj, name=razao"),
        "{shown}"
    );
    assert!(shown.contains("page_size: 500"), "{shown}");
    // A configuration file with a typo is refused before anything is stored.
    std::fs::write(
        &config,
        r#"{"tables": [{"table": "company", "veiw": "x"}]}"#,
    )
    .unwrap();
    let typo = erpsync(
        &db,
        &["tenant", "set-view", "--id", "acme", "--config", config_arg],
    );
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("veiw"),
        "{typo:?}"
    );
    assert!(ok(erpsync(&db, &["tenant", "show-view", "acme"])).contains("v_clientes"));

    let cleared = ok(erpsync(&db, &["tenant", "clear-view", "acme"]));
    assert!(cleared.contains("API integration"), "{cleared}");
    assert!(ok(erpsync(&db, &["tenant", "show", "acme"])).contains("integration_type: API"));
}

#[test]
fn view_sources_are_granted_within_the_list_listed_and_revoked_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("e.db");
    let db = format!("sqlite://{}?mode=rwc", own.display());
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let erp = dir.path().join("erp.db");
    std::fs::write(&erp, b"").unwrap();
    let canonical = format!("sqlite://{}", erp.canonicalize().unwrap().display());
    let folder = dir.path().to_str().unwrap();
    let erp_arg = erp.to_str().unwrap();
    let fails = |args: &[&str], why: &str| {
        let out = erpsync(&db, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    };
    let grant = ["tenant", "grant-view-source", "--id", "acme"];
    // Outside the server-wide list, a host without its database, erpsync's own file.
    fails(
        &[&grant[..], &["--sqlite-file", erp_arg]].concat(),
        "outside the server-wide list",
    );
    fails(
        &[&grant[..], &["--url", "mysql://root@db.example:3306"]].concat(),
        "names one database",
    );
    fails(
        &[
            &grant[..],
            &[
                "--sqlite-file",
                own.to_str().unwrap(),
                "--view-sqlite-dir",
                folder,
            ],
        ]
        .concat(),
        "erpsync's own database",
    );
    assert_eq!(
        ok(erpsync(&db, &["tenant", "list-view-sources", "acme"])),
        "acme: no View source granted\n"
    );
    // Granted: once, then already.
    let file = [
        &grant[..],
        &["--sqlite-file", erp_arg, "--view-sqlite-dir", folder],
    ]
    .concat();
    assert_eq!(
        ok(erpsync(&db, &file)),
        format!("acme may name the View source {canonical}\n")
    );
    assert_eq!(
        ok(erpsync(&db, &file)),
        format!("acme already had the View source {canonical}\n")
    );
    let server = [
        &grant[..],
        &[
            "--url",
            "postgres://erp:s3cretpw@DB.example/erp_a",
            "--view-allow-host",
            "db.example:5432",
        ],
    ]
    .concat();
    let granted = ok(erpsync(&db, &server));
    assert_eq!(
        granted,
        "acme may name the View source postgres://db.example:5432/erp_a\n"
    );
    assert_eq!(
        ok(erpsync(&db, &["tenant", "list-view-sources", "acme"])),
        format!("postgres://db.example:5432/erp_a\n{canonical}\n")
    );
    // Revoked by the name the list shows; a second time there is nothing to revoke.
    let revoke = [
        "tenant",
        "revoke-view-source",
        "--id",
        "acme",
        "--url",
        &canonical,
    ];
    assert_eq!(
        ok(erpsync(&db, &revoke)),
        format!("acme may no longer name the View source {canonical}\n")
    );
    assert_eq!(
        ok(erpsync(&db, &revoke)),
        format!("acme had no grant of the View source {canonical}\n")
    );
    assert_eq!(
        ok(erpsync(&db, &["tenant", "list-view-sources", "acme"])),
        "postgres://db.example:5432/erp_a\n"
    );
    fails(&["tenant", "list-view-sources", "nobody"], "nobody");
}
