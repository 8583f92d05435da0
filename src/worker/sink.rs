//! Where a run delivers: the CRM. The embedded sink writes erpsync's own CRM tables (the
//! default: a standalone install is complete); its companies' categories are the ones
//! erpsync stores, read in place. Every call is idempotent by
//! (tenant, external_id), so a run that failed halfway is simply run again.

use chrono::Utc;

use crate::domain::abc::Category;
use crate::domain::crm::{CrmCompany, CrmContact};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::{crm, Db};

/// A CRM that receives companies and contacts.
#[tonic::async_trait]
pub trait CrmSink: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces companies.
    async fn upsert_companies(
        &self,
        tenant: &TenantId,
        run_id: &str,
        rows: Vec<CrmCompany>,
    ) -> Result<()>;
    /// Inserts or replaces contacts.
    async fn upsert_contacts(
        &self,
        tenant: &TenantId,
        run_id: &str,
        rows: Vec<CrmContact>,
    ) -> Result<()>;
    /// Deletes companies by external id.
    async fn delete_companies(
        &self,
        tenant: &TenantId,
        run_id: &str,
        ids: Vec<String>,
    ) -> Result<()>;
    /// Deletes contacts by external id.
    async fn delete_contacts(
        &self,
        tenant: &TenantId,
        run_id: &str,
        ids: Vec<String>,
    ) -> Result<()>;
    /// Sets companies' ABC class, lifecycle, portfolio and revenue.
    async fn apply_categories(
        &self,
        tenant: &TenantId,
        run_id: &str,
        rows: Vec<Category>,
    ) -> Result<()>;
    /// Whether this CRM reads the categories erpsync stores (`company_category`) rather
    /// than receiving them: then a run sends it none.
    fn reads_stored_categories(&self) -> bool {
        false
    }
}

/// The embedded CRM in erpsync's own database.
#[derive(Debug, Clone)]
pub struct EmbeddedSink {
    db: Db,
}

impl EmbeddedSink {
    /// A sink over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl CrmSink for EmbeddedSink {
    async fn upsert_companies(
        &self,
        tenant: &TenantId,
        _run_id: &str,
        rows: Vec<CrmCompany>,
    ) -> Result<()> {
        crm::upsert_companies(&self.db, tenant, &rows, Utc::now()).await
    }

    async fn upsert_contacts(
        &self,
        tenant: &TenantId,
        _run_id: &str,
        rows: Vec<CrmContact>,
    ) -> Result<()> {
        crm::upsert_contacts(&self.db, tenant, &rows, Utc::now()).await
    }

    async fn delete_companies(
        &self,
        tenant: &TenantId,
        _run_id: &str,
        ids: Vec<String>,
    ) -> Result<()> {
        crm::delete(&self.db, crm::CrmTable::Company, tenant, &ids)
            .await
            .map(|_| ())
    }

    async fn delete_contacts(
        &self,
        tenant: &TenantId,
        _run_id: &str,
        ids: Vec<String>,
    ) -> Result<()> {
        crm::delete(&self.db, crm::CrmTable::Contact, tenant, &ids)
            .await
            .map(|_| ())
    }

    /// Nothing to write: the embedded CRM's companies carry the categories of
    /// `company_category` (same database; see `crm::company_categories`).
    async fn apply_categories(
        &self,
        _tenant: &TenantId,
        _run_id: &str,
        _rows: Vec<Category>,
    ) -> Result<()> {
        Ok(())
    }

    fn reads_stored_categories(&self) -> bool {
        true
    }
}
