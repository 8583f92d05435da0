//! IntegrationHistory: what the host CRM's "Dados ERP" page calls.

use std::pin::Pin;

use chrono::Utc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::{authenticate, authorize, tenant_call};
use super::convert;
use super::pb::{self, integration_history_server::IntegrationHistory};
use crate::domain::abc::AbcInput;
use crate::domain::export::{ExportInput, ExportKind, ExportSpec};
use crate::domain::page_token::{self, Listing};
use crate::domain::run::{Level, RunTrigger};
use crate::domain::tables::TABLES;
use crate::domain::tenant::{ScheduleUpdate, SettingsInput, SettingsUpdate};
use crate::domain::token::Role;
use crate::error::{AppError, FieldViolation, Result};
use crate::export;
use crate::logs;
use crate::state::AppState;
use crate::storage::{abc, events, pending_deletes, runs, views};
use crate::viewdb::Naming;
use crate::worker::abc as abc_worker;
use crate::worker::{sync, view_admin};
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

    /// Checks a StreamLogs request: every bad field is named.
    async fn log_request(
        &self,
        tenant: crate::domain::tenant::TenantId,
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
            if crate::domain::tables::find(t).is_none() {
                violations.push(FieldViolation::new(
                    "table",
                    format!("unknown table {t:?}: see ListTables"),
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
            if runs::get(&self.state.db, &tenant, run).await?.is_none() {
                return Err(AppError::NotFound(format!(
                    "run {run} not found for tenant {tenant}"
                )));
            }
        }
        Ok(logs::Request {
            tenant,
            after: req.after_cursor,
            since,
            filter: events::Filter {
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
            delete_guard_percent: req.delete_guard_percent,
            delete_guard_min_rows: req.delete_guard_min_rows,
            abc: AbcInput {
                basis: req.abc_basis,
                window_months: req.abc_window_months,
                a_threshold: req.abc_a_threshold,
                b_threshold: req.abc_b_threshold,
                new_days: req.lifecycle_new_days,
                active_days: req.lifecycle_active_days,
                inactive_days: req.lifecycle_inactive_days,
                shift_guard_percent: req.abc_shift_guard_percent,
                shift_guard: req.abc_shift_guard,
            },
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
            update.apply(t, now).map_err(AppError::InvalidFields)
        })
        .await?;
        tracing::info!(tenant = %tenant, "settings updated");
        Ok(convert::overview(
            overview::load(&self.state.db, &tenant, now).await?,
        ))
    }
}

impl Service {
    async fn view_config(
        &self,
        tenant: &crate::domain::tenant::TenantId,
    ) -> Result<pb::ViewConfig> {
        let status = view_admin::status(&self.state.db, &self.state.views, tenant).await?;
        Ok(convert::view_config(tenant, &status))
    }

    async fn set_view(&self, req: Request<pb::SetViewConfigRequest>) -> Result<pb::ViewConfig> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let db = &self.state.db;
        if req.clear {
            tenants::require(db, &tenant).await?;
            let had = views::clear(db, &tenant, Utc::now()).await?;
            tracing::info!(tenant = %tenant, had, "view configuration cleared");
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
        view_admin::configure(
            db,
            &self.state.views,
            Naming::Tenant,
            &tenant,
            req.url,
            page_size,
            tables,
            req.check,
            violations,
        )
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
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        tenants::require(&self.state.db, &tenant).await?;
        let slot = self.state.throttle.streams.take(&tenant)?;
        let request = self.log_request(tenant, req.into_inner()).await?;
        // A small buffer: a viewer that does not read holds only this much here; the
        // hub never waits for it (it catches up from the database when it lags).
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let hub = self.state.logs.clone();
        let db = self.state.db.clone();
        tokio::spawn(async move { hub.serve(db, request, tx).await });
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
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let tenant = tenants::require(&self.state.db, &tenant).await?;
        let slot = self.state.throttle.exports.take(&tenant.id)?;
        let kind = convert::export_kind_from(req.kind);
        let today = Utc::now().with_timezone(&tenant.timezone).date_naive();
        let parsed = ExportSpec::parse(
            ExportInput {
                from_date: &req.from_date,
                to_date: &req.to_date,
                tables: &req.tables,
                kind: kind.unwrap_or(ExportKind::Requests),
            },
            today,
            self.state.retention_days,
        );
        let spec = match (parsed, kind) {
            (Ok(spec), Some(_)) => spec,
            (parsed, kind) => {
                let mut violations = parsed.err().unwrap_or_default();
                if kind.is_none() {
                    violations.insert(
                        0,
                        FieldViolation::new(
                            "kind",
                            "unknown value: REQUESTS, EXCESSIVE_DELETES or RUNS",
                        ),
                    );
                }
                return Err(AppError::InvalidFields(violations).into());
            }
        };
        tracing::info!(tenant = %tenant.id, kind = spec.kind.slug(), from = %spec.from, to = %spec.to, "export started");
        let chunks = export::start(&self.state, tenant, spec);
        // The slot goes with the stream: freed when it ends or the client leaves.
        let stream = ReceiverStream::new(chunks).map(move |chunk| {
            let _held = &slot;
            chunk.map(convert::export_chunk).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let status = convert::run_status_from(req.status).ok_or_else(|| {
            AppError::InvalidFields(vec![FieldViolation::new("status", "unknown value")])
        })?;
        let page_size = match req.page_size {
            0 => 20,
            n @ 1..=200 => u64::from(n),
            _ => {
                return Err(AppError::InvalidFields(vec![FieldViolation::new(
                    "page_size",
                    "must be at most 200",
                )])
                .into())
            }
        };
        let before = parse_page_token(&req.page_token)?;
        tenants::require(&self.state.db, &tenant).await?;
        let page = runs::page(&self.state.db, &tenant, status, before, page_size).await?;
        let next_page_token = match page.last() {
            Some(last) if page.len() as u64 == page_size => page_token::encode(
                Listing::Runs,
                &format!("{}:{}", last.started_at.timestamp_micros(), last.id),
            ),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRunsResponse {
            runs: page.into_iter().map(convert::run).collect(),
            next_page_token,
        }))
    }

    async fn get_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let run_id = req.into_inner().run_id;
        if run_id.is_empty() {
            return Err(AppError::InvalidArgument("run_id is required".into()).into());
        }
        let detail = runs::get(&self.state.db, &tenant, &run_id)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!("run {run_id} not found for tenant {tenant}"))
            })?;
        let log = events::for_run(&self.state.db, &tenant, &run_id).await?;
        Ok(Response::new(pb::GetRunResponse {
            run: Some(convert::run_detail(detail)),
            log: log.into_iter().map(convert::log_event).collect(),
        }))
    }

    async fn trigger_sync(
        &self,
        req: Request<pb::TriggerSyncRequest>,
    ) -> Result<Response<pb::TriggerSyncResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let started = sync::start(&self.state, &tenant, RunTrigger::Manual).await?;
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
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let page_size = match req.page_size {
            0 => 100,
            n @ 1..=1000 => u64::from(n),
            _ => {
                return Err(AppError::InvalidFields(vec![FieldViolation::new(
                    "page_size",
                    "must be at most 1000",
                )])
                .into())
            }
        };
        let after = page_position(Listing::PendingDeletes, &req.page_token)?;
        tenants::require(&self.state.db, &tenant).await?;
        let page = pending_deletes::list(
            &self.state.db,
            &tenant,
            &req.table,
            after.as_deref().unwrap_or_default(),
            page_size,
        )
        .await?;
        let next_page_token = match page.last() {
            Some(last) if page.len() as u64 == page_size => {
                page_token::encode(Listing::PendingDeletes, &last.external_id)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListPendingDeletesResponse {
            pending_deletes: page.into_iter().map(convert::pending_delete).collect(),
            next_page_token,
        }))
    }

    async fn resolve_pending_deletes(
        &self,
        req: Request<pb::ResolvePendingDeletesRequest>,
    ) -> Result<Response<pb::ResolvePendingDeletesResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let resolution = match pb::ResolveAction::try_from(req.action) {
            Ok(pb::ResolveAction::Approve) => pending_deletes::Resolution::Approve,
            Ok(pb::ResolveAction::Discard) => pending_deletes::Resolution::Discard,
            _ => {
                return Err(AppError::InvalidFields(vec![FieldViolation::new(
                    "action",
                    "set APPROVE or DISCARD",
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
        tenants::require(&self.state.db, &tenant).await?;
        let resolved =
            sync::resolve_pending_deletes(&self.state, &tenant, &req.table, ids, resolution)
                .await?;
        tracing::info!(tenant = %tenant, table = %req.table, resolved, ?resolution, "pending deletions resolved");
        Ok(Response::new(pb::ResolvePendingDeletesResponse {
            resolved,
        }))
    }

    async fn get_abc_report(
        &self,
        req: Request<pb::GetAbcReportRequest>,
    ) -> Result<Response<pb::AbcReport>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let db = &self.state.db;
        tenants::require(db, &tenant).await?;
        let held = abc::held_report(db, &tenant).await?;
        let report = match abc::current_report(db, &tenant).await? {
            Some(r) => r,
            // Nothing applied yet, but a first classification can be held only after
            // one was applied; so this tenant never had an analysis.
            None => {
                return Err(AppError::NotFound(format!(
                    "tenant {tenant} has no ABC analysis yet: it comes with the first successful run (TriggerSync)"
                ))
                .into())
            }
        };
        Ok(Response::new(convert::abc_report(
            tenant.as_str(),
            report,
            held.map(|h| h.run_id),
        )))
    }

    async fn list_companies(
        &self,
        req: Request<pb::ListCompaniesRequest>,
    ) -> Result<Response<pb::ListCompaniesResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let page_size = match req.page_size {
            0 => 100,
            n @ 1..=1000 => u64::from(n),
            _ => {
                violations.push(FieldViolation::new("page_size", "must be at most 1000"));
                0
            }
        };
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
        let filter = abc::Filter {
            class: if req.without_abc_class {
                Some(None)
            } else {
                class.map(Some)
            },
            lifecycle,
            portfolio: req.portfolio,
        };
        let after = page_position(Listing::Companies, &req.page_token)?;
        tenants::require(&self.state.db, &tenant).await?;
        let page = abc::list(
            &self.state.db,
            &tenant,
            &filter,
            after.as_deref().unwrap_or_default(),
            page_size,
        )
        .await?;
        let next_page_token = match page.last() {
            Some(last) if page.len() as u64 == page_size => {
                page_token::encode(Listing::Companies, &last.external_id)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCompaniesResponse {
            companies: page.into_iter().map(convert::company).collect(),
            next_page_token,
        }))
    }

    async fn resolve_abc_shift(
        &self,
        req: Request<pb::ResolveAbcShiftRequest>,
    ) -> Result<Response<pb::ResolveAbcShiftResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let action = match pb::ResolveAction::try_from(req.action) {
            Ok(pb::ResolveAction::Approve) => Some(abc_worker::ShiftAction::Approve),
            Ok(pb::ResolveAction::Discard) => Some(abc_worker::ShiftAction::Discard),
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
        let changed =
            abc_worker::resolve_shift(&self.state, &tenant, req.run_id.trim(), action).await?;
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
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        Ok(Response::new(self.view_config(&tenant).await?))
    }

    async fn get_company_history(
        &self,
        req: Request<pb::GetCompanyHistoryRequest>,
    ) -> Result<Response<pb::GetCompanyHistoryResponse>, Status> {
        let tenant = self.tenant(&req, &req.get_ref().tenant_id).await?;
        let req = req.into_inner();
        if req.external_id.is_empty() {
            return Err(AppError::InvalidFields(vec![FieldViolation::new(
                "external_id",
                "required: the company's external id",
            )])
            .into());
        }
        let db = &self.state.db;
        tenants::require(db, &tenant).await?;
        let changes = abc::history(db, &tenant, &req.external_id).await?;
        let current = abc::category(db, &tenant, &req.external_id).await?;
        if current.is_none() && changes.is_empty() {
            return Err(AppError::NotFound(format!(
                "company {:?} has no categorization in tenant {tenant}",
                req.external_id
            ))
            .into());
        }
        Ok(Response::new(pb::GetCompanyHistoryResponse {
            company: current.map(convert::company),
            changes: changes.into_iter().map(convert::category_change).collect(),
        }))
    }
}

/// The position a page token names in `listing`; None for the first page.
fn page_position(listing: Listing, token: &str) -> Result<Option<String>, AppError> {
    page_token::decode(listing, token)
        .map_err(|e| AppError::InvalidFields(vec![FieldViolation::new("page_token", e)]))
}

/// Parses a ListRuns page token (position "<started_at micros>:<run id>"); "" is the
/// first page.
fn parse_page_token(token: &str) -> Result<Option<(chrono::DateTime<Utc>, String)>, AppError> {
    let Some(position) = page_position(Listing::Runs, token)? else {
        return Ok(None);
    };
    let bad = || {
        AppError::InvalidFields(vec![FieldViolation::new(
            "page_token",
            page_token::NOT_ISSUED,
        )])
    };
    let (micros, id) = position.split_once(':').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok(Some((at, id.to_owned())))
}
