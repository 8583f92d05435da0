//! The history service: what the host's "Dados ERP" page reads (overview, runs and their
//! logs, pending deletions, the ABC report, categorized companies) and the settings it
//! writes (creating and listing tenants is [`crate::tenants`]'s). Every call answers NOT_FOUND for a tenant that does not exist; listings are
//! paged by opaque tokens ([`crate::domain::page_token`]) signed with the database's page
//! key, read once per server.

use chrono::Utc;

use crate::clock::SharedClock;
use crate::domain::abc::{AbcReport, Category, CategoryChange, CompanyFilter};
use crate::domain::crm::{guarded_table, DeleteFilter, PendingDelete};
use crate::domain::page_token::{page_size, Listing, Scope};
use crate::domain::run::{LogEvent, RunDetail, RunStatus, RunSummary};
use crate::domain::tables::Table;
use crate::domain::tenant::{ScheduleUpdate, SettingsUpdate, TenantId};
use crate::domain::text::excerpt;
use crate::domain::trail::RecordTrace;
use crate::error::{AppError, FieldViolation, Result};
use crate::overview::{self, Overview};
use crate::paging::{timed, timed_position, Pager};
use crate::storage::{abc, events, pending_deletes, runs, tenants, trail, Db};

pub use crate::paging::Page;

/// The history service; cheap to clone.
#[derive(Clone, Debug)]
pub struct History {
    db: Db,
    /// The listings' page tokens.
    pager: Pager,
    /// Names the sink each tenant delivers to.
    sinks: crate::worker::tenant_sink::Sinks,
    /// What "now" is for health, staleness and changes.
    clock: SharedClock,
}

impl History {
    /// The history kept in `db`, naming each tenant's sink in its overview through
    /// `sinks`, reading the time from `clock`.
    pub fn new(db: Db, sinks: crate::worker::tenant_sink::Sinks, clock: SharedClock) -> Self {
        Self {
            pager: Pager::new(db.clone()),
            db,
            sinks,
            clock,
        }
    }

    /// The overview of `tenant` as of `now`, with the sink it delivers to.
    async fn load(&self, tenant: &TenantId, now: chrono::DateTime<Utc>) -> Result<Overview> {
        let crm_sink = self.sinks.name(tenant).await?;
        overview::load(&self.db, tenant, now, crm_sink).await
    }

    /// The position `token` names in `tenant`'s `listing`; None for the first page.
    async fn position(
        &self,
        listing: Listing,
        tenant: &TenantId,
        token: &str,
    ) -> Result<Option<String>> {
        self.pager
            .position(listing, Scope::Tenant(tenant), token)
            .await
    }

    /// NOT_FOUND unless `tenant` exists.
    pub async fn require(&self, tenant: &TenantId) -> Result<()> {
        tenants::require(&self.db, tenant).await.map(drop)
    }

    /// The tenant's "Informações Gerais".
    pub async fn overview(&self, tenant: &TenantId) -> Result<Overview> {
        self.load(tenant, self.clock.now()).await
    }

    /// Applies a checked schedule change; answers the new overview.
    pub async fn update_schedule(
        &self,
        tenant: &TenantId,
        update: ScheduleUpdate,
    ) -> Result<Overview> {
        let now = self.clock.now();
        tenants::update(&self.db, tenant, |t| {
            update.apply(t, now);
            Ok(())
        })
        .await?;
        tracing::info!(tenant = %tenant, "schedule updated");
        self.load(tenant, now).await
    }

    /// Applies a checked settings change (refused whole when it does not fit the stored
    /// settings); answers the new overview.
    pub async fn update_settings(
        &self,
        tenant: &TenantId,
        update: SettingsUpdate,
    ) -> Result<Overview> {
        let now = self.clock.now();
        let freshness = update.table_freshness().clone();
        tenants::update_with(&self.db, tenant, &freshness, |t| {
            update.apply(t, now).map_err(AppError::InvalidFields)
        })
        .await?;
        tracing::info!(tenant = %tenant, "settings updated");
        self.load(tenant, now).await
    }

    /// A page of the tenant's runs, newest first, of `status` when given.
    pub async fn runs(
        &self,
        tenant: &TenantId,
        status: Option<RunStatus>,
        page_size: u64,
        page_token: &str,
    ) -> Result<Page<RunSummary>> {
        let position = self.position(Listing::Runs, tenant, page_token).await?;
        let before = position.as_deref().map(timed_position).transpose()?;
        self.require(tenant).await?;
        let page = runs::page(&self.db, tenant, status, before, page_size).await?;
        self.pager
            .page(page, page_size, (Listing::Runs, tenant.into()), |last| {
                timed(last.started_at, &last.id)
            })
            .await
    }

    /// A run and its log.
    pub async fn run(&self, tenant: &TenantId, run_id: &str) -> Result<(RunDetail, Vec<LogEvent>)> {
        if run_id.is_empty() {
            return Err(AppError::InvalidArgument("run_id is required".into()));
        }
        let detail = runs::get(&self.db, tenant, run_id)
            .await?
            .ok_or_else(|| run_not_found(tenant, run_id))?;
        let log = events::for_run(&self.db, tenant, run_id).await?;
        Ok((detail, log))
    }

    /// NOT_FOUND unless the tenant has run `run_id`.
    pub async fn require_run(&self, tenant: &TenantId, run_id: &str) -> Result<()> {
        match runs::get(&self.db, tenant, run_id).await? {
            Some(_) => Ok(()),
            None => Err(run_not_found(tenant, run_id)),
        }
    }

    /// A page of `table`'s deletions held by the delete guard that pass `filter`, newest
    /// first (by when each entered its state). NOT_FOUND naming `run_id` when the filter's
    /// run is not one of the tenant's.
    pub async fn pending_deletes(
        &self,
        tenant: &TenantId,
        table: &str,
        filter: &DeleteFilter,
        page_size: u64,
        page_token: &str,
    ) -> Result<Page<PendingDelete>> {
        let position = self
            .position(Listing::PendingDeletes, tenant, page_token)
            .await?;
        let after = position.as_deref().map(timed_position).transpose()?;
        self.require(tenant).await?;
        let table = guarded_table(table)?;
        if let Some(run) = &filter.run_id {
            if runs::get(&self.db, tenant, run).await?.is_none() {
                return Err(AppError::NotFound(format!(
                    "run_id: run {} not found for tenant {tenant}: list its runs with ListRuns",
                    excerpt(run)
                )));
            }
        }
        let page = pending_deletes::list(&self.db, tenant, table, filter, after, page_size).await?;
        self.pager
            .page(
                page,
                page_size,
                (Listing::PendingDeletes, tenant.into()),
                |last| timed(last.state_changed_at, &last.external_id),
            )
            .await
    }

    /// The ABC analysis in force, and the run whose classification is held, if one is.
    pub async fn abc_report(&self, tenant: &TenantId) -> Result<(AbcReport, Option<String>)> {
        self.require(tenant).await?;
        let held = abc::held_report(&self.db, tenant).await?;
        match abc::current_report(&self.db, tenant).await? {
            Some(report) => Ok((report, held.map(|h| h.run_id))),
            // Nothing applied yet, but a first classification can be held only after
            // one was applied; so this tenant never had an analysis.
            None => Err(AppError::NotFound(format!(
                "tenant {tenant} has no ABC analysis yet: it comes with the first successful run (TriggerSync)"
            ))),
        }
    }

    /// A page of the tenant's categorized companies that pass `filter`, by external id.
    pub async fn companies(
        &self,
        tenant: &TenantId,
        filter: &CompanyFilter,
        page_size: u64,
        page_token: &str,
    ) -> Result<Page<Category>> {
        let after = self
            .position(Listing::Companies, tenant, page_token)
            .await?;
        self.require(tenant).await?;
        let page = abc::list(
            &self.db,
            tenant,
            filter,
            after.as_deref().unwrap_or_default(),
            page_size,
        )
        .await?;
        self.pager
            .page(
                page,
                page_size,
                (Listing::Companies, tenant.into()),
                |last| last.external_id.clone(),
            )
            .await
    }

    /// A company's category now and every change to it, oldest first.
    pub async fn company_history(
        &self,
        tenant: &TenantId,
        external_id: &str,
    ) -> Result<(Option<Category>, Vec<CategoryChange>)> {
        if external_id.is_empty() {
            return Err(AppError::InvalidFields(vec![FieldViolation::new(
                "external_id",
                "required: the company's external id",
            )]));
        }
        self.require(tenant).await?;
        let changes = abc::history(&self.db, tenant, external_id).await?;
        let current = abc::category(&self.db, tenant, external_id).await?;
        if current.is_none() && changes.is_empty() {
            return Err(AppError::NotFound(format!(
                "company {external_id:?} has no categorization in tenant {tenant}"
            )));
        }
        Ok((current, changes))
    }
}

/// Events a trace page holds by default, and at most.
const TRACE_PAGE: (u64, u64) = (50, 500);

impl History {
    /// A record's trace (GetRecordTrace): a page of its trail, newest first, with what is
    /// staged and in the CRM now and, for a company, its categorization. INVALID_ARGUMENT
    /// naming `table`, `external_id`, `page_size` or `page_token`; NOT_FOUND for a tenant
    /// or a record of it that does not exist (nor ever did, as far as the trail keeps).
    pub async fn record_trace(
        &self,
        tenant: &TenantId,
        table: &str,
        external_id: &str,
        (requested_size, token): (u32, &str),
    ) -> Result<RecordTrace> {
        let mut violations = Vec::new();
        let known = Table::parse(table);
        if known.is_none() {
            violations.push(FieldViolation::new(
                "table",
                format!(
                    "unknown table {}: valid tables are {}",
                    excerpt(table),
                    Table::ALL.map(Table::as_str).join(", ")
                ),
            ));
        }
        if external_id.trim().is_empty() {
            violations.push(FieldViolation::new(
                "external_id",
                "required: the record's id in the ERP, as pushed",
            ));
        }
        let size = page_size(requested_size, TRACE_PAGE.0, TRACE_PAGE.1)
            .map_err(|v| violations.push(v))
            .ok();
        let (Some(table), Some(size), true) = (known, size, violations.is_empty()) else {
            return Err(AppError::InvalidFields(violations));
        };
        self.require(tenant).await?;
        let record_key = format!("{}\n{external_id}\n", table.as_str());
        let before = match self.position(Listing::RecordTrace, tenant, token).await? {
            None => None,
            Some(p) => Some(
                p.strip_prefix(&record_key)
                    .and_then(|id| id.parse::<i64>().ok())
                    .ok_or_else(|| {
                        AppError::InvalidFields(vec![FieldViolation::new(
                            "page_token",
                            "this token pages another record's trace: send the same table and external_id",
                        )])
                    })?,
            ),
        };
        let t = table.as_str();
        if !trail::known(&self.db, tenant, t, external_id).await? {
            return Err(AppError::NotFound(format!(
                "no {t} record with external_id {} in tenant {tenant}: the ERP never sent it \
                 (or its trail is older than the retention window)",
                excerpt(external_id)
            )));
        }
        let events = trail::page(&self.db, tenant, t, external_id, before, size).await?;
        let page = self
            .pager
            .page(
                events,
                size,
                (Listing::RecordTrace, tenant.into()),
                |last| format!("{record_key}{}", last.id),
            )
            .await?;
        let staged = trail::staged(&self.db, tenant, t, external_id).await?;
        let crm = if table.is_crm() {
            let sink = self.sinks.name(tenant).await?;
            Some(trail::crm(&self.db, tenant, table, external_id, sink).await?)
        } else {
            None
        };
        let (category, category_changes) = if table == Table::Company {
            (
                abc::category(&self.db, tenant, external_id).await?,
                abc::history(&self.db, tenant, external_id).await?,
            )
        } else {
            (None, Vec::new())
        };
        Ok(RecordTrace {
            table: t.to_owned(),
            external_id: external_id.to_owned(),
            events: page.items,
            next_page_token: page.next_page_token,
            staged,
            crm,
            category,
            category_changes,
        })
    }
}

fn run_not_found(tenant: &TenantId, run_id: &str) -> AppError {
    AppError::NotFound(format!("run {run_id} not found for tenant {tenant}"))
}
