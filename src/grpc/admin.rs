//! Admin: the host backend's provisioning (tenants, tokens, sinks, removal, export) and
//! the alert feed across tenants, for a token of role `admin` only.

mod purge;
mod request;
mod sink;
mod tenants;
mod tokens;

use tonic::{Request, Response, Status};

use self::request::EventStream;
use super::auth::grant;
use super::convert::{self, check_text, RequestText};
use super::pb::{self, admin_server};
use crate::alert_feed::AlertFeed;
use crate::auth::{authorize, Tokens};
use crate::domain::token::Role;
use crate::error::Result;
use crate::services::Services;
use crate::tenants::Tenants;

const SERVICE: &str = "Admin";

/// The service: transport over the services provisioning uses.
pub struct Service {
    /// Provisioning of tenants.
    tenants: Tenants,
    /// Issuing, listing and revoking tokens.
    tokens: Tokens,
    /// DeleteTenant and ExportTenant.
    purge: crate::purge::Purge,
    /// WatchAlerts.
    alerts: AlertFeed,
    /// The tenants' own sinks.
    sinks: crate::worker::tenant_sink::Sinks,
}

impl Service {
    /// A service over the handles of `services` it uses.
    pub fn new(services: &Services) -> Self {
        Self {
            tenants: services.tenants.clone(),
            tokens: services.tokens.clone(),
            purge: crate::purge::Purge::new(services.db.clone()),
            alerts: services.alerts.clone(),
            sinks: services.worker.sinks().clone(),
        }
    }

    /// Authorizes the call's admin token.
    fn admin<T>(&self, req: &Request<T>) -> Result<()> {
        authorize(grant(req)?, Role::Admin, SERVICE, None)
    }

    /// Authorizes the call's admin token, then checks the request's text fields (no NUL,
    /// bounded length) before any of them is parsed or queried.
    fn checked<T: RequestText>(&self, req: &Request<T>) -> Result<()> {
        self.admin(req)?;
        check_text(req.get_ref())
    }
}

#[tonic::async_trait]
impl admin_server::Admin for Service {
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        Ok(Response::new(self.create_tenant_call(req).await?))
    }

    async fn update_tenant(
        &self,
        req: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        Ok(Response::new(self.update_tenant_call(req).await?))
    }

    async fn get_tenant(
        &self,
        req: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        Ok(Response::new(self.get_tenant_call(req).await?))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        Ok(Response::new(self.list_tenants_call(req).await?))
    }

    async fn issue_token(
        &self,
        req: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Ok(Response::new(self.issue_token_call(req).await?))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        Ok(Response::new(self.list_tokens_call(req).await?))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        Ok(Response::new(self.revoke_token_call(req).await?))
    }

    async fn set_tenant_sink(
        &self,
        req: Request<pb::SetTenantSinkRequest>,
    ) -> Result<Response<pb::TenantSink>, Status> {
        self.admin(&req)?;
        let sink = sink::set_tenant_sink(&self.sinks, req.into_inner()).await?;
        Ok(Response::new(sink))
    }

    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        self.admin(&req)?;
        purge::delete_tenant(&self.purge, req.into_inner()).await
    }

    type ExportTenantStream = EventStream<pb::ExportTenantChunk>;

    async fn export_tenant(
        &self,
        req: Request<pb::ExportTenantRequest>,
    ) -> Result<Response<Self::ExportTenantStream>, Status> {
        self.admin(&req)?;
        purge::export_tenant(&self.purge, req.into_inner()).await
    }

    type WatchAlertsStream = EventStream<pb::AlertEvent>;

    async fn watch_alerts(
        &self,
        req: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        self.admin(&req)?;
        let token = grant(&req)?.token_id.clone();
        let req = req.into_inner();
        let tenants = convert::watched_tenants(&req.tenant_ids)?;
        let feed = self
            .alerts
            .watch(&token, tenants, &req.after_cursor)
            .await?;
        Ok(Response::new(Box::pin(convert::alert_events(feed))))
    }
}
