//! The host CRM's `erpsync.v1.CrmSink` as a run's destination (`serve --crm-sink
//! grpc://host:port`): batches, a timeout per call, and retries with backoff on
//! transient failures. Every call is idempotent by (tenant, external_id).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::pb::{self, crm_sink_client::CrmSinkClient};
use crate::domain::abc::Category;
use crate::domain::crm::{CrmCompany, CrmContact};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::worker::sink::CrmSink;

/// How calls to the host are made.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Records per call.
    pub batch: usize,
    /// Deadline of one call.
    pub timeout: Duration,
    /// Attempts per batch, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each next one.
    pub backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            batch: 500,
            timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A client of the host's CrmSink.
#[derive(Debug, Clone)]
pub struct GrpcSink {
    client: CrmSinkClient<Channel>,
    url: String,
    policy: Policy,
}

impl GrpcSink {
    /// A sink for `url` (`grpc://host:port` or `http://host:port`); connects on first use,
    /// so a host that is down at start only fails the runs that need it.
    pub fn new(url: &str, policy: Policy) -> Result<Self> {
        let http = match url.strip_prefix("grpc://") {
            Some(rest) => format!("http://{rest}"),
            None => url.to_owned(),
        };
        let endpoint = Endpoint::from_shared(http)
            .map_err(|e| {
                AppError::InvalidArgument(format!("--crm-sink {url:?} is not a URL: {e}"))
            })?
            .connect_timeout(Duration::from_secs(5))
            .timeout(policy.timeout);
        Ok(Self {
            client: CrmSinkClient::new(endpoint.connect_lazy()),
            url: url.to_owned(),
            policy,
        })
    }

    /// Sends `batches` one call each, retrying transient failures.
    async fn send<T, F, Fut>(&self, what: &str, items: Vec<T>, call: F) -> Result<()>
    where
        T: Clone,
        F: Fn(CrmSinkClient<Channel>, Vec<T>) -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<tonic::Response<pb::SinkResponse>, tonic::Status>,
        >,
    {
        for batch in items.chunks(self.policy.batch.max(1)) {
            let mut wait = self.policy.backoff;
            let mut attempt = 1;
            loop {
                match call(self.client.clone(), batch.to_vec()).await {
                    Ok(_) => break,
                    Err(status) if attempt < self.policy.attempts && transient(status.code()) => {
                        tracing::warn!(sink = %self.url, attempt, code = ?status.code(), "{what} failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                        attempt += 1;
                    }
                    Err(status) => {
                        return Err(AppError::Internal(anyhow::anyhow!(
                            "CRM sink {} refused {what} after {attempt} attempt(s): {:?}: {}",
                            self.url,
                            status.code(),
                            status.message()
                        )))
                    }
                }
            }
        }
        Ok(())
    }
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
    )
}

fn fields(m: serde_json::Map<String, serde_json::Value>) -> Option<prost_types::Struct> {
    Some(super::convert::json_struct(m))
}

#[tonic::async_trait]
impl CrmSink for GrpcSink {
    async fn upsert_companies(
        &self,
        tenant: &TenantId,
        run_id: &str,
        rows: Vec<CrmCompany>,
    ) -> Result<()> {
        let rows: Vec<pb::CrmCompany> = rows
            .into_iter()
            .map(|c| pb::CrmCompany {
                external_id: c.external_id,
                name: c.name,
                document: c.document,
                seller_id: c.seller_id,
                city: c.city,
                state: c.state,
                email: c.email,
                phone: c.phone,
                fields: fields(c.fields),
            })
            .collect();
        let (tenant, run) = (tenant.to_string(), run_id.to_owned());
        self.send("UpsertCompanies", rows, |mut client, companies| {
            let req = pb::UpsertCompaniesRequest {
                tenant_id: tenant.clone(),
                run_id: run.clone(),
                companies,
            };
            async move { client.upsert_companies(req).await }
        })
        .await
    }

    async fn upsert_contacts(
        &self,
        tenant: &TenantId,
        run_id: &str,
        rows: Vec<CrmContact>,
    ) -> Result<()> {
        let rows: Vec<pb::CrmContact> = rows
            .into_iter()
            .map(|c| pb::CrmContact {
                external_id: c.external_id,
                name: c.name,
                document: c.document,
                company_id: c.company_id,
                email: c.email,
                phone: c.phone,
                fields: fields(c.fields),
            })
            .collect();
        let (tenant, run) = (tenant.to_string(), run_id.to_owned());
        self.send("UpsertContacts", rows, |mut client, contacts| {
            let req = pb::UpsertContactsRequest {
                tenant_id: tenant.clone(),
                run_id: run.clone(),
                contacts,
            };
            async move { client.upsert_contacts(req).await }
        })
        .await
    }

    async fn delete_companies(
        &self,
        tenant: &TenantId,
        run_id: &str,
        ids: Vec<String>,
    ) -> Result<()> {
        let (tenant, run) = (tenant.to_string(), run_id.to_owned());
        self.send("DeleteCompanies", ids, |mut client, external_ids| {
            let req = pb::DeleteRecordsRequest {
                tenant_id: tenant.clone(),
                run_id: run.clone(),
                external_ids,
            };
            async move { client.delete_companies(req).await }
        })
        .await
    }

    async fn delete_contacts(
        &self,
        tenant: &TenantId,
        run_id: &str,
        ids: Vec<String>,
    ) -> Result<()> {
        let (tenant, run) = (tenant.to_string(), run_id.to_owned());
        self.send("DeleteContacts", ids, |mut client, external_ids| {
            let req = pb::DeleteRecordsRequest {
                tenant_id: tenant.clone(),
                run_id: run.clone(),
                external_ids,
            };
            async move { client.delete_contacts(req).await }
        })
        .await
    }

    async fn apply_categories(
        &self,
        tenant: &TenantId,
        run_id: &str,
        rows: Vec<Category>,
    ) -> Result<()> {
        let (tenant, run) = (tenant.to_string(), run_id.to_owned());
        let categories: Vec<pb::CompanyCategory> = rows
            .into_iter()
            .map(super::convert::company_category)
            .collect();
        self.send("ApplyCategories", categories, |mut client, categories| {
            let req = pb::ApplyCategoriesRequest {
                tenant_id: tenant.clone(),
                run_id: run.clone(),
                categories,
            };
            async move { client.apply_categories(req).await }
        })
        .await
    }
}
