//! Authentication of gRPC calls: the `authorization` metadata checked by
//! [`crate::auth`], the rules HTTP shares.

use tonic::Request;

pub use crate::auth::{authenticate_header, authorize};
use crate::domain::tenant::TenantId;
use crate::domain::token::{Grant, Role};
use crate::error::{AppError, Result};
use crate::state::AppState;

/// Checks the call's `authorization: Bearer …` metadata: UNAUTHENTICATED when absent,
/// malformed, unknown or revoked.
pub async fn authenticate<T>(state: &AppState, req: &Request<T>) -> Result<Grant> {
    let peer = req.remote_addr().map(|a| a.ip());
    let header = match req.metadata().get("authorization") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(text) => Some(text),
            Err(_) => {
                let err = AppError::Unauthenticated("authorization metadata is not text".into());
                return Err(state.throttle.failed_auth(peer, err));
            }
        },
    };
    authenticate_header(state, header, peer).await
}

/// Authenticates, parses the request's tenant id and authorizes the call on it.
pub async fn tenant_call<T>(
    state: &AppState,
    req: &Request<T>,
    role: Role,
    service: &str,
    tenant_id: &str,
) -> Result<TenantId> {
    let grant = authenticate(state, req).await?;
    let tenant = TenantId::parse(tenant_id).map_err(AppError::InvalidArgument)?;
    authorize(&grant, role, service, Some(&tenant))?;
    Ok(tenant)
}
