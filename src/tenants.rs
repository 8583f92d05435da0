//! The tenants service: provisioning — creating, changing, reading and listing tenants —
//! for the operator's commands (on the database) and Admin (the host's backend) alike.
//! The "Dados ERP" page's own reads and settings stay in [`crate::history`].

use crate::clock::SharedClock;
use crate::domain::page_token::{Listing, Scope};
use crate::domain::tenant::{
    Health, IntegrationType, NewTenant, ScheduleUpdate, SettingsUpdate, Tenant, TenantId,
};
use crate::error::{AppError, Result};
use crate::overview;
use crate::paging::{Page, Pager};
use crate::storage::{tenants, Db};
use crate::worker::tenant_sink::Sinks;

/// A tenant as provisioning shows it: its settings, its health (the overview's rule) and
/// where its runs deliver.
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// The tenant and its settings.
    pub tenant: Tenant,
    /// Derived state at a glance, as the overview has it.
    pub health: Health,
    /// The CrmSink address its runs deliver to ("embedded" without one; "" when this
    /// handle does not know the server's sink); never a secret.
    pub crm_sink: String,
}

/// Which tenants a listing shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantFilter {
    /// Only tenants of this integration type.
    pub integration_type: Option<IntegrationType>,
    /// Only tenants of this health.
    pub health: Option<Health>,
}

/// The tenants service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tenants {
    db: Db,
    /// Names the sink each tenant delivers to; None for the operator's commands, which
    /// do not know the server's.
    sinks: Option<Sinks>,
    /// The tenant listing's page tokens.
    pager: Pager,
    /// What "now" is for creation, changes and health.
    clock: SharedClock,
}

impl Tenants {
    /// Tenants stored in `db`, whose runs deliver to the sinks `sinks` names when the
    /// server's are known, reading the time from `clock`.
    pub fn new(db: Db, sinks: Option<Sinks>, clock: SharedClock) -> Self {
        Self {
            pager: Pager::new(db.clone()),
            db,
            sinks,
            clock,
        }
    }

    /// Creates the tenant `new` asks for (the product's defaults for what it leaves out):
    /// INVALID_ARGUMENT naming every bad field, ALREADY_EXISTS when its id is taken.
    pub async fn create(&self, new: NewTenant) -> Result<Tenant> {
        let t = new
            .tenant(self.clock.now())
            .map_err(AppError::InvalidFields)?;
        tenants::insert(&self.db, &t).await?;
        tracing::info!(tenant = %t.id, "tenant created");
        Ok(t)
    }

    /// Applies checked settings and schedule changes together, in one write (refused
    /// whole when the settings do not fit the stored ones); answers the tenant as stored.
    /// NOT_FOUND for an unknown tenant.
    pub async fn update(
        &self,
        id: &TenantId,
        settings: Option<SettingsUpdate>,
        schedule: Option<ScheduleUpdate>,
    ) -> Result<Tenant> {
        if settings.is_none() && schedule.is_none() {
            return self.get(id).await;
        }
        let now = self.clock.now();
        let freshness = settings
            .as_ref()
            .map(|s| s.table_freshness().clone())
            .unwrap_or_default();
        let t = tenants::update_with(&self.db, id, &freshness, |t| {
            if let Some(settings) = settings {
                settings.apply(t, now).map_err(AppError::InvalidFields)?;
            }
            if let Some(schedule) = schedule {
                schedule.apply(t, now);
            }
            Ok(())
        })
        .await?;
        tracing::info!(tenant = %id, "tenant updated");
        Ok(t)
    }

    /// A tenant; NOT_FOUND when it does not exist.
    pub async fn get(&self, id: &TenantId) -> Result<Tenant> {
        tenants::require(&self.db, id).await
    }

    /// Every tenant, by id.
    pub async fn list(&self) -> Result<Vec<Tenant>> {
        tenants::list(&self.db).await
    }

    /// A tenant with its health and sink, as of now.
    pub async fn info(&self, tenant: Tenant) -> Result<TenantInfo> {
        Ok(TenantInfo {
            health: overview::health(&self.db, &tenant, self.clock.now()).await?,
            crm_sink: self.crm_sink(&tenant.id).await?,
            tenant,
        })
    }

    /// Where `tenant`'s runs deliver, for a person: its own sink, the server's, or
    /// "embedded" (erpsync's own tables); "" when this handle does not know the server's.
    async fn crm_sink(&self, tenant: &TenantId) -> Result<String> {
        match &self.sinks {
            Some(sinks) => sinks.name(tenant).await,
            None => Ok(String::new()),
        }
    }

    /// A page of the tenants that pass `filter`, by id. Health is derived, not stored: the
    /// tenants are read in id order, a page at a time, until `page_size` of them pass.
    pub async fn page(
        &self,
        filter: TenantFilter,
        page_size: u64,
        page_token: &str,
    ) -> Result<Page<TenantInfo>> {
        let listing = (Listing::Tenants, Scope::Every);
        let mut after = self
            .pager
            .position(listing.0, listing.1, page_token)
            .await?;
        let now = self.clock.now();
        let mut items = Vec::new();
        'read: loop {
            let batch = tenants::page(
                &self.db,
                filter.integration_type,
                after.as_deref(),
                page_size,
            )
            .await?;
            let last = (batch.len() as u64) < page_size;
            for t in batch {
                after = Some(t.id.to_string());
                // The sink is named (a read) only for the tenants the filter keeps.
                let health = overview::health(&self.db, &t, now).await?;
                if filter.health.is_some_and(|h| h != health) {
                    continue;
                }
                items.push(TenantInfo {
                    crm_sink: self.crm_sink(&t.id).await?,
                    health,
                    tenant: t,
                });
                if items.len() as u64 == page_size {
                    break 'read;
                }
            }
            if last {
                break;
            }
        }
        self.pager
            .page(items, page_size, listing, |last| last.tenant.id.to_string())
            .await
    }
}
