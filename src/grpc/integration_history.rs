//! IntegrationHistory: what the host CRM's "Dados ERP" page calls.

use std::pin::Pin;

use chrono::Utc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::{authenticate, authorize, tenant_call};
use super::convert;
use super::pb::{self, integration_history_server::IntegrationHistory};
use crate::app::AppState;
use crate::domain::tables::TABLES;
use crate::domain::tenant::{ScheduleUpdate, SettingsInput, SettingsUpdate};
use crate::domain::token::Role;
use crate::error::{AppError, FieldViolation, Result};
use crate::{overview, storage::tenants};

const SERVICE: &str = "IntegrationHistory";

/// The service, over the shared application state.
pub struct Service {
    state: AppState,
}

impl Service {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn tenant<T>(
        &self,
        req: &Request<T>,
        tenant_id: &str,
    ) -> Result<crate::domain::tenant::TenantId> {
        tenant_call(&self.state, req, Role::Crm, SERVICE, tenant_id).await
    }

    /// Checks auth, then answers UNIMPLEMENTED naming what is still missing.
    async fn not_yet<T>(&self, req: &Request<T>, tenant_id: &str, what: &str) -> Status {
        match self.tenant(req, tenant_id).await {
            Err(e) => e.into(),
            Ok(_) => AppError::Unimplemented(format!("{what} is not implemented yet")).into(),
        }
    }

    async fn update_schedule(
        &self,
        req: Request<pb::UpdateScheduleRequest>,
    ) -> Result<pb::Overview> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let update = ScheduleUpdate::parse(convert::schedule_input(req.into_inner()))
            .map_err(AppError::InvalidFields)?;
        let now = Utc::now();
        tenants::update(&self.state.db, &tenant, |t| {
            update.apply(t, now);
            Ok(())
        })
        .await?;
        tracing::info!(tenant = %tenant, "schedule updated");
        Ok(convert::overview(
            overview::load(&self.state.db, &tenant, now).await?,
        ))
    }

    async fn update_settings(
        &self,
        req: Request<pb::UpdateSettingsRequest>,
    ) -> Result<pb::Overview> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let deployment_status = convert::deployment_status_from(req.deployment_status)
            .unwrap_or_else(|| {
                violations.push(FieldViolation::new("deployment_status", "unknown value"));
                None
            });
        let integration_type =
            convert::integration_type_from(req.integration_type).unwrap_or_else(|| {
                violations.push(FieldViolation::new("integration_type", "unknown value"));
                None
            });
        let parsed = SettingsUpdate::parse(SettingsInput {
            name: req.name,
            erp_name: req.erp_name,
            erp_version: req.erp_version,
            deployment_status,
            business_rule: req.business_rule,
            integration_type,
        });
        let update = match parsed {
            Ok(u) if violations.is_empty() => u,
            Ok(_) => return Err(AppError::InvalidFields(violations)),
            Err(mut more) => {
                violations.append(&mut more);
                return Err(AppError::InvalidFields(violations));
            }
        };
        let now = Utc::now();
        tenants::update(&self.state.db, &tenant, |t| {
            update.apply(t, now);
            Ok(())
        })
        .await?;
        tracing::info!(tenant = %tenant, "settings updated");
        Ok(convert::overview(
            overview::load(&self.state.db, &tenant, now).await?,
        ))
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl IntegrationHistory for Service {
    async fn get_overview(
        &self,
        req: Request<pb::GetOverviewRequest>,
    ) -> Result<Response<pb::Overview>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let o = overview::load(&self.state.db, &tenant, Utc::now()).await?;
        Ok(Response::new(convert::overview(o)))
    }

    async fn update_schedule(
        &self,
        req: Request<pb::UpdateScheduleRequest>,
    ) -> Result<Response<pb::Overview>, Status> {
        Ok(Response::new(Service::update_schedule(self, req).await?))
    }

    async fn update_settings(
        &self,
        req: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::Overview>, Status> {
        Ok(Response::new(Service::update_settings(self, req).await?))
    }

    type StreamLogsStream = EventStream<pb::LogEvent>;

    async fn stream_logs(
        &self,
        req: Request<pb::StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "StreamLogs (the live log stream)",
            )
            .await)
    }

    type ExportHistoryStream = EventStream<pb::ExportChunk>;

    async fn export_history(
        &self,
        req: Request<pb::ExportHistoryRequest>,
    ) -> Result<Response<Self::ExportHistoryStream>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ExportHistory (the Excel export of the request log)",
            )
            .await)
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ListRuns (the sync worker's run log)",
            )
            .await)
    }

    async fn get_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "GetRun (the sync worker's run detail)",
            )
            .await)
    }

    async fn trigger_sync(
        &self,
        req: Request<pb::TriggerSyncRequest>,
    ) -> Result<Response<pb::TriggerSyncResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "TriggerSync (the sync worker)",
            )
            .await)
    }

    async fn list_tables(
        &self,
        req: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        // The catalog is the same for every tenant: any crm token may read it.
        let grant = authenticate(&self.state, &req).await?;
        authorize(&grant, Role::Crm, SERVICE, None)?;
        Ok(Response::new(pb::ListTablesResponse {
            tables: TABLES.iter().map(convert::table_info).collect(),
        }))
    }

    async fn list_pending_deletes(
        &self,
        req: Request<pb::ListPendingDeletesRequest>,
    ) -> Result<Response<pb::ListPendingDeletesResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ListPendingDeletes (the delete guard)",
            )
            .await)
    }

    async fn resolve_pending_deletes(
        &self,
        req: Request<pb::ResolvePendingDeletesRequest>,
    ) -> Result<Response<pb::ResolvePendingDeletesResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ResolvePendingDeletes (the delete guard)",
            )
            .await)
    }

    async fn get_abc_report(
        &self,
        req: Request<pb::GetAbcReportRequest>,
    ) -> Result<Response<pb::AbcReport>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "GetAbcReport (the ABC-curve analysis)",
            )
            .await)
    }

    async fn list_companies(
        &self,
        req: Request<pb::ListCompaniesRequest>,
    ) -> Result<Response<pb::ListCompaniesResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ListCompanies (the CRM sink and categorization)",
            )
            .await)
    }

    async fn resolve_abc_shift(
        &self,
        req: Request<pb::ResolveAbcShiftRequest>,
    ) -> Result<Response<pb::ResolveAbcShiftResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ResolveAbcShift (the ABC shift guard)",
            )
            .await)
    }
}
