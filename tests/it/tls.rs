//! TLS on the one port: gRPC (the real grpcurl) and the HTTP route from an HTTP/1.1-only
//! client, mutual TLS with `--tls-client-ca`, and plaintext refused beyond loopback unless
//! `--insecure`.

use erpsync::config::Config;
use erpsync::domain::token::Role;
use serde_json::json;

use crate::helpers::cli::grpcurl;
use crate::helpers::seed::valid_fields;
use crate::helpers::{spawn_app_with, Backend};
use crate::pki::{https_post, Pki};

fn batch() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"records": [{"external_id": "c1", "fields": valid_fields("company")}]}),
    )
    .unwrap()
}

async fn grpcurl_async(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        grpcurl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_an_http11_client_both_work_over_tls_and_plaintext_does_not() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let pki = Pki::new();
        let files = pki.files(false);
        // None: no PostgreSQL configured for this run.
        if let Some(app) = spawn_app_with(backend, |c| c.tls = Some(files)).await {
            grpc_and_http11_over_tls(app, &pki).await;
        }
    }
}

async fn grpc_and_http11_over_tls(app: crate::helpers::TestApp, pki: &Pki) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let listed = grpcurl_async(vec![
        "-cacert".into(),
        pki.path("ca.pem").display().to_string(),
        addr.clone(),
        "list".into(),
    ])
    .await;
    assert!(listed.contains("erpsync.v1.IntegrationHistory"), "{listed}");

    let answer = https_post(
        app.port,
        &pki.path("ca.pem"),
        None,
        "/erp/v1/company",
        &erp,
        &batch(),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"accepted\":1"), "{answer}");

    // A plaintext request on the TLS port gets no HTTP answer.
    let (status, _) =
        crate::helpers::http_post(app.port, "/erp/v1/company", Some(&erp), &batch()).await;
    assert_ne!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_every_connection_needs_a_certificate_it_signed() {
    let pki = Pki::new();
    let files = pki.files(true);
    let app = spawn_app_with(Backend::Sqlite, |c| c.tls = Some(files))
        .await
        .unwrap();
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let ca = pki.path("ca.pem");
    let without = https_post(app.port, &ca, None, "/erp/v1/company", &erp, &batch()).await;
    assert!(
        without
            .as_ref()
            .map_or(true, |a| !a.starts_with("HTTP/1.1 200")),
        "{without:?}"
    );
    let client = (pki.path("client.pem"), pki.path("client.key"));
    let with = https_post(
        app.port,
        &ca,
        Some((&client.0, &client.1)),
        "/erp/v1/company",
        &erp,
        &batch(),
    )
    .await
    .unwrap();
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    let addr = format!("127.0.0.1:{}", app.port);
    let listed = grpcurl_async(vec![
        "-cacert".into(),
        ca.display().to_string(),
        "-cert".into(),
        client.0.display().to_string(),
        "-key".into(),
        client.1.display().to_string(),
        addr,
        "list".into(),
    ])
    .await;
    assert!(listed.contains("erpsync.v1.ErpIngest"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_beyond_loopback_needs_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("e.db").display()),
        ..Config::default()
    };
    let err = erpsync::app::build(&config).await.err().expect("refused");
    assert!(err.to_string().contains("--insecure"), "{err}");
    let insecure = Config {
        insecure: true,
        ..config
    };
    assert!(erpsync::app::build(&insecure).await.is_ok());
}
