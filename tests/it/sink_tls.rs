//! A host sink erpsync reaches over TLS (`grpcs://`, the host's CA, erpsync's client
//! certificate) and to which it proves itself with a secret on every call: the host's
//! test sink checks both. A sink whose certificate another CA signed is refused, and a
//! secret the host refuses fails the run without the secret appearing anywhere.

use std::sync::Arc;

use erpsync::config::SinkAccess;
use erpsync::grpc::crm_sink_client::SinkTarget;
use erpsync::grpc::pb;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::helpers::seed::{record, valid_fields};
use crate::helpers::servers::app_with_sink_target;
use crate::helpers::sinks::{HostCrm, HostCrmService};
use crate::helpers::tenants::setup;
use crate::helpers::{Backend, TestApp};
use crate::pki::Pki;

const SECRET: &str = "s3cret-of-the-host";

crate::both_backends!(
    backend:
    a_tls_sink_receives_every_call_with_erpsyncs_certificate_and_secret,
    a_sink_whose_certificate_another_ca_signed_receives_nothing,
    a_secret_the_host_refuses_fails_the_run_and_is_never_shown,
);

/// The host's CrmSink over mutual TLS with `server` (its certificate) and `clients` (the
/// CA of the client certificates it accepts), refusing any call without `secret`; its
/// port.
async fn host_sink(server: &Pki, clients: &Pki, host: Arc<HostCrm>) -> u16 {
    let read = |pki: &Pki, name: &str| std::fs::read(pki.path(name)).unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(server, "server.pem"),
            read(server, "server.key"),
        ))
        .client_ca_root(Certificate::from_pem(read(clients, "ca.pem")));
    let expected = format!("Bearer {SECRET}");
    let check = move |req: tonic::Request<()>| match req
        .metadata()
        .get("authorization")
        .map(|v| v.to_str())
    {
        Some(Ok(v)) if v == expected => Ok(req),
        _ => Err(tonic::Status::unauthenticated("who are you?")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(pb::crm_sink_server::CrmSinkServer::with_interceptor(
                HostCrmService(host),
                check,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    port
}

/// erpsync delivering to `grpcs://localhost:port`, trusting `ca`'s CA, presenting its
/// client certificate, sending `secret`.
async fn erpsync_to(backend: Backend, port: u16, ca: &Pki, secret: &str) -> TestApp {
    let access = SinkAccess {
        ca: Some(ca.path("ca.pem")),
        identity: Some((ca.path("client.pem"), ca.path("client.key"))),
        token: Some(secret.to_owned()),
    };
    let target = SinkTarget::new(&format!("grpcs://localhost:{port}"), &access).unwrap();
    app_with_sink_target(backend, target, |_| {}).await
}

async fn a_tls_sink_receives_every_call_with_erpsyncs_certificate_and_secret(backend: Backend) {
    let pki = Pki::new();
    let host = Arc::new(HostCrm::default());
    let port = host_sink(&pki, &pki, host.clone()).await;
    let mut ctx = setup(erpsync_to(backend, port, &pki, SECRET).await).await;
    ctx.push(
        "company",
        (1..=3)
            .map(|i| record(&format!("c{i}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    let calls = host.calls.lock().unwrap().clone();
    let delivered: Vec<_> = calls.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
    assert_eq!(delivered, ["c1", "c2", "c3"], "{calls:?}");
}

async fn a_sink_whose_certificate_another_ca_signed_receives_nothing(backend: Backend) {
    let (ours, theirs) = (Pki::new(), Pki::new());
    let host = Arc::new(HostCrm::default());
    // The sink presents a certificate of another CA than the one erpsync trusts.
    let port = host_sink(&theirs, &ours, host.clone()).await;
    let mut ctx = setup(erpsync_to(backend, port, &ours, SECRET).await).await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed, "{:?}", run.errors);
    assert!(
        run.errors
            .iter()
            .any(|e| e.contains("grpcs://localhost:") && e.contains("certificate")),
        "the error names the sink and its certificate: {:?}",
        run.errors
    );
    assert!(host.calls.lock().unwrap().is_empty(), "the host got a call");
}

async fn a_secret_the_host_refuses_fails_the_run_and_is_never_shown(backend: Backend) {
    let pki = Pki::new();
    let host = Arc::new(HostCrm::default());
    let port = host_sink(&pki, &pki, host.clone()).await;
    let wrong = "not-the-hosts-secret";
    let mut ctx = setup(erpsync_to(backend, port, &pki, wrong).await).await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed, "{:?}", run.errors);
    assert!(
        run.errors.iter().any(|e| e.contains("Unauthenticated")),
        "{:?}",
        run.errors
    );
    assert!(host.calls.lock().unwrap().is_empty());
    let shown = format!("{:?}{:?}", run, got.log);
    assert!(!shown.contains(wrong), "the secret is shown: {shown}");
}
