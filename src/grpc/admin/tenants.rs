//! Admin's tenant calls: CreateTenant, UpdateTenant, GetTenant, ListTenants (authorize,
//! check the request's text, convert, delegate to [`crate::tenants`]).

use tonic::Request;

use super::super::convert;
use super::super::pb;
use super::request::tenant_id;
use super::Service;
use crate::domain::page_token::page_size;
use crate::domain::tenant::{ScheduleUpdate, Tenant};
use crate::error::{AppError, FieldViolation, Result};
use crate::tenants::TenantFilter;

impl Service {
    /// The tenant as answered: with its health and sink.
    async fn answer(&self, t: Tenant) -> Result<pb::Tenant> {
        Ok(convert::tenant(self.tenants.info(t).await?))
    }

    pub(super) async fn create_tenant_call(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<pb::Tenant> {
        self.checked(&req)?;
        let new = convert::new_tenant(req.into_inner()).map_err(AppError::InvalidFields)?;
        let t = self.tenants.create(new).await?;
        self.answer(t).await
    }

    pub(super) async fn update_tenant_call(
        &self,
        req: Request<pb::UpdateTenantRequest>,
    ) -> Result<pb::Tenant> {
        self.checked(&req)?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let tenant = tenant_id(&req.tenant_id)
            .map_err(|v| violations.push(v))
            .ok();
        let settings = req
            .settings
            .map(convert::settings_update)
            .transpose()
            .map_err(|v| violations.extend(convert::nested("settings", v)))
            .ok()
            .flatten();
        let schedule = req
            .schedule
            .map(|s| ScheduleUpdate::parse(convert::schedule_input(s)))
            .transpose()
            .map_err(|v| violations.extend(convert::nested("schedule", v)))
            .ok()
            .flatten();
        let Some(tenant) = tenant.filter(|_| violations.is_empty()) else {
            return Err(AppError::InvalidFields(violations));
        };
        let t = self
            .tenants
            .update(&tenant, settings, schedule)
            .await
            .map_err(|e| match e {
                AppError::InvalidFields(v) => {
                    AppError::InvalidFields(convert::nested("settings", v))
                }
                other => other,
            })?;
        self.answer(t).await
    }

    pub(super) async fn get_tenant_call(
        &self,
        req: Request<pb::GetTenantRequest>,
    ) -> Result<pb::Tenant> {
        self.checked(&req)?;
        let tenant =
            tenant_id(&req.get_ref().tenant_id).map_err(|v| AppError::InvalidFields(vec![v]))?;
        let t = self.tenants.get(&tenant).await?;
        self.answer(t).await
    }

    pub(super) async fn list_tenants_call(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<pb::ListTenantsResponse> {
        self.checked(&req)?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let page_size = page_size(req.page_size, 100, 1000).unwrap_or_else(|v| {
            violations.push(v);
            0
        });
        let integration_type =
            convert::integration_type_from(req.integration_type).unwrap_or_else(|| {
                violations.push(FieldViolation::new("integration_type", "unknown value"));
                None
            });
        let health = convert::health_from(req.health).unwrap_or_else(|| {
            violations.push(FieldViolation::new("health", "unknown value"));
            None
        });
        if !violations.is_empty() {
            return Err(AppError::InvalidFields(violations));
        }
        let filter = TenantFilter {
            integration_type,
            health,
        };
        let page = self
            .tenants
            .page(filter, page_size, &req.page_token)
            .await?;
        Ok(pb::ListTenantsResponse {
            tenants: page.items.into_iter().map(convert::tenant).collect(),
            next_page_token: page.next_page_token,
        })
    }
}
