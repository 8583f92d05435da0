//! Bearer-token authentication and per-tenant authorization of every call (gRPC and HTTP).

use tonic::Request;

use crate::domain::tenant::TenantId;
use crate::domain::token::{presented, Grant, Role};
use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::storage::tokens;

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

/// Checks an `authorization` header value (gRPC metadata or HTTP header alike) sent from
/// `peer`: a failure counts against the address's limit (see [`crate::throttle`]).
pub async fn authenticate_header(
    state: &AppState,
    header: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Result<Grant> {
    match verify(state, header).await {
        Err(err @ AppError::Unauthenticated(_)) => Err(state.throttle.failed_auth(peer, err)),
        other => other,
    }
}

async fn verify(state: &AppState, header: Option<&str>) -> Result<Grant> {
    let header = header.ok_or_else(|| {
        AppError::Unauthenticated(
            "missing authorization: send \"authorization: Bearer <token>\"".into(),
        )
    })?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated("authorization must be \"Bearer <token>\"".into())
        })?;
    let invalid = || AppError::Unauthenticated("invalid or revoked token".into());
    let presented = presented(secret).ok_or_else(invalid)?;
    tokens::find_grant(&state.db, &presented, chrono::Utc::now())
        .await?
        .ok_or_else(invalid)
}

/// Checks that `grant` may call a `service` of `role` on `tenant`.
pub fn authorize(
    grant: &Grant,
    role: Role,
    service: &str,
    tenant: Option<&TenantId>,
) -> Result<()> {
    if grant.role != role {
        return Err(AppError::PermissionDenied(format!(
            "token {} has role {}; {service} needs a token of role {}",
            grant.token_id,
            grant.role.as_str(),
            role.as_str()
        )));
    }
    if let Some(tenant) = tenant {
        if !grant.scope.covers(tenant) {
            return Err(AppError::PermissionDenied(format!(
                "token {} does not grant access to tenant {tenant}",
                grant.token_id
            )));
        }
    }
    Ok(())
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
