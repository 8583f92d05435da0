//! TLS on the one port: gRPC (the real grpcurl) and the HTTP route from an HTTP/1.1-only
//! client, mutual TLS with `--tls-client-ca`, and plaintext refused beyond loopback unless
//! `--insecure`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use erpsync::config::Config;
use erpsync::conn::TlsFiles;
use erpsync::domain::token::Role;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};

use crate::grpcurl::grpcurl;
use crate::helpers::{spawn_app_with, Backend};
use crate::ingest::valid_fields;

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, as
/// PEM files in a folder of their own.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca.pem());
        let leaf = |names: Vec<String>, usage, cert: &str, key: &str| {
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let key_pair = KeyPair::generate().unwrap();
            let signed = params.signed_by(&key_pair, &ca).unwrap();
            write(cert, signed.pem());
            write(key, key_pair.serialize_pem());
        };
        leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server.pem",
            "server.key",
        );
        leaf(
            vec!["host-crm".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client.pem",
            "client.key",
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn files(&self, client_ca: bool) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: client_ca.then(|| self.path("ca.pem")),
        }
    }
}

/// An HTTP/1.1-only TLS client (ALPN "http/1.1" alone, as Python's urllib3 sends it).
async fn https_post(
    port: u16,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    token: &str,
    body: &[u8],
) -> std::io::Result<String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

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
