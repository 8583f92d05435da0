//! ErpIngest: where ERPs push their records over gRPC.

use std::time::Instant;

use axum::extract::State;
use tonic::{Request, Response, Status};

use super::auth::{grant, tenant_call};
use super::convert;
use super::pb::{self, erp_ingest_server::ErpIngest};
use crate::auth::{authorize, Tokens};
use crate::domain::request_log::Transport;
use crate::domain::tenant::TenantId;
use crate::domain::token::{Grant, Role};
use crate::error::AppError;
use crate::ingest::{Failure, Ingestor, RequestBody, RequestMeta};

const SERVICE: &str = "ErpIngest";

const PUSH_ENDPOINT: &str = "ErpIngest/Push";
/// How the request log names a ReportCounts request.
const REPORT_COUNTS_ENDPOINT: &str = "ErpIngest/ReportCounts";

/// The service: transport over the ingestor.
pub struct Service {
    ingestor: Ingestor,
    tokens: Tokens,
}

impl Service {
    /// A service over `ingestor`, its pushes rate-limited by `tokens`.
    pub fn new(ingestor: Ingestor, tokens: Tokens) -> Self {
        Self { ingestor, tokens }
    }
}

/// A failed request's status carries the id of its request-log entry.
fn failed(f: Failure) -> Status {
    let mut status = Status::from(f.error);
    if let Some(Ok(id)) = f.request_id.map(|id| id.parse()) {
        status.metadata_mut().insert("x-request-id", id);
    }
    status
}

#[tonic::async_trait]
impl ErpIngest for Service {
    async fn push(
        &self,
        req: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let received_at = self.ingestor.now();
        let started = Instant::now();
        let grant = grant(&req)?;
        let tenant =
            TenantId::parse(&req.get_ref().tenant_id).map_err(AppError::InvalidArgument)?;
        authorize(grant, Role::Erp, SERVICE, Some(&tenant))?;
        self.tokens.push_allowed(grant)?;
        let msg = req.into_inner();
        let records: Vec<serde_json::Value> =
            msg.records.into_iter().map(convert::record_json).collect();
        let meta = RequestMeta {
            tenant,
            transport: Transport::Grpc,
            endpoint: PUSH_ENDPOINT.into(),
            request_body: RequestBody::Push {
                tenant_id: msg.tenant_id,
                table: msg.table.clone(),
            },
            table: Some(msg.table),
            received_at,
            started,
        };
        let (reply, _) = self
            .ingestor
            .push(meta, std::sync::Arc::new(records))
            .await
            .map_err(failed)?;
        Ok(Response::new(convert::push_response(reply)))
    }

    async fn report_counts(
        &self,
        req: Request<pb::ReportCountsRequest>,
    ) -> Result<Response<pb::ReportCountsResponse>, Status> {
        let received_at = self.ingestor.now();
        let started = Instant::now();
        let tenant = tenant_call(&req, Role::Erp, SERVICE, &req.get_ref().tenant_id)?;
        let msg = req.into_inner();
        // The request reached the tenant: it is logged, answered well or not.
        let counts: std::collections::BTreeMap<&str, u64> =
            msg.counts.iter().map(|(t, n)| (t.as_str(), *n)).collect();
        let meta = RequestMeta {
            tenant,
            transport: Transport::Grpc,
            endpoint: REPORT_COUNTS_ENDPOINT.into(),
            table: None,
            received_at,
            started,
            request_body: RequestBody::Text(
                serde_json::json!({"tenant_id": msg.tenant_id, "counts": counts}).to_string(),
            ),
        };
        match self.ingestor.report_counts(&meta.tenant, msg.counts).await {
            Ok(()) => {
                self.ingestor.log_answered(&meta, "{}".into()).await;
                Ok(Response::new(pb::ReportCountsResponse {}))
            }
            Err(err) => Err(failed(self.ingestor.log_failure(&meta, &[], err).await)),
        }
    }
}

/// Admits a Push only with one of ingestion's slots ([`Ingestor::admit`]), taken before
/// tonic reads and decodes the message and held until the answer: without one within a
/// short wait the call is answered RESOURCE_EXHAUSTED with a retry hint, and nothing is
/// read, stored or logged. ReportCounts (a few numbers) needs none.
pub async fn admission(
    State(ingestor): State<Ingestor>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !req.uri().path().ends_with("/Push") {
        return next.run(req).await;
    }
    match ingestor.admit().await {
        Ok(_slot) => next.run(req).await,
        Err(err) => crate::http::grpc_answer(
            Status::from(err),
            req.headers().get(axum::http::header::CONTENT_TYPE),
        ),
    }
}

/// Turns tonic's "decoded message length too large" (OUT_OF_RANGE) into
/// RESOURCE_EXHAUSTED with a message naming the limit, and logs the request to the
/// tenant of its erp token: an oversized push is a request the tenant must see. It runs
/// behind the edge: the caller is authenticated.
pub async fn size_guard(
    State(ingestor): State<Ingestor>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let received_at = ingestor.now();
    let started = Instant::now();
    // Only an erp token's tenant gets the log entry.
    let tenant = req
        .extensions()
        .get::<Grant>()
        .and_then(|g| g.erp_tenant().cloned());
    let response = next.run(req).await;
    let Some(found) = decoded_too_large(&response) else {
        return response;
    };
    let err = AppError::ResourceExhausted(format!(
        "request of {found} bytes is over the {} byte limit: split the batch",
        ingestor.limits().max_body_bytes
    ));
    let status = match tenant {
        Some(tenant) => {
            let meta = RequestMeta {
                tenant,
                transport: Transport::Grpc,
                endpoint: PUSH_ENDPOINT.into(),
                table: None,
                received_at,
                started,
                request_body: RequestBody::Text(format!(
                    "(not stored: {found} bytes, over the limit)"
                )),
            };
            failed(ingestor.log_failure(&meta, &[], err).await)
        }
        // Not attributable to a tenant: traced, never logged to a tenant's history.
        None => {
            tracing::debug!(
                found,
                "oversized push with a token that is not an erp token"
            );
            Status::from(err)
        }
    };
    status.into_http::<axum::body::Body>()
}

/// The size tonic reported when it refused a message as too large.
fn decoded_too_large(response: &axum::response::Response) -> Option<u64> {
    let headers = response.headers();
    if headers.get("grpc-status")?.as_bytes() != b"11" {
        return None;
    }
    let message = headers
        .get("grpc-message")?
        .to_str()
        .ok()?
        .replace("%20", " ");
    if !message.contains("message length too large") {
        return None;
    }
    let after = message.split("found ").nth(1)?;
    after.split(' ').next()?.parse().ok()
}
