//! Tenants and tokens: creating them, `authed` requests, and tenant "acme" as most tests
//! see it ([`Ctx`]: its crm and erp tokens and the calls tests make on its behalf).

use std::time::Duration;

use erpsync::auth::Tokens;
use erpsync::domain::tenant::{NewTenant, SettingsInput, TenantId};
use erpsync::domain::token::{Role, TenantScope, TokenRequest};
use erpsync::grpc::pb::{
    self, integration_history_client::IntegrationHistoryClient, GetAbcReportRequest,
    GetCompanyHistoryRequest, GetOverviewRequest, GetRunRequest, ListCompaniesRequest, Record,
    TriggerSyncRequest,
};
use erpsync::storage::crm;
use tonic::{metadata::MetadataValue, transport::Channel, Request};

use super::servers::TestApp;

impl TestApp {
    /// Creates a tenant with the product defaults, through the tenants service (what
    /// Admin.CreateTenant and `erpsync tenant create` call).
    pub async fn create_tenant(&self, id: &str) -> TenantId {
        self.state
            .tenants
            .create(new_tenant(id, &format!("Tenant {id}")))
            .await
            .unwrap_or_else(|e| panic!("creating tenant {id}: {e:?}"))
            .id
    }

    /// Grants `tenant` the View source `url` names, as `erpsync tenant grant-view-source`
    /// does, within this server's list (the test sources: [`test_view_sources`](super::servers::test_view_sources)).
    pub async fn grant_view_source(&self, tenant: &str, url: &str) {
        let id = TenantId::parse(tenant).unwrap();
        self.state
            .views
            .grant(&id, url)
            .await
            .unwrap_or_else(|e| panic!("granting {url} to {tenant}: {e:?}"));
    }

    /// Issues a token of `role` for `tenants` (empty: every tenant) through the server's
    /// tokens service and returns the secret.
    pub async fn token(&self, role: Role, tenants: &[&TenantId]) -> String {
        let scope = if tenants.is_empty() {
            TenantScope::All
        } else {
            TenantScope::Listed(tenants.iter().map(|t| (*t).clone()).collect())
        };
        issue(&self.state.tokens, role, scope, "").await
    }
}

/// Issues a token of `role` for `scope` labelled `label` (may be "") with `tokens`, as
/// Admin.IssueToken and `erpsync token issue` do, and returns its secret.
pub async fn issue(tokens: &Tokens, role: Role, scope: TenantScope, label: &str) -> String {
    let request = TokenRequest {
        role,
        scope,
        expires_in_days: None,
        label: label.to_owned(),
    };
    let (new, _) = tokens
        .issue(request)
        .await
        .unwrap_or_else(|e| panic!("issuing a {role:?} token: {e:?}"));
    new.secret
}

/// What a host asks for to create tenant `id` named `name`, leaving the rest to the
/// product's defaults.
pub fn new_tenant(id: &str, name: &str) -> NewTenant {
    NewTenant {
        id: id.to_owned(),
        name: name.to_owned(),
        timezone: None,
        settings: SettingsInput::default(),
    }
}

/// The id of tenant "acme", the tenant most tests use.
pub(crate) fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    let v: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    req.metadata_mut().insert("authorization", v);
    req
}

/// Tenant acme on a server, with a crm and an erp token and an IntegrationHistory client.
pub(crate) struct Ctx {
    pub(crate) app: TestApp,
    pub(crate) crm: String,
    pub(crate) erp: String,
    pub(crate) history: IntegrationHistoryClient<Channel>,
}

/// Tenant "acme" with a crm and an erp token.
pub(crate) async fn setup(app: TestApp) -> Ctx {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let history = app.history().await;
    Ctx {
        app,
        crm,
        erp,
        history,
    }
}

impl Ctx {
    /// Pushes `records` to acme's `table` (all accepted); the push's request id.
    pub(crate) async fn push(&self, table: &str, records: Vec<Record>) -> String {
        let reply = self.push_answer(table, records).await;
        assert!(reply.rejected.is_empty(), "{:?}", reply.rejected);
        reply.request_id
    }

    /// Pushes `records` to acme's `table`; the server's answer, rejections and all.
    pub(crate) async fn push_answer(&self, table: &str, records: Vec<Record>) -> pb::PushResponse {
        self.app
            .ingest()
            .await
            .push(authed(
                pb::PushRequest {
                    tenant_id: "acme".into(),
                    table: table.into(),
                    records,
                },
                &self.erp,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Triggers a run (none may be running) and returns its id.
    pub(crate) async fn trigger(&mut self) -> String {
        let started = self
            .history
            .trigger_sync(authed(
                TriggerSyncRequest {
                    tenant_id: "acme".into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!started.already_running);
        started.run.unwrap().run_id
    }

    /// GetRun of acme's run `run_id`.
    pub(crate) async fn get_run(&mut self, run_id: &str) -> pb::GetRunResponse {
        self.history
            .get_run(authed(
                GetRunRequest {
                    tenant_id: "acme".into(),
                    run_id: run_id.into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Triggers a run and waits for its end (bounded), returning GetRun's answer.
    pub(crate) async fn run(&mut self) -> pb::GetRunResponse {
        let run_id = self.trigger().await;
        for _ in 0..2400 {
            let got = self.get_run(&run_id).await;
            if got.run.as_ref().unwrap().status() != pb::RunStatus::Running {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {run_id} did not finish in 60 s");
    }

    /// acme's overview.
    pub(crate) async fn overview(&mut self) -> pb::Overview {
        self.history
            .get_overview(authed(
                GetOverviewRequest {
                    tenant_id: "acme".into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// The external ids of the companies acme's embedded CRM holds.
    pub(crate) async fn crm_companies(&self) -> Vec<String> {
        let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
        crm::companies(&self.app.state.db, &tenant, "", 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.external_id)
            .collect()
    }
}

/// ListCompanies of acme with `req` (its tenant set to acme).
pub(crate) async fn list_companies(
    ctx: &mut Ctx,
    req: ListCompaniesRequest,
) -> pb::ListCompaniesResponse {
    ctx.history
        .list_companies(authed(
            ListCompaniesRequest {
                tenant_id: "acme".into(),
                ..req
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Every company ListCompanies answers for acme (its first page, unfiltered).
pub(crate) async fn all_companies(ctx: &mut Ctx) -> Vec<pb::Company> {
    list_companies(ctx, ListCompaniesRequest::default())
        .await
        .companies
}

/// Acme's GetAbcReport.
pub(crate) async fn report(ctx: &mut Ctx) -> pb::AbcReport {
    ctx.history
        .get_abc_report(authed(
            GetAbcReportRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// GetCompanyHistory of acme's company `id`.
pub(crate) async fn company_history(
    ctx: &mut Ctx,
    id: &str,
) -> Result<pb::GetCompanyHistoryResponse, tonic::Status> {
    ctx.history
        .get_company_history(authed(
            GetCompanyHistoryRequest {
                tenant_id: "acme".into(),
                external_id: id.into(),
            },
            &ctx.crm,
        ))
        .await
        .map(|r| r.into_inner())
}
