//! Per-tenant sinks (Admin.SetTenantSink): a tenant with a sink of its own delivers
//! there, with its own secret (the host refuses a wrong one), the others to the
//! server's; clearing it brings the tenant back to the server's. A tenant's `grpcs://`
//! sink is checked against the server's --crm-sink-ca. Only an admin sets one, a bad
//! address or secret changes nothing, and the secret never comes back out.

use std::sync::Arc;
use std::time::Duration;

use erpsync::config::SinkAccess;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::crm_sink_client::SinkTarget;
use erpsync::grpc::pb::{self, admin_client::AdminClient};
use tonic::transport::{Certificate, Channel, Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::seed::{record, valid_fields};
use crate::helpers::servers::app_with_sink_target;
use crate::helpers::sinks::{start_host, HostCrm, HostCrmService};
use crate::helpers::{authed, Backend, TestApp};
use crate::pki::Pki;

const SECRET: &str = "acme-s3cret-for-its-own-sink";

crate::both_backends!(
    backend:
    each_tenant_delivers_to_its_own_sink_or_the_servers,
    a_tenant_sink_whose_certificate_another_ca_signed_fails_the_run,
    only_an_admin_sets_a_tenant_sink_and_a_bad_one_changes_nothing,
    a_sink_secret_needs_the_servers_secret_key,
);

/// A host sink in clear that refuses any call without `Bearer <secret>`
/// (UNAUTHENTICATED); its port.
async fn guarded_host(host: Arc<HostCrm>, secret: &str) -> u16 {
    serve_host(host, secret, None).await
}

/// A host sink, over TLS with `pki`'s server certificate when given, checking `secret`.
async fn serve_host(host: Arc<HostCrm>, secret: &str, pki: Option<&Pki>) -> u16 {
    let expected = format!("Bearer {secret}");
    let check = move |req: tonic::Request<()>| match req
        .metadata()
        .get("authorization")
        .map(|v| v.to_str())
    {
        Some(Ok(v)) if v == expected => Ok(req),
        _ => Err(Status::unauthenticated("who are you?")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::builder();
    if let Some(pki) = pki {
        let read = |name: &str| std::fs::read(pki.path(name)).unwrap();
        server = server
            .tls_config(
                ServerTlsConfig::new()
                    .identity(Identity::from_pem(read("server.pem"), read("server.key")))
                    .client_ca_root(Certificate::from_pem(read("ca.pem"))),
            )
            .unwrap();
    }
    tokio::spawn(
        server
            .add_service(pb::crm_sink_server::CrmSinkServer::with_interceptor(
                HostCrmService(host),
                check,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    port
}

/// Two tenants, acme and beta, each with crm and erp tokens, an admin token, on a
/// server delivering to the host `server_wide` (port) and reaching TLS sinks as
/// `access` says.
struct Ctx {
    app: TestApp,
    admin: String,
    crm: String,
    erp: [(TenantId, String); 2],
}

impl Ctx {
    async fn new(backend: Backend, server_wide: u16, access: SinkAccess) -> Self {
        Self::with(backend, server_wide, move |c| c.crm_sink_access = access).await
    }

    async fn with(
        backend: Backend,
        server_wide: u16,
        tune: impl FnOnce(&mut erpsync::config::Config),
    ) -> Self {
        let target = SinkTarget::new(
            &format!("grpc://127.0.0.1:{server_wide}"),
            &Default::default(),
        )
        .unwrap();
        let app = app_with_sink_target(backend, target, tune).await;
        let (acme, beta) = (
            app.create_tenant("acme").await,
            app.create_tenant("beta").await,
        );
        let admin = app.token(Role::Admin, &[]).await;
        let crm = app.token(Role::Crm, &[&acme, &beta]).await;
        let erp = [
            (acme.clone(), app.token(Role::Erp, &[&acme]).await),
            (beta.clone(), app.token(Role::Erp, &[&beta]).await),
        ];
        Self {
            app,
            admin,
            crm,
            erp,
        }
    }

    async fn admin_client(&self) -> AdminClient<Channel> {
        AdminClient::connect(self.app.url()).await.unwrap()
    }

    /// SetTenantSink as `token`.
    async fn set(
        &self,
        token: &str,
        tenant: &str,
        address: &str,
        secret: &str,
        clear: bool,
    ) -> Result<pb::TenantSink, Status> {
        self.admin_client()
            .await
            .set_tenant_sink(authed(
                pb::SetTenantSinkRequest {
                    tenant_id: tenant.into(),
                    address: address.into(),
                    secret: secret.into(),
                    clear,
                },
                token,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Pushes company `id` to `tenant` (0: acme, 1: beta).
    async fn push(&self, tenant: usize, id: &str) {
        let (t, token) = &self.erp[tenant];
        let reply = self
            .app
            .ingest()
            .await
            .push(authed(
                pb::PushRequest {
                    tenant_id: t.to_string(),
                    table: "company".into(),
                    records: vec![record(id, &valid_fields("company"))],
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(reply.rejected.is_empty(), "{:?}", reply.rejected);
    }

    /// Runs `tenant` to its end (bounded) and returns the run with its log.
    async fn run(&self, tenant: &str) -> pb::GetRunResponse {
        let mut history = self.app.history().await;
        let started = history
            .trigger_sync(authed(
                pb::TriggerSyncRequest {
                    tenant_id: tenant.into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner();
        let run_id = started.run.unwrap().run_id;
        for _ in 0..2400 {
            let got = history
                .get_run(authed(
                    pb::GetRunRequest {
                        tenant_id: tenant.into(),
                        run_id: run_id.clone(),
                    },
                    &self.crm,
                ))
                .await
                .unwrap()
                .into_inner();
            if got.run.as_ref().unwrap().status() != pb::RunStatus::Running {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the run of {tenant} did not finish in 60 s");
    }

    async fn overview(&self, tenant: &str) -> pb::Overview {
        self.app
            .history()
            .await
            .get_overview(authed(
                pb::GetOverviewRequest {
                    tenant_id: tenant.into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

/// The companies `host` received, per tenant, and forgets them.
fn received(host: &HostCrm) -> Vec<(String, Vec<String>)> {
    std::mem::take(&mut *host.calls.lock().unwrap())
        .into_iter()
        .filter(|(method, _, _)| method == "UpsertCompanies")
        .map(|(_, tenant, ids)| (tenant, ids))
        .collect()
}

async fn each_tenant_delivers_to_its_own_sink_or_the_servers(backend: Backend) {
    let (shared, shared_port) = start_host().await;
    let own = Arc::new(HostCrm::default());
    let own_port = guarded_host(own.clone(), SECRET).await;
    let ctx = Ctx::new(backend, shared_port, SinkAccess::default()).await;
    let own_address = format!("grpc://127.0.0.1:{own_port}");
    let shared_address = format!("grpc://127.0.0.1:{shared_port}");

    let set = ctx
        .set(&ctx.admin, "acme", &own_address, SECRET, false)
        .await
        .unwrap();
    assert_eq!(
        (set.tenant_id.as_str(), set.address.as_str(), set.has_secret),
        ("acme", own_address.as_str(), true)
    );
    assert_eq!(ctx.overview("acme").await.crm_sink, own_address);
    assert_eq!(ctx.overview("beta").await.crm_sink, shared_address);

    ctx.push(0, "a1").await;
    ctx.push(1, "b1").await;
    for tenant in ["acme", "beta"] {
        let run = ctx.run(tenant).await.run.unwrap();
        assert_eq!(
            run.status(),
            pb::RunStatus::Success,
            "{tenant}: {:?}",
            run.errors
        );
    }
    assert_eq!(received(&own), [("acme".to_owned(), vec!["a1".to_owned()])]);
    assert_eq!(
        received(&shared),
        [("beta".to_owned(), vec!["b1".to_owned()])]
    );
    // The host's counts are asked of the tenant's own sink too.
    assert_eq!(own.counted.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A secret the tenant's host refuses fails its run, and is never shown.
    let wrong = "not-acmes-s3cret";
    ctx.set(&ctx.admin, "acme", &own_address, wrong, false)
        .await
        .unwrap();
    ctx.push(0, "a2").await;
    let got = ctx.run("acme").await;
    let run = got.run.clone().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed, "{:?}", run.errors);
    assert!(
        run.errors
            .iter()
            .any(|e| e.contains("Unauthenticated") && e.contains(&own_address)),
        "{:?}",
        run.errors
    );
    let shown = format!("{got:?}{:?}", ctx.overview("acme").await);
    assert!(!shown.contains(wrong) && !shown.contains(SECRET), "{shown}");
    assert!(received(&own).is_empty() && received(&shared).is_empty());

    // Cleared: acme delivers to the server's sink again (what its failed run left too).
    let cleared = ctx.set(&ctx.admin, "acme", "", "", true).await.unwrap();
    assert_eq!((cleared.address.as_str(), cleared.has_secret), ("", false));
    assert_eq!(ctx.overview("acme").await.crm_sink, shared_address);
    let run = ctx.run("acme").await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    assert_eq!(
        received(&shared),
        [("acme".to_owned(), vec!["a2".to_owned()])]
    );
    assert!(received(&own).is_empty());
}

async fn a_tenant_sink_whose_certificate_another_ca_signed_fails_the_run(backend: Backend) {
    let (ours, theirs) = (Pki::new(), Pki::new());
    let (_shared, shared_port) = start_host().await;
    // The tenant's sink presents a certificate of another CA than the server trusts.
    let other = Arc::new(HostCrm::default());
    let other_port = serve_host(other.clone(), SECRET, Some(&theirs)).await;
    let trusted = Arc::new(HostCrm::default());
    let trusted_port = serve_host(trusted.clone(), SECRET, Some(&ours)).await;
    let access = SinkAccess {
        ca: Some(ours.path("ca.pem")),
        identity: Some((ours.path("client.pem"), ours.path("client.key"))),
        token: None,
    };
    let ctx = Ctx::new(backend, shared_port, access).await;
    let address = format!("grpcs://localhost:{other_port}");
    ctx.set(&ctx.admin, "acme", &address, SECRET, false)
        .await
        .unwrap();
    ctx.push(0, "a1").await;
    let run = ctx.run("acme").await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed, "{:?}", run.errors);
    assert!(
        run.errors
            .iter()
            .any(|e| e.contains(&address) && e.contains("certificate")),
        "the error names the sink and its certificate: {:?}",
        run.errors
    );
    assert!(
        other.calls.lock().unwrap().is_empty(),
        "the host got a call"
    );
    // The same over a sink the server's CA signed: delivered, with erpsync's certificate.
    ctx.set(
        &ctx.admin,
        "acme",
        &format!("grpcs://localhost:{trusted_port}"),
        SECRET,
        false,
    )
    .await
    .unwrap();
    let run = ctx.run("acme").await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    assert_eq!(
        received(&trusted),
        [("acme".to_owned(), vec!["a1".to_owned()])]
    );
}

/// Whether `status` names `field`: a BadRequest violation of it.
fn names(status: &Status, field: &str) -> bool {
    status
        .get_details_bad_request()
        .is_some_and(|b| b.field_violations.iter().any(|v| v.field == field))
}

async fn only_an_admin_sets_a_tenant_sink_and_a_bad_one_changes_nothing(backend: Backend) {
    let (_shared, shared_port) = start_host().await;
    let ctx = Ctx::new(backend, shared_port, SinkAccess::default()).await;
    let good = "grpcs://crm.example.com:443";
    ctx.set(&ctx.admin, "acme", good, SECRET, false)
        .await
        .unwrap();
    let erp = ctx.erp[0].1.clone();
    for token in [ctx.crm.as_str(), erp.as_str()] {
        for clear in [false, true] {
            let err = ctx
                .set(token, "acme", "grpc://127.0.0.1:1", "", clear)
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        }
    }
    for bad in [
        "",
        "crm:50052",
        "http://crm:50052",
        "postgres://crm:5432/db",
        "grpc://user:pw@crm:50052",
        "grpc://crm:50052/path",
        "grpc://crm :50052",
    ] {
        let err = ctx
            .set(&ctx.admin, "acme", bad, "", false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        assert!(names(&err, "address"), "{bad}: {err:?}");
        assert!(!err.message().contains("pw"), "{err:?}");
    }
    for bad in ["has space", "nul\0inside", &"s".repeat(4097)] {
        let err = ctx
            .set(&ctx.admin, "acme", "grpc://crm:50052", bad, false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(names(&err, "secret"), "{err:?}");
        assert!(!format!("{err:?}").contains(bad), "the secret is shown");
    }
    let err = ctx
        .set(&ctx.admin, "acme", "grpc://crm:50052", "", true)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "clear with an address: {err:?}"
    );
    for (address, clear) in [("grpc://crm:50052", false), ("", true)] {
        let err = ctx
            .set(&ctx.admin, "nobody", address, "", clear)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
    // Nothing of it changed what acme delivers to.
    assert_eq!(ctx.overview("acme").await.crm_sink, good);
    let kept = ctx
        .set(&ctx.admin, "acme", good, SECRET, false)
        .await
        .unwrap();
    assert!(kept.has_secret);
    let shown = format!("{kept:?}{:?}", ctx.overview("acme").await);
    assert!(!shown.contains(SECRET), "{shown}");
}

async fn a_sink_secret_needs_the_servers_secret_key(backend: Backend) {
    let (_shared, shared_port) = start_host().await;
    let ctx = Ctx::with(backend, shared_port, |c| c.secret_key = None).await;
    let err = ctx
        .set(&ctx.admin, "acme", "grpc://crm:50052", SECRET, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("ERPSYNC_SECRET_KEY"), "{err:?}");
    assert_eq!(
        ctx.overview("acme").await.crm_sink,
        format!("grpc://127.0.0.1:{shared_port}")
    );
    // Without a secret, nothing needs sealing.
    let set = ctx
        .set(&ctx.admin, "acme", "grpc://crm:50052", "", false)
        .await
        .unwrap();
    assert!(!set.has_secret);
}
