//! The edge of the port: every call to an authenticated route (IntegrationHistory,
//! ErpIngest, `POST /erp/v1/{table}`) is authenticated here, once, before its handler
//! runs. The caller's [`Grant`] goes on the request; handlers only authorize and delegate.
//! A caller who fails is answered here, in its transport's shape: a gRPC status, or the
//! HTTP route's JSON error (with `Retry-After` when throttled). Health, reflection and the
//! HTTP route's OpenAPI document are not behind it; a call to them admits its connection
//! ([`admit`]) as a call that passed the edge does (see `conn`: a connection that is
//! never admitted is closed).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Tokens;
use crate::domain::token::Grant;

/// The layer's function: authenticates `req` with `tokens` and puts its [`Grant`] on it.
pub async fn authenticate(State(tokens): State<Tokens>, mut req: Request, next: Next) -> Response {
    let peer = crate::http::peer(&req);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| ()));
    match tokens.authenticate(header, peer).await {
        Ok(grant) => {
            admit_connection(&req);
            req.extensions_mut().insert::<Grant>(grant);
            next.run(req).await
        }
        Err(err) if crate::http::is_grpc(&req) => crate::http::grpc_answer(
            tonic::Status::from(err),
            req.headers().get(header::CONTENT_TYPE),
        ),
        Err(err) => {
            tracing::debug!(error = %err, path = req.uri().path(), "HTTP call refused at the edge");
            crate::http::answer(&err)
        }
    }
}

/// The layer's function on the routes that need no token (health, reflection, the
/// OpenAPI document): a call to them admits its connection.
pub async fn admit(req: Request, next: Next) -> Response {
    admit_connection(&req);
    next.run(req).await
}

/// The connection `req` came on keeps its slot past the first-call deadline.
fn admit_connection(req: &Request) {
    if let Some(activity) = req.extensions().get::<crate::conn::Activity>() {
        activity.admit();
    }
}
