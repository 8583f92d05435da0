//! Admin: the host backend's provisioning (tenants, tokens, sinks, removal, export) and
//! the alert feed across tenants, for a token of role `admin` only.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::grant;
use super::pb::{self, admin_server};
use crate::auth::authorize;
use crate::domain::token::Role;
use crate::error::Result;
use crate::services::Services;

const SERVICE: &str = "Admin";

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service: transport over the services provisioning uses.
pub struct Service {
    /// The tenants' own sinks.
    sinks: crate::worker::tenant_sink::Sinks,
}

impl Service {
    /// A service over the handles of `services` it uses.
    pub fn new(services: &Services) -> Self {
        Self {
            sinks: services.worker.sinks.clone(),
        }
    }

    /// Authorizes the call's admin token.
    fn admin<T>(&self, req: &Request<T>) -> Result<()> {
        authorize(grant(req)?, Role::Admin, SERVICE, None)
    }
}

fn todo(method: &str) -> Status {
    Status::unimplemented(format!("Admin.{method} is not implemented yet"))
}

#[tonic::async_trait]
impl admin_server::Admin for Service {
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.admin(&req)?;
        Err(todo("CreateTenant"))
    }

    async fn update_tenant(
        &self,
        req: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.admin(&req)?;
        Err(todo("UpdateTenant"))
    }

    async fn get_tenant(
        &self,
        req: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.admin(&req)?;
        Err(todo("GetTenant"))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.admin(&req)?;
        Err(todo("ListTenants"))
    }

    async fn issue_token(
        &self,
        req: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        self.admin(&req)?;
        Err(todo("IssueToken"))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        self.admin(&req)?;
        Err(todo("ListTokens"))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        self.admin(&req)?;
        Err(todo("RevokeToken"))
    }

    async fn set_tenant_sink(
        &self,
        req: Request<pb::SetTenantSinkRequest>,
    ) -> Result<Response<pb::TenantSink>, Status> {
        self.admin(&req)?;
        let sink = super::admin_sink::set_tenant_sink(&self.sinks, req.into_inner()).await?;
        Ok(Response::new(sink))
    }

    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        self.admin(&req)?;
        Err(todo("DeleteTenant"))
    }

    type ExportTenantStream = EventStream<pb::ExportTenantChunk>;

    async fn export_tenant(
        &self,
        req: Request<pb::ExportTenantRequest>,
    ) -> Result<Response<Self::ExportTenantStream>, Status> {
        self.admin(&req)?;
        Err(todo("ExportTenant"))
    }

    type WatchAlertsStream = EventStream<pb::AlertEvent>;

    async fn watch_alerts(
        &self,
        req: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        self.admin(&req)?;
        Err(todo("WatchAlerts"))
    }
}
