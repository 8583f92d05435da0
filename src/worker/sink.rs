//! Where a run delivers: the CRM. The embedded sink writes erpsync's own CRM tables (the
//! default: a standalone install is complete); its companies' categories are the ones
//! erpsync stores, read in place. Every call is idempotent by (tenant, external_id), so
//! a batch or a run that failed halfway is simply sent again (at-least-once delivery).

use chrono::Utc;

use crate::domain::abc::Category;
use crate::domain::crm::{CrmCompany, CrmContact, Deletion};
use crate::domain::run::CrmCountSource;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::{crm, Db};

/// One call to a sink: whose records, for which run, and the batch's idempotency key
/// (see [`crate::domain::crm::batch_key`]: the same for every attempt of the batch and
/// whenever the same versions are sent in the same batch again, in any run).
#[derive(Debug, Clone)]
pub struct SinkCall {
    /// The tenant.
    pub tenant: TenantId,
    /// The run delivering.
    pub run_id: String,
    /// What a host may de-duplicate on.
    pub idempotency_key: String,
}

/// What a sink answered to a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkAck {
    /// How many records of the call's table the CRM holds for the tenant after it, when
    /// the CRM says.
    pub total: Option<u64>,
}

/// How many companies and contacts a CRM holds for a tenant, as it counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrmCounts {
    /// Companies held.
    pub companies: u64,
    /// Contacts held.
    pub contacts: u64,
    /// Who counted: the host ([`CrmCountSource::HostCount`]) or the embedded sink
    /// ([`CrmCountSource::Embedded`]).
    pub source: CrmCountSource,
}

impl CrmCounts {
    /// The count of `table`: companies, else contacts.
    pub fn of(&self, table: crate::domain::tables::Table) -> u64 {
        if table == crate::domain::tables::Table::Company {
            self.companies
        } else {
            self.contacts
        }
    }
}

/// A CRM that receives companies and contacts. A failure that may pass (the CRM is down,
/// slow or busy) is [`crate::error::AppError::Sink`] with `transient` set: the run retries the batch
/// under its delivery policy.
#[tonic::async_trait]
pub trait CrmSink: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces companies.
    async fn upsert_companies(&self, call: SinkCall, rows: &[CrmCompany]) -> Result<SinkAck>;
    /// Inserts or replaces contacts.
    async fn upsert_contacts(&self, call: SinkCall, rows: &[CrmContact]) -> Result<SinkAck>;
    /// Deletes companies by external id.
    async fn delete_companies(&self, call: SinkCall, ids: &[Deletion]) -> Result<SinkAck>;
    /// Deletes contacts by external id.
    async fn delete_contacts(&self, call: SinkCall, ids: &[Deletion]) -> Result<SinkAck>;
    /// Sets companies' ABC class, lifecycle, portfolio and revenue.
    async fn apply_categories(&self, call: SinkCall, rows: Vec<Category>) -> Result<SinkAck>;
    /// How many companies and contacts the CRM holds for `tenant` now (asked once after a
    /// run's push); None when it does not count on demand (a host answering
    /// UNIMPLEMENTED).
    async fn count_records(&self, tenant: &TenantId) -> Result<Option<CrmCounts>>;
    /// Whether this is the embedded CRM (erpsync's own tables).
    fn is_embedded(&self) -> bool {
        false
    }
    /// Where erpsync records what this CRM acknowledged (upserts and deletions), when it
    /// is not erpsync's own tables itself: the push stage writes each acknowledged batch
    /// there after its answer, while the next batch's call is in flight. None for the
    /// embedded CRM.
    fn record(&self) -> Option<&EmbeddedSink> {
        None
    }
    /// Whether this CRM reads the categories erpsync stores (`company_category`) rather
    /// than receiving them: then a run sends it none.
    fn reads_stored_categories(&self) -> bool {
        false
    }
    /// Where this CRM is, for a person: no secret in it.
    fn destination(&self) -> String;
    /// Whether this CRM can be reached now (the start-up check; runs retry on their own).
    async fn probe(&self) -> Result<()> {
        Ok(())
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
    fn destination(&self) -> String {
        "embedded (erpsync's own CRM tables)".to_owned()
    }

    async fn upsert_companies(&self, call: SinkCall, rows: &[CrmCompany]) -> Result<SinkAck> {
        crm::upsert_companies(&self.db, &call.tenant, rows, Utc::now()).await?;
        Ok(SinkAck::default())
    }

    async fn upsert_contacts(&self, call: SinkCall, rows: &[CrmContact]) -> Result<SinkAck> {
        crm::upsert_contacts(&self.db, &call.tenant, rows, Utc::now()).await?;
        Ok(SinkAck::default())
    }

    async fn delete_companies(&self, call: SinkCall, ids: &[Deletion]) -> Result<SinkAck> {
        crm::delete(&self.db, crm::CrmTable::Company, &call.tenant, &ids_of(ids)).await?;
        Ok(SinkAck::default())
    }

    async fn delete_contacts(&self, call: SinkCall, ids: &[Deletion]) -> Result<SinkAck> {
        crm::delete(&self.db, crm::CrmTable::Contact, &call.tenant, &ids_of(ids)).await?;
        Ok(SinkAck::default())
    }

    /// Nothing to write: the embedded CRM's companies carry the categories of
    /// `company_category` (same database; see `crm::company_categories`).
    async fn apply_categories(&self, _call: SinkCall, _rows: Vec<Category>) -> Result<SinkAck> {
        Ok(SinkAck::default())
    }

    fn reads_stored_categories(&self) -> bool {
        true
    }

    async fn count_records(&self, tenant: &TenantId) -> Result<Option<CrmCounts>> {
        let (companies, contacts) = crm::counts(&self.db, tenant).await?;
        Ok(Some(CrmCounts {
            companies,
            contacts,
            source: CrmCountSource::Embedded,
        }))
    }

    fn is_embedded(&self) -> bool {
        true
    }
}

fn ids_of(deletions: &[Deletion]) -> Vec<String> {
    deletions.iter().map(|d| d.external_id.clone()).collect()
}
