//! IntegrationHistory: what the host CRM's "Dados ERP" page calls.

use std::pin::Pin;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::{grant, tenant_call};
use super::convert;
use super::pb::{self, integration_history_server::IntegrationHistory};
use crate::alert_feed::{AlertFeed, Tenants};
use crate::auth::authorize;
use crate::domain::abc::CompanyFilter;
use crate::domain::crm::{DeleteFilter, Resolution};
use crate::domain::language::Language;
use crate::domain::page_token::page_size;
use crate::domain::run::{EventFilter, Level, RunTrigger};
use crate::domain::tables::TABLES;
use crate::domain::tenant::{ScheduleUpdate, TenantId};
use crate::domain::text::excerpt;
use crate::domain::token::Role;
use crate::error::{AppError, FieldViolation, Result};
use crate::export::Exporter;
use crate::history::History;
use crate::logs::{self, LogHub};
use crate::services::Services;
use crate::throttle::TenantSlots;
use crate::view_admin::{ViewAdmin, ViewRequest};
use crate::viewdb::Naming;
use crate::worker::sync::{self, resolve_shift, ShiftAction};
use crate::worker::RunWorker;

const SERVICE: &str = "IntegrationHistory";

/// The service: transport over the services the page uses.
pub struct Service {
    history: History,
    worker: RunWorker,
    views: ViewAdmin,
    exporter: Exporter,
    logs: LogHub,
    log_streams: TenantSlots,
    alerts: AlertFeed,
}

impl Service {
    /// A service over the handles of `services` it uses.
    pub fn new(services: &Services) -> Self {
        Self {
            history: services.history.clone(),
            worker: services.worker.clone(),
            views: services.views.clone(),
            exporter: services.exporter.clone(),
            logs: services.logs.clone(),
            log_streams: services.log_streams.clone(),
            alerts: services.alerts.clone(),
        }
    }

    /// Authorizes the call's crm token on the request's tenant, then checks the request's
    /// text fields (no NUL, bounded length) before any of them is parsed or queried.
    fn tenant<T: convert::RequestText>(
        &self,
        req: &Request<T>,
        tenant_id: &str,
    ) -> Result<TenantId> {
        let tenant = tenant_call(req, Role::Crm, SERVICE, tenant_id)?;
        convert::check_text(req.get_ref())?;
        Ok(tenant)
    }

    /// Checks a StreamLogs request: every bad field is named.
    async fn log_request(
        &self,
        tenant: TenantId,
        req: pb::StreamLogsRequest,
    ) -> Result<logs::Request> {
        let mut violations = Vec::new();
        let min_level = match pb::LogLevel::try_from(req.min_level) {
            Ok(pb::LogLevel::Unspecified) => None,
            Ok(pb::LogLevel::Debug) => Some(Level::Debug),
            Ok(pb::LogLevel::Info) => Some(Level::Info),
            Ok(pb::LogLevel::Warn) => Some(Level::Warn),
            Ok(pb::LogLevel::Error) => Some(Level::Error),
            Err(_) => {
                violations.push(FieldViolation::new(
                    "min_level",
                    format!(
                        "unknown level {}: use DEBUG, INFO, WARN or ERROR",
                        req.min_level
                    ),
                ));
                None
            }
        };
        let non_empty =
            |field: &str, v: Option<String>, violations: &mut Vec<FieldViolation>| match v {
                Some(v) if v.trim().is_empty() => {
                    violations.push(FieldViolation::new(field, "must not be empty when set"));
                    None
                }
                other => other,
            };
        let run_id = non_empty("run_id", req.run_id, &mut violations);
        let stage = non_empty("stage", req.stage, &mut violations);
        let table = non_empty("table", req.table, &mut violations);
        if let Some(t) = &table {
            if crate::domain::tables::Table::parse(t).is_none() {
                violations.push(FieldViolation::new(
                    "table",
                    format!("unknown table {}: see ListTables", excerpt(t)),
                ));
            }
        }
        let since = match req.since {
            Some(at) if req.after_cursor.is_none() => match convert::instant(&at) {
                Some(t) => Some(t),
                None => {
                    violations.push(FieldViolation::new("since", "not a valid timestamp"));
                    None
                }
            },
            _ => None,
        };
        if !violations.is_empty() {
            return Err(AppError::InvalidFields(violations));
        }
        if let Some(run) = &run_id {
            self.history.require_run(&tenant, run).await?;
        }
        Ok(logs::Request {
            tenant,
            after: req.after_cursor,
            since,
            filter: EventFilter {
                run_id,
                min_level,
                stage,
                table,
            },
            follow: req.follow,
        })
    }

    async fn update_schedule(
        &self,
        req: Request<pb::UpdateScheduleRequest>,
    ) -> Result<pb::Overview> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let update = ScheduleUpdate::parse(convert::schedule_input(req.into_inner()))
            .map_err(AppError::InvalidFields)?;
        Ok(convert::overview(
            self.history.update_schedule(&tenant, update).await?,
        ))
    }

    async fn update_settings(
        &self,
        req: Request<pb::UpdateSettingsRequest>,
    ) -> Result<pb::Overview> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let update = convert::settings_update(req.into_inner()).map_err(AppError::InvalidFields)?;
        Ok(convert::overview(
            self.history.update_settings(&tenant, update).await?,
        ))
    }
}

impl Service {
    async fn view_config(&self, tenant: &TenantId) -> Result<pb::ViewConfig> {
        let status = self.views.status(tenant).await?;
        Ok(convert::view_config(tenant, &status))
    }

    async fn set_view(&self, req: Request<pb::SetViewConfigRequest>) -> Result<pb::ViewConfig> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        if req.clear {
            self.views.clear(&tenant).await?;
            return self.view_config(&tenant).await;
        }
        let mut violations = Vec::new();
        let tables = req
            .tables
            .into_iter()
            .enumerate()
            .map(|(i, t)| convert::view_table_from(i, t, &mut violations))
            .collect();
        let page_size = (req.page_size != 0).then_some(req.page_size);
        let request = ViewRequest {
            url: req.url,
            page_size,
            tables,
            check: req.check,
        };
        self.views
            .configure(Naming::Tenant, &tenant, request, violations)
            .await?;
        self.view_config(&tenant).await
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl IntegrationHistory for Service {
    async fn get_overview(
        &self,
        req: Request<pb::GetOverviewRequest>,
    ) -> Result<Response<pb::Overview>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let o = self.history.overview(&tenant).await?;
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
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        self.history.require(&tenant).await?;
        let slot = self.log_streams.take(&tenant)?;
        let request = self.log_request(tenant, req.into_inner()).await?;
        // A small buffer: a viewer that does not read holds only this much here; the
        // hub never waits for it (it catches up from the database when it lags).
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let hub = self.logs.clone();
        tokio::spawn(async move { hub.serve(request, tx).await });
        // The slot goes with the stream: freed when it ends or the viewer leaves.
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| {
            let _held = &slot;
            match item {
                Ok(logs::Item::Event(e)) => Ok(convert::log_event(e)),
                Ok(logs::Item::Heartbeat(cursor)) => Ok(pb::LogEvent {
                    cursor,
                    heartbeat: true,
                    ..Default::default()
                }),
                Err(e) => Err(Status::from(e)),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type ExportHistoryStream = EventStream<pb::ExportChunk>;

    async fn export_history(
        &self,
        req: Request<pb::ExportHistoryRequest>,
    ) -> Result<Response<Self::ExportHistoryStream>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let kind = convert::export_kind_from(req.kind);
        let dates = (req.from_date.as_str(), req.to_date.as_str());
        let export = self
            .exporter
            .export(&tenant, kind, dates, &req.tables)
            .await?;
        // The slot goes with the stream: freed when it ends or the client leaves.
        let slot = export.slot;
        let stream = ReceiverStream::new(export.chunks).map(move |chunk| {
            let _held = &slot;
            chunk.map(convert::export_chunk).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let status = convert::run_status_from(req.status).ok_or_else(|| {
            AppError::InvalidFields(vec![FieldViolation::new("status", "unknown value")])
        })?;
        let page_size =
            page_size(req.page_size, 20, 200).map_err(|v| AppError::InvalidFields(vec![v]))?;
        let page = self
            .history
            .runs(&tenant, status, page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: page.items.into_iter().map(convert::run).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let run_id = req.into_inner().run_id;
        let (detail, log) = self.history.run(&tenant, &run_id).await?;
        Ok(Response::new(pb::GetRunResponse {
            run: Some(convert::run_detail(detail)),
            log: log.into_iter().map(convert::log_event).collect(),
        }))
    }

    async fn trigger_sync(
        &self,
        req: Request<pb::TriggerSyncRequest>,
    ) -> Result<Response<pb::TriggerSyncResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let started = sync::start(&self.worker, &tenant, RunTrigger::Manual).await?;
        Ok(Response::new(pb::TriggerSyncResponse {
            run: Some(convert::run(started.run)),
            already_running: started.already_running,
        }))
    }

    async fn list_tables(
        &self,
        req: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        // The catalog is the same for every tenant: any crm token may read it.
        authorize(grant(&req)?, Role::Crm, SERVICE, None)?;
        convert::check_text(req.get_ref())?;
        let accept_language = req
            .metadata()
            .get("accept-language")
            .and_then(|v| v.to_str().ok());
        let language = Language::choose(&req.get_ref().language, accept_language)
            .map_err(|e| AppError::InvalidFields(vec![FieldViolation::new("language", e)]))?;
        Ok(Response::new(pb::ListTablesResponse {
            tables: TABLES
                .iter()
                .map(|t| convert::table_info(t, language))
                .collect(),
        }))
    }

    async fn list_pending_deletes(
        &self,
        req: Request<pb::ListPendingDeletesRequest>,
    ) -> Result<Response<pb::ListPendingDeletesResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let page_size = page_size(req.page_size, 100, 1000).unwrap_or_else(|v| {
            violations.push(v);
            0
        });
        let states = DeleteFilter::states(&req.states, "states").unwrap_or_else(|v| {
            violations.push(v);
            Vec::new()
        });
        if !violations.is_empty() {
            return Err(AppError::InvalidFields(violations).into());
        }
        let run_id = req.run_id.trim();
        let filter = DeleteFilter {
            states,
            run_id: (!run_id.is_empty()).then(|| run_id.to_owned()),
        };
        let page = self
            .history
            .pending_deletes(&tenant, &req.table, &filter, page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListPendingDeletesResponse {
            pending_deletes: page
                .items
                .into_iter()
                .map(convert::pending_delete)
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn resolve_pending_deletes(
        &self,
        req: Request<pb::ResolvePendingDeletesRequest>,
    ) -> Result<Response<pb::ResolvePendingDeletesResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let token_id = grant(&req)?.token_id.clone();
        let req = req.into_inner();
        let resolution = match pb::ResolveAction::try_from(req.action) {
            Ok(pb::ResolveAction::Approve) => Resolution::Approve,
            Ok(pb::ResolveAction::Discard) => Resolution::Discard,
            Ok(pb::ResolveAction::Reopen) => Resolution::Reopen,
            _ => {
                return Err(AppError::InvalidFields(vec![FieldViolation::new(
                    "action",
                    "set APPROVE, DISCARD or REOPEN",
                )])
                .into())
            }
        };
        let ids = match (req.all, req.ids.is_empty()) {
            (true, true) => None,
            (false, false) => Some(req.ids.as_slice()),
            (true, false) => {
                return Err(AppError::InvalidFields(vec![FieldViolation::new(
                    "ids",
                    "set ids or all, not both",
                )])
                .into())
            }
            (false, true) => {
                return Err(AppError::InvalidFields(vec![FieldViolation::new(
                    "ids",
                    "set ids, or all: true",
                )])
                .into())
            }
        };
        self.history.require(&tenant).await?;
        let resolved = sync::resolve_pending_deletes(
            &self.worker,
            &tenant,
            &req.table,
            ids,
            resolution,
            &token_id,
        )
        .await?;
        tracing::info!(tenant = %tenant, table = %req.table, resolved, ?resolution, token = %token_id, "pending deletions resolved");
        Ok(Response::new(pb::ResolvePendingDeletesResponse {
            resolved,
        }))
    }

    async fn get_abc_report(
        &self,
        req: Request<pb::GetAbcReportRequest>,
    ) -> Result<Response<pb::AbcReport>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let (report, held_run_id) = self.history.abc_report(&tenant).await?;
        Ok(Response::new(convert::abc_report(
            tenant.as_str(),
            report,
            held_run_id,
        )))
    }

    async fn list_companies(
        &self,
        req: Request<pb::ListCompaniesRequest>,
    ) -> Result<Response<pb::ListCompaniesResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let page_size = page_size(req.page_size, 100, 1000).unwrap_or_else(|v| {
            violations.push(v);
            0
        });
        let class = convert::abc_class_from(req.abc_class).unwrap_or_else(|()| {
            violations.push(FieldViolation::new("abc_class", "unknown value"));
            None
        });
        let lifecycle = convert::lifecycle_from(req.lifecycle).unwrap_or_else(|()| {
            violations.push(FieldViolation::new("lifecycle", "unknown value"));
            None
        });
        if req.without_abc_class && class.is_some() {
            violations.push(FieldViolation::new(
                "without_abc_class",
                "set abc_class or without_abc_class, not both",
            ));
        }
        if !violations.is_empty() {
            return Err(AppError::InvalidFields(violations).into());
        }
        let filter = CompanyFilter {
            class: if req.without_abc_class {
                Some(None)
            } else {
                class.map(Some)
            },
            lifecycle,
            portfolio: req.portfolio,
        };
        let page = self
            .history
            .companies(&tenant, &filter, page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListCompaniesResponse {
            companies: page.items.into_iter().map(convert::company).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn resolve_abc_shift(
        &self,
        req: Request<pb::ResolveAbcShiftRequest>,
    ) -> Result<Response<pb::ResolveAbcShiftResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let action = match pb::ResolveAction::try_from(req.action) {
            Ok(pb::ResolveAction::Approve) => Some(ShiftAction::Approve),
            Ok(pb::ResolveAction::Discard) => Some(ShiftAction::Discard),
            _ => {
                violations.push(FieldViolation::new("action", "set APPROVE or DISCARD"));
                None
            }
        };
        if req.run_id.trim().is_empty() {
            violations.push(FieldViolation::new(
                "run_id",
                "required: the run whose classification is held (GetAbcReport.held_run_id)",
            ));
        }
        let Some(action) = action.filter(|_| violations.is_empty()) else {
            return Err(AppError::InvalidFields(violations).into());
        };
        let changed = resolve_shift(&self.worker, &tenant, req.run_id.trim(), action).await?;
        tracing::info!(tenant = %tenant, run = %req.run_id, ?action, changed, "ABC shift resolved");
        Ok(Response::new(pb::ResolveAbcShiftResponse {
            companies_changed: changed,
        }))
    }

    async fn set_view_config(
        &self,
        req: Request<pb::SetViewConfigRequest>,
    ) -> Result<Response<pb::ViewConfig>, Status> {
        Ok(Response::new(self.set_view(req).await?))
    }

    async fn get_view_config(
        &self,
        req: Request<pb::GetViewConfigRequest>,
    ) -> Result<Response<pb::ViewConfig>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        Ok(Response::new(self.view_config(&tenant).await?))
    }

    async fn get_company_history(
        &self,
        req: Request<pb::GetCompanyHistoryRequest>,
    ) -> Result<Response<pb::GetCompanyHistoryResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let (current, changes) = self
            .history
            .company_history(&tenant, &req.external_id)
            .await?;
        Ok(Response::new(pb::GetCompanyHistoryResponse {
            company: current.map(convert::company),
            changes: changes.into_iter().map(convert::category_change).collect(),
        }))
    }

    async fn get_record_trace(
        &self,
        req: Request<pb::GetRecordTraceRequest>,
    ) -> Result<Response<pb::RecordTrace>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let req = req.into_inner();
        let trace = self
            .history
            .record_trace(
                &tenant,
                &req.table,
                &req.external_id,
                (req.page_size, &req.page_token),
            )
            .await?;
        Ok(Response::new(convert::record_trace(trace)))
    }

    type WatchAlertsStream = EventStream<pb::AlertEvent>;

    async fn watch_alerts(
        &self,
        req: Request<pb::WatchTenantAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id)?;
        let token = grant(&req)?.token_id.clone();
        let only = Tenants::Only(vec![tenant]);
        let feed = self
            .alerts
            .watch(&token, only, &req.get_ref().after_cursor)
            .await?;
        Ok(Response::new(Box::pin(convert::alert_events(feed))))
    }
}
