//! The host CRM's `erpsync.v1.CrmSink` as a run's destination (`serve --crm-sink
//! grpc://host:port`): one call per batch with its idempotency key and a deadline; the
//! run retries transient failures (see `worker::delivery`). What the host accepted is
//! also written to erpsync's own CRM tables, so the delete guard weighs deletions against
//! what the CRM holds and a held deletion shows the CRM's name and document.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::pb::{self, crm_sink_client::CrmSinkClient};
use crate::domain::abc::Category;
use crate::domain::crm::{CrmCompany, CrmContact};
use crate::error::{AppError, Result};
use crate::worker::sink::{CrmSink, EmbeddedSink, SinkAck, SinkCall};

/// A client of the host's CrmSink.
#[derive(Debug, Clone)]
pub struct GrpcSink {
    client: CrmSinkClient<Channel>,
    url: String,
    /// erpsync's record of what the host accepted: the embedded CRM.
    mirror: EmbeddedSink,
}

impl GrpcSink {
    /// Checks that `url` can name a sink (`grpc://host:port` or `http://host:port`).
    pub fn check_url(url: &str) -> Result<()> {
        endpoint(url).map(|_| ())
    }

    /// A sink for `url` whose calls end after `call_timeout`; connects on first use, so a
    /// host that is down at start only fails (and retries) the runs that need it.
    pub fn new(url: &str, call_timeout: Duration, mirror: EmbeddedSink) -> Result<Self> {
        let endpoint = endpoint(url)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(call_timeout);
        Ok(Self {
            client: CrmSinkClient::new(endpoint.connect_lazy()),
            url: url.to_owned(),
            mirror,
        })
    }

    /// The host's answer as a delivery outcome: a transient failure (down, slow, busy)
    /// is retried by the run, any other is not.
    fn outcome(
        &self,
        answer: std::result::Result<tonic::Response<pb::SinkResponse>, tonic::Status>,
    ) -> Result<SinkAck> {
        match answer {
            Ok(r) => Ok(SinkAck {
                total: r.into_inner().total,
            }),
            Err(status) => Err(AppError::Sink {
                status: format!(
                    "{} answered {:?}: {}",
                    self.url,
                    status.code(),
                    crate::domain::text::excerpt(status.message())
                ),
                transient: transient(status.code()),
            }),
        }
    }
}

fn endpoint(url: &str) -> Result<Endpoint> {
    let http = match url.strip_prefix("grpc://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_owned(),
    };
    Endpoint::from_shared(http)
        .map_err(|e| AppError::InvalidArgument(format!("--crm-sink {url:?} is not a URL: {e}")))
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
            | Code::Cancelled
    )
}

fn fields(m: serde_json::Map<String, serde_json::Value>) -> Option<prost_types::Struct> {
    Some(super::convert::json_struct(m))
}

#[tonic::async_trait]
impl CrmSink for GrpcSink {
    async fn upsert_companies(&self, call: SinkCall, rows: Vec<CrmCompany>) -> Result<SinkAck> {
        let req = pb::UpsertCompaniesRequest {
            tenant_id: call.tenant.to_string(),
            run_id: call.run_id.clone(),
            idempotency_key: call.idempotency_key.clone(),
            companies: rows
                .iter()
                .cloned()
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
                .collect(),
        };
        let ack = self.outcome(self.client.clone().upsert_companies(req).await)?;
        self.mirror.upsert_companies(call, rows).await?;
        Ok(ack)
    }

    async fn upsert_contacts(&self, call: SinkCall, rows: Vec<CrmContact>) -> Result<SinkAck> {
        let req = pb::UpsertContactsRequest {
            tenant_id: call.tenant.to_string(),
            run_id: call.run_id.clone(),
            idempotency_key: call.idempotency_key.clone(),
            contacts: rows
                .iter()
                .cloned()
                .map(|c| pb::CrmContact {
                    external_id: c.external_id,
                    name: c.name,
                    document: c.document,
                    company_id: c.company_id,
                    email: c.email,
                    phone: c.phone,
                    fields: fields(c.fields),
                })
                .collect(),
        };
        let ack = self.outcome(self.client.clone().upsert_contacts(req).await)?;
        self.mirror.upsert_contacts(call, rows).await?;
        Ok(ack)
    }

    async fn delete_companies(&self, call: SinkCall, ids: Vec<String>) -> Result<SinkAck> {
        let ack = self.outcome(
            self.client
                .clone()
                .delete_companies(delete_request(&call, &ids))
                .await,
        )?;
        self.mirror.delete_companies(call, ids).await?;
        Ok(ack)
    }

    async fn delete_contacts(&self, call: SinkCall, ids: Vec<String>) -> Result<SinkAck> {
        let ack = self.outcome(
            self.client
                .clone()
                .delete_contacts(delete_request(&call, &ids))
                .await,
        )?;
        self.mirror.delete_contacts(call, ids).await?;
        Ok(ack)
    }

    async fn apply_categories(&self, call: SinkCall, rows: Vec<Category>) -> Result<SinkAck> {
        let req = pb::ApplyCategoriesRequest {
            tenant_id: call.tenant.to_string(),
            run_id: call.run_id.clone(),
            idempotency_key: call.idempotency_key.clone(),
            categories: rows
                .into_iter()
                .map(super::convert::company_category)
                .collect(),
        };
        self.outcome(self.client.clone().apply_categories(req).await)
    }
}

fn delete_request(call: &SinkCall, ids: &[String]) -> pb::DeleteRecordsRequest {
    pb::DeleteRecordsRequest {
        tenant_id: call.tenant.to_string(),
        run_id: call.run_id.clone(),
        idempotency_key: call.idempotency_key.clone(),
        external_ids: ids.to_vec(),
    }
}
