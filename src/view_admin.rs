//! View administration: a tenant's View configuration as stored (GetViewConfig, `tenant
//! show-view`) and setting it (SetViewConfig, `tenant set-view`): validated, the source
//! admitted by the gate (a tenant's URL must be granted to it, see
//! [`crate::viewdb::ViewAccess::admit`]), optionally checked against the ERP database,
//! then stored sealed with who named its URL.

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use crate::domain::tenant::{IntegrationType, TenantId};
use crate::domain::view::{validate, ViewConfig, ViewTable, DEFAULT_PAGE_SIZE};
use crate::domain::view_source::Grant;
use crate::error::{AppError, FieldViolation, Result};
use crate::storage::{tenants, view_grants, views, Db};
use crate::viewdb::{Naming, ViewAccess};
use crate::worker::sync::view::plan;

/// The View administration service: a tenant's View configuration read, set and cleared;
/// cheap to clone.
#[derive(Clone, Debug)]
pub struct ViewAdmin {
    db: Db,
    access: ViewAccess,
    /// Stamps grants and configuration changes.
    clock: SharedClock,
}

/// What a caller asks to store as a tenant's View configuration (see
/// [`ViewAdmin::configure`]).
#[derive(Debug, Clone)]
pub struct ViewRequest {
    /// None keeps the stored URL.
    pub url: Option<String>,
    /// None takes the default.
    pub page_size: Option<u32>,
    /// The views to read.
    pub tables: Vec<ViewTable>,
    /// Whether to check the views against the ERP database before storing.
    pub check: bool,
}

impl ViewAdmin {
    /// View configurations stored in `db`, sources admitted by `access`.
    pub fn new(db: Db, access: ViewAccess, clock: SharedClock) -> Self {
        Self { db, access, clock }
    }

    /// The tenant's View integration as stored.
    pub async fn status(&self, tenant: &TenantId) -> Result<ViewStatus> {
        status(&self.db, &self.access, tenant).await
    }

    /// Stores `request` as the tenant's View configuration, named by `naming`;
    /// `violations` are problems the caller already found (see [`configure`]).
    pub async fn configure(
        &self,
        naming: Naming,
        tenant: &TenantId,
        request: ViewRequest,
        violations: Vec<FieldViolation>,
    ) -> Result<()> {
        configure(
            &self.db,
            &self.access,
            naming,
            tenant,
            request.url,
            request.page_size,
            request.tables,
            request.check,
            violations,
            self.clock.now(),
        )
        .await
    }

    /// Grants the tenant the source `url` names (see [`ViewAccess::grant_of`]); the
    /// grant, and false when the tenant already had it.
    pub async fn grant(&self, tenant: &TenantId, url: &str) -> Result<(Grant, bool)> {
        tenants::require(&self.db, tenant).await?;
        let grant = self
            .access
            .grant_of(url.trim())
            .await
            .map_err(|e| AppError::InvalidArgument(format!("{e:#}")))?;
        let new = view_grants::grant(&self.db, tenant, &grant, self.clock.now()).await?;
        tracing::info!(tenant = %tenant, source = %grant, new, "view source granted");
        Ok((grant, new))
    }

    /// Takes back from the tenant the source `url` names: its stored URL, if it named
    /// that source, is refused from its next run on. The grant, and whether it had it.
    pub async fn revoke(&self, tenant: &TenantId, url: &str) -> Result<(Grant, bool)> {
        tenants::require(&self.db, tenant).await?;
        let grant = self
            .access
            .grant_named(url.trim())
            .map_err(|e| AppError::InvalidArgument(format!("{e:#}")))?;
        let had = view_grants::revoke(&self.db, tenant, &grant).await?;
        tracing::info!(tenant = %tenant, source = %grant, had, "view source revoked");
        Ok((grant, had))
    }

    /// The sources granted to the tenant.
    pub async fn grants(&self, tenant: &TenantId) -> Result<Vec<Grant>> {
        tenants::require(&self.db, tenant).await?;
        view_grants::of_tenant(&self.db, tenant).await
    }

    /// Clears the tenant's View configuration; whether it had one.
    pub async fn clear(&self, tenant: &TenantId) -> Result<bool> {
        tenants::require(&self.db, tenant).await?;
        let had = views::clear(&self.db, tenant, self.clock.now()).await?;
        tracing::info!(tenant = %tenant, had, "view configuration cleared");
        Ok(had)
    }
}

/// Checks a configuration against the ERP database: reachable, every view and column
/// there and of a fitting type. The error names every problem.
async fn check(
    access: &ViewAccess,
    cfg: &ViewConfig,
    naming: Naming,
    grants: &[Grant],
) -> Result<(), String> {
    let mut erp = access.connect(cfg, naming, grants).await.map_err(|e| {
        format!(
            "cannot connect to the ERP database {}: {e}",
            cfg.redacted_url()
        )
    })?;
    let mut problems = Vec::new();
    for t in &cfg.tables {
        if let Err(p) = plan(&mut erp, cfg, t).await {
            problems.push(p);
        }
    }
    erp.close().await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A tenant's View integration as stored: its integration type, its configuration, and
/// the watermark of each table read incrementally.
#[derive(Debug, Clone)]
pub struct ViewStatus {
    /// API or VIEW.
    pub integration_type: IntegrationType,
    /// None when the tenant has no View configuration.
    pub config: Option<ViewConfig>,
    /// (table, last watermark read).
    pub watermarks: Vec<(String, String)>,
}

/// The tenant's View integration as stored.
async fn status(db: &Db, access: &ViewAccess, tenant: &TenantId) -> Result<ViewStatus> {
    let t = tenants::require(db, tenant).await?;
    Ok(ViewStatus {
        integration_type: t.integration_type,
        config: views::get(db, tenant, access.key()).await?,
        watermarks: views::watermarks(db, tenant).await?,
    })
}

/// Stores a tenant's View configuration, making it a VIEW integration. `url` None keeps
/// the stored one (and who named it); `page_size` None takes the default; `violations`
/// are problems the caller already found in its request. Every problem is reported at
/// once (nothing stored); the configuration must pass `access` for whoever named its URL,
/// a kept URL too, so a tenant whose grant was revoked is refused (see
/// [`ViewAccess::admit`]); with `check`, the views are checked against the ERP database
/// first; `now` stamps it.
#[allow(clippy::too_many_arguments)]
async fn configure(
    db: &Db,
    access: &ViewAccess,
    naming: Naming,
    tenant: &TenantId,
    url: Option<String>,
    page_size: Option<u32>,
    tables: Vec<ViewTable>,
    check: bool,
    mut violations: Vec<FieldViolation>,
    now: DateTime<Utc>,
) -> Result<()> {
    tenants::require(db, tenant).await?;
    let new_url = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    let (url, named_by) = match new_url.clone() {
        Some(u) => (Some(u), naming),
        None => match views::stored(db, tenant, access.key()).await? {
            Some((stored, named_by)) => (Some(stored.url), named_by),
            None => (None, naming),
        },
    };
    if url.is_none() {
        violations.push(FieldViolation::new(
            "url",
            "required the first time: the ERP database's postgres://, mysql:// or sqlite: URL",
        ));
    }
    let cfg = ViewConfig {
        url: url.unwrap_or_default(),
        page_size: page_size.unwrap_or(DEFAULT_PAGE_SIZE),
        tables,
    };
    if let Err(more) = validate(&cfg) {
        // A missing URL is reported once, above.
        violations.extend(
            more.into_iter()
                .filter(|v| !(v.field == "url" && cfg.url.is_empty())),
        );
    }
    if !violations.is_empty() {
        return Err(AppError::InvalidFields(violations));
    }
    let grants = view_grants::of_tenant(db, tenant).await?;
    access.admit(&cfg, named_by, &grants).await?;
    if let Some(url) = &new_url {
        access.sealable(url)?;
    }
    if check {
        self::check(access, &cfg, named_by, &grants)
            .await
            .map_err(AppError::FailedPrecondition)?;
    }
    views::set(db, tenant, &cfg, named_by, access.key(), now).await?;
    tracing::info!(tenant = %tenant, url = %cfg.redacted_url(), named_by = named_by.as_str(), tables = cfg.tables.len(), "view configuration set");
    Ok(())
}
