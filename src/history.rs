//! The history service: what the host's "Dados ERP" page reads (overview, runs and their
//! logs, pending deletions, the ABC report, categorized companies) and the settings it
//! writes. Every call answers NOT_FOUND for a tenant that does not exist; listings are
//! paged by opaque tokens ([`crate::domain::page_token`]) signed with the database's page
//! key, read once per server.

use chrono::Utc;

use crate::domain::abc::{AbcReport, Category, CategoryChange, CompanyFilter};
use crate::domain::crm::{guarded_table, PendingDelete};
use crate::domain::page_token::{self, Listing, PageKey};
use crate::domain::run::{LogEvent, RunDetail, RunStatus, RunSummary};
use crate::domain::tenant::{ScheduleUpdate, SettingsUpdate, Tenant, TenantId};
use crate::error::{AppError, FieldViolation, Result};
use crate::overview::{self, Overview};
use crate::storage::{abc, events, instance, pending_deletes, runs, tenants, Db};

/// A page of a listing and the token of the next one ("" after the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The token of the next page; empty when this one is the last.
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// A page of `tenant`'s `listing` read with `page_size`: a full page names its last
    /// item's position (`position`) as the next page's token, signed with `key`; a
    /// shorter one is the last.
    fn of(
        items: Vec<T>,
        page_size: u64,
        key: &PageKey,
        (listing, tenant): (Listing, &TenantId),
        position: impl Fn(&T) -> String,
    ) -> Self {
        let next_page_token = match items.last() {
            Some(last) if items.len() as u64 == page_size => {
                key.encode(listing, tenant, &position(last))
            }
            _ => String::new(),
        };
        Self {
            items,
            next_page_token,
        }
    }
}

/// The history service; cheap to clone.
#[derive(Clone, Debug)]
pub struct History {
    db: Db,
    /// The database's page key, read on first use (see [`instance::page_key`]).
    page_key: std::sync::Arc<tokio::sync::OnceCell<PageKey>>,
    /// Names the sink each tenant delivers to; None: the embedded CRM for every tenant.
    sinks: Option<crate::worker::tenant_sink::Sinks>,
}

impl History {
    /// The history kept in `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            page_key: Default::default(),
            sinks: None,
        }
    }

    /// The same, naming each tenant's sink in its overview through `sinks`.
    pub fn with_sinks(self, sinks: crate::worker::tenant_sink::Sinks) -> Self {
        Self {
            sinks: Some(sinks),
            ..self
        }
    }

    /// The overview of `tenant` as of `now`, with the sink it delivers to.
    async fn load(&self, tenant: &TenantId, now: chrono::DateTime<Utc>) -> Result<Overview> {
        let crm_sink = match &self.sinks {
            Some(sinks) => sinks.name(tenant).await?,
            None => crate::worker::tenant_sink::EMBEDDED.to_owned(),
        };
        overview::load(&self.db, tenant, now, crm_sink).await
    }

    /// The page key, read (and made, on a new database) once.
    async fn page_key(&self) -> Result<&PageKey> {
        self.page_key
            .get_or_try_init(|| instance::page_key(&self.db))
            .await
    }

    /// The position `token` names in `tenant`'s `listing`; None for the first page.
    async fn position(
        &self,
        listing: Listing,
        tenant: &TenantId,
        token: &str,
    ) -> Result<Option<String>> {
        if token.is_empty() {
            return Ok(None);
        }
        self.page_key()
            .await?
            .decode(listing, tenant, token)
            .map_err(|e| AppError::InvalidFields(vec![FieldViolation::new("page_token", e)]))
    }

    /// NOT_FOUND unless `tenant` exists.
    pub async fn require(&self, tenant: &TenantId) -> Result<()> {
        tenants::require(&self.db, tenant).await.map(drop)
    }

    /// The tenant's "Informações Gerais".
    pub async fn overview(&self, tenant: &TenantId) -> Result<Overview> {
        self.load(tenant, Utc::now()).await
    }

    /// Applies a checked schedule change; answers the new overview.
    pub async fn update_schedule(
        &self,
        tenant: &TenantId,
        update: ScheduleUpdate,
    ) -> Result<Overview> {
        let now = Utc::now();
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
        self.update_tenant(tenant, update).await?;
        self.load(tenant, Utc::now()).await
    }

    /// Applies a checked settings change (refused whole when it does not fit the stored
    /// settings); answers the tenant as stored.
    pub async fn update_tenant(&self, tenant: &TenantId, update: SettingsUpdate) -> Result<Tenant> {
        let now = Utc::now();
        let t = tenants::update(&self.db, tenant, |t| {
            update.apply(t, now).map_err(AppError::InvalidFields)
        })
        .await?;
        tracing::info!(tenant = %tenant, "settings updated");
        Ok(t)
    }

    /// Stores a new tenant; ALREADY_EXISTS when its id is taken.
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        tenants::insert(&self.db, tenant).await
    }

    /// Every tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        tenants::list(&self.db).await
    }

    /// A tenant; NOT_FOUND when it does not exist.
    pub async fn tenant(&self, tenant: &TenantId) -> Result<Tenant> {
        tenants::require(&self.db, tenant).await
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
        let before = position.as_deref().map(runs_position).transpose()?;
        self.require(tenant).await?;
        let page = runs::page(&self.db, tenant, status, before, page_size).await?;
        let key = self.page_key().await?;
        Ok(Page::of(
            page,
            page_size,
            key,
            (Listing::Runs, tenant),
            |last| format!("{}:{}", last.started_at.timestamp_micros(), last.id),
        ))
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

    /// A page of the deletions the delete guard keeps for `table` (all tables for "").
    pub async fn pending_deletes(
        &self,
        tenant: &TenantId,
        table: &str,
        page_size: u64,
        page_token: &str,
    ) -> Result<Page<PendingDelete>> {
        let after = self
            .position(Listing::PendingDeletes, tenant, page_token)
            .await?;
        self.require(tenant).await?;
        let table = guarded_table(table)?;
        let page = pending_deletes::list(
            &self.db,
            tenant,
            table,
            after.as_deref().unwrap_or_default(),
            page_size,
        )
        .await?;
        let key = self.page_key().await?;
        Ok(Page::of(
            page,
            page_size,
            key,
            (Listing::PendingDeletes, tenant),
            |last| last.external_id.clone(),
        ))
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
        let key = self.page_key().await?;
        Ok(Page::of(
            page,
            page_size,
            key,
            (Listing::Companies, tenant),
            |last| last.external_id.clone(),
        ))
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

fn run_not_found(tenant: &TenantId, run_id: &str) -> AppError {
    AppError::NotFound(format!("run {run_id} not found for tenant {tenant}"))
}

/// The position of a ListRuns page token ("<started_at micros>:<run id>").
fn runs_position(position: &str) -> Result<(chrono::DateTime<Utc>, String)> {
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
    Ok((at, id.to_owned()))
}
