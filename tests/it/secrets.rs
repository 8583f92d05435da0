//! No secret erpsync was given ever comes back out: a whole session against the real
//! binary (debug logging on) — tokens issued, good and forged tokens used, a body carrying
//! a token, a View URL with a password that fails to connect, a tenant's own CRM sink with
//! its secret, a failed run, exports — and
//! then every line the server logged and every cell of every exported workbook is searched
//! for each token, the password and the secret key.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use erpsync::grpc::pb::{
    admin_client::AdminClient, integration_history_client::IntegrationHistoryClient,
    GetOverviewRequest, SetTenantSinkRequest, SetViewConfigRequest, ViewMode,
};
use serde_json::json;

use crate::helpers::cli::{erpsync, ok, CLI_SECRET_KEY};
use crate::helpers::seed::valid_fields;
use crate::helpers::views::company_view;
use crate::helpers::workbooks::sheets;
use crate::helpers::{authed, http_post};

/// The token on the last line of `erpsync token issue`.
fn issue(db: &str, role: &str) -> String {
    let out = ok(erpsync(
        db,
        &["token", "issue", "--role", role, "--tenant", "acme"],
    ));
    out.lines().last().unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_password_or_key_appears_in_the_logs_or_the_exports() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "Acme"],
    ));
    let crm = issue(&db, "crm");
    let erp = issue(&db, "erp");
    let forged = format!("esk_{}_{}", "0".repeat(12), "1".repeat(64));
    let password = "pw-S3cr3t-view-xyz";
    let sink_secret = "sink-S3cr3t-of-acmes-own-crm";
    // The operator grants acme the source, from the URL as the tenant will name it.
    let granted = ok(erpsync(
        &db,
        &[
            "tenant",
            "grant-view-source",
            "--id",
            "acme",
            "--url",
            &format!("postgres://erp:{password}@127.0.0.1:2/erp"),
            "--view-allow-host",
            "127.0.0.1:2",
        ],
    ));
    assert_eq!(
        granted,
        "acme may name the View source postgres://127.0.0.1:2/erp\n"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--view-allow-host", "127.0.0.1:2"])
        .env("DATABASE_URL", &db)
        .env("ERPSYNC_SECRET_KEY", CLI_SECRET_KEY)
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let reader = {
        let log = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["fields"]["message"] == "erpsync ready" {
                    let listen = v["fields"]["listen"].as_str().unwrap().to_owned();
                    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
                    let _ = port_tx.send(port);
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let port = port_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the server starts");

    // Pushes: a good one, a forged token, a body that carries a token and a bearer header.
    let good = json!({"records": [{"external_id": "c1", "fields": valid_fields("company")}]});
    let body = serde_json::to_vec(&good).unwrap();
    assert_eq!(
        http_post(port, "/erp/v1/company", Some(&erp), &body)
            .await
            .0,
        200
    );
    assert_eq!(
        http_post(port, "/erp/v1/company", Some(&forged), &body)
            .await
            .0,
        401
    );
    let mut leaky = valid_fields("company");
    leaky["note"] = json!(format!("Authorization: Bearer {crm} / {erp}"));
    let leaky = json!({"records": [{"external_id": "c2", "fields": leaky}]});
    let (status, answer) = http_post(
        port,
        "/erp/v1/company",
        Some(&erp),
        &serde_json::to_vec(&leaky).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // A View URL with a password, checked (it fails to connect), then stored; a run.
    let mut history = IntegrationHistoryClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let url = format!("postgres://erp:{password}@127.0.0.1:2/erp");
    let view = |check| SetViewConfigRequest {
        tenant_id: "acme".into(),
        url: Some(url.clone()),
        tables: vec![company_view("v_clientes", ViewMode::Full)],
        page_size: 0,
        check,
        clear: false,
    };
    let err = history
        .set_view_config(authed(view(true), &crm))
        .await
        .unwrap_err();
    assert!(!err.message().contains(password), "{err:?}");
    let shown = history
        .set_view_config(authed(view(false), &crm))
        .await
        .unwrap()
        .into_inner();
    assert!(!shown.url.contains(password));
    // acme delivers to a sink of its own, with a secret (refused once, with a bad address).
    let admin = ok(erpsync(&db, &["token", "issue", "--role", "admin"]))
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let mut admin_api = AdminClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let sink = |address: &str| SetTenantSinkRequest {
        tenant_id: "acme".into(),
        address: address.into(),
        secret: sink_secret.into(),
        clear: false,
    };
    let err = admin_api
        .set_tenant_sink(authed(sink("crm:2"), &admin))
        .await
        .unwrap_err();
    assert!(!format!("{err:?}").contains(sink_secret), "{err:?}");
    let set = admin_api
        .set_tenant_sink(authed(sink("grpc://127.0.0.1:2"), &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(set.has_secret && !format!("{set:?}").contains(sink_secret));
    let overview = history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overview.crm_sink, "grpc://127.0.0.1:2");
    assert!(!format!("{overview:?}").contains(sink_secret));
    let server = format!("http://127.0.0.1:{port}");
    let client = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_erpsync"))
            .args(args)
            .args(["--server", &server])
            .env("ERPSYNC_TOKEN", &crm)
            .output()
            .unwrap()
    };
    let synced = client(&["sync-now", "--tenant", "acme"]);
    let synced_text = String::from_utf8_lossy(&synced.stdout).into_owned()
        + &String::from_utf8_lossy(&synced.stderr);
    assert!(synced_text.contains("FAILED"), "{synced_text}");

    // Every export of today.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Sao_Paulo)
        .date_naive()
        .to_string();
    let mut cells = String::new();
    for kind in ["requests", "runs", "excessive-deletes"] {
        let file = dir.path().join(format!("{kind}.xlsx"));
        let out = client(&[
            "export",
            "--tenant",
            "acme",
            "--from",
            &today,
            "--to",
            &today,
            "--kind",
            kind,
            "-o",
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (_, rows) in sheets(&std::fs::read(&file).unwrap()) {
            for row in rows {
                for cell in row {
                    cells.push_str(&cell.to_string());
                    cells.push('\n');
                }
            }
        }
    }
    assert!(cells.contains("c2"), "the leaky push is in the export");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap();
    assert!(log.contains("erpsync stopped"), "the whole log was read");
    for (what, secret) in [
        ("crm token", crm.as_str()),
        ("erp token", erp.as_str()),
        ("forged token", forged.as_str()),
        ("View password", password),
        ("tenant sink secret", sink_secret),
        ("secret key", CLI_SECRET_KEY),
    ] {
        // The part after the prefix: `esk_***` and `tok_…` ids may show.
        let needle = secret.strip_prefix("esk_").unwrap_or(secret);
        assert!(!log.contains(needle), "the server log shows the {what}");
        assert!(!cells.contains(needle), "an export shows the {what}");
    }
}
