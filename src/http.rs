//! The HTTP/JSON ingestion route, `POST /erp/v1/{table}`, on the same port as gRPC: ERPs
//! and integration middlewares speak HTTP/JSON. It shares the push handler with
//! `ErpIngest.Push` and answers the same shape: 200 with the push answer, or
//! 400/401/403/404/413 with `{"error":{"code":…,"message":…}}` (429 — rate limited or
//! busy — and 503, a database outage, with `Retry-After`). The route is described by an OpenAPI document,
//! `docs/openapi.json`, served at `GET /erp/v1/openapi.json` without a token.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tonic::transport::server::TcpConnectInfo;

use crate::auth::Tokens;
use crate::domain::request_log::Transport;
use crate::domain::tenant::TenantId;
use crate::domain::text::excerpt;
use crate::domain::token::Grant;
use crate::error::AppError;
use crate::ingest::{self, Ingestor, RequestBody, RequestMeta};

/// What the HTTP route uses.
#[derive(Clone)]
struct HttpState {
    ingestor: Ingestor,
    tokens: Tokens,
}

/// The HTTP routes, over `ingestor`, pushes rate-limited by `tokens`. They go behind the
/// edge ([`crate::edge`]), which authenticates the caller.
pub fn router(ingestor: Ingestor, tokens: Tokens) -> Router {
    Router::new()
        .route("/erp/v1/{table}", post(push))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(HttpState { ingestor, tokens })
}

/// The OpenAPI document of the HTTP route (`docs/openapi.json`, checked against real
/// answers by the integration tests).
pub const OPENAPI_JSON: &str = include_str!("../docs/openapi.json");

/// Where [`OPENAPI_JSON`] is served.
pub const OPENAPI_PATH: &str = "/erp/v1/openapi.json";

/// The route of the OpenAPI document. It needs no token (it describes no tenant's data),
/// so it goes beside health and reflection, not behind the edge.
pub fn docs_router() -> Router {
    Router::new()
        .route(OPENAPI_PATH, get(openapi))
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            not_allowed(req.method(), "GET", "fetch the document with GET")
        })
}

async fn openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI_JSON.to_owned())
}

/// The answer to a path no route serves: gRPC callers get UNIMPLEMENTED (as tonic
/// answers an unknown method); anyone else a 404 in the JSON error shape, so an ERP that
/// mistypes the path and checks the HTTP status does not take its batch for delivered.
pub async fn not_found(req: axum::extract::Request) -> Response {
    let path = excerpt(req.uri().path());
    if is_grpc(&req) {
        return grpc_answer(
            tonic::Status::unimplemented(format!("no method {path}")),
            req.headers().get(header::CONTENT_TYPE),
        );
    }
    let err = AppError::NotFound(format!(
        "no route {path}: ERP data goes to POST /erp/v1/{{table}} (see ListTables)"
    ));
    json_response(StatusCode::NOT_FOUND, ingest::error_json(&err, None))
}

/// The answer to `POST`-only routes called with another method.
async fn method_not_allowed(req: axum::extract::Request) -> Response {
    not_allowed(req.method(), "POST", "send the batch with POST")
}

/// 405 in the JSON error shape, with `Allow: allow`.
fn not_allowed(method: &axum::http::Method, allow: &'static str, hint: &str) -> Response {
    let err = AppError::InvalidArgument(format!("{method} is not accepted here: {hint}"));
    let mut res = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ingest::error_json(&err, None),
    );
    res.headers_mut()
        .insert(header::ALLOW, axum::http::HeaderValue::from_static(allow));
    res
}

async fn push(
    State(state): State<HttpState>,
    Path(table): Path<String>,
    grant: Option<axum::Extension<Grant>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = state.ingestor.now();
    let started = Instant::now();
    let tenant = match tenant_of(&state, grant.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP push refused before reaching a tenant");
            return answer(&e);
        }
    };
    let meta = |text: String| RequestMeta {
        tenant: tenant.clone(),
        transport: Transport::Http,
        endpoint: format!("POST /erp/v1/{table}"),
        table: Some(table.clone()),
        received_at,
        started,
        request_body: RequestBody::Text(text),
    };
    let limit = state.ingestor.limits().max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size: String| {
        AppError::ResourceExhausted(format!(
            "request body of {size} is over the {limit} byte limit: split the batch"
        ))
    };
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        let err = too_large(format!("{n} bytes"));
        let m = meta(format!("(not stored: {n} bytes, over the limit)"));
        return failed(state.ingestor.log_failure(&m, &[], err).await);
    }
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"));
    if encoded {
        let err = AppError::InvalidArgument(NOT_COMPRESSED.into());
        let m = meta("(not stored: a compressed body)".into());
        return failed(state.ingestor.log_failure(&m, &[], err).await);
    }
    // A slot before the body is read: bodies in memory stay bounded by the slots. A push
    // refused for busy is not logged (logging needs the database it is spared).
    let _slot = match state.ingestor.admit().await {
        Ok(slot) => slot,
        Err(err) => return answer(&err),
    };
    let deadline = state.ingestor.limits().body_timeout;
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await;
    let Ok(read) = read else {
        let err = AppError::DeadlineExceeded(format!(
            "the request body did not arrive within {} s: send it faster or in smaller batches",
            deadline.as_secs()
        ));
        let m = meta("(not stored: the body arrived too slowly)".into());
        return failed(state.ingestor.log_failure(&m, &[], err).await);
    };
    let bytes: Bytes = match read {
        Ok(b) => b,
        // A chunked body has no Content-Length: the limit shows while reading.
        Err(e) if e.to_string().contains("length limit") => {
            let err = too_large("more than that".into());
            let m = meta("(not stored: over the limit)".into());
            return failed(state.ingestor.log_failure(&m, &[], err).await);
        }
        Err(e) => {
            let err = AppError::InvalidArgument(format!("cannot read the request body: {e}"));
            let m = meta("(not stored: the body could not be read)".into());
            return failed(state.ingestor.log_failure(&m, &[], err).await);
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let records = match parse_body(&bytes, &table) {
        Ok(r) => r,
        Err(err) => return failed(state.ingestor.log_failure(&meta(text), &[], err).await),
    };
    match state.ingestor.push(meta(text), Arc::new(records)).await {
        Ok((_, json)) => json_response(StatusCode::OK, json),
        Err(f) => failed(f),
    }
}

/// Whether `req` is a gRPC call (by its content type).
pub fn is_grpc<B>(req: &axum::http::Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Whether `req` is a gRPC-Web call (`application/grpc-web`, `…+proto`, `…-text`), as
/// the `/ui/` page makes.
pub fn is_grpc_web<B>(req: &axum::http::Request<B>) -> bool {
    is_grpc_web_type(req.headers().get(header::CONTENT_TYPE))
}

fn is_grpc_web_type(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc-web"))
}

/// `status` as a trailers-only gRPC answer, typed as the call was when it was gRPC-Web
/// (`content_type`, the request's or the answer's): a gRPC-Web client refuses an answer
/// typed `application/grpc`.
pub fn grpc_answer(status: tonic::Status, content_type: Option<&HeaderValue>) -> Response {
    let mut res: Response = status.into_http();
    if let Some(ct) = content_type.filter(|ct| is_grpc_web_type(Some(ct))) {
        res.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    res
}

/// The client address of a request, as the listener accepted it.
pub fn peer<B>(req: &axum::http::Request<B>) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|a| a.ip())
}

/// The tenant of the caller's erp token (exactly one, by construction of erp tokens),
/// within the token's push rate.
fn tenant_of(state: &HttpState, grant: Option<&Grant>) -> Result<TenantId, AppError> {
    let grant = grant.ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "an HTTP push reached its handler without passing the edge's authentication"
        ))
    })?;
    let tenant = grant.erp_tenant().cloned().ok_or_else(|| {
        AppError::PermissionDenied(format!(
            "token {} has role {}; POST /erp/v1 needs a token of role erp",
            grant.token_id,
            grant.role.as_str()
        ))
    })?;
    // The role first (as gRPC Push does): a crm token here is a 403, never a 429.
    state.tokens.push_allowed(grant)?;
    Ok(tenant)
}

/// What a compressed body is told: erpsync takes JSON as sent, uncompressed.
const NOT_COMPRESSED: &str =
    "compressed bodies are not accepted: send the JSON uncompressed (no Content-Encoding)";

fn parse_body(bytes: &[u8], table: &str) -> Result<Vec<Value>, AppError> {
    // gzip's magic number: a client that compressed without saying so.
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(AppError::InvalidArgument(NOT_COMPRESSED.into()));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::InvalidArgument(format!("malformed JSON: {e}")))?;
    // A body of the wrong shape is often one record, or its fields, sent bare: the answer
    // shows the shape with the table's fields.
    let shape = || match crate::domain::tables::find(table) {
        Some(def) => format!(
            " ({{\"records\": [{{\"external_id\": \"…\", \"fields\": {{…}}}}]}}; {} accepts: {})",
            def.id,
            def.accepted_fields()
        ),
        None => String::new(),
    };
    match value {
        Value::Object(mut obj) => match obj.remove("records") {
            Some(Value::Array(records)) => Ok(records),
            Some(_) => Err(AppError::InvalidArgument(format!(
                "\"records\" must be a list of records{}",
                shape()
            ))),
            None => Err(AppError::InvalidArgument(format!(
                "expected {{\"records\": [...]}}: the body has no \"records\"{}",
                shape()
            ))),
        },
        _ => Err(AppError::InvalidArgument(format!(
            "expected a JSON object {{\"records\": [...]}}{}",
            shape()
        ))),
    }
}

/// The answer to a request refused before it reached a tenant (not logged).
pub fn answer(err: &AppError) -> Response {
    with_retry_after(
        json_response(status_of(err), ingest::error_json(err, None)),
        err,
    )
}

/// The answer to a logged failure: exactly the body the request log holds.
fn failed(f: ingest::Failure) -> Response {
    with_retry_after(json_response(status_of(&f.error), f.body), &f.error)
}

/// A rate-limited answer, or one to a database outage, says when to come back
/// (`Retry-After`, whole seconds).
fn with_retry_after(mut res: Response, err: &AppError) -> Response {
    if let Some(wait) = err.retry_after() {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        res.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from(secs.max(1)),
        );
    }
    res
}

fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::Database(_) | AppError::Internal(_) => {
            tracing::error!(error = ?err, "internal error on HTTP push");
        }
        AppError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "database unreachable; HTTP push answered 503");
        }
        _ => {}
    }
    StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response with a JSON `body`.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
