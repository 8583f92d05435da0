//! ErpIngest: where ERPs push their records over gRPC.

use std::time::Instant;

use axum::extract::State;
use chrono::Utc;
use tonic::{Request, Response, Status};

use super::auth::{authenticate, authenticate_header, authorize, tenant_call};
use super::convert;
use super::pb::{self, erp_ingest_server::ErpIngest};
use crate::domain::request_log::Transport;
use crate::domain::tenant::TenantId;
use crate::domain::token::Role;
use crate::error::AppError;
use crate::ingest::{self, RequestBody, RequestMeta};
use crate::state::AppState;

const SERVICE: &str = "ErpIngest";

const PUSH_ENDPOINT: &str = "ErpIngest/Push";
/// How the request log names a ReportCounts request.
const REPORT_COUNTS_ENDPOINT: &str = "ErpIngest/ReportCounts";

/// The service, over the shared application state.
pub struct Service {
    state: AppState,
}

impl Service {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl ErpIngest for Service {
    async fn push(
        &self,
        req: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let received_at = Utc::now();
        let started = Instant::now();
        let grant = authenticate(&self.state, &req).await?;
        let tenant =
            TenantId::parse(&req.get_ref().tenant_id).map_err(AppError::InvalidArgument)?;
        authorize(&grant, Role::Erp, SERVICE, Some(&tenant))?;
        self.state.throttle.push(&grant.token_id)?;
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
        let (reply, _) = ingest::push(&self.state, meta, std::sync::Arc::new(records)).await?;
        Ok(Response::new(convert::push_response(reply)))
    }

    async fn report_counts(
        &self,
        req: Request<pb::ReportCountsRequest>,
    ) -> Result<Response<pb::ReportCountsResponse>, Status> {
        let received_at = Utc::now();
        let started = Instant::now();
        let tenant = tenant_call(
            &self.state,
            &req,
            Role::Erp,
            SERVICE,
            &req.get_ref().tenant_id,
        )
        .await?;
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
        match ingest::report_counts(&self.state, &meta.tenant, msg.counts).await {
            Ok(()) => {
                ingest::log_answered(&self.state, &meta, "{}".into()).await;
                Ok(Response::new(pb::ReportCountsResponse {}))
            }
            Err(err) => Err(Status::from(
                ingest::log_failure(&self.state, &meta, &[], err).await,
            )),
        }
    }
}

/// Turns tonic's "decoded message length too large" (OUT_OF_RANGE) into
/// RESOURCE_EXHAUSTED with a message naming the limit, and logs the request to the
/// tenant of its erp token: an oversized push is a request the tenant must see.
pub async fn size_guard(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let received_at = Utc::now();
    let started = Instant::now();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let peer = crate::http::peer(&req);
    let response = next.run(req).await;
    let Some(found) = decoded_too_large(&response) else {
        return response;
    };
    let err = AppError::ResourceExhausted(format!(
        "request of {found} bytes is over the {} byte limit: split the batch",
        state.limits.max_body_bytes
    ));
    // Authentication still comes first; only an erp token's tenant gets the log entry.
    let tenant = match authenticate_header(&state, auth.as_deref(), peer).await {
        Ok(grant) => grant.erp_tenant().cloned(),
        Err(auth_err) => return Status::from(auth_err).into_http::<axum::body::Body>(),
    };
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
            Status::from(ingest::log_failure(&state, &meta, &[], err).await)
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
